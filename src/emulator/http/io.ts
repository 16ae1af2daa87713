/** Reading request bodies with a size limit and writing the service's JSON responses. */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { randomUUID } from 'node:crypto';
import { HsmError, badParameter } from '../errors.js';

/** Far above any real request (an RSA-4096 import is ~4 KiB) and small enough to refuse floods. */
export const MAX_BODY_BYTES = 256 * 1024;

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
    return JSON.parse(body.toString('utf8')) as unknown;
  } catch (err) {
    throw badParameter(`The request body is not valid JSON: ${(err as Error).message}`);
  }
}

export function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  const text = body === undefined ? '' : JSON.stringify(body);
  res.writeHead(status, {
    ...(text ? { 'Content-Type': 'application/json; charset=utf-8' } : {}),
    'Content-Length': Buffer.byteLength(text),
    'Cache-Control': 'no-cache',
    'x-ms-request-id': randomUUID(),
    ...headers,
  });
  res.end(text);
}

export function sendError(
  res: ServerResponse,
  err: HsmError,
  headers: Record<string, string> = {},
): void {
  sendJson(res, err.status, err.toBody(), headers);
}
