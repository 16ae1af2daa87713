/**
 * Issue 7, item 1: what the provider and the agent add to one signature. The same sign, one at a
 * time from a warm client, along three paths to the emulator (no added latency):
 *   direct  - a keep-alive HTTPS client straight to the REST API (the floor)
 *   agent   - the agent socket from Node (AgentClient): agent + SDK, no provider
 *   provider- akv-sign-bench (C, one process): provider + socket + agent + SDK
 * and, for scale, the same key from a local PEM file in the C driver.
 */
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { AgentClient } from '../../src/client/agent-client.js';
import { runSignBench } from '../lib/drivers.js';
import { sleep } from '../lib/proc.js';
import { DirectSigner } from '../lib/rest-client.js';
import { distribution, medianDistribution, round, type Distribution } from '../lib/stats.js';
import { Agent, keyLabel, type BenchKey } from '../lib/services.js';
import { formatUs, type BenchContext, type ScenarioResult, type Target } from '../lib/result.js';

const PATHS = ['direct', 'agent', 'agentCaFile', 'provider', 'local'] as const;
type Path = (typeof PATHS)[number];

const PATH_LABELS: Record<Path, string> = {
  direct: 'REST API direct (keep-alive)',
  agent: 'agent socket (Node client)',
  agentCaFile: 'agent socket, caFile config',
  provider: 'provider + agent (C)',
  local: 'local PEM key (C, in-process)',
};

const P50_TARGET_US = 300;
const P99_TARGET_US = 1000;

async function agentLoop(
  client: AgentClient,
  key: BenchKey,
  ops: number,
  warmup: number,
): Promise<number[]> {
  const digest = createHash('sha256').update('akv bench').digest();
  for (let i = 0; i < warmup; i++) await client.sign(key.uri, key.alg, digest);
  const out: number[] = [];
  for (let i = 0; i < ops; i++) {
    const start = process.hrtime.bigint();
    await client.sign(key.uri, key.alg, digest);
    out.push(Number(process.hrtime.bigint() - start) / 1000);
  }
  return out;
}

export async function overhead(ctx: BenchContext): Promise<ScenarioResult> {
  const { profile, keys, agent } = ctx;
  await ctx.emulator.setLatency(0);
  const direct = new DirectSigner(ctx.emulator, 'bench-token');
  const client = new AgentClient(agent.socket);
  // The same agent configured with the vault's caFile (as `akv dev up` writes it) instead of
  // NODE_EXTRA_CA_CERTS: the SDK then carries its own TLS options on every request.
  const caFileAgent = await Agent.start(ctx.dir, ctx.emulator, {
    label: 'cafile',
    hsmName: ctx.hsmName,
    caVia: 'config',
  });
  const caFileClient = new AgentClient(caFileAgent.socket);
  const ops = profile.overheadOps;
  const warmup = 20;
  const perKey: Record<string, Record<Path, Distribution>> = {};
  /** The agent's own view (audit log) of the provider-path signs: request parsed → answer ready. */
  const handlerByKey: Record<string, Distribution> = {};
  try {
    for (const key of [keys.rsa2048, keys.rsa3072, keys.ec256]) {
      const label = keyLabel(key.spec);
      const trials: Record<Path, Distribution[]> = {
        direct: [],
        agent: [],
        agentCaFile: [],
        provider: [],
        local: [],
      };
      const handlerTrials: Distribution[] = [];
      for (let t = 0; t < profile.trials; t++) {
        ctx.log(`overhead: ${label}, trial ${t + 1}/${profile.trials}`);
        // Interleaved, so that a change in background load hits every path alike.
        trials.direct.push(distribution(await direct.loop(key, ops, warmup)));
        trials.agent.push(distribution(await agentLoop(client, key, ops, warmup)));
        trials.agentCaFile.push(distribution(await agentLoop(caFileClient, key, ops, warmup)));
        const logOffset = agent.logSize();
        const viaProvider = await runSignBench({
          key: key.uri,
          providers: ['akv_provider'],
          threads: 1,
          ops,
          warmup,
          env: agent.providerEnv(),
          latencyFile: join(ctx.dir, 'latencies.txt'),
        });
        trials.provider.push(distribution(viaProvider.latenciesUs));
        await sleep(300); // the audit log is written asynchronously
        handlerTrials.push(distribution(agent.auditedSignLatenciesUs(logOffset).slice(-ops)));
        const local = await runSignBench({
          key: key.pemFile,
          providers: [],
          threads: 1,
          ops,
          warmup,
          env: agent.providerEnv(),
          latencyFile: join(ctx.dir, 'latencies.txt'),
        });
        trials.local.push(distribution(local.latenciesUs));
      }
      perKey[label] = {
        direct: medianDistribution(trials.direct),
        agent: medianDistribution(trials.agent),
        agentCaFile: medianDistribution(trials.agentCaFile),
        provider: medianDistribution(trials.provider),
        local: medianDistribution(trials.local),
      };
      handlerByKey[label] = medianDistribution(handlerTrials);
    }
  } finally {
    direct.close();
    await client.close();
    await caFileClient.close();
    await caFileAgent.stop();
  }

  const targets: Target[] = [];
  const rows: Array<Array<string | number>> = [];
  const findings: string[] = [];
  const split: Array<Array<string | number>> = [];
  for (const [label, d] of Object.entries(perKey)) {
    const handler = handlerByKey[label]?.p50 ?? Number.NaN;
    split.push([
      label,
      formatUs(d.direct.p50),
      formatUs(handler),
      formatUs(handler - d.direct.p50),
      formatUs(d.provider.p50),
      formatUs(d.provider.p50 - handler),
    ]);
    const p50Over = d.provider.p50 - d.direct.p50;
    const p99Over = d.provider.p99 - d.direct.p99;
    for (const path of PATHS) {
      const x = d[path];
      rows.push([label, PATH_LABELS[path], formatUs(x.p50), formatUs(x.p90), formatUs(x.p99), x.n]);
    }
    rows.push([
      label,
      '**overhead (provider − direct)**',
      `**${formatUs(p50Over)}**`,
      formatUs(d.provider.p90 - d.direct.p90),
      `**${formatUs(p99Over)}**`,
      '',
    ]);
    targets.push(
      {
        name: `p50 overhead, ${label}`,
        goal: `< ${formatUs(P50_TARGET_US)}`,
        value: formatUs(p50Over),
        met: p50Over < P50_TARGET_US,
      },
      {
        name: `p99 overhead, ${label}`,
        goal: `< ${formatUs(P99_TARGET_US)}`,
        value: formatUs(p99Over),
        met: p99Over < P99_TARGET_US,
      },
    );
    findings.push(
      `${label}: the provider path adds ${formatUs(p50Over)} at p50 and ${formatUs(p99Over)} at p99 over the direct REST call. By the agent's audit log, ${formatUs(handler - d.direct.p50)} of the p50 is the agent's handler with the SDK (request parsed → answer ready, minus the direct call) and ${formatUs(d.provider.p50 - handler)} the provider, the Unix socket and the agent's frame I/O.`,
    );
  }

  return {
    id: 'overhead',
    title: '1. Overhead per signature',
    method: `One signature at a time (SHA-256 digest), ${profile.overheadOps} per trial and path after ${warmup} warm-up signatures, ${profile.trials} trial(s) interleaved across the paths; figures are the median across trials of each trial's p50/p90/p99. Emulator with no added latency. The provider path is \`bench/driver/akv-sign-bench\`: one long-lived C process that opens \`managedhsm:…\` through OSSL_STORE and calls \`EVP_DigestSign\` in a loop. The direct path is a Node HTTPS client with one keep-alive socket sending the same \`POST /keys/{name}/{version}/sign\`. Overhead = provider − direct, per percentile. The agents trust the emulator's CA through NODE_EXTRA_CA_CERTS, so the SDK runs with its default TLS settings as it does against Azure; a second agent with the vault's \`caFile\` in its config (what \`akv dev up\` writes) is measured alongside. The two "agent socket" rows use a Node client (\`AgentClient\`), whose own event loop adds latency: they compare the agent's two configurations, while the split of the overhead comes from the agent's audit log.`,
    findings,
    tables: [
      {
        title: 'Where the p50 goes: the agent audit log times each request from parsed to answered',
        columns: [
          'key',
          'REST direct',
          'agent handler (audit log)',
          '→ agent + SDK over REST',
          'provider path (C)',
          '→ provider, socket, agent I/O',
        ],
        rows: split,
      },
      {
        title: 'Latency of one signature',
        columns: ['key', 'path', 'p50', 'p90', 'p99', 'n'],
        rows,
      },
    ],
    charts: [
      {
        file: 'overhead-p50.svg',
        title: 'One signature, p50 latency by path',
        unit: 'µs',
        groups: Object.entries(perKey).map(([label, d]) => ({
          label,
          bars: PATHS.map((p) => ({ label: PATH_LABELS[p], value: round(d[p].p50) })),
        })),
      },
      {
        file: 'overhead-p99.svg',
        title: 'One signature, p99 latency by path',
        unit: 'µs',
        groups: Object.entries(perKey).map(([label, d]) => ({
          label,
          bars: PATHS.map((p) => ({ label: PATH_LABELS[p], value: round(d[p].p99) })),
        })),
      },
    ],
    targets,
    data: { perKey, handlerByKey, opsPerTrial: ops, trials: profile.trials },
  };
}
