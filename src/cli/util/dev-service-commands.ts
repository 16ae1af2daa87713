/**
 * `akv dev start|stop|status`: the command lines of the services in dev-service.ts (option
 * parsing, the per-service lock, what is printed). `status` also reports the emulator and agent
 * of `akv dev up`.
 */
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { UsageError } from '../command.js';
import { flag, parseOptions, requireStr, str } from './args.js';
import {
  running,
  serviceFiles,
  serviceState,
  startService,
  stopService,
  type Readiness,
} from './dev-service.js';
import { agentMarkers, emulatorMarkers, paths, readState, withLock } from './dev-state.js';
import { isOurProcess } from './processes.js';

/** The services DIR knows of (each has a DIR/NAME.service.json). */
export function serviceNames(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((n) => n.endsWith('.service.json'))
    .map((n) => n.slice(0, -'.service.json'.length))
    .sort();
}

/** `-- COMMAND...` is the service's: split it off before our options are parsed. */
export function splitCommand(argv: string[]): [string[], string[]] {
  const at = argv.indexOf('--');
  return at < 0 ? [argv, []] : [argv.slice(0, at), argv.slice(at + 1)];
}

function seconds(value: string | undefined, option: string, fallback: number): number {
  if (value === undefined) return fallback * 1000;
  const n = Number(value);
  if (!/^\d+(\.\d+)?$/.test(value) || n <= 0 || n > 3600)
    throw new UsageError(
      `dev: ${option} ${JSON.stringify(value)} is not a number of seconds from 0.1 to 3600`,
    );
  return Math.round(n * 1000);
}

function sayer(quiet: boolean): (msg: string) => void {
  return (msg) => {
    if (!quiet) process.stderr.write(`akv dev: ${msg}\n`);
  };
}

export async function startCommand(argv: string[]): Promise<number> {
  const [ours, command] = splitCommand(argv);
  const opts = parseOptions('dev start', ours, {
    dir: { type: 'string' },
    name: { type: 'string' },
    'ready-port': { type: 'string' },
    'ready-log': { type: 'string' },
    timeout: { type: 'string' },
    quiet: { type: 'boolean' },
  });
  const p = paths(requireStr(opts, 'dev start', 'dir', 'DIR'));
  const f = serviceFiles(p.dir, requireStr(opts, 'dev start', 'name', 'NAME'));
  if (command.length === 0 || command[0] === '')
    throw new UsageError(
      'dev start: the command to run is missing: put it after --, e.g. akv dev start --dir DIR --name web --ready-port 8080 -- python3 -m http.server 8080',
    );
  const portText = str(opts, 'ready-port');
  const logText = str(opts, 'ready-log');
  if (portText !== undefined && logText !== undefined)
    throw new UsageError('dev start: give --ready-port or --ready-log, not both');
  let readiness: Readiness;
  if (portText !== undefined) {
    const port = Number(portText);
    if (!/^\d+$/.test(portText) || port < 1 || port > 65535)
      throw new UsageError(`dev start: --ready-port ${JSON.stringify(portText)} is not a TCP port`);
    readiness = { port };
  } else if (logText !== undefined) {
    if (logText === '') throw new UsageError('dev start: --ready-log needs the text to wait for');
    readiness = { logText };
  }
  const timeoutMs = seconds(str(opts, 'timeout'), '--timeout', 30);
  mkdirSync(p.dir, { recursive: true, mode: 0o700 });
  await withLock(
    p,
    () => startService(f, command, { readiness, timeoutMs, say: sayer(flag(opts, 'quiet')) }),
    `${f.name}.lock`,
  );
  return 0;
}

export async function stopCommand(argv: string[]): Promise<number> {
  const opts = parseOptions('dev stop', argv, {
    dir: { type: 'string' },
    name: { type: 'string' },
    timeout: { type: 'string' },
    quiet: { type: 'boolean' },
  });
  const p = paths(requireStr(opts, 'dev stop', 'dir', 'DIR'));
  const f = serviceFiles(p.dir, requireStr(opts, 'dev stop', 'name', 'NAME'));
  const graceMs = seconds(str(opts, 'timeout'), '--timeout', 10);
  const say = sayer(flag(opts, 'quiet'));
  if (!existsSync(p.dir)) {
    say(`${f.name} was not running (no ${p.dir})`);
    return 0;
  }
  say((await withLock(p, () => stopService(f, graceMs), `${f.name}.lock`)).message);
  return 0;
}

/** Exit status 0 when everything asked about runs, 3 when something does not (as LSB status). */
export function statusCommand(argv: string[]): number {
  const opts = parseOptions('dev status', argv, {
    dir: { type: 'string' },
    name: { type: 'string' },
  });
  const p = paths(requireStr(opts, 'dev status', 'dir', 'DIR'));
  const only = str(opts, 'name');
  const rows: [string, string, boolean][] = [];
  const state = only === undefined ? readState(p) : undefined;
  if (state !== undefined) {
    const emulatorUp = isOurProcess(state.emulator.pid, emulatorMarkers(p));
    const agentUp = isOurProcess(state.agent.pid, agentMarkers(p));
    rows.push(
      [
        'emulator',
        emulatorUp ? `running (pid ${state.emulator.pid}) at ${state.emulator.url}` : 'stopped',
        emulatorUp,
      ],
      [
        'agent',
        agentUp ? `running (pid ${state.agent.pid}) on ${state.agent.socket}` : 'stopped',
        agentUp,
      ],
    );
  }
  for (const name of only !== undefined ? [only] : serviceNames(p.dir)) {
    const f = serviceFiles(p.dir, name);
    const s = serviceState(f);
    if (s.state === 'running')
      rows.push([
        name,
        `running (pid ${s.record.pid}, since ${s.record.startedAt}): ${s.record.command.join(' ')}; log ${f.log}`,
        running(s.record.pid),
      ]);
    else if (s.state === 'stale') rows.push([name, `stopped (stale pid file: ${s.why})`, false]);
    else rows.push([name, 'stopped', false]);
  }
  if (rows.length === 0) {
    console.log(`nothing was started in ${p.dir}`);
    return 3;
  }
  const width = Math.max(...rows.map(([n]) => n.length));
  for (const [name, text] of rows) console.log(`${name.padEnd(width)}  ${text}`);
  return rows.every(([, , up]) => up) ? 0 : 3;
}
