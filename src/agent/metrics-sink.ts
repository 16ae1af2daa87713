/**
 * What the agent's code records metrics into. With a metrics listener (config `metricsListen`) it
 * is prom-client's registry (metrics.ts); without one nobody can read a metric, so the agent
 * records into NO_METRICS and never loads prom-client (its import and its default collectors, an
 * event-loop monitor among them, cost more than the rest of the agent's start: docs/performance.md,
 * "Cold start"). The listener cannot be added by a reload (SIGHUP), so the choice made at start
 * holds for the life of the process.
 */

type Labels = Record<string, string>;

export interface CounterSink {
  inc(): void;
  inc(labels: Labels): void;
}
export interface GaugeSink {
  set(value: number): void;
  inc(): void;
  dec(): void;
}
export interface HistogramSink {
  observe(labels: Labels, value: number): void;
}

export interface MetricsSink {
  requests: CounterSink;
  errors: CounterSink;
  latency: HistogramSink;
  protocolErrors: CounterSink;
  tokenRefreshes: CounterSink;
  hsmRetries: CounterSink;
  keyCache: CounterSink;
  connections: GaugeSink;
  configReloads: CounterSink;
  connectionsClosed: CounterSink;
  hsmInFlight: GaugeSink;
  hsmQueued: GaugeSink;
  hsmRetryBudgetSpent: CounterSink;
}

const noCounter: CounterSink = { inc: () => undefined };
const noGauge: GaugeSink = { set: () => undefined, inc: () => undefined, dec: () => undefined };

/** Records nothing: the agent has no metrics listener. */
export const NO_METRICS: MetricsSink = {
  requests: noCounter,
  errors: noCounter,
  latency: { observe: () => undefined },
  protocolErrors: noCounter,
  tokenRefreshes: noCounter,
  hsmRetries: noCounter,
  keyCache: noCounter,
  connections: noGauge,
  configReloads: noCounter,
  connectionsClosed: noCounter,
  hsmInFlight: noGauge,
  hsmQueued: noGauge,
  hsmRetryBudgetSpent: noCounter,
};
