/**
 * Reading request bodies with a size limit and writing the service's responses with the headers a
 * real Managed HSM sends (recorded: test/conformance/fixtures). Every answer, a 401 challenge or a
 * 204 included, carries `content-type: application/json; charset=utf-8`, an `x-ms-request-id` and
 * `x-ms-server-latency`; error messages end with `(Activity ID: <x-ms-request-id>)` as real ones do.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { randomUUID } from 'node:crypto';
import { HsmError, badParameter } from '../errors.js';
import { errorMessage } from '../../errors.js';

/** Far above any real request (an RSA-4096 import is ~4 KiB) and small enough to refuse floods. */
export const MAX_BODY_BYTES = 256 * 1024;

/** Region name in `x-ms-keyvault-region`: the emulator's stand-in for an Azure region. */
export const EMULATOR_REGION = 'local';

/** When each request arrived (performance.now()), for `x-ms-server-latency`. */
const arrivals = new WeakMap<ServerResponse, number>();

export function markArrival(res: ServerResponse): void {
  arrivals.set(res, performance.now());
}

/**
 * Reads the whole body. Past the limit the rest is read and dropped (so the client sees a clean
 * 413 rather than a reset) and RequestEntityTooLarge is thrown.
 */
export function readBody(req: IncomingMessage, limit = MAX_BODY_BYTES): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= limit) chunks.push(chunk);
    });
    req.on('end', () => {
      if (size > limit) {
        reject(
          new HsmError(
            413,
            'RequestEntityTooLarge',
            `The request body is ${size} bytes; the limit is ${limit}`,
          ),
        );
      } else {
        resolve(Buffer.concat(chunks));
      }
    });
    req.on('error', reject);
  });
}

/** Parses a JSON request body; an empty body is `undefined`. */
export function parseJson(req: IncomingMessage, body: Buffer): unknown {
  if (body.length === 0) return undefined;
  const type = req.headers['content-type'];
  if (type !== undefined && !/^application\/json\s*(;|$)/i.test(type)) {
    throw badParameter(`Content-Type must be application/json, not ${type}`);
  }
  try {
    const value: unknown = JSON.parse(body.toString('utf8'));
    return value;
  } catch (err) {
    throw badParameter(`The request body is not valid JSON: ${errorMessage(err)}`);
  }
}

/** The headers every real answer has; `network` is the x-ms-keyvault-network-info value. */
function serviceHeaders(res: ServerResponse, requestId: string): Record<string, string> {
  const arrived = arrivals.get(res);
  const latency = arrived === undefined ? 0 : Math.max(0, Math.round(performance.now() - arrived));
  const remote = res.req?.socket?.remoteAddress ?? '127.0.0.1';
  const family = remote.includes(':') && !remote.startsWith('::ffff:') ? 'Ipv6' : 'Ipv4';
  return {
    'Cache-Control': 'no-cache',
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Security-Policy': "default-src 'self'",
    'Strict-Transport-Security': 'max-age=31536000; includeSubDomains',
    'X-Content-Type-Options': 'nosniff',
    'X-Frame-Options': 'SAMEORIGIN',
    'x-ms-keyvault-network-info': `conn_type=${family};addr=${remote.replace(/^::ffff:/, '')};act_addr_fam=${family};`,
    'x-ms-keyvault-region': EMULATOR_REGION,
    'x-ms-request-id': requestId,
    'x-ms-server-latency': String(latency),
  };
}

export function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
  requestId: string = randomUUID(),
): void {
  const text = body === undefined ? '' : JSON.stringify(body);
  res.writeHead(status, {
    ...serviceHeaders(res, requestId),
    'Content-Length': Buffer.byteLength(text),
    ...headers,
  });
  res.end(text);
}

export function sendError(
  res: ServerResponse,
  err: HsmError,
  headers: Record<string, string> = {},
): void {
  const requestId = randomUUID();
  sendJson(res, err.status, err.toBody(requestId), headers, requestId);
}
