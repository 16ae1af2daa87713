/**
 * RSA signatures over a given digest (src/crypto/rsa-signature.ts), shared by the emulator and
 * the CLI: what they make verifies with Node's own RSA (which hashes the data itself), what Node
 * makes verifies with them, and anything else does not.
 */
import assert from 'node:assert/strict';
import { constants, createHash, generateKeyPairSync, sign, verify } from 'node:crypto';
import { describe, it } from 'node:test';
import { signRsa, verifyRsa, type DigestName } from '../../src/crypto/rsa-signature.js';

const HASHES: DigestName[] = ['sha256', 'sha384', 'sha512'];
const flipped = (b: Buffer, at: number): Buffer => {
  const copy = Buffer.from(b);
  copy[at] = (copy[at] ?? 0) ^ 1;
  return copy;
};

describe('RSA signatures over a digest', () => {
  for (const bits of [2048, 3072]) {
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: bits });

    for (const hash of HASHES) {
      const data = Buffer.from(`rsa ${bits} ${hash}`);
      const digest = createHash(hash).update(data).digest();
      const other = createHash(hash).update('other').digest();
      const pss = {
        key: publicKey,
        padding: constants.RSA_PKCS1_PSS_PADDING,
        saltLength: digest.length,
      };

      it(`PSS ${bits} ${hash}: salt = hash length, verified by Node; Node's verified by us`, () => {
        const signature = signRsa('pss', privateKey, hash, digest);
        assert.ok(signature);
        assert.equal(signature.length, bits / 8);
        assert.ok(verify(hash, data, pss, signature), 'Node verifies ours');
        assert.ok(verifyRsa('pss', publicKey, hash, digest, signature));
        assert.equal(verifyRsa('pss', publicKey, hash, other, signature), false, 'another digest');
        assert.equal(verifyRsa('pss', publicKey, hash, digest, flipped(signature, 9)), false);
        const nodes = sign(hash, data, { ...pss, key: privateKey });
        assert.ok(verifyRsa('pss', publicKey, hash, digest, nodes), 'we verify Node');
      });

      it(`PKCS#1 v1.5 ${bits} ${hash}: verified by Node; Node's verified by us`, () => {
        const signature = signRsa('pkcs1', privateKey, hash, digest);
        assert.ok(signature);
        assert.ok(verify(hash, data, publicKey, signature), 'Node verifies ours');
        assert.deepEqual(sign(hash, data, privateKey), signature, 'deterministic, as Node');
        assert.ok(verifyRsa('pkcs1', publicKey, hash, digest, signature));
        assert.equal(
          verifyRsa('pkcs1', publicKey, hash, other, signature),
          false,
          'another digest',
        );
        assert.equal(verifyRsa('pkcs1', publicKey, hash, digest, flipped(signature, 9)), false);
        assert.equal(verifyRsa('pss', publicKey, hash, digest, signature), false, 'not PSS');
      });
    }
  }

  it('PSS with another salt length, wrong lengths and garbage are "not valid"', () => {
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const data = Buffer.from('salt');
    const digest = createHash('sha256').update(data).digest();
    const salt20 = sign('sha256', data, {
      key: privateKey,
      padding: constants.RSA_PKCS1_PSS_PADDING,
      saltLength: 20,
    });
    assert.equal(verifyRsa('pss', publicKey, 'sha256', digest, salt20), false);
    for (const sig of [
      Buffer.alloc(0),
      Buffer.alloc(255),
      Buffer.alloc(256),
      Buffer.alloc(256, 0xff),
    ]) {
      assert.equal(verifyRsa('pss', publicKey, 'sha256', digest, sig), false);
      assert.equal(verifyRsa('pkcs1', publicKey, 'sha256', digest, sig), false);
    }
  });

  it('refuses a key too small for the hash (PSS: 1024 bits with SHA-512; PKCS#1: 512 bits)', () => {
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 1024 });
    const digest = createHash('sha512').update('small').digest();
    assert.equal(signRsa('pss', privateKey, 'sha512', digest), undefined);
    assert.equal(verifyRsa('pss', publicKey, 'sha512', digest, Buffer.alloc(128, 1)), false);
    assert.ok(signRsa('pkcs1', privateKey, 'sha512', digest), 'PKCS#1 fits 1024 bits');
    const tiny = generateKeyPairSync('rsa', { modulusLength: 512 });
    assert.equal(signRsa('pkcs1', tiny.privateKey, 'sha512', digest), undefined);
    assert.equal(verifyRsa('pkcs1', tiny.publicKey, 'sha512', digest, Buffer.alloc(64, 1)), false);
  });
});
