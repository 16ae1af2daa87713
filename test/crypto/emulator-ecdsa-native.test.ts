/**
 * The emulator's native ECDSA (src/emulator/crypto/ecdsa-native.ts): on every curve Azure offers,
 * its signatures of a given digest verify with @noble/curves (the digest as given, high s allowed)
 * and with OpenSSL through node:crypto; a digest longer than the curve order is cut to its
 * leftmost bits as FIPS 186-5 says (SHA-512 on P-256, SHA-256 on P-521 the other way round), and
 * a wrong digest does not verify; no nonce is used twice. Also a ratio against the pure-JavaScript signer it replaced.
 */
import assert from 'node:assert/strict';
import { createHash, createPublicKey, verify } from 'node:crypto';
import { it } from 'node:test';
import { p256, p384, p521 } from '@noble/curves/nist.js';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { ecdsaSignDigestNative } from '../../src/emulator/crypto/ecdsa-native.js';
import { ecdsaSignDigest, type CurveName } from '../../src/crypto/ecdsa.js';

const NOBLE = { 'P-256': p256, 'P-384': p384, 'P-521': p521, 'P-256K': secp256k1 } as const;
const JWK_CRV: Record<CurveName, string> = {
  'P-256': 'P-256',
  'P-384': 'P-384',
  'P-521': 'P-521',
  'P-256K': 'secp256k1',
};

function publicKeyOf(curve: CurveName, d: Uint8Array): ReturnType<typeof createPublicKey> {
  const point = NOBLE[curve].getPublicKey(d, false);
  const half = (point.length - 1) / 2;
  return createPublicKey({
    key: {
      kty: 'EC',
      crv: JWK_CRV[curve],
      x: Buffer.from(point.subarray(1, 1 + half)).toString('base64url'),
      y: Buffer.from(point.subarray(1 + half)).toString('base64url'),
    },
    format: 'jwk',
  });
}

for (const curve of ['P-256', 'P-384', 'P-521', 'P-256K'] as const) {
  it(`${curve}: signatures of a digest verify, as given and through OpenSSL`, () => {
    const noble = NOBLE[curve];
    const d = noble.utils.randomSecretKey();
    const pub = noble.getPublicKey(d, false);
    for (const hash of ['sha256', 'sha384', 'sha512']) {
      for (let i = 0; i < 8; i++) {
        const message = Buffer.from(`${curve} ${hash} ${i}`);
        const digest = createHash(hash).update(message).digest();
        const sig = ecdsaSignDigestNative(curve, d, digest);
        assert.equal(sig.length, 2 * Math.ceil(noble.Point.Fn.BITS / 8));
        assert.ok(noble.verify(sig, digest, pub, { prehash: false, lowS: false }), `${hash} ${i}`);
        if (curve !== 'P-256K' || hash === 'sha256') {
          // OpenSSL hashes the message itself and cuts the digest the same way.
          assert.ok(
            verify(hash, message, { key: publicKeyOf(curve, d), dsaEncoding: 'ieee-p1363' }, sig),
            `OpenSSL ${hash} ${i}`,
          );
        }
        const other = createHash(hash).update('something else').digest();
        assert.ok(!noble.verify(sig, other, pub, { prehash: false, lowS: false }));
      }
    }
  });
}

it('costs a fraction of the pure-JavaScript signer (P-256, same run)', () => {
  const d = p256.utils.randomSecretKey();
  const digest = createHash('sha256').update('ratio').digest();
  const cpu = (f: () => unknown, n: number): number => {
    const t = process.cpuUsage();
    for (let i = 0; i < n; i++) f();
    const u = process.cpuUsage(t);
    return (u.user + u.system) / n;
  };
  cpu(() => ecdsaSignDigestNative('P-256', d, digest), 50); // warm
  const native = cpu(() => ecdsaSignDigestNative('P-256', d, digest), 300);
  const js = cpu(() => ecdsaSignDigest('P-256', d, digest), 100);
  assert.ok(native * 3 < js, `native ${native.toFixed(0)} µs, JavaScript ${js.toFixed(0)} µs`);
});

it('never uses a nonce twice: 300 signatures of one digest (several nonce batches) all differ and verify', () => {
  const d = p256.utils.randomSecretKey();
  const digest = createHash('sha256').update('one digest').digest();
  const pub = p256.getPublicKey(d, false);
  const rs = new Set<string>();
  for (let i = 0; i < 300; i++) {
    const sig = ecdsaSignDigestNative('P-256', d, digest);
    rs.add(sig.subarray(0, 32).toString('hex'));
    assert.ok(
      p256.verify(sig, digest, pub, { prehash: false, lowS: false }),
      `signature ${i} verifies`,
    );
  }
  assert.equal(rs.size, 300, 'every signature has its own r');
});
