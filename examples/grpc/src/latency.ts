/**
 * Latency of sequential unary calls on one channel (what an application with a long-lived
 * channel sees): a warm-up first, so connection set-up and TLS handshakes are not counted.
 */
import type * as grpc from '@grpc/grpc-js';
import { callHello, connectGreeter, toFailure, type CallFailure } from './calls.js';

export interface LatencyStats {
  calls: number;
  meanMs: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  minMs: number;
  maxMs: number;
}

export interface LatencyRequest {
  socket: string;
  calls: number;
  warmup: number;
  deadlineMs: number;
  metadata: grpc.Metadata;
}

/** The value below which `fraction` of the sorted samples fall (nearest rank). */
function percentile(sorted: number[], fraction: number): number {
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(fraction * sorted.length) - 1));
  return sorted[rank] ?? Number.NaN;
}

export function summarise(samplesMs: number[]): LatencyStats {
  const sorted = [...samplesMs].sort((a, b) => a - b);
  const sum = sorted.reduce((a, b) => a + b, 0);
  return {
    calls: sorted.length,
    meanMs: sum / sorted.length,
    p50Ms: percentile(sorted, 0.5),
    p90Ms: percentile(sorted, 0.9),
    p99Ms: percentile(sorted, 0.99),
    minMs: sorted[0] ?? Number.NaN,
    maxMs: sorted[sorted.length - 1] ?? Number.NaN,
  };
}

export async function measureLatency(
  req: LatencyRequest,
): Promise<{ ok: true; stats: LatencyStats } | { ok: false; failure: CallFailure }> {
  const client = connectGreeter(req.socket);
  try {
    const samples: number[] = [];
    for (let i = 0; i < req.warmup + req.calls; i++) {
      const started = process.hrtime.bigint();
      await callHello(client, 'latency', req.metadata, req.deadlineMs);
      const elapsedMs = Number(process.hrtime.bigint() - started) / 1e6;
      if (i >= req.warmup) samples.push(elapsedMs);
    }
    return { ok: true, stats: summarise(samples) };
  } catch (err) {
    const e = err as grpc.ServiceError;
    if (typeof e.code !== 'number') throw err;
    return { ok: false, failure: toFailure('SayHello', e) };
  } finally {
    client.close();
  }
}
