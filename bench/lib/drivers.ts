/**
 * The C load drivers in bench/driver (built here with make): akv-sign-bench (signatures from one
 * long-lived process), akv-tls-load (full TLS handshakes) and akv-rusage (cost of one command).
 * Each prints one JSON object; these functions run them and check what they print.
 */
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { run, runChecked } from './proc.js';
import { REPO_ROOT } from './services.js';

const DRIVER_DIR = join(REPO_ROOT, 'bench', 'driver');
const BUILD_DIR = join(DRIVER_DIR, 'build');

export async function buildDrivers(): Promise<void> {
  await runChecked('make', ['-s', '-C', DRIVER_DIR]);
}

function parseJsonLine<T>(what: string, stdout: string, stderr: string): T {
  const line = stdout.trim().split('\n').pop() ?? '';
  try {
    return JSON.parse(line) as T;
  } catch {
    throw new Error(`${what} printed no result: ${stderr.trim() || stdout.trim()}`);
  }
}

function readLatencies(file: string): number[] {
  const values = readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l !== '')
    .map(Number);
  rmSync(file, { force: true });
  return values;
}

export interface SignRunOptions {
  /** Key URI (with provider akv_provider) or PEM file path. */
  key: string;
  providers: string[];
  threads: number;
  /** Exactly one of ops (per thread) and durationMs. */
  ops?: number;
  durationMs?: number;
  warmup?: number;
  env: NodeJS.ProcessEnv;
  /** Where the driver writes per-operation latencies (µs); omitted = not recorded. */
  latencyFile?: string;
  /** Processes whose CPU time the driver reads at the start and end of the measured window. */
  watchPids?: number[];
}

export interface SignRunResult {
  ops: number;
  errors: number;
  threads: number;
  elapsed_us: number;
  cpu_user_us: number;
  cpu_sys_us: number;
  maxrss_kb: number;
  /** CPU µs each watchPids process used in the measured window (warm-up excluded). */
  watched_cpu_us: number[];
  /** Per-operation latencies in µs (when latencyFile was given). */
  latenciesUs: number[];
}

export async function runSignBench(o: SignRunOptions): Promise<SignRunResult> {
  const args = ['--key', o.key, '--threads', String(o.threads), '--warmup', String(o.warmup ?? 10)];
  for (const p of o.providers) args.push('--provider', p);
  if (o.ops !== undefined) args.push('--ops', String(o.ops));
  if (o.durationMs !== undefined) args.push('--duration-ms', String(o.durationMs));
  if (o.latencyFile) args.push('--latency-file', o.latencyFile);
  for (const pid of o.watchPids ?? []) args.push('--watch-pid', String(pid));
  const r = await run(join(BUILD_DIR, 'akv-sign-bench'), args, { env: o.env });
  const result = parseJsonLine<Omit<SignRunResult, 'latenciesUs'>>(
    'akv-sign-bench',
    r.stdout,
    r.stderr,
  );
  if (r.status !== 0 || result.errors > 0) {
    throw new Error(`akv-sign-bench ${args.join(' ')}: ${r.stderr.trim()}`);
  }
  return { ...result, latenciesUs: o.latencyFile ? readLatencies(o.latencyFile) : [] };
}

export interface TlsRunOptions {
  port: number;
  threads: number;
  durationMs: number;
  latencyFile?: string;
  /** Offer each thread's previous session (TLS 1.2): measures a server with resumption on. */
  resume?: boolean;
}

export interface TlsRunResult {
  handshakes: number;
  /** Handshakes the client saw resumed: must be 0 (every handshake a full one) unless `resume`. */
  resumed: number;
  errors: number;
  threads: number;
  elapsed_us: number;
  cpu_user_us: number;
  cpu_sys_us: number;
  protocol: string;
  cipher: string;
  server_sigalg: string;
  latenciesUs: number[];
}

export async function runTlsLoad(o: TlsRunOptions): Promise<TlsRunResult> {
  const args = [
    '--connect',
    `127.0.0.1:${o.port}`,
    '--threads',
    String(o.threads),
    '--duration-ms',
    String(o.durationMs),
  ];
  if (o.latencyFile) args.push('--latency-file', o.latencyFile);
  if (o.resume) args.push('--resume');
  const r = await run(join(BUILD_DIR, 'akv-tls-load'), args);
  const result = parseJsonLine<Omit<TlsRunResult, 'latenciesUs'>>(
    'akv-tls-load',
    r.stdout,
    r.stderr,
  );
  if (r.status !== 0) throw new Error(`akv-tls-load ${args.join(' ')}: ${r.stderr.trim()}`);
  if (result.resumed > 0 && !o.resume) {
    throw new Error(
      `akv-tls-load: ${result.resumed} handshakes were resumed; the measurement needs full handshakes only`,
    );
  }
  // A few failed handshakes in a long run are reported, not fatal; many mean a broken setup.
  if (result.errors > Math.max(5, result.handshakes / 100)) {
    throw new Error(
      `akv-tls-load: ${result.errors} of ${result.handshakes + result.errors} handshakes failed: ${r.stderr.trim()}`,
    );
  }
  return { ...result, latenciesUs: o.latencyFile ? readLatencies(o.latencyFile) : [] };
}

export interface CommandCost {
  wall_us: number;
  user_us: number;
  sys_us: number;
  maxrss_kb: number;
}

/** Runs one command under akv-rusage; throws with its stderr when it fails. */
export async function measureCommand(
  command: string,
  args: readonly string[],
  env: NodeJS.ProcessEnv,
): Promise<CommandCost> {
  const r = await run(join(BUILD_DIR, 'akv-rusage'), ['--', command, ...args], { env });
  const result = parseJsonLine<CommandCost & { status: number }>('akv-rusage', r.stdout, r.stderr);
  if (result.status !== 0) {
    throw new Error(`${command} ${args.join(' ')} exited ${result.status}: ${r.stderr.trim()}`);
  }
  return result;
}
