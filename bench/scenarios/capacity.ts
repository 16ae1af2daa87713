/**
 * Issue 7, item 5 (and the "under load" half of item 6): how many signatures per second one
 * agent sustains to the emulator with many concurrent clients, and what each costs the agent in
 * CPU. EC P-256 keeps the emulator's arithmetic cheap. The clients are akv-sign-bench threads
 * going through akv_provider (its connection pool), i.e. the real path of a threaded server.
 */
import { cpuUserSys, processTree, RssSampler, rssKiB } from '../lib/proc.js';
import { createPrivateKey, sign } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { readProfileFrom, summariseProfile, type ProfileShares } from '../lib/cpu-profile.js';
import { runSignBench } from '../lib/drivers.js';
import { Agent } from '../lib/services.js';
import { median } from '../lib/stats.js';
import {
  formatRate,
  formatRatio,
  formatUs,
  type BenchContext,
  type ScenarioResult,
} from '../lib/result.js';

const TARGET_OPS = 3000;
/** Issue 20: agent and emulator CPU per EC P-256 signature in this measurement. */
const TARGET_AGENT_CPU_US = 250;
const TARGET_EMULATOR_EC_CPU_US = 250;
/** Issue 20: the emulator's CPU per RSA 3072 signature at most this many local crypto.sign. */
const TARGET_EMULATOR_RSA_FACTOR = 2;
/** Managed HSM scaling guidance: RSA-2048 sign 900/s per partition, three partitions. */
const MANAGED_HSM_RSA2048_MAX = 2700;

export interface CapacityTrial {
  opsPerSecond: number;
  ops: number;
  cpuPerOpUs: { agent: number; emulator: number; loadGenerator: number };
  cores: { agent: number; emulator: number; loadGenerator: number };
  /** Share of the agent's CPU spent in the kernel (socket writes and wake-ups). */
  agentSystemShare: number;
  agentRssPeakKiB: number;
}

/**
 * One more load run against a fresh agent started with `node --cpu-prof`,
 * kept apart from the measured trials because profiling slows the agent a little.
 */
/** One trial against an agent configured with the vault's caFile (as `akv dev up` writes it). */
async function caFileRun(
  ctx: BenchContext,
  threads: number,
): Promise<{ opsPerSecond: number; agentCpuPerOpUs: number }> {
  const agent = await Agent.start(ctx.dir, ctx.emulator, {
    label: 'capacity-cafile',
    hsmName: ctx.hsmName,
    caVia: 'config',
  });
  ctx.log(`agent capacity: one more run with an agent configured with caFile`);
  try {
    const agentPids = processTree(agent.pid);
    const r = await runSignBench({
      key: ctx.keys.ec256.uri,
      providers: ['akv_provider'],
      threads,
      durationMs: ctx.profile.loadMs,
      warmup: 20,
      env: agent.providerEnv(),
      watchPids: agentPids,
    });
    const cpu = r.watched_cpu_us.reduce((x, y) => x + y, 0);
    return {
      opsPerSecond: r.ops / (r.elapsed_us / 1e6),
      agentCpuPerOpUs: cpu / Math.max(1, r.ops),
    };
  } finally {
    await agent.stop();
  }
}

/**
 * The emulator's CPU per RSA 3072 signature under the same load, against the CPU of a local
 * `crypto.sign` with the same key material in this process (its PEM twin).
 */
async function rsaEmulatorRun(
  ctx: BenchContext,
  threads: number,
): Promise<{ emulatorCpuPerOpUs: number; localSignCpuUs: number; opsPerSecond: number }> {
  ctx.log(`agent capacity: RSA 3072 through the agent, and a local crypto.sign of the same key`);
  const key = ctx.keys.rsa3072;
  const r = await runSignBench({
    key: key.uri,
    providers: ['akv_provider'],
    threads,
    durationMs: Math.min(ctx.profile.loadMs, 4000),
    warmup: 20,
    env: ctx.agent.providerEnv(),
    watchPids: processTree(ctx.emulator.pid),
  });
  const emulatorCpu = r.watched_cpu_us.reduce((x, y) => x + y, 0);
  const pem = createPrivateKey(readFileSync(key.pemFile));
  const data = Buffer.from('capacity: local RSA 3072 signature');
  for (let i = 0; i < 20; i++) sign('sha256', data, pem);
  const rounds = 200;
  const before = process.cpuUsage();
  for (let i = 0; i < rounds; i++) sign('sha256', data, pem);
  const used = process.cpuUsage(before);
  return {
    emulatorCpuPerOpUs: emulatorCpu / Math.max(1, r.ops),
    localSignCpuUs: (used.user + used.system) / rounds,
    opsPerSecond: r.ops / (r.elapsed_us / 1e6),
  };
}

async function profiledRun(ctx: BenchContext, threads: number): Promise<ProfileShares> {
  const profDir = join(ctx.dir, 'agent-profile');
  mkdirSync(profDir, { recursive: true });
  const agent = await Agent.start(ctx.dir, ctx.emulator, {
    label: 'profiled',
    hsmName: ctx.hsmName,
    nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${profDir}`],
  });
  ctx.log(`agent capacity: one more run with a CPU-profiled agent`);
  try {
    await runSignBench({
      key: ctx.keys.ec256.uri,
      providers: ['akv_provider'],
      threads,
      durationMs: Math.min(ctx.profile.loadMs, 4000),
      warmup: 20,
      env: agent.providerEnv(),
    });
  } finally {
    await agent.stop();
  }
  try {
    return summariseProfile(readProfileFrom(profDir));
  } catch (err) {
    ctx.log(`agent capacity: no profile: ${(err as Error).message}`);
    return { busyMs: 0, shares: [], topFunctions: [] };
  }
}

export async function capacity(ctx: BenchContext): Promise<ScenarioResult> {
  const { agent, emulator, profile } = ctx;
  const key = ctx.keys.ec256;
  const threads = profile.capacityThreads;
  await emulator.setLatency(0);
  const agentIdleKiB = rssKiB(agent.pid);
  const trials: CapacityTrial[] = [];
  for (let t = 0; t < profile.trials; t++) {
    ctx.log(`agent capacity: EC P-256, ${threads} threads, trial ${t + 1}/${profile.trials}`);
    const agentPids = processTree(agent.pid);
    const emulatorPids = processTree(emulator.pid);
    // The kernel share comes from /proc around the whole run (a share, so the warm-up does not
    // skew it); the CPU per operation from the driver, read in exactly the measured window.
    const agent0 = await cpuUserSys(agentPids);
    const rss = new RssSampler(agent.pid);
    const r = await runSignBench({
      key: key.uri,
      providers: ['akv_provider'],
      threads,
      durationMs: profile.loadMs,
      warmup: 20,
      env: agent.providerEnv(),
      watchPids: [...agentPids, ...emulatorPids],
    });
    const peak = rss.stop().peakKiB;
    const agent1 = await cpuUserSys(agentPids);
    const sum = (xs: number[]): number => xs.reduce((x, y) => x + y, 0) / 1e6;
    const agentCpu = sum(r.watched_cpu_us.slice(0, agentPids.length));
    const emulatorCpu = sum(r.watched_cpu_us.slice(agentPids.length));
    const seconds = r.elapsed_us / 1e6;
    const ops = Math.max(1, r.ops);
    const gen = (r.cpu_user_us + r.cpu_sys_us) / 1e6;
    const agentAll = agent1.user + agent1.sys - (agent0.user + agent0.sys);
    trials.push({
      opsPerSecond: r.ops / seconds,
      ops: r.ops,
      cpuPerOpUs: {
        agent: (agentCpu / ops) * 1e6,
        emulator: (emulatorCpu / ops) * 1e6,
        loadGenerator: (gen / ops) * 1e6,
      },
      cores: {
        agent: agentCpu / seconds,
        emulator: emulatorCpu / seconds,
        loadGenerator: gen / seconds,
      },
      agentSystemShare: (agent1.sys - agent0.sys) / Math.max(1e-9, agentAll),
      agentRssPeakKiB: peak,
    });
  }
  const m = (f: (t: CapacityTrial) => number): number => median(trials.map(f));
  const caFile = await caFileRun(ctx, threads);
  const rsa = await rsaEmulatorRun(ctx, threads);
  const profileShares = await profiledRun(ctx, threads).catch((err: Error) => {
    ctx.log(`agent capacity: the profiled run failed: ${err.message}`);
    return { busyMs: 0, shares: [], topFunctions: [] } as ProfileShares;
  });
  const rate = m((t) => t.opsPerSecond);
  const agentCpu = m((t) => t.cpuPerOpUs.agent);
  const emulatorCpu = m((t) => t.cpuPerOpUs.emulator);
  const agentOnlyCeiling = 1e6 / agentCpu;
  const findings = [
    `One agent sustained ${formatRate(rate)} EC P-256 signatures with ${threads} concurrent client threads; the agent used ${m((t) => t.cores.agent).toFixed(2)} cores (${formatUs(agentCpu)} CPU per signature, ${Math.round(m((t) => t.agentSystemShare) * 100)} % of it in the kernel), the emulator ${m((t) => t.cores.emulator).toFixed(2)} cores (${formatUs(m((t) => t.cpuPerOpUs.emulator))} per signature) and the load generator ${m((t) => t.cores.loadGenerator).toFixed(2)} cores (${formatUs(m((t) => t.cpuPerOpUs.loadGenerator))}).`,
    `At ${formatUs(agentCpu)} of CPU per signature, the agent alone on one core would top out near ${formatRate(agentOnlyCeiling)} (the agent's JavaScript runs on one thread); on this machine it shares the cores with the emulator and the clients.`,
  ];
  findings.push(
    `The same load against an agent configured with the vault's \`caFile\` (what \`akv dev up\` writes) instead of NODE_EXTRA_CA_CERTS: ${formatRate(caFile.opsPerSecond)} at ${formatUs(caFile.agentCpuPerOpUs)} of agent CPU per signature (one trial).`,
  );
  findings.push(
    `RSA 3072 through the same agent: ${formatRate(rsa.opsPerSecond)}, the emulator spent ${formatUs(rsa.emulatorCpuPerOpUs)} of CPU per signature (its whole request path: TLS, HTTP, JSON and the signature in a worker thread), against ${formatUs(rsa.localSignCpuUs)} for a \`crypto.sign\` of the same key in one process: ${formatRatio(rsa.emulatorCpuPerOpUs / rsa.localSignCpuUs)}.`,
  );
  if (profileShares.shares.length > 0) {
    const top = profileShares.shares
      .slice(0, 4)
      .map((x) => `${x.part} ${Math.round(x.share * 100)} %`)
      .join(', ');
    findings.push(
      `A CPU profile of a separate agent under the same load puts its busy time in: ${top} (the table lists all parts and the heaviest functions).`,
    );
  }
  return {
    id: 'capacity',
    title: '5. Agent capacity',
    method: `\`akv-sign-bench\` with ${threads} threads signing through akv_provider (its pooled connections to the agent) with the EC P-256 key for ${profile.loadMs / 1000} s per trial, ${profile.trials} trial(s), median; emulator without added latency. CPU of the agent and of the emulator (all threads) read from /proc/<pid>/stat by the driver at the start and end of the measured window (warm-up excluded); the load generator's from getrusage.`,
    findings,
    tables: [
      {
        title: 'Signatures per second through one agent',
        columns: [
          'signatures/s',
          'agent CPU/op',
          'agent CPU in kernel',
          'agent cores',
          'emulator CPU/op',
          'emulator cores',
          'load generator CPU/op',
          'load generator cores',
        ],
        rows: [
          [
            formatRate(rate),
            formatUs(agentCpu),
            `${Math.round(m((t) => t.agentSystemShare) * 100)} %`,
            m((t) => t.cores.agent).toFixed(2),
            formatUs(m((t) => t.cpuPerOpUs.emulator)),
            m((t) => t.cores.emulator).toFixed(2),
            formatUs(m((t) => t.cpuPerOpUs.loadGenerator)),
            m((t) => t.cores.loadGenerator).toFixed(2),
          ],
        ],
      },
      {
        title: 'The same load, agent configured with caFile (one trial)',
        columns: ['signatures/s', 'agent CPU/op'],
        rows: [[formatRate(caFile.opsPerSecond), formatUs(caFile.agentCpuPerOpUs)]],
      },
      {
        title: 'Where the agent spends its CPU under this load (V8 profile, busy time only)',
        columns: ['part of the agent', 'share'],
        rows: profileShares.shares.map((x) => [x.part, `${(x.share * 100).toFixed(1)} %`]),
      },
      {
        title: 'Heaviest functions (self time)',
        columns: ['function', 'share'],
        rows: profileShares.topFunctions.map((x) => [x.name, `${(x.share * 100).toFixed(1)} %`]),
      },
    ],
    charts: [
      {
        file: 'capacity.svg',
        title: 'Signatures per second through one agent (EC P-256)',
        unit: 'signatures/s',
        groups: [
          {
            label: 'this machine',
            bars: [
              { label: 'measured', value: Math.round(rate) },
              {
                label: 'agent-only ceiling (1 core / agent CPU per op)',
                value: Math.round(agentOnlyCeiling),
              },
            ],
          },
          {
            label: 'Managed HSM',
            bars: [
              { label: 'published max, RSA 2048, 3 partitions', value: MANAGED_HSM_RSA2048_MAX },
            ],
          },
        ],
        reference: { value: TARGET_OPS, label: `target ${TARGET_OPS}/s` },
      },
    ],
    targets: [
      {
        name: 'signatures/s through one agent (EC P-256)',
        goal: `≥ ${formatRate(TARGET_OPS)}`,
        value: formatRate(rate),
        met: rate >= TARGET_OPS,
      },
      {
        name: 'agent CPU per EC P-256 signature, 64 threads (issue 20)',
        goal: `≤ ${formatUs(TARGET_AGENT_CPU_US)}`,
        value: formatUs(agentCpu),
        met: agentCpu <= TARGET_AGENT_CPU_US,
      },
      {
        name: 'emulator CPU per EC P-256 signature (issue 20)',
        goal: `≤ ${formatUs(TARGET_EMULATOR_EC_CPU_US)}`,
        value: formatUs(emulatorCpu),
        met: emulatorCpu <= TARGET_EMULATOR_EC_CPU_US,
      },
      {
        name: 'emulator CPU per RSA 3072 signature / local crypto.sign (issue 20)',
        goal: `≤ ${formatRatio(TARGET_EMULATOR_RSA_FACTOR)}`,
        value: `${formatRatio(rsa.emulatorCpuPerOpUs / rsa.localSignCpuUs)} (${formatUs(rsa.emulatorCpuPerOpUs)} / ${formatUs(rsa.localSignCpuUs)})`,
        met: rsa.emulatorCpuPerOpUs <= TARGET_EMULATOR_RSA_FACTOR * rsa.localSignCpuUs,
      },
    ],
    data: {
      threads,
      trials,
      agentIdleKiB,
      agentOnlyCeiling,
      agentProfile: profileShares,
      caFile,
      rsa,
      managedHsmRsa2048Max: MANAGED_HSM_RSA2048_MAX,
    },
  };
}
