/**
 * Shared set-up of the provider integration tests: a real emulator and agent from
 * `bin/akv dev up`, keys made with `bin/akv key create`, and the real `openssl` command run with
 * the exported environment, exactly as a person would type it.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { cleanAkvEnv, devDown, devUp } from '../helpers/dev.js';
import { AKV_BIN, REPO_ROOT } from '../helpers/emulator.js';

/** `-provider akv_provider -provider default`, as the design's examples write it. */
export const PROVIDERS = ['-provider', 'akv_provider', '-provider', 'default'];
export const PROVIDER_DIR = join(REPO_ROOT, 'provider');

/**
 * The OpenSSL these tests run (the version matrix, docs/compatibility.md). By default the system's
 * `openssl` with the module of `make -C provider` (provider/build). With AKV_TEST_OPENSSL_PREFIX=DIR
 * (an OpenSSL installed in DIR, as scripts/matrix-build.sh makes them): DIR/bin/openssl (its
 * libraries by rpath) and the module built against DIR (`make OPENSSL_PREFIX=DIR`, in
 * provider/build/<name of DIR>). AKV_TEST_OPENSSL_MODULES=DIR2 loads the module from DIR2 instead
 * (the 3.0-built module in a newer OpenSSL: a distribution upgrade).
 */
export const MATRIX_OPENSSL_PREFIX = process.env.AKV_TEST_OPENSSL_PREFIX
  ? resolve(process.env.AKV_TEST_OPENSSL_PREFIX)
  : undefined;
/** The openssl command: `openssl` from PATH, or the matrix prefix's. */
export const OPENSSL = MATRIX_OPENSSL_PREFIX
  ? join(MATRIX_OPENSSL_PREFIX, 'bin', 'openssl')
  : 'openssl';
/** Where `make -C provider` puts the module and drivers for this OpenSSL. */
export const PROVIDER_BUILD_DIR = MATRIX_OPENSSL_PREFIX
  ? join(PROVIDER_DIR, 'build', basename(MATRIX_OPENSSL_PREFIX))
  : join(PROVIDER_DIR, 'build');
/** OPENSSL_MODULES for the tests: the directory holding the akv_provider.so to load. */
export const PROVIDER_MODULES_DIR = process.env.AKV_TEST_OPENSSL_MODULES
  ? resolve(process.env.AKV_TEST_OPENSSL_MODULES)
  : PROVIDER_BUILD_DIR;
/**
 * Extra environment for the example scripts (examples/haproxy, examples/nginx) in a matrix run:
 * the prefix's openssl first on PATH, the module built for it, and the server binary the matrix
 * built (AKV_TEST_HAPROXY / AKV_TEST_NGINX: its directory first on PATH). Empty otherwise.
 */
export function matrixExampleEnv(): Record<string, string> {
  const dirs = [
    ...(MATRIX_OPENSSL_PREFIX ? [join(MATRIX_OPENSSL_PREFIX, 'bin')] : []),
    ...['AKV_TEST_HAPROXY', 'AKV_TEST_NGINX']
      .map((name) => process.env[name])
      .filter((path): path is string => Boolean(path))
      .map((path) => dirname(resolve(path))),
  ];
  if (dirs.length === 0) return {};
  return {
    PATH: [...dirs, process.env.PATH ?? ''].join(':'),
    ...(MATRIX_OPENSSL_PREFIX
      ? { AKV_PROVIDER_MODULE: join(PROVIDER_MODULES_DIR, 'akv_provider.so') }
      : {}),
  };
}

/** `make -C provider` arguments selecting this OpenSSL. */
export const MAKE_OPENSSL_ARGS = MATRIX_OPENSSL_PREFIX
  ? [`OPENSSL_PREFIX=${MATRIX_OPENSSL_PREFIX}`]
  : [];

export interface Run {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  out: Buffer;
}

export interface ProviderEnv {
  hsm: string;
  /** Temporary directory for files the test writes (dev environment lives in `dir/dev`). */
  dir: string;
  env: NodeJS.ProcessEnv;
  /** Path of a file inside `dir`. */
  file(name: string): string;
  /** Runs `openssl ARGS` (synchronously; the agent and emulator are other processes). */
  openssl(args: string[], options?: { input?: Buffer | string; env?: NodeJS.ProcessEnv }): Run;
  /** Like openssl() but asserts exit status 0. */
  opensslOk(args: string[], options?: { input?: Buffer | string; env?: NodeJS.ProcessEnv }): Run;
  /** Runs `bin/akv ARGS` and asserts success. */
  akv(args: string[]): Run;
  /** Runs `bin/akv ARGS` whatever the outcome. */
  akvRun(args: string[]): Run;
  /** `akv key create` with the HSM name filled in; returns the key's URI. */
  createKey(name: string, ...args: string[]): string;
  /** An openssl.cnf activating default then akv_provider (agent_socket from the environment). */
  writeOpensslCnf(name?: string): string;
  down(): Promise<void>;
}

/** `openssl` is the matrix's (OPENSSL) in every runner below; other commands run as given. */
function command(cmd: string): string {
  return cmd === 'openssl' ? OPENSSL : cmd;
}

/**
 * Runs a command to its end (killed after `timeoutMs`, 120 s by default) and keeps its output.
 * `openssl` is the one this run selects (OPENSSL).
 */
export function runSync(
  cmd: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  cwd: string,
  input?: Buffer | string,
  timeoutMs = 120_000,
): Run {
  const r = spawnSync(command(cmd), args, {
    env,
    cwd,
    input,
    maxBuffer: 64 * 1024 * 1024,
    timeout: timeoutMs,
  });
  return {
    status: r.status,
    signal: r.signal,
    stdout: r.stdout?.toString() ?? '',
    stderr: r.stderr?.toString() ?? '',
    out: r.stdout ?? Buffer.alloc(0),
  };
}

export interface ProviderEnvOptions {
  /**
   * `akv dev up --socket-group GROUP`: processes of GROUP (e.g. www-data server workers) may
   * talk to the agent. The test directory is then opened for passing through (0711), as /tmp is.
   */
  socketGroup?: string;
  /** `akv dev up --latency-ms N`: every emulator request takes N ms. */
  latencyMs?: number;
}

/** An openssl.cnf activating default, then akv_provider with these lines in its section. */
export function opensslCnf(akvSection: string[]): string {
  return [
    'openssl_conf = openssl_init',
    '[openssl_init]',
    'providers = provider_sect',
    '[provider_sect]',
    'default = default_sect',
    'akv_provider = akv_sect',
    '[default_sect]',
    'activate = 1',
    '[akv_sect]',
    'activate = 1',
    ...akvSection,
    '',
  ].join('\n');
}

/** runSync's asynchronous twin: the event loop keeps running (a test-side server must answer). */
export function runAsync(
  cmd: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  cwd: string,
): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(command(cmd), args, { cwd, env });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => err.push(c));
    child.on('error', reject);
    child.on('close', (status, signal) => {
      const o = Buffer.concat(out);
      resolve({
        status,
        signal,
        stdout: o.toString(),
        stderr: Buffer.concat(err).toString(),
        out: o,
      });
    });
  });
}

/** Starts a dev environment (emulator + agent) for one test file. */
export async function startProviderEnv(
  prefix: string,
  hsm: string,
  options: ProviderEnvOptions = {},
): Promise<ProviderEnv> {
  const dir = mkdtempSync(join(tmpdir(), `akv-${prefix}-`));
  const devDir = join(dir, 'dev');
  if (options.socketGroup) chmodSync(dir, 0o711);
  const vars = await devUp(devDir, hsm, [
    ...(options.socketGroup ? ['--socket-group', options.socketGroup] : []),
    ...(options.latencyMs !== undefined ? ['--latency-ms', String(options.latencyMs)] : []),
  ]);
  const env: NodeJS.ProcessEnv = {
    ...cleanAkvEnv(),
    ...vars,
    OPENSSL_MODULES: PROVIDER_MODULES_DIR,
  };
  delete env.OPENSSL_CONF;
  const self: ProviderEnv = {
    hsm,
    dir,
    env,
    file: (name) => join(dir, name),
    openssl(args, options = {}) {
      return runSync(OPENSSL, args, options.env ?? env, dir, options.input);
    },
    opensslOk(args, options = {}) {
      const r = self.openssl(args, options);
      assert.equal(
        r.status,
        0,
        `openssl ${args.join(' ')} failed (${r.status} ${r.signal}):\n${r.stderr}`,
      );
      return r;
    },
    akvRun(args) {
      return runSync(AKV_BIN, args, env, dir);
    },
    akv(args) {
      const r = runSync(AKV_BIN, args, env, dir);
      assert.equal(
        r.status,
        0,
        `akv ${args.join(' ')} failed (${r.status}):\n${r.stderr}${r.stdout}`,
      );
      return r;
    },
    createKey(name, ...args) {
      self.akv(['key', 'create', '--hsm-name', hsm, '--name', name, ...args]);
      return `managedhsm:${hsm}:${name}`;
    },
    writeOpensslCnf(name = 'openssl.cnf') {
      const path = join(dir, name);
      writeFileSync(path, opensslCnf([`agent_socket = ${env.AKV_AGENT_SOCKET ?? ''}`]));
      return path;
    },
    async down() {
      await devDown(devDir);
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return self;
}

/** Asserts a failed run: non-zero exit, no signal (no crash / core dump), and a message. */
export function assertCleanFailure(r: Run, pattern: RegExp, what: string): void {
  assert.notEqual(r.status, 0, `${what}: expected failure, got exit 0\n${r.stdout}`);
  assert.equal(r.signal, null, `${what}: killed by ${r.signal} (crash?)\n${r.stderr}`);
  assert.ok(
    r.status !== null && r.status < 128,
    `${what}: exit status ${r.status} looks like a crash`,
  );
  assert.match(r.stderr, pattern, `${what}: stderr lacks ${pattern}:\n${r.stderr}`);
}

/** Runs `make -s -C provider TARGET` once per process (the build is idempotent). */
export function makeProvider(target: string): Run {
  const r = runSync(
    'make',
    ['-s', '-C', PROVIDER_DIR, ...MAKE_OPENSSL_ARGS, target],
    process.env,
    REPO_ROOT,
  );
  assert.equal(r.status, 0, `make ${target} failed:\n${r.stdout}${r.stderr}`);
  return r;
}

/** A free TCP port on 127.0.0.1 (bound and released; the caller binds it right after). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() =>
        resolve(typeof address === 'object' && address !== null ? address.port : 0),
      );
    });
  });
}

/**
 * `KEY.ref.pem`, a key reference for managedhsm:<hsm>:KEY, and `KEY.crt`, a self-signed
 * certificate for it (CN and SAN localhost) signed in the HSM through `env`'s openssl.cnf.
 */
export function keyrefWithCertificate(pe: ProviderEnv, key: string, env: NodeJS.ProcessEnv): void {
  pe.akv(['keyref', `managedhsm:${pe.hsm}:${key}`, '--out', pe.file(`${key}.ref.pem`)]);
  pe.opensslOk(
    [
      'req',
      '-new',
      '-x509',
      '-key',
      pe.file(`${key}.ref.pem`),
      '-subj',
      '/CN=localhost',
      '-addext',
      'subjectAltName=DNS:localhost',
      '-days',
      '2',
      '-out',
      pe.file(`${key}.crt`),
    ],
    { env },
  );
}

/**
 * Starts `openssl s_server -accept 127.0.0.1:PORT -cert KEY.crt -key KEY.ref.pem ARGS` on a free
 * port and resolves once it accepts connections. Its stdin stays open (without -www, s_server
 * ends a connection when its stdin ends).
 */
export async function startSServer(
  pe: ProviderEnv,
  key: string,
  args: string[],
  env: NodeJS.ProcessEnv,
): Promise<{ port: number; proc: ChildProcess }> {
  const port = await freePort();
  const proc = spawn(
    OPENSSL,
    [
      's_server',
      '-accept',
      `127.0.0.1:${port}`,
      '-cert',
      pe.file(`${key}.crt`),
      '-key',
      pe.file(`${key}.ref.pem`),
      ...args,
    ],
    { env, cwd: pe.dir, stdio: ['pipe', 'pipe', 'pipe'] },
  );
  let output = '';
  await new Promise<void>((resolve, reject) => {
    proc.stdout?.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes('ACCEPT')) resolve();
    });
    proc.stderr?.on('data', (c: Buffer) => (output += c.toString()));
    proc.on('exit', (code) =>
      reject(new Error(`s_server exited (${code}) before accepting:\n${output}`)),
    );
  });
  return { port, proc };
}
