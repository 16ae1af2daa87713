/**
 * Autostart for the CLI's crypto commands (sign, verify, encrypt, decrypt, wrap, unwrap) and
 * `akv doctor`: when no agent answers, start the user's own agent the way the provider does
 * (provider/src/agent_autostart.c, docs/provider.md "Autostart"), with the same rules and opt-out:
 *  - AKV_AGENT_AUTOSTART=0/no/false/off turns it off;
 *  - the default socket's directory is created 0700 and refused when it exists with another owner
 *    or a wider mode; an explicit socket's directory must exist, be ours and not be writable by
 *    group or others;
 *  - `flock SOCKET.lock` (the provider's lock file) serialises starters, and whoever gets the lock
 *    tries to connect again before starting anything, so provider and CLI start one agent;
 *  - `<command> agent --socket S --idle-exit N --autostarted`, a new session, this environment,
 *    output to agent.log beside the socket; the wait is bounded by AKV_AGENT_TIMEOUT_MS (15 s) and
 *    an agent that dies while starting is reported with the last line of its log.
 * The command is AKV_AGENT_COMMAND, else this copy's own bin/akv.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import {
  accessSync,
  constants,
  closeSync,
  mkdirSync,
  openSync,
  readFileSync,
  statSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import { AgentClient } from '../../client/agent-client.js';
import { defaultSocketPath } from '../../config/load.js';
import { AkvError, errnoCode, errorMessage } from '../../errors.js';
import { AKV_ROOT } from './provider-location.js';
import { waitNote } from './progress.js';

export type AutostartPlan =
  | { possible: true; command: string; socket: string; log: string }
  | { possible: false; reason: string };

const OFF = /^(0|no|false|off)$/i;

export function autostartEnabled(env: NodeJS.ProcessEnv = process.env): boolean {
  return !OFF.test((env.AKV_AGENT_AUTOSTART ?? '').trim());
}

function timeoutMs(): number {
  const v = process.env.AKV_AGENT_TIMEOUT_MS;
  const n = v !== undefined && /^\d+$/.test(v) ? Number(v) : 15_000;
  return Math.min(Math.max(n, 1), 3_600_000);
}

function idleExitSeconds(): string {
  const v = process.env.AKV_AGENT_IDLE_EXIT;
  return v !== undefined && /^\d+$/.test(v) ? v : '900';
}

/**
 * Whether an autostart may happen for `socket`, and with what. Creates the default socket's
 * directory (0700) when `prepare` is set, as the provider does when it starts an agent.
 */
export function autostartPlan(socket: string, prepare: boolean): AutostartPlan {
  if (!autostartEnabled())
    return { possible: false, reason: 'autostart is off (AKV_AGENT_AUTOSTART)' };
  const command = process.env.AKV_AGENT_COMMAND || join(AKV_ROOT, 'bin', 'akv');
  try {
    accessSync(command, constants.X_OK);
  } catch {
    return { possible: false, reason: `the akv command ${command} is not executable` };
  }
  const dir = dirname(socket);
  const uid = process.getuid?.() ?? 0;
  const isDefault = socket === defaultSocketPath();
  if (isDefault && prepare) {
    try {
      mkdirSync(dir, { mode: 0o700 });
    } catch (err) {
      if (errnoCode(err) !== 'EEXIST')
        return { possible: false, reason: `cannot create ${dir}: ${errorMessage(err)}` };
    }
  }
  let st;
  try {
    st = statSync(dir);
  } catch {
    if (isDefault && !prepare)
      return { possible: true, command, socket, log: join(dir, 'agent.log') };
    return { possible: false, reason: `the socket's directory ${dir} does not exist` };
  }
  if (st.uid !== uid)
    return { possible: false, reason: `${dir} belongs to uid ${st.uid}, not to this user` };
  if (isDefault && (st.mode & 0o077) !== 0)
    return {
      possible: false,
      reason: `${dir} is shared (mode ${(st.mode & 0o777).toString(8)}): a system agent's; start that one`,
    };
  if (!isDefault && (st.mode & 0o022) !== 0)
    return {
      possible: false,
      reason: `${dir} is writable by others (mode ${(st.mode & 0o777).toString(8)})`,
    };
  return { possible: true, command, socket, log: join(dir, 'agent.log') };
}

/** True for "nothing listens there" (no file, or the file of a dead agent). */
export function isAbsentAgent(err: unknown): boolean {
  return (
    err instanceof AkvError && /not reachable at .*\((ENOENT|ECONNREFUSED)\)/.test(err.message)
  );
}

async function answers(socket: string): Promise<boolean> {
  try {
    const client = await AgentClient.connect(socket, { timeoutMs: 2000, clientName: 'akv-cli' });
    await client.close();
    return true;
  } catch {
    return false;
  }
}

/** Holds `flock -w SECONDS LOCK` in a child process until release(). */
async function takeLock(lock: string, seconds: number): Promise<() => void> {
  const child = spawn(
    'flock',
    ['-w', String(seconds), lock, 'sh', '-c', 'echo locked; exec cat >/dev/null'],
    { stdio: ['pipe', 'pipe', 'ignore'] },
  );
  await new Promise<void>((resolve, reject) => {
    child.stdout.on('data', () => resolve());
    child.on('error', (err) =>
      reject(new AkvError('UNAVAILABLE', `cannot run flock: ${err.message}`)),
    );
    child.on('exit', () =>
      reject(
        new AkvError(
          'UNAVAILABLE',
          `another process kept ${lock} locked while starting the akv agent`,
          `see its log in ${join(dirname(lock), 'agent.log')}`,
        ),
      ),
    );
  });
  return () => child.stdin.end();
}

function lastLogLine(log: string): string {
  try {
    return (
      readFileSync(log, 'utf8')
        .split('\n')
        .filter((l) => l.trim() !== '')
        .at(-1) ?? ''
    );
  } catch {
    return '';
  }
}

/**
 * Starts the user's agent on `socket` when none answers there (see the rules above); resolves
 * once it answers. Throws an AkvError that says why when it cannot.
 */
export async function autostartAgent(socket: string): Promise<void> {
  const plan = autostartPlan(socket, true);
  if (!plan.possible)
    throw new AkvError(
      'UNAVAILABLE',
      `akv agent not reachable at ${socket}, and it is not started automatically: ${plan.reason}`,
      'start it with `akv agent` (or systemctl start akv-agent.socket), or point AKV_AGENT_SOCKET at its socket',
    );
  const limit = timeoutMs();
  const deadline = Date.now() + limit;
  const note = waitNote(`starting the akv agent on ${socket}`);
  const release = await takeLock(`${socket}.lock`, Math.max(1, Math.ceil(limit / 1000)));
  let child: ChildProcess | undefined;
  try {
    if (await answers(socket)) return; // another starter was first
    const log = openSync(plan.log, 'a', 0o600);
    let exited: string | undefined;
    try {
      child = spawn(
        plan.command,
        ['agent', '--socket', socket, '--idle-exit', idleExitSeconds(), '--autostarted'],
        { detached: true, stdio: ['ignore', log, log], env: process.env },
      );
      child.on('error', (err) => (exited = err.message));
      child.on('exit', (code, signal) => (exited = `exit status ${code ?? signal}`));
    } finally {
      closeSync(log);
    }
    while (Date.now() < deadline) {
      if (exited !== undefined)
        throw new AkvError(
          'UNAVAILABLE',
          `the autostarted akv agent stopped (${exited}): ${lastLogLine(plan.log) || 'no output'}`,
          `see ${plan.log}; or start it yourself with \`akv agent\``,
        );
      if (await answers(socket)) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new AkvError(
      'TIMEOUT',
      `the autostarted akv agent did not answer on ${socket} within ${limit} ms`,
      `see ${plan.log}; AKV_AGENT_TIMEOUT_MS raises the wait`,
    );
  } finally {
    child?.unref();
    release();
    note.done();
  }
}
