/**
 * A crypto worker thread: runs one CryptoTask per message so that RSA work and ECDSA
 * verification do not block the HTTP event loop and several cores work at once (./pool.ts starts
 * these and says which work stays on the main thread).
 */
import { parentPort } from 'node:worker_threads';
import { toErrorData, type HsmErrorData } from '../errors.js';
import { cryptoFailure, performCrypto, type CryptoResult, type CryptoTask } from './operations.js';

export interface WorkerRequest {
  id: number;
  task: CryptoTask;
}

export type WorkerResponse =
  { id: number; ok: true; result: CryptoResult } | { id: number; ok: false; error: HsmErrorData };

const port = parentPort;
if (!port) throw new Error('crypto worker must run in a worker thread');

port.on('message', (request: WorkerRequest) => {
  let response: WorkerResponse;
  try {
    response = { id: request.id, ok: true, result: performCrypto(request.task) };
  } catch (err) {
    const error = toErrorData(cryptoFailure(err));
    response = { id: request.id, ok: false, error };
  }
  port.postMessage(response);
});
