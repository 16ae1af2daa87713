/**
 * Issue 24: restarts nobody notices, measured. nginx (4 workers, HSM key through akv_provider)
 * serves full TLS handshakes to 8 clients while its agent, socket-activated (the socket kept by a
 * holder process across agents and passed with LISTEN_FDS, as akv-agent.socket does), goes
 * through three events: SIGTERM with a 1 s gap before the next agent, SIGTERM straight into a
 * new agent (a restart), and kill -9 straight into a new agent. The load runs as back-to-back
 * windows of akv-tls-load, so handshakes per second and failures come out as a time series.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { holdSocket } from '../../test/helpers/socket-holder.js';
import { certificateFor, freePort, Nginx } from '../lib/nginx.js';
import { run, runChecked, sleep } from '../lib/proc.js';
import { AKV_BIN, PROVIDER_DIR, REPO_ROOT, cleanEnv, type Agent } from '../lib/services.js';
import { formatRate, type BenchContext, type ScenarioResult } from '../lib/result.js';

const CLIENTS = 8;
const WORKERS = 4;
const HSM_LATENCY_MS = 100;

const TLS_LOAD = join(REPO_ROOT, 'bench', 'driver', 'build', 'akv-tls-load');

/** One window of akv-tls-load; failed handshakes are the measurement here, not an error. */
async function tlsWindow(
  port: number,
  ms: number,
): Promise<{ handshakes: number; errors: number; elapsed_us: number }> {
  const r = await run(TLS_LOAD, [
    '--connect',
    `127.0.0.1:${port}`,
    '--threads',
    String(CLIENTS),
    '--duration-ms',
    String(ms),
  ]);
  try {
    return JSON.parse(r.stdout.trim().split('\n').pop() ?? '') as {
      handshakes: number;
      errors: number;
      elapsed_us: number;
    };
  } catch {
    throw new Error(`akv-tls-load printed no result: ${r.stderr.trim()}`);
  }
}

interface Window {
  /** Seconds from the start of the load to the end of this window. */
  atS: number;
  handshakes: number;
  errors: number;
  perSecond: number;
  /** The event that happened during this window, if any. */
  event?: string;
}

export async function restart(ctx: BenchContext): Promise<ScenarioResult> {
  const windowMs = ctx.profile.quick ? 500 : 1000;
  const phaseMs = ctx.profile.quick ? 3000 : 6000;
  const home = join(ctx.dir, 'restart');
  mkdirSync(home, { recursive: true, mode: 0o700 });
  const config = join(home, 'akv.json');
  writeFileSync(
    config,
    JSON.stringify({
      socket: join(home, 'unused', 'agent.sock'),
      vaults: {
        [ctx.hsmName]: {
          endpoint: ctx.emulator.url,
          caFile: ctx.emulator.caFile,
          disableChallengeResourceVerification: true,
        },
      },
      credential: { type: 'static', token: 'bench-token' },
      log: { level: 'info', file: join(home, 'agent.log') },
    }),
  );
  await ctx.emulator.setLatency(HSM_LATENCY_MS);
  const holder = await holdSocket(
    join(home, 'agent.sock'),
    [AKV_BIN, 'agent', '--config', config],
    cleanEnv(),
  );
  const windows: Window[] = [];
  let nginx: Nginx | undefined;
  try {
    let agentPid = await holder.startAgent();
    const key = ctx.keys.ec256;
    const keyFile = join(home, 'ec256.keyref.pem');
    await runChecked(AKV_BIN, ['keyref', key.uri, '--out', keyFile], {
      env: cleanEnv({ OPENSSL_MODULES: PROVIDER_DIR, AKV_AGENT_SOCKET: holder.path }),
    });
    const port = await freePort();
    // Nginx reads only the socket path from the agent it is given.
    nginx = await Nginx.start(
      home,
      { socket: holder.path } as unknown as Agent,
      WORKERS,
      [{ label: 'hsm ec256', port, certFile: await certificateFor(ctx.dir, key), keyFile }],
      'nginx-restart',
    );

    const started = Date.now();
    let pending: string | undefined;
    let loading = true;
    const load = (async () => {
      while (loading) {
        const r = await tlsWindow(port, windowMs);
        const atS = (Date.now() - started) / 1000;
        windows.push({
          atS,
          handshakes: r.handshakes,
          errors: r.errors,
          perSecond: r.handshakes / (r.elapsed_us / 1e6),
          ...(pending ? { event: pending } : {}),
        });
        pending = undefined;
      }
    })();
    const event = (name: string): void => {
      ctx.log(`restart: ${name}`);
      pending = pending ? `${pending}; ${name}` : name;
    };

    await sleep(phaseMs);
    event('SIGTERM, 1 s gap, new agent');
    process.kill(agentPid, 'SIGTERM');
    await holder.exited(agentPid);
    await sleep(1000);
    agentPid = await holder.startAgent();

    await sleep(phaseMs);
    event('SIGTERM, new agent at once');
    process.kill(agentPid, 'SIGTERM');
    await holder.exited(agentPid);
    agentPid = await holder.startAgent();

    await sleep(phaseMs);
    event('kill -9, new agent at once');
    process.kill(agentPid, 'SIGKILL');
    await holder.exited(agentPid);
    agentPid = await holder.startAgent();

    await sleep(phaseMs);
    loading = false;
    await load;
    // nginx -s stop parses the config, so it loads the key through the agent: stop it first.
    await nginx.stop();
    nginx = undefined;
    process.kill(agentPid, 'SIGTERM');
    await holder.exited(agentPid);
  } finally {
    // On a failure the agent may be gone: signal the master (no config parse, no key load).
    if (nginx) {
      try {
        process.kill(nginx.masterPid(), 'SIGTERM');
      } catch {
        /* not running */
      }
    }
    await holder.stop();
  }

  const total = windows.reduce((a, w) => a + w.handshakes, 0);
  const failed = windows.reduce((a, w) => a + w.errors, 0);
  const steady = windows.filter((w) => !w.event).map((w) => w.perSecond);
  const median = steady.sort((a, b) => a - b)[Math.floor(steady.length / 2)] ?? 0;
  const eventRows = windows.filter((w) => w.event);
  return {
    id: 'restart',
    title: '10. Restarts',
    method: `nginx (${WORKERS} workers, EC P-256 HSM key through akv_provider) serves full TLS handshakes to ${CLIENTS} clients (\`akv-tls-load\` in back-to-back windows of ${windowMs} ms), HSM latency ${HSM_LATENCY_MS} ms. The agent is socket-activated: a holder keeps the socket and passes it to each agent with LISTEN_FDS, as akv-agent.socket does. Events ${phaseMs / 1000} s apart: SIGTERM with 1 s before the next agent starts, SIGTERM straight into a new agent, kill -9 straight into a new agent.`,
    findings: [
      `${total.toLocaleString('en-US')} handshakes, ${failed} failed across the three events (median ${formatRate(median)} handshakes in the windows without an event).`,
      ...eventRows.map(
        (w) =>
          `${w.event}: ${formatRate(w.perSecond)} handshakes in the window it fell in, ${w.errors} failed.`,
      ),
    ],
    tables: [
      {
        title: 'Handshakes per window',
        columns: ['t (s)', 'handshakes/s', 'failed', 'event'],
        rows: windows.map((w) => [
          w.atS.toFixed(1),
          formatRate(w.perSecond),
          w.errors,
          w.event ?? '',
        ]),
      },
    ],
    charts: [
      {
        file: 'restart.svg',
        title: 'Handshakes per second and failures over time across agent restarts',
        unit: 'per window',
        groups: windows.map((w) => ({
          label: `${w.atS.toFixed(1)} s${w.event ? ` (${w.event})` : ''}`,
          bars: [
            { label: 'handshakes/s', value: Math.round(w.perSecond) },
            { label: 'failed', value: w.errors },
          ],
        })),
      },
    ],
    targets: [
      {
        name: 'failed handshakes across restarts',
        goal: '0',
        value: String(failed),
        met: failed === 0,
      },
    ],
    data: {
      clients: CLIENTS,
      workers: WORKERS,
      latencyMs: HSM_LATENCY_MS,
      windowMs,
      phaseMs,
      windows,
    },
  };
}
