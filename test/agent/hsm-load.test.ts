/**
 * What the agent asks of the HSM under load (issue 13): a throttling HSM gets a bounded share of
 * retries however many requests fail (the retry budget), and a herd of first operations on a key
 * costs one GET. Counted by the emulator itself.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { AkvError } from '../../src/errors.js';
import { settleChallenge, startEmulator, type RunningEmulator } from '../helpers/emulator.js';
import { startAgent, type RunningAgent } from '../helpers/agent.js';

const HSM = 'loadhsm';
const EC = `managedhsm:${HSM}:ec`;
const DIGEST = createHash('sha256').update('load').digest();

let emulator: RunningEmulator;

before(async () => {
  emulator = await startEmulator();
  const keys = emulator.keyClient();
  await settleChallenge(keys);
  await keys.createKey('ec', 'EC-HSM', { curve: 'P-256' });
});

after(async () => {
  await emulator?.clearFaults();
  await emulator?.stop();
});

async function metric(agent: RunningAgent, line: string): Promise<number> {
  const text = await (await fetch(agent.metricsUrl!)).text();
  const found = text.split('\n').find((l) => l.startsWith(`${line} `));
  return found ? Number(found.slice(line.length + 1)) : 0;
}

describe('a throttling HSM', () => {
  let agent: RunningAgent;
  before(async () => {
    agent = await startAgent({
      emulator,
      hsmName: HSM,
      extraConfig: {
        metricsListen: '127.0.0.1:0',
        retry: { maxRetries: 5, baseDelayMs: 5, maxDelayMs: 20 },
      },
    });
    await agent.client().sign(EC, 'ES256', DIGEST);
  });
  after(async () => {
    await agent?.stop();
  });

  it('gets at most 20 % more requests (or 10) than there are operations: the retry budget', async () => {
    await emulator.resetStats();
    await emulator.setFaults({ mode: 'throttle', operations: ['sign'] });
    const client = agent.client();
    const results = await Promise.allSettled(
      Array.from({ length: 100 }, () => client.sign(EC, 'ES256', DIGEST)),
    );
    const signRequests = (await emulator.stats()).requests.sign ?? 0;
    await emulator.clearFaults();
    // Without a budget each operation is tried 6 times: 600 requests.
    assert.ok(signRequests <= 100 + 20, `${signRequests} sign requests for 100 operations`);
    const errors = results.map((r) => (r.status === 'rejected' ? (r.reason as AkvError) : null));
    assert.ok(errors.every((e) => e?.code === 'THROTTLED'));
    const spent = errors.filter((e) => /retry budget for loadhsm is spent/.test(e!.message));
    assert.ok(spent.length >= 50, `${spent.length} say the budget was spent`);
    assert.match(spent[0]!.hint ?? '', /lower the request rate/);
    assert.equal(
      await metric(agent, 'akv_agent_hsm_retry_budget_spent_total{kind="throttled"}'),
      spent.length,
    );
    assert.equal((await client.sign(EC, 'ES256', DIGEST)).output.length, 64);
  });
});

describe('a herd of first operations', () => {
  it('costs one GET, also after a restart: 300 signatures are 300 signs and 1 GET', async () => {
    const pinned = (await emulator.keyClient().getKey('ec')).properties.version!;
    const agent = await startAgent({ emulator, hsmName: HSM });
    try {
      for (const round of ['fresh agent', 'after a restart']) {
        await emulator.resetStats();
        const client = agent.client();
        const results = await Promise.all(
          Array.from({ length: 300 }, (_, i) =>
            client.sign(i % 2 ? EC : `${EC}?version=${pinned}`, 'ES256', DIGEST),
          ),
        );
        assert.ok(results.every((r) => r.version === pinned));
        const { requests } = await emulator.stats();
        // Before: every first operation fetched the key itself (300 signatures, 600 requests).
        assert.equal(requests.sign, 300, round);
        assert.equal(requests.get ?? 0, 1, `${round}: GETs (one authenticates the HSM)`);
        await client.close();
        await agent.restart();
      }
    } finally {
      await agent.stop();
    }
  });
});
