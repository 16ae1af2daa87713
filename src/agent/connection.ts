/**
 * One client connection of the agent. It decodes frames as they arrive and runs each request at
 * once (responses go back in completion order, matched by id), within three bounds that keep a
 * client's cost to the agent fixed whatever the client does:
 *  - at most `maxInFlightPerClient` requests of this connection in the agent at once: the bytes
 *    of further requests stay undecoded (one socket read at most), and the socket is not read
 *    until one finishes;
 *  - when the agent-wide queue for HSM slots is full (hsm-slots.ts), a connection with more than
 *    FAIR_SHARE requests in the agent starts no more until it has room (a light client always
 *    gets in; heavy ones wait their turn instead of growing the queue);
 *  - at most WRITE_HIGH_WATER bytes of answers waiting for the client to read them: past it the
 *    socket is not read until the client has drained them (a client that writes and never reads
 *    stalls itself, not the agent's memory);
 *  - an idle connection (nothing in flight, no traffic) is closed after `clientIdleTimeoutMs`.
 * A malformed frame gets one protocol-error frame and closes only that connection. `drain()`
 * (SIGTERM) stops reading, closes at once when idle, else as soon as the last answer is written.
 */
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
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
import type { PeerCredentials } from './peer-credentials.js';
import { parseRequest } from './requests.js';
import type { AgentRequest } from './requests.js';

/**
 * Unsent answer bytes at which the agent stops reading a connection. Small: an answer is at most
 * a few KiB (1 MiB for a LIST of a huge vault), and a client that reads keeps this near zero.
 */
export const WRITE_HIGH_WATER = 32 * 1024;

/** Requests a connection may always have in the agent, however full the HSM queue is. */
export const FAIR_SHARE = 8;

/**
 * Requests started in one turn of the event loop; the next batch waits for the next turn, so
 * the answers of the first (cached DESCRIBEs, PINGs: immediate) are written and counted against
 * WRITE_HIGH_WATER before more are started. Unsent answers stay under the high-water mark plus
 * one batch of answers.
 */
export const DISPATCH_BATCH = 32;

export interface ConnectionLimits {
  maxInFlightPerClient: number;
  clientIdleTimeoutMs: number;
}

export interface ConnectionEvents {
  /** A request finished (the server checks whether a shutdown is complete). */
  onIdle(): void;
}

export class Connection {
  /** Holds the bytes read and not yet started as requests (one socket read at most). */
  private readonly decoder = new FrameDecoder(MAX_REQUEST_BODY);
  /** Every complete frame read so far has been started (only a partial one may be left). */
  private caughtUp = true;
  /** The client half-closed: no more bytes will come. */
  private inputEnded = false;
  private batchScheduled = false;
  private inFlight = 0;
  /** Set by a malformed frame: sent, and the connection closed, once in-flight requests are answered. */
  private errorFrame: Buffer | undefined;
  /** Reading is over (client half-close or shutdown): answer what is in flight, then close. */
  private draining = false;
  /** Set by shutdown: close fully once idle, not only our half (the peer may never close its). */
  private closing = false;
  private ended = false;
  private writeBlocked = false;
  /** When this connection last received or sent anything (for choosing whom to close when full). */
  lastActive = Date.now();

  constructor(
    readonly socket: Socket,
    readonly id: number,
    private readonly ctx: HandlerContext,
    private limits: ConnectionLimits,
    private readonly events: ConnectionEvents,
    /** Who connected, as the kernel says (read once, at accept). */
    readonly peer?: PeerCredentials,
  ) {
    socket.on('data', (chunk: Buffer) => this.receive(chunk));
    socket.on('end', () => this.receiveEnd());
    socket.on('drain', () => {
      this.writeBlocked = false;
      this.flow();
    });
    socket.on('timeout', () => this.idleTimeout());
    // A client that vanishes is normal (process exit); nothing to do but forget it.
    socket.on('error', () => undefined);
    socket.setTimeout(limits.clientIdleTimeoutMs);
  }

  /** Requests of this connection in the agent (running or queued for an HSM slot). */
  get busy(): number {
    return this.inFlight;
  }

  /** Nothing in flight and no complete request waiting to be started. */
  get idle(): boolean {
    return this.inFlight === 0 && this.caughtUp;
  }

  setLimits(limits: ConnectionLimits): void {
    this.limits = limits;
    this.socket.setTimeout(limits.clientIdleTimeoutMs);
    this.flow();
  }

  /** Closes the connection now (evicted to admit a new client, or idle too long). */
  close(): void {
    this.ended = true;
    this.socket.destroy();
  }

  private log(): Logger {
    return this.ctx.logger();
  }

  private receive(chunk: Buffer): void {
    this.lastActive = Date.now();
    if (this.errorFrame || this.draining) return;
    this.decoder.append(chunk);
    this.caughtUp = false;
    this.dispatch();
  }

  private receiveEnd(): void {
    if (this.errorFrame) return;
    this.inputEnded = true;
    this.dispatch();
  }

  /**
   * Starts the requests read so far, one frame at a time (at most DISPATCH_BATCH in this turn),
   * while the connection is under its limits; then decides whether to read more.
   */
  private dispatch(): void {
    let started = 0;
    while (!this.caughtUp && this.canStart()) {
      if (started === DISPATCH_BATCH) {
        this.nextTurn();
        break;
      }
      let req: AgentRequest;
      try {
        const frame = this.decoder.next();
        if (frame === undefined) {
          this.caughtUp = true;
          break;
        }
        req = parseRequest(frame);
      } catch (err) {
        this.protocolError(err);
        return;
      }
      this.run(req);
      started++;
    }
    if (this.caughtUp && this.inputEnded && !this.draining && !this.errorFrame) {
      // Half-close from the client: a frame cut off is an error; else answer what is in flight,
      // then close our side.
      try {
        this.decoder.finish();
      } catch (err) {
        this.protocolError(err);
        return;
      }
      this.draining = true;
      this.endIfIdle();
    }
    this.flow();
  }

  private nextTurn(): void {
    if (this.batchScheduled) return;
    this.batchScheduled = true;
    setImmediate(() => {
      this.batchScheduled = false;
      this.flow();
    });
  }

  private canStart(): boolean {
    return (
      !this.errorFrame &&
      !this.closing &&
      !this.writeBlocked &&
      this.inFlight < this.limits.maxInFlightPerClient &&
      (this.inFlight < FAIR_SHARE || !this.ctx.slots.full)
    );
  }

  /** May have been held back by a full HSM queue: the server wakes it when there is room. */
  get heldBack(): boolean {
    return (
      !this.socket.destroyed &&
      !this.ended &&
      this.inFlight >= FAIR_SHARE &&
      (!this.caughtUp || this.socket.isPaused())
    );
  }

  /** Reads from the socket only while every request read so far has been started. */
  flow(): void {
    if (this.socket.destroyed || this.ended) return;
    if (!this.caughtUp && this.canStart() && !this.batchScheduled) {
      this.dispatch(); // ends by calling flow() again
      return;
    }
    const read =
      !this.errorFrame && !this.draining && !this.inputEnded && this.caughtUp && this.canStart();
    if (read && this.socket.isPaused()) this.socket.resume();
    else if (!read && !this.socket.isPaused()) this.socket.pause();
  }

  private run(req: AgentRequest): void {
    this.inFlight++;
    void handleRequest(this.ctx, req, {
      conn: this.id,
      receivedAt: Date.now(),
      ...(this.peer ? { peer: this.peer } : {}),
    })
      .then((fields) => this.respond(req, fields))
      .catch((err: unknown) =>
        this.log().error({ err }, 'unexpected failure while answering a request'),
      )
      .finally(() => {
        this.inFlight--;
        this.flow();
        this.endIfIdle();
        this.events.onIdle();
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
    this.lastActive = Date.now();
    this.socket.write(bytes);
    if (this.socket.writableLength > WRITE_HIGH_WATER && !this.writeBlocked) {
      this.writeBlocked = true;
      this.flow();
    }
  }

  private idleTimeout(): void {
    // Inactive, but a request may be waiting on a slow HSM: only a truly idle connection goes.
    if (!this.idle || this.ended) return;
    this.ctx.metrics.connectionsClosed.inc({ reason: 'idle-timeout' });
    this.log().debug(
      { conn: this.id, idle_ms: this.limits.clientIdleTimeoutMs },
      'closing an idle client connection (clientIdleTimeoutMs)',
    );
    this.close();
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
   * Shutdown: stops reading new requests (decoded ones not yet started are dropped); the
   * connection closes (both directions) at once when nothing is in flight, else as soon as the
   * last in-flight answer is written.
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
