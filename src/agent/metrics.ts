/**
 * The agent's Prometheus metrics, kept by prom-client (the standard Node client): akv's own
 * counters, histogram and gauges (names in docs/agent.md), `akv_agent_build_info`, and
 * prom-client's default process and event-loop metrics. Each AgentMetrics has its own registry, so
 * tests can make several; the agent process makes one, and only when it has a metrics listener
 * (metrics-sink.ts).
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { akvVersion } from '../version.js';
import type { MetricsSink } from './metrics-sink.js';

function counter<L extends string>(
  registry: Registry,
  name: string,
  help: string,
  labelNames: readonly L[] = [],
): Counter<L> {
  return new Counter({ name, help, labelNames, registers: [registry] });
}

export class AgentMetrics implements MetricsSink {
  readonly registry = new Registry();

  readonly requests = counter(
    this.registry,
    'akv_agent_requests_total',
    'Requests answered, by operation and status.',
    ['op', 'status'],
  );
  readonly errors = counter(
    this.registry,
    'akv_agent_errors_total',
    'Requests answered with a non-OK status, by operation and status.',
    ['op', 'status'],
  );
  readonly latency = new Histogram({
    name: 'akv_agent_request_duration_seconds',
    help: 'Time from receiving a request to sending its response, by operation.',
    labelNames: ['op'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });
  readonly protocolErrors = counter(
    this.registry,
    'akv_agent_protocol_errors_total',
    'Connections closed because of a malformed frame, by reason.',
    ['reason'],
  );
  readonly tokenRefreshes = counter(
    this.registry,
    'akv_agent_token_refreshes_total',
    'Times a credential was asked for a new access token.',
  );
  readonly hsmRetries = counter(
    this.registry,
    'akv_agent_hsm_retries_total',
    'HSM calls retried, by failure kind.',
    ['kind'],
  );
  readonly keyCache = counter(
    this.registry,
    'akv_agent_key_cache_total',
    'Key description lookups, by result (hit or miss).',
    ['result'],
  );
  readonly connections = new Gauge({
    name: 'akv_agent_connections',
    help: 'Client connections currently open.',
    registers: [this.registry],
  });
  readonly configReloads = counter(
    this.registry,
    'akv_agent_config_reloads_total',
    'SIGHUP reloads, by result.',
    ['result'],
  );

  // Limits (docs/agent.md, "Limits"): what the agent turned away or held back under load.
  readonly connectionsClosed = counter(
    this.registry,
    'akv_agent_connections_closed_total',
    'Client connections the agent closed or refused, by reason (max-clients, max-clients-busy, idle-timeout, accept-failed).',
    ['reason'],
  );
  readonly hsmInFlight = new Gauge({
    name: 'akv_agent_hsm_in_flight',
    help: 'HSM requests in flight now (at most maxInFlight).',
    registers: [this.registry],
  });
  readonly hsmQueued = new Gauge({
    name: 'akv_agent_hsm_queued',
    help: 'Requests waiting for one of the maxInFlight HSM slots.',
    registers: [this.registry],
  });
  readonly hsmRetryBudgetSpent = counter(
    this.registry,
    'akv_agent_hsm_retry_budget_spent_total',
    'HSM calls not retried because the retry budget of their HSM was spent, by failure kind.',
    ['kind'],
  );

  readonly buildInfo = new Gauge({
    name: 'akv_agent_build_info',
    help: 'Always 1; the labels say which akv and which Node.js run.',
    labelNames: ['version', 'node'] as const,
    registers: [this.registry],
  });

  constructor() {
    this.buildInfo.set({ version: akvVersion(), node: process.version }, 1);
    collectDefaultMetrics({ register: this.registry });
  }

  /** The Prometheus text exposition of every metric. */
  render(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
