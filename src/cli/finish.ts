/**
 * How an entry point ends (src/cli/main.ts for every command, src/cli/agent-main.ts for `akv agent`
 * alone): the command's status becomes the exit code; a UsageError prints its message (exit 2),
 * any other error its message and hint (exit 1), with the stack when AKV_DEBUG is set.
 */
import { UsageError } from './command.js';
import { errorMessage, withHint } from '../errors.js';
import { isRecord } from '../guards.js';

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
        // An AkvError, or any error that carries a hint the same way.
        const hint = isRecord(err) && typeof err.hint === 'string' ? err.hint : undefined;
        console.error(`akv: ${withHint(errorMessage(err), hint)}`);
        if (process.env.AKV_DEBUG) console.error(err instanceof Error ? err.stack : err);
        process.exitCode = 1;
      }
    },
  );
}
