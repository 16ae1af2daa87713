/**
 * A fixed pool of crypto worker threads with a FIFO queue. Each worker runs one task at a time;
 * a worker that dies fails its task with a 500 and is replaced.
 *
 * ECDSA signatures and AES work are done on the calling thread instead: an ECDSA signature costs
 * tens of µs natively (./ecdsa-native.ts) while a round trip to a worker (structured clone,
 * postMessage, waking the thread and the event loop again) measured about 100 µs of the
 * emulator's CPU per request, a quarter of all it spent under load. RSA private-key work (a
 * millisecond and more for 3072 bits) and ECDSA verification (in JavaScript, @noble/curves) still
 * go to the workers, where they run on several cores without blocking the HTTP event loop.
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { HsmError, fromErrorData } from '../errors.js';
import { cryptoFailure, performCrypto, type CryptoResult, type CryptoTask } from './operations.js';
import type { WorkerRequest, WorkerResponse } from './worker.js';

interface Pending {
  id: number;
  task: CryptoTask;
  resolve: (result: CryptoResult) => void;
  reject: (err: Error) => void;
}

interface Slot {
  worker: Worker;
  current?: Pending;
}

const WORKER_URL = new URL('./worker.js', import.meta.url);

export class CryptoPool {
  private readonly slots: Slot[] = [];
  private readonly queue: Pending[] = [];
  private nextId = 1;
  private closed = false;

  constructor(readonly size: number = Math.max(2, Math.min(availableParallelism(), 4))) {
    for (let i = 0; i < size; i++) this.slots.push(this.spawn());
  }

  run(task: CryptoTask): Promise<CryptoResult> {
    if (this.closed)
      return Promise.reject(
        new HsmError(503, 'ServiceUnavailable', 'The emulator is shutting down'),
      );
    if (cheapHere(task)) return runHere(task);
    return new Promise((resolve, reject) => {
      this.queue.push({ id: this.nextId++, task, resolve, reject });
      this.dispatch();
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const pending of this.queue.splice(0)) {
      pending.reject(new HsmError(503, 'ServiceUnavailable', 'The emulator is shutting down'));
    }
    await Promise.all(this.slots.map((slot) => slot.worker.terminate()));
  }

  private spawn(): Slot {
    const worker = new Worker(WORKER_URL);
    const slot: Slot = { worker };
    worker.on('message', (response: WorkerResponse) => {
      const pending = slot.current;
      slot.current = undefined;
      if (pending && pending.id === response.id) {
        if (response.ok) pending.resolve(response.result);
        else pending.reject(fromErrorData(response.error));
      }
      this.dispatch();
    });
    worker.on('error', (err) => this.replace(slot, err));
    worker.on('exit', (code) => {
      if (!this.closed) this.replace(slot, new Error(`crypto worker exited with code ${code}`));
    });
    return slot;
  }

  private replace(slot: Slot, err: Error): void {
    const index = this.slots.indexOf(slot);
    if (index < 0) return;
    slot.current?.reject(
      new HsmError(500, 'InternalServerError', `Crypto worker failed: ${err.message}`),
    );
    slot.current = undefined;
    void slot.worker.terminate();
    if (this.closed) return;
    this.slots[index] = this.spawn();
    this.dispatch();
  }

  private dispatch(): void {
    for (const slot of this.slots) {
      if (slot.current) continue;
      const pending = this.queue.shift();
      if (!pending) return;
      slot.current = pending;
      const request: WorkerRequest = { id: pending.id, task: pending.task };
      slot.worker.postMessage(request);
    }
  }
}

function cheapHere(task: CryptoTask): boolean {
  return task.jwk.kty === 'oct' || (task.jwk.kty === 'EC' && task.op === 'sign');
}

/** A task done on this thread, failing as a worker's would (an HsmError, or a 500 that says why). */
function runHere(task: CryptoTask): Promise<CryptoResult> {
  try {
    return Promise.resolve(performCrypto(task));
  } catch (err) {
    return Promise.reject(cryptoFailure(err));
  }
}
