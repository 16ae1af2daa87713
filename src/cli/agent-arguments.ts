/**
 * `akv agent`'s command line: its --help text, its options, and running the agent with them. Both
 * ways into the agent use it: the CLI's `akv agent` (commands/agent.ts, which loads the agent
 * only when it runs) and the agent's own entry point (agent-main.ts, bundled with the agent,
 * which bin/akv runs).
 */
import { parseArgs } from 'node:util';
import { UsageError, wantsHelp } from './command.js';
import { errorMessage } from '../errors.js';
import type { runAgent } from '../agent/agent.js';

export const AGENT_SUMMARY =
  'run the agent that performs key operations for the provider (foreground)';

export const AGENT_USAGE = `Usage: akv agent [--socket PATH] [--config FILE] [--idle-exit SECONDS]

Runs the akv agent in the foreground: it listens on a Unix socket for the OpenSSL provider and
the CLI, and performs private-key operations in Azure Managed HSM / Key Vault (or the emulator).
Prints "akv agent listening on PATH" when ready. SIGTERM/SIGINT: finish requests in flight and
exit 0. SIGHUP: reload the config file (credentials, vaults, log, key cache TTL).

Options:
  --socket PATH   socket to listen on (default: config "socket", AKV_AGENT_SOCKET,
                  $XDG_RUNTIME_DIR/akv/agent.sock, or /run/akv/agent.sock for root)
  --config FILE   config file (default: AKV_CONFIG, ~/.config/akv/config.json, /etc/akv/config.json)
  --idle-exit SECONDS
                  exit (like SIGTERM) after SECONDS without a request (default: never). The
                  provider starts the user's agent on demand with AKV_AGENT_IDLE_EXIT (900)
  --autostarted   set by the provider when it starts the agent: the agent then takes a client's
                  refreshed AZURE_CLI_ACCESS_TOKEN (docs/agent.md, "Autostart")
  -h, --help      show this text

Environment: AKV_CONFIG, AKV_AGENT_SOCKET, AKV_LOG_FILE, AKV_LOG_LEVEL, AZURE_CLI_ACCESS_TOKEN.
See docs/agent.md.`;

/**
 * Runs `akv agent ARGV` in the foreground until it is told to stop; resolves with the exit status.
 * `load` gives the agent's runAgent (src/agent/agent.ts), once the arguments are known good.
 */
export async function runAgentCommand(
  argv: string[],
  load: () => Promise<typeof runAgent>,
): Promise<number> {
  if (wantsHelp(argv)) {
    console.log(AGENT_USAGE);
    return 0;
  }
  let values: { socket?: string; config?: string; 'idle-exit'?: string; autostarted?: boolean };
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        socket: { type: 'string' },
        config: { type: 'string' },
        'idle-exit': { type: 'string' },
        autostarted: { type: 'boolean' },
      },
      allowPositionals: false,
      strict: true,
    }));
  } catch (err) {
    throw new UsageError(`${errorMessage(err)}\n\n${AGENT_USAGE}`);
  }
  if (values.socket === '') throw new UsageError('--socket needs a path');
  const idleExit = values['idle-exit'];
  if (idleExit !== undefined && !/^\d{1,8}$/.test(idleExit))
    throw new UsageError(
      `--idle-exit takes a number of seconds (0 = never), got ${JSON.stringify(idleExit)}`,
    );
  const run = await load();
  const code = await run(
    {
      ...(values.config !== undefined ? { configPath: values.config } : {}),
      ...(values.socket !== undefined ? { socket: values.socket } : {}),
      ...(values.autostarted ? { autostarted: true } : {}),
    },
    idleExit !== undefined ? Number(idleExit) : 0,
  );
  // Everything is closed; should an SDK keep-alive socket linger, do not wait for it.
  setTimeout(() => process.exit(code), 2000).unref();
  return code;
}
