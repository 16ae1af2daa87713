/** ECDSA signature encodings: Azure's raw r||s and the DER SEQUENCE OpenSSL reads and writes. */

/** ECDSA r||s → DER SEQUENCE { INTEGER r, INTEGER s } (what OpenSSL reads). */
export function rawEcdsaToDer(raw: Buffer): Buffer {
  const half = raw.length / 2;
  const int = (b: Buffer): Buffer => {
    let i = 0;
    while (i < b.length - 1 && b[i] === 0) i++;
    let v = b.subarray(i);
    if ((v[0] ?? 0) & 0x80) v = Buffer.concat([Buffer.from([0]), v]);
    return Buffer.concat([Buffer.from([0x02]), derLength(v.length), v]);
  };
  const body = Buffer.concat([int(raw.subarray(0, half)), int(raw.subarray(half))]);
  return Buffer.concat([Buffer.from([0x30]), derLength(body.length), body]);
}

function derLength(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  if (n < 0x100) return Buffer.from([0x81, n]);
  return Buffer.from([0x82, n >> 8, n & 0xff]);
}

/** DER ECDSA signature → r||s with each half `size` bytes; undefined when it is not DER. */
export function derEcdsaToRaw(der: Buffer, size: number): Buffer | undefined {
  try {
    let p = 0;
    const readLen = (): number => {
      const first = der[p++] ?? 0;
      if (first < 0x80) return first;
      const count = first & 0x7f;
      let n = 0;
      for (let i = 0; i < count; i++) n = (n << 8) | (der[p++] ?? 0);
      return n;
    };
    if (der[p++] !== 0x30) return undefined;
    if (readLen() + p !== der.length) return undefined;
    const parts: Buffer[] = [];
    for (let k = 0; k < 2; k++) {
      if (der[p++] !== 0x02) return undefined;
      const len = readLen();
      let v = der.subarray(p, p + len);
      p += len;
      while (v.length > size && v[0] === 0) v = v.subarray(1);
      if (v.length > size) return undefined;
      parts.push(Buffer.concat([Buffer.alloc(size - v.length), v]));
    }
    return p === der.length ? Buffer.concat(parts) : undefined;
  } catch {
    return undefined;
  }
}
