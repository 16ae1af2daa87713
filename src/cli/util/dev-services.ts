/**
 * Starting the background services of `akv dev`: the emulator and the agent as detached
 * processes with logs in DIR, waiting until each is ready; config reloads and latency changes.
 */
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { AgentClient } from '../../client/agent-client.js';
import { AkvError } from '../../errors.js';
import {
  START_TIMEOUT_MS,
  writeJsonAtomic,
  type DevState,
  type Paths,
  type Progress,
} from './dev-state.js';
import { sleep, spawnDetached, stopProcess, tail } from './processes.js';
import { AKV_ROOT } from './provider-location.js';
import { isRecord } from '../../guards.js';

export const MAIN_JS = join(AKV_ROOT, 'dist', 'src', 'cli', 'main.js');

/** Env for the background processes: the caller's akv overrides must not redirect them. */
export function childEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.AKV_CONFIG;
  delete env.AKV_AGENT_SOCKET;
  delete env.AKV_LOG_FILE;
  return env;
}

/** A started `node ARGS`, detached; throws when it could not be spawned at all. */
interface NodeChild {
  pid: number;
  exited: () => string | undefined;
}

function startNode(args: string[], logFile: string): NodeChild {
  const child = spawnDetached([process.execPath, ...args], logFile, childEnv());
  if (child.pid === undefined) throw new Error(`could not start ${args.join(' ')}`);
  return { pid: child.pid, exited: child.exited };
}

export async function startEmulator(
  p: Paths,
  latencyMs: number | undefined,
  progress: Progress,
): Promise<DevState['emulator']> {
  mkdirSync(p.emulatorDir, { recursive: true, mode: 0o700 });
  rmSync(p.emulatorJson, { force: true });
  const args = [MAIN_JS, 'emulator', '--listen', '127.0.0.1:0', '--state-dir', p.emulatorDir];
  if (latencyMs !== undefined) args.push('--latency-ms', String(latencyMs));
  const logStart = fileSize(p.emulatorLog);
  progress.say('starting the emulator ...');
  const child = startNode(args, p.emulatorLog);
  writeFileSync(join(p.dir, 'emulator.pid'), `${child.pid}\n`);
  const ready = await waitUntilReady(
    'emulator',
    child,
    { file: p.emulatorLog, start: logStart },
    'fix the problem above (is `npm run build` done?), then run `akv dev up` again',
    () => {
      try {
        const written: unknown = JSON.parse(readFileSync(p.emulatorJson, 'utf8'));
        if (!isRecord(written) || written.pid !== child.pid) return undefined;
        const { url, ca } = written;
        return typeof url === 'string' && typeof ca === 'string'
          ? { url, pid: child.pid, ca }
          : undefined;
      } catch {
        return undefined; // not written yet
      }
    },
  );
  progress.say(`emulator listening on ${ready.url} (pid ${child.pid})`);
  return { pid: child.pid, url: ready.url, ca: ready.ca, stateDir: p.emulatorDir };
}

/**
 * Polls `ready` every 50 ms until it gives a value. If the child exits first, that is
 * UNAVAILABLE; after START_TIMEOUT_MS the child is stopped and it is TIMEOUT. Both errors quote
 * what the child wrote to its log since `log.start`.
 */
async function waitUntilReady<T>(
  what: string,
  child: NodeChild,
  log: { file: string; start: number },
  fixHint: string,
  ready: () => T | undefined | Promise<T | undefined>,
): Promise<T> {
  const until = Date.now() + START_TIMEOUT_MS;
  while (Date.now() < until) {
    const exit = child.exited();
    if (exit) {
      throw new AkvError(
        'UNAVAILABLE',
        `the ${what} ${exit} before it was ready; ${log.file} says:\n${tail(log.file, 8, log.start)}`,
        fixHint,
      );
    }
    const value = await ready();
    if (value !== undefined) return value;
    await sleep(50);
  }
  await stopProcess(child.pid, 1000);
  throw new AkvError(
    'TIMEOUT',
    `the ${what} did not become ready within ${START_TIMEOUT_MS / 1000} s; ${log.file} says:\n${tail(log.file, 8, log.start)}`,
    'see the log above',
  );
}

export function writeConfig(
  p: Paths,
  emulator: DevState['emulator'],
  hsmNames: string[],
  socketGroup: string | undefined,
): void {
  const vaults: Record<string, unknown> = {};
  for (const name of hsmNames) {
    vaults[name] = {
      endpoint: emulator.url,
      caFile: emulator.ca,
      disableChallengeResourceVerification: true,
    };
  }
  writeJsonAtomic(p.config, {
    socket: p.socket,
    ...(socketGroup === undefined ? {} : { socketGroup }),
    vaults,
    credential: { type: 'static', token: 'dev' },
    log: { level: 'info' },
  });
}

export async function agentAnswers(socket: string): Promise<boolean> {
  if (!existsSync(socket)) return false;
  const client = new AgentClient(socket, { timeoutMs: 2000 });
  try {
    await client.ping();
    return true;
  } catch {
    return false;
  } finally {
    await client.close().catch(() => undefined);
  }
}

export async function startAgent(p: Paths, progress: Progress): Promise<DevState['agent']> {
  const logStart = fileSize(p.agentLog);
  progress.say('starting the agent ...');
  const child = startNode(
    [MAIN_JS, 'agent', '--config', p.config, '--socket', p.socket],
    p.agentLog,
  );
  writeFileSync(join(p.dir, 'agent.pid'), `${child.pid}\n`);
  await waitUntilReady(
    'agent',
    child,
    { file: p.agentLog, start: logStart },
    'fix the problem above, then run `akv dev up` again',
    async () =>
      tail(p.agentLog, 50, logStart).includes(`akv agent listening on ${p.socket}`) &&
      (await agentAnswers(p.socket))
        ? true
        : undefined,
  );
  progress.say(`agent listening on ${p.socket} (pid ${child.pid})`);
  return { pid: child.pid, socket: p.socket };
}

/** SIGHUP, then wait until the agent's log says it reloaded, so the new name works at once. */
export async function reloadAgent(p: Paths, pid: number): Promise<void> {
  const logStart = fileSize(p.agentLog);
  process.kill(pid, 'SIGHUP');
  const until = Date.now() + START_TIMEOUT_MS;
  while (Date.now() < until) {
    const text = tail(p.agentLog, 50, logStart);
    if (text.includes('SIGHUP: configuration reloaded')) return;
    if (text.includes('SIGHUP: the new config is not valid')) {
      throw new AkvError(
        'INTERNAL',
        `the agent refused the new config ${p.config}; ${p.agentLog} says:\n${tail(p.agentLog, 5, logStart)}`,
        'run `akv dev down` and `akv dev up` again',
      );
    }
    await sleep(50);
  }
  throw new AkvError(
    'TIMEOUT',
    `the agent did not confirm the config reload within ${START_TIMEOUT_MS / 1000} s`,
    `see ${p.agentLog}`,
  );
}

export function fileSize(file: string): number {
  try {
    return statSync(file).size;
  } catch {
    return 0;
  }
}

/** Sets the running emulator's latency through its admin API. */
export function setLatency(emulator: DevState['emulator'], ms: number): Promise<void> {
  const url = new URL('/_emulator/latency', emulator.url);
  const body = JSON.stringify({ ms });
  return new Promise((resolveDone, reject) => {
    const req = httpsRequest(
      url,
      {
        method: 'POST',
        ca: readFileSync(emulator.ca),
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
      },
      (res) => {
        res.resume();
        res.on('end', () =>
          res.statusCode === 200 || res.statusCode === 204
            ? resolveDone()
            : reject(new Error(`the emulator answered ${res.statusCode} to a latency change`)),
        );
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}
