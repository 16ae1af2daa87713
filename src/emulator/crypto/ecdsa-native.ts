/**
 * ECDSA signing of a given digest with OpenSSL doing the expensive part. node:crypto signs only
 * data it hashes itself (`crypto.sign` has no "this is already a digest" mode for EC keys), and
 * the pure-JavaScript signature (@noble/curves, src/crypto/ecdsa.ts) cost the emulator about
 * 1.3 ms of CPU per P-256 signature, more than everything else in a benchmark together. So the
 * scalar multiplication k·G runs natively (an ECDH key pair whose private key is the nonce k: its
 * public key is k·G), and the rest of the signature is a few BigInt operations modulo the curve
 * order: r = x(k·G) mod n, s = k⁻¹(z + r·d) mod n, with z the leftmost bits of the digest as
 * FIPS 186-5 says. Nonces are made ahead in batches (below); about 40 µs per P-256 signature in
 * all. The nonce is random (crypto.randomBytes), which ECDSA allows; this is the emulator, whose
 * keys are test keys.
 */
import { createECDH, randomBytes } from 'node:crypto';
import { p256, p384, p521 } from '@noble/curves/nist.js';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import type { CurveName } from '../keys/types.js';

interface Curve {
  /** OpenSSL's name for ECDH. */
  openssl: string;
  order: bigint;
  bits: number;
  bytes: number;
}

const curve = (openssl: string, order: bigint): Curve => {
  const bits = order.toString(2).length;
  return { openssl, order, bits, bytes: Math.ceil(bits / 8) };
};

/** The curve orders are public constants; @noble/curves is where the tree already has them. */
const CURVES: Record<CurveName, Curve> = {
  'P-256': curve('prime256v1', p256.Point.Fn.ORDER),
  'P-384': curve('secp384r1', p384.Point.Fn.ORDER),
  'P-521': curve('secp521r1', p521.Point.Fn.ORDER),
  'P-256K': curve('secp256k1', secp256k1.Point.Fn.ORDER),
};

const toBig = (bytes: Uint8Array): bigint =>
  bytes.length === 0
    ? 0n
    : BigInt(`0x${Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex')}`);

function toBytes(value: bigint, length: number): Buffer {
  return Buffer.from(value.toString(16).padStart(length * 2, '0'), 'hex');
}

/** a⁻¹ mod m (m prime, 0 < a < m), by the extended Euclidean algorithm. */
function inverse(a: bigint, m: bigint): bigint {
  let r0 = a;
  let r1 = m;
  let s0 = 1n;
  let s1 = 0n;
  while (r1 !== 0n) {
    const q = r0 / r1;
    const r2 = r0 - q * r1;
    r0 = r1;
    r1 = r2;
    const s2 = s0 - q * s1;
    s0 = s1;
    s1 = s2;
  }
  return s0 < 0n ? s0 + m : s0;
}

/** Random bytes drawn from a 4 KiB buffer refilled when used up: one system call per ~60 nonces. */
const NONCE_POOL_BYTES = 4096;
let noncePool = Buffer.alloc(0);
let noncePoolAt = 0;

function randomNonceBytes(length: number): Buffer {
  if (noncePoolAt + length > noncePool.length) {
    noncePool = randomBytes(NONCE_POOL_BYTES);
    noncePoolAt = 0;
  }
  // A copy: the caller masks its first byte, and the pool's bytes are used once only.
  const out = Buffer.from(noncePool.subarray(noncePoolAt, noncePoolAt + length));
  noncePoolAt += length;
  return out;
}

/** A one-time nonce k, ready to use: r = x(k·G) mod n and k⁻¹ mod n. */
interface Nonce {
  r: bigint;
  kInverse: bigint;
}

/**
 * Nonces are made in batches so that one modular inversion serves the whole batch (Montgomery's
 * trick: the inverse of the product, then one multiplication back per nonce): a BigInt inversion
 * costs about 70 µs, more than the native scalar multiplication. Each nonce is used once.
 */
const NONCE_BATCH = 64;
const noncesByCurve = new Map<string, Nonce[]>();

function nextNonce(c: Curve): Nonce {
  let nonces = noncesByCurve.get(c.openssl);
  if (!nonces || nonces.length === 0) {
    nonces = nonceBatch(c);
    noncesByCurve.set(c.openssl, nonces);
  }
  return nonces.pop()!;
}

function nonceBatch(c: Curve): Nonce[] {
  const n = c.order;
  const ecdh = createECDH(c.openssl);
  const ks: bigint[] = [];
  const rs: bigint[] = [];
  while (ks.length < NONCE_BATCH) {
    const kBytes = randomNonceBytes(c.bytes);
    kBytes[0]! &= 0xff >> (c.bytes * 8 - c.bits); // no more bits than the order has
    const k = toBig(kBytes);
    if (k === 0n || k >= n) continue;
    ecdh.setPrivateKey(kBytes);
    const point = ecdh.getPublicKey(null, 'uncompressed');
    const r = toBig(point.subarray(1, 1 + (point.length - 1) / 2)) % n;
    if (r === 0n) continue;
    ks.push(k);
    rs.push(r);
  }
  // prefix[i] = k0·…·k(i-1); one inversion of the whole product, then walk back.
  const prefix: bigint[] = [];
  let product = 1n;
  for (const k of ks) {
    prefix.push(product);
    product = (product * k) % n;
  }
  let inverseOfRest = inverse(product, n);
  const nonces: Nonce[] = new Array<Nonce>(ks.length);
  for (let i = ks.length - 1; i >= 0; i--) {
    nonces[i] = { r: rs[i]!, kInverse: (inverseOfRest * prefix[i]!) % n };
    inverseOfRest = (inverseOfRest * ks[i]!) % n;
  }
  return nonces;
}

/** A raw r||s signature of `digest` with the private scalar `d` (big-endian bytes). */
export function ecdsaSignDigestNative(
  curveName: CurveName,
  d: Uint8Array,
  digest: Uint8Array,
): Buffer {
  const c = CURVES[curveName];
  const n = c.order;
  const dValue = toBig(d);
  // z: the leftmost `bits` bits of the digest.
  const excess = digest.length * 8 - c.bits;
  const z = excess > 0 ? toBig(digest) >> BigInt(excess) : toBig(digest);
  for (;;) {
    const { r, kInverse } = nextNonce(c);
    const s = (kInverse * ((z + r * dValue) % n)) % n;
    if (s === 0n) continue;
    return Buffer.concat([toBytes(r, c.bytes), toBytes(s, c.bytes)]);
  }
}
