/**
 * Malformed frames over a raw socket: the agent answers one protocol-error frame (op 0xFF,
 * STATUS 1, a MESSAGE) and closes that connection; other connections and the agent carry on.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  Op,
  Tag,
  encodeFrame,
  getString,
  requireU32,
  stringField,
  u32Field,
} from '../../src/protocol/index.js';
import { Raw } from '../helpers/raw-client.js';
import {
  startAgentWithEcKey,
  type AgentWithEmulator,
  type RunningAgent,
} from '../helpers/agent.js';

const HSM = 'badframes';
let agent: RunningAgent;
let fixture: AgentWithEmulator | undefined;

before(async () => {
  fixture = await startAgentWithEcKey(HSM, 'k');
  ({ agent } = fixture);
});

after(async () => {
  await fixture?.stop();
});

async function expectProtocolError(
  bytes: Buffer | string,
  id: number,
  message: RegExp,
): Promise<void> {
  const raw = await Raw.open(agent.socket);
  raw.send(bytes);
  await raw.until(() => raw.closed);
  assert.equal(raw.frames.length, 1, 'exactly one frame, then the connection closes');
  const frame = raw.frames[0]!;
  assert.equal(frame.op, Op.PROTOCOL_ERROR);
  assert.equal(frame.id, id);
  assert.equal(requireU32(frame, Tag.STATUS), 1);
  assert.match(getString(frame, Tag.MESSAGE) ?? '', message);
}

const ping = (id: number): Buffer => encodeFrame(Op.PING, id, []);

test('bad magic: error frame with id 0, connection closed', async () => {
  await expectProtocolError(Buffer.from('GET / HTTP/1.1\r\n\r\n'), 0, /magic/);
});

test('unsupported version', async () => {
  await expectProtocolError('414b0202000000050000000000', 0, /version/);
});

test('a body over 64 KiB is refused from the header alone', async () => {
  await expectProtocolError('414b010400000009ffffffff', 9, /too-large/);
});

test('fields that do not fill the body, duplicated tags, a field header cut short', async () => {
  await expectProtocolError('414b0103000000050000000a00030000000561626364', 5, /field-overrun/);
  await expectProtocolError(
    encodeFrame(Op.SIGN, 6, [
      stringField(Tag.URI, 'managedhsm:badframes:k'),
      stringField(Tag.URI, 'x'),
    ]),
    6,
    /duplicate-tag/,
  );
  await expectProtocolError('414b01020000000b00000003000100', 11, /partial-field-header/);
});

test('an unknown op, a response op sent as a request, a missing or ill-typed field', async () => {
  await expectProtocolError(encodeFrame(0x42, 21, []), 21, /unknown operation/);
  await expectProtocolError(encodeFrame(Op.PING | 0x80, 22, []), 22, /unknown operation/);
  await expectProtocolError(
    encodeFrame(Op.SIGN, 23, [
      stringField(Tag.URI, 'managedhsm:badframes:k'),
      stringField(Tag.ALG, 'ES256'),
    ]),
    23,
    /INPUT is missing/,
  );
  await expectProtocolError(encodeFrame(Op.DESCRIBE, 24, []), 24, /URI is missing/);
  await expectProtocolError(
    encodeFrame(Op.HELLO, 25, [stringField(Tag.PROTO_VERSION, 'one')]),
    25,
    /PROTO_VERSION/,
  );
  await expectProtocolError(
    encodeFrame(Op.DESCRIBE, 26, [{ tag: Tag.URI, value: Buffer.from([0xc3, 0x28]) }]),
    26,
    /UTF-8/,
  );
  await expectProtocolError(
    encodeFrame(Op.LIST, 27, [
      stringField(Tag.VAULT_NAME, HSM),
      stringField(Tag.VAULT_TYPE, 'hsm'),
    ]),
    27,
    /VAULT_TYPE/,
  );
});

test('frames before the malformed one are answered; nothing after it is', async () => {
  const raw = await Raw.open(agent.socket);
  raw.send(Buffer.concat([ping(1), ping(2), Buffer.from('ffff', 'hex'), ping(3)]));
  await raw.until(() => raw.closed);
  const ids = raw.frames.map((f) => [f.op, f.id]);
  assert.deepEqual(ids.slice(-1), [[Op.PROTOCOL_ERROR, 0]]);
  assert.deepEqual(ids.slice(0, -1).sort(), [
    [Op.PING | 0x80, 1],
    [Op.PING | 0x80, 2],
  ]);
});

test('other connections are not affected, and frames may arrive in any pieces', async () => {
  const good = await Raw.open(agent.socket);
  const bad = await Raw.open(agent.socket);
  // A well-formed request dribbled one byte at a time on the good connection...
  const describe = encodeFrame(Op.DESCRIBE, 77, [
    stringField(Tag.URI, `managedhsm:${HSM}:k`),
    u32Field(Tag.CLIENT_PID, 1),
  ]);
  for (const byte of describe.subarray(0, 20)) good.send(Buffer.of(byte));
  // ...while the bad one breaks the protocol.
  bad.send('000000');
  await bad.until(() => bad.closed);
  good.send(describe.subarray(20));
  good.send(Buffer.concat([ping(78), ping(79)]));
  await good.until(() => good.frames.length === 3);
  assert.equal(good.closed, false);
  const byId = new Map(good.frames.map((f) => [f.id, f]));
  assert.equal(requireU32(byId.get(77)!, Tag.STATUS), 0);
  assert.equal(requireU32(byId.get(77)!, Tag.KEY_TYPE), 2);
  assert.ok(byId.has(78) && byId.has(79));
  good.socket.end();
});

test('a bad URI is an ordinary BAD_URI answer: the connection stays open', async () => {
  const raw = await Raw.open(agent.socket);
  raw.send(encodeFrame(Op.DESCRIBE, 5, [stringField(Tag.URI, 'managedhsm:x:')]));
  raw.send(ping(6));
  await raw.until(() => raw.frames.length === 2);
  const answer = raw.frames.find((f) => f.id === 5)!;
  assert.equal(answer.op, Op.DESCRIBE | 0x80);
  assert.equal(requireU32(answer, Tag.STATUS), 2);
  assert.match(getString(answer, Tag.MESSAGE)!, /Accepted forms: managedhsm:<hsm>:<key>/);
  assert.equal(raw.closed, false);
  raw.socket.end();
});

test('a client that hangs up in the middle of a frame does no harm; the agent counts protocol errors', async () => {
  const raw = await Raw.open(agent.socket);
  raw.send(encodeFrame(Op.PING, 1, []).subarray(0, 7));
  raw.socket.end();
  await raw.until(() => raw.closed);
  const client = agent.client();
  await client.ping();
  assert.ok(agent.metricsUrl, 'the agent printed its metrics URL');
  const text = await (await fetch(agent.metricsUrl)).text();
  const count = (reason: string): number =>
    Number(
      new RegExp(`^akv_agent_protocol_errors_total\\{reason="${reason}"\\} (\\d+)$`, 'm').exec(
        text,
      )?.[1] ?? 0,
    );
  assert.ok(count('magic') >= 2);
  assert.ok(count('unknown-op') >= 2);
  assert.ok(count('missing-field') >= 2);
  assert.equal(count('short-header'), 1);
});

test('300 connections of random and mutated frames leave the agent serving', async () => {
  let seed = 12345;
  const rand = (n: number): number => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
  const seeds = [
    ping(1),
    encodeFrame(Op.DESCRIBE, 2, [stringField(Tag.URI, `managedhsm:${HSM}:k`)]),
    encodeFrame(Op.SIGN, 3, [
      stringField(Tag.URI, `managedhsm:${HSM}:k`),
      stringField(Tag.ALG, 'ES256'),
      { tag: Tag.INPUT, value: Buffer.alloc(32, 9) },
    ]),
    encodeFrame(Op.LIST, 4, [stringField(Tag.VAULT_NAME, HSM)]),
  ];
  const mutate = (): Buffer => {
    const b = Buffer.from(seeds[rand(seeds.length)]!);
    switch (rand(4)) {
      case 0:
        for (let k = 0; k < 1 + rand(3); k++) b[rand(b.length)] = rand(256);
        return b;
      case 1:
        return b.subarray(0, rand(b.length));
      case 2:
        return Buffer.concat([b, Buffer.from(Array.from({ length: rand(20) }, () => rand(256)))]);
      default:
        return Buffer.from(Array.from({ length: rand(40) }, () => rand(256)));
    }
  };
  for (let batch = 0; batch < 15; batch++) {
    await Promise.all(
      Array.from({ length: 20 }, async () => {
        const raw = await Raw.open(agent.socket);
        raw.send(mutate());
        raw.socket.end();
        await raw.until(() => raw.closed);
        // Whatever came back is well-formed frames (the Raw decoder would have thrown otherwise).
        for (const f of raw.frames) assert.ok(f.op === Op.PROTOCOL_ERROR || f.op & 0x80);
      }),
    );
  }
  await agent.client().ping();
  const sig = await agent.client().sign(`managedhsm:${HSM}:k`, 'ES256', Buffer.alloc(32, 1));
  assert.equal(sig.output.length, 64);
});
