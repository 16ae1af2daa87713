/**
 * A small Prometheus registry (text exposition format 0.0.4) and its HTTP endpoint. The agent has
 * a handful of metrics, so a dependency would be more code to trust than these hundred lines.
 */
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { AkvError } from '../errors.js';

type Labels = Record<string, string>;

function labelKey(labels: Labels): string {
  const names = Object.keys(labels).sort();
  if (names.length === 0) return '';
  const escape = (v: string): string =>
    v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
  return `{${names.map((n) => `${n}="${escape(labels[n]!)}"`).join(',')}}`;
}

function withLabel(key: string, name: string, value: string): string {
  const extra = `${name}="${value}"`;
  return key === '' ? `{${extra}}` : `${key.slice(0, -1)},${extra}}`;
}

export class Counter {
  private readonly values = new Map<string, number>();
  constructor(
    readonly name: string,
    readonly help: string,
  ) {}
  inc(labels: Labels = {}, by = 1): void {
    const k = labelKey(labels);
    this.values.set(k, (this.values.get(k) ?? 0) + by);
  }
  get(labels: Labels = {}): number {
    return this.values.get(labelKey(labels)) ?? 0;
  }
  render(): string[] {
    const out = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} counter`];
    if (this.values.size === 0) out.push(`${this.name} 0`);
    for (const [k, v] of this.values) out.push(`${this.name}${k} ${v}`);
    return out;
  }
}

export class Gauge {
  private value = 0;
  constructor(
    readonly name: string,
    readonly help: string,
  ) {}
  inc(): void {
    this.value++;
  }
  dec(): void {
    this.value--;
  }
  get(): number {
    return this.value;
  }
  render(): string[] {
    return [
      `# HELP ${this.name} ${this.help}`,
      `# TYPE ${this.name} gauge`,
      `${this.name} ${this.value}`,
    ];
  }
}

export class Histogram {
  private readonly series = new Map<string, { counts: number[]; sum: number; count: number }>();
  constructor(
    readonly name: string,
    readonly help: string,
    readonly buckets: readonly number[],
  ) {}
  observe(labels: Labels, value: number): void {
    const k = labelKey(labels);
    let s = this.series.get(k);
    if (!s) {
      s = { counts: this.buckets.map(() => 0), sum: 0, count: 0 };
      this.series.set(k, s);
    }
    this.buckets.forEach((b, i) => {
      if (value <= b) s.counts[i]!++;
    });
    s.sum += value;
    s.count++;
  }
  render(): string[] {
    const out = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} histogram`];
    for (const [k, s] of this.series) {
      this.buckets.forEach((b, i) =>
        out.push(`${this.name}_bucket${withLabel(k, 'le', String(b))} ${s.counts[i]}`),
      );
      out.push(`${this.name}_bucket${withLabel(k, 'le', '+Inf')} ${s.count}`);
      out.push(`${this.name}_sum${k} ${s.sum}`);
      out.push(`${this.name}_count${k} ${s.count}`);
    }
    return out;
  }
}

export class AgentMetrics {
  readonly requests = new Counter(
    'akv_agent_requests_total',
    'Requests answered, by operation and status.',
  );
  readonly errors = new Counter(
    'akv_agent_errors_total',
    'Requests answered with a non-OK status, by operation and status.',
  );
  readonly latency = new Histogram(
    'akv_agent_request_duration_seconds',
    'Time from receiving a request to sending its response, by operation.',
    [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
  );
  readonly protocolErrors = new Counter(
    'akv_agent_protocol_errors_total',
    'Connections closed because of a malformed frame, by reason.',
  );
  readonly tokenRefreshes = new Counter(
    'akv_agent_token_refreshes_total',
    'Times a credential was asked for a new access token.',
  );
  readonly hsmRetries = new Counter(
    'akv_agent_hsm_retries_total',
    'HSM calls retried, by failure kind.',
  );
  readonly keyCache = new Counter(
    'akv_agent_key_cache_total',
    'Key description lookups, by result (hit or miss).',
  );
  readonly connections = new Gauge('akv_agent_connections', 'Client connections currently open.');
  readonly configReloads = new Counter(
    'akv_agent_config_reloads_total',
    'SIGHUP reloads, by result.',
  );

  render(): string {
    const all = [
      this.requests,
      this.errors,
      this.latency,
      this.protocolErrors,
      this.tokenRefreshes,
      this.hsmRetries,
      this.keyCache,
      this.connections,
      this.configReloads,
    ];
    return all.flatMap((m) => m.render()).join('\n') + '\n';
  }
}

/** The agent process's registry; the Azure layer reports token refreshes and retries into it. */
export const metrics = new AgentMetrics();

/** Splits "host:port" / "[v6]:port". */
export function parseListen(listen: string): { host: string; port: number } {
  const m = /^\[([0-9a-fA-F:]+)\]:(\d{1,5})$/.exec(listen) ?? /^([^\s:]+):(\d{1,5})$/.exec(listen);
  const port = m ? Number(m[2]) : NaN;
  if (!m || port > 65535) {
    throw new AkvError(
      'BAD_REQUEST',
      `metricsListen "${listen}" is not HOST:PORT`,
      'use e.g. "127.0.0.1:9464"',
    );
  }
  return { host: m[1]!, port };
}

/** Serves GET /metrics; resolves with the server and the bound address once listening. */
export async function startMetricsServer(
  listen: string,
  registry: AgentMetrics,
): Promise<{ server: Server; url: string }> {
  const { host, port } = parseListen(listen);
  const server = createServer((req, res) => {
    if (req.method === 'GET' && (req.url === '/metrics' || req.url === '/')) {
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' });
      res.end(registry.render());
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('not found: the agent serves GET /metrics\n');
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(
        new AkvError(
          'UNAVAILABLE',
          `cannot serve metrics on ${listen}: ${err.message}`,
          'choose a free loopback port for metricsListen',
        ),
      ),
    );
    server.listen(port, host, () => resolve());
  });
  const addr = server.address() as AddressInfo;
  const shownHost = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  return { server, url: `http://${shownHost}:${addr.port}/metrics` };
}
