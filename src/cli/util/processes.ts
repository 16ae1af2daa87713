/**
 * Background processes of `akv dev`: start detached with logs in files, recognise our own
 * processes by pid (so a recycled pid is never signalled), stop with SIGTERM then SIGKILL.
 */
import { spawn } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, statSync } from 'node:fs';
import { errnoCode } from '../../errors.js';

export function isAlive(pid: number | undefined): boolean {
  if (pid === undefined || !Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return errnoCode(err) === 'EPERM';
  }
}

/**
 * True when `pid` is alive and its command line contains every one of `markers` (on systems
 * without /proc, being alive is all we can check).
 */
export function isOurProcess(pid: number | undefined, markers: string[]): boolean {
  if (!isAlive(pid)) return false;
  const cmdlineFile = `/proc/${pid}/cmdline`;
  if (!existsSync('/proc/self/cmdline')) return true;
  try {
    const cmdline = readFileSync(cmdlineFile, 'utf8').split('\0');
    return markers.every((m) => cmdline.includes(m));
  } catch {
    return false;
  }
}

/** A detached child: its pid (undefined when it could not be spawned) and, once it has, how it ended. */
export interface DetachedChild {
  pid: number | undefined;
  exited: () => string | undefined;
}

/**
 * Starts `command` (a program and its arguments) in a session of its own, its stdout and stderr
 * appended to `logFile`; `env` defaults to this process's.
 */
export function spawnDetached(
  command: string[],
  logFile: string,
  env?: NodeJS.ProcessEnv,
): DetachedChild {
  const fd = openSync(logFile, 'a');
  try {
    const child = spawn(command[0] ?? '', command.slice(1), {
      detached: true,
      stdio: ['ignore', fd, fd],
      env,
    });
    let exit: string | undefined;
    child.once('exit', (code, signal) => {
      exit = signal ? `was killed by ${signal}` : `exited with status ${code}`;
    });
    child.once('error', (err) => {
      exit = `could not be started: ${err.message}`;
    });
    child.unref();
    return { pid: child.pid, exited: () => exit };
  } finally {
    closeSync(fd);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** SIGTERM, wait up to `graceMs`, then SIGKILL. Returns how it ended. */
export async function stopProcess(
  pid: number,
  graceMs = 5000,
): Promise<'not running' | 'stopped' | 'killed'> {
  if (!isAlive(pid)) return 'not running';
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    return 'not running';
  }
  const until = Date.now() + graceMs;
  while (Date.now() < until) {
    if (!isAlive(pid)) return 'stopped';
    await sleep(50);
  }
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    return 'stopped';
  }
  for (let i = 0; i < 40 && isAlive(pid); i++) await sleep(50);
  return 'killed';
}

/** The last lines of a log file, for error messages. */
export function tail(file: string, lines = 8, since = 0): string {
  try {
    const size = statSync(file).size;
    const text = readFileSync(file, 'utf8').slice(Math.min(since, size));
    return text.trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}
