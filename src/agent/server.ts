/**
 * The agent's Unix-socket server: accepts connections (each a Connection, connection.ts) up to
 * `maxClients`, and stops them on shutdown. When full, a new client is let in by closing the
 * connection that has been idle longest (an nginx worker's pooled connection reconnects
 * transparently); when every connection is busy the newcomer is turned away instead. Both are
 * logged (at most a line a second each, with the number of events it stands for) and counted, so that "connection refused" on the client side always has a cause in the
 * agent's log. `shutdown()` (SIGTERM) stops accepting and reading, closes idle connections at once
 * and every other one as soon as its last request in flight is answered.
 */
import { createServer } from 'node:net';
import type { Server, Socket } from 'node:net';
import { AkvError } from '../errors.js';
import { Connection, type ConnectionLimits } from './connection.js';
import type { HandlerContext } from './handlers.js';
import { peerExecutable, readPeerCredentials } from './peer-credentials.js';
import { RateLimitedWarning } from './rate-limited-warning.js';

/** At most one line per this long for each maxClients warning; `count` says how many it covers. */
const WARNING_INTERVAL_MS = 1000;

export interface ServerLimits extends ConnectionLimits {
  maxClients: number;
}

export class AgentServer {
  private readonly server: Server;
  /** Open connections; Set order is accept order. */
  private readonly connections = new Set<Connection>();
  private nextConnId = 1;
  private draining = false;
  private drained: (() => void) | undefined;
  /** When a client last connected or a request last finished (for --idle-exit). */
  lastActivityMs = Date.now();
  /** A client that reconnects in a loop at maxClients must not flood the log: a line a second. */
  private readonly refusedWarning = new RateLimitedWarning(WARNING_INTERVAL_MS);
  private readonly evictedWarning = new RateLimitedWarning(WARNING_INTERVAL_MS);

  constructor(
    private readonly ctx: HandlerContext,
    private limits: ServerLimits,
  ) {
    this.server = createServer({ allowHalfOpen: true }, (socket) => this.accept(socket));
    ctx.slots.onSpace = () => this.wakeHeldBack();
  }

  /**
   * The HSM queue has room again: let the connections it held back start requests, the first
   * one woken moving to the back so that the next time another goes first.
   */
  private wakeHeldBack(): void {
    for (const c of [...this.connections]) {
      if (this.ctx.slots.full) break;
      if (!c.heldBack) continue;
      this.connections.delete(c);
      this.connections.add(c);
      c.flow();
    }
  }

  /** New limits (SIGHUP): applied to the open connections too. */
  setLimits(limits: ServerLimits): void {
    this.limits = limits;
    for (const c of this.connections) c.setLimits(limits);
  }

  private accept(socket: Socket): void {
    if (this.draining) {
      socket.destroy();
      return;
    }
    if (this.connections.size >= this.limits.maxClients && !this.makeRoom()) {
      this.ctx.metrics.connectionsClosed.inc({ reason: 'max-clients-busy' });
      this.refusedWarning.hit((count) =>
        this.ctx
          .logger()
          .warn(
            { max_clients: this.limits.maxClients, count },
            'refused a client connection: maxClients connections are open and all are busy',
          ),
      );
      socket.destroy();
      return;
    }
    this.lastActivityMs = Date.now();
    // The kernel's record of who connected; the executable is read now, while the pid is surely
    // the connecting process's, when a rule looks at it.
    const peer = readPeerCredentials(socket);
    if (peer && this.ctx.policy()?.needsExecutable) peerExecutable(peer);
    const conn = new Connection(
      socket,
      this.nextConnId++,
      this.ctx,
      this.limits,
      {
        onIdle: () => {
          this.lastActivityMs = Date.now();
          this.checkDrained();
        },
      },
      peer,
    );
    this.connections.add(conn);
    this.ctx.metrics.connections.inc();
    socket.once('close', () => {
      this.connections.delete(conn);
      this.ctx.slots.cancel(conn.id);
      this.ctx.metrics.connections.dec();
      this.checkDrained();
    });
  }

  /** Closes the longest-idle connection; false when none is idle. */
  private makeRoom(): boolean {
    let oldest: Connection | undefined;
    for (const c of this.connections) {
      if (c.idle && (oldest === undefined || c.lastActive < oldest.lastActive)) oldest = c;
    }
    if (!oldest) return false;
    this.ctx.metrics.connectionsClosed.inc({ reason: 'max-clients' });
    const idleMs = Date.now() - oldest.lastActive;
    this.evictedWarning.hit((count) =>
      this.ctx
        .logger()
        .warn(
          { conn: oldest.id, idle_ms: idleMs, max_clients: this.limits.maxClients, count },
          'maxClients connections are open: closed the longest-idle one to admit a new client',
        ),
    );
    // Forget it now, not at its 'close' event: the new connection takes its place at once.
    this.connections.delete(oldest);
    oldest.close();
    return true;
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
        // Out of file descriptors (EMFILE) and the like: the client sees its connection refused;
        // say why here instead of dying or staying silent.
        this.server.on('error', (err: NodeJS.ErrnoException) => {
          this.ctx.metrics.connectionsClosed.inc({ reason: 'accept-failed' });
          this.ctx
            .logger()
            .error(
              { error: err.message, code: err.code, clients: this.connections.size },
              'cannot accept a client connection: lower maxClients or raise the open-file limit (LimitNOFILE)',
            );
        });
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

  /** Client connections open now. */
  get clients(): number {
    return this.connections.size;
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
