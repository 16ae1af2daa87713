/**
 * A retry budget shared by every request to one HSM. Retrying is right for one request that hit a
 * passing fault, and wrong for a fleet of requests hammering an HSM that is already over its
 * limit: there every retry is one more request the HSM must refuse. So retries are allowed only
 * while, over the last WINDOW_MS, they stay within `budgetPercent` of the first attempts, or
 * within the floor `budgetMinRetries` (so that a quiet agent still retries its few failures).
 * Once spent, a failing request fails at once with the HSM's own status; the budget refills as
 * the window slides. The window is kept in one-second buckets.
 */

export const WINDOW_MS = 10_000;
const BUCKET_MS = 1000;
const BUCKETS = WINDOW_MS / BUCKET_MS;

export interface RetryBudgetPolicy {
  /** Retries allowed as a share of first attempts in the window, in percent. */
  budgetPercent: number;
  /** Retries always allowed in the window, whatever the share. */
  budgetMinRetries: number;
}

export class RetryBudget {
  private readonly attempts = new Array<number>(BUCKETS).fill(0);
  private readonly retries = new Array<number>(BUCKETS).fill(0);
  /** The second each bucket holds counts of. */
  private readonly stamps = new Array<number>(BUCKETS).fill(-1);

  constructor(
    readonly policy: RetryBudgetPolicy,
    private readonly now: () => number = Date.now,
  ) {}

  /** A request's first attempt. */
  recordAttempt(): void {
    this.attempts[this.bucket()]!++;
  }

  /** Takes one retry from the budget; false when it is spent (the caller must not retry). */
  tryRetry(): boolean {
    const { attempts, retries } = this.totals();
    const allowed = Math.max(
      this.policy.budgetMinRetries,
      Math.floor((attempts * this.policy.budgetPercent) / 100),
    );
    if (retries >= allowed) return false;
    this.retries[this.bucket()]!++;
    return true;
  }

  /** First attempts and retries in the window (for messages). */
  totals(): { attempts: number; retries: number } {
    const second = Math.floor(this.now() / BUCKET_MS);
    let attempts = 0;
    let retries = 0;
    for (let i = 0; i < BUCKETS; i++) {
      if (second - this.stamps[i]! < BUCKETS) {
        attempts += this.attempts[i]!;
        retries += this.retries[i]!;
      }
    }
    return { attempts, retries };
  }

  /** The current second's bucket, emptied first when it last held an older second. */
  private bucket(): number {
    const second = Math.floor(this.now() / BUCKET_MS);
    const i = second % BUCKETS;
    if (this.stamps[i] !== second) {
      this.stamps[i] = second;
      this.attempts[i] = 0;
      this.retries[i] = 0;
    }
    return i;
  }
}
