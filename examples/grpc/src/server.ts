/**
 * The example's gRPC server: plaintext gRPC on a Unix socket. It never sees TLS; the server
 * sidecar (nginx) in front of it terminates mutual TLS and passes the verified client identity
 * in `x-sidecar-*` request headers, which the server echoes back so a client can see them.
 *
 *   node dist/examples/grpc/src/server.js --socket PATH
 *
 * One JSON line per call goes to stdout (method, caller subject, result).
 */
import { unlinkSync } from 'node:fs';
import { parseArgs } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import {
  loadGreeter,
  unixTarget,
  LIMITS,
  type Caller,
  type Greeting,
  type HelloReply,
  type HelloRequest,
  type StreamRequest,
} from './greeter.js';
import { clearStaleSocket } from './unix-socket.js';

const USAGE = `Usage: node dist/examples/grpc/src/server.js --socket PATH

Serves the Greeter service (examples/grpc/proto/greeter.proto) as plaintext gRPC on the Unix
socket PATH. Put it behind the server sidecar (examples/grpc/start.sh does). Create PATH in a
directory that only the sidecar's user can enter: whoever reaches the socket skips mutual TLS.

Options:
  --socket PATH   Unix socket to listen on (a dead socket left there is removed)
  -h, --help      this text

Stops cleanly on SIGTERM or SIGINT and removes its socket.`;

/** Request headers the server sidecar sets (and overwrites when a client sends them). */
const SIDECAR_HEADERS: Record<keyof Caller, string> = {
  client_subject: 'x-sidecar-client-subject',
  client_issuer: 'x-sidecar-client-issuer',
  client_verify: 'x-sidecar-client-verify',
  tls_protocol: 'x-sidecar-tls-protocol',
  tls_cipher: 'x-sidecar-tls-cipher',
};

function callerFrom(metadata: grpc.Metadata): Caller {
  const header = (name: string): string => {
    const v = metadata.get(name)[0];
    return typeof v === 'string' ? v : '';
  };
  return {
    client_subject: header(SIDECAR_HEADERS.client_subject),
    client_issuer: header(SIDECAR_HEADERS.client_issuer),
    client_verify: header(SIDECAR_HEADERS.client_verify),
    tls_protocol: header(SIDECAR_HEADERS.tls_protocol),
    tls_cipher: header(SIDECAR_HEADERS.tls_cipher),
  };
}

function logCall(
  method: string,
  caller: Caller,
  result: string,
  extra: Record<string, unknown> = {},
): void {
  const line = {
    time: new Date().toISOString(),
    method,
    client: caller.client_subject || null,
    result,
    ...extra,
  };
  process.stdout.write(`${JSON.stringify(line)}\n`);
}

/** Returns an error text for a bad name, or undefined when it is acceptable. */
function checkName(name: string): string | undefined {
  if (name.length === 0) return 'name must not be empty';
  if (name.length > LIMITS.nameMaxChars)
    return `name must be at most ${LIMITS.nameMaxChars} characters`;
  return undefined;
}

function invalid(details: string): Partial<grpc.StatusObject> {
  return { code: grpc.status.INVALID_ARGUMENT, details };
}

function sayHello(
  call: grpc.ServerUnaryCall<HelloRequest, HelloReply>,
  callback: grpc.sendUnaryData<HelloReply>,
): void {
  const caller = callerFrom(call.metadata);
  const problem = checkName(call.request.name);
  if (problem) {
    logCall('SayHello', caller, 'INVALID_ARGUMENT');
    callback(invalid(problem), null);
    return;
  }
  logCall('SayHello', caller, 'OK');
  callback(null, {
    message: `Hello, ${call.request.name}`,
    caller,
    server_time: new Date().toISOString(),
  });
}

function streamGreetings(call: grpc.ServerWritableStream<StreamRequest, Greeting>): void {
  const caller = callerFrom(call.metadata);
  const { name, count, interval_ms: intervalMs } = call.request;
  const problem =
    checkName(name) ??
    (count < 1 || count > LIMITS.countMax ? `count must be 1..${LIMITS.countMax}` : undefined) ??
    (intervalMs > LIMITS.intervalMaxMs
      ? `interval_ms must be 0..${LIMITS.intervalMaxMs}`
      : undefined);
  if (problem) {
    logCall('StreamGreetings', caller, 'INVALID_ARGUMENT');
    call.emit('error', { code: grpc.status.INVALID_ARGUMENT, details: problem });
    return;
  }
  let index = 0;
  let finished = false;
  let timer: NodeJS.Timeout | undefined;
  // grpc-js also reports 'cancelled' when a finished call's stream closes: only a client that
  // went away mid-stream counts.
  call.on('cancelled', () => {
    if (timer) clearTimeout(timer);
    if (!finished) logCall('StreamGreetings', caller, 'CANCELLED', { sent: index });
  });
  const sendNext = (): void => {
    if (call.cancelled) return;
    index += 1;
    call.write({ index, count, message: `Greeting ${index} of ${count} for ${name}`, caller });
    if (index < count) {
      timer = setTimeout(sendNext, intervalMs);
    } else {
      finished = true;
      logCall('StreamGreetings', caller, 'OK', { sent: count });
      call.end();
    }
  };
  sendNext();
}

async function main(argv: string[]): Promise<number> {
  let socketPath: string | undefined;
  try {
    const { values } = parseArgs({
      args: argv,
      options: { socket: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
      strict: true,
    });
    if (values.help) {
      console.log(USAGE);
      return 0;
    }
    socketPath = values.socket;
  } catch (err) {
    console.error(`greeter-server: ${(err as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (!socketPath) {
    console.error(`greeter-server: --socket PATH is required\n\n${USAGE}`);
    return 2;
  }
  const path = socketPath;
  await clearStaleSocket(path);

  const { service } = loadGreeter();
  const server = new grpc.Server();
  server.addService(service, { SayHello: sayHello, StreamGreetings: streamGreetings });
  await new Promise<void>((resolveBind, rejectBind) => {
    server.bindAsync(unixTarget(path), grpc.ServerCredentials.createInsecure(), (err) =>
      err ? rejectBind(new Error(`cannot listen on ${path}: ${err.message}`)) : resolveBind(),
    );
  });
  process.stdout.write(
    `${JSON.stringify({ time: new Date().toISOString(), listening: path, pid: process.pid })}\n`,
  );

  await new Promise<void>((resolveStop) => {
    const stop = (signal: string): void => {
      process.stdout.write(
        `${JSON.stringify({ time: new Date().toISOString(), stopping: signal })}\n`,
      );
      const force = setTimeout(() => server.forceShutdown(), 3000);
      server.tryShutdown(() => {
        clearTimeout(force);
        resolveStop();
      });
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
  try {
    unlinkSync(path);
  } catch {
    // grpc-js may already have removed it; nothing left to clean.
  }
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    console.error(`greeter-server: ${(err as Error).message}`);
    process.exitCode = 1;
  },
);
