/**
 * A crypto worker thread: runs one CryptoTask per message so that RSA and ECDSA work does not
 * block the HTTP event loop and several cores sign at once (./pool.ts starts these).
 */
import { parentPort } from 'node:worker_threads';
import { HsmError, toErrorData, type HsmErrorData } from '../errors.js';
import { performCrypto, type CryptoResult, type CryptoTask } from './operations.js';

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
    const error =
      err instanceof HsmError
        ? toErrorData(err)
        : {
            status: 500,
            code: 'InternalServerError' as const,
            message: `Crypto operation failed: ${(err as Error).message}`,
          };
    response = { id: request.id, ok: false, error };
  }
  port.postMessage(response);
});
