/**
 * Crash safety of the key store: `kill -9` in the middle of a burst of creates, restart on the
 * same state directory, and every key the emulator acknowledged is there, intact and usable.
 */
import assert from 'node:assert/strict';
import { createHash, createPublicKey, verify as nodeVerify } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { startEmulator, type RunningEmulator } from '../helpers/emulator.js';

const V = 'api-version=7.4';
let stateDir: string | undefined;
let running: RunningEmulator | undefined;

after(async () => {
  await running?.kill('SIGKILL').catch(() => undefined);
  if (stateDir) await rm(stateDir, { recursive: true, force: true });
});

interface Acknowledged {
  name: string;
  kid: string;
  kty: string;
  jwk: { x?: string; y?: string; crv?: string; n?: string; e?: string };
}

/** Creates keys from several concurrent loops until stopped; records every 200 answer. */
async function burst(
  emu: RunningEmulator,
  round: number,
  acknowledged: Acknowledged[],
  stopAfter: number,
) {
  let stop = false;
  const kinds = [
    { kty: 'EC-HSM', crv: 'P-256' },
    { kty: 'oct-HSM', key_size: 256 },
    { kty: 'RSA-HSM', key_size: 2048 },
    { kty: 'EC-HSM', crv: 'P-384' },
  ];
  const loop = async (worker: number) => {
    for (let i = 0; !stop; i++) {
      const name = `r${round}-w${worker}-k${i}`;
      const body = kinds[(worker + i) % kinds.length] as object;
      try {
        const res = await emu.request('POST', `/keys/${name}/create?${V}`, { body });
        if (res.status !== 200) throw new Error(`create answered ${res.status}: ${res.text}`);
        const key = (res.json as { key: Acknowledged['jwk'] & { kid: string; kty: string } }).key;
        acknowledged.push({ name, kid: key.kid, kty: key.kty, jwk: key });
        if (acknowledged.length >= stopAfter && !stop) {
          stop = true;
          await emu.kill('SIGKILL'); // while the other loops still have creates in flight
        }
      } catch (err) {
        if (!stop) throw err;
        return; // the process is gone: requests in flight fail, which is expected
      }
    }
  };
  await Promise.all([0, 1, 2, 3, 4, 5].map(loop));
}

test('kill -9 during a burst of creates loses no acknowledged key', async () => {
  stateDir = await mkdtemp(join(tmpdir(), 'akv-emulator-crash-'));
  const acknowledged: Acknowledged[] = [];
  running = await startEmulator({ stateDir });
  const caBefore = await readFile(join(stateDir, 'ca.pem'), 'utf8');
  await burst(running, 1, acknowledged, 30);
  running = await startEmulator({ stateDir });
  await burst(running, 2, acknowledged, 60);
  running = await startEmulator({ stateDir });
  const emu = running;

  assert.equal(
    await readFile(join(stateDir, 'ca.pem'), 'utf8'),
    caBefore,
    'the CA survives restarts',
  );
  const files = await readdir(join(stateDir, 'keys'));
  assert.deepEqual(
    files.filter((f) => !f.endsWith('.json')),
    [],
    'no temporary or unreadable files are left',
  );
  for (const f of files) {
    assert.equal(
      (await stat(join(stateDir, 'keys', f))).mode & 0o777,
      0o600,
      `${f} is private to the owner`,
    );
  }

  assert.ok(acknowledged.length >= 60);
  const data = Buffer.from('still here after kill -9');
  const digest = createHash('sha256').update(data).digest();
  for (const ack of acknowledged) {
    const get = await emu.request('GET', `/keys/${ack.name}?${V}`);
    assert.equal(get.status, 200, `${ack.name} was acknowledged but is missing: ${get.text}`);
    const key = (get.json as { key: Acknowledged['jwk'] & { kid: string } }).key;
    // The port changes across restarts; the path carries the name and version.
    assert.equal(
      new URL(key.kid).pathname,
      new URL(ack.kid).pathname,
      `${ack.name} has the acknowledged version`,
    );
    assert.deepEqual([key.n, key.x, key.y], [ack.jwk.n, ack.jwk.x, ack.jwk.y], 'same public key');
    if (ack.kty === 'oct-HSM') {
      const wrap = await emu.request('POST', `/keys/${ack.name}/wrapkey?${V}`, {
        body: { alg: 'A256KW', value: digest.toString('base64url') },
      });
      assert.equal(wrap.status, 200, wrap.text);
      continue;
    }
    const alg = ack.kty === 'RSA-HSM' ? 'RS256' : ack.jwk.crv === 'P-384' ? 'ES384' : 'ES256';
    const hash = alg === 'ES384' ? 'sha384' : 'sha256';
    const d = createHash(hash).update(data).digest();
    const res = await emu.request('POST', `/keys/${ack.name}/sign?${V}`, {
      body: { alg, value: d.toString('base64url') },
    });
    assert.equal(res.status, 200, res.text);
    const signature = Buffer.from((res.json as { value: string }).value, 'base64url');
    const publicKey = createPublicKey({
      key:
        ack.kty === 'RSA-HSM'
          ? { kty: 'RSA', n: ack.jwk.n, e: ack.jwk.e }
          : { kty: 'EC', crv: ack.jwk.crv, x: ack.jwk.x, y: ack.jwk.y },
      format: 'jwk',
    });
    const ok = nodeVerify(
      hash,
      data,
      alg.startsWith('ES') ? { key: publicKey, dsaEncoding: 'ieee-p1363' } : publicKey,
      signature,
    );
    assert.ok(ok, `${ack.name} signs with the acknowledged key`);
  }
  await emu.stop();
  running = undefined;
});
