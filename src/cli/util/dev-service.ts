/**
 * The services `akv dev start|stop|status` manage besides the emulator and the agent: any
 * program (nginx, HAProxy, a demo server) run in the foreground as a detached process of its own
 * session, with everything in DIR:
 *   DIR/NAME.pid           the pid (the usual pid file, for other tools)
 *   DIR/NAME.service.json  pid, start time (/proc/PID/stat field 22) and command line: a pid
 *                          is ours only when that process still has that start time, so a pid
 *                          reused by another program is never signalled
 *   DIR/NAME.log           the program's stdout and stderr, appended
 * Rules: start waits until the service is ready (a TCP port accepts, or a line in its log) and
 * quotes the log when it exits or times out first; stop sends SIGTERM to its process group,
 * then SIGKILL; both are idempotent; every failure says what to do.
 */
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { AkvError } from '../../errors.js';
import { UsageError } from '../command.js';
import { writeJsonAtomic } from './dev-state.js';
import { fileSize } from './dev-services.js';
import { sleep, spawnDetached, tail, type DetachedChild } from './processes.js';
import { isInteger, isRecord, isStringArray } from '../../guards.js';

/** Names the emulator and the agent use in DIR (their pid files, dev.json, akv.json). */
const RESERVED = ['agent', 'emulator', 'dev', 'akv'];

export interface ServiceFiles {
  name: string;
  pid: string;
  record: string;
  log: string;
}

export interface ServiceRecord {
  pid: number;
  /** Clock ticks since boot at which the process started (undefined without /proc). */
  startTime: string | undefined;
  command: string[];
  startedAt: string;
}

export type Readiness = { port: number } | { logText: string } | undefined;

export function serviceFiles(dir: string, name: string): ServiceFiles {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(name) || RESERVED.includes(name))
    throw new UsageError(
      `dev: --name ${JSON.stringify(name)} is not a service name: use 1-64 letters, digits, '.', '_', '-' (not ${RESERVED.join(', ')}: the emulator and agent use them)`,
    );
  return {
    name,
    pid: join(dir, `${name}.pid`),
    record: join(dir, `${name}.service.json`),
    log: join(dir, `${name}.log`),
  };
}

/** /proc/PID/stat: [state, startTime], or undefined when there is no such process. */
function procStat(pid: number): [string, string] | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after "pid (comm) ": state is field 3, starttime field 22.
    const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
    return [fields[0] ?? '', fields[19] ?? ''];
  } catch {
    return undefined;
  }
}

const HAS_PROC = procStat(process.pid) !== undefined;

/** The process runs (a zombie, exited but not yet reaped by init, does not). */
export function running(pid: number): boolean {
  if (HAS_PROC) {
    const stat = procStat(pid);
    return stat !== undefined && stat[0] !== 'Z' && stat[0] !== 'X';
  }
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return err instanceof Error && 'code' in err && err.code === 'EPERM';
  }
}

function startTimeOf(pid: number): string | undefined {
  return procStat(pid)?.[1];
}

export function readRecord(f: ServiceFiles): ServiceRecord | undefined {
  try {
    const value: unknown = JSON.parse(readFileSync(f.record, 'utf8'));
    if (!isRecord(value)) return undefined;
    const { pid, startTime, command, startedAt } = value;
    return isInteger(pid) && isStringArray(command)
      ? {
          pid,
          startTime: typeof startTime === 'string' ? startTime : undefined,
          command,
          startedAt: String(startedAt),
        }
      : undefined;
  } catch {
    return undefined;
  }
}

function pidInFile(f: ServiceFiles): number | undefined {
  try {
    const n = Number(readFileSync(f.pid, 'utf8').trim());
    return Number.isInteger(n) && n > 0 ? n : undefined;
  } catch {
    return undefined;
  }
}

export type ServiceState =
  | { state: 'running'; record: ServiceRecord }
  | { state: 'stopped' }
  /** The pid file names a live process that is not the one we started (pid reused). */
  | { state: 'stale'; pid: number; why: string };

/** What DIR's files say about NAME, checked against the live process. */
export function serviceState(f: ServiceFiles): ServiceState {
  const record = readRecord(f);
  const pid = record?.pid ?? pidInFile(f);
  if (pid === undefined || !running(pid)) return { state: 'stopped' };
  if (!record || record.pid !== pid)
    return { state: 'stale', pid, why: `${f.record} does not describe pid ${pid}` };
  if (HAS_PROC && record.startTime !== startTimeOf(pid))
    return {
      state: 'stale',
      pid,
      why: `pid ${pid} is another process now (it started after ${f.name} did)`,
    };
  return { state: 'running', record };
}

export function forget(f: ServiceFiles): void {
  rmSync(f.pid, { force: true });
  rmSync(f.record, { force: true });
}

/**
 * Whether something accepts TCP connections on 127.0.0.1:PORT. The probe's connection is closed
 * politely (FIN, reading what the server sent): destroying it with unread bytes would send a reset,
 * which kills a server that does not expect one right after it was declared ready.
 */
export function portAccepts(port: number): Promise<boolean> {
  return new Promise((resolveAccepts) => {
    const socket = connect({ host: '127.0.0.1', port });
    const refused = (): void => {
      socket.destroy();
      resolveAccepts(false);
    };
    socket.setTimeout(1000, refused);
    socket.once('error', refused);
    socket.once('connect', () => {
      resolveAccepts(true);
      socket.resume(); // read and drop whatever the server says, until it closes too
      socket.end();
      // A server that keeps talking is cut off after a second, reset or not.
      const cutOff = setTimeout(() => socket.destroy(), 1000);
      socket.once('close', () => clearTimeout(cutOff));
    });
  });
}

const FOREGROUND_HINT =
  "run the program in the foreground, not as a daemon (nginx: -g 'daemon off;', HAProxy: -db)";

export interface StartOptions {
  readiness: Readiness;
  timeoutMs: number;
  say: (msg: string) => void;
}

/**
 * The record when NAME already runs `command` (nothing to do); refuses when it runs another
 * command. Otherwise clears NAME's files (saying why when they were stale) and returns undefined.
 */
function runningAlready(
  f: ServiceFiles,
  command: string[],
  say: (msg: string) => void,
): ServiceRecord | undefined {
  const now = serviceState(f);
  if (now.state === 'running') {
    if (JSON.stringify(now.record.command) !== JSON.stringify(command))
      throw new UsageError(
        `dev start: ${f.name} already runs (pid ${now.record.pid}) another command: ${now.record.command.join(' ')}; stop it first: akv dev stop --dir ${join(f.pid, '..')} --name ${f.name}`,
      );
    say(`${f.name} already running (pid ${now.record.pid}); log ${f.log}`);
    return now.record;
  }
  if (now.state === 'stale') say(`ignoring ${f.pid}: ${now.why} (not signalled)`);
  forget(f);
  return undefined;
}

/** A port that accepts before the service starts could never tell that the service is ready. */
async function refuseBusyPort(f: ServiceFiles, readiness: Readiness): Promise<void> {
  const port = readiness && 'port' in readiness ? readiness.port : undefined;
  if (port !== undefined && (await portAccepts(port)))
    throw new AkvError(
      'UNAVAILABLE',
      `dev start: something already accepts connections on 127.0.0.1:${port}, so ${f.name} could not be told ready`,
      `stop that program (ss -ltnp 'sport = :${port}' names it) or pick another port`,
    );
}

/**
 * Polls until the service is ready. When it exits first, forgets it; when the timeout comes
 * first, stops it and forgets it; both throw, quoting what its log says since `logStart`.
 */
async function waitUntilReady(
  f: ServiceFiles,
  pid: number,
  child: DetachedChild,
  opts: StartOptions,
  logStart: number,
): Promise<void> {
  const logSays = (): string => {
    const text = tail(f.log, 10, logStart);
    return text === '' ? `${f.log} is empty` : `${f.log} says:\n${text}`;
  };
  const startedMs = Date.now();
  const until = startedMs + opts.timeoutMs;
  for (;;) {
    if (child.exited() !== undefined || !running(pid)) {
      // /proc can show the process gone before Node has reaped it and emitted 'exit': wait for
      // that event (up to a second), whose status tells a crash from a program that daemonized.
      for (let i = 0; i < 20 && child.exited() === undefined; i++) await sleep(50);
      forget(f);
      const how = child.exited() ?? 'exited';
      throw new AkvError(
        'UNAVAILABLE',
        `dev start: ${f.name} (pid ${pid}) ${how} before it was ready; ${logSays()}`,
        how === 'exited with status 0'
          ? FOREGROUND_HINT
          : 'fix what the log says, then start it again',
      );
    }
    // Still ours once ready: another program may hold the port while ours failed to bind it.
    if ((await isReady(opts.readiness, f, logStart, startedMs)) && running(pid)) return;
    if (Date.now() >= until) {
      await stopPid(pid, 2000);
      forget(f);
      throw new AkvError(
        'TIMEOUT',
        `dev start: ${f.name} (pid ${pid}) was not ready within ${opts.timeoutMs / 1000} s (${describeReadiness(opts.readiness)}), so it was stopped; ${logSays()}`,
        'fix what the log says, or give it longer with --timeout SECONDS',
      );
    }
    await sleep(50);
  }
}

/**
 * Starts `command` as service NAME unless it runs already (same command: nothing to do; another
 * command: refused). Returns the running record.
 */
export async function startService(
  f: ServiceFiles,
  command: string[],
  opts: StartOptions,
): Promise<ServiceRecord> {
  const already = runningAlready(f, command, opts.say);
  if (already) return already;
  await refuseBusyPort(f, opts.readiness);

  const logStart = fileSize(f.log);
  const child = spawnDetached(command, f.log);
  const pid = child.pid;
  if (pid === undefined) {
    await sleep(0); // let the 'error' event say why
    throw new AkvError(
      'UNAVAILABLE',
      `dev start: ${f.name} ${child.exited() ?? 'could not be started'} (${command.join(' ')})`,
      'check the program name and that it is installed (give a full path if it is not on PATH)',
    );
  }
  const record: ServiceRecord = {
    pid,
    startTime: startTimeOf(pid),
    command,
    startedAt: new Date().toISOString(),
  };
  writeJsonAtomic(f.record, record, 0o644);
  writeFileSync(f.pid, `${pid}\n`);

  await waitUntilReady(f, pid, child, opts, logStart);
  opts.say(`${f.name} started (pid ${pid}), ${describeReadiness(opts.readiness)}; log ${f.log}`);
  return record;
}

/** Without a readiness test, a program still running after this long is taken as started. */
const SETTLE_MS = 500;

async function isReady(
  r: Readiness,
  f: ServiceFiles,
  logStart: number,
  startedMs: number,
): Promise<boolean> {
  if (r === undefined) return Date.now() - startedMs >= SETTLE_MS;
  if ('port' in r) return portAccepts(r.port);
  return tail(f.log, 1000, logStart).includes(r.logText);
}

function describeReadiness(r: Readiness): string {
  if (r === undefined) return 'running';
  if ('port' in r) return `accepting connections on 127.0.0.1:${r.port}`;
  return `its log says ${JSON.stringify(r.logText)}`;
}

/** SIGTERM to the process group, up to `graceMs`, then SIGKILL to the group. */
async function stopPid(pid: number, graceMs: number): Promise<'stopped' | 'killed'> {
  const signal = (sig: NodeJS.Signals): void => {
    try {
      process.kill(-pid, sig);
    } catch {
      try {
        process.kill(pid, sig); // not a group leader after all
      } catch {
        // gone meanwhile
      }
    }
  };
  signal('SIGTERM');
  const until = Date.now() + graceMs;
  while (Date.now() < until) {
    if (!running(pid)) return 'stopped';
    await sleep(50);
  }
  signal('SIGKILL');
  for (let i = 0; i < 100 && running(pid); i++) await sleep(50);
  return 'killed';
}

/** Stops service NAME (nothing running is fine): whether it ran, and what happened, for the person. */
export async function stopService(
  f: ServiceFiles,
  graceMs: number,
): Promise<{ wasRunning: boolean; message: string }> {
  const now = serviceState(f);
  forget(f);
  if (now.state === 'stopped') return { wasRunning: false, message: `${f.name} was not running` };
  if (now.state === 'stale')
    return {
      wasRunning: false,
      message: `${f.name} was not running (removed the stale ${f.pid}: ${now.why}; not signalled)`,
    };
  const how = await stopPid(now.record.pid, graceMs);
  if (running(now.record.pid))
    throw new AkvError(
      'INTERNAL',
      `dev stop: ${f.name} (pid ${now.record.pid}) still runs after SIGKILL`,
      'it may be stuck in the kernel (state D in ps); look at it with ps -o pid,stat,cmd',
    );
  const message =
    how === 'stopped'
      ? `${f.name} (pid ${now.record.pid}) stopped`
      : `${f.name} (pid ${now.record.pid}) did not stop within ${graceMs / 1000} s of SIGTERM: killed (SIGKILL)`;
  return { wasRunning: true, message };
}
