/**
 * The example's gRPC client: plaintext gRPC to a Unix socket, normally the client sidecar's,
 * which carries the call over mutual TLS to the server sidecar. Makes one unary and one
 * server-streaming call, or measures the latency of unary calls (`--latency N`).
 */
import { parseArgs } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import { runCalls, type CallFailure } from './calls.js';
import { measureLatency } from './latency.js';
import { LIMITS } from './greeter.js';

const USAGE = `Usage: node dist/examples/grpc/src/client.js --socket PATH [options]

Calls the Greeter service on the Unix socket PATH (the client sidecar's socket in the demo; the
server's own socket to bypass the sidecars). Prints what the server saw of the caller: the
verified client certificate and the TLS session of the sidecar-to-sidecar hop.

Options:
  --socket PATH         Unix socket to call (required)
  --name NAME           name to greet (default: "akv")
  --count N             greetings in the streaming call, 1..${LIMITS.countMax} (default: 5)
  --interval-ms MS      pause between streamed greetings, 0..${LIMITS.intervalMaxMs} (default: 20)
  --header NAME=VALUE   extra request metadata, repeatable (e.g. to show the sidecar overwrites
                        x-sidecar-* headers a client tries to forge)
  --latency N           instead: N sequential unary calls after a warm-up; prints the statistics
  --warmup N            warm-up calls before --latency (default: 5)
  --deadline-ms MS      deadline of each call (default: 10000)
  --json                one JSON document on stdout instead of text
  -h, --help            this text

Exit status: 0 when every call succeeded, 1 when a call failed, 2 on bad usage.`;

interface ClientOptions {
  socket: string;
  name: string;
  count: number;
  intervalMs: number;
  headers: Array<[string, string]>;
  latency?: number;
  warmup: number;
  deadlineMs: number;
  json: boolean;
}

class UsageProblem extends Error {}

function intOption(
  raw: string | undefined,
  flag: string,
  min: number,
  max: number,
  fallback: number,
): number {
  if (raw === undefined) return fallback;
  if (!/^\d+$/.test(raw)) throw new UsageProblem(`${flag} wants a whole number, got '${raw}'`);
  const n = Number(raw);
  if (n < min || n > max) throw new UsageProblem(`${flag} must be ${min}..${max}, got ${n}`);
  return n;
}

/** Returns the parsed options, or 'help'. Throws UsageProblem on bad input. */
function parseOptions(argv: string[]): ClientOptions | 'help' {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      options: {
        socket: { type: 'string' },
        name: { type: 'string' },
        count: { type: 'string' },
        'interval-ms': { type: 'string' },
        header: { type: 'string', multiple: true },
        latency: { type: 'string' },
        warmup: { type: 'string' },
        'deadline-ms': { type: 'string' },
        json: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
    });
  } catch (err) {
    throw new UsageProblem((err as Error).message);
  }
  const v = parsed.values;
  if (v.help) return 'help';
  if (!v.socket) throw new UsageProblem('--socket PATH is required');
  const name = v.name ?? 'akv';
  if (name.length === 0 || name.length > LIMITS.nameMaxChars) {
    throw new UsageProblem(`--name must be 1..${LIMITS.nameMaxChars} characters`);
  }
  const headers = (v.header ?? []).map((h): [string, string] => {
    const eq = h.indexOf('=');
    if (eq <= 0) throw new UsageProblem(`--header wants NAME=VALUE, got '${h}'`);
    const key = h.slice(0, eq).toLowerCase();
    if (!/^[a-z0-9][a-z0-9._-]*$/.test(key) || key.startsWith('grpc-')) {
      throw new UsageProblem(`--header name '${key}' is not a usable gRPC metadata key`);
    }
    return [key, h.slice(eq + 1)];
  });
  return {
    socket: v.socket,
    name,
    count: intOption(v.count, '--count', 1, LIMITS.countMax, 5),
    intervalMs: intOption(v['interval-ms'], '--interval-ms', 0, LIMITS.intervalMaxMs, 20),
    headers,
    latency: v.latency === undefined ? undefined : intOption(v.latency, '--latency', 1, 100000, 0),
    warmup: intOption(v.warmup, '--warmup', 0, 10000, 5),
    deadlineMs: intOption(v['deadline-ms'], '--deadline-ms', 1, 600000, 10000),
    json: v.json ?? false,
  };
}

/** A sentence saying what to check, for the status codes this setup produces. */
function hintFor(failure: CallFailure, socket: string): string {
  switch (failure.code) {
    case grpc.status.UNAVAILABLE:
      return failure.details.includes('client sidecar:')
        ? "the client sidecar could not complete mutual TLS with the server sidecar (server not running, certificate not trusted, or the HSM agent unreachable): see the client sidecar's logs/error.log"
        : `nothing answers on ${socket}: is the demo running (examples/grpc/start.sh)?`;
    case grpc.status.UNAUTHENTICATED:
      return 'the server sidecar refused this client: it must present a certificate issued by the demo CA';
    case grpc.status.DEADLINE_EXCEEDED:
      return 'no answer in time: check that the agent and the HSM (or emulator) respond (bin/akv doctor)';
    case grpc.status.INTERNAL:
    case grpc.status.UNKNOWN:
      return "see the sidecars' logs/error.log";
    default:
      return '';
  }
}

async function main(argv: string[]): Promise<number> {
  let opts: ClientOptions | 'help';
  try {
    opts = parseOptions(argv);
  } catch (err) {
    if (!(err instanceof UsageProblem)) throw err;
    console.error(`greeter-client: ${err.message}\n\n${USAGE}`);
    return 2;
  }
  if (opts === 'help') {
    console.log(USAGE);
    return 0;
  }
  const metadata = new grpc.Metadata();
  for (const [k, val] of opts.headers) metadata.add(k, val);

  if (opts.latency !== undefined) {
    const result = await measureLatency({
      socket: opts.socket,
      calls: opts.latency,
      warmup: opts.warmup,
      deadlineMs: opts.deadlineMs,
      metadata,
    });
    if (!result.ok) {
      report(opts, { ok: false, failure: result.failure });
      return 1;
    }
    if (opts.json) console.log(JSON.stringify({ ok: true, latency: result.stats }));
    else {
      const s = result.stats;
      console.log(
        `${s.calls} unary calls on ${opts.socket}: mean ${s.meanMs.toFixed(3)} ms, p50 ${s.p50Ms.toFixed(3)} ms, ` +
          `p90 ${s.p90Ms.toFixed(3)} ms, p99 ${s.p99Ms.toFixed(3)} ms, min ${s.minMs.toFixed(3)} ms, max ${s.maxMs.toFixed(3)} ms`,
      );
    }
    return 0;
  }

  const outcome = await runCalls({
    socket: opts.socket,
    name: opts.name,
    count: opts.count,
    intervalMs: opts.intervalMs,
    deadlineMs: opts.deadlineMs,
    metadata,
  });
  report(opts, outcome);
  return outcome.ok ? 0 : 1;
}

function report(
  opts: ClientOptions,
  outcome: Awaited<ReturnType<typeof runCalls>> | { ok: false; failure: CallFailure },
): void {
  if (opts.json) {
    console.log(JSON.stringify(outcome));
    if (outcome.ok) return;
  }
  if (!outcome.ok) {
    const f = outcome.failure;
    const hint = hintFor(f, opts.socket);
    console.error(`greeter-client: ${f.method} failed: ${f.codeName}: ${f.details}`);
    if (hint) console.error(`hint: ${hint}`);
    return;
  }
  const u = outcome.unary;
  const c = u.caller;
  console.log(`unary     SayHello -> "${u.message}"`);
  console.log(
    `          client certificate: ${c?.client_subject || '(none: called without the server sidecar)'}`,
  );
  if (c?.client_subject) {
    console.log(`          issued by:          ${c.client_issuer}  (verify: ${c.client_verify})`);
    console.log(`          sidecar-to-sidecar: ${c.tls_protocol} ${c.tls_cipher}`);
  }
  console.log(`streaming StreamGreetings -> ${outcome.stream.length} messages:`);
  for (const g of outcome.stream) console.log(`          [${g.index}/${g.count}] ${g.message}`);
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    console.error(`greeter-client: ${(err as Error).message}`);
    process.exitCode = 1;
  },
);
