/**
 * One error type for everything a person may have to act on: a stable code (the agent protocol's
 * status names, docs/protocol.md), a message that says what failed, and a hint that says what to do.
 */
export const STATUS_CODES = {
  OK: 0,
  BAD_REQUEST: 1,
  BAD_URI: 2,
  KEY_NOT_FOUND: 3,
  FORBIDDEN: 4,
  UNAUTHORIZED: 5,
  THROTTLED: 6,
  UNAVAILABLE: 7,
  TIMEOUT: 8,
  UNSUPPORTED: 9,
  KEY_DISABLED: 10,
  BAD_PARAMETER: 11,
  INTERNAL: 12,
} as const;

export type StatusName = keyof typeof STATUS_CODES;

export class AkvError extends Error {
  override name = 'AkvError';
  constructor(
    readonly code: Exclude<StatusName, 'OK'>,
    message: string,
    readonly hint?: string,
    /** How many times the HSM call was retried before this error (0 when not applicable). */
    readonly retries = 0,
  ) {
    super(message);
  }

  get status(): number {
    return STATUS_CODES[this.code];
  }

  /** The message and the hint in one sentence, as the provider and CLI show it. */
  get fullMessage(): string {
    return this.hint ? `${this.message}: ${this.hint}` : this.message;
  }
}

export function statusName(status: number): StatusName | undefined {
  return (Object.keys(STATUS_CODES) as StatusName[]).find((k) => STATUS_CODES[k] === status);
}
