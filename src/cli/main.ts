/**
 * `akv` entry point: finds the sub-command module in `commands/` and runs it.
 * Commands are loaded lazily so that a quick command does not pay for the Azure SDK's import cost.
 * bin/akv runs the bundle of this file (dist/bundle/akv.cjs, scripts/bundle.mjs), except for
 * `akv agent`, which has an entry of its own (src/cli/agent-main.ts).
 */
import '../started.js'; // first: it notes when akv's own code started
import type { Command } from './command.js';
import { COMMANDS, LOAD_COMMAND, isCommandName } from './command-list.js';
import { finish } from './finish.js';
import { HELP_TOPICS } from './help/topics.js';

async function loadCommand(name: string): Promise<Command | undefined> {
  if (!isCommandName(name)) return undefined;
  return (await LOAD_COMMAND[name]()).default;
}

function printHelp(): void {
  const lines = ['Usage: akv <command> [options]', '', 'Commands:'];
  for (const [name, summary] of Object.entries(COMMANDS))
    lines.push(`  ${name.padEnd(10)} ${summary}`);
  lines.push('', 'Topics (akv help <topic>):');
  for (const [name, topic] of Object.entries(HELP_TOPICS))
    lines.push(`  ${name.padEnd(10)} ${topic.summary}`);
  lines.push(
    '',
    'Options:',
    '  --version  print the versions of akv, of the agent it reaches and of the provider',
    '  --help     this list',
    '',
    'Run `akv <command> --help` for the options of one command.',
  );
  console.log(lines.join('\n'));
}

/** `akv help <command|topic>`: the command's --help text, or a topic (HELP_TOPICS). */
async function printHelpOn(name: string): Promise<number> {
  const topic = HELP_TOPICS[name];
  const cmd = topic === undefined ? await loadCommand(name) : undefined;
  if (topic === undefined && cmd === undefined) {
    console.error(`akv help: no command or topic '${name}'. Run \`akv --help\` for the list.`);
    return 2;
  }
  console.log(topic?.text ?? cmd?.usage);
  return 0;
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === 'help' && rest[0] !== undefined) return printHelpOn(rest[0]);
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    printHelp();
    return name === undefined ? 2 : 0;
  }
  if (name === '--version' || name === '-V') {
    const { printVersions } = await import('./version-report.js');
    return printVersions();
  }
  const cmd = await loadCommand(name);
  if (!cmd) {
    console.error(`akv: unknown command '${name}'. Run \`akv --help\` for the list of commands.`);
    return 2;
  }
  return cmd.run(rest);
}

finish(main(process.argv.slice(2)));
