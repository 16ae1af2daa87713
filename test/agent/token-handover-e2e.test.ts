/**
 * The token handover end to end (issue 20, "small faults"): a hostile local client that opens
 * 2,000 connections, each with a different AZURE_CLI_ACCESS_TOKEN in its HELLO, made the agent
 * rebuild its HSM clients 2,000 times (RSS 69 → 380 MB). Against the real agent process: the
 * swaps are counted from its log (at most one per SWAP_INTERVAL_MS of the flood), its RSS stays
 * bounded, and it still signs afterwards.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { after, before, test } from 'node:test';
import { SWAP_INTERVAL_MS } from '../../src/agent/token-handover.js';
import { Op, PROTOCOL_VERSION, Tag } from '../../src/protocol/constants.js';
import { encodeFrame, stringField, u32Field } from '../../src/protocol/frame.js';
import { startAgent, type RunningAgent } from '../helpers/agent.js';
import { startEmulator, type RunningEmulator } from '../helpers/emulator.js';
import { Raw } from '../helpers/raw-client.js';

const HSM = 'swaphsm';
const KEY = 'swap-ec';
const TOKENS = 2000;
const PARALLEL = 16;
/** The old agent grew by ~310 MB for 2,000 swaps; one swap and 2,000 connections cost a few MB. */
const MAX_RSS_GROWTH_MB = 60;

let emulator: RunningEmulator;
let agent: RunningAgent;

before(async () => {
  // An emulator without --token takes any bearer token, so every handed-over token works.
  emulator = await startEmulator();
  await emulator.keyClient().createKey(KEY, 'EC-HSM', { curve: 'P-256' });
  // Only an autostarted agent with a credential chain takes a client's token (agent-process.ts).
  agent = await startAgent({
    emulator,
    hsmName: HSM,
    extraConfig: { credential: { type: 'default' } },
    env: { AZURE_CLI_ACCESS_TOKEN: 'opaque-token-at-start' },
    args: ['--autostarted'],
  });
});

after(async () => {
  await agent?.stop();
  await emulator?.stop();
});

function rssMb(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  assert.ok(m, `no VmRSS for pid ${pid}`);
  return Number(m[1]) / 1024;
}

/** One connection: HELLO with `token`, wait for the answer, close. */
async function helloWithToken(socket: string, token: string, id: number): Promise<void> {
  const raw = await Raw.open(socket);
  try {
    raw.send(
      encodeFrame(Op.HELLO, id, [
        u32Field(Tag.PROTO_VERSION, PROTOCOL_VERSION),
        u32Field(Tag.CLIENT_PID, process.pid),
        stringField(Tag.ACCESS_TOKEN, token),
      ]),
    );
    await raw.until(() => raw.frames.length > 0 || raw.closed);
    assert.equal(raw.frames.length, 1, 'the agent answered HELLO');
  } finally {
    raw.socket.destroy();
  }
}

test('2,000 connections handing over distinct tokens: bounded swaps and memory, still signing', async () => {
  const digest = createHash('sha256').update('before the flood').digest();
  await agent.client().sign(`managedhsm:${HSM}:${KEY}`, 'ES256', digest);
  const rssBefore = rssMb(agent.pid);

  const started = Date.now();
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < TOKENS) {
      const i = next++;
      // Opaque (not a JWT): the case that skipped the expiry comparison and always swapped.
      await helloWithToken(agent.socket, `opaque-token-${i}-${started}`, i + 1);
    }
  };
  await Promise.all(Array.from({ length: PARALLEL }, worker));
  const elapsedMs = Date.now() - started;

  const sig = await agent.client().sign(`managedhsm:${HSM}:${KEY}`, 'ES256', digest);
  assert.equal(sig.output.length, 64, 'the agent still signs after the flood');

  const swaps = (await agent.logLines()).filter(
    (l) => l.msg === 'using the AZURE_CLI_ACCESS_TOKEN a client handed over',
  ).length;
  const allowed = 1 + Math.ceil(elapsedMs / SWAP_INTERVAL_MS);
  assert.ok(swaps >= 1, 'the first handed-over token was used');
  assert.ok(
    swaps <= allowed,
    `${swaps} swaps for ${TOKENS} handed-over tokens in ${elapsedMs} ms (at most ${allowed})`,
  );
  const growth = rssMb(agent.pid) - rssBefore;
  assert.ok(
    growth < MAX_RSS_GROWTH_MB,
    `agent RSS grew ${growth.toFixed(1)} MB over ${TOKENS} handed-over tokens (limit ${MAX_RSS_GROWTH_MB} MB)`,
  );
});
