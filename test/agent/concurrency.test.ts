/**
 * Many clients, many requests: answers must match their requests, and requests to the HSM must
 * run side by side, never one at a time.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, createPublicKey, randomBytes, verify, type KeyObject } from 'node:crypto';
import { AgentClient } from '../../src/client/agent-client.js';
import { settleChallenge, startEmulator, type RunningEmulator } from '../helpers/emulator.js';
import { startAgent, type RunningAgent } from '../helpers/agent.js';

const HSM = 'conchsm';
const EC = `managedhsm:${HSM}:conc-ec`;
const RSA = `managedhsm:${HSM}:conc-rsa`;
const AES = `managedhsm:${HSM}:conc-aes`;

let emulator: RunningEmulator;
let agent: RunningAgent;
let hangAgent: RunningAgent;
let ecPub: KeyObject;
let rsaPub: KeyObject;

before(async () => {
  emulator = await startEmulator();
  const keys = emulator.keyClient();
  await settleChallenge(keys);
  await Promise.all([
    keys.createKey('conc-ec', 'EC-HSM', { curve: 'P-256' }),
    keys.createKey('conc-rsa', 'RSA-HSM', { keySize: 2048 }),
    keys.createKey('conc-aes', 'oct-HSM', { keySize: 256 }),
  ]);
  // A generous deadline for the load test (CI machines are slow and shared); a short one for the
  // agent whose requests are left hanging on purpose.
  agent = await startAgent({ emulator, hsmName: HSM, extraConfig: { deadlineMs: 60_000 } });
  hangAgent = await startAgent({ emulator, hsmName: HSM, extraConfig: { deadlineMs: 4000 } });
  const c = agent.client();
  const spki = async (uri: string): Promise<KeyObject> =>
    createPublicKey({ key: (await c.describe(uri)).publicKey!, format: 'der', type: 'spki' });
  ecPub = await spki(EC);
  rsaPub = await spki(RSA);
});

after(async () => {
  await agent?.stop();
  await hangAgent?.stop();
  await emulator?.stop();
});

test('100 concurrent requests from 10 connections all get their own right answer', async () => {
  const clients = await Promise.all(
    Array.from({ length: 10 }, () => AgentClient.connect(agent.socket)),
  );
  try {
    const jobs = clients.flatMap((client, ci) =>
      Array.from({ length: 10 }, async (_, ri) => {
        const data = Buffer.from(`message ${ci}/${ri} ${randomBytes(8).toString('hex')}`);
        const digest = createHash('sha256').update(data).digest();
        switch ((ci + ri) % 4) {
          case 0: {
            const { output } = await client.sign(EC, 'ES256', digest);
            assert.ok(
              verify('sha256', data, { key: ecPub, dsaEncoding: 'ieee-p1363' }, output),
              `EC ${ci}/${ri}`,
            );
            return 'sign-ec';
          }
          case 1: {
            const { output } = await client.sign(RSA, 'PS256', digest);
            assert.ok(
              verify('sha256', data, { key: rsaPub, padding: 6, saltLength: 32 }, output),
              `RSA ${ci}/${ri}`,
            );
            return 'sign-rsa';
          }
          case 2: {
            const wrapped = await client.wrap(AES, 'A256KW', digest);
            const { output } = await client.unwrap(AES, 'A256KW', wrapped.output);
            assert.deepEqual(output, digest, `AES ${ci}/${ri}`);
            return 'wrap';
          }
          default: {
            const info = await client.describe(EC);
            assert.equal(info.curve, 'P-256');
            return 'describe';
          }
        }
      }),
    );
    const results = await Promise.all(jobs);
    assert.equal(results.length, 100);
    assert.equal(results.filter((r) => r === 'sign-ec').length, 25);
  } finally {
    await Promise.all(clients.map((c) => c.close()));
  }
});

/**
 * Proof without clocks: the HSM holds every sign request without answering, so an agent that
 * sent them one at a time could never have more than one at the HSM before the first one timed
 * out. We see all of them arrive while none has been answered.
 */
async function arriveTogether(
  requests: (digest: Buffer) => Promise<unknown>,
  count: number,
  { awaitTimeouts = true } = {},
): Promise<void> {
  await emulator.resetStats();
  await emulator.setFaults({ mode: 'hang', count, operations: ['sign'] });
  let answered = 0;
  const pending = Array.from({ length: count }, (_, i) =>
    requests(createHash('sha256').update(`hang ${i}`).digest()).then(
      () => answered++,
      () => answered++,
    ),
  );
  let arrived = 0;
  const until = Date.now() + 50_000;
  while (arrived < count && answered === 0 && Date.now() < until) {
    arrived = (await emulator.stats()).requests.sign ?? 0;
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.equal(
    answered,
    0,
    `a request was answered before all ${count} reached the HSM (${arrived} had)`,
  );
  assert.equal(arrived, count);
  // They end with TIMEOUT at the agent's deadline, or are abandoned with their connections.
  if (awaitTimeouts) await Promise.all(pending);
  await emulator.clearFaults();
}

test('requests on one connection reach the HSM in parallel', async () => {
  const client = hangAgent.client();
  await client.sign(EC, 'ES256', Buffer.alloc(32, 1)); // warm: SDK challenge and key fetch done
  await arriveTogether((digest) => client.sign(EC, 'ES256', digest), 8);
});

test('requests from different connections reach the HSM in parallel', async () => {
  const clients = await Promise.all(
    Array.from({ length: 6 }, () => AgentClient.connect(hangAgent.socket)),
  );
  try {
    let next = 0;
    await arriveTogether(
      (digest) => clients[next++ % clients.length]!.sign(EC, 'ES256', digest),
      6,
    );
  } finally {
    await Promise.all(clients.map((c) => c.close()));
  }
});

/*
 * What a busy async TLS server asks of the agent: 1,000 signatures of one process in flight at
 * once. None may wait behind another, whether they share one connection (the agent's per-
 * connection cap must not bite below that) or each has its own (the provider's async path). The
 * held requests are abandoned with their connections (the agent is killed at the end).
 */
async function thousandArriveTogether(connections: number): Promise<void> {
  // Forwarding 1,000 held requests to the HSM may take seconds on a busy machine, so none may
  // reach its deadline before the last one is sent; maxInFlight as docs/agent.md says for an
  // async TLS server with 1,000 handshakes waiting. Its own agent, killed at the end: the held
  // requests stay at the HSM until their deadline and would fill another test's slots.
  const bulkAgent = await startAgent({
    emulator,
    hsmName: HSM,
    extraConfig: { deadlineMs: 60_000, maxInFlight: 1024 },
  });
  const clients: AgentClient[] = [];
  try {
    for (let i = 0; i < connections; i++) clients.push(await AgentClient.connect(bulkAgent.socket));
    await clients[0]!.sign(EC, 'ES256', Buffer.alloc(32, 5)); // warm: SDK challenge and key fetch done
    let next = 0;
    await arriveTogether(
      (digest) => clients[next++ % connections]!.sign(EC, 'ES256', digest),
      1000,
      {
        awaitTimeouts: false,
      },
    );
  } finally {
    await bulkAgent.kill();
    await Promise.all(clients.map((c) => c.close()));
  }
}

test('1,000 requests on one connection reach the HSM together (no head-of-line blocking)', async () => {
  await thousandArriveTogether(1);
});

test('1,000 connections of one process, one request each, reach the HSM together', async () => {
  await thousandArriveTogether(1000);
});

test('a hung HSM call ends with TIMEOUT at the deadline, and the agent keeps serving', async () => {
  const client = hangAgent.client();
  await emulator.setFaults({ mode: 'hang', count: 1, operations: ['sign'] });
  await assert.rejects(client.sign(EC, 'ES256', Buffer.alloc(32, 2)), { code: 'TIMEOUT' });
  await emulator.clearFaults();
  const { output } = await client.sign(EC, 'ES256', Buffer.alloc(32, 3));
  assert.equal(output.length, 64);
});

test('a client-side timeout fails that request only; its late answer is ignored', async () => {
  const client = new AgentClient(hangAgent.socket, { timeoutMs: 300 });
  await client.ping();
  await emulator.setFaults({ mode: 'hang', count: 1, operations: ['sign'] });
  await assert.rejects(client.sign(EC, 'ES256', Buffer.alloc(32, 4)), {
    code: 'TIMEOUT',
    message: /did not answer SIGN within 300 ms/,
  });
  await emulator.clearFaults();
  await client.ping();
  assert.equal(client.inFlight, 0);
  await client.close();
});
