/**
 * The agent under hostile and heavy load (issue 13): a client that never reads its answers, more
 * connections than maxClients, idle connections, a hanging HSM with thousands of requests, a
 * connection that sends far more than its share at once, and fairness between connections. Each
 * bound is checked from outside: the agent's RSS and sockets from /proc, the HSM requests from
 * the emulator's own counters.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createConnection, type Socket } from 'node:net';
import { createHash } from 'node:crypto';
import {
  FrameDecoder,
  MAX_RESPONSE_BODY,
  Op,
  Status,
  Tag,
  bytesField,
  encodeFrame,
  getString,
  requireU32,
  stringField,
  type Frame,
} from '../../src/protocol/index.js';
import { openFds, rssKiB, RssSampler, sleep } from '../../bench/lib/proc.js';
import { settleChallenge, startEmulator, type RunningEmulator } from '../helpers/emulator.js';
import { startAgent, type RunningAgent } from '../helpers/agent.js';
import { Raw } from '../helpers/raw-client.js';

const HSM = 'limitshsm';
const EC = `managedhsm:${HSM}:ec`;
const RSA = `managedhsm:${HSM}:rsa`;
const DIGEST = createHash('sha256').update('limits').digest();

let emulator: RunningEmulator;

before(async () => {
  emulator = await startEmulator();
  const keys = emulator.keyClient();
  await settleChallenge(keys);
  await keys.createKey('ec', 'EC-HSM', { curve: 'P-256' });
  await keys.createKey('rsa', 'RSA-HSM', { keySize: 2048 });
});

after(async () => {
  await emulator?.stop();
});

const signFrame = (id: number): Buffer =>
  encodeFrame(Op.SIGN, id, [
    stringField(Tag.URI, EC),
    stringField(Tag.ALG, 'ES256'),
    bytesField(Tag.INPUT, DIGEST),
  ]);
const pingFrame = (id: number): Buffer => encodeFrame(Op.PING, id, []);
const describeFrame = (id: number): Buffer =>
  encodeFrame(Op.DESCRIBE, id, [stringField(Tag.URI, RSA)]);

/** An agent for this emulator with the given settings; warmed up with one signature. */
async function agentWith(extraConfig: Record<string, unknown>): Promise<RunningAgent> {
  const agent = await startAgent({
    emulator,
    hsmName: HSM,
    extraConfig: { metricsListen: '127.0.0.1:0', ...extraConfig },
  });
  await agent.client().sign(EC, 'ES256', DIGEST);
  return agent;
}

/**
 * An agent with these settings for the enclosing describe(): started before its tests, stopped
 * after them (HSM faults and latency reset). Returns a getter.
 */
function agentFor(extraConfig: Record<string, unknown>): () => RunningAgent {
  let agent: RunningAgent | undefined;
  before(async () => {
    agent = await agentWith(extraConfig);
  });
  after(async () => {
    await emulator.clearFaults();
    await emulator.setLatency(0);
    await agent?.stop();
  });
  return () => agent!;
}

async function metric(agent: RunningAgent, line: string): Promise<number> {
  const text = await (await fetch(agent.metricsUrl!)).text();
  const found = text.split('\n').find((l) => l.startsWith(`${line} `));
  return found ? Number(found.slice(line.length + 1)) : 0;
}

function connect(path: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = createConnection({ path }, () => resolve(s));
    s.once('error', reject);
  });
}

/**
 * Writes frames as fast as the agent takes them, never reading an answer, until `maxBytes` are
 * written or the agent stops taking them (no 'drain' for 1.5 s). Returns how many frames were
 * written and how many bytes the agent read.
 */
async function floodWithoutReading(
  socket: Socket,
  frame: (id: number) => Buffer,
  maxBytes: number,
): Promise<{ frames: number; accepted: number }> {
  let frames = 0;
  let bytes = 0;
  const started = Date.now();
  while (bytes < maxBytes && Date.now() - started < 15_000) {
    const batch = Buffer.concat(Array.from({ length: 500 }, () => frame(++frames)));
    bytes += batch.length;
    if (!socket.write(batch)) {
      const drained = await Promise.race([
        once(socket, 'drain').then(() => true),
        sleep(1500).then(() => false),
      ]);
      if (!drained) break;
    }
  }
  return { frames, accepted: bytes - socket.writableLength };
}

/** Reads the answers on `socket` until `count` have arrived; returns them. */
async function readAnswers(socket: Socket, count: number, timeoutMs = 30_000): Promise<Frame[]> {
  const decoder = new FrameDecoder(MAX_RESPONSE_BODY);
  const frames: Frame[] = [];
  let wake: (() => void) | undefined;
  socket.on('data', (c: Buffer) => {
    frames.push(...decoder.push(c));
    wake?.();
  });
  const deadline = Date.now() + timeoutMs;
  while (frames.length < count && Date.now() < deadline) {
    await Promise.race([new Promise<void>((r) => (wake = r)), sleep(200)]);
  }
  return frames;
}

describe('a client that never reads its answers', () => {
  const agent = agentFor({});
  before(async () => {
    await agent().client().describe(RSA); // cached: the flood below never reaches the HSM
  });

  for (const [what, frame] of [
    ['PING frames', pingFrame],
    ['DESCRIBEs of an RSA key', describeFrame],
  ] as const) {
    it(`cannot grow the agent's memory with ${what} (the agent stops reading it)`, async () => {
      const socket = await connect(agent().socket);
      const rssBefore = rssKiB(agent().pid);
      const sampler = new RssSampler(agent().pid, 50);
      const { frames, accepted } = await floodWithoutReading(socket, frame, 24 * 1024 * 1024);
      const { peakKiB } = sampler.stop();
      const growthMiB = (peakKiB - rssBefore) / 1024;
      assert.ok(
        accepted < 8 * 1024 * 1024,
        `the agent read ${(accepted / 1048576).toFixed(1)} MiB from a client that reads nothing`,
      );
      assert.ok(growthMiB < 64, `agent RSS grew by ${growthMiB.toFixed(0)} MiB`);
      // Nothing was lost: once the client reads, every request is answered.
      const answers = await readAnswers(socket, frames);
      assert.equal(answers.length, frames);
      assert.ok(answers.every((f) => requireU32(f, Tag.STATUS) === Status.OK));
      socket.destroy();
      assert.equal((await agent().client().sign(EC, 'ES256', DIGEST)).output.length, 64);
    });
  }
});

describe('request size', () => {
  const agent = agentFor({});
  it('an input longer than any key operation takes is refused before it reaches the HSM', async () => {
    await emulator.resetStats();
    await assert.rejects(
      agent().client().sign(EC, 'ES256', Buffer.alloc(5000, 1)),
      (err: Error) => {
        assert.match(err.message, /5000 bytes, more than any HSM key operation takes/);
        return true;
      },
    );
    assert.equal((await emulator.stats()).requests.sign ?? 0, 0);
  });
});

describe('maxClients', () => {
  const agent = agentFor({ maxClients: 16, deadlineMs: 3000 });

  it('closes the longest-idle connection to admit a new client, logged and counted', async () => {
    const idle: Raw[] = [];
    for (let i = 0; i < 40; i++) {
      idle.push(await Raw.open(agent().socket));
      await sleep(2); // distinct idle times
    }
    const legit = agent().client();
    const { output } = await legit.sign(EC, 'ES256', DIGEST);
    assert.equal(output.length, 64, 'a legitimate client still signs');
    await sleep(200);
    const closed = idle.map((r) => r.closed);
    assert.deepEqual(
      closed,
      idle.map((_, i) => i < 25),
      'the 25 oldest idle connections were closed, the 15 newest kept (with the signer: 16)',
    );
    // 26 closed: those 25 and, before them, the idle client that warmed the agent up.
    const { sockets } = openFds(agent().pid);
    assert.ok(sockets <= 16 + 8, `the agent holds ${sockets} sockets`);
    assert.equal(
      await metric(agent(), 'akv_agent_connections_closed_total{reason="max-clients"}'),
      26,
    );
    // Logged at most once a second, each line with the number of closes it stands for.
    await sleep(1200);
    const logged = (await agent().logLines()).filter(
      (l) => typeof l.msg === 'string' && l.msg.includes('closed the longest-idle one'),
    );
    assert.equal(
      logged.reduce((n, l) => n + Number(l.count), 0),
      26,
    );
    assert.ok(logged.length <= 4, `${logged.length} lines for 26 closes`);
    for (const r of idle) r.socket.destroy();
  });

  it('turns a newcomer away when every connection is busy, and says so in the log', async () => {
    await emulator.resetStats();
    await emulator.setFaults({ mode: 'hang', operations: ['sign'] });
    const busy: Raw[] = [];
    for (let i = 0; i < 16; i++) {
      const r = await Raw.open(agent().socket);
      r.send(signFrame(1));
      busy.push(r);
    }
    while (((await emulator.stats()).requests.sign ?? 0) < 16) await sleep(20);
    // Clients that keep coming: 300 turned away, a few log lines that count them.
    const newcomers = await Promise.all(
      Array.from({ length: 300 }, () => Raw.open(agent().socket)),
    );
    for (const n of newcomers) await n.until(() => n.closed);
    assert.equal(
      await metric(agent(), 'akv_agent_connections_closed_total{reason="max-clients-busy"}'),
      300,
    );
    await sleep(1200); // the last line comes at most a second after the last refusal
    const refused = (await agent().logLines()).filter(
      (l) => typeof l.msg === 'string' && l.msg.includes('all are busy'),
    );
    assert.equal(
      refused.reduce((n, l) => n + Number(l.count), 0),
      300,
      'the lines count every refusal',
    );
    assert.ok(refused.length <= 5, `${refused.length} lines for 300 refusals`);
    await emulator.clearFaults();
    for (const r of busy) await r.until(() => r.frames.length === 1); // TIMEOUT at the deadline
    assert.ok(busy.every((r) => requireU32(r.frames[0]!, Tag.STATUS) === Status.TIMEOUT));
    for (const r of busy) r.socket.destroy();
  });
});

describe('clientIdleTimeoutMs', () => {
  const agent = agentFor({ clientIdleTimeoutMs: 1000, deadlineMs: 4000 });

  it('closes a connection idle for that long; a client reconnects transparently', async () => {
    const raw = await Raw.open(agent().socket);
    const opened = Date.now();
    await raw.until(() => raw.closed);
    const after = Date.now() - opened;
    assert.ok(after >= 900 && after < 5000, `closed after ${after} ms`);
    const client = agent().client();
    await client.sign(EC, 'ES256', DIGEST);
    await sleep(1600); // its connection is closed meanwhile
    assert.equal((await client.sign(EC, 'ES256', DIGEST)).output.length, 64);
    assert.ok(
      (await metric(agent(), 'akv_agent_connections_closed_total{reason="idle-timeout"}')) >= 2,
    );
  });

  it('keeps a connection whose request is still at the HSM', async () => {
    await emulator.setFaults({ mode: 'hang', count: 1, operations: ['sign'] });
    const raw = await Raw.open(agent().socket);
    raw.send(signFrame(7));
    await sleep(2500);
    assert.equal(raw.closed, false, 'closed while its request was in flight');
    await raw.until(() => raw.frames.length === 1 || raw.closed);
    assert.equal(requireU32(raw.frames[0]!, Tag.STATUS), Status.TIMEOUT);
    await raw.until(() => raw.closed); // idle once answered
  });
});

describe('maxInFlight', () => {
  const agent = agentFor({ maxInFlight: 40, deadlineMs: 3000 });

  it('a hanging HSM and 7,500 requests: at most maxInFlight reach it, the queue stays bounded', async () => {
    await emulator.resetStats();
    await emulator.setFaults({ mode: 'hang', operations: ['sign'] });
    const rssBefore = rssKiB(agent().pid);
    const clients = await Promise.all(Array.from({ length: 10 }, () => Raw.open(agent().socket)));
    const started = Date.now();
    for (const c of clients) {
      c.send(Buffer.concat(Array.from({ length: 750 }, (_, i) => signFrame(i + 1))));
    }
    let maxSockets = 0;
    let maxQueued = 0;
    let peakKiB = 0;
    while (Date.now() - started < 2000) {
      maxSockets = Math.max(maxSockets, openFds(agent().pid).sockets);
      maxQueued = Math.max(maxQueued, await metric(agent(), 'akv_agent_hsm_queued'));
      peakKiB = Math.max(peakKiB, rssKiB(agent().pid));
      await sleep(50);
    }
    assert.equal((await emulator.stats()).requests.sign, 40, 'sign requests at the HSM');
    // 40 HSM connections, 10 clients, the listening socket, the metrics listener: nothing like 7,500.
    assert.ok(maxSockets <= 40 + 10 + 8, `the agent held up to ${maxSockets} sockets`);
    // 8 per slot, plus the share each connection may always have.
    assert.ok(maxQueued <= 40 * 8 + 10 * 8, `${maxQueued} requests queued for a slot`);
    const growthMiB = (peakKiB - rssBefore) / 1024;
    assert.ok(growthMiB < 100, `agent RSS grew by ${growthMiB.toFixed(0)} MiB`);
    assert.ok(maxSockets > 0 && maxQueued > 0, 'the bounds were sampled under load');

    // The HSM recovers: the 40 at the HSM end at their deadline, so do the requests that were
    // queued as long (the wait counted against their deadline); the rest are signed. How many
    // more reach their deadline in the queue afterwards depends on how fast this machine signs
    // 7,000 (a busy one: hundreds), so that is not asserted: every request gets exactly one
    // answer, signed or TIMEOUT, and never more than 40 were at the HSM (above).
    await emulator.clearFaults();
    for (const c of clients) await c.until(() => c.frames.length === 750, 120_000);
    const answers = clients.flatMap((c) => c.frames);
    const statuses = answers.map((f) => requireU32(f, Tag.STATUS));
    const timedOut = statuses.filter((s) => s === Status.TIMEOUT).length;
    const signed = statuses.filter((s) => s === Status.OK).length;
    const waited = answers.filter((f) => /maxInFlight/.test(getString(f, Tag.MESSAGE) ?? ''));
    assert.ok(waited.length > 0, 'queued requests reached their deadline in the queue');
    assert.ok(timedOut >= 40, `the 40 at the hung HSM timed out (${timedOut} did in all)`);
    assert.equal(signed + timedOut, 7500, 'every answer is a signature or TIMEOUT');
    assert.ok(signed > 0, 'the recovered HSM signs the rest');
    for (const c of clients)
      assert.deepEqual(
        c.frames.map((f) => f.id).sort((a, b) => a - b),
        Array.from({ length: 750 }, (_, i) => i + 1),
        'one answer per request id',
      );
    for (const c of clients) c.socket.destroy();
  });

  it('serves connections fairly: one request is not stuck behind another client backlog', async () => {
    await emulator.setLatency(50);
    const heavy = await Raw.open(agent().socket);
    const light = await Raw.open(agent().socket);
    heavy.send(Buffer.concat(Array.from({ length: 800 }, (_, i) => signFrame(i + 1))));
    await heavy.until(() => heavy.frames.length >= 1);
    light.send(signFrame(1));
    await light.until(() => light.frames.length === 1);
    const heavyDone = heavy.frames.length;
    await emulator.setLatency(0);
    assert.equal(requireU32(light.frames[0]!, Tag.STATUS), Status.OK);
    // 40 slots, 50 ms per round: the backlog takes 20 rounds; first come first served would
    // answer the light client after all 800.
    assert.ok(heavyDone < 200, `the light request waited for ${heavyDone} of the heavy ones`);
    await heavy.until(() => heavy.frames.length === 800);
    heavy.socket.destroy();
    light.socket.destroy();
  });
});

describe('maxInFlightPerClient', () => {
  const agent = agentFor({ maxInFlightPerClient: 100, maxInFlight: 1000, deadlineMs: 3000 });

  it('applies before dispatch: of 300 requests written at once, 100 start', async () => {
    await emulator.resetStats();
    await emulator.setFaults({ mode: 'hang', operations: ['sign'] });
    const raw = await Raw.open(agent().socket);
    raw.send(Buffer.concat(Array.from({ length: 300 }, (_, i) => signFrame(i + 1))));
    while (((await emulator.stats()).requests.sign ?? 0) < 100) await sleep(20);
    await sleep(500);
    assert.equal((await emulator.stats()).requests.sign, 100);
    await emulator.clearFaults();
    // The first 100 end at the deadline; the other 200 start then and are signed.
    await raw.until(() => raw.frames.length === 300 || raw.closed);
    const statuses = raw.frames.map((f) => requireU32(f, Tag.STATUS));
    assert.equal(statuses.filter((s) => s === Status.TIMEOUT).length, 100);
    assert.equal(statuses.filter((s) => s === Status.OK).length, 200);
    raw.socket.destroy();
  });
});
