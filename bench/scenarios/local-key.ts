/**
 * Issue 7, item 3: nginx with the HSM key against the same nginx with the same key material
 * from a local PEM file (full handshakes, emulator without added latency). Both servers run in one
 * nginx, so workers, OpenSSL config and load generator are identical; trials alternate the order.
 * On one machine the "HSM" is the emulator, which does the same private-key arithmetic nginx would
 * do locally, in a Node worker thread, so the ratio prices our whole path, crypto included.
 */
import { median } from '../lib/stats.js';
import { keyLabel } from '../lib/services.js';
import { nginxPids, tlsTrial, type TlsTrial } from '../lib/tls-trial.js';
import {
  formatRate,
  formatRatio,
  formatUs,
  type BenchContext,
  type ScenarioResult,
  type Target,
} from '../lib/result.js';

const TARGETS: Record<'rsa3072' | 'ec256', number> = { rsa3072: 0.8, ec256: 0.5 };

function cpuCell(t: TlsTrial[]): string {
  const m = (f: (x: TlsTrial) => number): string => formatUs(median(t.map(f)));
  return `nginx ${m((x) => x.cpuPerHandshakeUs.server)}, agent ${m((x) => x.cpuPerHandshakeUs.agent)}, emulator ${m((x) => x.cpuPerHandshakeUs.emulator)}, client ${m((x) => x.cpuPerHandshakeUs.loadGenerator)}`;
}

export async function localKey(ctx: BenchContext): Promise<ScenarioResult> {
  const bn = await ctx.nginx();
  await ctx.emulator.setLatency(0);
  const clients = ctx.profile.tlsClients;
  const results: Record<string, { hsm: TlsTrial[]; local: TlsTrial[] }> = {};
  for (const key of ['rsa3072', 'ec256'] as const) {
    const r = { hsm: [] as TlsTrial[], local: [] as TlsTrial[] };
    for (let t = 0; t < ctx.profile.trials; t++) {
      ctx.log(
        `HSM vs local key: ${keyLabel(ctx.keys[key].spec)}, trial ${t + 1}/${ctx.profile.trials}`,
      );
      const order = t % 2 === 0 ? (['hsm', 'local'] as const) : (['local', 'hsm'] as const);
      for (const which of order) {
        r[which].push(
          await tlsTrial(ctx, nginxPids(bn), bn.ports[key][which], clients, ctx.profile.loadMs),
        );
      }
    }
    results[key] = r;
  }

  const targets: Target[] = [];
  const findings: string[] = [];
  const rows: Array<Array<string | number>> = [];
  const groups = [];
  /** Local nginx CPU per handshake over the HSM setup's: with and without the emulator's share. */
  const cpuRatios: Record<string, { withEmulator: number; hostOnly: number }> = {};
  for (const key of ['rsa3072', 'ec256'] as const) {
    const r = results[key] as { hsm: TlsTrial[]; local: TlsTrial[] };
    const label = keyLabel(ctx.keys[key].spec);
    const hsm = median(r.hsm.map((t) => t.handshakesPerSecond));
    const local = median(r.local.map((t) => t.handshakesPerSecond));
    const ratio = hsm / local;
    for (const [which, trials, rate] of [
      ['HSM key (akv)', r.hsm, hsm],
      ['local PEM key', r.local, local],
    ] as const) {
      rows.push([
        label,
        which,
        formatRate(rate),
        formatUs(median(trials.map((t) => t.latency.p50))),
        cpuCell([...trials]),
        median(trials.map((t) => t.hsmSignsPerHandshake)).toFixed(2),
        median(trials.map((t) => t.loadGeneratorCores)).toFixed(2),
      ]);
    }
    targets.push({
      name: `HSM/local handshake throughput, ${label}`,
      goal: `≥ ${formatRatio(TARGETS[key])}`,
      value: formatRatio(ratio),
      met: ratio >= TARGETS[key],
    });
    const hsmCpu = median(
      r.hsm.map(
        (t) =>
          t.cpuPerHandshakeUs.server + t.cpuPerHandshakeUs.agent + t.cpuPerHandshakeUs.emulator,
      ),
    );
    const hostCpu = median(
      r.hsm.map((t) => t.cpuPerHandshakeUs.server + t.cpuPerHandshakeUs.agent),
    );
    const localCpu = median(r.local.map((t) => t.cpuPerHandshakeUs.server));
    cpuRatios[label] = { withEmulator: localCpu / hsmCpu, hostOnly: localCpu / hostCpu };
    findings.push(
      `${label}: ${formatRate(hsm)} with the HSM key against ${formatRate(local)} with the local key, ratio ${formatRatio(ratio)}. Server-side CPU per handshake: ${formatUs(hsmCpu)} (nginx ${formatUs(median(r.hsm.map((t) => t.cpuPerHandshakeUs.server)))} + agent + emulator) against ${formatUs(localCpu)} (nginx alone): a CPU-cost ratio of ${formatRatio(localCpu / hsmCpu)}; without the emulator's share (the HSM is another machine in production) ${formatRatio(localCpu / hostCpu)}.`,
    );
    groups.push({
      label,
      bars: [
        { label: 'HSM key (akv)', value: Math.round(hsm) },
        { label: 'local PEM key', value: Math.round(local) },
      ],
    });
  }

  return {
    id: 'local-key',
    title: '3. HSM key against a local key (nginx, full handshakes)',
    method: `One nginx, ${bn.workers} workers, four TLS servers: RSA 3072 and EC P-256, each once with the HSM key (key-reference PEM → akv_provider → agent → emulator, no added latency) and once with the same key material from the PEM file it was imported from. \`akv-tls-load\` with ${clients} threads, full TLS 1.3 handshakes, ${ctx.profile.loadMs / 1000} s per trial, ${ctx.profile.trials} trial(s) alternating which server goes first; medians. CPU per handshake is read from /proc for nginx (master + workers), the agent and the emulator (all threads), and from getrusage for the load generator. Everything shares the machine's cores, the emulator's RSA/ECDSA arithmetic included.`,
    findings,
    tables: [
      {
        title: 'Full handshakes per second, HSM key and local key',
        columns: [
          'key',
          'server',
          'handshakes/s',
          'handshake p50',
          'CPU per handshake',
          'HSM signs/handshake',
          'load generator cores',
        ],
        rows,
      },
    ],
    charts: [
      {
        file: 'local-key.svg',
        title: `Full TLS 1.3 handshakes/s, ${bn.workers} nginx workers, ${clients} clients`,
        unit: 'handshakes/s',
        groups,
      },
    ],
    targets,
    data: { clients, workers: bn.workers, results, cpuRatios },
  };
}
