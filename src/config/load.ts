/**
 * Reads the akv configuration (docs/configuration.md): one JSON file, found by the first of
 * `path` / `AKV_CONFIG` / `$XDG_CONFIG_HOME/akv/config.json` (or `~/.config/akv/config.json`) /
 * `/etc/akv/config.json` that exists, else pure defaults; then the environment overrides
 * (`AKV_AGENT_SOCKET`, `AKV_LOG_FILE`, `AKV_LOG_LEVEL`). Validation is strict: an unknown key or a
 * value of the wrong type is an error naming the file and the field, never silently ignored.
 */
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { AkvError, errorMessage } from '../errors.js';
import { readPolicy } from './policy.js';
import type { AkvConfig, CredentialConfig, RetryConfig, VaultConfig } from './types.js';
import { akvCommandName } from '../command-name.js';
import { isOneOf, isRecord } from '../guards.js';

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error'] as const;
export const DEFAULT_DEADLINE_MS = 10_000;
export const DEFAULT_KEY_CACHE_TTL_MS = 5 * 60_000;
export const DEFAULT_RETRY: RetryConfig = {
  maxRetries: 5,
  baseDelayMs: 250,
  maxDelayMs: 8_000,
  budgetPercent: 20,
  budgetMinRetries: 10,
};
/** The agent's limits (docs/agent.md, "Limits"; packaging/systemd/akv-agent.service sizes itself on them). */
export const DEFAULT_LIMITS = {
  maxClients: 1024,
  clientIdleTimeoutMs: 5 * 60_000,
  maxInFlight: 512,
  maxInFlightPerClient: 1024,
} as const;
export type AgentLimits = { -readonly [K in keyof typeof DEFAULT_LIMITS]: number };

type Env = Record<string, string | undefined>;

/** The agent socket used when neither the config nor AKV_AGENT_SOCKET names one. */
export function defaultSocketPath(env: Env = process.env): string {
  const runtimeDir = env.XDG_RUNTIME_DIR;
  if (runtimeDir) return join(runtimeDir, 'akv', 'agent.sock');
  const uid = process.getuid?.() ?? 0;
  if (uid === 0) return '/run/akv/agent.sock';
  return `/tmp/akv-${uid}/agent.sock`;
}

/** The config files looked at, in order, when no path is given (AKV_CONFIG unset). */
export function defaultConfigCandidates(env: Env = process.env): string[] {
  const configHome = env.XDG_CONFIG_HOME || join(env.HOME || homedir(), '.config');
  return [join(configHome, 'akv', 'config.json'), '/etc/akv/config.json'];
}

/** Which file to read: an explicit path or AKV_CONFIG must exist; the default places may not. */
export function findConfigFile(path?: string, env: Env = process.env): string | undefined {
  const explicit = path ?? (env.AKV_CONFIG || undefined);
  if (explicit !== undefined) {
    if (!existsSync(explicit)) {
      const source = path !== undefined ? 'the config file' : 'AKV_CONFIG';
      throw new AkvError(
        'BAD_REQUEST',
        `${source} ${explicit} does not exist`,
        `create it (see docs/configuration.md) or point AKV_CONFIG at an existing file; \`${akvCommandName()} dev up\` writes one for the emulator`,
      );
    }
    return resolve(explicit);
  }
  return defaultConfigCandidates(env).find((p) => existsSync(p));
}

export function defaultConfig(env: Env = process.env): AkvConfig {
  return {
    socket: defaultSocketPath(env),
    vaults: {},
    credential: { type: 'default' },
    deadlineMs: DEFAULT_DEADLINE_MS,
    keyCacheTtlMs: DEFAULT_KEY_CACHE_TTL_MS,
    log: { level: 'info' },
    retry: { ...DEFAULT_RETRY },
    ...DEFAULT_LIMITS,
  };
}

/** The limits of a config, defaults filled in (hand-built configs may leave them out). */
export function agentLimits(config: AkvConfig): AgentLimits {
  return {
    maxClients: config.maxClients ?? DEFAULT_LIMITS.maxClients,
    clientIdleTimeoutMs: config.clientIdleTimeoutMs ?? DEFAULT_LIMITS.clientIdleTimeoutMs,
    maxInFlight: config.maxInFlight ?? DEFAULT_LIMITS.maxInFlight,
    maxInFlightPerClient: config.maxInFlightPerClient ?? DEFAULT_LIMITS.maxInFlightPerClient,
  };
}

/**
 * Loads, validates and completes the configuration. Throws AkvError('BAD_REQUEST') with the file
 * path and the offending field when the file is unreadable, not JSON, or not valid.
 */
export function loadConfig(
  path?: string,
  env: Env = process.env,
  options: LoadOptions = {},
): AkvConfig {
  const file = findConfigFile(path, env);
  const config = defaultConfig(env);
  if (file !== undefined) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      throw new AkvError(
        'BAD_REQUEST',
        `cannot read config file ${file}: ${errorMessage(err)}`,
        'check its permissions',
      );
    }
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch (err) {
      throw new AkvError(
        'BAD_REQUEST',
        `config file ${file} is not valid JSON: ${errorMessage(err)}`,
        'fix the syntax (see docs/configuration.md)',
      );
    }
    applyFile(config, raw, file);
    config.path = file;
  }
  applyEnv(config, env, options);
  return config;
}

/** Parses a config object that did not come from a file (tests, `dev up`); same rules. */
export function parseConfigObject(
  raw: unknown,
  origin = '<inline config>',
  env: Env = process.env,
): AkvConfig {
  const config = defaultConfig(env);
  applyFile(config, raw, origin);
  applyEnv(config, env);
  return config;
}

/**
 * The numbers of the original provider (microsoft/AzureKeyVaultManagedHSMEngine: its README and
 * its C provider's LogLevel_* constants): 0 error, 1 info, 2 debug, 3 trace; larger numbers log
 * everything there too, so they are trace here.
 */
const NUMERIC_LOG_LEVELS: readonly AkvConfig['log']['level'][] = [
  'error',
  'info',
  'debug',
  'trace',
];

/** AKV_LOG_LEVEL's value as a level: a name (`debug`) or the original provider's number (`3`). */
export function parseLogLevel(text: string): AkvConfig['log']['level'] | undefined {
  const word = text.trim().toLowerCase();
  if (isOneOf(LOG_LEVELS, word)) return word;
  if (/^\d{1,3}$/.test(word)) return NUMERIC_LOG_LEVELS[Math.min(Number(word), 3)];
  return undefined;
}

export interface LoadOptions {
  /**
   * The provider started this agent (`akv agent --autostarted`): the environment is the user's
   * OpenSSL program's, so AKV_LOG_FILE is the provider's text log and not this agent's (the
   * provider points the agent's output at agent.log beside its socket), and a value the agent
   * cannot use becomes a warning instead of stopping the agent (docs/migrating.md).
   */
  autostarted?: boolean;
}

function applyEnv(config: AkvConfig, env: Env, options: LoadOptions = {}): void {
  if (env.AKV_AGENT_SOCKET) config.socket = env.AKV_AGENT_SOCKET;
  if (env.AKV_LOG_FILE && !options.autostarted) config.log.file = env.AKV_LOG_FILE;
  if (env.AKV_LOG_LEVEL) {
    const level = parseLogLevel(env.AKV_LOG_LEVEL);
    if (level !== undefined) config.log.level = level;
    else if (options.autostarted)
      (config.warnings ??= []).push(
        `AKV_LOG_LEVEL=${env.AKV_LOG_LEVEL} is not a log level (one of ${LOG_LEVELS.join(', ')} or 0-3); logging at ${config.log.level}`,
      );
    else
      throw new AkvError(
        'BAD_REQUEST',
        `AKV_LOG_LEVEL=${env.AKV_LOG_LEVEL} is not a log level`,
        `use one of ${LOG_LEVELS.join(', ')}, or the original provider's numbers 0 (error) to 3 (trace)`,
      );
  }
}

/** A tiny strict reader: every access names the field so errors can say exactly what is wrong. */
export class FieldReader {
  constructor(
    private readonly file: string,
    private readonly obj: Record<string, unknown>,
    private readonly prefix: string,
  ) {}

  static root(file: string, raw: unknown): FieldReader {
    if (!isRecord(raw)) throw fieldError(file, '(top level)', 'must be a JSON object');
    return new FieldReader(file, raw, '');
  }

  name(key: string): string {
    return this.prefix ? `${this.prefix}.${key}` : key;
  }

  rejectUnknown(allowed: readonly string[]): void {
    for (const key of Object.keys(this.obj)) {
      if (!allowed.includes(key)) {
        throw fieldError(
          this.file,
          this.name(key),
          `is not a known setting (known here: ${allowed.join(', ')})`,
        );
      }
    }
  }

  has(key: string): boolean {
    return this.obj[key] !== undefined;
  }

  string(key: string): string | undefined {
    const v = this.obj[key];
    if (v === undefined) return undefined;
    if (typeof v !== 'string' || v.length === 0)
      throw fieldError(this.file, this.name(key), 'must be a non-empty string');
    return v;
  }

  boolean(key: string): boolean | undefined {
    const v = this.obj[key];
    if (v === undefined) return undefined;
    if (typeof v !== 'boolean')
      throw fieldError(this.file, this.name(key), 'must be true or false');
    return v;
  }

  integer(key: string, min: number, max: number): number | undefined {
    const v = this.obj[key];
    if (v === undefined) return undefined;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
      throw fieldError(this.file, this.name(key), `must be an integer from ${min} to ${max}`);
    }
    return v;
  }

  oneOf<T extends string>(key: string, allowed: readonly T[]): T | undefined {
    const v = this.obj[key];
    if (v === undefined) return undefined;
    if (!isOneOf(allowed, v)) {
      throw fieldError(
        this.file,
        this.name(key),
        `must be one of ${allowed.map((a) => JSON.stringify(a)).join(', ')}`,
      );
    }
    return v;
  }

  object(key: string): FieldReader | undefined {
    const v = this.obj[key];
    if (v === undefined) return undefined;
    if (!isRecord(v)) throw fieldError(this.file, this.name(key), 'must be a JSON object');
    return new FieldReader(this.file, v, this.name(key));
  }

  /** The INDEXth element of the list KEY, which must be an object (named `key[index]`). */
  element(key: string, index: number): FieldReader {
    const list = this.obj[key];
    const v: unknown = Array.isArray(list) ? list[index] : undefined;
    const name = `${this.name(key)}[${index}]`;
    if (!isRecord(v)) throw fieldError(this.file, name, 'must be a JSON object');
    return new FieldReader(this.file, v, name);
  }

  /** The raw value of KEY (for list readers that check each element themselves). */
  raw(key: string): unknown {
    return this.obj[key];
  }

  keys(): string[] {
    return Object.keys(this.obj);
  }

  fail(key: string, problem: string): never {
    throw fieldError(this.file, this.name(key), problem);
  }
}

function fieldError(file: string, field: string, problem: string): AkvError {
  return new AkvError(
    'BAD_REQUEST',
    `config ${file}: field "${field}" ${problem}`,
    'fix the config file (see docs/configuration.md)',
  );
}

const TOP_LEVEL_KEYS = [
  '$schema',
  'socket',
  'socketGroup',
  'vaults',
  'credential',
  'deadlineMs',
  'keyCacheTtlMs',
  'log',
  'metricsListen',
  'metricsDetail',
  'retry',
  'maxClients',
  'clientIdleTimeoutMs',
  'maxInFlight',
  'maxInFlightPerClient',
  'policy',
] as const;

const VAULT_NAME = /^[A-Za-z0-9-]{3,24}$/;
const KEY_NAME = /^[A-Za-z0-9-]{1,127}$/;

function applyFile(config: AkvConfig, raw: unknown, file: string): void {
  const r = FieldReader.root(file, raw);
  r.rejectUnknown(TOP_LEVEL_KEYS);
  const baseDir = file.startsWith('<') ? process.cwd() : dirname(file);

  const socket = r.string('socket');
  if (socket !== undefined) config.socket = resolve(baseDir, socket);
  const group = r.string('socketGroup');
  if (group !== undefined) config.socketGroup = group;

  const vaults = r.object('vaults');
  if (vaults) readVaults(vaults, baseDir, config);

  const cred = r.object('credential');
  if (cred) config.credential = readCredential(cred);

  config.deadlineMs = r.integer('deadlineMs', 100, 600_000) ?? config.deadlineMs;
  config.keyCacheTtlMs = r.integer('keyCacheTtlMs', 0, 7 * 24 * 3600_000) ?? config.keyCacheTtlMs;
  readLimits(r, config);

  const log = r.object('log');
  if (log) {
    log.rejectUnknown(['level', 'file']);
    config.log.level = log.oneOf('level', LOG_LEVELS) ?? config.log.level;
    const logFile = log.string('file');
    if (logFile !== undefined) config.log.file = resolve(baseDir, logFile);
  }

  const metrics = r.string('metricsListen');
  if (metrics !== undefined) config.metricsListen = metricsListen(r, metrics);
  config.metricsDetail = r.oneOf('metricsDetail', ['loopback', 'everyone']) ?? config.metricsDetail;

  const policy = r.object('policy');
  if (policy) config.policy = readPolicy(policy);

  const retry = r.object('retry');
  if (retry) config.retry = readRetry(retry, config.retry ?? { ...DEFAULT_RETRY });
}

function readVaults(vaults: FieldReader, baseDir: string, config: AkvConfig): void {
  for (const name of vaults.keys()) {
    if (!VAULT_NAME.test(name)) {
      vaults.fail(
        name,
        'is not a valid HSM/vault name (3-24 characters: letters, digits, hyphens)',
      );
    }
    const v = vaults.object(name);
    if (v) config.vaults[name] = readVault(v, baseDir);
  }
}

/** HOST:PORT, or a port alone ("9464" or ":9464"), which binds loopback: other hosts see nothing unless asked for. */
function metricsListen(r: FieldReader, metrics: string): string {
  const portOnly = /^:?(\d{1,5})$/.exec(metrics);
  if (
    !portOnly &&
    !/^[^\s:]+:\d{1,5}$/.test(metrics) &&
    !/^\[[0-9a-fA-F:]+\]:\d{1,5}$/.test(metrics)
  ) {
    r.fail('metricsListen', 'must be HOST:PORT or PORT, e.g. "127.0.0.1:9464" or "9464"');
  }
  return portOnly ? `127.0.0.1:${portOnly[1]}` : metrics;
}

function readRetry(retry: FieldReader, current: RetryConfig): RetryConfig {
  retry.rejectUnknown([
    'maxRetries',
    'baseDelayMs',
    'maxDelayMs',
    'budgetPercent',
    'budgetMinRetries',
  ]);
  return {
    maxRetries: retry.integer('maxRetries', 0, 20) ?? current.maxRetries,
    baseDelayMs: retry.integer('baseDelayMs', 1, 60_000) ?? current.baseDelayMs,
    maxDelayMs: retry.integer('maxDelayMs', 1, 600_000) ?? current.maxDelayMs,
    budgetPercent: retry.integer('budgetPercent', 0, 100) ?? current.budgetPercent,
    budgetMinRetries: retry.integer('budgetMinRetries', 0, 100_000) ?? current.budgetMinRetries,
  };
}

function readLimits(r: FieldReader, config: AkvConfig): void {
  config.maxClients = r.integer('maxClients', 1, 1_000_000) ?? config.maxClients;
  const idle = r.integer('clientIdleTimeoutMs', 0, 7 * 24 * 3600_000);
  if (idle !== undefined && idle > 0 && idle < 1000)
    r.fail('clientIdleTimeoutMs', 'must be 0 (never) or at least 1000');
  config.clientIdleTimeoutMs = idle ?? config.clientIdleTimeoutMs;
  config.maxInFlight = r.integer('maxInFlight', 1, 100_000) ?? config.maxInFlight;
  config.maxInFlightPerClient =
    r.integer('maxInFlightPerClient', 1, 1_000_000) ?? config.maxInFlightPerClient;
}

function readVault(v: FieldReader, baseDir: string): VaultConfig {
  v.rejectUnknown(['endpoint', 'caFile', 'disableChallengeResourceVerification', 'certificates']);
  const out: VaultConfig = {};
  const endpoint = v.string('endpoint');
  if (endpoint !== undefined) {
    let url: URL;
    try {
      url = new URL(endpoint);
    } catch {
      v.fail('endpoint', `is not a URL: ${endpoint}`);
    }
    if (url.protocol !== 'https:')
      v.fail('endpoint', 'must be an https:// URL (the Azure SDK refuses plain http)');
    out.endpoint = endpoint.replace(/\/+$/, '');
  }
  const ca = v.string('caFile');
  if (ca !== undefined) out.caFile = isAbsolute(ca) ? ca : resolve(baseDir, ca);
  const disable = v.boolean('disableChallengeResourceVerification');
  if (disable !== undefined) out.disableChallengeResourceVerification = disable;
  const certs = v.object('certificates');
  if (certs) {
    out.certificates = {};
    for (const key of certs.keys()) {
      if (!KEY_NAME.test(key))
        certs.fail(key, 'is not a valid key name (1-127 characters: letters, digits, hyphens)');
      const file = certs.string(key) ?? certs.fail(key, 'must name a certificate file');
      out.certificates[key] = isAbsolute(file) ? file : resolve(baseDir, file);
    }
  }
  return out;
}

function readCredential(c: FieldReader): CredentialConfig {
  c.rejectUnknown(['type', 'token']);
  const type = c.oneOf('type', ['default', 'static'] as const) ?? 'default';
  const token = c.string('token');
  if (type === 'static' && token === undefined && !c.has('token')) {
    // The emulator accepts any non-empty bearer token, so a static credential needs no token of
    // its own; "dev" is the documented default.
    return { type, token: 'dev' };
  }
  if (type === 'default' && token !== undefined) {
    c.fail('token', 'is only used with "type": "static"');
  }
  return token === undefined ? { type } : { type, token };
}
