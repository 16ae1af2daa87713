#!/usr/bin/env node
/**
 * `akv` entry point: finds the sub-command module in `commands/` and runs it.
 * Commands are loaded lazily so that a quick command does not pay for the Azure SDK's import cost.
 */
import type { Command } from './command.js';
import { UsageError } from './command.js';
import { withHint } from '../errors.js';
import { akvVersion } from '../version.js';

/** Sub-commands in the order `akv --help` lists them; each maps to `commands/<file>.js`. */
const COMMANDS: Record<string, string> = {
  emulator: 'emulator',
  agent: 'agent',
  dev: 'dev',
  key: 'key',
  keyref: 'keyref',
  sign: 'sign',
  verify: 'verify',
  encrypt: 'encrypt',
  decrypt: 'decrypt',
  wrap: 'wrap',
  unwrap: 'unwrap',
  doctor: 'doctor',
  ping: 'ping',
  pkcs11: 'pkcs11',
};

async function loadCommand(name: string): Promise<Command | undefined> {
  const file = COMMANDS[name];
  if (file === undefined) return undefined;
  try {
    const mod = (await import(`./commands/${file}.js`)) as { default: Command };
    return mod.default;
  } catch (err) {
    if (
      (err as NodeJS.ErrnoException).code === 'ERR_MODULE_NOT_FOUND' &&
      String(err).includes(`/commands/${file}.js`)
    ) {
      return undefined;
    }
    throw err;
  }
}

async function printHelp(): Promise<void> {
  const lines = ['Usage: akv <command> [options]', '', 'Commands:'];
  for (const name of Object.keys(COMMANDS)) {
    const cmd = await loadCommand(name);
    if (cmd) lines.push(`  ${name.padEnd(10)} ${cmd.summary}`);
  }
  lines.push(
    '',
    'Options:',
    '  --version  print the version of akv',
    '  --help     this list',
    '',
    'Run `akv <command> --help` for the options of one command.',
  );
  console.log(lines.join('\n'));
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    await printHelp();
    return name === undefined ? 2 : 0;
  }
  if (name === '--version') {
    console.log(`akv ${akvVersion()}`);
    return 0;
  }
  const cmd = await loadCommand(name);
  if (!cmd) {
    console.error(`akv: unknown command '${name}'. Run \`akv --help\` for the list of commands.`);
    return 2;
  }
  return cmd.run(rest);
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    if (err instanceof UsageError) {
      console.error(`akv: ${err.message}`);
      process.exitCode = 2;
    } else {
      const e = err as Error & { hint?: string };
      console.error(`akv: ${withHint(e.message ?? String(err), e.hint)}`);
      if (process.env.AKV_DEBUG) console.error(e.stack);
      process.exitCode = 1;
    }
  },
);
