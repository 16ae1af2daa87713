import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { KeyDescription } from '../../src/azure/gateway.js';
import { KeyCache } from '../../src/agent/key-cache.js';
import type { KeyRef } from '../../src/uri/index.js';

const ref = (name: string, version?: string): KeyRef =>
  version === undefined
    ? { vaultType: 'managedhsm', vault: 'MyHSM', name }
    : { vaultType: 'managedhsm', vault: 'MyHSM', name, version };

function description(version: string): KeyDescription {
  return {
    kty: 'EC',
    bits: 256,
    curve: 'P-256',
    version,
    kid: `https://x/keys/k/${version}`,
    keyOps: ['sign'],
    enabled: true,
  };
}

test('entries live for the TTL of the (fake) clock, and names compare case-insensitively', async () => {
  let now = 1000;
  const cache = new KeyCache(500, () => now);
  let loads = 0;
  const load = (): Promise<KeyDescription> => Promise.resolve(description(`v${++loads}`));
  assert.deepEqual(await cache.get(ref('k'), load), { description: description('v1'), hit: false });
  now += 499;
  assert.deepEqual(await cache.get({ ...ref('K'), vault: 'myhsm' }, load), {
    description: description('v1'),
    hit: true,
  });
  now += 1;
  assert.equal((await cache.get(ref('k'), load)).description.version, 'v2');
  assert.equal(loads, 2);
});

test('concurrent lookups share one load; failures are not cached', async () => {
  const cache = new KeyCache(60_000);
  let loads = 0;
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const load = async (): Promise<KeyDescription> => {
    loads++;
    await gate;
    return description('v1');
  };
  const all = Promise.all(Array.from({ length: 5 }, () => cache.get(ref('k'), load)));
  release();
  const results = await all;
  assert.equal(loads, 1);
  assert.deepEqual(
    results.map((r) => r.hit),
    [false, true, true, true, true],
  );

  const failing = (): Promise<KeyDescription> => Promise.reject(new Error('HSM down'));
  await assert.rejects(cache.get(ref('other'), failing), /HSM down/);
  assert.equal(
    (await cache.get(ref('other'), () => Promise.resolve(description('v9')))).hit,
    false,
  );
});

test('invalidate drops every version of the key and nothing else; TTL 0 disables caching', async () => {
  const cache = new KeyCache(60_000);
  await cache.get(ref('k'), () => Promise.resolve(description('v1')));
  await cache.get(ref('k', 'a'.repeat(32)), () => Promise.resolve(description('a'.repeat(32))));
  await cache.get(ref('k2'), () => Promise.resolve(description('v1')));
  assert.ok(cache.peek(ref('k')));
  cache.invalidate(ref('K', 'b'.repeat(32)));
  assert.equal(cache.peek(ref('k')), undefined);
  assert.equal(cache.peek(ref('k', 'a'.repeat(32))), undefined);
  assert.ok(cache.peek(ref('k2')), 'a key whose name starts the same is kept');

  const uncached = new KeyCache(0);
  let loads = 0;
  await uncached.get(ref('k'), () => Promise.resolve(description(`v${++loads}`)));
  await uncached.get(ref('k'), () => Promise.resolve(description(`v${++loads}`)));
  assert.equal(loads, 2);
  assert.equal(uncached.size, 0);
});
