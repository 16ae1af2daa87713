/**
 * `akv agent [--socket PATH] [--config FILE]`: runs the agent in the foreground (src/agent/).
 */
import { parseArgs } from 'node:util';
import type { Command } from '../command.js';
import { UsageError, wantsHelp } from '../command.js';
import { errorMessage } from '../../errors.js';

const usage = `Usage: akv agent [--socket PATH] [--config FILE] [--idle-exit SECONDS]

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

const command: Command = {
  summary: 'run the agent that performs key operations for the provider (foreground)',
  usage,
  async run(argv: string[]): Promise<number> {
    if (wantsHelp(argv)) {
      console.log(usage);
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
      throw new UsageError(`${errorMessage(err)}\n\n${usage}`);
    }
    if (values.socket === '') throw new UsageError('--socket needs a path');
    const idleExit = values['idle-exit'];
    if (idleExit !== undefined && !/^\d{1,8}$/.test(idleExit))
      throw new UsageError(
        `--idle-exit takes a number of seconds (0 = never), got ${JSON.stringify(idleExit)}`,
      );
    // Loaded here so that `akv agent --help` does not pay for the Azure SDK import.
    const { runAgent } = await import('../../agent/agent.js');
    const code = await runAgent(
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
  },
};

export default command;
