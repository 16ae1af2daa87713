/**
 * The client's two calls (unary and server-streaming) as promises, with failures turned into
 * data (method, status code and name, details) so callers can print or assert on them.
 */
import * as grpc from '@grpc/grpc-js';
import {
  loadGreeter,
  unixTarget,
  type GreeterClient,
  type Greeting,
  type HelloReply,
} from './greeter.js';

export interface CallFailure {
  method: 'SayHello' | 'StreamGreetings';
  code: grpc.status;
  codeName: string;
  details: string;
}

export type CallsOutcome =
  | { ok: true; unary: HelloReply; stream: Greeting[] }
  | { ok: false; failure: CallFailure; unary?: HelloReply; stream?: Greeting[] };

export interface CallsRequest {
  socket: string;
  name: string;
  count: number;
  intervalMs: number;
  deadlineMs: number;
  metadata: grpc.Metadata;
}

export function statusName(code: number): string {
  const entry = Object.entries(grpc.status).find(([, v]) => v === code);
  return entry ? entry[0] : `STATUS_${code}`;
}

export function toFailure(method: CallFailure['method'], err: grpc.ServiceError): CallFailure {
  return { method, code: err.code, codeName: statusName(err.code), details: err.details };
}

/** A client for a Unix socket; the caller closes it. */
export function connectGreeter(socket: string): GreeterClient {
  const { Client } = loadGreeter();
  return new Client(unixTarget(socket), grpc.credentials.createInsecure());
}

export function callHello(
  client: GreeterClient,
  name: string,
  metadata: grpc.Metadata,
  deadlineMs: number,
): Promise<HelloReply> {
  return new Promise((resolveCall, rejectCall) => {
    client.SayHello({ name }, metadata, { deadline: Date.now() + deadlineMs }, (err, reply) => {
      if (err) rejectCall(err);
      else if (!reply) rejectCall(new Error('SayHello returned no reply'));
      else resolveCall(reply);
    });
  });
}

export function callStream(
  client: GreeterClient,
  request: { name: string; count: number; intervalMs: number },
  metadata: grpc.Metadata,
  deadlineMs: number,
): Promise<Greeting[]> {
  return new Promise((resolveCall, rejectCall) => {
    const received: Greeting[] = [];
    const call = client.StreamGreetings(
      { name: request.name, count: request.count, interval_ms: request.intervalMs },
      metadata,
      { deadline: Date.now() + deadlineMs },
    );
    call.on('data', (g: Greeting) => received.push(g));
    call.on('error', (err: grpc.ServiceError) => rejectCall(err));
    call.on('end', () => resolveCall(received));
  });
}

function isServiceError(err: unknown): err is grpc.ServiceError {
  return typeof err === 'object' && err !== null && 'code' in err && 'details' in err;
}

/** Makes the unary call, then the streaming call, on one channel. */
export async function runCalls(req: CallsRequest): Promise<CallsOutcome> {
  const client = connectGreeter(req.socket);
  let unary: HelloReply | undefined;
  try {
    try {
      unary = await callHello(client, req.name, req.metadata, req.deadlineMs);
    } catch (err) {
      if (!isServiceError(err)) throw err;
      return { ok: false, failure: toFailure('SayHello', err) };
    }
    try {
      const stream = await callStream(client, req, req.metadata, req.deadlineMs);
      if (stream.length !== req.count) {
        return {
          ok: false,
          unary,
          stream,
          failure: {
            method: 'StreamGreetings',
            code: grpc.status.DATA_LOSS,
            codeName: 'DATA_LOSS',
            details: `expected ${req.count} greetings, received ${stream.length}`,
          },
        };
      }
      return { ok: true, unary, stream };
    } catch (err) {
      if (!isServiceError(err)) throw err;
      return { ok: false, unary, failure: toFailure('StreamGreetings', err) };
    }
  } finally {
    client.close();
  }
}
