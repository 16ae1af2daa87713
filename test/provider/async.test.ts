/**
 * SSL_MODE_ASYNC: `openssl s_server -async` runs each handshake in an OpenSSL async job, and the
 * provider pauses that job while the HSM signs instead of blocking the server's thread. TLS 1.3
 * and TLS 1.2 handshakes with RSA and EC HSM keys must verify, and the provider's debug log must
 * show the job pausing (the control run without -async must not: the assertion can fail).
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { tlsFixture } from './tls-fixture.js';

// Every HSM request takes 50 ms: the answer is never there before the provider first looks
// (even when the test machine is busy), so every signature must pause its job.
const fx = tlsFixture('async', 'asynchsm', { rsa: 'async-rsa', ec: 'async-ec' }, { latencyMs: 50 });

/**
 * Two handshakes (TLS 1.3 then 1.2) against one s_server (with -async or not), the provider
 * logging at debug level; returns the provider's log.
 */
async function twoHandshakes(key: string, async: boolean): Promise<string> {
  const log = fx.pe.file(`${key}-${async ? 'async' : 'blocking'}.log`);
  writeFileSync(log, '');
  const env = { ...fx.cnfEnv, AKV_LOG_FILE: log, AKV_LOG_LEVEL: 'debug' };
  const server = await fx.server(key, [...(async ? ['-async'] : []), '-naccept', '2'], env);
  await fx.tls13Then12(server, key);
  return readFileSync(log, 'utf8');
}

const count = (log: string, re: RegExp): number => log.split('\n').filter((l) => re.test(l)).length;
const pauses = (log: string): number => count(log, /async: job paused/);
const inJob = (log: string): number => count(log, /async: agent request from inside an async job/);
const signs = (log: string): number => count(log, /op=sign .* result=ok/);

describe('s_server -async: handshakes pause their job while the HSM signs', () => {
  for (const key of ['async-rsa', 'async-ec']) {
    it(`${key}: TLS 1.3 and 1.2 verify, and every signature paused the job`, async () => {
      const log = await twoHandshakes(key, true);
      assert.equal(signs(log), 2, `two signatures expected in:\n${log}`);
      assert.equal(inJob(log), 2, `both signatures should run inside an async job:\n${log}`);
      assert.equal(pauses(log), 2, `each signature should pause its job once:\n${log}`);
    });
  }

  it('control: without -async the same handshakes never pause', async () => {
    const log = await twoHandshakes('async-ec', false);
    assert.equal(signs(log), 2, log);
    assert.equal(inJob(log), 0, log);
    assert.equal(pauses(log), 0, log);
  });
});
