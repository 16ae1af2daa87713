import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  Op,
  Tag,
  bytesField,
  decodeFrame,
  encodeFrame,
  getString,
  getStrings,
  getU32,
  opName,
  requireBytes,
  requireString,
  requireU32,
  stringField,
  u32Field,
} from '../../src/protocol/index.js';

test('typed field readers read what the builders wrote', () => {
  const frame = decodeFrame(
    encodeFrame(Op.LIST | 0x80, 3, [
      u32Field(Tag.STATUS, 0),
      stringField(Tag.KEY_NAME, 'a'),
      stringField(Tag.KEY_NAME, 'bé'),
      bytesField(Tag.OUTPUT, new Uint8Array([1, 2, 3])),
    ]),
  );
  assert.equal(requireU32(frame, Tag.STATUS), 0);
  assert.deepEqual(getStrings(frame, Tag.KEY_NAME), ['a', 'bé']);
  assert.equal(requireBytes(frame, Tag.OUTPUT).toString('hex'), '010203');
  assert.equal(getString(frame, Tag.URI), undefined);
  assert.equal(getU32(frame, Tag.RETRIES), undefined);
});

test('field readers reject wrong shapes and missing fields with ProtocolError', () => {
  const frame = decodeFrame(
    encodeFrame(Op.SIGN, 9, [
      { tag: Tag.CLIENT_PID, value: Buffer.from([0, 1]) },
      { tag: Tag.URI, value: Buffer.from([0xff, 0xfe]) },
    ]),
  );
  assert.throws(() => getU32(frame, Tag.CLIENT_PID), {
    name: 'ProtocolError',
    reason: 'bad-field',
    id: 9,
  });
  assert.throws(() => requireString(frame, Tag.URI), {
    reason: 'bad-field',
    message: /URI is not valid UTF-8/,
  });
  assert.throws(() => requireBytes(frame, Tag.INPUT), {
    reason: 'missing-field',
    message: /INPUT is missing/,
  });
});

test('op names for messages', () => {
  assert.equal(opName(Op.SIGN), 'SIGN');
  assert.equal(opName(Op.SIGN | 0x80), 'SIGN response');
  assert.equal(opName(Op.PROTOCOL_ERROR), 'PROTOCOL_ERROR');
  assert.equal(opName(0x42), 'op 0x42');
});
