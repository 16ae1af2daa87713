/**
 * The agent's Unix-socket server. Each connection decodes frames as they arrive and runs every
 * request at once (responses go back in completion order, matched by id). A malformed frame gets
 * one protocol-error frame and closes only that connection. `shutdown()` (SIGTERM) stops
 * accepting and reading, closes idle connections at once and every other one as soon as its last
 * request in flight is answered, without waiting for the peer to close its side.
 */
import { createServer } from 'node:net';
import type { Server, Socket } from 'node:net';
import type { Logger } from 'pino';
import { AkvError } from '../errors.js';
import {
  FrameDecoder,
  MAX_REQUEST_BODY,
  MAX_RESPONSE_BODY,
  Op,
  ProtocolError,
  RESPONSE_BIT,
  Status,
  Tag,
  encodeFrame,
  stringField,
  u32Field,
} from '../protocol/index.js';
import type { Field } from '../protocol/index.js';
import { handleRequest } from './handlers.js';
import type { HandlerContext } from './handlers.js';
import { parseRequest } from './requests.js';
import type { AgentRequest } from './requests.js';

/** A client that sends faster than the HSM answers is paused at this many requests in flight. */
const PAUSE_AT = 256;
const RESUME_AT = 128;

class Connection {
  private readonly decoder = new FrameDecoder(MAX_REQUEST_BODY);
  private inFlight = 0;
  /** Set by a malformed frame: sent, and the connection closed, once in-flight requests are answered. */
  private errorFrame: Buffer | undefined;
  private draining = false;
  /** Set by shutdown: close fully once idle, not only our half (the peer may never close its). */
  private closing = false;
  private paused = false;
  private ended = false;

  constructor(
    readonly socket: Socket,
    readonly id: number,
    private readonly ctx: HandlerContext,
    private readonly onIdle: () => void,
  ) {
    socket.on('data', (chunk: Buffer) => this.receive(chunk));
    socket.on('end', () => this.receiveEnd());
    // A client that vanishes is normal (process exit); nothing to do but forget it.
    socket.on('error', () => undefined);
  }

  get busy(): number {
    return this.inFlight;
  }

  private log(): Logger {
    return this.ctx.logger();
  }

  private receive(chunk: Buffer): void {
    if (this.errorFrame || this.draining) return;
    const { frames, error } = this.decoder.feed(chunk);
    for (const frame of frames) {
      let req: AgentRequest;
      try {
        req = parseRequest(frame);
      } catch (err) {
        this.protocolError(err);
        return;
      }
      this.run(req);
    }
    if (error) this.protocolError(error);
  }

  private receiveEnd(): void {
    // Half-close from the client: answer what is in flight, then close our side.
    if (this.errorFrame) return;
    try {
      this.decoder.finish();
    } catch (err) {
      this.protocolError(err);
      return;
    }
    this.draining = true;
    this.endIfIdle();
  }

  private run(req: AgentRequest): void {
    this.inFlight++;
    if (this.inFlight >= PAUSE_AT && !this.paused) {
      this.paused = true;
      this.socket.pause();
    }
    void handleRequest(this.ctx, req)
      .then((fields) => this.respond(req, fields))
      .catch((err: unknown) =>
        this.log().error({ err }, 'unexpected failure while answering a request'),
      )
      .finally(() => {
        this.inFlight--;
        if (this.paused && this.inFlight <= RESUME_AT && !this.draining && !this.errorFrame) {
          this.paused = false;
          this.socket.resume();
        }
        this.endIfIdle();
        this.onIdle();
      });
  }

  private respond(req: AgentRequest, fields: Field[]): void {
    if (this.socket.destroyed || !this.socket.writable) return;
    let bytes: Buffer;
    try {
      bytes = encodeFrame(req.opCode | RESPONSE_BIT, req.id, fields, MAX_RESPONSE_BODY);
    } catch (err) {
      this.log().error({ err, op: req.kind }, 'response does not fit in a frame');
      bytes = encodeFrame(req.opCode | RESPONSE_BIT, req.id, [
        u32Field(Tag.STATUS, Status.INTERNAL),
        stringField(
          Tag.MESSAGE,
          `the response is larger than the protocol allows (${MAX_RESPONSE_BODY} bytes)`,
        ),
        stringField(Tag.HINT, 'report this as a bug in the akv agent'),
      ]);
    }
    this.socket.write(bytes);
  }

  /**
   * A malformed frame: read nothing more from this connection, answer the requests already in
   * flight, then send one error frame and close (only this connection).
   */
  private protocolError(err: unknown): void {
    const reason = err instanceof ProtocolError ? err.reason : 'internal';
    const id = err instanceof ProtocolError ? err.id : 0;
    const message = err instanceof Error ? err.message : String(err);
    this.ctx.metrics.protocolErrors.inc({ reason });
    this.log().warn(
      { conn: this.id, reason, error: message },
      'malformed request frame: closing the connection',
    );
    this.errorFrame = encodeFrame(Op.PROTOCOL_ERROR, id, [
      u32Field(Tag.STATUS, Status.BAD_REQUEST),
      stringField(Tag.MESSAGE, `malformed request (${reason}): ${message}`),
    ]);
    this.socket.pause();
    this.endIfIdle();
  }

  /**
   * Shutdown: stops reading new requests; the connection closes (both directions) at once when
   * nothing is in flight, else as soon as the last in-flight answer is written.
   */
  drain(): void {
    this.draining = true;
    this.closing = true;
    this.socket.pause();
    this.endIfIdle();
  }

  private endIfIdle(): void {
    if (this.inFlight > 0 || this.socket.destroyed || this.ended) return;
    if (this.errorFrame) {
      this.ended = true;
      this.socket.end(this.errorFrame);
      // A peer that never reads must not keep the connection (and its buffers) alive.
      setTimeout(() => this.socket.destroy(), 5000).unref();
    } else if (this.closing) {
      // An idle client such as an nginx worker keeps its connection open for good: a half-close
      // would leave it open (and the shutdown waiting) until the drain timeout. Flush the answers
      // already written, then close our end for good.
      this.ended = true;
      this.socket.end(() => this.socket.destroy());
    } else if (this.draining) {
      // The client half-closed: closing our half completes the close.
      this.ended = true;
      this.socket.end();
    }
  }
}

export class AgentServer {
  private readonly server: Server;
  private readonly connections = new Set<Connection>();
  private nextConnId = 1;
  private draining = false;
  private drained: (() => void) | undefined;
  /** When a client last connected or a request last finished (for --idle-exit). */
  lastActivityMs = Date.now();

  constructor(private readonly ctx: HandlerContext) {
    this.server = createServer({ allowHalfOpen: true }, (socket) => this.accept(socket));
  }

  private accept(socket: Socket): void {
    if (this.draining) {
      socket.destroy();
      return;
    }
    this.lastActivityMs = Date.now();
    const conn = new Connection(socket, this.nextConnId++, this.ctx, () => {
      this.lastActivityMs = Date.now();
      this.checkDrained();
    });
    this.connections.add(conn);
    this.ctx.metrics.connections.inc();
    socket.once('close', () => {
      this.connections.delete(conn);
      this.ctx.metrics.connections.dec();
      this.checkDrained();
    });
  }

  /**
   * Binds the socket path (which must be free: see claimSocketPath), or serves on a listening
   * socket systemd passed ({ fd }), which must be a Unix socket.
   */
  listen(target: string | { fd: number }): Promise<void> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(target, () => {
        this.server.off('error', reject);
        // A Unix socket has no address object; an inherited TCP socket would have one.
        if (
          typeof target !== 'string' &&
          typeof this.server.address() === 'object' &&
          this.server.address() !== null
        ) {
          this.server.close();
          reject(
            new AkvError(
              'BAD_REQUEST',
              `the socket passed as fd ${target.fd} is not a Unix socket`,
              'use a path in ListenStream= of akv-agent.socket (the agent serves only Unix sockets)',
            ),
          );
          return;
        }
        resolve();
      });
    });
  }

  /** Requests being worked on, over all connections. */
  get inFlight(): number {
    let n = 0;
    for (const c of this.connections) n += c.busy;
    return n;
  }

  private checkDrained(): void {
    if (this.draining && this.connections.size === 0) this.drained?.();
  }

  /**
   * Stops accepting, lets in-flight requests finish and be answered, closes every connection:
   * idle ones at once, the others as their last answer is written. Resolves once all are closed;
   * after `timeoutMs` the remaining connections are cut. Resolves true when all drained in time.
   */
  async shutdown(timeoutMs: number): Promise<boolean> {
    this.draining = true;
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    const allDrained = new Promise<void>((resolve) => {
      this.drained = resolve;
    });
    for (const c of this.connections) c.drain();
    this.checkDrained();
    let timer: NodeJS.Timeout | undefined;
    const inTime = await Promise.race([
      allDrained.then(() => true),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(false), timeoutMs);
      }),
    ]);
    clearTimeout(timer);
    if (!inTime) for (const c of this.connections) c.socket.destroy();
    await closed;
    return inTime;
  }
}
