/**
 * Every operation through the agent socket, for every key type Managed HSM offers, with each
 * result checked locally against the public key (or a locally known AES key).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import {
  constants,
  createCipheriv,
  createHash,
  createPublicKey,
  publicEncrypt,
  randomBytes,
  verify,
  type KeyObject,
} from 'node:crypto';
import type { KeyVaultKey } from '@azure/keyvault-keys';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import type { AgentClient } from '../../src/client/agent-client.js';
import { settleChallenge, startEmulator, type RunningEmulator } from '../helpers/emulator.js';
import { startAgent, type RunningAgent } from '../helpers/agent.js';

const HSM = 'opshsm';
const uri = (name: string): string => `managedhsm:${HSM}:${name}`;

let emulator: RunningEmulator;
let agent: RunningAgent;
let client: AgentClient;

const RSA_SIZES = [2048, 3072, 4096] as const;
const CURVES = ['P-256', 'P-256K', 'P-384', 'P-521'] as const;
const AES_SIZES = [128, 192, 256] as const;
const aesKeys = new Map<number, Buffer>();
const created = new Map<string, KeyVaultKey>();

before(async () => {
  emulator = await startEmulator();
  agent = await startAgent({ emulator, hsmName: HSM });
  client = agent.client();
  const keys = emulator.keyClient();
  const allOps = ['sign', 'verify', 'encrypt', 'decrypt', 'wrapKey', 'unwrapKey'] as const;
  await settleChallenge(keys);
  // Keys are made once per file, in parallel (RSA 4096 generation is the slow part).
  await Promise.all([
    ...RSA_SIZES.map(async (size) =>
      created.set(
        `rsa${size}`,
        await keys.createKey(`rsa${size}`, 'RSA-HSM', { keySize: size, keyOps: [...allOps] }),
      ),
    ),
    ...CURVES.map(async (curve) =>
      created.set(
        `ec-${curve}`,
        await keys.createKey(`ec-${curve}`, 'EC-HSM', { curve, keyOps: ['sign', 'verify'] }),
      ),
    ),
    ...AES_SIZES.map(async (bits) => {
      // Imported with known bytes, so wrapping can be checked with node's own AES key wrap.
      const k = randomBytes(bits / 8);
      aesKeys.set(bits, k);
      created.set(
        `aes${bits}`,
        await keys.importKey(
          `aes${bits}`,
          { kty: 'oct-HSM', k, keyOps: ['wrapKey', 'unwrapKey', 'encrypt', 'decrypt'] },
          {
            hardwareProtected: true,
          },
        ),
      );
    }),
  ]);
});

after(async () => {
  await agent?.stop();
  await emulator?.stop();
});

async function publicKeyOf(name: string): Promise<KeyObject> {
  const info = await client.describe(uri(name));
  assert.ok(info.publicKey, `${name} has a public key`);
  return createPublicKey({ key: info.publicKey, format: 'der', type: 'spki' });
}

const HASH_OF: Record<string, 'sha256' | 'sha384' | 'sha512'> = {
  '256': 'sha256',
  '384': 'sha384',
  '512': 'sha512',
};

describe('RSA keys', () => {
  for (const size of RSA_SIZES) {
    const name = `rsa${size}`;
    test(`${name}: describe gives type, size, version, ops and the SPKI of the HSM's key`, async () => {
      const info = await client.describe(uri(name));
      const key = created.get(name)!;
      assert.equal(info.keyType, 'RSA');
      assert.equal(info.bits, size);
      assert.equal(info.curve, undefined);
      assert.equal(info.version, key.properties.version);
      assert.equal(info.kid, key.id);
      assert.deepEqual([...info.keyOps].sort(), [
        'decrypt',
        'encrypt',
        'sign',
        'unwrapKey',
        'verify',
        'wrapKey',
      ]);
      const spki = createPublicKey({ key: info.publicKey!, format: 'der', type: 'spki' });
      const jwk = spki.export({ format: 'jwk' });
      assert.equal(jwk.n, Buffer.from(key.key!.n!).toString('base64url'));
      assert.equal(spki.asymmetricKeyDetails?.modulusLength, size);
    });

    test(`${name}: RS256/384/512 and PS256/384/512 signatures verify locally`, async () => {
      const pub = await publicKeyOf(name);
      const data = randomBytes(100);
      for (const alg of ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512']) {
        const hash = HASH_OF[alg.slice(2)]!;
        const digest = createHash(hash).update(data).digest();
        const { output, version } = await client.sign(uri(name), alg, digest);
        assert.equal(output.length, size / 8, alg);
        assert.equal(version, created.get(name)!.properties.version);
        const pss = alg.startsWith('PS');
        const ok = verify(
          hash,
          data,
          pss
            ? { key: pub, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: digest.length }
            : { key: pub, padding: constants.RSA_PKCS1_PADDING },
          output,
        );
        assert.ok(ok, `${alg} signature of ${name} does not verify`);
      }
    });

    test(`${name}: RSA-OAEP, RSA-OAEP-256 and RSA1_5 decrypt what was encrypted locally`, async () => {
      const pub = await publicKeyOf(name);
      const plain = randomBytes(32);
      const cases: Array<[string, Parameters<typeof publicEncrypt>[0]]> = [
        ['RSA-OAEP', { key: pub, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha1' }],
        [
          'RSA-OAEP-256',
          { key: pub, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' },
        ],
        ['RSA1_5', { key: pub, padding: constants.RSA_PKCS1_PADDING }],
      ];
      for (const [alg, options] of cases) {
        const ciphertext = publicEncrypt(options, plain);
        const { output } = await client.decrypt(uri(name), alg, ciphertext);
        assert.equal(output.toString('hex'), plain.toString('hex'), alg);
      }
    });

    test(`${name}: unwrap a key wrapped locally with RSA-OAEP-256, and wrap/unwrap round trip`, async () => {
      const pub = await publicKeyOf(name);
      const cek = randomBytes(32);
      const wrappedLocally = publicEncrypt(
        { key: pub, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' },
        cek,
      );
      assert.deepEqual(
        (await client.unwrap(uri(name), 'RSA-OAEP-256', wrappedLocally)).output,
        cek,
      );
      const wrapped = await client.wrap(uri(name), 'RSA-OAEP', cek);
      assert.equal(wrapped.output.length, size / 8);
      assert.deepEqual((await client.unwrap(uri(name), 'RSA-OAEP', wrapped.output)).output, cek);
    });
  }
});

describe('EC keys', () => {
  const ALG: Record<
    (typeof CURVES)[number],
    [string, 'sha256' | 'sha384' | 'sha512', number, number]
  > = {
    'P-256': ['ES256', 'sha256', 256, 64],
    'P-256K': ['ES256K', 'sha256', 256, 64],
    'P-384': ['ES384', 'sha384', 384, 96],
    'P-521': ['ES512', 'sha512', 521, 132],
  };
  for (const curve of CURVES) {
    const name = `ec-${curve}`;
    const [alg, hash, bits, sigLength] = ALG[curve];
    test(`${name}: describe gives curve, bits and the SPKI`, async () => {
      const info = await client.describe(uri(name));
      assert.equal(info.keyType, 'EC');
      assert.equal(info.curve, curve);
      assert.equal(info.bits, bits);
      assert.deepEqual([...info.keyOps].sort(), ['sign', 'verify']);
      const jwk = createPublicKey({ key: info.publicKey!, format: 'der', type: 'spki' }).export({
        format: 'jwk',
      });
      assert.equal(jwk.x, Buffer.from(created.get(name)!.key!.x!).toString('base64url'));
      assert.equal(jwk.y, Buffer.from(created.get(name)!.key!.y!).toString('base64url'));
    });

    test(`${name}: ${alg} gives raw r||s that verifies locally`, async () => {
      const pub = await publicKeyOf(name);
      const data = randomBytes(77);
      const digest = createHash(hash).update(data).digest();
      const { output } = await client.sign(uri(name), alg, digest);
      assert.equal(output.length, sigLength);
      assert.ok(
        verify(hash, data, { key: pub, dsaEncoding: 'ieee-p1363' }, output),
        `${alg} does not verify`,
      );
      if (curve === 'P-256K') {
        // A second, independent check for the curve OpenSSL builds may lack.
        const raw = Buffer.from(pub.export({ format: 'der', type: 'spki' })).subarray(-65);
        assert.ok(secp256k1.verify(output, digest, raw, { prehash: false, lowS: false }));
      }
    });

    test(`${name}: decrypt is refused with a clear status`, async () => {
      await assert.rejects(
        client.decrypt(uri(name), 'RSA-OAEP', randomBytes(64)),
        (err: Error & { code?: string }) => {
          assert.ok(
            ['BAD_PARAMETER', 'FORBIDDEN', 'UNSUPPORTED'].includes(err.code ?? ''),
            `${err.code}: ${err.message}`,
          );
          return true;
        },
      );
    });
  }
});

describe('AES keys', () => {
  for (const bits of AES_SIZES) {
    const name = `aes${bits}`;
    const alg = `A${bits}KW`;
    test(`${name}: describe gives AES, ${bits} bits and no public key`, async () => {
      const info = await client.describe(uri(name));
      assert.equal(info.keyType, 'AES');
      // Managed HSM's JWK for oct keys carries no size; KEY_BITS is 0 when the HSM did not say.
      assert.ok(info.bits === bits || info.bits === 0, `KEY_BITS ${info.bits}`);
      assert.equal(info.publicKey, undefined);
    });

    test(`${name}: ${alg} wrap equals RFC 3394 done locally, and unwrap reverses it`, async () => {
      const cek = randomBytes(32);
      const { output } = await client.wrap(uri(name), alg, cek);
      const iv = Buffer.from('a6a6a6a6a6a6a6a6', 'hex');
      const cipher = createCipheriv(`id-aes${bits}-wrap`, aesKeys.get(bits)!, iv);
      const local = Buffer.concat([cipher.update(cek), cipher.final()]);
      assert.equal(output.toString('hex'), local.toString('hex'));
      assert.deepEqual((await client.unwrap(uri(name), alg, local)).output, cek);
    });

    test(`${name}: a tampered wrapped key is refused, not unwrapped to garbage`, async () => {
      const { output } = await client.wrap(uri(name), alg, randomBytes(16));
      output[3]! ^= 1;
      await assert.rejects(client.unwrap(uri(name), alg, output), { code: 'BAD_PARAMETER' });
    });
  }
});

describe('versions, list, errors', () => {
  test('a ?version= pin is used for the signature itself, also after the key was rotated', async () => {
    const keys = emulator.keyClient();
    const v1 = await keys.createKey('rotating', 'EC-HSM', {
      curve: 'P-256',
      keyOps: ['sign', 'verify'],
    });
    const before = await client.describe(uri('rotating'));
    assert.equal(before.version, v1.properties.version);
    const v2 = await keys.createKey('rotating', 'EC-HSM', {
      curve: 'P-256',
      keyOps: ['sign', 'verify'],
    });
    const digest = createHash('sha256').update('pinned').digest();
    const pinnedUri = `${uri('rotating')}?version=${v1.properties.version}`;
    const pinned = await client.sign(pinnedUri, 'ES256', digest);
    assert.equal(pinned.version, v1.properties.version);
    const v1Pub = createPublicKey({
      key: (await client.describe(pinnedUri)).publicKey!,
      format: 'der',
      type: 'spki',
    });
    const verifies = (pub: KeyObject, sig: Buffer): boolean =>
      verify('sha256', Buffer.from('pinned'), { key: pub, dsaEncoding: 'ieee-p1363' }, sig);
    assert.ok(verifies(v1Pub, pinned.output), 'the pinned signature verifies with v1');
    // The unpinned key now signs with v2; that tells the agent its cached description is stale.
    const current = await client.sign(uri('rotating'), 'ES256', digest);
    assert.equal(current.version, v2.properties.version);
    const after = await client.describe(uri('rotating'));
    assert.equal(after.version, v2.properties.version);
    const v2Pub = createPublicKey({ key: after.publicKey!, format: 'der', type: 'spki' });
    assert.ok(verifies(v2Pub, current.output), 'the unpinned signature verifies with v2');
    assert.ok(!verifies(v2Pub, pinned.output), 'the pinned signature was not made with v2');
    // The akv: form with a version pins too.
    const akvPinned = await client.sign(
      `akv:vault=${HSM},name=rotating,version=${v1.properties.version}`,
      'ES256',
      digest,
    );
    assert.equal(akvPinned.version, v1.properties.version);
  });

  test('list returns the enabled keys, sorted', async () => {
    const names = await client.list(HSM);
    for (const n of ['aes128', 'ec-P-256', 'rsa2048', 'rsa4096']) assert.ok(names.includes(n), n);
    assert.deepEqual(names, [...names].sort());
  });

  test('errors come back as statuses with a message, and the connection stays usable', async () => {
    await assert.rejects(client.describe(uri('no-such-key')), {
      code: 'KEY_NOT_FOUND',
      message: /no-such-key/,
    });
    await assert.rejects(client.describe('managedhsm:bad_name:k'), {
      code: 'BAD_URI',
      message: /Accepted forms/,
    });
    await assert.rejects(client.sign(uri('ec-P-256'), 'ES256', randomBytes(31)), {
      code: 'BAD_PARAMETER',
    });
    await assert.rejects(client.sign(uri('ec-P-256'), 'XX999', randomBytes(32)), {
      code: 'UNSUPPORTED',
      message: /XX999/,
      hint: /ES256/,
    });
    await assert.rejects(client.sign(uri('aes256'), 'RS256', randomBytes(32)));
    await client.ping();
  });

  test('hello reports the protocol and agent versions', async () => {
    const hello = await client.hello();
    assert.equal(hello.protoVersion, 1);
    assert.match(hello.agentVersion, /^\d+\.\d+\.\d+/);
  });

  test('every private-key operation wrote one audit line, without any input or output bytes', async () => {
    const digest = createHash('sha256').update('audit me').digest();
    const { output } = await client.sign(uri('ec-P-256'), 'ES256', digest);
    const lines = await agent.logLines();
    const audit = lines.filter((l) => l.audit === true);
    const mine = audit.filter(
      (l) => l.uri === uri('ec-P-256') && l.op === 'sign' && l.status === 'OK',
    );
    assert.ok(mine.length >= 1);
    const line = mine.at(-1)!;
    assert.equal(line.alg, 'ES256');
    assert.equal(line.result, 'ok');
    assert.equal(line.client_pid, process.pid);
    assert.equal(line.pid_source, 'kernel', 'the pid is the one the kernel gave (SO_PEERCRED)');
    assert.equal(line.uid, process.getuid?.());
    assert.equal(statSync(agent.logFile).mode & 0o777, 0o600, 'the log file is the agent user’s');
    assert.equal(typeof line.latency_ms, 'number');
    assert.equal(line.key_version, created.get('ec-P-256')!.properties.version);
    const failed = audit.find((l) => l.status === 'BAD_PARAMETER');
    assert.ok(failed && failed.result === 'error' && typeof failed.error === 'string');
    const text = JSON.stringify(lines);
    for (const secret of [digest, output]) {
      for (const encoding of ['hex', 'base64', 'base64url'] as const) {
        assert.ok(
          !text.includes(secret.toString(encoding)),
          `the log holds data bytes (${encoding})`,
        );
      }
    }
    assert.ok(!text.includes(emulator.token), 'the log holds the token');
  });
});
