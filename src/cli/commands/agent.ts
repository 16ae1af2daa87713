/**
 * `akv agent [--socket PATH] [--config FILE]`: runs the agent in the foreground (src/agent/; its
 * command line is ../agent-arguments.ts). bin/akv runs the agent's own bundled entry point for
 * `akv agent` (../agent-main.ts); this is the same command reached through the CLI's.
 */
import type { Command } from '../command.js';
import { AGENT_SUMMARY, AGENT_USAGE, runAgentCommand } from '../agent-arguments.js';

const command: Command = {
  summary: AGENT_SUMMARY,
  usage: AGENT_USAGE,
  run: (argv) =>
    // Loaded here so that `akv agent --help` does not pay for the agent's import.
    runAgentCommand(argv, async () => (await import('../../agent/agent.js')).runAgent),
};

export default command;
