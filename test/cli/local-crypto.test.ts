/**
 * The CLI's local public-key operations: verification over a digest (RSA PKCS#1 v1.5 and PSS,
 * ECDSA raw or DER on every Azure curve) against signatures Node's own crypto makes, and local
 * encryption. (The padding and curve arithmetic: test/crypto/.)
 */
import assert from 'node:assert/strict';
import {
  constants,
  createHash,
  generateKeyPairSync,
  privateDecrypt,
  sign,
  type KeyObject,
} from 'node:crypto';
import { describe, it } from 'node:test';
import {
  ecdsaSignatureToDer,
  encryptLocally,
  hashForAlg,
  verifyDigest,
} from '../../src/cli/util/local-crypto.js';
import { AkvError } from '../../src/errors.js';
import { malformedDerSignatures } from '../helpers/malformed-ecdsa.js';

const data = Buffer.from('local crypto test data');
const spkiOf = (k: KeyObject) => k.export({ type: 'spki', format: 'der' });

describe('verifyDigest', () => {
  const rsa = generateKeyPairSync('rsa', { modulusLength: 3072 });

  for (const alg of ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512']) {
    it(`${alg}: accepts Node's signature, refuses a changed digest or signature`, () => {
      const hash = hashForAlg(alg);
      const pss = alg.startsWith('PS');
      const sig = sign(
        hash,
        data,
        pss
          ? {
              key: rsa.privateKey,
              padding: constants.RSA_PKCS1_PSS_PADDING,
              saltLength: createHash(hash).digest().length,
            }
          : rsa.privateKey,
      );
      const digest = createHash(hash).update(data).digest();
      assert.equal(verifyDigest(spkiOf(rsa.publicKey), alg, digest, sig), true);
      const otherDigest = Buffer.from(digest);
      otherDigest[0] = (otherDigest[0] ?? 0) ^ 1;
      assert.equal(verifyDigest(spkiOf(rsa.publicKey), alg, otherDigest, sig), false);
      const otherSig = Buffer.from(sig);
      otherSig[10] = (otherSig[10] ?? 0) ^ 1;
      assert.equal(verifyDigest(spkiOf(rsa.publicKey), alg, digest, otherSig), false);
    });
  }

  it('PSS with a salt length other than the hash length is refused (Azure uses hash length)', () => {
    const sig = sign('sha256', data, {
      key: rsa.privateKey,
      padding: constants.RSA_PKCS1_PSS_PADDING,
      saltLength: 20,
    });
    assert.equal(
      verifyDigest(spkiOf(rsa.publicKey), 'PS256', createHash('sha256').update(data).digest(), sig),
      false,
    );
  });

  for (const [alg, curve] of [
    ['ES256', 'P-256'],
    ['ES256K', 'secp256k1'],
    ['ES384', 'P-384'],
    ['ES512', 'P-521'],
  ] as const) {
    it(`${alg}: raw r||s and DER both verify; a changed digest does not`, () => {
      const ec = generateKeyPairSync('ec', { namedCurve: curve });
      const hash = hashForAlg(alg);
      const raw = sign(hash, data, { key: ec.privateKey, dsaEncoding: 'ieee-p1363' });
      const der = sign(hash, data, { key: ec.privateKey, dsaEncoding: 'der' });
      const digest = createHash(hash).update(data).digest();
      assert.equal(verifyDigest(spkiOf(ec.publicKey), alg, digest, raw), true);
      assert.equal(verifyDigest(spkiOf(ec.publicKey), alg, digest, der), true);
      assert.equal(
        verifyDigest(spkiOf(ec.publicKey), alg, digest, ecdsaSignatureToDer(alg, raw)),
        true,
      );
      digest[0] = (digest[0] ?? 0) ^ 1;
      assert.equal(verifyDigest(spkiOf(ec.publicKey), alg, digest, raw), false);
    });
  }

  it('refuses an algorithm that does not fit the key, and a digest of the wrong length', () => {
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const digest = createHash('sha384').update(data).digest();
    assert.throws(
      () => verifyDigest(spkiOf(ec.publicKey), 'ES384', digest, Buffer.alloc(96)),
      (e: unknown) => e instanceof AkvError && /does not fit a key on P-256/.test(e.message),
    );
    assert.throws(
      () => verifyDigest(spkiOf(ec.publicKey), 'ES256', digest, Buffer.alloc(64)),
      (e: unknown) => e instanceof AkvError && e.code === 'BAD_PARAMETER',
    );
    assert.throws(
      () => verifyDigest(spkiOf(rsa.publicKey), 'ES256', digest.subarray(0, 32), Buffer.alloc(64)),
      /needs an EC key/,
    );
  });

  it('DER that OpenSSL refuses (non-minimal or negative INTEGER, ...) is "not verified"', () => {
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-384' });
    const digest = createHash('sha384').update(data).digest();
    const der = sign('sha384', data, { key: ec.privateKey, dsaEncoding: 'der' });
    assert.equal(verifyDigest(spkiOf(ec.publicKey), 'ES384', digest, der), true);
    for (const [what, bad] of Object.entries(malformedDerSignatures(der)))
      assert.equal(verifyDigest(spkiOf(ec.publicKey), 'ES384', digest, bad), false, what);
  });

  it('garbage is "not verified", never an exception', () => {
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const digest = createHash('sha256').update(data).digest();
    for (const sig of [
      Buffer.alloc(0),
      Buffer.alloc(64),
      Buffer.from('30440220', 'hex'),
      Buffer.alloc(200, 0x30),
    ]) {
      assert.equal(verifyDigest(spkiOf(ec.publicKey), 'ES256', digest, sig), false);
      assert.equal(verifyDigest(spkiOf(rsa.publicKey), 'PS256', digest, sig), false);
    }
  });
});

describe('encryptLocally', () => {
  it('produces ciphertexts the private key decrypts (OAEP SHA-1 and SHA-256)', () => {
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const secret = Buffer.from('a secret');
    for (const [alg, oaepHash] of [
      ['RSA-OAEP', 'sha1'],
      ['RSA-OAEP-256', 'sha256'],
    ] as const) {
      const ct = encryptLocally(spkiOf(rsa.publicKey), alg, secret);
      assert.deepEqual(
        privateDecrypt(
          { key: rsa.privateKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash },
          ct,
        ),
        secret,
      );
    }
    assert.throws(
      () => encryptLocally(spkiOf(rsa.publicKey), 'A256KW', secret),
      (e: unknown) =>
        e instanceof AkvError && e.code === 'UNSUPPORTED' && /RSA-OAEP-256/.test(e.fullMessage),
    );
  });
});
