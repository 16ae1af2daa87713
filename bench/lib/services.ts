/**
 * The processes a bench run measures, started the way a user starts them: `bin/akv emulator`
 * and `bin/akv agent` (own config file, socket and log in the run's directory). Also the
 * emulator's admin API (latency, request counts) and key import through `bin/akv key import`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runChecked } from './proc.js';

/** Repository root (this file runs as dist/bench/lib/services.js). */
export const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const AKV_BIN = join(REPO_ROOT, 'bin', 'akv');
export const PROVIDER_DIR = join(REPO_ROOT, 'provider', 'build');
const CLI_MAIN = join(REPO_ROOT, 'dist', 'src', 'cli', 'main.js');

/** Environment variables from the caller's shell that would point the bench elsewhere. */
const FOREIGN_ENV = [
  'AKV_CONFIG',
  'AKV_AGENT_SOCKET',
  'AKV_LOG_FILE',
  'AKV_LOG_LEVEL',
  'AZURE_CLI_ACCESS_TOKEN',
  'OPENSSL_CONF',
  'OPENSSL_MODULES',
  'NODE_EXTRA_CA_CERTS',
];

export function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const name of FOREIGN_ENV) delete env[name];
  return { ...env, ...extra };
}

export interface Daemon {
  pid: number;
  /** SIGTERM and wait (SIGKILL after 5 s). */
  stop(): Promise<void>;
}

function startDaemon(
  command: string,
  args: string[],
  readyLine: RegExp,
  env: NodeJS.ProcessEnv,
  what: string,
): Promise<{ daemon: Daemon; match: RegExpExecArray }> {
  const child: ChildProcess = spawn(command, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.stderr?.on('data', (d: Buffer) => {
    err = (err + d.toString()).slice(-4000);
  });
  const stop = async (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  };
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      void stop();
      reject(new Error(`${what} did not start within 30 s; stderr: ${err}`));
    }, 30_000);
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      const match = readyLine.exec(out);
      if (match) {
        clearTimeout(timer);
        resolve({ daemon: { pid: child.pid ?? 0, stop }, match });
      }
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`${what} exited (${code ?? signal}) before it was ready; stderr: ${err}`));
    });
  });
}

export interface EmulatorStats {
  requests: Record<string, number>;
  total: number;
}

export class Emulator {
  private constructor(
    readonly daemon: Daemon,
    readonly url: string,
    readonly caFile: string,
    private readonly caPem: string,
  ) {}

  static async start(dir: string): Promise<Emulator> {
    const stateDir = join(dir, 'emulator');
    const { daemon, match } = await startDaemon(
      AKV_BIN,
      ['emulator', '--listen', '127.0.0.1:0', '--state-dir', stateDir],
      /^akv emulator listening on (https:\/\/\S+)$/m,
      cleanEnv(),
      'the emulator',
    );
    const ready = JSON.parse(readFileSync(join(stateDir, 'emulator.json'), 'utf8')) as {
      ca: string;
    };
    return new Emulator(daemon, match[1] as string, ready.ca, readFileSync(ready.ca, 'utf8'));
  }

  get pid(): number {
    return this.daemon.pid;
  }

  /** One HTTPS request to the admin API (no token, not counted, no latency). */
  private admin(method: string, path: string, body?: object): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const text = body === undefined ? undefined : JSON.stringify(body);
      const req = httpsRequest(
        new URL(path, this.url),
        {
          method,
          ca: this.caPem,
          agent: false,
          headers: text
            ? { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) }
            : {},
        },
        (res) => {
          let data = '';
          res.setEncoding('utf8').on('data', (d: string) => (data += d));
          res.on('end', () => {
            if (res.statusCode !== 200)
              reject(new Error(`emulator admin ${method} ${path}: ${res.statusCode} ${data}`));
            else resolve(data ? (JSON.parse(data) as unknown) : undefined);
          });
        },
      );
      req.on('error', reject);
      req.end(text);
    });
  }

  async setLatency(ms: number): Promise<void> {
    await this.admin('POST', '/_emulator/latency', { ms });
  }

  async stats(): Promise<EmulatorStats> {
    return (await this.admin('GET', '/_emulator/stats')) as EmulatorStats;
  }

  async resetStats(): Promise<void> {
    await this.admin('POST', '/_emulator/stats/reset');
  }

  get ca(): string {
    return this.caPem;
  }

  stop(): Promise<void> {
    return this.daemon.stop();
  }
}

export interface AgentOptions {
  /** Name for the agent's files, so several agents can share the run directory. */
  label: string;
  hsmName: string;
  /** The credential block of the config (default: a static token the emulator accepts). */
  credential?: { type: 'static'; token: string } | { type: 'default' };
  /** Extra environment (PATH for a fake az, AZURE_CLI_ACCESS_TOKEN). */
  env?: Record<string, string>;
  /**
   * How the agent trusts the emulator's CA. `env` (default): NODE_EXTRA_CA_CERTS, so the SDK runs
   * with its default TLS settings, as against Azure. `config`: the vault's `caFile`, as
   * `akv dev up` writes it (the SDK then gets its own TLS options; see docs/performance.md).
   */
  caVia?: 'env' | 'config';
  /** Options for node itself, e.g. ['--cpu-prof', '--cpu-prof-dir=DIR']. */
  nodeArgs?: string[];
}

export class Agent {
  private constructor(
    readonly daemon: Daemon,
    readonly socket: string,
    readonly configFile: string,
    readonly logFile: string,
    /** What a CLI process needs to reach the emulator with this agent's config. */
    private readonly trustEnv: Record<string, string>,
  ) {}

  static async start(dir: string, emulator: Emulator, options: AgentOptions): Promise<Agent> {
    const home = join(dir, `agent-${options.label}`);
    mkdirSync(home, { recursive: true, mode: 0o700 });
    const socket = join(home, 'sock', 'agent.sock');
    const configFile = join(home, 'akv.json');
    const caVia = options.caVia ?? 'env';
    const config = {
      socket,
      vaults: {
        [options.hsmName]: {
          endpoint: emulator.url,
          ...(caVia === 'config' ? { caFile: emulator.caFile } : {}),
          disableChallengeResourceVerification: true,
        },
      },
      credential: options.credential ?? { type: 'static', token: 'bench-token' },
      // The product's default level: one audit line per private-key operation is part of the cost.
      log: { level: 'info', file: join(home, 'agent.log') },
    };
    writeFileSync(configFile, JSON.stringify(config, null, 2));
    // With node options (a CPU profile), node runs the CLI directly instead of through bin/akv.
    const { daemon } = await startDaemon(
      options.nodeArgs ? process.execPath : AKV_BIN,
      options.nodeArgs
        ? [...options.nodeArgs, CLI_MAIN, 'agent', '--config', configFile]
        : ['agent', '--config', configFile],
      /^akv agent listening on /m,
      cleanEnv({ ...caEnv(emulator, caVia), ...options.env }),
      `the agent (${options.label})`,
    );
    return new Agent(daemon, socket, configFile, join(home, 'agent.log'), caEnv(emulator, caVia));
  }

  get pid(): number {
    return this.daemon.pid;
  }

  /** Current size of the agent's log file, to read only what a measurement adds. */
  logSize(): number {
    try {
      return statSync(this.logFile).size;
    } catch {
      return 0;
    }
  }

  /**
   * Handler latencies (µs) of the sign operations the agent's audit log recorded after byte
   * `offset`: the time from a parsed request to its answer, HSM call included, socket I/O not.
   */
  auditedSignLatenciesUs(offset: number): number[] {
    let text = '';
    try {
      text = readFileSync(this.logFile).subarray(offset).toString('utf8');
    } catch {
      return [];
    }
    const out: number[] = [];
    for (const line of text.split('\n')) {
      if (!line.includes('"audit":true')) continue;
      try {
        const entry = JSON.parse(line) as { op?: string; latency_ms?: number };
        if (entry.op === 'sign' && typeof entry.latency_ms === 'number')
          out.push(entry.latency_ms * 1000);
      } catch {
        // a line still being written
      }
    }
    return out;
  }

  /** Environment that makes `openssl -provider akv_provider` reach this agent. */
  providerEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
    return cleanEnv({
      ...this.trustEnv,
      OPENSSL_MODULES: PROVIDER_DIR,
      AKV_AGENT_SOCKET: this.socket,
      AKV_CONFIG: this.configFile,
      ...extra,
    });
  }

  stop(): Promise<void> {
    return this.daemon.stop();
  }
}

function caEnv(emulator: Emulator, caVia: 'env' | 'config'): Record<string, string> {
  return caVia === 'env' ? { NODE_EXTRA_CA_CERTS: emulator.caFile } : {};
}

export type KeySpec =
  | { name: string; kty: 'RSA'; bits: 2048 | 3072 | 4096 }
  | { name: string; kty: 'EC'; curve: 'P-256' | 'P-384' };

export interface BenchKey {
  spec: KeySpec;
  /** managedhsm:<hsm>:<name> */
  uri: string;
  /** The same key material as a local PEM file (for the local-key baselines). */
  pemFile: string;
  /** Azure's algorithm name for a SHA-256 signature with this key. */
  alg: 'RS256' | 'ES256' | 'ES384';
  version: string;
}

/**
 * Makes a key locally with `openssl genpkey` and imports it into the emulator with
 * `bin/akv key import`, so that the HSM key and the local PEM hold the same key material.
 */
export async function importKey(
  dir: string,
  agent: Agent,
  hsmName: string,
  spec: KeySpec,
): Promise<BenchKey> {
  const keyDir = join(dir, 'keys');
  mkdirSync(keyDir, { recursive: true, mode: 0o700 });
  const pemFile = join(keyDir, `${spec.name}.pem`);
  const genArgs =
    spec.kty === 'RSA'
      ? ['genpkey', '-algorithm', 'RSA', '-pkeyopt', `rsa_keygen_bits:${spec.bits}`]
      : ['genpkey', '-algorithm', 'EC', '-pkeyopt', `ec_paramgen_curve:${spec.curve}`];
  await runChecked('openssl', [...genArgs, '-out', pemFile], { env: cleanEnv() });
  const imported = await runChecked(
    AKV_BIN,
    [
      'key',
      'import',
      '--hsm-name',
      hsmName,
      '--name',
      spec.name,
      '--pem-file',
      pemFile,
      '--ops',
      'sign',
      'verify',
    ],
    { env: agent.providerEnv() },
  );
  const kid = /"kid":\s*"([^"]+)"/.exec(imported.stdout)?.[1] ?? '';
  const version = kid.split('/').pop() ?? '';
  return {
    spec,
    uri: `managedhsm:${hsmName}:${spec.name}`,
    pemFile,
    alg: spec.kty === 'RSA' ? 'RS256' : spec.curve === 'P-256' ? 'ES256' : 'ES384',
    version,
  };
}

/** A short label for tables: "RSA 3072", "EC P-256". */
export function keyLabel(spec: KeySpec): string {
  return spec.kty === 'RSA' ? `RSA ${spec.bits}` : `EC ${spec.curve}`;
}

/**
 * An openssl.cnf for a bench TLS server: `default`, then akv_provider (this build's module) with
 * the agent socket. `autostart = no` for servers that must never wait for an agent to start.
 */
export function providerOpensslCnf(agent: Agent, options: { autostart?: boolean } = {}): string {
  return [
    'openssl_conf = openssl_init',
    '[openssl_init]',
    'providers = provider_sect',
    '[provider_sect]',
    'default = default_sect',
    'akv_provider = akv_sect',
    '[default_sect]',
    'activate = 1',
    '[akv_sect]',
    `module = ${join(PROVIDER_DIR, 'akv_provider.so')}`,
    `agent_socket = ${agent.socket}`,
    ...(options.autostart === false ? ['autostart = no'] : []),
    'activate = 1',
    '',
  ].join('\n');
}
