/**
 * Process helpers for the bench: run a command to completion, and read what other processes
 * cost from /proc (CPU time of a process and its descendants, resident memory).
 */
import { spawn } from 'node:child_process';
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';

export interface RunResult {
  status: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  input?: string;
  /** Kill the command (SIGKILL) after this long; default 10 minutes. */
  timeoutMs?: number;
}

/** Runs a command (no shell) and collects its output; never rejects for a non-zero exit. */
export function run(
  command: string,
  args: readonly string[],
  options: RunOptions = {},
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      env: options.env ?? process.env,
      cwd: options.cwd,
      stdio: [options.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout?.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 600_000);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(new Error(`cannot run ${command}: ${err.message}`));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ status: code ?? 128 + (signal === 'SIGKILL' ? 9 : 15), stdout, stderr });
    });
    if (child.stdin) {
      // A command that exits without reading its input must not crash the bench (EPIPE).
      child.stdin.on('error', () => undefined);
      child.stdin.end(options.input);
    }
  });
}

/** Like run, but throws with the command's output when it does not exit 0. */
export async function runChecked(
  command: string,
  args: readonly string[],
  options: RunOptions = {},
): Promise<RunResult> {
  const r = await run(command, args, options);
  if (r.status !== 0) {
    throw new Error(
      `${command} ${args.join(' ')} exited ${r.status}\n${r.stderr.trim() || r.stdout.trim()}`,
    );
  }
  return r;
}

let clockTicks: number | undefined;

/** Kernel clock ticks per second (USER_HZ), for /proc/<pid>/stat CPU fields. */
async function ticksPerSecond(): Promise<number> {
  if (clockTicks === undefined) {
    const r = await run('getconf', ['CLK_TCK']).catch(() => undefined);
    const v = Number(r?.stdout.trim());
    clockTicks = Number.isInteger(v) && v > 0 ? v : 100;
  }
  return clockTicks;
}

/** Direct children of a process (all its threads' children), from /proc. */
export function childPids(pid: number): number[] {
  const out: number[] = [];
  let tasks: string[] = [];
  try {
    tasks = readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const task of tasks) {
    try {
      const text = readFileSync(`/proc/${pid}/task/${task}/children`, 'utf8').trim();
      if (text) out.push(...text.split(/\s+/).map(Number));
    } catch {
      // the thread ended meanwhile
    }
  }
  return out;
}

/** The process and all its descendants. */
export function processTree(pid: number): number[] {
  const all = [pid];
  for (let i = 0; i < all.length; i++) all.push(...childPids(all[i] as number));
  return all;
}

function cpuTicks(pid: number): { user: number; sys: number } {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may contain spaces) start after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after "pid (comm) ".
    return { user: Number(fields[11]), sys: Number(fields[12]) };
  } catch {
    return { user: 0, sys: 0 };
  }
}

/**
 * CPU seconds (user and system, all threads) used so far by the processes in `pids` together.
 * Processes that end between two readings lose their share; the bench's processes live across
 * a measurement, so that does not happen for them.
 */
export async function cpuUserSys(pids: readonly number[]): Promise<{ user: number; sys: number }> {
  const hz = await ticksPerSecond();
  let user = 0;
  let sys = 0;
  for (const pid of pids) {
    const t = cpuTicks(pid);
    user += t.user;
    sys += t.sys;
  }
  return { user: user / hz, sys: sys / hz };
}

/** CPU seconds (user + system) used so far by the processes in `pids` together. */
export async function cpuSeconds(pids: readonly number[]): Promise<number> {
  const t = await cpuUserSys(pids);
  return t.user + t.sys;
}

/** Resident set size of a process in KiB (VmRSS), 0 when it is gone. */
export function rssKiB(pid: number): number {
  try {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

/** Open file descriptors of a process, and how many of them are sockets (0 when it is gone). */
export function openFds(pid: number): { total: number; sockets: number } {
  let names: string[];
  try {
    names = readdirSync(`/proc/${pid}/fd`);
  } catch {
    return { total: 0, sockets: 0 };
  }
  let sockets = 0;
  for (const name of names) {
    try {
      if (readlinkSync(`/proc/${pid}/fd/${name}`).startsWith('socket:')) sockets++;
    } catch {
      // closed meanwhile
    }
  }
  return { total: names.length, sockets };
}

/** Samples a process's RSS every `intervalMs` until stopped; reports the peak and the last. */
export class RssSampler {
  private peak = 0;
  private last = 0;
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly pid: number,
    intervalMs = 100,
  ) {
    this.sample();
    this.timer = setInterval(() => this.sample(), intervalMs);
  }

  private sample(): void {
    this.last = rssKiB(this.pid);
    this.peak = Math.max(this.peak, this.last);
  }

  stop(): { peakKiB: number; lastKiB: number } {
    clearInterval(this.timer);
    this.sample();
    return { peakKiB: this.peak, lastKiB: this.last };
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
