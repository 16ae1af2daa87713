/**
 * The agent's global bound on HSM requests in flight (`maxInFlight`). A request that needs the HSM
 * takes a slot first; when all are taken it waits in its connection's queue, and freed slots go
 * round-robin across the connections that are waiting, so one client with thousands of requests
 * cannot starve another with one. A wait counts against the request's deadline: a request still
 * queued when its deadline passes fails with TIMEOUT without ever reaching the HSM. A closed
 * connection's queued requests are dropped (they would only cost the HSM work nobody reads).
 * The queue itself is bounded (QUEUE_PER_SLOT per slot): when it is `full`, connections that
 * already have more than a fair share of requests in the agent stop reading (connection.ts).
 */
import { AkvError } from '../errors.js';

/** Rejects the waiters of a connection that closed; the handler never answers them. */
export class SlotCancelled extends Error {
  override name = 'SlotCancelled';
}

interface Waiter {
  grant: () => void;
  fail: (err: Error) => void;
  timer: NodeJS.Timeout;
  deadline: number;
  /** Fails the waiter with TIMEOUT (its deadline came while it was queued). */
  expire: () => void;
}

/** Queued requests allowed per HSM slot before busy connections are held back (4,096 for 512). */
export const QUEUE_PER_SLOT = 8;

/**
 * A waiter with less time left than this when a slot frees up is failed instead of sent: no HSM
 * answers that fast, and sending it would only cost the HSM work whose answer nobody waits for.
 */
export const MIN_TIME_LEFT_MS = 20;

export class HsmSlots {
  private running = 0;
  /** Waiting requests per connection; Map order is the round-robin order (served owners move last). */
  private readonly queues = new Map<number, Waiter[]>();
  private waiting = 0;

  /**
   * `onChange` hears every change of the counts (the metrics' gauges); `onSpace` is called when
   * the queue stops being full (connections held back may read again).
   */
  constructor(
    private capacity: number,
    private readonly onChange: (inFlight: number, queued: number) => void = () => undefined,
    public onSpace: () => void = () => undefined,
  ) {}

  /** The queue is at its bound: only connections under their fair share may add to it. */
  get full(): boolean {
    return this.waiting >= this.capacity * QUEUE_PER_SLOT;
  }

  /** Requests at the HSM now. */
  get inFlight(): number {
    return this.running;
  }

  /** Requests waiting for a slot. */
  get queued(): number {
    return this.waiting;
  }

  get limit(): number {
    return this.capacity;
  }

  /** A new maxInFlight (SIGHUP): a larger one admits waiters at once, a smaller one as slots free. */
  setCapacity(capacity: number): void {
    const wasFull = this.full;
    this.capacity = capacity;
    this.admit();
    this.changed(wasFull);
  }

  /**
   * Runs `work` holding one slot. `deadline` (ms since the epoch) bounds the wait: past it the
   * promise rejects with TIMEOUT (`what` names the request in that message).
   */
  async run<T>(owner: number, deadline: number, what: string, work: () => Promise<T>): Promise<T> {
    await this.acquire(owner, deadline, what);
    try {
      return await work();
    } finally {
      const wasFull = this.full;
      this.running--;
      this.admit();
      this.changed(wasFull);
    }
  }

  /** Drops every queued request of `owner` (its connection closed). */
  cancel(owner: number): void {
    const queue = this.queues.get(owner);
    if (!queue) return;
    const wasFull = this.full;
    this.queues.delete(owner);
    this.waiting -= queue.length;
    for (const w of queue) {
      clearTimeout(w.timer);
      w.fail(new SlotCancelled('the client closed its connection while the request was queued'));
    }
    this.changed(wasFull);
  }

  private acquire(owner: number, deadline: number, what: string): Promise<void> {
    if (this.running < this.capacity && this.waiting === 0) {
      this.running++;
      this.changed(false);
      return Promise.resolve();
    }
    const queuedAt = Date.now();
    return new Promise<void>((resolve, reject) => {
      let queue = this.queues.get(owner);
      if (!queue) {
        queue = [];
        this.queues.set(owner, queue);
      }
      const expire = (): void => reject(this.timeout(what, Date.now() - queuedAt));
      const waiter: Waiter = {
        grant: resolve,
        fail: reject,
        deadline,
        expire,
        timer: setTimeout(
          () => {
            const wasFull = this.full;
            this.remove(owner, waiter);
            this.changed(wasFull);
            expire();
          },
          Math.max(0, deadline - queuedAt),
        ),
      };
      queue.push(waiter);
      this.waiting++;
      this.changed(false);
    });
  }

  private timeout(what: string, waitedMs: number): AkvError {
    return new AkvError(
      'TIMEOUT',
      `${what} waited ${Math.round(waitedMs)} ms in the agent's queue for one of its ${this.capacity} HSM request slots (maxInFlight) and reached its deadline before it was sent`,
      'the HSM answers more slowly than requests arrive: check its latency and health; raise maxInFlight (or deadlineMs) in the agent config only if the HSM can take more',
    );
  }

  /** Calls onSpace when a change of `waiting` made a full queue not full. */
  private changed(wasFull: boolean): void {
    this.onChange(this.running, this.waiting);
    if (wasFull && !this.full) this.onSpace();
  }

  private remove(owner: number, waiter: Waiter): void {
    const queue = this.queues.get(owner);
    if (!queue) return;
    const i = queue.indexOf(waiter);
    if (i < 0) return;
    queue.splice(i, 1);
    this.waiting--;
    if (queue.length === 0) this.queues.delete(owner);
  }

  /** Hands free slots to waiters, one connection after another. */
  private admit(): void {
    while (this.running < this.capacity && this.waiting > 0) {
      const next = this.queues.entries().next();
      if (next.done) break; // waiting > 0 means a queue: unreachable
      const [owner, queue] = next.value;
      const waiter = queue.shift()!;
      this.waiting--;
      this.queues.delete(owner);
      // Served: to the back of the line (re-inserting moves the key to the end of the Map).
      if (queue.length > 0) this.queues.set(owner, queue);
      clearTimeout(waiter.timer);
      if (waiter.deadline - Date.now() < MIN_TIME_LEFT_MS) {
        waiter.expire();
        continue;
      }
      this.running++;
      waiter.grant();
    }
  }
}
