/**
 * The metrics listener's exposure (issue 22): a port alone in metricsListen binds loopback, and
 * /readyz's detail (HSM URLs, credential source, token expiry) goes to loopback clients only
 * unless metricsDetail is "everyone". The agent and its listener are real (127.0.0.1 only, as
 * every test here): the decision for other addresses is isLoopback(), checked on its own.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { isLoopback } from '../../src/agent/metrics-server.js';
import { loadConfig } from '../../src/config/load.js';
import { startAgent } from '../helpers/agent.js';
import { startEmulator } from '../helpers/emulator.js';

const scratch = mkdtempSync(join(tmpdir(), 'akv-metrics-ux-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

function configWith(fields: object): string {
  const file = join(scratch, `c${Math.random().toString(36).slice(2)}.json`);
  writeFileSync(file, JSON.stringify(fields));
  return file;
}

test('metricsListen: a port alone means loopback; metricsDetail takes loopback or everyone', () => {
  assert.equal(loadConfig(configWith({ metricsListen: '9464' })).metricsListen, '127.0.0.1:9464');
  assert.equal(loadConfig(configWith({ metricsListen: ':9464' })).metricsListen, '127.0.0.1:9464');
  assert.equal(
    loadConfig(configWith({ metricsListen: '0.0.0.0:9464' })).metricsListen,
    '0.0.0.0:9464',
  );
  assert.equal(loadConfig(configWith({ metricsDetail: 'everyone' })).metricsDetail, 'everyone');
  assert.throws(() => loadConfig(configWith({ metricsDetail: 'all' })), /metricsDetail/);
  assert.throws(() => loadConfig(configWith({ metricsListen: 'localhost' })), /HOST:PORT or PORT/);
});

test('isLoopback: 127/8, ::1 and their IPv4-mapped form only', () => {
  for (const a of ['127.0.0.1', '127.1.2.3', '::1', '::ffff:127.0.0.1'])
    assert.ok(isLoopback(a), a);
  for (const a of ['192.0.2.2', '10.0.0.1', '::ffff:10.0.0.1', 'fd00::2', '0.0.0.0', undefined])
    assert.ok(!isLoopback(a), String(a));
});

test('an agent with metricsListen ":0" serves on 127.0.0.1, and /readyz gives loopback its detail', async () => {
  const emulator = await startEmulator();
  try {
    const agent = await startAgent({
      emulator,
      hsmName: 'uxmetrics',
      extraConfig: { metricsListen: ':0' },
    });
    try {
      assert.match(agent.metricsUrl ?? '', /^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
      const res = await fetch(agent.metricsUrl!.replace(/\/metrics$/, '/readyz'));
      const body = (await res.json()) as {
        ready: boolean;
        credential?: unknown;
        vaults?: unknown[];
      };
      assert.ok(body.credential !== undefined && Array.isArray(body.vaults), JSON.stringify(body));
    } finally {
      await agent.stop();
    }
  } finally {
    await emulator.stop();
  }
});
