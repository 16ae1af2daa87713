/**
 * Issue 7, item 4: one-shot commands. `openssl dgst -sign` as a person types it, one process per
 * signature, with a warm agent, against the same command with the local PEM key. Then, with the
 * emulator at 20 ms per request, how many HSM requests one command causes (the emulator counts
 * them): the design fetches nothing per process, so it should be exactly one (the sign).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { measureCommand, type CommandCost } from '../lib/drivers.js';
import { median } from '../lib/stats.js';
import { keyLabel, type BenchKey } from '../lib/services.js';
import {
  formatRatio,
  formatUs,
  type BenchContext,
  type ScenarioResult,
  type Target,
} from '../lib/result.js';

const ROUND_TRIP_LATENCY_MS = 20;

/** `openssl dgst -sign` with akv_provider loaded; `keyArg` is an HSM URI or a PEM file. */
export function providerSignArgs(keyArg: string, data: string, out: string): string[] {
  return [
    'dgst',
    '-sha256',
    '-provider',
    'akv_provider',
    '-provider',
    'default',
    '-sign',
    keyArg,
    '-out',
    out,
    data,
  ];
}

export function hsmSignArgs(key: BenchKey, data: string, out: string): string[] {
  return providerSignArgs(key.uri, data, out);
}

export function localSignArgs(key: BenchKey, data: string, out: string): string[] {
  return ['dgst', '-sha256', '-sign', key.pemFile, '-out', out, data];
}

export function dataFile(dir: string): string {
  const file = join(dir, 'message.txt');
  writeFileSync(file, 'akv bench: a message to sign\n');
  return file;
}

export async function oneShot(ctx: BenchContext): Promise<ScenarioResult> {
  const { agent, emulator, profile } = ctx;
  const env = agent.providerEnv();
  const data = dataFile(ctx.dir);
  const sig = join(ctx.dir, 'message.sig');
  const keys = [ctx.keys.ec256, ctx.keys.rsa3072];
  await emulator.setLatency(0);

  const wall: Record<string, { hsm: CommandCost[]; local: CommandCost[] }> = {};
  for (const key of keys) {
    // Warm: the agent has described the key (its key cache), as it has on a running system.
    await measureCommand('openssl', hsmSignArgs(key, data, sig), env);
    const w = { hsm: [] as CommandCost[], local: [] as CommandCost[] };
    ctx.log(`one-shot: ${keyLabel(key.spec)}, ${profile.oneShotRuns} runs each`);
    for (let i = 0; i < profile.oneShotRuns; i++) {
      w.hsm.push(await measureCommand('openssl', hsmSignArgs(key, data, sig), env));
      w.local.push(await measureCommand('openssl', localSignArgs(key, data, sig), env));
    }
    wall[keyLabel(key.spec)] = w;
  }

  // Round trips per command, with latency so that each one is visible in the wall time too.
  await emulator.setLatency(ROUND_TRIP_LATENCY_MS);
  const trips: Array<{
    key: string;
    total: number;
    requests: Record<string, number>;
    wallUs: number;
  }> = [];
  try {
    for (const key of keys) {
      const runs = Math.max(3, Math.ceil(profile.oneShotRuns / 2));
      for (let i = 0; i < runs; i++) {
        await emulator.resetStats();
        const cost = await measureCommand('openssl', hsmSignArgs(key, data, sig), env);
        const stats = await emulator.stats();
        trips.push({
          key: keyLabel(key.spec),
          total: stats.total,
          requests: stats.requests,
          wallUs: cost.wall_us,
        });
      }
    }
  } finally {
    await emulator.setLatency(0);
  }

  const targets: Target[] = [];
  const rows: Array<Array<string | number>> = [];
  const findings: string[] = [];
  const groups = [];
  for (const [label, w] of Object.entries(wall)) {
    const hsm = median(w.hsm.map((c) => c.wall_us));
    const local = median(w.local.map((c) => c.wall_us));
    const cpu = (cs: CommandCost[]): number => median(cs.map((c) => c.user_us + c.sys_us));
    rows.push([
      label,
      formatUs(hsm),
      formatUs(local),
      formatRatio(hsm / local),
      formatUs(hsm - local),
      formatUs(cpu(w.hsm)),
      formatUs(cpu(w.local)),
    ]);
    findings.push(
      `${label}: one \`openssl dgst -sign\` takes ${formatUs(hsm)} with the HSM key and ${formatUs(local)} with the local PEM (${formatRatio(hsm / local)}, +${formatUs(hsm - local)}).`,
    );
    groups.push({
      label,
      bars: [
        { label: 'HSM key (akv)', value: Math.round(hsm) },
        { label: 'local PEM key', value: Math.round(local) },
      ],
    });
  }
  const tripRows = keys.map((key) => {
    const mine = trips.filter((t) => t.key === keyLabel(key.spec));
    const totals = [...new Set(mine.map((t) => t.total))].sort();
    const ops = [
      ...new Set(mine.flatMap((t) => Object.entries(t.requests).map(([op, n]) => `${op}×${n}`))),
    ].join(', ');
    const exact = mine.every((t) => t.total === 1 && (t.requests.sign ?? 0) === 1);
    targets.push({
      name: `HSM requests per one-shot command, ${keyLabel(key.spec)}`,
      goal: 'exactly 1',
      value: totals.join(' / '),
      met: exact,
    });
    return [
      keyLabel(key.spec),
      mine.length,
      totals.join(' / '),
      ops,
      formatUs(median(mine.map((t) => t.wallUs))),
    ];
  });
  findings.push(
    `With ${ROUND_TRIP_LATENCY_MS} ms per HSM request, each command caused ${[...new Set(trips.map((t) => t.total))].join(' or ')} HSM request(s) (${[...new Set(trips.flatMap((t) => Object.keys(t.requests)))].join(', ')}).`,
  );

  return {
    id: 'one-shot',
    title: '4. One-shot commands',
    method: `\`openssl dgst -sha256 -provider akv_provider -provider default -sign managedhsm:…\` against \`openssl dgst -sha256 -sign key.pem\` (same key material), ${profile.oneShotRuns} runs each, alternating, after one warm-up command (the agent is running and has the key's description cached). Wall time, CPU and peak RSS of each process come from \`wait4\` (\`bench/driver/akv-rusage\`). Round trips: emulator latency ${ROUND_TRIP_LATENCY_MS} ms, request counters reset before each command and read after it.`,
    findings,
    tables: [
      {
        title: 'Wall time of one command (median)',
        columns: [
          'key',
          'HSM key',
          'local key',
          'ratio',
          'difference',
          'CPU, HSM key',
          'CPU, local key',
        ],
        rows,
      },
      {
        title: `HSM requests per command (emulator latency ${ROUND_TRIP_LATENCY_MS} ms)`,
        columns: ['key', 'commands', 'requests per command', 'operations', 'wall time (median)'],
        rows: tripRows,
      },
    ],
    charts: [
      {
        file: 'one-shot.svg',
        title: 'Wall time of one `openssl dgst -sign` process',
        unit: 'µs',
        groups,
      },
    ],
    targets,
    data: { wall, trips, roundTripLatencyMs: ROUND_TRIP_LATENCY_MS },
  };
}
