/**
 * A note on stderr when the CLI waits longer than PROGRESS_AFTER_MS (starting the agent, an HSM
 * that throttles, `ping --wait`): nothing for quick operations, one line otherwise. On a terminal
 * the line shows the seconds waited and is cleared when the wait ends; elsewhere (a log, a pipe)
 * it is written once, without control characters, so logs stay readable.
 */
export const PROGRESS_AFTER_MS = 2000;

export interface Progress {
  /** Ends the wait: clears the terminal line (or does nothing when nothing was printed). */
  done(): void;
}

export function waitNote(message: string, stream: NodeJS.WriteStream = process.stderr): Progress {
  const started = Date.now();
  const tty = stream.isTTY === true;
  let shown = false;
  let ticker: NodeJS.Timeout | undefined;
  const show = (): void => {
    const seconds = Math.round((Date.now() - started) / 1000);
    if (tty) stream.write(`\r\x1b[2Kakv: ${message} (${seconds} s)`);
    else if (!shown) stream.write(`akv: ${message} ...\n`);
    shown = true;
  };
  const first = setTimeout(() => {
    show();
    if (tty) ticker = setInterval(show, 1000).unref();
  }, PROGRESS_AFTER_MS).unref();
  return {
    done() {
      clearTimeout(first);
      if (ticker) clearInterval(ticker);
      if (shown && tty) stream.write('\r\x1b[2K');
    },
  };
}

/** Runs `work` with a wait note shown while it takes longer than PROGRESS_AFTER_MS. */
export async function withWaitNote<T>(message: string, work: () => Promise<T>): Promise<T> {
  const note = waitNote(message);
  try {
    return await work();
  } finally {
    note.done();
  }
}
