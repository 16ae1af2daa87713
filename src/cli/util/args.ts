/**
 * Option parsing shared by the CLI commands: node:util parseArgs in strict mode, with errors
 * turned into UsageError (a message for the person, exit status 2) and the `az`-style repeated
 * list option (`--ops sign verify`).
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { UsageError } from '../command.js';
import { errorMessage } from '../../errors.js';

type Options = NonNullable<ParseArgsConfig['options']>;

export interface Parsed {
  values: Record<string, string | boolean | (string | boolean)[] | undefined>;
  positionals: string[];
}

/**
 * Parses argv for `command`; `listOptions` names options that take several following words
 * (`--ops sign verify --size 2048` gives ops = ['sign', 'verify']).
 */
export function parseOptions(
  command: string,
  argv: string[],
  options: Options,
  listOptions: string[] = [],
  allowPositionals = false,
): Parsed {
  const expanded = expandListOptions(argv, listOptions);
  try {
    const { values, positionals } = parseArgs({
      args: expanded,
      options,
      strict: true,
      allowPositionals,
    });
    return { values, positionals };
  } catch (err) {
    throw new UsageError(
      `${command}: ${errorMessage(err).replace(/\. To specify a positional.*$/s, '')}. Run \`akv ${command} --help\`.`,
    );
  }
}

/** Turns `--ops a b c` into `--ops a --ops b --ops c` (and `--ops a,b` into two as well). */
function expandListOptions(argv: string[], listOptions: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    const name = arg.startsWith('--') ? (arg.slice(2).split('=')[0] ?? '') : '';
    if (!listOptions.includes(name)) {
      out.push(arg);
      continue;
    }
    const words: string[] = [];
    if (arg.includes('=')) words.push(arg.slice(arg.indexOf('=') + 1));
    else {
      while (i + 1 < argv.length && !(argv[i + 1] ?? '').startsWith('-'))
        words.push(argv[++i] ?? '');
    }
    for (const w of words.flatMap((x) => x.split(',')).filter((x) => x !== ''))
      out.push(`--${name}`, w);
    if (words.length === 0) out.push(arg); // parseArgs reports the missing value
  }
  return out;
}

export function str(p: Parsed, name: string): string | undefined {
  const v = p.values[name];
  return typeof v === 'string' ? v : undefined;
}

export function requireStr(p: Parsed, command: string, name: string, what: string): string {
  const v = str(p, name);
  if (v === undefined || v === '')
    throw new UsageError(
      `${command}: --${name} ${what} is required. Run \`akv ${command} --help\`.`,
    );
  return v;
}

export function list(p: Parsed, name: string): string[] {
  const v = p.values[name];
  return Array.isArray(v) ? v.map(String) : typeof v === 'string' ? [v] : [];
}

export function flag(p: Parsed, name: string): boolean {
  return p.values[name] === true;
}

export function int(p: Parsed, command: string, name: string): number | undefined {
  const v = str(p, name);
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v))
    throw new UsageError(`${command}: --${name} must be a whole number, got ${JSON.stringify(v)}`);
  return Number(v);
}
