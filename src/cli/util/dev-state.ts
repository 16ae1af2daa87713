/**
 * The files of an `akv dev` environment (DIR/dev.json, pid files, the config) and a lock that
 * serialises `dev up` / `dev down` on one DIR.
 */
import { readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { AkvError, errnoCode } from '../../errors.js';
import { isAlive, sleep } from './processes.js';
import { isRecord } from '../../guards.js';

/** How long a start, a reload or a lock may take. */
export const START_TIMEOUT_MS = 30_000;

export interface DevState {
  hsmNames: string[];
  emulator: { pid: number; url: string; ca: string; stateDir: string };
  agent: { pid: number; socket: string };
  config: string;
  /** `--socket-group` the running agent was started with (absent: owner-only socket). */
  socketGroup?: string;
}

export interface Paths {
  dir: string;
  state: string;
  config: string;
  socket: string;
  emulatorDir: string;
  emulatorJson: string;
  emulatorLog: string;
  agentLog: string;
}

export function paths(dir: string): Paths {
  const abs = resolve(dir);
  return {
    dir: abs,
    state: join(abs, 'dev.json'),
    config: join(abs, 'akv.json'),
    // In a directory of its own, named `akv`, whose mode and group the agent enforces (0700, or
    // 0750 in --socket-group): DIR itself holds the config and logs, which stay the owner's.
    socket: join(abs, 'akv', 'agent.sock'),
    emulatorDir: join(abs, 'emulator'),
    emulatorJson: join(abs, 'emulator', 'emulator.json'),
    emulatorLog: join(abs, 'emulator.log'),
    agentLog: join(abs, 'agent.log'),
  };
}

/**
 * Whether dev.json holds a state: its outline (HSM names, the emulator, the agent) is checked;
 * the rest is as writeJsonAtomic wrote it from a DevState (an owner-only file of `akv dev up`).
 */
function isDevState(s: unknown): s is DevState {
  return isRecord(s) && Array.isArray(s.hsmNames) && isRecord(s.emulator) && isRecord(s.agent);
}

export function readState(p: Paths): DevState | undefined {
  try {
    const s: unknown = JSON.parse(readFileSync(p.state, 'utf8'));
    return isDevState(s) ? s : undefined;
  } catch {
    return undefined;
  }
}

export function writeJsonAtomic(file: string, value: unknown, mode = 0o600): void {
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(value, null, 2)}\n`, { mode });
  renameSync(tmp, file);
}

export class Progress {
  constructor(private readonly enabled: boolean) {}
  say(msg: string): void {
    if (this.enabled) process.stderr.write(`akv dev: ${msg}\n`);
  }
}

export const emulatorMarkers = (p: Paths): string[] => ['emulator', p.emulatorDir];
export const agentMarkers = (p: Paths): string[] => ['agent', p.config];

export function pidFromFile(p: Paths, file: string): number | undefined {
  try {
    const n = Number(readFileSync(join(p.dir, file), 'utf8').trim());
    return Number.isInteger(n) && n > 0 ? n : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Serialises `dev up` / `dev down` on one DIR (a lock file holding the owner's pid); `lockName`
 * gives a service (`dev start|stop --name`) a lock of its own.
 */
export async function withLock<T>(
  p: Paths,
  fn: () => Promise<T>,
  lockName = 'dev.lock',
): Promise<T> {
  const lock = join(p.dir, lockName);
  const until = Date.now() + 2 * START_TIMEOUT_MS;
  for (;;) {
    try {
      writeFileSync(lock, `${process.pid}\n`, { flag: 'wx', mode: 0o600 });
      break;
    } catch (err) {
      if (errnoCode(err) !== 'EEXIST') throw err;
      let text: string;
      try {
        text = readFileSync(lock, 'utf8').trim();
      } catch {
        continue; // released meanwhile
      }
      const owner = Number(text);
      // An empty file is a lock being written right now, not a stale one.
      if (text !== '' && !isAlive(owner)) {
        rmSync(lock, { force: true });
        continue;
      }
      if (Date.now() > until) {
        throw new AkvError(
          'TIMEOUT',
          `another \`akv dev\` (pid ${owner}) holds ${lock}`,
          'wait for it to finish, or remove the lock file if that process is not akv',
        );
      }
      await sleep(100);
    }
  }
  try {
    return await fn();
  } finally {
    rmSync(lock, { force: true });
  }
}
