/**
 * One TLS load trial against a bench TLS server (nginx or HAProxy): akv-tls-load makes full
 * handshakes for a while (or, with `resume`, offers each thread's previous session), and around it
 * we read what every process spent (the server's processes, agent, emulator, the load generator)
 * and how many signatures the emulator served, so each figure comes with its own cross-check.
 */
import { join } from 'node:path';
import { runTlsLoad } from './drivers.js';
import { cpuSeconds, processTree } from './proc.js';
import type { BenchContext, BenchNginx } from './result.js';

/** The processes of nginx (master and workers), whose CPU a trial counts as the server's. */
export function nginxPids(bn: BenchNginx): () => number[] {
  return () => [bn.nginx.masterPid(), ...bn.nginx.workerPids()];
}
import { distribution, type Distribution } from './stats.js';

export interface TlsTrial {
  handshakesPerSecond: number;
  handshakes: number;
  errors: number;
  /** CPU seconds per handshake, per process group (`server`: nginx's master and workers, or HAProxy). */
  cpuPerHandshakeUs: { server: number; agent: number; emulator: number; loadGenerator: number };
  /** Share of handshakes the client saw resumed (0 unless `resume`). */
  resumedShare: number;
  /** Share of the machine's CPU the load generator used (1.0 = one whole core). */
  loadGeneratorCores: number;
  /** HSM signatures the emulator served per handshake (1 for HSM keys, 0 for local keys). */
  hsmSignsPerHandshake: number;
  latency: Distribution;
  protocol: string;
  cipher: string;
  serverSigalg: string;
}

export async function tlsTrial(
  ctx: BenchContext,
  serverPids: () => number[],
  port: number,
  clients: number,
  durationMs: number,
  options: { resume?: boolean } = {},
): Promise<TlsTrial> {
  const serverProcs = serverPids();
  const agentPids = processTree(ctx.agent.pid);
  const emulatorPids = processTree(ctx.emulator.pid);
  const statsBefore = await ctx.emulator.stats();
  const [n0, a0, e0] = await Promise.all([
    cpuSeconds(serverProcs),
    cpuSeconds(agentPids),
    cpuSeconds(emulatorPids),
  ]);
  const r = await runTlsLoad({
    port,
    threads: clients,
    durationMs,
    latencyFile: join(ctx.dir, 'tls-latencies.txt'),
    resume: options.resume,
  });
  const [n1, a1, e1] = await Promise.all([
    cpuSeconds(serverProcs),
    cpuSeconds(agentPids),
    cpuSeconds(emulatorPids),
  ]);
  const statsAfter = await ctx.emulator.stats();
  const signs = (statsAfter.requests.sign ?? 0) - (statsBefore.requests.sign ?? 0);
  const seconds = r.elapsed_us / 1e6;
  const hs = Math.max(1, r.handshakes);
  const clientCpu = (r.cpu_user_us + r.cpu_sys_us) / 1e6;
  return {
    handshakesPerSecond: r.handshakes / seconds,
    handshakes: r.handshakes,
    errors: r.errors,
    cpuPerHandshakeUs: {
      server: ((n1 - n0) / hs) * 1e6,
      agent: ((a1 - a0) / hs) * 1e6,
      emulator: ((e1 - e0) / hs) * 1e6,
      loadGenerator: (clientCpu / hs) * 1e6,
    },
    loadGeneratorCores: clientCpu / seconds,
    resumedShare: r.resumed / hs,
    hsmSignsPerHandshake: signs / hs,
    latency: distribution(r.latenciesUs),
    protocol: r.protocol,
    cipher: r.cipher,
    serverSigalg: r.server_sigalg,
  };
}
