import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import {
  FrameDecoder,
  MAX_REQUEST_BODY,
  ProtocolError,
  decodeFrame,
  encodeFrame,
} from '../../src/protocol/index.js';
import type { Frame } from '../../src/protocol/index.js';
import { protocolVectorsText } from '../vectors/generate-protocol-vectors.js';
import { DOCUMENTED_FRAME_REASONS } from './frame-reasons.js';

// dist/test/protocol/ -> repository root
const vectorsFile = fileURLToPath(
  new URL('../../../test/vectors/protocol-vectors.txt', import.meta.url),
);
const text = readFileSync(vectorsFile, 'utf8');

interface Ok {
  kind: 'ok';
  name: string;
  frame: Buffer;
  op: number;
  id: number;
  fields: Array<{ tag: number; value: Buffer }>;
}
interface Bad {
  kind: 'bad';
  name: string;
  frame: Buffer;
  reason: string;
}

function parseLine(line: string): Ok | Bad {
  const parts = line.split(' ');
  const [kind, name, frameHex, ...rest] = parts;
  assert.ok(name && frameHex, `malformed vector line: ${line.slice(0, 80)}`);
  assert.match(frameHex, /^([0-9a-f]{2})+$/, `${name}: frame is not lowercase hex`);
  const frame = Buffer.from(frameHex, 'hex');
  if (kind === 'bad') {
    assert.equal(rest.length, 1, `${name}: a bad vector has exactly one reason`);
    return { kind, name, frame, reason: rest[0]! };
  }
  assert.equal(kind, 'ok', `unknown vector kind ${kind}`);
  const [opPart, idPart, ...fieldParts] = rest;
  const op = /^op=([0-9a-f]{2})$/.exec(opPart ?? '');
  const id = /^id=(\d+)$/.exec(idPart ?? '');
  assert.ok(op && id, `${name}: op= and id= expected`);
  const fields = fieldParts.map((p) => {
    const m = /^([0-9a-f]{4})=((?:[0-9a-f]{2})*)$/.exec(p);
    assert.ok(m, `${name}: bad field ${p.slice(0, 40)}`);
    return { tag: parseInt(m[1]!, 16), value: Buffer.from(m[2]!, 'hex') };
  });
  return { kind, name, frame, op: parseInt(op[1]!, 16), id: Number(id[1]), fields };
}

const vectors = text
  .split('\n')
  .filter((l) => l !== '' && !l.startsWith('#'))
  .map(parseLine);

function plain(frame: Frame): { op: number; id: number; fields: Array<[number, string]> } {
  return {
    op: frame.op,
    id: frame.id,
    fields: frame.fields.map((f) => [f.tag, f.value.toString('hex')]),
  };
}

function rejectReason(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ProtocolError, `threw ${String(err)} instead of a ProtocolError`);
    return err.reason;
  }
  return 'accepted';
}

test('the committed vectors file is what the generator writes', () => {
  assert.equal(
    text,
    protocolVectorsText(),
    'run the generator (see its header) and commit the result',
  );
});

test('there are at least 30 vectors and every documented bad reason is covered', () => {
  assert.ok(vectors.length >= 30, `${vectors.length} vectors`);
  const reasons = new Set(vectors.filter((v): v is Bad => v.kind === 'bad').map((v) => v.reason));
  assert.deepEqual([...reasons].sort(), [...DOCUMENTED_FRAME_REASONS].sort());
  const names = vectors.map((v) => v.name);
  assert.equal(new Set(names).size, names.length, 'vector names are unique');
});

for (const v of vectors) {
  if (v.kind === 'ok') {
    test(`ok ${v.name}: decodes to the listed fields, and encodes back to the same bytes`, () => {
      const expected = {
        op: v.op,
        id: v.id,
        fields: v.fields.map((f): [number, string] => [f.tag, f.value.toString('hex')]),
      };
      assert.deepEqual(plain(decodeFrame(v.frame, MAX_REQUEST_BODY)), expected);
      assert.equal(
        encodeFrame(v.op, v.id, v.fields, MAX_REQUEST_BODY).toString('hex'),
        v.frame.toString('hex'),
      );
      // The streaming decoder gives the same frame whether bytes come all at once or one by one.
      const whole = new FrameDecoder(MAX_REQUEST_BODY).push(v.frame);
      assert.deepEqual(whole.map(plain), [expected]);
      const dribble = new FrameDecoder(MAX_REQUEST_BODY);
      const frames: Frame[] = [];
      const step = v.frame.length > 4096 ? 997 : 1;
      for (let i = 0; i < v.frame.length; i += step)
        frames.push(...dribble.push(v.frame.subarray(i, i + step)));
      dribble.finish();
      assert.deepEqual(frames.map(plain), [expected]);
    });
  } else {
    test(`bad ${v.name}: rejected as ${v.reason}`, () => {
      assert.equal(
        rejectReason(() => decodeFrame(v.frame, MAX_REQUEST_BODY)),
        v.reason,
      );
      const stream = new FrameDecoder(MAX_REQUEST_BODY);
      assert.equal(
        rejectReason(() => {
          stream.push(v.frame);
          stream.finish();
        }),
        v.reason,
      );
      const dribble = new FrameDecoder(MAX_REQUEST_BODY);
      assert.equal(
        rejectReason(() => {
          for (const byte of v.frame) dribble.push(Buffer.of(byte));
          dribble.finish();
        }),
        v.reason,
      );
    });
  }
}

test('the stream decoder splits back-to-back frames and keeps a partial one for later', () => {
  const oks = vectors.filter((v): v is Ok => v.kind === 'ok');
  const stream = Buffer.concat(oks.map((v) => v.frame));
  const decoder = new FrameDecoder(MAX_REQUEST_BODY);
  const cut = stream.length - 5;
  const first = decoder.push(stream.subarray(0, cut));
  assert.equal(first.length, oks.length - 1);
  assert.equal(decoder.bufferedBytes, oks.at(-1)!.frame.length - 5);
  const rest = decoder.push(stream.subarray(cut));
  assert.equal(rest.length, 1);
  assert.deepEqual(
    [...first, ...rest].map((f) => f.id),
    oks.map((v) => v.id),
  );
  decoder.finish();
});

test('a garbage stream is refused as soon as two bytes show a bad magic', () => {
  const decoder = new FrameDecoder(MAX_REQUEST_BODY);
  assert.throws(() => decoder.push(Buffer.from('GE')), { reason: 'magic' });
  // Broken for good: later input throws the same error.
  assert.throws(() => decoder.push(Buffer.from('414b01020000000000000000', 'hex')), {
    reason: 'magic',
  });
});

test('a too-large length is refused from the header, without waiting for the body', () => {
  const decoder = new FrameDecoder(MAX_REQUEST_BODY);
  assert.throws(
    () => decoder.push(Buffer.from('414b010400000009ffffffff', 'hex')),
    (err: unknown) => {
      assert.ok(err instanceof ProtocolError);
      assert.equal(err.reason, 'too-large');
      assert.equal(err.id, 9);
      return true;
    },
  );
});

test('the encoder refuses frames its peer would reject', () => {
  assert.throws(
    () => encodeFrame(0x04, 1, [{ tag: 5, value: Buffer.alloc(65_531) }], MAX_REQUEST_BODY),
    RangeError,
  );
  assert.throws(() => encodeFrame(0x100, 1, []), RangeError);
  assert.throws(() => encodeFrame(0x02, 2 ** 32, []), RangeError);
  assert.throws(() => encodeFrame(0x02, 1, [{ tag: 0x10000, value: Buffer.alloc(0) }]), RangeError);
});
