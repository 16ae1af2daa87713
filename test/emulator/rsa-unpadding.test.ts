/**
 * The RSA building block the emulator implements itself: PKCS#1 v1.5 encryption unpadding
 * (every malformed block is refused). Signatures: test/crypto/rsa-signature.test.ts.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { unpadPkcs1Type2 } from '../../src/emulator/crypto/rsa.js';

function block(parts: number[][]): Buffer {
  return Buffer.from(parts.flat());
}

test('PKCS#1 v1.5 type 2 unpadding accepts only well-formed blocks', () => {
  const ps = Array(8).fill(0x55) as number[];
  const message = [1, 2, 3];
  assert.deepEqual(unpadPkcs1Type2(block([[0, 2], ps, [0], message])), Buffer.from(message));
  assert.deepEqual(unpadPkcs1Type2(block([[0, 2], ps, [0]])), Buffer.alloc(0), 'empty message');
  const cases: [string, Buffer][] = [
    ['first byte not zero', block([[1, 2], ps, [0], message])],
    ['block type 1', block([[0, 1], ps, [0], message])],
    ['padding of 7 bytes', block([[0, 2], ps.slice(1), [0], message])],
    ['no separator', block([[0, 2], ps, message])],
    ['zero inside the first 8 padding bytes', block([[0, 2, 9, 9, 0], ps, [0], message])],
  ];
  for (const [why, bad] of cases) assert.equal(unpadPkcs1Type2(bad), undefined, why);
});
