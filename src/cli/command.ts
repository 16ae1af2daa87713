/**
 * The shape every `akv` sub-command module exports, so that `main.ts` can list, describe and run
 * them without knowing their internals. Each command lives in `commands/<name>.ts`.
 */
export interface Command {
  /** One line for `akv --help`. */
  summary: string;
  /** Full text for `akv <name> --help`. */
  usage: string;
  /** Runs the command; the resolved value is the process exit status. */
  run(argv: string[]): Promise<number>;
}

/** An error whose message is meant for the person at the terminal (no stack trace). */
export class UsageError extends Error {
  override name = 'UsageError';
}

/** True when argv asks for help (`-h` / `--help`) anywhere. */
export function wantsHelp(argv: string[]): boolean {
  return argv.includes('--help') || argv.includes('-h');
}
