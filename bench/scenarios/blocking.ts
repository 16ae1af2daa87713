/**
 * Issue 7, item 2: the blocking bound. An nginx worker waits for the HSM during each signature,
 * so with W workers and an HSM latency L, full handshakes cannot exceed W / L per second. With
 * the emulator at 10 ms and 4 workers that is 400/s; reaching 90 % of it shows that nothing in our
 * path (provider connection pool, agent, SDK socket pool) serialises the workers.
 */
import { DirectSigner } from '../lib/rest-client.js';
import { distribution, median } from '../lib/stats.js';
import { keyLabel } from '../lib/services.js';
import { nginxPids, tlsTrial, type TlsTrial } from '../lib/tls-trial.js';
import {
  formatRate,
  formatUs,
  type BenchContext,
  type Chart,
  type ScenarioResult,
  type Target,
} from '../lib/result.js';

const LATENCY_MS = 10;
const TARGET_FRACTION = 0.9;

export async function blocking(ctx: BenchContext): Promise<ScenarioResult> {
  const bn = await ctx.nginx();
  const bound = bn.workers / (LATENCY_MS / 1000);
  const cases: Array<{ key: 'ec256' | 'rsa3072'; clients: number; trials: TlsTrial[] }> = [];
  /** p50 of one sign sent straight to the emulator at this latency (its own crypto included). */
  const hsmRoundTripUs: Partial<Record<'ec256' | 'rsa3072', number>> = {};
  await ctx.emulator.setLatency(LATENCY_MS);
  try {
    for (const key of ['ec256', 'rsa3072'] as const) {
      const direct = new DirectSigner(ctx.emulator, 'bench-token');
      try {
        hsmRoundTripUs[key] = distribution(await direct.loop(ctx.keys[key], 40, 5)).p50;
      } finally {
        direct.close();
      }
      for (const clients of ctx.profile.blockingClients) {
        const c = { key, clients, trials: [] as TlsTrial[] };
        for (let t = 0; t < ctx.profile.trials; t++) {
          ctx.log(
            `blocking bound: ${keyLabel(ctx.keys[key].spec)}, ${clients} clients, trial ${t + 1}/${ctx.profile.trials}`,
          );
          c.trials.push(
            await tlsTrial(ctx, nginxPids(bn), bn.ports[key].hsm, clients, ctx.profile.loadMs),
          );
        }
        cases.push(c);
      }
    }
  } finally {
    await ctx.emulator.setLatency(0);
  }

  const targets: Target[] = [];
  const rows: Array<Array<string | number>> = [];
  const findings: string[] = [];
  const summary = cases.map((c) => {
    const rate = median(c.trials.map((t) => t.handshakesPerSecond));
    const fraction = rate / bound;
    const label = keyLabel(ctx.keys[c.key].spec);
    const p50 = median(c.trials.map((t) => t.latency.p50));
    const p99 = median(c.trials.map((t) => t.latency.p99));
    const signs = median(c.trials.map((t) => t.hsmSignsPerHandshake));
    const genCores = median(c.trials.map((t) => t.loadGeneratorCores));
    const roundTrip = hsmRoundTripUs[c.key] ?? Number.NaN;
    const effectiveBound = bn.workers / (roundTrip / 1e6);
    rows.push([
      label,
      c.clients,
      formatRate(rate),
      formatRate(bound),
      `${(fraction * 100).toFixed(1)} %`,
      `${formatRate(effectiveBound)} (${((rate / effectiveBound) * 100).toFixed(1)} %)`,
      formatUs(p50),
      formatUs(p99),
      signs.toFixed(2),
      genCores.toFixed(2),
    ]);
    targets.push({
      name: `handshakes/s vs W/latency, ${label}, ${c.clients} clients`,
      goal: `≥ ${TARGET_FRACTION * 100} % of ${formatRate(bound)}`,
      value: `${(fraction * 100).toFixed(1)} % (${formatRate(rate)})`,
      met: fraction >= TARGET_FRACTION,
    });
    findings.push(
      `${label}, ${c.clients} clients: ${formatRate(rate)} full handshakes, ${(fraction * 100).toFixed(1)} % of the bound; handshake p50 ${formatUs(p50)} (a worker spends ≥ ${LATENCY_MS} ms per handshake waiting for the HSM, so clients queue behind ${bn.workers} workers); ${signs.toFixed(2)} HSM signatures per handshake (1.00 = nothing resumed, nothing retried). A sign sent straight to the emulator at this setting takes ${formatUs(roundTrip)} (p50: the ${LATENCY_MS} ms plus the emulator's own work), so the workers cannot exceed ${formatRate(effectiveBound)}; the measured rate is ${((rate / effectiveBound) * 100).toFixed(1)} % of that, and each handshake held a worker for ${formatUs((bn.workers / rate) * 1e6)}, ${formatUs((bn.workers / rate) * 1e6 - roundTrip)} more than that direct sign (nginx's own handshake work, the provider, the agent, and waiting for a CPU).`,
    );
    return { key: c.key, label, clients: c.clients, rate, fraction };
  });

  const chart: Chart = {
    file: 'blocking.svg',
    title: `Full TLS 1.3 handshakes/s, HSM latency ${LATENCY_MS} ms, ${bn.workers} nginx workers`,
    unit: 'handshakes/s',
    groups: summary.map((s) => ({
      label: `${s.label}, ${s.clients} clients`,
      bars: [{ label: 'measured', value: Math.round(s.rate) }],
    })),
    reference: { value: bound, label: `bound W / latency = ${bound}/s` },
  };

  return {
    id: 'blocking',
    title: '2. The blocking bound (nginx workers waiting on the HSM)',
    method: `Emulator latency ${LATENCY_MS} ms per request (\`POST /_emulator/latency\`), nginx ${bn.workers} workers with the HSM key given as a key-reference PEM, \`bench/driver/akv-tls-load\` making full TLS 1.3 handshakes (no tickets, no session cache, certificate not verified) from ${ctx.profile.blockingClients.join(' and ')} concurrent threads for ${ctx.profile.loadMs / 1000} s per trial, ${ctx.profile.trials} trial(s), median. Bound = W / latency = ${bn.workers} / ${LATENCY_MS} ms = ${bound}/s. "HSM signs/handshake" is the emulator's own count of sign requests divided by completed handshakes. The emulator adds its latency to its own work (an RSA 3072 signature takes it milliseconds), so a second bound uses the p50 of 40 signs sent straight to the emulator at the same setting: W / that round trip.`,
    findings,
    tables: [
      {
        title: 'Handshakes per second against the bound',
        columns: [
          'key',
          'clients',
          'handshakes/s',
          'bound',
          'of bound',
          'W / direct sign p50 (share)',
          'handshake p50',
          'p99',
          'HSM signs/handshake',
          'load generator cores',
        ],
        rows,
      },
    ],
    charts: [chart],
    targets,
    data: { latencyMs: LATENCY_MS, workers: bn.workers, bound, hsmRoundTripUs, cases },
  };
}
