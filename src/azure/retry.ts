/**
 * Runs one HSM call with retries (429, 5xx, connection resets) and exponential backoff with jitter,
 * honouring Retry-After, all bounded by a per-operation deadline that aborts the request in flight.
 * The SDK's own retry policy is switched off (maxRetries: 0) so the two never multiply. Retries
 * also need the HSM's shared retry budget (retry-budget.ts): when it is spent, the failure is
 * final at once.
 */
import type { RetryConfig } from '../config/types.js';
import { AkvError } from '../errors.js';
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
  onRetry?(kind: FailureKind, attempt: number, delayMs: number): void;
  /** The HSM's shared budget: counts this call's first attempt, grants (or refuses) its retries. */
  budget?: RetryBudget;
  /** A retry was refused because the budget was spent. */
  onBudgetSpent?(kind: FailureKind): void;
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

export async function withRetries<T>(
  ctx: OpContext,
  options: RetryOptions,
  call: (signal: AbortSignal) => Promise<T>,
): Promise<RetryResult<T>> {
  const deadline = options.deadline ?? Date.now() + options.deadlineMs;
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), Math.max(0, deadline - Date.now()));
  timer.unref?.();
  let retries = 0;
  options.budget?.recordAttempt();
  try {
    for (;;) {
      try {
        return { value: await call(controller.signal), retries };
      } catch (err) {
        if (controller.signal.aborted || isAbortError(err)) {
          throw toAkvError(abortError(), ctx, retries, options.deadlineMs);
        }
        const c = classify(err);
        if (!isRetryable(c, options.idempotent ?? true) || retries >= options.retry.maxRetries) {
          throw toAkvError(err, ctx, retries, options.deadlineMs);
        }
        const attempt = retries + 1;
        const delay =
          c.retryAfterMs !== undefined
            ? c.retryAfterMs
            : backoffDelay(attempt, options.retry, options.random);
        // Sleeping past the deadline only to fail then helps nobody: report the real cause now.
        if (Date.now() + delay >= deadline) throw toAkvError(err, ctx, retries, options.deadlineMs);
        if (options.budget && !options.budget.tryRetry()) {
          options.onBudgetSpent?.(c.kind);
          throw budgetSpent(toAkvError(err, ctx, retries, options.deadlineMs), ctx, options);
        }
        options.onRetry?.(c.kind, attempt, delay);
        await sleep(delay, controller.signal);
        if (controller.signal.aborted)
          throw toAkvError(abortError(), ctx, retries, options.deadlineMs);
        retries = attempt;
      }
    }
  } finally {
    clearTimeout(timer);
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

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (ms <= 0 || signal.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}

function abortError(): Error {
  const e = new Error('deadline reached');
  e.name = 'AbortError';
  return e;
}
