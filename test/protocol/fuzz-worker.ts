/**
 * The decoder fuzz loop, run in a worker thread by fuzz.test.ts so that a decoder that loops
 * forever is caught (the worker is terminated) instead of freezing the test runner.
 * Every input must either decode, re-encoding to the same bytes, or be refused with ProtocolError.
 */
import { parentPort, workerData } from 'node:worker_threads';
import {
  FrameDecoder,
  FRAME_HEADER_SIZE,
  MAX_REQUEST_BODY,
  ProtocolError,
  Tag,
  decodeFrame,
  encodeFrame,
  stringField,
  u32Field,
  bytesField,
} from '../../src/protocol/index.js';
import type { Frame } from '../../src/protocol/index.js';

export interface FuzzResult {
  iterations: number;
  decoded: number;
  rejected: Record<string, number>;
  failure?: string;
}

/** mulberry32: small, seedable, good enough to pick mutations reproducibly. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const SEEDS: Buffer[] = [
  encodeFrame(0x02, 1, []),
  encodeFrame(0x01, 2, [u32Field(Tag.PROTO_VERSION, 1), stringField(Tag.CLIENT_NAME, 'fuzz')]),
  encodeFrame(0x04, 3, [
    stringField(Tag.URI, 'managedhsm:MyHSM:k'),
    stringField(Tag.ALG, 'ES256'),
    bytesField(Tag.INPUT, Buffer.alloc(32, 7)),
  ]),
  encodeFrame(0x88, 4, [
    u32Field(Tag.STATUS, 0),
    stringField(Tag.KEY_NAME, 'a'),
    stringField(Tag.KEY_NAME, 'b'),
  ]),
  encodeFrame(0x83, 5, [
    u32Field(Tag.STATUS, 0),
    u32Field(Tag.KEY_TYPE, 2),
    bytesField(Tag.PUBLIC_KEY, Buffer.alloc(91, 0x30)),
  ]),
];

function runFuzz(iterations: number, seed: number): FuzzResult {
  const rand = prng(seed);
  const int = (n: number): number => Math.floor(rand() * n);
  const randomBytes = (n: number): Buffer => {
    const b = Buffer.allocUnsafe(n);
    for (let i = 0; i < n; i++) b[i] = int(256);
    return b;
  };
  const result: FuzzResult = { iterations, decoded: 0, rejected: {} };

  function mutate(): Buffer {
    const base = Buffer.from(SEEDS[int(SEEDS.length)]!);
    switch (int(8)) {
      case 0: // pure random, sometimes behind a valid magic+version
        return int(2)
          ? randomBytes(int(64))
          : Buffer.concat([Buffer.from('414b01', 'hex'), randomBytes(int(64))]);
      case 1: {
        // flip a few bits
        for (let k = 1 + int(4); k > 0; k--) base[int(base.length)]! ^= 1 << int(8);
        return base;
      }
      case 2: // truncate
        return base.subarray(0, int(base.length + 1));
      case 3: // random tail
        return Buffer.concat([base, randomBytes(1 + int(20))]);
      case 4: {
        // random header length
        base.writeUInt32BE(int(3) === 0 ? int(0x1_0000_0000) : int(base.length + 16), 8);
        return base;
      }
      case 5: {
        // random field length inside the body
        if (base.length >= FRAME_HEADER_SIZE + 6)
          base.writeUInt32BE(int(3) === 0 ? int(0x1_0000_0000) : int(80), FRAME_HEADER_SIZE + 2);
        return base;
      }
      case 6: {
        // two frames spliced at random points
        const other = SEEDS[int(SEEDS.length)]!;
        return Buffer.concat([
          base.subarray(0, int(base.length + 1)),
          other.subarray(int(other.length)),
        ]);
      }
      default: {
        // overwrite one byte anywhere with an interesting value
        const interesting = [0x00, 0x01, 0x7f, 0x80, 0xff];
        base[int(base.length)] = interesting[int(interesting.length)]!;
        return base;
      }
    }
  }

  const reject = (err: unknown, input: Buffer, where: string): void => {
    if (!(err instanceof ProtocolError)) {
      throw new Error(`${where} threw ${String(err)} for input ${input.toString('hex')}`);
    }
    result.rejected[err.reason] = (result.rejected[err.reason] ?? 0) + 1;
  };

  for (let i = 0; i < iterations; i++) {
    const input = mutate();
    // Whole-buffer decoder: decodes and round-trips, or refuses with ProtocolError.
    try {
      const frame = decodeFrame(input, MAX_REQUEST_BODY);
      const again = encodeFrame(frame.op, frame.id, frame.fields, MAX_REQUEST_BODY);
      if (!again.equals(input)) throw new Error(`round trip changed ${input.toString('hex')}`);
      result.decoded++;
    } catch (err) {
      if (err instanceof Error && err.message.startsWith('round trip')) throw err;
      reject(err, input, 'decodeFrame');
    }
    // feed() with everything at once: the frames it keeps before an error must be exactly the
    // frames at the start of the input, re-encoded byte for byte.
    {
      const fed = new FrameDecoder(MAX_REQUEST_BODY).feed(input);
      const prefix = Buffer.concat(
        fed.frames.map((f) => encodeFrame(f.op, f.id, f.fields, MAX_REQUEST_BODY)),
      );
      if (!prefix.equals(input.subarray(0, prefix.length))) {
        throw new Error(
          `feed() returned frames that are not the input's prefix for ${input.toString('hex')}`,
        );
      }
      if (fed.error && !(fed.error instanceof ProtocolError))
        throw new Error('feed() gave a foreign error');
    }
    // Streaming decoder, fed in random pieces: what it returns must be exactly the frames at the
    // start of the input, and what it keeps must be an incomplete frame, never a decodable one.
    const decoder = new FrameDecoder(MAX_REQUEST_BODY);
    const frames: Frame[] = [];
    try {
      for (let pos = 0; pos < input.length;) {
        const n = 1 + int(Math.min(input.length - pos, 40));
        frames.push(...decoder.push(input.subarray(pos, pos + n)));
        pos += n;
      }
    } catch (err) {
      reject(err, input, 'FrameDecoder.push');
      continue;
    }
    const consumed = Buffer.concat(
      frames.map((f) => encodeFrame(f.op, f.id, f.fields, MAX_REQUEST_BODY)),
    );
    if (
      !consumed.equals(input.subarray(0, consumed.length)) ||
      consumed.length + decoder.bufferedBytes !== input.length
    ) {
      throw new Error(`stream decoder lost or invented bytes for ${input.toString('hex')}`);
    }
    if (decoder.bufferedBytes > 0) {
      try {
        decoder.finish();
        throw new Error(
          `finish() accepted ${decoder.bufferedBytes} leftover bytes of ${input.toString('hex')}`,
        );
      } catch (err) {
        if (
          err instanceof ProtocolError &&
          err.reason !== 'short-header' &&
          err.reason !== 'short-body'
        ) {
          throw new Error(`finish() gave ${err.reason} for ${input.toString('hex')}`);
        }
        reject(err, input, 'FrameDecoder.finish');
      }
    }
  }
  return result;
}

if (parentPort) {
  const { iterations, seed } = workerData as { iterations: number; seed: number };
  let result: FuzzResult;
  try {
    result = runFuzz(iterations, seed);
  } catch (err) {
    result = {
      iterations,
      decoded: 0,
      rejected: {},
      failure: err instanceof Error ? err.message : String(err),
    };
  }
  parentPort.postMessage(result);
}
