/**
 * The HTTPS client of the hot path (key-operations.ts): undici's Pool, one request at a time on
 * each keep-alive TLS connection to one HSM origin, at most maxConnections of them. undici parses
 * the answers (llhttp) and bounds them: headers and trailers (maxHeaderSize), the body
 * (maxResponseSize), chunk sizes; it times out a TCP or TLS handshake that does not finish
 * (connectTimeout) so a silent peer cannot hold a connection slot, and it stops reusing an idle
 * connection keepAliveTimeoutThreshold before the server's Keep-Alive limit. A hand-written client
 * was cheaper by some tens of µs per request but a hostile peer found its gaps at once
 * (docs/performance.md, "The hot path's HTTP client").
 *
 * One thing is added here: a request that fails on a connection opened before the request started,
 * before any answer, with a reset or a close (the server dropped an idle keep-alive connection as
 * the request went out), is sent again at once, once, without going through the caller's backoff
 * and retry budget: nothing reached the HSM's key operation, and the failure says nothing about
 * the HSM's health. Only the hot path's operations come here and all are safe to repeat (sign,
 * decrypt, wrapkey, unwrapkey).
 */
import type { SecureContext } from 'node:tls';
import { Pool, buildConnector, type Dispatcher } from 'undici';
import { abortError, type Deadline } from './abort.js';
import { errnoCode } from '../errors.js';

export const MAX_HEAD_BYTES = 64 * 1024;
export const MAX_BODY_BYTES = 1024 * 1024;
/** How long an idle connection is kept, unless the server's Keep-Alive says less. */
export const KEEP_ALIVE_MS = 30_000;
/** An idle connection is closed this long before the server's Keep-Alive timeout. */
export const KEEP_ALIVE_MARGIN_MS = 1_000;
/** Default bound on a TCP + TLS handshake with the HSM. */
export const CONNECT_TIMEOUT_MS = 5_000;

export interface HsmHttpResponse {
  status: number;
  /** Header names in lower case. */
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

/** A failure of the exchange itself; `code` is what failures.ts classifies (ECONNRESET ...). */
export class HsmHttpProtocolError extends Error {
  override name = 'HsmHttpProtocolError';
  constructor(
    message: string,
    readonly code: string,
  ) {
    super(message);
  }
}

export interface HsmHttpOptions {
  /** Trust for the HSM's certificate; absent: the system's (and NODE_EXTRA_CA_CERTS). */
  secureContext?: SecureContext;
  /** At most this many connections (the agent's maxInFlight). */
  maxConnections: number;
  /** Bound on a TCP + TLS handshake (CONNECT_TIMEOUT_MS); a request's deadline still applies. */
  connectTimeoutMs?: number;
}

/** Codes of a connection that broke before answering (the candidates for the one replay). */
const BROKEN_CONNECTION = new Set(['UND_ERR_SOCKET', 'ECONNRESET', 'EPIPE']);

/** undici's failures that mean the HSM's answer is not acceptable HTTP, by code. */
const MALFORMED: Record<string, string> = {
  UND_ERR_RES_EXCEEDED_MAX_SIZE: 'a body over 1 MiB',
  UND_ERR_HEADERS_OVERFLOW: 'headers or trailers over 64 KiB',
  UND_ERR_RES_CONTENT_LENGTH_MISMATCH: 'a body that does not match its Content-Length',
  UND_ERR_INFO: 'an answer that cannot be read',
};

export class HsmHttpClient {
  private readonly pool: Pool;
  private readonly origin: string;
  private readonly connectTimeoutMs: number;
  /**
   * Connections opened so far, and errors raised on a socket → that socket's number. A counter, not
   * a clock: a connection opened, used and dropped within one millisecond is still told apart.
   */
  private connectionsOpened = 0;
  private readonly socketNumber = new WeakMap<object, number>();

  constructor(origin: string, options: HsmHttpOptions) {
    this.origin = new URL(origin).origin;
    this.connectTimeoutMs = options.connectTimeoutMs ?? CONNECT_TIMEOUT_MS;
    const connectorOptions: buildConnector.BuildOptions = {
      timeout: this.connectTimeoutMs,
      ALPNProtocols: ['http/1.1'],
      ...(options.secureContext ? { secureContext: options.secureContext } : {}),
    };
    const base = buildConnector(connectorOptions);
    const connector: buildConnector.connector = (opts, callback) =>
      base(opts, (err, socket) => {
        if (socket) {
          const number = ++this.connectionsOpened;
          // Runs before undici fails the request with the same error object.
          socket.on('error', (e: unknown) => {
            if (typeof e === 'object' && e !== null) this.socketNumber.set(e, number);
          });
          callback(null, socket);
        } else callback(err ?? new Error('connect failed'), null);
      });
    this.pool = new Pool(this.origin, {
      connections: options.maxConnections,
      pipelining: 1,
      connect: connector,
      connectTimeout: this.connectTimeoutMs,
      keepAliveTimeout: KEEP_ALIVE_MS,
      keepAliveMaxTimeout: KEEP_ALIVE_MS,
      keepAliveTimeoutThreshold: KEEP_ALIVE_MARGIN_MS,
      maxHeaderSize: MAX_HEAD_BYTES,
      maxResponseSize: MAX_BODY_BYTES,
    });
  }

  /**
   * Sends `POST path` with the given headers (name, value, name, value ...) and body; resolves
   * with the answer, whatever its status. Rejects with a network error (its code), an
   * HsmHttpProtocolError, or an AbortError at the deadline (the request is then abandoned).
   */
  async post(
    path: string,
    headers: string[],
    body: string,
    deadline: Deadline,
  ): Promise<HsmHttpResponse> {
    const openedBefore = this.connectionsOpened;
    try {
      return await this.exchange(path, headers, body, deadline);
    } catch (err) {
      if (!this.staleConnection(err, openedBefore) || Date.now() >= deadline.at) throw err;
      return await this.exchange(path, headers, body, deadline);
    }
  }

  close(): void {
    void this.pool.destroy().catch(() => undefined);
  }

  /** A reset or close, before any answer, of a connection opened before the request started. */
  private staleConnection(err: unknown, openedBefore: number): boolean {
    if (typeof err !== 'object' || err === null || !unanswered.has(err)) return false;
    if (!BROKEN_CONNECTION.has(errnoCode(err) ?? '')) return false;
    const number = this.socketNumber.get(err);
    return number !== undefined && number <= openedBefore;
  }

  private exchange(
    path: string,
    headers: string[],
    body: string,
    deadline: Deadline,
  ): Promise<HsmHttpResponse> {
    const left = deadline.at - Date.now();
    if (left <= 0) return Promise.reject(abortError());
    return new Promise<HsmHttpResponse>((resolve, reject) => {
      const exchange = new Exchange(resolve, reject, left, this.connectTimeoutMs);
      this.pool.dispatch(
        {
          origin: this.origin,
          path,
          method: 'POST',
          headers,
          body,
          idempotent: true,
          // Backstops only: the deadline timer above ends the request first.
          headersTimeout: left + 1000,
          bodyTimeout: left + 1000,
        },
        exchange,
      );
    });
  }
}

/** Failures that came before any part of an answer (status line included). */
const unanswered = new WeakSet<object>();

/** One request's handler: collects the answer, settles once, ends at the deadline. */
class Exchange implements Dispatcher.DispatchHandler {
  private status = 0;
  private headers: Record<string, string | string[] | undefined> = {};
  private readonly chunks: Buffer[] = [];
  private controller: Dispatcher.DispatchController | undefined;
  private settled = false;
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly resolve: (r: HsmHttpResponse) => void,
    private readonly reject: (err: unknown) => void,
    leftMs: number,
    private readonly connectTimeoutMs: number,
  ) {
    this.timer = setTimeout(() => this.fail(abortError(), true), leftMs);
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    if (this.settled) controller.abort(abortError());
  }

  onResponseStart(
    controller: Dispatcher.DispatchController,
    statusCode: number,
    headers: Record<string, string | string[] | undefined>,
  ): void {
    this.status = statusCode;
    this.headers = headers;
    // undici counts the body as it comes; an announced length over the limit is refused now.
    if (Number(headers['content-length']) > MAX_BODY_BYTES)
      controller.abort(
        Object.assign(new Error('announced body over the limit'), {
          code: 'UND_ERR_RES_EXCEEDED_MAX_SIZE',
        }),
      );
  }

  onResponseData(_controller: Dispatcher.DispatchController, chunk: Buffer): void {
    this.chunks.push(chunk);
  }

  onResponseEnd(): void {
    if (this.settled) return;
    this.settled = true;
    clearTimeout(this.timer);
    const body = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks);
    this.resolve({ status: this.status, headers: this.headers, body });
  }

  onResponseError(_controller: Dispatcher.DispatchController, err: Error): void {
    // undici's own timers are coarse (they may fire before ours): either way it is the deadline.
    const code = errnoCode(err);
    if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT') {
      this.fail(abortError(), true);
      return;
    }
    this.fail(err, false);
  }

  private fail(err: Error, atDeadline: boolean): void {
    if (this.settled) return;
    this.settled = true;
    clearTimeout(this.timer);
    if (atDeadline) {
      this.controller?.abort(err);
      this.reject(err);
      return;
    }
    const described = this.describe(err);
    if (this.status === 0) unanswered.add(described);
    this.reject(described);
  }

  /** undici's error as failures.ts expects it: a code it knows, a message that says what. */
  private describe(err: Error): Error {
    const code = errnoCode(err) ?? '';
    if (code === 'UND_ERR_CONNECT_TIMEOUT') {
      const e = new HsmHttpProtocolError(
        `the HSM did not complete the TCP/TLS handshake within ${this.connectTimeoutMs} ms`,
        'ETIMEDOUT',
      );
      return Object.assign(e, { cause: err });
    }
    const what =
      MALFORMED[code] ??
      (err.name === 'HTTPParserError' ? err.message : undefined) ??
      (code === 'UND_ERR_SOCKET' && /^bad (response|upgrade)$/.test(err.message)
        ? 'an answer out of turn: 100 Continue, an upgrade, or bytes nobody asked for'
        : undefined);
    if (what !== undefined)
      return new HsmHttpProtocolError(
        `the HSM sent an answer that is not valid HTTP/1.1 (${what})`,
        'EPROTO',
      );
    if (BROKEN_CONNECTION.has(code))
      // Same object (the stale-connection check knows it), a message that says what happened.
      err.message =
        this.status !== 0
          ? `the HSM closed the connection in the middle of its answer (${err.message})`
          : `the HSM closed the connection without answering (${err.message})`;
    return err;
  }
}
