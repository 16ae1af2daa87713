/**
 * The HTTPS client of the hot path (key-operations.ts): keep-alive TLS connections to one HSM
 * origin, one request at a time on each, HTTP/1.1 written and read here. It exists for CPU: per
 * signature, Node's http client cost the agent about 135 µs and undici about 100 µs (request
 * objects, header validation, stream wrappers, a parser that calls back into JavaScript for each
 * header), this client about 60 µs, on the development machine (docs/performance.md). It sends
 * one kind of request, a small POST with a JSON body, and reads what an HTTP/1.1 server may
 * answer to it: a status line, headers, then a body by Content-Length, by chunks, or until the
 * connection closes; interim 1xx answers are passed over. Everything is bounded: 64 KiB of head,
 * 1 MiB of body. The SDK, with its own client, does everything else.
 *
 * Connections are reused most-recently-used first and closed after KEEP_ALIVE_MS idle (or the
 * server's Keep-Alive timeout, when it is shorter). A request on a connection the server closed
 * meanwhile fails like a reset connection, which the caller's retry loop retries.
 */
import { isIP } from 'node:net';
import { connect, type SecureContext, type TLSSocket } from 'node:tls';
import { abortError, type Deadline } from './abort.js';

export const MAX_HEAD_BYTES = 64 * 1024;
export const MAX_BODY_BYTES = 1024 * 1024;
/** How long an idle connection is kept, unless the server's Keep-Alive says less. */
export const KEEP_ALIVE_MS = 30_000;

export interface HsmHttpResponse {
  status: number;
  /** Header names in lower case; repeated headers joined with ", ". */
  headers: Map<string, string>;
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

interface Pending {
  resolve(r: HsmHttpResponse): void;
  reject(err: Error): void;
}

/** Reads one HTTP/1.1 response from the bytes it is fed; `done` once complete. */
class ResponseReader {
  private buffer: Buffer = Buffer.alloc(0);
  private head: { status: number; headers: Map<string, string>; keepAlive: boolean } | undefined;
  private length: number | 'chunked' | 'until-close' = 0;
  private chunks: Buffer[] = [];
  private received = 0;
  response: HsmHttpResponse | undefined;
  /** Whether the connection may carry another request after this response. */
  keepAlive = false;
  /** The server's Keep-Alive timeout, when it sent one (ms). */
  serverKeepAliveMs: number | undefined;

  /** Takes bytes; throws HsmHttpProtocolError for a malformed or oversized response. */
  feed(bytes: Buffer): void {
    this.buffer = this.buffer.length === 0 ? bytes : Buffer.concat([this.buffer, bytes]);
    while (!this.response) {
      if (!this.head) {
        if (!this.readHead()) return;
        continue;
      }
      if (!this.readBody()) return;
    }
  }

  /** The connection closed: a body that runs until close is complete, anything else is cut. */
  end(): void {
    if (this.response) return;
    if (this.head && this.length === 'until-close') {
      this.finish();
      return;
    }
    throw new HsmHttpProtocolError(
      this.head || this.buffer.length > 0
        ? 'the HSM closed the connection in the middle of its answer'
        : 'the HSM closed the connection without answering',
      'ECONNRESET',
    );
  }

  private readHead(): boolean {
    const end = this.buffer.indexOf('\r\n\r\n');
    if (end < 0) {
      if (this.buffer.length > MAX_HEAD_BYTES) throw malformed('a response head over 64 KiB');
      return false;
    }
    const lines = this.buffer.subarray(0, end).toString('latin1').split('\r\n');
    this.buffer = this.buffer.subarray(end + 4);
    const status = /^HTTP\/1\.([01]) (\d{3})(?: |$)/.exec(lines[0] ?? '');
    if (!status)
      throw malformed(`the status line ${JSON.stringify((lines[0] ?? '').slice(0, 80))}`);
    const code = Number(status[2]);
    const headers = new Map<string, string>();
    for (const line of lines.slice(1)) {
      const colon = line.indexOf(':');
      if (colon <= 0) throw malformed(`the header line ${JSON.stringify(line.slice(0, 80))}`);
      const name = line.slice(0, colon).trim().toLowerCase();
      const value = line.slice(colon + 1).trim();
      const before = headers.get(name);
      headers.set(name, before === undefined ? value : `${before}, ${value}`);
    }
    // 100 Continue and other interim answers come before the real one.
    if (code >= 100 && code < 200 && code !== 101) return true;
    const connection = (headers.get('connection') ?? '').toLowerCase();
    const keepAlive =
      status[1] === '1' ? !connection.includes('close') : connection.includes('keep-alive');
    const timeout = /timeout=(\d+)/i.exec(headers.get('keep-alive') ?? '');
    if (timeout) this.serverKeepAliveMs = Number(timeout[1]) * 1000;
    this.head = { status: code, headers, keepAlive };
    if (code === 204 || code === 304) this.length = 0;
    else if ((headers.get('transfer-encoding') ?? '').toLowerCase().includes('chunked'))
      this.length = 'chunked';
    else if (headers.has('content-length')) {
      const n = Number(headers.get('content-length'));
      if (!Number.isInteger(n) || n < 0) throw malformed('its Content-Length');
      if (n > MAX_BODY_BYTES) throw malformed('a body over 1 MiB');
      this.length = n;
    } else this.length = 'until-close';
    return true;
  }

  private readBody(): boolean {
    if (this.length === 'until-close') {
      this.take(this.buffer.length);
      return false;
    }
    if (this.length !== 'chunked') {
      const want = this.length - this.received;
      if (this.buffer.length < want) {
        this.take(this.buffer.length);
        return false;
      }
      this.take(want);
      this.finish();
      return true;
    }
    // Chunked: size line, data, CRLF; a zero size ends it, after optional trailers.
    const line = this.buffer.indexOf('\r\n');
    if (line < 0) return false;
    const size = parseInt(this.buffer.subarray(0, line).toString('latin1').split(';')[0]!, 16);
    if (!Number.isInteger(size) || size < 0) throw malformed('a chunk size');
    if (size === 0) {
      const trailersEnd = this.buffer.indexOf('\r\n\r\n', line);
      const blank = this.buffer.subarray(line, line + 4).equals(Buffer.from('\r\n\r\n'));
      if (!blank && trailersEnd < 0) return false;
      this.buffer = this.buffer.subarray(blank ? line + 4 : trailersEnd + 4);
      this.finish();
      return true;
    }
    if (this.buffer.length < line + 2 + size + 2) return false;
    this.buffer = this.buffer.subarray(line + 2);
    this.take(size);
    this.buffer = this.buffer.subarray(2);
    return true;
  }

  private take(n: number): void {
    if (n === 0) return;
    this.received += n;
    if (this.received > MAX_BODY_BYTES) throw malformed('a body over 1 MiB');
    this.chunks.push(this.buffer.subarray(0, n));
    this.buffer = this.buffer.subarray(n);
  }

  private finish(): void {
    const head = this.head!;
    this.keepAlive = head.keepAlive && this.length !== 'until-close' && this.buffer.length === 0;
    this.response = {
      status: head.status,
      headers: head.headers,
      body: this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks),
    };
  }
}

function malformed(what: string): HsmHttpProtocolError {
  return new HsmHttpProtocolError(
    `the HSM sent an answer that is not valid HTTP/1.1 (${what})`,
    'EPROTO',
  );
}

/** One TLS connection: carries one request at a time. */
class Connection {
  private pending: Pending | undefined;
  private reader: ResponseReader | undefined;
  closed = false;
  /** While free: when it may be closed for idleness (ms since the epoch). */
  idleUntil = 0;

  constructor(
    readonly socket: TLSSocket,
    private readonly onIdle: (c: Connection, keepAliveMs: number | undefined) => void,
    private readonly onGone: (c: Connection) => void,
  ) {
    socket.on('data', (chunk: Buffer) => this.receive(chunk));
    socket.on('end', () => this.gone());
    socket.on('close', () => this.gone());
    socket.on('error', (err: Error) => this.gone(err));
  }

  send(request: string, pending: Pending): void {
    this.pending = pending;
    this.reader = new ResponseReader();
    this.socket.write(request);
  }

  /** Abandons the request in flight (deadline): the connection cannot be reused. */
  abort(): void {
    this.pending = undefined;
    this.socket.destroy();
  }

  private receive(chunk: Buffer): void {
    const pending = this.pending;
    const reader = this.reader;
    if (!pending || !reader) {
      this.socket.destroy(); // bytes nobody asked for: the connection is out of step
      return;
    }
    try {
      reader.feed(chunk);
    } catch (err) {
      this.fail(err as Error);
      return;
    }
    if (!reader.response) return;
    this.pending = undefined;
    this.reader = undefined;
    if (reader.keepAlive) this.onIdle(this, reader.serverKeepAliveMs);
    else this.socket.destroy();
    pending.resolve(reader.response);
  }

  private gone(err?: Error): void {
    const pending = this.pending;
    const reader = this.reader;
    if (pending && reader) {
      try {
        reader.end();
      } catch (cut) {
        this.fail(err ?? (cut as Error));
        return;
      }
      this.pending = undefined;
      pending.resolve(reader.response!);
    }
    if (!this.closed) {
      this.closed = true;
      this.onGone(this);
    }
  }

  private fail(err: Error): void {
    const pending = this.pending;
    this.pending = undefined;
    this.socket.destroy();
    pending?.reject(err);
  }
}

export interface HsmHttpOptions {
  /** Trust for the HSM's certificate; absent: the system's (and NODE_EXTRA_CA_CERTS). */
  secureContext?: SecureContext;
  /** At most this many connections (the agent's maxInFlight). */
  maxConnections: number;
}

export class HsmHttpClient {
  private readonly host: string;
  private readonly port: number;
  private readonly free: Connection[] = [];
  private readonly all = new Set<Connection>();
  private readonly waiting: Array<(c: Connection | Error) => void> = [];
  private closed = false;
  /** Closes free connections past their idle time; runs while there are free connections. */
  private sweeper: NodeJS.Timeout | undefined;

  constructor(
    origin: string,
    private readonly options: HsmHttpOptions,
  ) {
    const url = new URL(origin);
    this.host = url.hostname.replace(/^\[|\]$/g, '');
    this.port = Number(url.port || 443);
  }

  /**
   * Sends `POST path` with the given extra header lines (each ending in CRLF) and body; resolves
   * with the answer, whatever its status. Rejects with a network error (its code), an
   * HsmHttpProtocolError, or an AbortError at the deadline (the request is then abandoned).
   */
  post(
    path: string,
    headerLines: string,
    body: string,
    deadline: Deadline,
  ): Promise<HsmHttpResponse> {
    const left = deadline.at - Date.now();
    if (left <= 0) return Promise.reject(abortError());
    const request = `POST ${path} HTTP/1.1\r\nhost: ${this.hostHeader()}\r\n${headerLines}content-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
    return new Promise<HsmHttpResponse>((resolve, reject) => {
      let connection: Connection | undefined;
      let settled = false;
      const timer = setTimeout(() => {
        if (settled) return;
        settled = true;
        connection?.abort();
        reject(abortError());
      }, left);
      const settle = (): boolean => {
        if (settled) return false;
        settled = true;
        clearTimeout(timer);
        return true;
      };
      this.connection().then(
        (c) => {
          if (settled) {
            this.release(c, undefined);
            return;
          }
          connection = c;
          c.send(request, {
            resolve: (r) => settle() && resolve(r),
            reject: (err) => settle() && reject(err),
          });
        },
        (err: Error) => settle() && reject(err),
      );
    });
  }

  close(): void {
    this.closed = true;
    clearInterval(this.sweeper);
    for (const c of this.all) c.socket.destroy();
    for (const w of this.waiting.splice(0))
      w(new HsmHttpProtocolError('the client was closed', 'ECONNABORTED'));
  }

  private hostHeader(): string {
    const host = isIP(this.host) === 6 ? `[${this.host}]` : this.host;
    return this.port === 443 ? host : `${host}:${this.port}`;
  }

  /** A free connection (most recently used first), a new one, or the next one freed. */
  private connection(): Promise<Connection> {
    if (this.closed)
      return Promise.reject(new HsmHttpProtocolError('the client was closed', 'ECONNABORTED'));
    const reused = this.free.pop();
    if (reused) return Promise.resolve(reused);
    if (this.all.size >= this.options.maxConnections) {
      return new Promise((resolve, reject) =>
        this.waiting.push((c) => (c instanceof Error ? reject(c) : resolve(c))),
      );
    }
    return this.open();
  }

  private open(): Promise<Connection> {
    return new Promise((resolve, reject) => {
      const socket = connect({
        host: this.host,
        port: this.port,
        ...(isIP(this.host) ? {} : { servername: this.host }),
        ALPNProtocols: ['http/1.1'],
        ...(this.options.secureContext ? { secureContext: this.options.secureContext } : {}),
      });
      const c = new Connection(
        socket,
        (conn, keepAliveMs) => this.release(conn, keepAliveMs),
        (conn) => this.forget(conn),
      );
      this.all.add(c);
      const onError = (err: Error): void => reject(err);
      socket.once('error', onError);
      socket.once('secureConnect', () => {
        socket.off('error', onError);
        resolve(c);
      });
    });
  }

  /** A connection finished its request: to the next waiter, else to the free list. */
  private release(c: Connection, keepAliveMs: number | undefined): void {
    if (c.closed) return;
    const next = this.waiting.shift();
    if (next) {
      next(c);
      return;
    }
    const idleMs =
      keepAliveMs !== undefined
        ? Math.min(KEEP_ALIVE_MS, Math.max(0, keepAliveMs - 1000))
        : KEEP_ALIVE_MS;
    c.idleUntil = Date.now() + idleMs;
    this.free.push(c);
    if (!this.sweeper) {
      this.sweeper = setInterval(() => this.sweep(), 1000);
      this.sweeper.unref();
    }
  }

  private sweep(): void {
    const now = Date.now();
    for (const c of [...this.free]) if (c.idleUntil <= now) c.socket.destroy();
    if (this.free.length === 0 && this.sweeper) {
      clearInterval(this.sweeper);
      this.sweeper = undefined;
    }
  }

  private forget(c: Connection): void {
    this.all.delete(c);
    const i = this.free.indexOf(c);
    if (i >= 0) this.free.splice(i, 1);
    // Room for a new connection: a waiter gets one.
    const next = this.waiting.shift();
    if (next) this.open().then(next, next);
  }
}
