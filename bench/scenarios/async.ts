/**
 * Issue 12: async HAProxy. With the HSM 10 ms away, a TLS server that waits for each signature
 * does at most threads / latency full handshakes per second; HAProxy with `ssl-mode-async` lets
 * its one thread go on while the HSM signs. Measured side by side in one run: HAProxy (nbthread 1)
 * blocking, the same HAProxy async, and the same key from a local file, against 1 to 256 clients,
 * for EC P-256 and RSA 3072; then nginx's blocking bound against worker_processes (4, 16, 64) and
 * with session resumption on; and what one agent connection per operation in flight costs (the
 * provider's async design) against reusing one.
 */
import { AgentClient } from '../../src/client/agent-client.js';
import { certificateFor, freePort, keyReferenceFor, Nginx } from '../lib/nginx.js';
import { Haproxy } from '../lib/haproxy.js';
import { cpuSeconds, processTree } from '../lib/proc.js';
import { DirectSigner } from '../lib/rest-client.js';
import { distribution } from '../lib/stats.js';
import { keyLabel } from '../lib/services.js';
import { nginxPids, tlsTrial, type TlsTrial } from '../lib/tls-trial.js';
import {
  formatRate,
  formatRatio,
  formatUs,
  type BenchContext,
  type Chart,
  type ScenarioResult,
  type Target,
} from '../lib/result.js';

const LATENCY_MS = 10;
type KeyId = 'ec256' | 'rsa3072';
/**
 * Issue 20's targets, each against the same run's figures: EC P-256 async at least 500/s and 5x
 * the best blocking rate; RSA 3072 (the emulator does its arithmetic on the same cores, so a
 * ratio is the fair target) at least 4x blocking and 1.3x the same key held locally by HAProxy;
 * the agent's CPU per async handshake at most 400 µs (EC, at the best async rate).
 */
const TARGETS: Record<KeyId, { minRate: number; vsBlocking: number; vsLocal: number }> = {
  ec256: { minRate: 500, vsBlocking: 5, vsLocal: 0 },
  rsa3072: { minRate: 0, vsBlocking: 4, vsLocal: 1.3 },
};
const TARGET_AGENT_CPU_PER_HANDSHAKE_US = 400;
type Mode = 'blocking' | 'async' | 'local';
const MODES: Mode[] = ['blocking', 'async', 'local'];

interface Case {
  key: KeyId;
  mode: Mode;
  clients: number;
  trial: TlsTrial;
}

function cpuCell(t: TlsTrial): string {
  const c = t.cpuPerHandshakeUs;
  return `${formatUs(c.server)} / ${formatUs(c.agent)} / ${formatUs(c.emulator)} / ${formatUs(c.loadGenerator)}`;
}

/** Agent CPU and wall time per SIGN, on one reused connection and on a new connection each. */
async function connectionCost(
  ctx: BenchContext,
  uri: string,
  n: number,
): Promise<Record<string, number>> {
  const agentPids = processTree(ctx.agent.pid);
  const digest = Buffer.alloc(32, 7);
  const out: Record<string, number> = {};
  const reused = await AgentClient.connect(ctx.agent.socket);
  try {
    await reused.sign(uri, 'ES256', digest);
    let c0 = await cpuSeconds(agentPids);
    let t0 = performance.now();
    for (let i = 0; i < n; i++) await reused.sign(uri, 'ES256', digest);
    out.reusedWallUs = ((performance.now() - t0) / n) * 1000;
    out.reusedAgentCpuUs = (((await cpuSeconds(agentPids)) - c0) / n) * 1e6;
    c0 = await cpuSeconds(agentPids);
    t0 = performance.now();
    for (let i = 0; i < n; i++) {
      const fresh = await AgentClient.connect(ctx.agent.socket);
      await fresh.sign(uri, 'ES256', digest);
      await fresh.close();
    }
    out.freshWallUs = ((performance.now() - t0) / n) * 1000;
    out.freshAgentCpuUs = (((await cpuSeconds(agentPids)) - c0) / n) * 1e6;
  } finally {
    await reused.close();
  }
  return out;
}

export async function asyncHaproxy(ctx: BenchContext): Promise<ScenarioResult> {
  const keys: KeyId[] = ['ec256', 'rsa3072'];
  const ports: Record<KeyId, Record<Mode, number>> = {
    ec256: { blocking: 0, async: 0, local: 0 },
    rsa3072: { blocking: 0, async: 0, local: 0 },
  };
  const certs: Record<KeyId, { cert: string; ref: string; pem: string }> = {} as never;
  for (const key of keys) {
    certs[key] = {
      cert: await certificateFor(ctx.dir, ctx.keys[key]),
      ref: await keyReferenceFor(ctx.dir, ctx.agent, ctx.keys[key]),
      pem: ctx.keys[key].pemFile,
    };
    for (const mode of MODES) ports[key][mode] = await freePort();
  }
  ctx.log('starting HAProxy twice (nbthread 1): blocking, and ssl-mode-async');
  const blockingHa = await Haproxy.start(
    ctx.dir,
    ctx.agent,
    'haproxy-blocking',
    { async: false, threads: 1 },
    keys.map((k) => ({
      label: `${k} HSM key`,
      port: ports[k].blocking,
      certFile: certs[k].cert,
      keyFile: certs[k].ref,
    })),
  );
  let asyncHa: Haproxy | undefined;
  const cases: Case[] = [];
  const nginxRows: Array<Array<string | number>> = [];
  const nginxData: Array<Record<string, unknown>> = [];
  let hsmRoundTripUs = Number.NaN;
  let conn: Record<string, number> = {};
  try {
    asyncHa = await Haproxy.start(
      ctx.dir,
      ctx.agent,
      'haproxy-async',
      { async: true, threads: 1 },
      keys.flatMap((k) => [
        {
          label: `${k} HSM key`,
          port: ports[k].async,
          certFile: certs[k].cert,
          keyFile: certs[k].ref,
        },
        {
          label: `${k} local key`,
          port: ports[k].local,
          certFile: certs[k].cert,
          keyFile: certs[k].pem,
        },
      ]),
    );
    await ctx.emulator.setLatency(LATENCY_MS);
    const direct = new DirectSigner(ctx.emulator, 'bench-token');
    try {
      hsmRoundTripUs = distribution(await direct.loop(ctx.keys.rsa3072, 40, 5)).p50;
    } finally {
      direct.close();
    }
    const servers: Record<Mode, Haproxy> = { blocking: blockingHa, async: asyncHa, local: asyncHa };
    for (const key of keys) {
      for (const clients of ctx.profile.asyncClients) {
        for (const mode of MODES) {
          ctx.log(`async HAProxy: ${keyLabel(ctx.keys[key].spec)}, ${mode}, ${clients} clients`);
          const server = servers[mode];
          const trial = await tlsTrial(
            ctx,
            () => [server.pid],
            ports[key][mode],
            clients,
            ctx.profile.asyncLoadMs,
          );
          cases.push({ key, mode, clients, trial });
        }
      }
    }

    // nginx: the blocking bound against its worker count, then with resumption on.
    const sweepClients = ctx.profile.asyncClients[ctx.profile.asyncClients.length - 1] ?? 256;
    for (const workers of ctx.profile.nginxWorkerCounts) {
      const port = await freePort();
      ctx.log(`nginx blocking bound: ${workers} workers, ${sweepClients} clients`);
      const n = await Nginx.start(
        ctx.dir,
        ctx.agent,
        workers,
        [{ label: 'ec256 HSM key', port, certFile: certs.ec256.cert, keyFile: certs.ec256.ref }],
        `nginx-w${workers}`,
      );
      try {
        const bn = {
          nginx: n,
          workers,
          ports: { ec256: { hsm: port, local: 0 }, rsa3072: { hsm: 0, local: 0 } },
        };
        const variants = workers === ctx.profile.nginxWorkerCounts[0] ? [false, true] : [false];
        for (const resume of variants) {
          const t = await tlsTrial(
            ctx,
            nginxPids(bn),
            port,
            sweepClients,
            ctx.profile.asyncLoadMs,
            { resume },
          );
          const bound = workers / (LATENCY_MS / 1000);
          nginxRows.push([
            workers,
            resume
              ? 'on (TLS 1.2, each client offers its last session)'
              : 'off (full TLS 1.3 handshakes)',
            formatRate(t.handshakesPerSecond),
            resume ? `${(t.resumedShare * 100).toFixed(1)} %` : '0 %',
            formatRate(bound),
            formatUs(t.latency.p50),
            t.hsmSignsPerHandshake.toFixed(2),
            cpuCell(t),
          ]);
          nginxData.push({ workers, resume, trial: t, bound });
        }
      } finally {
        await n.stop();
      }
    }
    await ctx.emulator.setLatency(0);
    ctx.log('cost of a new agent connection per operation');
    conn = await connectionCost(ctx, ctx.keys.ec256.uri, ctx.profile.quick ? 100 : 400);
  } finally {
    await ctx.emulator.setLatency(0);
    await asyncHa?.stop();
    await blockingHa.stop();
  }

  const rate = (key: KeyId, mode: Mode, clients: number): TlsTrial | undefined =>
    cases.find((c) => c.key === key && c.mode === mode && c.clients === clients)?.trial;
  const bound = 1 / (LATENCY_MS / 1000);
  const rows: Array<Array<string | number>> = [];
  const targets: Target[] = [];
  const findings: string[] = [];
  const charts: Chart[] = [];
  for (const key of keys) {
    const label = keyLabel(ctx.keys[key].spec);
    for (const clients of ctx.profile.asyncClients) {
      const [b, a, l] = MODES.map((m) => rate(key, m, clients));
      if (!b || !a || !l) continue;
      rows.push([
        label,
        clients,
        formatRate(b.handshakesPerSecond),
        formatRate(a.handshakesPerSecond),
        formatRate(l.handshakesPerSecond),
        formatRatio(a.handshakesPerSecond / b.handshakesPerSecond),
        formatUs(a.latency.p50),
        a.hsmSignsPerHandshake.toFixed(2),
        cpuCell(a),
        cpuCell(l),
      ]);
    }
    const best = cases
      .filter((c) => c.key === key && c.mode === 'async')
      .sort((x, y) => y.trial.handshakesPerSecond - x.trial.handshakesPerSecond)[0];
    const bestBlocking = Math.max(
      ...cases
        .filter((c) => c.key === key && c.mode === 'blocking')
        .map((c) => c.trial.handshakesPerSecond),
    );
    const bestLocal = Math.max(
      ...cases
        .filter((c) => c.key === key && c.mode === 'local')
        .map((c) => c.trial.handshakesPerSecond),
    );
    if (best) {
      const t = best.trial;
      const c = t.cpuPerHandshakeUs;
      const hostCpu = c.server + c.agent + c.emulator + c.loadGenerator;
      const goal = TARGETS[key];
      const rateNow = t.handshakesPerSecond;
      const goals = [
        goal.minRate > 0 ? `≥ ${formatRate(goal.minRate)}` : '',
        `≥ ${formatRatio(goal.vsBlocking)} blocking`,
        goal.vsLocal > 0 ? `≥ ${formatRatio(goal.vsLocal)} the local key` : '',
      ].filter((g) => g !== '');
      targets.push({
        name: `async HAProxy, 1 thread, HSM ${LATENCY_MS} ms, ${label}`,
        goal: goals.join(', '),
        value: `${formatRate(rateNow)} at ${best.clients} clients: ${formatRatio(rateNow / bestBlocking)} blocking (${formatRate(bestBlocking)}), ${formatRatio(rateNow / bestLocal)} the local key (${formatRate(bestLocal)})`,
        met:
          rateNow >= goal.minRate &&
          rateNow >= goal.vsBlocking * bestBlocking &&
          rateNow >= goal.vsLocal * bestLocal,
      });
      if (key === 'ec256')
        targets.push({
          name: `agent CPU per async handshake, ${label} (at the best async rate)`,
          goal: `≤ ${formatUs(TARGET_AGENT_CPU_PER_HANDSHAKE_US)}`,
          value: formatUs(c.agent),
          met: c.agent <= TARGET_AGENT_CPU_PER_HANDSHAKE_US,
        });
      findings.push(
        `${label}: blocking HAProxy peaks at ${formatRate(bestBlocking)} (bound 1 / ${LATENCY_MS} ms = ${formatRate(bound)}), async HAProxy at ${formatRate(t.handshakesPerSecond)} with ${best.clients} clients (${formatRatio(t.handshakesPerSecond / bestBlocking)} blocking), the local key at ${formatRate(bestLocal)}. At that rate each handshake cost ${formatUs(c.server)} of HAProxy's one thread, ${formatUs(c.agent)} of the agent, ${formatUs(c.emulator)} of the emulator and ${formatUs(c.loadGenerator)} of the load generator: ${formatUs(hostCpu)} of CPU on a 2-core machine, i.e. at most ${formatRate(2e6 / hostCpu)} with every core busy; ${t.handshakesPerSecond * hostCpu > 1.6e6 ? 'the cores are the limit' : 'the cores are not all busy'}, and the largest share is the ${c.agent >= Math.max(c.server, c.emulator, c.loadGenerator) ? 'agent (Node: the socket request, the HTTPS request to the HSM and its JSON)' : c.emulator >= Math.max(c.server, c.loadGenerator) ? 'emulator (the HSM’s own signature, which a real HSM does on its hardware)' : c.server >= c.loadGenerator ? 'HAProxy thread itself (TLS: ECDHE, record layer, the provider)' : 'load generator'}.`,
      );
    }
    charts.push({
      file: `async-${key}.svg`,
      title: `Full TLS 1.3 handshakes/s, ${label}, HAProxy nbthread 1, HSM latency ${LATENCY_MS} ms`,
      unit: 'handshakes/s',
      groups: ctx.profile.asyncClients.map((clients) => ({
        label: `${clients} client${clients === 1 ? '' : 's'}`,
        bars: MODES.map((m) => ({
          label:
            m === 'blocking'
              ? 'HSM key, blocking'
              : m === 'async'
                ? 'HSM key, ssl-mode-async'
                : 'local key file',
          value: Math.round(rate(key, m, clients)?.handshakesPerSecond ?? Number.NaN),
        })),
      })),
      reference: { value: bound, label: `blocking bound 1 / latency = ${bound}/s` },
    });
  }
  findings.push(
    `The emulator's latency is the whole service time of a request (\`--latency-ms\`, docs/emulator.md): an RSA 3072 sign sent straight to it took ${formatUs(hsmRoundTripUs)} (p50), so the blocking bound is exactly 1 / ${LATENCY_MS} ms.`,
  );
  const { freshAgentCpuUs, freshWallUs, reusedAgentCpuUs, reusedWallUs } = conn;
  if (
    freshAgentCpuUs !== undefined &&
    freshWallUs !== undefined &&
    reusedAgentCpuUs !== undefined &&
    reusedWallUs !== undefined
  ) {
    findings.push(
      `One agent connection per operation in flight (docs/provider.md, "Async mode"): a SIGN on a new connection (connect, sign, close) cost the agent ${formatUs(freshAgentCpuUs)} of CPU and ${formatUs(freshWallUs)} of wall time, against ${formatUs(reusedAgentCpuUs)} and ${formatUs(reusedWallUs)} on a reused connection: ${formatUs(freshAgentCpuUs - reusedAgentCpuUs)} of agent CPU per connection. After a call from an async job the provider keeps up to 256 idle connections per process (8 after a blocking call), so an async server's handshakes pay it only while the pool fills.`,
    );
  }

  return {
    id: 'async',
    title: '8. Async HAProxy (ssl-mode-async) and nginx workers',
    method: `Emulator latency ${LATENCY_MS} ms per request (the whole service time). Two HAProxy 2.6 processes with \`nbthread 1\` (bench/lib/haproxy.ts): one without and one with \`ssl-mode-async\`, the second also serving the same keys from local PEM files; certificates and key references in one PEM bundle each. \`akv-tls-load\` makes full TLS 1.3 handshakes (no tickets, no session cache) from ${ctx.profile.asyncClients.join(', ')} client threads for ${ctx.profile.asyncLoadMs / 1000} s per case, one trial each. CPU per handshake is read from /proc for HAProxy, the agent and the emulator, from getrusage for the load generator (all on the same 2 cores). Then nginx with the EC key at the same latency, ${ctx.profile.nginxWorkerCounts.join(', ')} workers, ${ctx.profile.asyncClients[ctx.profile.asyncClients.length - 1]} clients; with ${ctx.profile.nginxWorkerCounts[0]} workers also with resumption (TLS 1.2, nginx's session cache and tickets, each client thread offering the session of its previous connection). Last, ${ctx.profile.quick ? 100 : 400} SIGNs to the agent at no latency on one connection and on a new connection each.`,
    findings,
    tables: [
      {
        title: 'HAProxy nbthread 1: handshakes per second against clients (HSM 10 ms)',
        columns: [
          'key',
          'clients',
          'blocking',
          'ssl-mode-async',
          'local key',
          'async / blocking',
          'async p50',
          'HSM signs/handshake',
          'CPU/handshake async: HAProxy / agent / emulator / client',
          'CPU/handshake local: HAProxy / agent / emulator / client',
        ],
        rows,
      },
      {
        title:
          'nginx (blocking) against worker_processes, and with session resumption (EC P-256, HSM 10 ms)',
        columns: [
          'workers',
          'resumption',
          'handshakes/s',
          'resumed',
          'bound W / latency',
          'p50',
          'HSM signs/handshake',
          'CPU/handshake: nginx / agent / emulator / client',
        ],
        rows: nginxRows,
      },
    ],
    charts,
    targets,
    data: { latencyMs: LATENCY_MS, hsmRoundTripUs, cases, nginx: nginxData, connectionCost: conn },
  };
}
