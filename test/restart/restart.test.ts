/**
 * Restarts that drop nothing, with the counts asserted. The agent runs as akv-agent.socket runs
 * it: a holder keeps the listening socket and passes it to each agent with LISTEN_FDS
 * (test/helpers/socket-holder.ts). Load: akv-sign-bench (bench/driver), one long-lived process
 * signing through the real akv_provider from 8 threads, each with its pooled agent connection,
 * the way an nginx worker or a gRPC server does. Events:
 *  - SIGTERM and a new agent a second later: no signature fails;
 *  - SIGTERM at a slow HSM with operations in flight: they finish and are answered (the log says
 *    how many were in flight; that many OK audit lines follow), none is cut, none fails;
 *  - kill -9 with operations in flight: only those may fail, each with a clean error, and the
 *    next ones succeed on the next agent (the provider sends an operation that may run twice once
 *    more on a fresh connection, so in practice none fails);
 *  - the same kill -9 under HAProxy with ssl-mode-async (each handshake's signature on its own
 *    agent connection, paused in an OpenSSL async job), loaded with full handshakes by
 *    akv-tls-load: at most the handshakes in flight fail, HAProxy stays up, the next succeed.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import {
  AKV_BIN,
  REPO_ROOT,
  emulatorConfig,
  startEmulator,
  type RunningEmulator,
} from '../helpers/emulator.js';
import { holdSocket, type SocketHolder } from '../helpers/socket-holder.js';
import { freePort, opensslCnf } from '../provider/openssl-env.js';

const HSM = 'restarthsm';
const KEY = `managedhsm:${HSM}:restart-ec`;
const THREADS = 8;
const SIGN_BENCH = join(REPO_ROOT, 'bench', 'driver', 'build', 'akv-sign-bench');
const TLS_LOAD = join(REPO_ROOT, 'bench', 'driver', 'build', 'akv-tls-load');
const PROVIDER_SO = join(REPO_ROOT, 'provider', 'build', 'akv_provider.so');
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const portOpen = (port: number): Promise<boolean> =>
  new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });

interface BenchResult {
  ops: number;
  errors: number;
  status: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
}

type LogLine = Record<string, unknown>;

describe('agent restarts under socket activation, under load', () => {
  let emulator: RunningEmulator;
  let holder: SocketHolder;
  let dir: string;
  let logFile: string;

  before(async () => {
    const built = spawnSync('make', ['-s', '-C', join(REPO_ROOT, 'bench', 'driver')], {
      encoding: 'utf8',
    });
    assert.equal(built.status, 0, `building bench/driver: ${built.stderr}`);
    emulator = await startEmulator();
    await emulator.keyClient().createKey('restart-ec', 'EC-HSM', { curve: 'P-256' });
    dir = mkdtempSync(join(tmpdir(), 'akv-restart-'));
    logFile = join(dir, 'agent.log');
    const configFile = join(dir, 'config.json');
    writeFileSync(
      configFile,
      JSON.stringify({
        socket: join(dir, 'unused', 'agent.sock'),
        ...emulatorConfig(emulator, HSM),
        log: { level: 'info', file: logFile },
      }),
    );
    const env: NodeJS.ProcessEnv = { ...process.env };
    for (const name of ['AKV_CONFIG', 'AKV_AGENT_SOCKET', 'AKV_LOG_FILE', 'AKV_LOG_LEVEL'])
      delete env[name];
    holder = await holdSocket(
      join(dir, 'agent.sock'),
      [AKV_BIN, 'agent', '--config', configFile],
      env,
    );
  });

  /** The agent running now, stopped after each test (also when the test failed half-way). */
  let running: number | undefined;
  const start = async (): Promise<number> => {
    try {
      running = await holder.startAgent();
    } catch (err) {
      throw new Error(`${(err as Error).message}; holder output: ${holder.output()}`);
    }
    return running;
  };
  afterEach(async () => {
    if (running === undefined) return;
    const pid = running;
    running = undefined;
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      return;
    }
    await holder.exited(pid);
  });

  after(async () => {
    await holder?.stop();
    await emulator?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  function logLines(): LogLine[] {
    let text = '';
    try {
      text = readFileSync(logFile, 'utf8');
    } catch {
      return [];
    }
    return text
      .split('\n')
      .filter((l) => l.trim() !== '')
      .map((l) => JSON.parse(l) as LogLine);
  }

  /** akv-sign-bench for `ms` through the held socket; resolves when it ends. */
  function signFor(ms: number): Promise<BenchResult> {
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      OPENSSL_MODULES: join(REPO_ROOT, 'provider', 'build'),
      AKV_AGENT_SOCKET: holder.path,
      AKV_AGENT_AUTOSTART: '0',
    };
    delete env.OPENSSL_CONF;
    return new Promise((resolve, reject) => {
      const child = spawn(
        SIGN_BENCH,
        [
          '--key',
          KEY,
          '--provider',
          'akv_provider',
          '--provider',
          'default',
          '--threads',
          String(THREADS),
          '--duration-ms',
          String(ms),
        ],
        { env },
      );
      let out = '';
      let err = '';
      child.stdout.on('data', (c: Buffer) => (out += c.toString()));
      child.stderr.on('data', (c: Buffer) => (err += c.toString()));
      child.on('error', reject);
      child.on('close', (status, signal) => {
        const line = out.trim().split('\n').pop() ?? '';
        let parsed: { ops?: number; errors?: number } = {};
        try {
          parsed = JSON.parse(line) as { ops?: number; errors?: number };
        } catch {
          /* asserted below */
        }
        resolve({
          ops: parsed.ops ?? -1,
          errors: parsed.errors ?? -1,
          status,
          signal,
          stderr: err,
        });
      });
    });
  }

  async function until(test: () => boolean, what: string): Promise<void> {
    for (let i = 0; !test(); i++) {
      if (i > 600) throw new Error(`timed out waiting for ${what}; agents: ${holder.output()}`);
      await sleep(50);
    }
  }

  /** OK audit lines written by agent PID. */
  const okBy = (pid: number): LogLine[] =>
    logLines().filter((l) => l.audit === true && l.pid === pid && l.status === 'OK');

  it('SIGTERM, one second without an agent, a new agent: no signature fails', async (t) => {
    await emulator.setLatency(20);
    const first = await start();
    const load = signFor(6000);
    await sleep(1500);
    process.kill(first, 'SIGTERM');
    running = undefined;
    assert.equal(await holder.exited(first), 0, 'the agent did not exit 0 on SIGTERM');
    await sleep(1000);
    const second = await start();
    const r = await load;
    t.diagnostic(`${r.ops} signatures, ${r.errors} failed, across SIGTERM + 1 s gap + restart`);
    assert.equal(r.status, 0, `akv-sign-bench: ${r.stderr}`);
    assert.equal(r.errors, 0, `signatures failed across the restart: ${r.stderr}`);
    assert.ok(okBy(first).length > 0, 'the first agent signed nothing');
    assert.ok(
      okBy(second).length > 0,
      'the second agent signed nothing: the load did not come back',
    );
    // Each counted signature has its audit line (the driver's warm-up ones are not counted).
    assert.ok(okBy(first).length + okBy(second).length >= r.ops, 'a signature has no audit line');
  });

  it('SIGTERM at a slow HSM: the operations in flight finish and are answered, none is cut', async (t) => {
    await emulator.setLatency(1000);
    const first = await start();
    const load = signFor(10_000);
    // Every thread is signing (one request at the HSM each, the next sent as soon as one returns).
    await until(() => okBy(first).length >= 2 * THREADS, 'the threads to sign');
    process.kill(first, 'SIGTERM');
    running = undefined;
    assert.equal(await holder.exited(first), 0);
    const lines = logLines().filter((l) => l.pid === first);
    const stopping = lines.find((l) => l.msg === 'stopping: finishing requests in flight');
    assert.ok(stopping, 'no "stopping" line');
    const inFlight = stopping.in_flight as number;
    assert.ok(inFlight > 0 && inFlight <= THREADS, `in flight at SIGTERM: ${inFlight}`);
    const after = lines.slice(lines.indexOf(stopping) + 1).filter((l) => l.audit === true);
    assert.equal(
      after.length,
      inFlight,
      'each request in flight at SIGTERM got exactly one answer',
    );
    assert.ok(
      after.every((l) => l.status === 'OK'),
      'a request in flight at SIGTERM failed',
    );
    assert.equal(lines.find((l) => l.msg === 'akv agent stopped')?.drained, true);
    await emulator.setLatency(20);
    const second = await start();
    const r = await load;
    t.diagnostic(
      `${inFlight} in flight at SIGTERM, all answered OK; ${r.ops} signatures, ${r.errors} failed`,
    );
    assert.equal(r.errors, 0, `signatures failed across the drain: ${r.stderr}`);
    assert.ok(okBy(second).length > 0, 'the load did not come back after the drain');
  });

  it('kill -9 with operations in flight: at most those fail, each cleanly, and the next succeed', async (t) => {
    await emulator.setLatency(300);
    const first = await start();
    const load = signFor(6000);
    await sleep(1500);
    process.kill(first, 'SIGKILL');
    running = undefined;
    await holder.exited(first);
    const second = await start();
    const r = await load;
    t.diagnostic(`${r.ops} signatures, ${r.errors} failed across kill -9 + restart`);
    assert.equal(r.signal, null, `akv-sign-bench crashed: ${r.stderr}`);
    assert.ok(r.ops > 0, `akv-sign-bench printed no result: ${r.stderr}`);
    assert.ok(
      r.errors <= THREADS,
      `${r.errors} signatures failed: more than the ${THREADS} that can be in flight: ${r.stderr}`,
    );
    if (r.errors > 0)
      assert.match(r.stderr, /akv agent|connection/, 'a failure without a clear message');
    assert.ok(okBy(second).length > 0, 'the next signatures did not succeed on the new agent');
  });

  it('kill -9 under HAProxy ssl-mode-async: at most the handshakes in flight fail, HAProxy stays up', async (t) => {
    const haproxyMissing = spawnSync('haproxy', ['-v']).status !== 0;
    if (haproxyMissing) {
      assert.fail('haproxy is not installed (scripts/setup.mjs installs it as root)');
    }
    await emulator.setLatency(300);
    const first = await start();
    const cnf = join(dir, 'haproxy-openssl.cnf');
    writeFileSync(
      cnf,
      opensslCnf([`module = ${PROVIDER_SO}`, `agent_socket = ${holder.path}`, 'autostart = no']),
    );
    const env: NodeJS.ProcessEnv = { ...process.env, OPENSSL_CONF: cnf };
    delete env.OPENSSL_MODULES;
    delete env.AKV_AGENT_SOCKET;
    const cert = join(dir, 'cert.pem');
    const keyref = join(dir, 'key.pem');
    let r = spawnSync(
      'openssl',
      ['req', '-new', '-x509', '-key', KEY, '-subj', '/CN=localhost', '-days', '2', '-out', cert],
      { env, encoding: 'utf8' },
    );
    assert.equal(r.status, 0, `certificate: ${r.stderr}`);
    r = spawnSync(AKV_BIN, ['keyref', KEY, '--out', keyref], {
      env: { ...env, AKV_AGENT_SOCKET: holder.path },
      encoding: 'utf8',
    });
    assert.equal(r.status, 0, `keyref: ${r.stderr}`);
    const bundle = join(dir, 'bundle.pem');
    writeFileSync(bundle, `${readFileSync(cert, 'utf8')}\n${readFileSync(keyref, 'utf8')}`);
    const port = await freePort();
    const cfg = join(dir, 'haproxy.cfg');
    writeFileSync(
      cfg,
      [
        'global',
        '    nbthread 1',
        '    ssl-mode-async',
        '    maxconn 1000',
        'defaults',
        '    mode http',
        '    timeout connect 5s',
        '    timeout client 30s',
        '    timeout server 30s',
        'frontend tls',
        `    bind 127.0.0.1:${port} ssl crt ${bundle}`,
        '    http-request return status 200 content-type text/plain string "ok"',
        '',
      ].join('\n'),
    );
    const haproxy = spawn('haproxy', ['-db', '-f', cfg], {
      env,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let haproxyErr = '';
    haproxy.stderr.on('data', (c: Buffer) => (haproxyErr += c.toString()));
    try {
      for (let i = 0; !(await portOpen(port)) && haproxy.exitCode === null; i++) {
        if (i > 300) assert.fail(`HAProxy does not listen: ${haproxyErr}`);
        await sleep(50);
      }
      assert.equal(haproxy.exitCode, null, `HAProxy did not start: ${haproxyErr}`);
      const load = new Promise<{
        handshakes: number;
        errors: number;
        status: number | null;
        stderr: string;
      }>((resolve, reject) => {
        const child = spawn(TLS_LOAD, [
          '--connect',
          `127.0.0.1:${port}`,
          '--threads',
          String(THREADS),
          '--duration-ms',
          '6000',
        ]);
        let out = '';
        let err = '';
        child.stdout.on('data', (c: Buffer) => (out += c.toString()));
        child.stderr.on('data', (c: Buffer) => (err += c.toString()));
        child.on('error', reject);
        child.on('close', (status) => {
          let parsed: { handshakes?: number; errors?: number } = {};
          try {
            parsed = JSON.parse(out.trim().split('\n').pop() ?? '') as typeof parsed;
          } catch {
            /* asserted below */
          }
          resolve({
            handshakes: parsed.handshakes ?? -1,
            errors: parsed.errors ?? -1,
            status,
            stderr: err,
          });
        });
      });
      await until(() => okBy(first).length >= 2 * THREADS, 'handshakes to be signed');
      process.kill(first, 'SIGKILL');
      running = undefined;
      await holder.exited(first);
      const second = await start();
      const result = await load;
      t.diagnostic(
        `${result.handshakes} handshakes, ${result.errors} failed across kill -9 + restart`,
      );
      assert.ok(result.handshakes > 0, `akv-tls-load printed no result: ${result.stderr}`);
      assert.ok(
        result.errors <= THREADS,
        `${result.errors} handshakes failed: more than the ${THREADS} in flight at the kill; ${result.stderr}`,
      );
      assert.equal(haproxy.exitCode, null, `HAProxy died: ${haproxyErr}`);
      assert.ok(okBy(second).length > 0, 'no handshake was signed by the new agent');
    } finally {
      haproxy.kill('SIGTERM');
    }
  });
});
