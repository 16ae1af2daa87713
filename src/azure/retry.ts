/**
 * Runs one HSM call with retries (429, 5xx, connection resets) and exponential backoff with jitter,
 * honouring Retry-After, all bounded by a per-operation deadline that aborts the request in flight.
 * The SDK's own retry policy is switched off (maxRetries: 0) so the two never multiply. Retries
 * also need the HSM's shared retry budget (retry-budget.ts): when it is spent, the failure is
 * final at once.
 */
import type { RetryConfig } from '../config/types.js';
import { AkvError } from '../errors.js';
import { Deadline, abortError } from './abort.js';
import { WINDOW_MS, type RetryBudget } from './retry-budget.js';
import {
  classify,
  isAbortError,
  isRetryable,
  toAkvError,
  type FailureKind,
  type OpContext,
} from './failures.js';

export interface RetryOptions {
  deadlineMs: number;
  /**
   * When the operation must be done (ms since the epoch); default now + deadlineMs. The agent
   * passes the request's arrival + deadlineMs, so time spent queued counts.
   */
  deadline?: number;
  retry: RetryConfig;
  /** False for create/import/delete: retried only on 429/503. */
  idempotent?: boolean;
  onRetry?(kind: FailureKind, attempt: number, delayMs: number, ctx: OpContext): void;
  /** The HSM's shared budget: counts this call's first attempt, grants (or refuses) its retries. */
  budget?: RetryBudget;
  /** A retry was refused because the budget was spent. */
  onBudgetSpent?(kind: FailureKind, ctx: OpContext): void;
  random?: () => number;
}

export interface RetryResult<T> {
  value: T;
  retries: number;
}

/** Backoff before retry number `attempt` (1-based): base·2^(attempt-1), capped, with equal jitter. */
export function backoffDelay(
  attempt: number,
  retry: RetryConfig,
  random: () => number = Math.random,
): number {
  const ceiling = Math.min(retry.maxDelayMs, retry.baseDelayMs * 2 ** (attempt - 1));
  return Math.round(ceiling / 2 + random() * (ceiling / 2));
}

/**
 * `ctx` names the call in messages; a function is only called when a message is needed (a retry
 * or a failure), so the hot path does not build one per operation.
 */
export async function withRetries<T>(
  ctx: OpContext | (() => OpContext),
  options: RetryOptions,
  call: (deadline: Deadline) => Promise<T>,
): Promise<RetryResult<T>> {
  const context = (): OpContext => (typeof ctx === 'function' ? ctx() : ctx);
  const deadline = options.deadline ?? Date.now() + options.deadlineMs;
  const until = new Deadline(deadline);
  let retries = 0;
  options.budget?.recordAttempt();
  try {
    for (;;) {
      try {
        return { value: await call(until), retries };
      } catch (err) {
        if (until.expired || isAbortError(err)) {
          throw toAkvError(abortError(), context(), retries, options.deadlineMs);
        }
        const c = classify(err);
        if (!isRetryable(c, options.idempotent ?? true) || retries >= options.retry.maxRetries) {
          throw toAkvError(err, context(), retries, options.deadlineMs);
        }
        const attempt = retries + 1;
        const delay =
          c.retryAfterMs !== undefined
            ? c.retryAfterMs
            : backoffDelay(attempt, options.retry, options.random);
        // Sleeping past the deadline only to fail then helps nobody: report the real cause now.
        if (Date.now() + delay >= deadline)
          throw toAkvError(err, context(), retries, options.deadlineMs);
        if (options.budget && !options.budget.tryRetry()) {
          const named = context();
          options.onBudgetSpent?.(c.kind, named);
          throw budgetSpent(toAkvError(err, named, retries, options.deadlineMs), named, options);
        }
        options.onRetry?.(c.kind, attempt, delay, context());
        // The wait ends before the deadline (checked above).
        await sleep(delay);
        retries = attempt;
      }
    }
  } finally {
    until.dispose();
  }
}

/** The HSM's own failure, saying why it was not retried. */
function budgetSpent(e: AkvError, ctx: OpContext, options: RetryOptions): AkvError {
  const { attempts, retries } = options.budget!.totals();
  return new AkvError(
    e.code,
    `${e.message}; not retried: the agent's retry budget for ${ctx.vault} is spent (${retries} retries for ${attempts} requests in the last ${WINDOW_MS / 1000} s, at most ${options.budget!.policy.budgetPercent} % or ${options.budget!.policy.budgetMinRetries})`,
    `the HSM is failing or over its capacity for many requests at once: lower the request rate or wait; retries resume as the budget refills${e.hint ? `. ${e.hint}` : ''}`,
    e.retries,
  );
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => (ms <= 0 ? resolve() : setTimeout(resolve, ms)));
}
