/**
 * Starts the real `bin/akv agent` process for a test, configured for a running emulator: a
 * temporary directory holds the config file, the socket (in a dedicated `akv/` directory) and the
 * log file. Gives AgentClients connected to it, and stop/kill/restart/reload controls.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AgentClient, type AgentClientOptions } from '../../src/client/agent-client.js';
import type { AkvConfig } from '../../src/config/types.js';
import { AKV_BIN, emulatorConfig, startEmulator, type RunningEmulator } from './emulator.js';

export interface StartAgentOptions {
  emulator: RunningEmulator;
  hsmName: string;
  /** Merged into the config file (top level); e.g. { socketGroup, metricsListen, keyCacheTtlMs }. */
  extraConfig?: Partial<AkvConfig>;
  /** Extra environment for the agent process. */
  env?: Record<string, string>;
  /** Extra arguments after `agent --config FILE` (e.g. --autostarted). */
  args?: string[];
}

export interface RunningAgent {
  dir: string;
  socket: string;
  configFile: string;
  logFile: string;
  pid: number;
  /** The metrics URL the agent printed (when metricsListen was configured). */
  metricsUrl?: string;
  /** Everything the current agent process wrote to stdout / stderr so far. */
  stdout(): string;
  stderr(): string;
  /** A new client of this agent's socket (closed by stop()). */
  client(options?: AgentClientOptions): AgentClient;
  /** The log file's JSON lines, parsed. */
  logLines(): Promise<Array<Record<string, unknown>>>;
  /** SIGTERM, wait for the exit; resolves with the exit code; removes the temporary directory. */
  stop(): Promise<number | null>;
  /** Sends a signal (default SIGKILL) and waits for the process to end. */
  kill(signal?: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Sends SIGHUP and waits until the agent logs that it reloaded (or refused) the config. */
  reload(): Promise<void>;
  /** Stops the agent (SIGTERM, or the given signal) and starts a new one with the same config. */
  restart(signal?: NodeJS.Signals): Promise<void>;
  /** Resolves when the current process exits. */
  exited(): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const children = new Set<ChildProcess>();
// Agent directories not removed by stop() (tests that kill() an agent, or fail before stop()):
// removed when the test process exits, so no /tmp/akv-agent-test-* is left behind.
const agentDirs = new Set<string>();
process.on('exit', () => {
  for (const child of children) child.kill('SIGKILL');
  for (const dir of agentDirs) rmSync(dir, { recursive: true, force: true });
});

/** Environment variables that would override the config file the helper writes. */
const OVERRIDING_ENV = [
  'AKV_CONFIG',
  'AKV_AGENT_SOCKET',
  'AKV_LOG_FILE',
  'AKV_LOG_LEVEL',
  'AZURE_CLI_ACCESS_TOKEN',
];

interface Proc {
  child: ChildProcess;
  out: string;
  err: string;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

function spawnAgent(
  configFile: string,
  extraEnv: Record<string, string>,
  extraArgs: string[] = [],
): Proc {
  const env: NodeJS.ProcessEnv = { ...process.env, ...extraEnv };
  for (const name of OVERRIDING_ENV) if (!(name in extraEnv)) delete env[name];
  const child = spawn(AKV_BIN, ['agent', '--config', configFile, ...extraArgs], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env,
  });
  children.add(child);
  const proc: Proc = {
    child,
    out: '',
    err: '',
    exit: new Promise((resolve) =>
      child.once('exit', (code, signal) => {
        children.delete(child);
        resolve({ code, signal });
      }),
    ),
  };
  child.stdout?.on('data', (c: Buffer) => (proc.out += c.toString()));
  child.stderr?.on('data', (c: Buffer) => (proc.err += c.toString()));
  return proc;
}

async function waitForReady(proc: Proc): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const ready = new Promise<void>((resolve) => {
    const check = (): void => {
      if (/^akv agent listening on /m.test(proc.out)) resolve();
    };
    proc.child.stdout?.on('data', check);
    check();
  });
  const failed = proc.exit.then(({ code, signal }) => {
    throw new Error(
      `agent exited (${code ?? signal}) before it was ready; stderr: ${proc.err}; stdout: ${proc.out}`,
    );
  });
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      proc.child.kill('SIGKILL');
      reject(new Error(`agent did not start within 30 s; stderr: ${proc.err}`));
    }, 30_000);
  });
  try {
    await Promise.race([ready, failed, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

export async function startAgent(options: StartAgentOptions): Promise<RunningAgent> {
  const dir = await mkdtemp(join(tmpdir(), 'akv-agent-test-'));
  agentDirs.add(dir);
  const socket = join(dir, 'akv', 'agent.sock');
  const configFile = join(dir, 'config.json');
  const logFile = join(dir, 'agent.log');
  const { emulator } = options;
  const config = {
    socket,
    ...emulatorConfig(emulator, options.hsmName),
    log: { level: 'info', file: logFile },
    ...options.extraConfig,
  };
  await writeFile(configFile, JSON.stringify(config, null, 2));
  const extraEnv = options.env ?? {};

  let proc = spawnAgent(configFile, extraEnv, options.args);
  try {
    await waitForReady(proc);
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  const clients = new Set<AgentClient>();

  const kill = async (signal: NodeJS.Signals = 'SIGKILL') => {
    const current = proc;
    current.child.kill(signal);
    return current.exit;
  };

  const agent: RunningAgent = {
    dir,
    socket,
    configFile,
    logFile,
    pid: proc.child.pid ?? 0,
    stdout: () => proc.out,
    stderr: () => proc.err,
    client: (clientOptions) => {
      const c = new AgentClient(socket, clientOptions);
      clients.add(c);
      return c;
    },
    logLines: async () => {
      const text = await readFile(logFile, 'utf8').catch(() => '');
      return text
        .split('\n')
        .filter((l) => l.trim() !== '')
        .map((l) => JSON.parse(l) as Record<string, unknown>);
    },
    stop: async () => {
      await Promise.all([...clients].map((c) => c.close()));
      const { code } = await kill('SIGTERM');
      await rm(dir, { recursive: true, force: true });
      return code;
    },
    kill,
    reload: async () => {
      const before = (await agent.logLines()).length;
      proc.child.kill('SIGHUP');
      for (let i = 0; i < 300; i++) {
        const lines = (await agent.logLines()).slice(before);
        if (lines.some((l) => typeof l.msg === 'string' && l.msg.startsWith('SIGHUP'))) return;
        await new Promise((r) => setTimeout(r, 50));
      }
      throw new Error('the agent did not log a SIGHUP reload within 15 s');
    },
    restart: async (signal: NodeJS.Signals = 'SIGTERM') => {
      await kill(signal);
      proc = spawnAgent(configFile, extraEnv, options.args);
      await waitForReady(proc);
      agent.pid = proc.child.pid ?? 0;
    },
    exited: () => proc.exit,
  };
  const metrics = /^akv agent metrics on (\S+)$/m.exec(proc.out);
  if (metrics) agent.metricsUrl = metrics[1];
  return agent;
}

export interface AgentWithEmulator {
  emulator: RunningEmulator;
  agent: RunningAgent;
  /** Stops the agent, then the emulator. */
  stop(): Promise<void>;
}

/**
 * A fresh emulator holding one EC P-256 key, and an agent for it with metrics on a free port: the
 * fixture of the agent tests that exercise the agent itself rather than the key operations. If the
 * agent does not start, the emulator is stopped before the error is passed on.
 */
export async function startAgentWithEcKey(
  hsmName: string,
  keyName: string,
): Promise<AgentWithEmulator> {
  const emulator = await startEmulator();
  let agent: RunningAgent;
  try {
    await emulator.keyClient().createKey(keyName, 'EC-HSM', { curve: 'P-256' });
    agent = await startAgent({
      emulator,
      hsmName,
      extraConfig: { metricsListen: '127.0.0.1:0' },
    });
  } catch (err) {
    await emulator.stop();
    throw err;
  }
  return {
    emulator,
    agent,
    stop: async () => {
      await agent.stop();
      await emulator.stop();
    },
  };
}
