/**
 * Starts the real `bin/akv emulator` process for a test (free port, temporary state directory)
 * and gives official Azure SDK clients configured for it, plus the admin API (faults, stats).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  CryptographyClient,
  KeyClient,
  type CryptographyClientOptions,
  type KeyClientOptions,
  type KeyVaultKey,
} from '@azure/keyvault-keys';

/** Repository root (this file runs as dist/test/helpers/emulator.js). */
export const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const AKV_BIN = join(REPO_ROOT, 'bin', 'akv');
export const DEFAULT_TOKEN = 'test-token';

export interface EmulatorFaultSpec {
  mode: 'throttle' | 'throttle-retry-after' | 'error500' | 'error503' | 'reset' | 'hang';
  count?: number;
  retryAfterSeconds?: number;
  operations?: string[];
}

export interface EmulatorStats {
  requests: Record<string, number>;
  total: number;
}

export interface RawResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  /** The body parsed as JSON (undefined when empty or not JSON). */
  json: unknown;
}

export interface RawRequestOptions {
  /** Raw body text (sent as is) or an object (sent as JSON). */
  body?: string | Buffer | object;
  /** Bearer token to send; null sends no Authorization header. Default: the helper's token. */
  token?: string | null;
  headers?: Record<string, string>;
  /** Give up (reject with an Error whose code is 'ETIMEDOUT') after this many ms without an answer. */
  timeoutMs?: number;
}

export interface RunningEmulator {
  url: string;
  port: number;
  stateDir: string;
  caFile: string;
  caPem: string;
  pid: number;
  /** Token the helper's clients send (the --token value when one was given). */
  token: string;
  keyClient(options?: KeyClientOptions): KeyClient;
  cryptoClient(
    keyIdOrKey: string | KeyVaultKey,
    options?: CryptographyClientOptions,
  ): CryptographyClient;
  setFaults(fault: EmulatorFaultSpec): Promise<void>;
  clearFaults(): Promise<void>;
  stats(): Promise<EmulatorStats>;
  resetStats(): Promise<void>;
  setLatency(ms: number): Promise<void>;
  /** One HTTPS request to the emulator (path includes the query), for cases the SDK cannot make. */
  request(method: string, path: string, options?: RawRequestOptions): Promise<RawResponse>;
  /** SIGTERM, wait for exit; removes the state directory when the helper created it. */
  stop(): Promise<void>;
  /** Sends a signal (default SIGKILL) and waits for the process to end; keeps the state directory. */
  kill(signal?: NodeJS.Signals): Promise<void>;
}

export interface StartEmulatorOptions {
  latencyMs?: number;
  /** Passed as --token; the clients then send it. */
  token?: string;
  /** Re-use a state directory (e.g. to restart after kill); default: a new temporary one. */
  stateDir?: string;
  /** More `akv emulator` options, e.g. ['--retention-days', '90']. */
  extraArgs?: string[];
}

const children = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of children) child.kill('SIGKILL');
});

function waitForExit(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

function waitForReady(child: ChildProcess, stderr: () => string): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`emulator did not start within 30 s; stderr: ${stderr()}`));
    }, 30_000);
    child.stdout?.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const match = /^akv emulator listening on (https:\/\/\S+)$/m.exec(out);
      if (match) {
        clearTimeout(timer);
        resolve(match[1] as string);
      }
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(
        new Error(`emulator exited (${code ?? signal}) before it was ready; stderr: ${stderr()}`),
      );
    });
  });
}

export async function startEmulator(options: StartEmulatorOptions = {}): Promise<RunningEmulator> {
  const ownDir = options.stateDir === undefined;
  const stateDir = options.stateDir ?? (await mkdtemp(join(tmpdir(), 'akv-emulator-test-')));
  const args = ['emulator', '--listen', '127.0.0.1:0', '--state-dir', stateDir];
  if (options.latencyMs !== undefined) args.push('--latency-ms', String(options.latencyMs));
  if (options.token !== undefined) args.push('--token', options.token);
  if (options.extraArgs) args.push(...options.extraArgs);
  const child = spawn(AKV_BIN, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  child.once('exit', () => children.delete(child));
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const url = await waitForReady(child, () => stderr);
  const ready = JSON.parse(await readFile(join(stateDir, 'emulator.json'), 'utf8')) as {
    url: string;
    pid: number;
    ca: string;
  };
  const caPem = await readFile(ready.ca, 'utf8');
  const token = options.token ?? DEFAULT_TOKEN;
  const credential = {
    getToken: () => Promise.resolve({ token, expiresOnTimestamp: Date.now() + 3600_000 }),
  };
  const common = { tlsOptions: { ca: caPem }, disableChallengeResourceVerification: true };

  const request = (
    method: string,
    path: string,
    opts: RawRequestOptions = {},
  ): Promise<RawResponse> =>
    new Promise((resolve, reject) => {
      const body =
        opts.body === undefined
          ? undefined
          : typeof opts.body === 'string' || Buffer.isBuffer(opts.body)
            ? opts.body
            : JSON.stringify(opts.body);
      const headers: Record<string, string> = { ...(opts.headers ?? {}) };
      const sendToken = opts.token === undefined ? token : opts.token;
      if (sendToken !== null) headers.Authorization = `Bearer ${sendToken}`;
      if (body !== undefined) {
        headers['Content-Length'] = String(Buffer.byteLength(body));
        headers['Content-Type'] ??= 'application/json';
      }
      const req = httpsRequest(
        new URL(path, url),
        { method, headers, ca: caPem, agent: false },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            let json: unknown;
            try {
              json = text ? (JSON.parse(text) as unknown) : undefined;
            } catch {
              json = undefined;
            }
            resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json });
          });
          res.on('error', reject);
        },
      );
      req.on('error', reject);
      if (opts.timeoutMs !== undefined) {
        req.setTimeout(opts.timeoutMs, () => {
          req.destroy(
            Object.assign(new Error('no answer from the emulator'), { code: 'ETIMEDOUT' }),
          );
        });
      }
      req.end(body);
    });

  const admin = async (method: string, path: string, body?: object): Promise<unknown> => {
    const res = await request(method, path, { body, token: null });
    if (res.status !== 200)
      throw new Error(`emulator admin ${method} ${path}: ${res.status} ${res.text}`);
    return res.json;
  };

  const kill = async (signal: NodeJS.Signals = 'SIGKILL'): Promise<void> => {
    const exited = waitForExit(child);
    child.kill(signal);
    await exited;
  };

  return {
    url,
    port: Number(new URL(url).port),
    stateDir,
    caFile: ready.ca,
    caPem,
    pid: ready.pid,
    token,
    keyClient: (extra?: KeyClientOptions) =>
      new KeyClient(url, credential, { ...common, ...extra }),
    cryptoClient: (keyIdOrKey: string | KeyVaultKey, extra?: CryptographyClientOptions) =>
      typeof keyIdOrKey === 'string'
        ? new CryptographyClient(keyIdOrKey, credential, { ...common, ...extra })
        : new CryptographyClient(keyIdOrKey, credential, { ...common, ...extra }),
    setFaults: async (fault) => {
      await admin('POST', '/_emulator/faults', fault);
    },
    clearFaults: async () => {
      await admin('DELETE', '/_emulator/faults');
    },
    stats: async () => (await admin('GET', '/_emulator/stats')) as EmulatorStats,
    resetStats: async () => {
      await admin('POST', '/_emulator/stats/reset');
    },
    setLatency: async (ms: number) => {
      await admin('POST', '/_emulator/latency', { ms });
    },
    request,
    stop: async () => {
      await kill('SIGTERM');
      if (ownDir) await rm(stateDir, { recursive: true, force: true });
    },
    kill,
  };
}

/**
 * Settles a fresh KeyClient's authentication challenge with one body-less request. The SDK holds
 * back request bodies until the 401 challenge is answered, and several concurrent first requests
 * on a fresh client can go out with an empty body; call this before creating keys in parallel.
 */
export async function settleChallenge(keys: KeyClient): Promise<void> {
  const page = keys.listPropertiesOfKeys().byPage({ maxPageSize: 1 });
  await page.next();
}

/** The config fields that point akv at a running emulator as HSM `hsmName`. */
export function emulatorConfig(
  emulator: RunningEmulator,
  hsmName: string,
): { vaults: Record<string, object>; credential: { type: 'static'; token: string } } {
  return {
    vaults: {
      [hsmName]: {
        endpoint: emulator.url,
        caFile: emulator.caFile,
        disableChallengeResourceVerification: true,
      },
    },
    credential: { type: 'static', token: emulator.token },
  };
}
