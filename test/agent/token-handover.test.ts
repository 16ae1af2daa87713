/**
 * Which handed-over AZURE_CLI_ACCESS_TOKEN replaces the one in use (src/agent/token-handover.ts):
 * a hostile run sent 2,000 distinct tokens in HELLO and every one rebuilt the HSM clients (RSS
 * 69 → 380 MB). Not newer: ignored; newer or not comparable: used, one swap per interval.
 */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { SWAP_INTERVAL_MS, TokenHandover } from '../../src/agent/token-handover.js';

const jwt = (exp: number): string =>
  `${Buffer.from('{"alg":"none"}').toString('base64url')}.${Buffer.from(JSON.stringify({ exp })).toString('base64url')}.sig`;

it('a JWT that is not newer is ignored; a newer one is used', () => {
  let now = 1_000_000;
  const h = new TokenHandover(() => now);
  assert.equal(h.judge(jwt(2000), jwt(2000)), 'same');
  assert.equal(h.judge(jwt(2000), jwt(1999)), 'not-newer');
  assert.equal(h.judge(jwt(2000), jwt(2000).replace('sig', 'other')), 'not-newer');
  assert.equal(h.judge(jwt(2000), jwt(2001)), 'use');
  now += SWAP_INTERVAL_MS;
  assert.equal(h.judge(undefined, jwt(5)), 'use', 'none in use');
});

it('2,000 distinct tokens handed over at once cause one swap, not 2,000', () => {
  let now = 5_000_000;
  const h = new TokenHandover(() => now);
  let current: string | undefined = 'opaque-start';
  let swaps = 0;
  for (let i = 0; i < 2000; i++) {
    // Opaque tokens (not comparable) and ever later JWTs alike.
    const next = i % 2 === 0 ? `opaque-${i}` : jwt(10_000 + i);
    if (h.judge(current, next) === 'use') {
      swaps++;
      current = next;
    }
    now += 1; // 2 s in all
  }
  assert.equal(swaps, 1);
  now += SWAP_INTERVAL_MS;
  assert.equal(h.judge(current, 'opaque-later'), 'use', 'a real refresh still gets through');
});
