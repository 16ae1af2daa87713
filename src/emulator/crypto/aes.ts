/**
 * The AES modes of Managed HSM: GCM (the HSM picks the 12-byte iv; the tag travels separately),
 * CBC without padding (input zero-padded to the block, as the service does), CBC with PKCS#7
 * padding, and RFC 3394 key wrap.
 */
import { createCipheriv, createDecipheriv, randomBytes, type CipherGCMTypes } from 'node:crypto';
import { badParameter } from '../errors.js';

const GCM_IV_LENGTH = 12;
const GCM_TAG_LENGTH = 16;
const BLOCK = 16;
/** RFC 3394 default initial value. */
const KW_IV = Buffer.from('a6a6a6a6a6a6a6a6', 'hex');

function gcmName(key: Buffer): CipherGCMTypes {
  switch (key.length) {
    case 16:
      return 'aes-128-gcm';
    case 24:
      return 'aes-192-gcm';
    case 32:
      return 'aes-256-gcm';
    default:
      throw badParameter(`AES-GCM takes a 128, 192 or 256-bit key, not ${key.length * 8} bits`);
  }
}

export function gcmEncrypt(
  key: Buffer,
  plaintext: Buffer,
  aad: Buffer | undefined,
): { ciphertext: Buffer; iv: Buffer; tag: Buffer } {
  const iv = randomBytes(GCM_IV_LENGTH);
  const cipher = createCipheriv(gcmName(key), key, iv, { authTagLength: GCM_TAG_LENGTH });
  if (aad) cipher.setAAD(aad);
  const ciphertext = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return { ciphertext, iv, tag: cipher.getAuthTag() };
}

export function gcmDecrypt(
  key: Buffer,
  ciphertext: Buffer,
  iv: Buffer | undefined,
  tag: Buffer | undefined,
  aad: Buffer | undefined,
): Buffer {
  if (!iv || iv.length !== GCM_IV_LENGTH) {
    throw badParameter(`AES-GCM decryption needs the 12-byte "iv" that encryption returned`);
  }
  if (!tag || tag.length !== GCM_TAG_LENGTH) {
    throw badParameter(
      `AES-GCM decryption needs the 16-byte authentication "tag" that encryption returned`,
    );
  }
  const decipher = createDecipheriv(gcmName(key), key, iv, { authTagLength: GCM_TAG_LENGTH });
  if (aad) decipher.setAAD(aad);
  decipher.setAuthTag(tag);
  try {
    return Buffer.concat([decipher.update(ciphertext), decipher.final()]);
  } catch {
    throw badParameter('AES-GCM decryption failed: the ciphertext, iv, tag or aad does not match');
  }
}

function checkCbcIv(iv: Buffer | undefined): Buffer {
  if (!iv || iv.length !== BLOCK) throw badParameter('AES-CBC needs a 16-byte "iv"');
  return iv;
}

export function cbcEncrypt(key: Buffer, plaintext: Buffer, iv: Buffer, pkcs7: boolean): Buffer {
  const cipher = createCipheriv(`aes-${key.length * 8}-cbc`, key, checkCbcIv(iv));
  cipher.setAutoPadding(pkcs7);
  const input = pkcs7 ? plaintext : zeroPad(plaintext);
  return Buffer.concat([cipher.update(input), cipher.final()]);
}

export function cbcDecrypt(
  key: Buffer,
  ciphertext: Buffer,
  iv: Buffer | undefined,
  pkcs7: boolean,
): Buffer {
  if (ciphertext.length === 0 || ciphertext.length % BLOCK !== 0) {
    throw badParameter('AES-CBC ciphertext must be a non-empty multiple of 16 bytes');
  }
  const decipher = createDecipheriv(`aes-${key.length * 8}-cbc`, key, checkCbcIv(iv));
  decipher.setAutoPadding(pkcs7);
  try {
    return Buffer.concat([decipher.update(ciphertext), decipher.final()]);
  } catch {
    throw badParameter('AES-CBC decryption failed: the padding is not valid for this key and iv');
  }
}

function zeroPad(data: Buffer): Buffer {
  const rest = data.length % BLOCK;
  return rest === 0 && data.length > 0 ? data : Buffer.concat([data, Buffer.alloc(BLOCK - rest)]);
}

export function keyWrap(key: Buffer, keyToWrap: Buffer): Buffer {
  if (keyToWrap.length < 16 || keyToWrap.length % 8 !== 0) {
    throw badParameter(
      `AES key wrap takes a key of at least 16 bytes in multiples of 8; got ${keyToWrap.length} bytes`,
    );
  }
  const cipher = createCipheriv(`id-aes${key.length * 8}-wrap`, key, KW_IV);
  return Buffer.concat([cipher.update(keyToWrap), cipher.final()]);
}

export function keyUnwrap(key: Buffer, wrapped: Buffer): Buffer {
  if (wrapped.length < 24 || wrapped.length % 8 !== 0) {
    throw badParameter(
      `A wrapped key is at least 24 bytes in multiples of 8; got ${wrapped.length} bytes`,
    );
  }
  const decipher = createDecipheriv(`id-aes${key.length * 8}-wrap`, key, KW_IV);
  try {
    return Buffer.concat([decipher.update(wrapped), decipher.final()]);
  } catch {
    throw badParameter('AES key unwrap failed: the wrapped key was not wrapped with this key');
  }
}
