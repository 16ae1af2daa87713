/**
 * The admin API: injected faults reach clients as Azure's would (429 with and without
 * Retry-After, 500, 503, connection reset, hang), for the chosen operations and count; request
 * statistics and runtime latency.
 */
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, test } from 'node:test';
import type { KeyClient } from '@azure/keyvault-keys';
import { startEmulator, type RunningEmulator } from '../helpers/emulator.js';

let emu: RunningEmulator;
let client: KeyClient;
const V = 'api-version=7.4';
const signBody = { alg: 'ES256', value: Buffer.alloc(32, 1).toString('base64url') };

before(async () => {
  emu = await startEmulator();
  client = emu.keyClient();
  await client.createEcKey('k', { curve: 'P-256' });
});
after(async () => {
  await emu?.stop();
});
beforeEach(async () => {
  await emu.clearFaults();
  await emu.resetStats();
});

const sign = () => emu.request('POST', `/keys/k/sign?${V}`, { body: signBody });

describe('fault modes', () => {
  test('throttle: 429 Throttled without Retry-After; the SDK gives up at once', async () => {
    await emu.setFaults({ mode: 'throttle', count: 1, operations: ['sign'] });
    const crypto = emu.cryptoClient(`${emu.url}/keys/k`);
    await assert.rejects(
      crypto.sign('ES256', Buffer.alloc(32)),
      (e: { statusCode?: number; code?: string }) => {
        return e.statusCode === 429 && e.code === 'Throttled';
      },
    );
    const ok = await crypto.sign('ES256', Buffer.alloc(32));
    assert.equal(ok.result.length, 64, 'count 1: the next request is served');
    const { requests } = await emu.stats();
    assert.equal(requests.sign, 2);
  });
  test('throttle-retry-after: 429 with Retry-After; the SDK waits and retries', async () => {
    await emu.setFaults({
      mode: 'throttle-retry-after',
      retryAfterSeconds: 1,
      count: 1,
      operations: ['sign'],
    });
    const raw = await sign();
    assert.equal(raw.status, 429);
    assert.equal(raw.headers['retry-after'], '1');
    await emu.setFaults({
      mode: 'throttle-retry-after',
      retryAfterSeconds: 1,
      count: 1,
      operations: ['sign'],
    });
    const result = await emu.cryptoClient(`${emu.url}/keys/k`).sign('ES256', Buffer.alloc(32));
    assert.equal(result.result.length, 64);
    assert.equal(
      (await emu.stats()).requests.sign,
      3,
      'one raw, one throttled SDK call, one retry',
    );
  });
  test('error500 and error503: status and error code; retried by the SDK', async () => {
    await emu.setFaults({ mode: 'error500', count: 1 });
    const r500 = await sign();
    assert.equal(r500.status, 500);
    assert.equal((r500.json as { error: { code: string } }).error.code, 'InternalServerError');
    await emu.setFaults({ mode: 'error503', count: 1 });
    const r503 = await sign();
    assert.equal(r503.status, 503);
    assert.equal((r503.json as { error: { code: string } }).error.code, 'ServiceUnavailable');
    await emu.setFaults({ mode: 'error500', count: 2, operations: ['get'] });
    const fast = emu.keyClient({
      retryOptions: { maxRetries: 3, retryDelayInMs: 10, maxRetryDelayInMs: 50 },
    });
    assert.equal((await fast.getKey('k')).name, 'k');
    assert.equal((await emu.stats()).requests.get, 3);
  });
  test('reset: the connection is dropped without an answer', async () => {
    await emu.setFaults({ mode: 'reset', count: 1 });
    await assert.rejects(
      sign(),
      (e: { code?: string }) => e.code === 'ECONNRESET' || e.code === 'EPIPE',
    );
    assert.equal((await sign()).status, 200);
  });
  test('hang: no answer until the client gives up; then service resumes', async () => {
    await emu.setFaults({ mode: 'hang', operations: ['sign'] });
    await assert.rejects(
      emu.request('POST', `/keys/k/sign?${V}`, { body: signBody, timeoutMs: 300 }),
      (e: { code?: string }) => e.code === 'ETIMEDOUT',
    );
    assert.equal(
      (await emu.request('GET', `/keys/k?${V}`)).status,
      200,
      'other operations are not affected',
    );
    await emu.clearFaults();
    assert.equal((await sign()).status, 200);
  });
  test('without count a fault lasts until cleared; operations limits it', async () => {
    await emu.setFaults({ mode: 'error503', operations: ['sign', 'decrypt'] });
    for (let i = 0; i < 3; i++) assert.equal((await sign()).status, 503);
    assert.equal((await emu.request('GET', `/keys/k?${V}`)).status, 200);
    const current = await emu.request('GET', '/_emulator/faults', { token: null });
    assert.deepEqual((current.json as { fault: { mode: string } }).fault.mode, 'error503');
    await emu.clearFaults();
    assert.equal((await sign()).status, 200);
  });
});

describe('admin API', () => {
  test('stats count requests per operation, challenges separately', async () => {
    await emu.request('GET', `/keys/k?${V}`, { token: null });
    await emu.request('GET', `/keys/k?${V}`);
    await sign();
    await sign();
    const stats = await emu.stats();
    assert.deepEqual(stats.requests, { challenge: 1, get: 1, sign: 2 });
    assert.equal(stats.total, 4);
    await emu.resetStats();
    assert.deepEqual(await emu.stats(), { requests: {}, total: 0 });
  });
  test('latency can be read and changed at runtime', async () => {
    await emu.setLatency(25);
    const r = await emu.request('GET', '/_emulator/latency', { token: null });
    assert.deepEqual(r.json, { ms: 25 });
    assert.equal((await sign()).status, 200);
    await emu.setLatency(0);
  });
  test('bad admin requests are refused with a reason', async () => {
    for (const body of [
      { mode: 'explode' },
      { mode: 'throttle', count: 0 },
      { mode: 'hang', operations: ['fly'] },
    ]) {
      const r = await emu.request('POST', '/_emulator/faults', { body, token: null });
      assert.equal(r.status, 400, JSON.stringify(body));
      assert.equal((r.json as { error: { code: string } }).error.code, 'BadParameter');
    }
    const lat = await emu.request('POST', '/_emulator/latency', { body: { ms: -1 }, token: null });
    assert.equal(lat.status, 400);
    const unknown = await emu.request('GET', '/_emulator/nothing', { token: null });
    assert.equal(unknown.status, 404);
    assert.equal((await emu.stats()).total, 0, 'admin requests are not counted');
  });
});
