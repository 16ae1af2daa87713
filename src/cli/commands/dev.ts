/**
 * `akv dev up|down --dir DIR`: a local development environment: the emulator and an agent
 * configured for it, both in the background, with everything (config, socket, logs, pids, the
 * emulator's keys) inside DIR. `up` prints `export` lines for `eval`; it is idempotent.
 */
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from '../command.js';
import { UsageError, wantsHelp } from '../command.js';
import { flag, int, parseOptions, requireStr } from '../util/args.js';
import {
  MAIN_JS,
  agentAnswers,
  reloadAgent,
  setLatency,
  startAgent,
  startEmulator,
  writeConfig,
} from '../util/dev-services.js';
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
down: stops the agent and the emulator of DIR (SIGTERM, then SIGKILL); exits 0 if nothing runs.

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

Example:
  eval "$(bin/akv dev up --dir /tmp/akv-dev --hsm-name devhsm)"
  bin/akv key create --hsm-name devhsm --name tls-key --kty EC-HSM --curve P-256
  openssl pkeyutl -provider akv_provider -provider default ...
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
  const socketGroup = opts.values['socket-group'] as string | undefined;
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

async function upLocked(
  p: Paths,
  hsmName: string,
  latencyMs: number | undefined,
  socketGroup: string | undefined,
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
  if (agentUp && previous?.socketGroup !== socketGroup) {
    const was = previous?.socketGroup;
    throw new UsageError(
      `dev up: the agent of ${p.dir} runs with ${was === undefined ? 'an owner-only socket' : `--socket-group ${was}`}, not ${socketGroup === undefined ? 'an owner-only one' : `--socket-group ${socketGroup}`}; a socket's group is set when the agent starts: run \`akv dev down --dir ${p.dir}\`, then this \`akv dev up\` again (or repeat ${was === undefined ? 'it without --socket-group' : `--socket-group ${was}`})`,
    );
  }

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
