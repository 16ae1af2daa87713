/**
 * Issue 13: the soak. A fresh agent signs `soakSignatures` (200,000; 20,000 with --quick) EC P-256
 * signatures through akv_provider in ten rounds, 64 client threads each. After every round, once
 * the agent has been quiet for a second, its resident memory and open file descriptors are read
 * from /proc. A leak shows as a steady climb across the rounds; the baseline is the end of the
 * second round (the first two include the JIT's and the connection pools' warm-up). The emulator
 * counts the HSM requests,
 * so a round that cost more than one request per signature would show.
 */
import { openFds, rssKiB, sleep } from '../lib/proc.js';
import { runSignBench } from '../lib/drivers.js';
import { Agent } from '../lib/services.js';
import { formatRate, type BenchContext, type ScenarioResult } from '../lib/result.js';

const ROUNDS = 10;

interface Round {
  /** Signatures made so far (the emulator's count). */
  signatures: number;
  rssKiB: number;
  fds: number;
  sockets: number;
  opsPerSecond: number;
}

const mib = (kib: number): string => `${(kib / 1024).toFixed(1)} MiB`;

export async function soak(ctx: BenchContext): Promise<ScenarioResult> {
  const key = ctx.keys.ec256;
  const threads = ctx.profile.capacityThreads;
  const perThread = Math.ceil(ctx.profile.soakSignatures / ROUNDS / threads);
  await ctx.emulator.setLatency(0);
  const agent = await Agent.start(ctx.dir, ctx.emulator, { label: 'soak', hsmName: ctx.hsmName });
  const rounds: Round[] = [];
  let startedKiB = 0;
  let hsm = { sign: 0, get: 0 };
  try {
    startedKiB = rssKiB(agent.pid);
    await ctx.emulator.resetStats();
    for (let i = 0; i < ROUNDS; i++) {
      ctx.log(`soak: round ${i + 1}/${ROUNDS}, ${perThread * threads} signatures`);
      const r = await runSignBench({
        key: key.uri,
        providers: ['akv_provider'],
        threads,
        ops: perThread,
        warmup: 1,
        env: agent.providerEnv(),
      });
      await sleep(1000);
      const fds = openFds(agent.pid);
      const stats = await ctx.emulator.stats();
      rounds.push({
        signatures: stats.requests.sign ?? 0,
        rssKiB: rssKiB(agent.pid),
        fds: fds.total,
        sockets: fds.sockets,
        opsPerSecond: r.ops / (r.elapsed_us / 1e6),
      });
    }
    const stats = await ctx.emulator.stats();
    hsm = { sign: stats.requests.sign ?? 0, get: stats.requests.get ?? 0 };
  } finally {
    await agent.stop();
  }

  const warm = rounds[1]!;
  const last = rounds[rounds.length - 1]!;
  const growthKiB = last.rssKiB - warm.rssKiB;
  const peak = rounds.reduce((a, r) => Math.max(a, r.rssKiB), 0);
  const per100k = (growthKiB / Math.max(1, last.signatures - warm.signatures)) * 100_000;
  const range = (values: number[]): string => {
    const lo = Math.min(...values);
    const hi = Math.max(...values);
    return lo === hi ? `${lo}` : `${lo}–${hi}`;
  };
  return {
    id: 'soak',
    title: '9. Soak',
    method: `A fresh agent (same config as the others) signs ${(perThread * threads * ROUNDS).toLocaleString('en-US')} EC P-256 signatures through akv_provider (\`akv-sign-bench\`, ${threads} threads, a new client process per round) in ${ROUNDS} rounds; emulator without added latency. After each round and one quiet second, the agent's RSS (VmRSS) and open file descriptors are read from /proc; the emulator's counters give the HSM requests. Growth is the last round against the second (the first two include the warm-up of the JIT and the connection pools).`,
    findings: [
      `Over ${last.signatures.toLocaleString('en-US')} signatures the agent went from ${mib(warm.rssKiB)} after the warm-up (round 2, ${warm.signatures.toLocaleString('en-US')} signatures) to ${mib(last.rssKiB)} after the last round: ${growthKiB >= 0 ? '+' : ''}${mib(growthKiB)}, ${per100k >= 0 ? '+' : ''}${mib(per100k)} per 100,000 signatures (peak ${mib(peak)}; ${mib(startedKiB)} at start, ${mib(rounds[0]!.rssKiB)} after round 1).`,
      `Its open file descriptors stayed at ${range(rounds.map((r) => r.fds))} (sockets: ${range(rounds.map((r) => r.sockets))}, most of them kept-alive HSM connections), so the client processes that came and went left nothing behind.`,
      `The HSM saw ${hsm.sign.toLocaleString('en-US')} sign requests for ${last.signatures.toLocaleString('en-US')} signatures and ${hsm.get} GET(s) in all.`,
    ],
    tables: [
      {
        title: 'Agent after each round',
        columns: [
          'round',
          'signatures so far',
          'RSS',
          'open fds',
          'of them sockets',
          'signatures/s',
        ],
        rows: rounds.map((r, i) => [
          i + 1,
          r.signatures.toLocaleString('en-US'),
          mib(r.rssKiB),
          r.fds,
          r.sockets,
          formatRate(r.opsPerSecond),
        ]),
      },
    ],
    charts: [
      {
        file: 'soak.svg',
        title: 'Agent RSS after each round of the soak',
        unit: 'MiB',
        groups: rounds.map((r, i) => ({
          label: `round ${i + 1}`,
          bars: [{ label: 'RSS', value: Math.round(r.rssKiB / 102.4) / 10 }],
        })),
      },
    ],
    targets: [],
    data: {
      threads,
      perThread,
      startedKiB,
      rounds,
      hsmRequests: hsm,
      growthKiB,
      per100kKiB: per100k,
    },
  };
}
