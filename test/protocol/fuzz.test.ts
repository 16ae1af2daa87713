import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Worker } from 'node:worker_threads';
import type { FuzzResult } from './fuzz-worker.js';
import { DOCUMENTED_FRAME_REASONS } from './frame-reasons.js';

const iterations = Number(process.env.AKV_FUZZ_ITERATIONS ?? 100_000);
const seed = Number(process.env.AKV_FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 32));

test(`decoder fuzz: ${iterations} random and mutated frames (seed ${seed}, AKV_FUZZ_SEED to replay)`, async () => {
  assert.ok(
    Number.isInteger(iterations) && iterations > 0,
    'AKV_FUZZ_ITERATIONS must be a positive integer',
  );
  const worker = new Worker(new URL('./fuzz-worker.js', import.meta.url), {
    workerData: { iterations, seed },
  });
  // A liveness guard, not a timing assertion: a decoder stuck in a loop never answers at all.
  const hangLimitMs = Math.max(300_000, iterations * 5);
  let timer: NodeJS.Timeout | undefined;
  const result = await Promise.race([
    new Promise<FuzzResult>((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
    }),
    new Promise<never>((_, reject) => {
      timer = setTimeout(
        () =>
          reject(
            new Error(`the fuzz worker did not finish within ${hangLimitMs} ms: the decoder hangs`),
          ),
        hangLimitMs,
      );
    }),
  ]).finally(() => {
    clearTimeout(timer);
    void worker.terminate();
  });
  assert.equal(result.failure, undefined, `seed ${seed}: ${result.failure}`);
  assert.equal(result.iterations, iterations);
  // The mutations must reach both outcomes and every framing reason, or the fuzzer tests little.
  assert.ok(result.decoded > 0, 'no input decoded');
  if (iterations >= 10_000) {
    for (const reason of DOCUMENTED_FRAME_REASONS) {
      assert.ok(
        (result.rejected[reason] ?? 0) > 0,
        `no input was rejected as ${reason}: ${JSON.stringify(result.rejected)}`,
      );
    }
  }
});
