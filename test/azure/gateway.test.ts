/**
 * The Azure gateway against the real emulator process: descriptions, private-key operations with
 * version pinning, error mapping, retries on injected faults (429 with and without Retry-After,
 * 503, 500, connection resets), the deadline on a hang, and no retries for 400/401/403/404.
 */
import assert from 'node:assert/strict';
import {
  constants,
  createHash,
  createPublicKey,
  publicEncrypt,
  randomBytes,
  verify,
  type KeyObject,
} from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, before, beforeEach, describe, it } from 'node:test';
import pino from 'pino';
import { parseConfigObject } from '../../src/config/load.js';
import {
  createGateway,
  type AzureHooks,
  type HsmGateway,
  type KeyDescription,
} from '../../src/azure/gateway.js';
import type { FailureKind } from '../../src/azure/failures.js';
import { AkvError } from '../../src/errors.js';
import type { KeyRef } from '../../src/uri/index.js';
import { startEmulator, type RunningEmulator } from '../helpers/emulator.js';

const HSM = 'gwtest';
let emulator: RunningEmulator;
let gateway: HsmGateway;
let retries: FailureKind[] = [];

const silent = pino(
  { level: 'debug' },
  new Writable({
    write(_chunk, _enc, cb) {
      cb();
    },
  }),
);

function makeGateway(overrides: Record<string, unknown> = {}, hooks?: AzureHooks): HsmGateway {
  const config = parseConfigObject(
    {
      vaults: {
        [HSM]: {
          endpoint: emulator.url,
          caFile: emulator.caFile,
          disableChallengeResourceVerification: true,
        },
      },
      credential: { type: 'static', token: emulator.token },
      deadlineMs: 4000,
      retry: { maxRetries: 3, baseDelayMs: 20, maxDelayMs: 200 },
      ...overrides,
    },
    'gateway test config',
    {},
  );
  return createGateway(config, silent, hooks ?? { onRetry: (kind) => retries.push(kind) });
}

const ref = (name: string, version?: string): KeyRef =>
  version
    ? { vaultType: 'managedhsm', vault: HSM, name, version }
    : { vaultType: 'managedhsm', vault: HSM, name };

/** The public key of a description (its DER SubjectPublicKeyInfo). */
const publicKeyOf = (d: KeyDescription): KeyObject =>
  createPublicKey({ key: d.spki as Buffer, format: 'der', type: 'spki' });

/** Whether `signature`, raw r||s as the HSM gives it, is an ES256 signature of `data` by `d`. */
const es256Verifies = (d: KeyDescription, data: Buffer, signature: Buffer): boolean =>
  verify('sha256', data, { key: publicKeyOf(d), dsaEncoding: 'ieee-p1363' }, signature);

async function expectAkvError(
  p: Promise<unknown>,
  code: string,
  ...fragments: string[]
): Promise<AkvError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof AkvError, `expected AkvError, got ${String(err)}`);
    assert.equal(err.code, code, err.fullMessage);
    for (const f of fragments)
      assert.ok(err.fullMessage.includes(f), `"${err.fullMessage}" mentions "${f}"`);
    return err;
  }
  assert.fail(`expected ${code}, but the call succeeded`);
}

before(async () => {
  emulator = await startEmulator();
  const kc = emulator.keyClient();
  await kc.createKey('rsa', 'RSA-HSM', { keySize: 2048 });
  await kc.createKey('ec', 'EC-HSM', { curve: 'P-256' });
  await kc.createKey('k1', 'EC-HSM', { curve: 'P-256K' });
  await kc.createKey('aes', 'oct-HSM', { keySize: 192 });
  await kc.createKey('verifyonly', 'RSA-HSM', { keySize: 2048, keyOps: ['verify'] });
  gateway = makeGateway();
});

after(async () => {
  await gateway?.close();
  await emulator?.stop();
});

beforeEach(async () => {
  retries = [];
  await emulator.clearFaults();
});

describe('describe', () => {
  it('gives type, size, version, operations and the public key as SPKI', async () => {
    const d = await gateway.describe(ref('rsa'));
    const bundle = await emulator.keyClient().getKey('rsa');
    assert.equal(d.kty, 'RSA');
    assert.equal(d.bits, 2048);
    assert.equal(d.version, bundle.properties.version);
    assert.equal(d.kid, bundle.id);
    assert.equal(d.enabled, true);
    assert.ok(d.keyOps.includes('sign'));
    const pub = publicKeyOf(d);
    assert.equal(pub.asymmetricKeyType, 'rsa');
    assert.equal(pub.asymmetricKeyDetails?.modulusLength, 2048);
  });

  it('describes EC keys on P-256 and P-256K with their curve', async () => {
    const ec = await gateway.describe(ref('ec'));
    assert.deepEqual([ec.kty, ec.curve, ec.bits], ['EC', 'P-256', 256]);
    assert.equal(publicKeyOf(ec).asymmetricKeyDetails?.namedCurve, 'prime256v1');
    const k1 = await gateway.describe(ref('k1'));
    assert.deepEqual([k1.kty, k1.curve, k1.bits], ['EC', 'P-256K', 256]);
    assert.equal(publicKeyOf(k1).asymmetricKeyDetails?.namedCurve, 'secp256k1');
  });

  it('gives the size of an AES key although the bundle has none', async () => {
    const d = await gateway.describe(ref('aes'));
    assert.deepEqual([d.kty, d.bits, d.spki], ['oct', 192, undefined]);
  });
});

describe('private-key operations', () => {
  it('signs a digest; the signature verifies locally', async () => {
    const data = Buffer.from('sign me');
    const digest = createHash('sha256').update(data).digest();
    const d = await gateway.describe(ref('rsa'));
    const r = await gateway.sign(ref('rsa'), 'PS256', digest);
    assert.equal(r.version, d.version);
    assert.equal(r.retries, 0);
    const key = publicKeyOf(d);
    assert.ok(
      verify(
        'sha256',
        data,
        { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 },
        r.output,
      ),
    );
    const ec = await gateway.sign(ref('ec'), 'ES256', digest);
    const ecd = await gateway.describe(ref('ec'));
    assert.ok(es256Verifies(ecd, data, ec.output));
  });

  it('uses a pinned version for the operation, the current one otherwise', async () => {
    const kc = emulator.keyClient();
    const first = await kc.createKey('rotating', 'EC-HSM', { curve: 'P-256' });
    const firstDesc = await gateway.describe(ref('rotating'));
    const second = await kc.createKey('rotating', 'EC-HSM', { curve: 'P-256' });
    const data = randomBytes(40);
    const digest = createHash('sha256').update(data).digest();

    const pinned = await gateway.sign(ref('rotating', first.properties.version), 'ES256', digest);
    assert.equal(pinned.version, first.properties.version);
    assert.ok(es256Verifies(firstDesc, data, pinned.output));

    const current = await gateway.sign(ref('rotating'), 'ES256', digest);
    assert.equal(current.version, second.properties.version);
    const secondDesc = await gateway.describe(ref('rotating'));
    assert.equal(secondDesc.version, second.properties.version);
    assert.ok(es256Verifies(secondDesc, data, current.output));
  });

  it('sees a rotated key once the key cache TTL has passed (RSA wrap runs on the new version)', async () => {
    const fresh = makeGateway({ keyCacheTtlMs: 0 }, {});
    try {
      const kc = emulator.keyClient();
      await kc.createKey('rsawrap', 'RSA-HSM', { keySize: 2048 });
      const secret = randomBytes(32);
      const before = await fresh.wrapKey(ref('rsawrap'), 'RSA-OAEP-256', secret);
      const rotated = await kc.createKey('rsawrap', 'RSA-HSM', { keySize: 2048 });
      const after = await fresh.wrapKey(ref('rsawrap'), 'RSA-OAEP-256', secret);
      assert.notEqual(after.version, before.version);
      assert.equal(after.version, rotated.properties.version);
      assert.deepEqual(
        (await fresh.unwrapKey(ref('rsawrap'), 'RSA-OAEP-256', after.output)).output,
        secret,
      );
      const old = await fresh.unwrapKey(
        ref('rsawrap', before.version),
        'RSA-OAEP-256',
        before.output,
      );
      assert.deepEqual(old.output, secret);
    } finally {
      await fresh.close();
    }
  });

  it('decrypts what the public key encrypted', async () => {
    const d = await gateway.describe(ref('rsa'));
    const secret = randomBytes(32);
    const ct = publicEncrypt(
      {
        key: publicKeyOf(d),
        padding: constants.RSA_PKCS1_OAEP_PADDING,
        oaepHash: 'sha256',
      },
      secret,
    );
    const r = await gateway.decrypt(ref('rsa'), 'RSA-OAEP-256', ct);
    assert.deepEqual(r.output, secret);
  });

  it('wraps and unwraps with an AES key', async () => {
    const secret = randomBytes(32);
    const wrapped = await gateway.wrapKey(ref('aes'), 'A192KW', secret);
    assert.equal(wrapped.output.length, 40);
    const unwrapped = await gateway.unwrapKey(ref('aes'), 'A192KW', wrapped.output);
    assert.deepEqual(unwrapped.output, secret);
  });

  it('a fresh gateway serves many different first requests at once', async () => {
    const fresh = makeGateway({}, {});
    try {
      const digest = randomBytes(32);
      const secret = randomBytes(16);
      const results = await Promise.all([
        ...Array.from({ length: 10 }, () => fresh.sign(ref('ec'), 'ES256', digest)),
        ...Array.from({ length: 10 }, () => fresh.wrapKey(ref('aes'), 'A192KW', secret)),
        ...Array.from({ length: 5 }, () => fresh.sign(ref('rsa'), 'RS256', digest)),
        fresh.describe(ref('k1')),
        fresh.listKeys('managedhsm', HSM),
      ]);
      assert.equal(results.length, 27);
    } finally {
      await fresh.close();
    }
  });

  it('lists the keys, sorted', async () => {
    const names = await gateway.listKeys('managedhsm', HSM);
    for (const n of ['aes', 'ec', 'k1', 'rsa'])
      assert.ok(names.includes(n), `${n} in ${names.join(',')}`);
    assert.deepEqual(names, [...names].sort());
  });

  it('asks the credential once for many operations', async () => {
    let refreshes = 0;
    const counted = makeGateway({}, { onTokenRefresh: () => refreshes++ });
    try {
      const digest = randomBytes(32);
      await Promise.all(Array.from({ length: 30 }, () => counted.sign(ref('ec'), 'ES256', digest)));
      await counted.describe(ref('rsa'));
      assert.equal(refreshes, 1);
    } finally {
      await counted.close();
    }
  });
});

describe('errors that are never retried', () => {
  it('404: a missing key or version is KEY_NOT_FOUND', async () => {
    const before = await emulator.stats();
    const err = await expectAkvError(
      gateway.sign(ref('nosuchkey'), 'ES256', randomBytes(32)),
      'KEY_NOT_FOUND',
      'managedhsm:gwtest:nosuchkey',
      'key list',
    );
    assert.equal(err.retries, 0);
    await expectAkvError(gateway.describe(ref('ec', '0'.repeat(32))), 'KEY_NOT_FOUND');
    const afterStats = await emulator.stats();
    const delta = (op: string): number =>
      (afterStats.requests[op] ?? 0) - (before.requests[op] ?? 0);
    // The sign goes straight to the HSM (its key is never fetched); each is asked once, no retry.
    assert.deepEqual([delta('sign'), delta('get')], [1, 1], 'one request each, no retry');
    assert.deepEqual(retries, []);
  });

  it('400: a digest of the wrong length is BAD_PARAMETER', async () => {
    const before = await emulator.stats();
    await expectAkvError(gateway.sign(ref('ec'), 'ES256', randomBytes(31)), 'BAD_PARAMETER', '400');
    const afterStats = await emulator.stats();
    assert.equal((afterStats.requests.sign ?? 0) - (before.requests.sign ?? 0), 1);
    assert.deepEqual(retries, []);
  });

  it('403: an operation the key does not allow is FORBIDDEN, naming the operation and both causes', async () => {
    await expectAkvError(
      gateway.sign(ref('verifyonly'), 'RS256', randomBytes(32)),
      'FORBIDDEN',
      'refused sign with managedhsm:gwtest:verifyonly (403 Forbidden',
      'sign not in its key_ops',
      'role assignment list',
    );
    await expectAkvError(
      gateway.decrypt(ref('ec'), 'RSA-OAEP', randomBytes(32)),
      'FORBIDDEN',
      'decrypt',
    );
    assert.deepEqual(retries, []);
  });

  it('401: a token the HSM refuses is UNAUTHORIZED', async () => {
    const strict = await startEmulator({ token: 'the-right-token' });
    try {
      const wrong = createGateway(
        parseConfigObject(
          {
            vaults: {
              [HSM]: {
                endpoint: strict.url,
                caFile: strict.caFile,
                disableChallengeResourceVerification: true,
              },
            },
            credential: { type: 'static', token: 'a-wrong-token' },
          },
          'test',
          {},
        ),
        silent,
        { onRetry: (k) => retries.push(k) },
      );
      await expectAkvError(wrong.describe(ref('ec')), 'UNAUTHORIZED', '401', 'az login');
      // The hot path too (its own request, the same answer), and twice: no state is left stuck.
      for (let i = 0; i < 2; i++) {
        await expectAkvError(
          wrong.sign(ref('ec'), 'ES256', randomBytes(32)),
          'UNAUTHORIZED',
          '401',
          'az login',
        );
      }
      assert.deepEqual(retries, []);
      await wrong.close();
    } finally {
      await strict.stop();
    }
  });

  it('403 for a disabled or expired key is FORBIDDEN with both causes (no real sample tells them apart)', async () => {
    const kc = emulator.keyClient();
    await kc.createKey('disabledkey', 'EC-HSM', { curve: 'P-256', enabled: false });
    await expectAkvError(
      gateway.sign(ref('disabledkey'), 'ES256', randomBytes(32)),
      'FORBIDDEN',
      'managedhsm:gwtest:disabledkey',
      'disabled, outside its not-before/expiry dates',
      'Managed HSM Crypto User',
    );
    const expiring = await kc.createKey('expiredkey', 'EC-HSM', { curve: 'P-256' });
    await kc.updateKeyProperties('expiredkey', expiring.properties.version ?? '', {
      expiresOn: new Date(Date.now() - 60_000),
    });
    await expectAkvError(
      gateway.sign(ref('expiredkey'), 'ES256', randomBytes(32)),
      'FORBIDDEN',
      'expired',
      'key show --hsm-name gwtest --name expiredkey',
    );
    assert.deepEqual(retries, []);
  });

  it('an untrusted certificate or a closed port is UNAVAILABLE with the fix', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'akv-gw-ca-'));
    try {
      const otherCa = join(dir, 'other-ca.pem');
      const made = spawnSync('openssl', [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:P-256',
        '-nodes',
        '-subj',
        '/CN=not the emulator CA',
        '-days',
        '1',
        '-keyout',
        join(dir, 'k.pem'),
        '-out',
        otherCa,
      ]);
      assert.equal(made.status, 0, made.stderr?.toString());
      const untrusted = makeGateway({
        vaults: {
          [HSM]: {
            endpoint: emulator.url,
            caFile: otherCa,
            disableChallengeResourceVerification: true,
          },
        },
      });
      await expectAkvError(untrusted.describe(ref('ec')), 'UNAVAILABLE', 'not trusted', 'caFile');
      await untrusted.close();
      const closed = makeGateway({
        vaults: {
          [HSM]: { endpoint: 'https://127.0.0.1:1', disableChallengeResourceVerification: true },
        },
      });
      await expectAkvError(closed.describe(ref('ec')), 'UNAVAILABLE', 'ECONNREFUSED', 'endpoint');
      await closed.close();
      assert.deepEqual(retries, []);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('an unknown algorithm is UNSUPPORTED before anything is sent', async () => {
    await expectAkvError(gateway.sign(ref('ec'), 'ES999', randomBytes(32)), 'UNSUPPORTED', 'ES256');
  });
});

describe('retries', () => {
  const digest = randomBytes(32);

  it('retries 429 without Retry-After with backoff and succeeds', async () => {
    await emulator.setFaults({ mode: 'throttle', count: 2, operations: ['sign'] });
    const r = await gateway.sign(ref('ec'), 'ES256', digest);
    assert.equal(r.retries, 2);
    assert.deepEqual(retries, ['throttled', 'throttled']);
  });

  it('retries 429 with Retry-After after the time it asks for', async () => {
    await emulator.setFaults({
      mode: 'throttle-retry-after',
      retryAfterSeconds: 1,
      count: 1,
      operations: ['sign'],
    });
    const started = Date.now();
    const r = await gateway.sign(ref('ec'), 'ES256', digest);
    assert.equal(r.retries, 1);
    assert.deepEqual(retries, ['throttled']);
    // The backoff alone would be at most 20 ms: waiting at least the second means Retry-After counted.
    assert.ok(Date.now() - started >= 1000, 'waited for Retry-After');
  });

  it('retries 503 and 500', async () => {
    await emulator.setFaults({ mode: 'error503', count: 2, operations: ['sign'] });
    assert.equal((await gateway.sign(ref('ec'), 'ES256', digest)).retries, 2);
    await emulator.setFaults({ mode: 'error500', count: 1, operations: ['sign'] });
    assert.equal((await gateway.sign(ref('ec'), 'ES256', digest)).retries, 1);
    assert.deepEqual(retries, ['server-error', 'server-error', 'server-error']);
  });

  it('retries a connection reset', async () => {
    // Two resets: one may land on a kept-alive connection, which the hot path's client replays at
    // once by itself (hsm-http.ts); the other reaches the retry loop, whichever comes first.
    await emulator.setFaults({ mode: 'reset', count: 2, operations: ['sign'] });
    const r = await gateway.sign(ref('ec'), 'ES256', digest);
    assert.equal(r.retries, 1);
    assert.deepEqual(retries, ['connection-reset']);
  });

  it('gives up after retry.maxRetries with THROTTLED and the count', async () => {
    await emulator.setFaults({ mode: 'throttle', count: 50, operations: ['sign'] });
    const err = await expectAkvError(
      gateway.sign(ref('ec'), 'ES256', digest),
      'THROTTLED',
      'throttled',
      'retried 3 times',
    );
    assert.equal(err.retries, 3);
  });

  it('does not sleep past the deadline for a long Retry-After', async () => {
    await emulator.setFaults({
      mode: 'throttle-retry-after',
      retryAfterSeconds: 60,
      count: 5,
      operations: ['sign'],
    });
    const err = await expectAkvError(gateway.sign(ref('ec'), 'ES256', digest), 'THROTTLED');
    assert.equal(err.retries, 0);
  });

  it('stops a hanging call at the deadline with TIMEOUT', async () => {
    const quick = makeGateway({ deadlineMs: 1500 });
    try {
      await quick.describe(ref('ec')); // client and token ready, so only the hang remains
      await emulator.setFaults({ mode: 'hang', count: 1, operations: ['sign'] });
      await expectAkvError(quick.sign(ref('ec'), 'ES256', digest), 'TIMEOUT', '1500 ms');
      await emulator.clearFaults();
      const r = await quick.sign(ref('ec'), 'ES256', digest);
      assert.equal(r.output.length, 64, 'the next call works');
    } finally {
      await quick.close();
    }
  });
});
