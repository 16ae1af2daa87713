/**
 * SSL_MODE_ASYNC: `openssl s_server -async` runs each handshake in an OpenSSL async job, and the
 * provider pauses that job while the HSM signs instead of blocking the server's thread. TLS 1.3
 * and TLS 1.2 handshakes with RSA and EC HSM keys must verify, and the provider's debug log must
 * show the job pausing (the control run without -async must not: the assertion can fail).
 */
import assert from 'node:assert/strict';
import { type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import {
  keyrefWithCertificate,
  startProviderEnv,
  startSServer,
  type ProviderEnv,
} from './openssl-env.js';

let pe: ProviderEnv;
let cnfEnv: NodeJS.ProcessEnv;
const servers = new Set<ChildProcess>();

before(async () => {
  // Every HSM request takes 50 ms: the answer is never there before the provider first looks
  // (even when the test machine is busy), so every signature must pause its job.
  pe = await startProviderEnv('async', 'asynchsm', { latencyMs: 50 });
  pe.createKey('async-rsa', '--kty', 'RSA-HSM', '--size', '2048');
  pe.createKey('async-ec', '--kty', 'EC-HSM', '--curve', 'P-256');
  cnfEnv = { ...pe.env, OPENSSL_CONF: pe.writeOpensslCnf() };
  for (const key of ['async-rsa', 'async-ec']) keyrefWithCertificate(pe, key, cnfEnv);
});

after(async () => {
  for (const s of servers) s.kill('SIGKILL');
  await pe?.down();
});

/** s_server (with -async or not) for two connections, logging the provider at debug level to `log`. */
async function startServer(
  key: string,
  log: string,
  async: boolean,
): Promise<{ port: number; proc: ChildProcess }> {
  writeFileSync(log, '');
  const env = { ...cnfEnv, AKV_LOG_FILE: log, AKV_LOG_LEVEL: 'debug' };
  const server = await startSServer(pe, key, [...(async ? ['-async'] : []), '-naccept', '2'], env);
  servers.add(server.proc);
  return server;
}

function handshake(port: number, key: string, version: '-tls1_3' | '-tls1_2'): string {
  const r = pe.openssl(
    [
      's_client',
      '-connect',
      `127.0.0.1:${port}`,
      version,
      '-CAfile',
      pe.file(`${key}.crt`),
      '-verify_hostname',
      'localhost',
      '-verify_return_error',
      '-brief',
    ],
    { input: '' },
  );
  const out = `${r.stdout}${r.stderr}`;
  assert.equal(r.status, 0, out);
  return out;
}

/** Two handshakes (TLS 1.3 then 1.2) against one s_server; returns the provider's log. */
async function twoHandshakes(key: string, async: boolean): Promise<string> {
  const log = pe.file(`${key}-${async ? 'async' : 'blocking'}.log`);
  const { port, proc } = await startServer(key, log, async);
  const exited = new Promise((resolve) => proc.on('exit', resolve));
  const tls13 = handshake(port, key, '-tls1_3');
  assert.match(tls13, /Protocol version: TLSv1\.3/);
  assert.match(tls13, /Verification: OK/);
  const tls12 = handshake(port, key, '-tls1_2');
  assert.match(tls12, /Protocol version: TLSv1\.2/);
  assert.match(tls12, /Verification: OK/);
  await exited;
  servers.delete(proc);
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
