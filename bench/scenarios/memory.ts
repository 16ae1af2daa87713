/**
 * Issue 7, item 6: memory. A fresh agent's RSS when idle (started, one key described and used),
 * its peak under the capacity load, and what akv_provider adds to an OpenSSL process: the peak
 * RSS (wait4) of `openssl dgst -sign` with a local key, the same with the provider loaded, and
 * with the HSM key.
 */
import { join } from 'node:path';
import { measureCommand } from '../lib/drivers.js';
import { RssSampler, rssKiB, sleep } from '../lib/proc.js';
import { runSignBench } from '../lib/drivers.js';
import { median } from '../lib/stats.js';
import { Agent } from '../lib/services.js';
import { type BenchContext, type ScenarioResult } from '../lib/result.js';
import { dataFile, hsmSignArgs, localSignArgs, providerSignArgs } from './one-shot.js';

function mib(kib: number): string {
  return `${(kib / 1024).toFixed(1)} MiB`;
}

export async function memory(ctx: BenchContext): Promise<ScenarioResult> {
  const key = ctx.keys.ec256;
  await ctx.emulator.setLatency(0);
  const agent = await Agent.start(ctx.dir, ctx.emulator, { label: 'memory', hsmName: ctx.hsmName });
  let agentFigures: {
    startedKiB: number;
    idleKiB: number;
    loadPeakKiB: number;
    afterLoadKiB: number;
  };
  try {
    const startedKiB = rssKiB(agent.pid);
    await runSignBench({
      key: key.uri,
      providers: ['akv_provider'],
      threads: 1,
      ops: 20,
      env: agent.providerEnv(),
    });
    await sleep(1000);
    const idleKiB = rssKiB(agent.pid);
    ctx.log(`memory: agent under load for ${ctx.profile.loadMs / 1000} s`);
    const sampler = new RssSampler(agent.pid, 50);
    await runSignBench({
      key: key.uri,
      providers: ['akv_provider'],
      threads: ctx.profile.capacityThreads,
      durationMs: ctx.profile.loadMs,
      env: agent.providerEnv(),
    });
    const loadPeakKiB = sampler.stop().peakKiB;
    await sleep(2000);
    agentFigures = { startedKiB, idleKiB, loadPeakKiB, afterLoadKiB: rssKiB(agent.pid) };
  } finally {
    await agent.stop();
  }

  const env = ctx.agent.providerEnv();
  const data = dataFile(ctx.dir);
  const sig = join(ctx.dir, 'memory.sig');
  const variants = {
    local: localSignArgs(key, data, sig),
    localWithProvider: providerSignArgs(key.pemFile, data, sig),
    hsm: hsmSignArgs(key, data, sig),
  };
  const rss: Record<keyof typeof variants, number[]> = {
    local: [],
    localWithProvider: [],
    hsm: [],
  };
  const runs = Math.max(3, Math.ceil(ctx.profile.oneShotRuns / 2));
  ctx.log(`memory: openssl peak RSS, ${runs} runs each`);
  for (let i = 0; i < runs; i++) {
    for (const [name, args] of Object.entries(variants) as Array<
      [keyof typeof variants, string[]]
    >) {
      rss[name].push((await measureCommand('openssl', args, env)).maxrss_kb);
    }
  }
  const local = median(rss.local);
  const withProvider = median(rss.localWithProvider);
  const hsm = median(rss.hsm);

  return {
    id: 'memory',
    title: '6. Memory',
    method: `A fresh agent (its own process, same config as the others): RSS right after start, idle after one key has been described and used (1 s later), peak while ${ctx.profile.capacityThreads} threads sign through it for ${ctx.profile.loadMs / 1000} s (sampled every 50 ms), and 2 s after the load. Provider cost per process: peak RSS (\`wait4\` ru_maxrss) of \`openssl dgst -sha256 -sign\` with the local EC P-256 key, the same command with \`-provider akv_provider -provider default\`, and with the HSM key; ${runs} runs each, median.`,
    findings: [
      `The agent holds ${mib(agentFigures.idleKiB)} idle and peaks at ${mib(agentFigures.loadPeakKiB)} under load (${mib(agentFigures.afterLoadKiB)} 2 s after).`,
      `Loading akv_provider adds ${withProvider - local} KiB to an \`openssl\` process; signing with the HSM key instead of the local key: ${hsm - local >= 0 ? '+' : ''}${hsm - local} KiB in total.`,
    ],
    tables: [
      {
        title: 'Agent resident memory',
        columns: ['started', 'idle (key used)', 'peak under load', '2 s after load'],
        rows: [
          [
            mib(agentFigures.startedKiB),
            mib(agentFigures.idleKiB),
            mib(agentFigures.loadPeakKiB),
            mib(agentFigures.afterLoadKiB),
          ],
        ],
      },
      {
        title: 'Peak RSS of one `openssl dgst -sign` process (median)',
        columns: [
          'local key',
          'local key, provider loaded',
          'HSM key',
          'provider adds',
          'HSM key adds',
        ],
        rows: [
          [
            `${local} KiB`,
            `${withProvider} KiB`,
            `${hsm} KiB`,
            `${withProvider - local} KiB`,
            `${hsm - local} KiB`,
          ],
        ],
      },
    ],
    charts: [
      {
        file: 'memory.svg',
        title: 'Resident memory',
        unit: 'MiB',
        groups: [
          {
            label: 'agent',
            bars: [
              { label: 'idle', value: Math.round(agentFigures.idleKiB / 102.4) / 10 },
              {
                label: 'peak under load',
                value: Math.round(agentFigures.loadPeakKiB / 102.4) / 10,
              },
            ],
          },
          {
            label: 'openssl dgst -sign',
            bars: [
              { label: 'local key', value: Math.round(local / 102.4) / 10 },
              { label: 'local key, provider loaded', value: Math.round(withProvider / 102.4) / 10 },
              { label: 'HSM key', value: Math.round(hsm / 102.4) / 10 },
            ],
          },
        ],
      },
    ],
    targets: [],
    data: { agent: agentFigures, opensslMaxRssKiB: rss },
  };
}
