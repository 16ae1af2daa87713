/** base64url without padding, as every binary field of the Key Vault REST API is written. */
const BASE64URL = /^[A-Za-z0-9_-]*={0,2}$/;

export function toBase64Url(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64url');
}

/**
 * Decodes a base64url (or, leniently, standard base64) field; `undefined` when the text is not
 * base64 at all, so the caller can name the field in its error.
 */
export function fromBase64Url(text: string): Buffer | undefined {
  const normalized = text.replace(/\+/g, '-').replace(/\//g, '_');
  if (!BASE64URL.test(normalized)) return undefined;
  return Buffer.from(normalized.replace(/=+$/, ''), 'base64url');
}
