/**
 * `akv dev up|down --dir DIR`: a local development environment: the emulator and an agent
 * configured for it, both in the background, with everything (config, socket, logs, pids, the
 * emulator's keys) inside DIR. `up` prints `export` lines for `eval`; it is idempotent.
 * `akv dev start|stop|status`: other programs (nginx, HAProxy, ...) run as services of DIR
 * (util/dev-service.ts).
 */
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from '../command.js';
import { UsageError, wantsHelp } from '../command.js';
import { flag, int, parseOptions, requireStr, str } from '../util/args.js';
import {
  MAIN_JS,
  agentAnswers,
  reloadAgent,
  setLatency,
  startAgent,
  startEmulator,
  writeConfig,
} from '../util/dev-services.js';
import { serviceFiles, stopService } from '../util/dev-service.js';
import {
  serviceNames,
  splitCommand,
  startCommand,
  statusCommand,
  stopCommand,
} from '../util/dev-service-commands.js';
import {
  assertParentsTraversable,
  prepareDevDir,
  socketGroupId,
} from '../util/dev-socket-group.js';
import {
  Progress,
  agentMarkers,
  emulatorMarkers,
  paths,
  pidFromFile,
  readState,
  withLock,
  writeJsonAtomic,
  type DevState,
  type Paths,
} from '../util/dev-state.js';
import { isAlive, isOurProcess, stopProcess } from '../util/processes.js';
import { providerModulesDir } from '../util/provider-location.js';

/** sockaddr_un.sun_path holds 108 bytes including the terminating NUL. */
const MAX_SOCKET_PATH = 107;

const usage = `Usage: akv dev up --dir DIR --hsm-name NAME [--socket-group GROUP] [--latency-ms N] [--quiet]
       akv dev down --dir DIR
       akv dev start --dir DIR --name NAME [--ready-port PORT | --ready-log TEXT] [--timeout SECONDS] [--quiet] -- COMMAND [ARG...]
       akv dev stop --dir DIR --name NAME [--timeout SECONDS] [--quiet]
       akv dev status --dir DIR [--name NAME]

up:   starts the Managed HSM emulator (keys kept in DIR/emulator) and an akv agent configured
      for it, both in the background (logs: DIR/emulator.log, DIR/agent.log), writes the config
      DIR/akv.json (agent socket: DIR/akv/agent.sock), and prints POSIX shell export lines:
          AKV_CONFIG, AKV_AGENT_SOCKET, OPENSSL_MODULES, AKV_HSM_NAME
      so that, after eval, \`openssl ... -provider akv_provider -provider default
      -key managedhsm:NAME:<key>\` and \`akv key ...\` work in that shell. Running it again
      prints the same lines (and starts whatever has stopped). Free ports are picked, so several
      DIRs can run side by side. Another --hsm-name on a running DIR adds that name.
      Another --socket-group (or none where one was given) on a running DIR is refused:
      the socket's group is set when the agent starts, so \`akv dev down\` first.
down: stops the services of DIR (akv dev start), then the agent and the emulator (SIGTERM,
      then SIGKILL); exits 0 if nothing runs.
start: runs COMMAND in the background as the service NAME of DIR (its own session; stdout and
      stderr appended to DIR/NAME.log; pid in DIR/NAME.pid, with its start time in
      DIR/NAME.service.json so that a reused pid is never taken for it) and waits until it is
      ready: --ready-port PORT accepts TCP connections on 127.0.0.1 (refused if something
      else already does), or the log shows --ready-log TEXT, or (neither) it still runs half a
      second later. If it exits first, or is not ready within --timeout (default 30 s; then it
      is stopped), the error quotes its log. COMMAND must stay in the foreground (nginx -g 'daemon off;', haproxy -db).
      Already running with the same command: nothing to do; with another: refused.
stop: SIGTERM to NAME's process group, SIGKILL after --timeout (default 10 s); exits 0 if it is
      not running. A pid file whose process is not the one started (pid reused) is removed,
      and that process is not signalled.
status: the emulator, the agent and every service of DIR (or only --name NAME): running (pid,
      command, log) or stopped. Exit status 0 when all of them run, 3 otherwise.

Options:
  --dir DIR          directory for the environment (created if missing)
  --hsm-name NAME    the HSM name your key URIs use (3-24 letters, digits, hyphens)
  --socket-group GROUP
                     let the users of GROUP use the agent too (e.g. www-data, for nginx workers
                     started by root): the config gets "socketGroup", the agent makes its socket
                     0660 and DIR/akv 0750 in GROUP, and DIR becomes 0710 in GROUP. You must be
                     root or in GROUP, and the directories above DIR must let GROUP through
                     (DIR under /root does not: use e.g. /tmp); they are never changed for you.
                     Without it the socket is the owner's only (0600 in a 0700 DIR/akv).
  --latency-ms N     emulator latency per request (simulates the network to Azure)
  --quiet            no progress messages on stderr
  --name NAME        a service's name (letters, digits, '.', '_', '-'; not agent or emulator)
  --ready-port PORT  start: the service is ready when 127.0.0.1:PORT accepts connections
  --ready-log TEXT   start: the service is ready when its log (since this start) contains TEXT
  --timeout SECONDS  start: how long to wait for ready (30); stop: for SIGTERM to work (10)

Example:
  eval "$(bin/akv dev up --dir /tmp/akv-dev --hsm-name devhsm)"
  bin/akv key create --hsm-name devhsm --name tls-key --kty EC-HSM --curve P-256
  openssl pkeyutl -provider akv_provider -provider default ...
  bin/akv dev start --dir /tmp/akv-dev --name web --ready-port 8443 -- nginx -c "$PWD/nginx.conf" -g 'daemon off;'
  bin/akv dev status --dir /tmp/akv-dev
  bin/akv dev stop --dir /tmp/akv-dev --name web
  bin/akv dev down --dir /tmp/akv-dev`;

function shellQuote(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

function exportLines(p: Paths, hsmName: string): string {
  const vars: [string, string][] = [
    ['AKV_CONFIG', p.config],
    ['AKV_AGENT_SOCKET', p.socket],
    ['OPENSSL_MODULES', providerModulesDir()],
    ['AKV_HSM_NAME', hsmName],
  ];
  return vars.map(([k, v]) => `export ${k}=${shellQuote(v)}`).join('\n');
}

async function up(argv: string[]): Promise<number> {
  const opts = parseOptions('dev up', argv, {
    dir: { type: 'string' },
    'hsm-name': { type: 'string' },
    'latency-ms': { type: 'string' },
    'socket-group': { type: 'string' },
    quiet: { type: 'boolean' },
  });
  const p = paths(requireStr(opts, 'dev up', 'dir', 'DIR'));
  const hsmName = requireStr(opts, 'dev up', 'hsm-name', 'NAME');
  if (!/^[A-Za-z0-9-]{3,24}$/.test(hsmName))
    throw new UsageError(
      `dev up: --hsm-name ${JSON.stringify(hsmName)} is not a valid HSM name (3-24 letters, digits, hyphens)`,
    );
  const latencyMs = int(opts, 'dev up', 'latency-ms');
  const socketGroup = str(opts, 'socket-group');
  if (socketGroup === '')
    throw new UsageError('dev up: --socket-group needs a group name (e.g. www-data)');
  const gid = socketGroup === undefined ? undefined : socketGroupId(socketGroup);
  if (Buffer.byteLength(p.socket) > MAX_SOCKET_PATH) {
    throw new UsageError(
      `dev up: the agent socket ${p.socket} would be ${Buffer.byteLength(p.socket)} bytes long, over the ${MAX_SOCKET_PATH}-byte limit of Unix sockets: use a shorter --dir`,
    );
  }
  if (!existsSync(MAIN_JS))
    throw new UsageError(`dev up: ${MAIN_JS} is missing: run \`npm run build\` first`);
  const progress = new Progress(!flag(opts, 'quiet') && process.stderr.isTTY === true);
  if (socketGroup !== undefined && gid !== undefined)
    assertParentsTraversable(p.dir, socketGroup, gid);
  prepareDevDir(p.dir, gid);
  return withLock(p, () => upLocked(p, hsmName, latencyMs, socketGroup, progress));
}

/** A `dev up` that died half-way leaves pid files but no state: stop what it started. */
async function stopLeftovers(p: Paths): Promise<void> {
  for (const [file, markers] of [
    ['agent.pid', agentMarkers(p)],
    ['emulator.pid', emulatorMarkers(p)],
  ] as const) {
    const pid = pidFromFile(p, file);
    if (pid !== undefined && isOurProcess(pid, markers)) await stopProcess(pid);
  }
}

/** A socket's group is set when the agent starts: a running agent with another one is refused. */
function refuseOtherSocketGroup(
  p: Paths,
  was: string | undefined,
  wanted: string | undefined,
): void {
  if (was === wanted) return;
  throw new UsageError(
    `dev up: the agent of ${p.dir} runs with ${was === undefined ? 'an owner-only socket' : `--socket-group ${was}`}, not ${wanted === undefined ? 'an owner-only one' : `--socket-group ${wanted}`}; a socket's group is set when the agent starts: run \`akv dev down --dir ${p.dir}\`, then this \`akv dev up\` again (or repeat ${was === undefined ? 'it without --socket-group' : `--socket-group ${was}`})`,
  );
}

async function upLocked(
  p: Paths,
  hsmName: string,
  latencyMs: number | undefined,
  socketGroup: string | undefined,
  progress: Progress,
): Promise<number> {
  const previous = readState(p);
  if (!previous) await stopLeftovers(p);
  let emulator = previous?.emulator;
  const hsmNames = [...new Set([...(previous?.hsmNames ?? []), hsmName])];
  const emulatorUp = emulator !== undefined && isOurProcess(emulator.pid, emulatorMarkers(p));
  let agentPid = previous?.agent.pid;
  let agentUp =
    agentPid !== undefined &&
    isOurProcess(agentPid, agentMarkers(p)) &&
    (await agentAnswers(p.socket));
  if (agentUp) refuseOtherSocketGroup(p, previous?.socketGroup, socketGroup);

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
  if (configChanged) writeConfig(p, emulator, hsmNames, socketGroup);
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
    ...(socketGroup === undefined ? {} : { socketGroup }),
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
  for (const name of serviceNames(p.dir)) {
    const { wasRunning, message } = await stopService(serviceFiles(p.dir, name), 10_000);
    say(message);
    if (wasRunning) stopped++;
  }
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
  summary: 'Start/stop a local emulator + agent environment (prints export lines) and services',
  usage,
  async run(argv) {
    const [sub, ...rest] = argv;
    // After --, the arguments are the service's command's (its own --help included).
    if (sub === undefined || wantsHelp(splitCommand(argv)[0])) {
      console.log(usage);
      return sub === undefined ? 2 : 0;
    }
    if (sub === 'up') return up(rest);
    if (sub === 'down') return down(rest);
    if (sub === 'start') return startCommand(rest);
    if (sub === 'stop') return stopCommand(rest);
    if (sub === 'status') return statusCommand(rest);
    throw new UsageError(
      `dev: unknown sub-command ${JSON.stringify(sub)}; use up, down, start, stop or status (akv dev --help)`,
    );
  },
};

export default command;
