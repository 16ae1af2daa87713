/**
 * Abort helpers shared by the Azure layer: the deadline of one operation, the one shape of an
 * abort error (classified as a deadline by failures.ts), and waiting for a promise other callers
 * share without tying it to one caller's abort signal.
 */

/**
 * When an operation must be done. It hands out an AbortSignal that fires then, made only when
 * someone asks for it: the SDK's calls take one, the hot path (hsm-http.ts) keeps its own timer,
 * and an AbortController with its listeners costs about 5 µs per operation in Node 20.
 */
export class Deadline {
  private controller: AbortController | undefined;
  private timer: NodeJS.Timeout | undefined;

  /** `at`: ms since the epoch. */
  constructor(readonly at: number) {}

  get expired(): boolean {
    return Date.now() >= this.at;
  }

  get signal(): AbortSignal {
    if (!this.controller) {
      const controller = new AbortController();
      this.controller = controller;
      this.timer = setTimeout(() => controller.abort(), Math.max(0, this.at - Date.now()));
      this.timer.unref();
    }
    return this.controller.signal;
  }

  /** Stops the signal's timer (the operation is over). */
  dispose(): void {
    clearTimeout(this.timer);
  }
}

/** An Error named AbortError, as fetch and Node's http give on abort. */
export function abortError(message = 'deadline reached'): Error {
  const e = new Error(message);
  e.name = 'AbortError';
  return e;
}

/**
 * `promise`, or an AbortError (with `message`) as soon as `signal` fires; the promise itself goes
 * on for whoever else waits for it.
 */
export function raceAbort<T>(
  promise: Promise<T>,
  signal:
    | {
        aborted: boolean;
        addEventListener: AbortSignal['addEventListener'];
        removeEventListener: AbortSignal['removeEventListener'];
      }
    | undefined,
  message?: string,
): Promise<T> {
  if (!signal) return promise;
  if (signal.aborted) return Promise.reject(abortError(message));
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(abortError(message));
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(e instanceof Error ? e : new Error(String(e)));
      },
    );
  });
}
