/**
 * How an entry point ends (src/cli/main.ts for every command, src/cli/agent-main.ts for `akv agent`
 * alone): the command's status becomes the exit code; a UsageError prints its message (exit 2),
 * any other error its message and hint (exit 1), with the stack when AKV_DEBUG is set.
 */
import { UsageError } from './command.js';
import { withHint } from '../errors.js';

export function finish(status: Promise<number>): void {
  status.then(
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
}
