/** The result of one `akv doctor` check, as printed (`[ ok ]`, `[FAIL]`, ...) and in --json. */
import { AkvError, errorMessage } from '../../errors.js';

export type Status = 'ok' | 'fail' | 'warn' | 'skip';

export interface Outcome {
  status: Status;
  detail: string;
  hint?: string;
}

export const ok = (detail: string): Outcome => ({ status: 'ok', detail });
export const fail = (detail: string, hint: string): Outcome => ({ status: 'fail', detail, hint });
export const skip = (detail: string): Outcome => ({ status: 'skip', detail });

export function fromError(err: unknown, fallbackHint: string): Outcome {
  if (err instanceof AkvError) return fail(err.message, err.hint ?? fallbackHint);
  return fail(errorMessage(err), fallbackHint);
}
