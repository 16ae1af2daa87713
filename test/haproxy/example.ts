/**
 * Drives examples/haproxy from the tests as a person does: its scripts with a settings file of
 * the test's own (free ports, a private state directory, a unique HSM name). Also a TLS client
 * that makes many full handshakes at once (node:tls, no session reuse) and the HAProxy process's
 * open fds.
 */
import { readFileSync, readdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import * as tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import {
  makeTestDir as makeDir,
  mustSucceed,
  readPid,
  runExampleScript,
  uniqueHsmName,
  type ScriptResult,
} from '../helpers/example-scripts.js';
import { matrixExampleEnv } from '../provider/openssl-env.js';

export {
  processAlive,
  readPid,
  uniqueHsmName,
  type ScriptResult,
} from '../helpers/example-scripts.js';

export const REPO_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const EXAMPLE_DIR = join(REPO_DIR, 'examples', 'haproxy');

/** Runs one script of examples/haproxy, without the caller's akv/OpenSSL variables. */
export function runScript(script: string, args: string[]): Promise<ScriptResult> {
  return runExampleScript(EXAMPLE_DIR, script, args, matrixExampleEnv(), ['AKV_HAPROXY_ENV']);
}

/** Fails with the script's whole output when it did not exit 0. */
export async function runStep(script: string, args: string[]): Promise<ScriptResult> {
  return mustSucceed(await runScript(script, args), script, args);
}

export interface HaproxyExample {
  envFile: string;
  stateDir: string;
  rsaPort: number;
  ecPort: number;
  certDir: string;
  providerLog: string;
  haproxyPidFile: string;
  agentPidFile: string;
  devDir: string;
}

export function makeTestDir(label: string): string {
  return makeDir('haproxy', label);
}

export function readExample(envFile: string): HaproxyExample {
  const vars: Record<string, string> = {};
  for (const line of readFileSync(envFile, 'utf8').split('\n')) {
    const m = /^([A-Z][A-Z0-9_]*)=(.*)$/.exec(line);
    if (m) vars[m[1] as string] = m[2] as string;
  }
  const stateDir = vars.STATE_DIR ?? '';
  if (!stateDir) throw new Error(`${envFile} sets no STATE_DIR`);
  return {
    envFile,
    stateDir,
    rsaPort: Number(vars.RSA_PORT),
    ecPort: Number(vars.EC_PORT),
    certDir: join(stateDir, 'certs'),
    providerLog: join(stateDir, 'logs', 'provider.log'),
    haproxyPidFile: join(stateDir, 'dev', 'haproxy.pid'),
    agentPidFile: join(stateDir, 'dev', 'agent.pid'),
    devDir: join(stateDir, 'dev'),
  };
}

/** setup.sh with an emulator latency; call stopExample afterwards (also after a failure). */
export async function setupExample(label: string, latencyMs: number): Promise<HaproxyExample> {
  const envFile = join(makeTestDir(label), '.env');
  await runStep('setup.sh', [
    '--env-file',
    envFile,
    '--hsm-name',
    uniqueHsmName(label),
    '--latency-ms',
    String(latencyMs),
  ]);
  return readExample(envFile);
}

/** start.sh: (re)starts HAProxy with ssl-mode-async on or off, one thread. */
export async function startHaproxy(
  ex: HaproxyExample,
  async: boolean,
  timeoutClientSeconds = 30,
): Promise<number> {
  await runStep('start.sh', [
    '--env-file',
    ex.envFile,
    '--async',
    async ? 'on' : 'off',
    '--nbthread',
    '1',
    '--timeout-client',
    String(timeoutClientSeconds),
  ]);
  return readPid(ex.haproxyPidFile);
}

export async function stopExample(ex: HaproxyExample | undefined): Promise<void> {
  if (!ex) return;
  await runScript('stop.sh', ['--env-file', ex.envFile, '--all']);
  rmSync(dirname(ex.envFile), { recursive: true, force: true });
}

/** Open file descriptors of a process. */
export function fdCount(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

/** Lines of the provider's log that contain `needle`. */
export function logCount(ex: HaproxyExample, needle: string): number {
  let text = '';
  try {
    text = readFileSync(ex.providerLog, 'utf8');
  } catch {
    return 0;
  }
  return text.split('\n').filter((l) => l.includes(needle)).length;
}

export type HandshakeOutcome = { ok: true } | { ok: false; error: string };

/** One full TLS handshake (no session reuse) with the frontend on `port`, verified. */
export function handshake(
  port: number,
  caFile: string,
  timeoutMs = 60_000,
): Promise<HandshakeOutcome> {
  return new Promise((resolve) => {
    const socket = tls.connect({
      host: '127.0.0.1',
      port,
      servername: 'localhost',
      ca: readFileSync(caFile),
    });
    const done = (outcome: HandshakeOutcome): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(outcome);
    };
    const timer = setTimeout(
      () => done({ ok: false, error: `no handshake within ${timeoutMs} ms` }),
      timeoutMs,
    );
    socket.once('secureConnect', () =>
      done(
        socket.authorized ? { ok: true } : { ok: false, error: String(socket.authorizationError) },
      ),
    );
    socket.once('error', (err) => done({ ok: false, error: err.message }));
    socket.once('close', () => done({ ok: false, error: 'closed before the handshake finished' }));
  });
}

/** `n` handshakes at once; resolves with their outcomes and the wall time they took together. */
export async function concurrentHandshakes(
  n: number,
  port: number,
  caFile: string,
): Promise<{ outcomes: HandshakeOutcome[]; ms: number }> {
  const t0 = performance.now();
  const outcomes = await Promise.all(Array.from({ length: n }, () => handshake(port, caFile)));
  return { outcomes, ms: performance.now() - t0 };
}

/** A client that sends its ClientHello and goes away after `afterMs`, mid-handshake. */
export function abandonHandshake(port: number, afterMs: number): Promise<void> {
  return new Promise((resolve) => {
    const socket = tls.connect({
      host: '127.0.0.1',
      port,
      servername: 'localhost',
      rejectUnauthorized: false,
    });
    socket.on('error', () => undefined);
    socket.once('connect', () =>
      setTimeout(() => {
        socket.destroy();
        resolve();
      }, afterMs),
    );
  });
}

export async function waitFor(
  what: string,
  check: () => boolean,
  timeoutMs: number,
): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
