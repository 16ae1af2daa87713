/**
 * Refusals: each bad request gets the service's status and error code, and the emulator keeps
 * serving afterwards. Raw HTTPS requests are used where the SDK would not send such a request.
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import type { KeyClient } from '@azure/keyvault-keys';
import { startEmulator, type RawResponse, type RunningEmulator } from '../helpers/emulator.js';

let emu: RunningEmulator;
let client: KeyClient;
const V = 'api-version=7.4';

before(async () => {
  emu = await startEmulator();
  client = emu.keyClient();
  await client.createRsaKey('rsa', { keySize: 2048 });
  await client.createEcKey('p384', { curve: 'P-384' });
  await client.createEcKey('sign-only', { curve: 'P-256', keyOps: ['sign'] });
  await client.createOctKey('aes128', { keySize: 128 });
});
after(async () => {
  await emu?.stop();
});

function errorOf(res: RawResponse): {
  code: string;
  message: string;
  innererror?: { code: string };
} {
  const body = res.json as {
    error?: { code: string; message: string; innererror?: { code: string } };
  };
  assert.ok(body?.error, `expected an error body, got ${res.status} ${res.text}`);
  assert.equal(typeof body.error.message, 'string');
  assert.ok(body.error.message.length > 0);
  return body.error;
}

async function expectError(
  res: Promise<RawResponse>,
  status: number,
  code: string,
): Promise<RawResponse> {
  const r = await res;
  assert.equal(r.status, status, r.text);
  assert.equal(errorOf(r).code, code);
  return r;
}

/** The emulator still answers a normal request. */
async function stillServing(): Promise<void> {
  const r = await emu.request('GET', `/keys/rsa?${V}`);
  assert.equal(r.status, 200);
}

const digest = (n: number) => Buffer.alloc(n, 7).toString('base64url');

describe('authentication', () => {
  test('no Authorization: 401 with the Managed HSM challenge and an empty body', async () => {
    const r = await emu.request('POST', `/keys/rsa/sign?${V}`, {
      token: null,
      body: { alg: 'RS256', value: digest(32) },
    });
    assert.equal(r.status, 401);
    assert.equal(r.text, '');
    assert.match(
      String(r.headers['www-authenticate']),
      /^Bearer authorization="https:\/\/login\.microsoftonline\.com\/[^"]+", resource="https:\/\/managedhsm\.azure\.net"$/,
    );
    await stillServing();
  });
  test('an empty bearer token is a challenge too', async () => {
    const r = await emu.request('GET', `/keys?${V}`, {
      token: null,
      headers: { Authorization: 'Bearer ' },
    });
    assert.equal(r.status, 401);
    assert.equal(r.text, '');
  });
  test('--token: a wrong token gets 401 Unauthorized with a JSON error; the SDK with the right one works', async () => {
    const strict = await import('../helpers/emulator.js').then((m) =>
      m.startEmulator({ token: 'the-only-token' }),
    );
    try {
      const r = await strict.request('GET', `/keys?${V}`, { token: 'another-token' });
      assert.equal(r.status, 401);
      assert.equal(errorOf(r).code, 'Unauthorized');
      const key = await strict.keyClient().createEcKey('ok');
      assert.equal(key.name, 'ok');
      const stats = await strict.stats();
      assert.equal(stats.requests.unauthorized, 1);
    } finally {
      await strict.stop();
    }
  });
});

describe('keys and versions', () => {
  test('unknown key: 404 KeyNotFound (SDK and raw)', async () => {
    await assert.rejects(client.getKey('nope'), (e: { statusCode?: number; code?: string }) => {
      return e.statusCode === 404 && e.code === 'KeyNotFound';
    });
    await expectError(
      emu.request('POST', `/keys/nope/sign?${V}`, { body: { alg: 'RS256', value: digest(32) } }),
      404,
      'KeyNotFound',
    );
    await expectError(
      emu.request('GET', `/keys/rsa/0123456789abcdef0123456789abcdef?${V}`),
      404,
      'KeyNotFound',
    );
  });
  test('invalid key name, unknown path, missing or unknown api-version: 400/404', async () => {
    await expectError(emu.request('GET', `/keys/bad_name!?${V}`), 400, 'BadParameter');
    await expectError(emu.request('GET', `/secrets/x?${V}`), 404, 'NotFound');
    await expectError(emu.request('GET', '/keys/rsa'), 400, 'BadParameter');
    await expectError(emu.request('GET', '/keys/rsa?api-version=1.0'), 400, 'BadParameter');
    await stillServing();
  });
  test('unsupported key types and sizes: 400', async () => {
    await expectError(
      emu.request('POST', `/keys/x/create?${V}`, { body: { kty: 'RSA-HSM', key_size: 1024 } }),
      400,
      'BadParameter',
    );
    await expectError(
      emu.request('POST', `/keys/x/create?${V}`, { body: { kty: 'EC-HSM', crv: 'P-224' } }),
      400,
      'BadParameter',
    );
    await expectError(
      emu.request('POST', `/keys/x/create?${V}`, { body: { kty: 'oct-HSM', key_size: 512 } }),
      400,
      'BadParameter',
    );
    await expectError(
      emu.request('POST', `/keys/x/create?${V}`, { body: { kty: 'DSA' } }),
      400,
      'BadParameter',
    );
    await expectError(
      emu.request('PUT', `/keys/x?${V}`, { body: { key: { kty: 'RSA', n: 'AQAB', e: 'AQAB' } } }),
      400,
      'BadParameter',
    );
  });
});

describe('import refusals name the fault', () => {
  const b64 = (bytes: number[] | Buffer): string => Buffer.from(bytes).toString('base64url');
  const cases: Array<[what: string, body: object, says: string]> = [
    ['no key object', { key: 'x' }, 'needs a "key" object'],
    [
      'RSA without "d" (the first missing field)',
      { key: { kty: 'RSA', n: 'AQAB', e: 'AQAB' } },
      'lacks "d"',
    ],
    ['a field that is not base64', { key: { kty: 'oct', k: 'no*base64' } }, '"k" is not base64url'],
    ['an empty field', { key: { kty: 'oct-HSM', k: '' } }, 'lacks "k"'],
    ['an oct key of 160 bits', { key: { kty: 'oct', k: b64(Buffer.alloc(20, 1)) } }, 'not 160'],
    [
      'an unsupported curve',
      { key: { kty: 'EC', crv: 'P-224', x: 'AQAB', y: 'AQAB', d: 'AQAB' } },
      'crv P-224 is not supported',
    ],
    [
      'an EC "d" that is no private key',
      { key: { kty: 'EC', crv: 'P-256', x: 'AQAB', y: 'AQAB', d: b64([0]) } },
      '"d" is not a valid P-256 private key',
    ],
  ];
  for (const [what, body, says] of cases) {
    test(what, async () => {
      const r = await expectError(
        emu.request('PUT', `/keys/imp?${V}`, { body }),
        400,
        'BadParameter',
      );
      assert.match(errorOf(r).message, new RegExp(says.replace(/[*"()]/g, '.')));
    });
  }
  test('an RSA modulus with a leading zero byte is stored without it', async () => {
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const jwk = privateKey.export({ format: 'jwk' });
    const n = Buffer.from(jwk.n ?? '', 'base64url');
    const key = { ...jwk, kty: 'RSA-HSM', n: b64(Buffer.concat([Buffer.from([0]), n])) };
    const r = await emu.request('PUT', `/keys/imp-rsa?${V}`, { body: { key } });
    assert.equal(r.status, 200, r.text);
    const stored = (r.json as { key: { n: string } }).key.n;
    assert.deepEqual(Buffer.from(stored, 'base64url'), n);
  });
});

describe('crypto requests', () => {
  test('wrong digest length: 400 BadParameter', async () => {
    await expectError(
      emu.request('POST', `/keys/rsa/sign?${V}`, { body: { alg: 'RS256', value: digest(20) } }),
      400,
      'BadParameter',
    );
    await expectError(
      emu.request('POST', `/keys/rsa/sign?${V}`, { body: { alg: 'PS512', value: digest(32) } }),
      400,
      'BadParameter',
    );
    await expectError(
      emu.request('POST', `/keys/p384/sign?${V}`, { body: { alg: 'ES384', value: digest(32) } }),
      400,
      'BadParameter',
    );
    await assert.rejects(
      emu.cryptoClient(`${emu.url}/keys/rsa`).sign('RS256', Buffer.alloc(48)),
      (e: { statusCode?: number; code?: string }) =>
        e.statusCode === 400 && e.code === 'BadParameter',
    );
    await stillServing();
  });
  test('algorithm that does not fit the key: 400 BadParameter', async () => {
    await expectError(
      emu.request('POST', `/keys/p384/sign?${V}`, { body: { alg: 'ES256', value: digest(32) } }),
      400,
      'BadParameter',
    );
    await expectError(
      emu.request('POST', `/keys/rsa/sign?${V}`, { body: { alg: 'ES256', value: digest(32) } }),
      400,
      'BadParameter',
    );
    await expectError(
      emu.request('POST', `/keys/aes128/encrypt?${V}`, {
        body: { alg: 'A256GCM', value: digest(5) },
      }),
      400,
      'BadParameter',
    );
    await expectError(
      emu.request('POST', `/keys/rsa/encrypt?${V}`, { body: { alg: 'A128GCM', value: digest(5) } }),
      400,
      'BadParameter',
    );
    await expectError(
      emu.request('POST', `/keys/rsa/sign?${V}`, { body: { alg: 'HS256', value: digest(32) } }),
      400,
      'BadParameter',
    );
    await expectError(
      emu.request('POST', `/keys/rsa/sign?${V}`, { body: { value: digest(32) } }),
      400,
      'BadParameter',
    );
    await expectError(
      emu.request('POST', `/keys/rsa/sign?${V}`, { body: { alg: 'RS256', value: '***' } }),
      400,
      'BadParameter',
    );
  });
  test('bad ciphertext: 400 BadParameter, not a crash', async () => {
    await expectError(
      emu.request('POST', `/keys/rsa/decrypt?${V}`, {
        body: { alg: 'RSA1_5', value: digest(256) },
      }),
      400,
      'BadParameter',
    );
    await expectError(
      emu.request('POST', `/keys/rsa/decrypt?${V}`, {
        body: { alg: 'RSA-OAEP', value: digest(10) },
      }),
      400,
      'BadParameter',
    );
    await expectError(
      emu.request('POST', `/keys/aes128/unwrapkey?${V}`, {
        body: { alg: 'A128KW', value: digest(24) },
      }),
      400,
      'BadParameter',
    );
    await expectError(
      emu.request('POST', `/keys/aes128/decrypt?${V}`, {
        body: { alg: 'A128GCM', value: digest(16) },
      }),
      400,
      'BadParameter',
    );
    await stillServing();
  });
  test('operation not in key_ops: 403 Forbidden', async () => {
    const r = await expectError(
      emu.request('POST', `/keys/sign-only/verify?${V}`, {
        body: { alg: 'ES256', digest: digest(32), value: digest(64) },
      }),
      403,
      'Forbidden',
    );
    assert.equal(errorOf(r).innererror?.code, 'KeyOperationForbidden');
  });
  test('disabled key: 403 Forbidden for crypto, still readable', async () => {
    const key = await client.createEcKey('disabled', { enabled: false });
    await assert.rejects(
      emu.cryptoClient(key.id as string).sign('ES256', Buffer.alloc(32)),
      (e: { statusCode?: number; code?: string }) => e.statusCode === 403 && e.code === 'Forbidden',
    );
    assert.equal((await client.getKey('disabled')).properties.enabled, false);
    await client.updateKeyProperties('disabled', key.properties.version as string, {
      enabled: true,
    });
    const ok = await emu.request('POST', `/keys/disabled/sign?${V}`, {
      body: { alg: 'ES256', value: digest(32) },
    });
    assert.equal(ok.status, 200, 'enabled again, it signs');
  });
  test('expired and not-yet-valid keys refuse to sign but still verify', async () => {
    const past = new Date(Date.now() - 3600_000);
    const future = new Date(Date.now() + 3600_000);
    await client.createEcKey('expired', { expiresOn: past });
    await client.createEcKey('not-yet', { notBefore: future });
    for (const name of ['expired', 'not-yet']) {
      await expectError(
        emu.request('POST', `/keys/${name}/sign?${V}`, {
          body: { alg: 'ES256', value: digest(32) },
        }),
        403,
        'Forbidden',
      );
      const verify = await emu.request('POST', `/keys/${name}/verify?${V}`, {
        body: { alg: 'ES256', digest: digest(32), value: digest(64) },
      });
      assert.equal(verify.status, 200);
      assert.deepEqual(verify.json, { value: false });
    }
  });
});

describe('malformed requests', () => {
  test('malformed JSON: 400 BadParameter', async () => {
    await expectError(
      emu.request('POST', `/keys/rsa/sign?${V}`, { body: '{"alg": "RS256", ' }),
      400,
      'BadParameter',
    );
    await expectError(
      emu.request('POST', `/keys/rsa/sign?${V}`, { body: '[1,2,3]' }),
      400,
      'BadParameter',
    );
    await expectError(
      emu.request('POST', `/keys/rsa/sign?${V}`, {
        body: 'alg=RS256',
        headers: { 'Content-Type': 'text/plain' },
      }),
      400,
      'BadParameter',
    );
    await stillServing();
  });
  test('Content-Type with charset is accepted', async () => {
    const r = await emu.request('POST', `/keys/rsa/sign?${V}`, {
      body: { alg: 'RS256', value: digest(32) },
      headers: { 'Content-Type': 'application/json; charset=utf-8' },
    });
    assert.equal(r.status, 200, r.text);
  });
  test('oversize body: 413 RequestEntityTooLarge, then normal service', async () => {
    const big = JSON.stringify({ alg: 'RS256', value: 'A'.repeat(2 * 1024 * 1024) });
    await expectError(
      emu.request('POST', `/keys/rsa/sign?${V}`, { body: big }),
      413,
      'RequestEntityTooLarge',
    );
    await stillServing();
  });
  test('percent-encoded api%2Dversion and // in paths are accepted', async () => {
    const r = await emu.request('POST', '/keys/rsa//sign?api%2Dversion=7.4', {
      body: { alg: 'RS256', value: digest(32) },
    });
    assert.equal(r.status, 200, r.text);
    const g = await emu.request('GET', '/keys/rsa/?api%2Dversion=2025-07-01');
    assert.equal(g.status, 200, g.text);
  });
});
