/**
 * ECDSA signatures in DER that carry a valid (r, s) but are not DER, or not a valid signature
 * encoding, in the ways OpenSSL refuses: tests check that akv refuses each of them too.
 */

/** A DER length: short form below 128, long form otherwise. */
function derLength(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  return n < 0x100 ? Buffer.from([0x81, n]) : Buffer.from([0x82, n >> 8, n & 0xff]);
}

const tlv = (tag: number, value: Buffer, length = derLength(value.length)): Buffer =>
  Buffer.concat([Buffer.from([tag]), length, value]);

/** The contents of the two INTEGERs of a DER ECDSA signature (as its encoder wrote them). */
export function derIntegers(der: Buffer): { r: Buffer; s: Buffer } {
  let p = 0;
  const read = (tag: number): Buffer => {
    if (der[p++] !== tag) throw new Error(`expected tag ${tag} at ${p - 1}`);
    let len = der[p++] ?? 0;
    if (len & 0x80) {
      const count = len & 0x7f;
      len = 0;
      for (let i = 0; i < count; i++) len = (len << 8) | (der[p++] ?? 0);
    }
    const value = der.subarray(p, p + len);
    if (tag === 0x02) p += len;
    return value;
  };
  read(0x30);
  return { r: read(0x02), s: read(0x02) };
}

/** The minimal two's complement bytes of -value (value > 0): a negative DER INTEGER. */
function negated(value: Buffer): Buffer {
  const v = BigInt(`0x${value.toString('hex')}`);
  let bytes = 1;
  while (v > 1n << BigInt(8 * bytes - 1)) bytes++;
  const twos = (1n << BigInt(8 * bytes)) - v;
  return Buffer.from(twos.toString(16).padStart(2 * bytes, '0'), 'hex');
}

/** Malformed variants of a valid DER ECDSA signature, by what is wrong with them. */
export function malformedDerSignatures(der: Buffer): Record<string, Buffer> {
  const { r, s } = derIntegers(der);
  const seq = (...parts: Buffer[]): Buffer => tlv(0x30, Buffer.concat(parts));
  const int = (v: Buffer): Buffer => tlv(0x02, v);
  const body = Buffer.concat([int(r), int(s)]);
  return {
    'r with a leading 0x00 it does not need (non-minimal INTEGER)': seq(
      int(Buffer.concat([Buffer.from([0]), r])),
      int(s),
    ),
    'r negative (its two\u2019s complement negation)': seq(int(negated(r)), int(s)),
    'a long-form SEQUENCE length where the short form fits': tlv(
      0x30,
      body,
      body.length < 0x80 ? Buffer.from([0x81, body.length]) : Buffer.from([0x82, 0, body.length]),
    ),
    'a byte after the SEQUENCE': Buffer.concat([der, Buffer.from([0])]),
  };
}
