/**
 * The Greeter service of examples/grpc: loads `proto/greeter.proto` at run time with
 * @grpc/proto-loader and gives the server and the client typed views of its messages.
 */
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

/** What the server sidecar told the server about the caller (all empty without a sidecar). */
export interface Caller {
  client_subject: string;
  client_issuer: string;
  client_verify: string;
  tls_protocol: string;
  tls_cipher: string;
}

export interface HelloRequest {
  name: string;
}

export interface HelloReply {
  message: string;
  caller: Caller | null;
  server_time: string;
}

export interface StreamRequest {
  name: string;
  count: number;
  interval_ms: number;
}

export interface Greeting {
  index: number;
  count: number;
  message: string;
  caller: Caller | null;
}

/** Limits the server enforces (INVALID_ARGUMENT beyond them); the client checks them first. */
export const LIMITS = { nameMaxChars: 128, countMax: 1000, intervalMaxMs: 5000 } as const;

/** The client stub's calls that the example uses, typed. */
export interface GreeterClient extends grpc.Client {
  SayHello(
    request: HelloRequest,
    metadata: grpc.Metadata,
    options: grpc.CallOptions,
    callback: (err: grpc.ServiceError | null, reply?: HelloReply) => void,
  ): grpc.ClientUnaryCall;
  StreamGreetings(
    request: StreamRequest,
    metadata: grpc.Metadata,
    options: grpc.CallOptions,
  ): grpc.ClientReadableStream<Greeting>;
}

type GreeterClientConstructor = new (
  address: string,
  credentials: grpc.ChannelCredentials,
  options?: grpc.ClientOptions,
) => GreeterClient;

/**
 * Finds greeter.proto: the compiled module lives in dist/examples/grpc/src/, the proto stays in
 * examples/grpc/proto/ of the repository.
 */
export function protoPath(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  const candidates = [
    join(here, '..', 'proto', 'greeter.proto'),
    resolve(here, '..', '..', '..', '..', 'examples', 'grpc', 'proto', 'greeter.proto'),
  ];
  const found = candidates.find((p) => existsSync(p));
  if (found === undefined) {
    throw new Error(
      `greeter.proto not found (looked in ${candidates.join(', ')}); run from the akv repository`,
    );
  }
  return found;
}

interface LoadedGreeter {
  service: grpc.ServiceDefinition;
  Client: GreeterClientConstructor;
}

let loaded: LoadedGreeter | undefined;

/** Loads the proto once; keepCase keeps the snake_case field names of the .proto file. */
export function loadGreeter(): LoadedGreeter {
  if (loaded) return loaded;
  const definition = protoLoader.loadSync(protoPath(), {
    keepCase: true,
    longs: Number,
    enums: String,
    defaults: true,
    oneofs: true,
  });
  const root = grpc.loadPackageDefinition(definition);
  const pkg = ((root.akv as grpc.GrpcObject).demo as grpc.GrpcObject).v1 as grpc.GrpcObject;
  const ctor = pkg.Greeter as grpc.ServiceClientConstructor;
  loaded = { service: ctor.service, Client: ctor as unknown as GreeterClientConstructor };
  return loaded;
}

/** grpc-js target for a Unix socket path (absolute, as the UDS resolver wants). */
export function unixTarget(socketPath: string): string {
  return `unix:${resolve(socketPath)}`;
}
