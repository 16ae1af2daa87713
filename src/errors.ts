/**
 * One error type for everything a person may have to act on: a stable code (the agent protocol's
 * status names, src/protocol/constants.ts), a message that says what failed, and a hint that says
 * what to do. Every surface shows the two the same way (withHint): the provider's OpenSSL error,
 * the CLI, doctor, the examples' scripts and the demo.
 */
import { Status } from './protocol/constants.js';
import type { StatusName } from './protocol/constants.js';

export type ErrorCode = Exclude<StatusName, 'OK'>;

/** `message; hint: hint`, or the message alone: the one way an error and its hint are printed. */
export function withHint(message: string, hint?: string): string {
  return hint ? `${message}; hint: ${hint}` : message;
}

export class AkvError extends Error {
  override name = 'AkvError';
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly hint?: string,
    /** How many times the HSM call was retried before this error (0 when not applicable). */
    readonly retries = 0,
  ) {
    super(message);
  }

  get status(): number {
    return Status[this.code];
  }

  /** The message and the hint as every surface prints them (withHint). */
  get fullMessage(): string {
    return withHint(this.message, this.hint);
  }
}

/** What anything thrown says: an Error's message, anything else as text. */
export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** A Node.js system error (fs, net, child_process) that carries its code: ENOENT, EEXIST, EPERM ... */
export function isErrnoException(err: unknown): err is NodeJS.ErrnoException {
  return err instanceof Error && 'code' in err && typeof err.code === 'string';
}

/** The code of a Node.js system error, undefined for anything else. */
export function errnoCode(err: unknown): string | undefined {
  return isErrnoException(err) ? err.code : undefined;
}
