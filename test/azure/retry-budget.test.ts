/**
 * The retry budget on a clock the test moves: the floor, the share of first attempts, and the
 * 10-second window sliding so the budget refills.
 */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { RetryBudget, WINDOW_MS } from '../../src/azure/retry-budget.js';

function budgetAt(clock: { now: number }, budgetPercent: number, budgetMinRetries: number) {
  return new RetryBudget({ budgetPercent, budgetMinRetries }, () => clock.now);
}

it('allows the floor, then only the share of first attempts', () => {
  const clock = { now: 1_000_000 };
  const budget = budgetAt(clock, 20, 3);
  for (let i = 0; i < 10; i++) budget.recordAttempt();
  // 20 % of 10 is 2, below the floor of 3.
  assert.deepEqual([budget.tryRetry(), budget.tryRetry(), budget.tryRetry()], [true, true, true]);
  assert.equal(budget.tryRetry(), false);
  for (let i = 0; i < 40; i++) budget.recordAttempt();
  // 20 % of 50 is 10: seven more.
  let granted = 0;
  while (budget.tryRetry()) granted++;
  assert.equal(granted, 7);
  assert.deepEqual(budget.totals(), { attempts: 50, retries: 10 });
});

it('refills as the window slides past the old retries', () => {
  const clock = { now: 5_000_000 };
  const budget = budgetAt(clock, 0, 2);
  budget.recordAttempt();
  assert.equal(budget.tryRetry(), true);
  clock.now += 4000;
  assert.equal(budget.tryRetry(), true);
  assert.equal(budget.tryRetry(), false, 'two in the window');
  clock.now += WINDOW_MS - 3000; // the first retry has left the window, the second not
  assert.equal(budget.tryRetry(), true);
  assert.equal(budget.tryRetry(), false);
  clock.now += WINDOW_MS;
  assert.deepEqual(budget.totals(), { attempts: 0, retries: 0 });
  assert.equal(budget.tryRetry(), true);
});

it('a zero budget never retries', () => {
  const budget = budgetAt({ now: 0 }, 0, 0);
  for (let i = 0; i < 100; i++) budget.recordAttempt();
  assert.equal(budget.tryRetry(), false);
});
