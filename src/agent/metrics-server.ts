/**
 * The agent's HTTP listener (config `metricsListen`, keep it on loopback): GET /metrics
 * (Prometheus text), GET /healthz (the process is alive and serving: 200) and GET /readyz (200
 * when a credential gives a token and at least one HSM answers, else 503; the JSON body says what
 * was checked). Nothing else is served. /readyz's detail (HSM URLs, credential source, token
 * expiry) goes to loopback clients only, unless the config's metricsDetail is "everyone": a
 * Prometheus or kubelet on another address gets `{"ready": ...}` and the same status code.
 */
import { createServer } from 'node:http';
import type { Server, ServerResponse } from 'node:http';
import { AkvError } from '../errors.js';
import type { AccessChecker } from './diagnose.js';
import type { AgentMetrics } from './metrics.js';

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

function send(res: ServerResponse, status: number, type: string, body: string): void {
  res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
  res.end(body);
}

const JSON_TYPE = 'application/json; charset=utf-8';

/** Serves the three endpoints; resolves with the server and the /metrics URL once listening. */
/** 127.0.0.0/8, ::1 and IPv4-mapped loopback. */
export function isLoopback(address: string | undefined): boolean {
  if (address === undefined) return false;
  const v4 = address.startsWith('::ffff:') ? address.slice(7) : address;
  return v4.startsWith('127.') || address === '::1';
}

export async function startMetricsServer(
  listen: string,
  registry: AgentMetrics,
  access: AccessChecker,
  detail: 'loopback' | 'everyone' = 'loopback',
): Promise<{ server: Server; url: string }> {
  const { host, port } = parseListen(listen);
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      send(res, 405, 'text/plain', 'only GET is served\n');
      return;
    }
    if (path === '/metrics' || path === '/') {
      registry.render().then(
        (text) => send(res, 200, registry.contentType, text),
        (err: Error) => send(res, 500, 'text/plain', `cannot collect metrics: ${err.message}\n`),
      );
    } else if (path === '/healthz') {
      send(res, 200, JSON_TYPE, `${JSON.stringify({ status: 'alive' })}\n`);
    } else if (path === '/readyz') {
      const full = detail === 'everyone' || isLoopback(req.socket.remoteAddress);
      access.check().then(
        (a) =>
          send(
            res,
            a.ready ? 200 : 503,
            JSON_TYPE,
            `${JSON.stringify(full ? a : { ready: a.ready, detail: 'on loopback only (metricsDetail)' })}\n`,
          ),
        (err: Error) =>
          send(
            res,
            503,
            JSON_TYPE,
            `${JSON.stringify(full ? { ready: false, reason: err.message } : { ready: false })}\n`,
          ),
      );
    } else {
      send(res, 404, 'text/plain', 'not found: the agent serves GET /metrics, /healthz, /readyz\n');
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
  const addr = server.address();
  if (addr === null || typeof addr === 'string')
    throw new Error(`the metrics server on ${listen} has no TCP address`);
  const shownHost = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  return { server, url: `http://${shownHost}:${addr.port}/metrics` };
}
