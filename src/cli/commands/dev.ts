/**
 * `akv dev up|down --dir DIR`: a local development environment: the emulator and an agent
 * configured for it, both in the background, with everything (config, socket, logs, pids, the
 * emulator's keys) inside DIR. `up` prints `export` lines for `eval`; it is idempotent.
 */
import {
  existsSync,
  mkdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { request as httpsRequest } from 'node:https';
import type { Command } from '../command.js';
import { UsageError, wantsHelp } from '../command.js';
import { AgentClient } from '../../client/agent-client.js';
import { AkvError } from '../../errors.js';
import { flag, int, parseOptions, requireStr } from '../util/args.js';
import {
  isAlive,
  isOurProcess,
  sleep,
  spawnDetached,
  stopProcess,
  tail,
} from '../util/processes.js';

/** Repository root: this file runs as dist/src/cli/commands/dev.js. */
const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..');
const MAIN_JS = join(REPO_ROOT, 'dist', 'src', 'cli', 'main.js');
export const PROVIDER_MODULES_DIR = join(REPO_ROOT, 'provider', 'build');

const START_TIMEOUT_MS = 30_000;
/** sockaddr_un.sun_path holds 108 bytes including the terminating NUL. */
const MAX_SOCKET_PATH = 107;

const usage = `Usage: akv dev up --dir DIR --hsm-name NAME [--latency-ms N] [--quiet]
       akv dev down --dir DIR

up:   starts the Managed HSM emulator (keys kept in DIR/emulator) and an akv agent configured
      for it, both in the background (logs: DIR/emulator.log, DIR/agent.log), writes the config
      DIR/akv.json, and prints POSIX shell export lines:
          AKV_CONFIG, AKV_AGENT_SOCKET, OPENSSL_MODULES, AKV_HSM_NAME
      so that, after eval, \`openssl ... -provider akv_provider -provider default
      -key managedhsm:NAME:<key>\` and \`akv key ...\` work in that shell. Running it again
      prints the same lines (and starts whatever has stopped). Free ports are picked, so several
      DIRs can run side by side. Another --hsm-name on a running DIR adds that name.
down: stops the agent and the emulator of DIR (SIGTERM, then SIGKILL); exits 0 if nothing runs.

Options:
  --dir DIR          directory for the environment (created if missing)
  --hsm-name NAME    the HSM name your key URIs use (3-24 letters, digits, hyphens)
  --latency-ms N     emulator latency per request (simulates the network to Azure)
  --quiet            no progress messages on stderr

Example:
  eval "$(bin/akv dev up --dir /tmp/akv-dev --hsm-name devhsm)"
  bin/akv key create --hsm-name devhsm --name tls-key --kty EC-HSM --curve P-256
  openssl pkeyutl -provider akv_provider -provider default ...
  bin/akv dev down --dir /tmp/akv-dev`;

interface DevState {
  hsmNames: string[];
  emulator: { pid: number; url: string; ca: string; stateDir: string };
  agent: { pid: number; socket: string };
  config: string;
}

interface Paths {
  dir: string;
  state: string;
  config: string;
  socket: string;
  emulatorDir: string;
  emulatorJson: string;
  emulatorLog: string;
  agentLog: string;
}

function paths(dir: string): Paths {
  const abs = resolve(dir);
  return {
    dir: abs,
    state: join(abs, 'dev.json'),
    config: join(abs, 'akv.json'),
    socket: join(abs, 'agent.sock'),
    emulatorDir: join(abs, 'emulator'),
    emulatorJson: join(abs, 'emulator', 'emulator.json'),
    emulatorLog: join(abs, 'emulator.log'),
    agentLog: join(abs, 'agent.log'),
  };
}

function readState(p: Paths): DevState | undefined {
  try {
    const s = JSON.parse(readFileSync(p.state, 'utf8')) as DevState;
    return Array.isArray(s.hsmNames) && s.emulator && s.agent ? s : undefined;
  } catch {
    return undefined;
  }
}

function writeJsonAtomic(file: string, value: unknown, mode = 0o600): void {
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(value, null, 2)}\n`, { mode });
  renameSync(tmp, file);
}

function shellQuote(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

function exportLines(p: Paths, hsmName: string): string {
  const vars: [string, string][] = [
    ['AKV_CONFIG', p.config],
    ['AKV_AGENT_SOCKET', p.socket],
    ['OPENSSL_MODULES', PROVIDER_MODULES_DIR],
    ['AKV_HSM_NAME', hsmName],
  ];
  return vars.map(([k, v]) => `export ${k}=${shellQuote(v)}`).join('\n');
}

class Progress {
  constructor(private readonly enabled: boolean) {}
  say(msg: string): void {
    if (this.enabled) process.stderr.write(`akv dev: ${msg}\n`);
  }
}

const emulatorMarkers = (p: Paths): string[] => ['emulator', p.emulatorDir];
const agentMarkers = (p: Paths): string[] => ['agent', p.config];

/** Env for the background processes: the caller's akv overrides must not redirect them. */
function childEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.AKV_CONFIG;
  delete env.AKV_AGENT_SOCKET;
  delete env.AKV_LOG_FILE;
  return env;
}

async function startEmulator(
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
  const child = spawnDetached(args, p.emulatorLog, childEnv());
  writeFileSync(join(p.dir, 'emulator.pid'), `${child.pid}\n`);
  const until = Date.now() + START_TIMEOUT_MS;
  while (Date.now() < until) {
    const exit = child.exited();
    if (exit) {
      throw new AkvError(
        'UNAVAILABLE',
        `the emulator ${exit} before it was ready; ${p.emulatorLog} says:\n${tail(p.emulatorLog, 8, logStart)}`,
        'fix the problem above (is `npm run build` done?), then run `akv dev up` again',
      );
    }
    try {
      const ready = JSON.parse(readFileSync(p.emulatorJson, 'utf8')) as {
        url: string;
        pid: number;
        ca: string;
      };
      if (ready.pid === child.pid) {
        progress.say(`emulator listening on ${ready.url} (pid ${child.pid})`);
        return { pid: child.pid, url: ready.url, ca: ready.ca, stateDir: p.emulatorDir };
      }
    } catch {
      // not written yet
    }
    await sleep(50);
  }
  await stopProcess(child.pid, 1000);
  throw new AkvError(
    'TIMEOUT',
    `the emulator did not become ready within ${START_TIMEOUT_MS / 1000} s; ${p.emulatorLog} says:\n${tail(p.emulatorLog, 8, logStart)}`,
    'see the log above',
  );
}

function writeConfig(p: Paths, emulator: DevState['emulator'], hsmNames: string[]): void {
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
    vaults,
    credential: { type: 'static', token: 'dev' },
    log: { level: 'info' },
  });
}

async function agentAnswers(socket: string): Promise<boolean> {
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

async function startAgent(p: Paths, progress: Progress): Promise<DevState['agent']> {
  const logStart = fileSize(p.agentLog);
  progress.say('starting the agent ...');
  const child = spawnDetached(
    [MAIN_JS, 'agent', '--config', p.config, '--socket', p.socket],
    p.agentLog,
    childEnv(),
  );
  writeFileSync(join(p.dir, 'agent.pid'), `${child.pid}\n`);
  const until = Date.now() + START_TIMEOUT_MS;
  while (Date.now() < until) {
    const exit = child.exited();
    if (exit) {
      throw new AkvError(
        'UNAVAILABLE',
        `the agent ${exit} before it was ready; ${p.agentLog} says:\n${tail(p.agentLog, 8, logStart)}`,
        'fix the problem above, then run `akv dev up` again',
      );
    }
    if (
      tail(p.agentLog, 50, logStart).includes(`akv agent listening on ${p.socket}`) &&
      (await agentAnswers(p.socket))
    ) {
      progress.say(`agent listening on ${p.socket} (pid ${child.pid})`);
      return { pid: child.pid, socket: p.socket };
    }
    await sleep(50);
  }
  await stopProcess(child.pid, 1000);
  throw new AkvError(
    'TIMEOUT',
    `the agent did not become ready within ${START_TIMEOUT_MS / 1000} s; ${p.agentLog} says:\n${tail(p.agentLog, 8, logStart)}`,
    'see the log above',
  );
}

/** SIGHUP, then wait until the agent's log says it reloaded, so the new name works at once. */
async function reloadAgent(p: Paths, pid: number): Promise<void> {
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

function fileSize(file: string): number {
  try {
    return statSync(file).size;
  } catch {
    return 0;
  }
}

/** Sets the running emulator's latency through its admin API. */
function setLatency(emulator: DevState['emulator'], ms: number): Promise<void> {
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

function pidFromFile(p: Paths, file: string): number | undefined {
  try {
    const n = Number(readFileSync(join(p.dir, file), 'utf8').trim());
    return Number.isInteger(n) && n > 0 ? n : undefined;
  } catch {
    return undefined;
  }
}

/** Serialises `dev up` / `dev down` on one DIR (a lock file holding the owner's pid). */
async function withLock<T>(p: Paths, fn: () => Promise<T>): Promise<T> {
  const lock = join(p.dir, 'dev.lock');
  const until = Date.now() + 2 * START_TIMEOUT_MS;
  for (;;) {
    try {
      writeFileSync(lock, `${process.pid}\n`, { flag: 'wx', mode: 0o600 });
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
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

async function up(argv: string[]): Promise<number> {
  const opts = parseOptions('dev up', argv, {
    dir: { type: 'string' },
    'hsm-name': { type: 'string' },
    'latency-ms': { type: 'string' },
    quiet: { type: 'boolean' },
  });
  const p = paths(requireStr(opts, 'dev up', 'dir', 'DIR'));
  const hsmName = requireStr(opts, 'dev up', 'hsm-name', 'NAME');
  if (!/^[A-Za-z0-9-]{3,24}$/.test(hsmName))
    throw new UsageError(
      `dev up: --hsm-name ${JSON.stringify(hsmName)} is not a valid HSM name (3-24 letters, digits, hyphens)`,
    );
  const latencyMs = int(opts, 'dev up', 'latency-ms');
  if (Buffer.byteLength(p.socket) > MAX_SOCKET_PATH) {
    throw new UsageError(
      `dev up: the agent socket ${p.socket} would be ${Buffer.byteLength(p.socket)} bytes long, over the ${MAX_SOCKET_PATH}-byte limit of Unix sockets: use a shorter --dir`,
    );
  }
  if (!existsSync(MAIN_JS))
    throw new UsageError(`dev up: ${MAIN_JS} is missing: run \`npm run build\` first`);
  const progress = new Progress(!flag(opts, 'quiet') && process.stderr.isTTY === true);
  mkdirSync(p.dir, { recursive: true, mode: 0o700 });
  return withLock(p, () => upLocked(p, hsmName, latencyMs, progress));
}

async function upLocked(
  p: Paths,
  hsmName: string,
  latencyMs: number | undefined,
  progress: Progress,
): Promise<number> {
  const previous = readState(p);
  if (!previous) {
    // A `dev up` that died half-way leaves pid files but no state: stop what it started.
    for (const [file, markers] of [
      ['agent.pid', agentMarkers(p)],
      ['emulator.pid', emulatorMarkers(p)],
    ] as const) {
      const pid = pidFromFile(p, file);
      if (pid !== undefined && isOurProcess(pid, markers)) await stopProcess(pid);
    }
  }
  let emulator = previous?.emulator;
  const hsmNames = [...new Set([...(previous?.hsmNames ?? []), hsmName])];
  const emulatorUp = emulator !== undefined && isOurProcess(emulator.pid, emulatorMarkers(p));
  let agentPid = previous?.agent.pid;
  let agentUp =
    agentPid !== undefined &&
    isOurProcess(agentPid, agentMarkers(p)) &&
    (await agentAnswers(p.socket));

  if (!emulatorUp || !emulator) {
    if (agentPid !== undefined && isOurProcess(agentPid, agentMarkers(p)))
      await stopProcess(agentPid);
    agentUp = false;
    emulator = await startEmulator(p, latencyMs, progress);
  } else {
    progress.say(`emulator already running at ${emulator.url} (pid ${emulator.pid})`);
    if (latencyMs !== undefined) await setLatency(emulator, latencyMs);
  }

  const configChanged = !agentUp || !previous || hsmNames.length !== previous.hsmNames.length;
  if (configChanged) writeConfig(p, emulator, hsmNames);
  if (agentUp && agentPid !== undefined && configChanged) {
    progress.say(`adding ${hsmName} to the running agent (SIGHUP)`);
    await reloadAgent(p, agentPid);
  }
  if (!agentUp || agentPid === undefined) {
    if (agentPid !== undefined && isAlive(agentPid) && isOurProcess(agentPid, agentMarkers(p)))
      await stopProcess(agentPid);
    agentPid = (await startAgent(p, progress)).pid;
  } else {
    progress.say(`agent already running on ${p.socket} (pid ${agentPid})`);
  }

  writeJsonAtomic(p.state, {
    hsmNames,
    emulator,
    agent: { pid: agentPid, socket: p.socket },
    config: p.config,
  } satisfies DevState);
  console.log(exportLines(p, hsmName));
  return 0;
}

async function down(argv: string[]): Promise<number> {
  const opts = parseOptions('dev down', argv, {
    dir: { type: 'string' },
    quiet: { type: 'boolean' },
  });
  const p = paths(requireStr(opts, 'dev down', 'dir', 'DIR'));
  const quiet = flag(opts, 'quiet');
  const say = (msg: string): void => {
    if (!quiet) process.stderr.write(`akv dev: ${msg}\n`);
  };
  if (!existsSync(p.dir)) {
    say(`nothing was running in ${p.dir}`);
    return 0;
  }
  return withLock(p, () => downLocked(p, say));
}

async function downLocked(p: Paths, say: (msg: string) => void): Promise<number> {
  const state = readState(p);
  const pidFrom = (file: string): number | undefined => pidFromFile(p, file);
  const targets: [string, number | undefined, string[]][] = [
    ['agent', state?.agent.pid ?? pidFrom('agent.pid'), agentMarkers(p)],
    ['emulator', state?.emulator.pid ?? pidFrom('emulator.pid'), emulatorMarkers(p)],
  ];
  let stopped = 0;
  for (const [what, pid, markers] of targets) {
    if (pid !== undefined && isOurProcess(pid, markers)) {
      const how = await stopProcess(pid);
      say(`${what} (pid ${pid}) ${how}`);
      stopped++;
    }
  }
  if (stopped === 0) say(`nothing was running in ${p.dir}`);
  rmSync(p.state, { force: true });
  rmSync(join(p.dir, 'agent.pid'), { force: true });
  rmSync(join(p.dir, 'emulator.pid'), { force: true });
  return 0;
}

const command: Command = {
  summary: 'Start/stop a local emulator + agent environment (prints export lines)',
  usage,
  async run(argv) {
    const [sub, ...rest] = argv;
    if (sub === undefined || wantsHelp(argv)) {
      console.log(usage);
      return sub === undefined ? 2 : 0;
    }
    if (sub === 'up') return up(rest);
    if (sub === 'down') return down(rest);
    throw new UsageError(
      `dev: unknown sub-command ${JSON.stringify(sub)}; use \`akv dev up\` or \`akv dev down\``,
    );
  },
};

export default command;
