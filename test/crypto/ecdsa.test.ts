/**
 * ECDSA over a given digest (src/crypto/ecdsa.ts) on every Azure curve: raw r||s and DER both
 * verify, the two convert into each other, and a DER signature that OpenSSL refuses (a
 * non-minimal or negative INTEGER, a non-minimal length, trailing bytes) is refused here too,
 * checked against the real `openssl pkeyutl -verify` (which, unlike `openssl dgst`, reads the
 * whole signature file rather than at most the key's maximum signature size).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash, generateKeyPairSync, sign } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import {
  ecdsaDerToRaw,
  ecdsaRawToDer,
  ecdsaVerifyDigest,
  type CurveName,
} from '../../src/crypto/ecdsa.js';
import { malformedDerSignatures } from '../helpers/malformed-ecdsa.js';

const work = mkdtempSync(join(tmpdir(), 'akv-ecdsa-'));
after(() => rmSync(work, { recursive: true, force: true }));

/** `openssl pkeyutl -verify` over the digest, the system's OpenSSL alone: exit 0 means valid. */
function opensslVerifies(pubPem: string, digest: Buffer, signature: Buffer): boolean {
  writeFileSync(join(work, 'pub.pem'), pubPem);
  writeFileSync(join(work, 'digest'), digest);
  writeFileSync(join(work, 'sig'), signature);
  const env = { ...process.env };
  delete env.OPENSSL_CONF;
  delete env.OPENSSL_MODULES;
  const r = spawnSync(
    'openssl',
    ['pkeyutl', '-verify', '-pubin', '-inkey', 'pub.pem', '-in', 'digest', '-sigfile', 'sig'],
    { cwd: work, env, encoding: 'utf8' },
  );
  assert.ok(r.status === 0 || r.status === 1, `openssl failed to run: ${r.stderr}`);
  return r.status === 0;
}

const CURVES: [CurveName, string, string][] = [
  ['P-256', 'prime256v1', 'sha256'],
  ['P-256K', 'secp256k1', 'sha256'],
  ['P-384', 'secp384r1', 'sha384'],
  ['P-521', 'secp521r1', 'sha512'],
];

for (const [curve, namedCurve, hash] of CURVES) {
  describe(`ECDSA on ${curve}`, () => {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve });
    const jwk = publicKey.export({ format: 'jwk' });
    const point = Buffer.concat([
      Buffer.from([4]),
      Buffer.from(jwk.x ?? '', 'base64url'),
      Buffer.from(jwk.y ?? '', 'base64url'),
    ]);
    const pubPem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
    const data = Buffer.from(`ecdsa on ${curve}`);
    const digest = createHash(hash).update(data).digest();

    it('verifies raw and DER signatures, converts between them, refuses another digest', () => {
      const der = sign(hash, data, { key: privateKey, dsaEncoding: 'der' });
      const raw = ecdsaDerToRaw(curve, der);
      assert.ok(raw);
      assert.deepEqual(ecdsaRawToDer(curve, raw), der);
      assert.ok(ecdsaVerifyDigest(curve, point, digest, der));
      assert.ok(ecdsaVerifyDigest(curve, point, digest, raw));
      assert.equal(ecdsaVerifyDigest(curve, point, digest, der, ['compact']), false, 'DER only');
      const other = createHash(hash).update('other').digest();
      assert.equal(ecdsaVerifyDigest(curve, point, other, raw), false);
      assert.ok(opensslVerifies(pubPem, digest, der), 'the original verifies with openssl');
    });

    it('refuses the malformed DER encodings of a valid signature, as openssl does', () => {
      const der = sign(hash, data, { key: privateKey, dsaEncoding: 'der' });
      for (const [what, bad] of Object.entries(malformedDerSignatures(der))) {
        assert.equal(opensslVerifies(pubPem, digest, bad), false, `openssl accepts ${what}`);
        assert.equal(ecdsaDerToRaw(curve, bad), undefined, `parsed: ${what}`);
        assert.equal(ecdsaVerifyDigest(curve, point, digest, bad), false, `verified: ${what}`);
      }
    });
  });
}
