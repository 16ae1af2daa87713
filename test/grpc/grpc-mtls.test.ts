/**
 * examples/grpc end to end on the HSM emulator: the scripts as a person runs them, a gRPC
 * client and server on Unix sockets, two nginx sidecars doing mutual TLS with HSM-held keys, and
 * misbehaving clients (a certificate from another CA, no certificate) that must be refused.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { loadGreeter, type HelloReply } from '../../examples/grpc/src/greeter.js';
import { readAuditLog, signaturesBy } from '../../examples/grpc/src/audit-log.js';
import { callHello, connectGreeter } from '../../examples/grpc/src/calls.js';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const example = join(repo, 'examples', 'grpc');
const HSM = 'grpctest';

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** The example's settings (examples/grpc/lib.sh) and the old names it refuses. */
const SETTING = /^(AKV_|GRPC_|STATE_DIR$|KEY_TYPE$|KEY_PREFIX$|NGINX_USER$|EMULATOR_LATENCY_MS$)/;

/** The environment of the example's scripts: this test's settings, none of the caller's. */
function scriptEnv(dir: string, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const name of Object.keys(env)) {
    if (SETTING.test(name) || name === 'OPENSSL_CONF' || name === 'OPENSSL_MODULES')
      delete env[name];
  }
  // Everything set explicitly, so that a developer's examples/grpc/.env changes nothing here.
  return {
    ...env,
    STATE_DIR: dir,
    AKV_HSM_NAME: HSM,
    AKV_MODE: 'emulator',
    KEY_PREFIX: 'grpc',
    KEY_TYPE: 'rsa',
    NGINX_USER: 'www-data',
    ...extra,
  };
}

/** Runs one of the example's scripts with the demo directory of this test file. */
function script(
  dir: string,
  name: string,
  args: string[] = [],
  timeoutMs = 120_000,
  extraEnv: NodeJS.ProcessEnv = {},
): Run {
  const r = spawnSync(join(example, name), args, {
    cwd: repo,
    encoding: 'utf8',
    timeout: timeoutMs,
    env: scriptEnv(dir, extraEnv),
  });
  return { status: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? String(r.error ?? '') };
}

function ok(r: Run, what: string): Run {
  assert.equal(r.status, 0, `${what} failed (exit ${r.status}):\n${r.stdout}\n${r.stderr}`);
  return r;
}

type ClientResult =
  | {
      ok: true;
      unary: HelloReply;
      stream: Array<{ index: number; count: number; message: string }>;
    }
  | { ok: false; failure: { method: string; code: number; codeName: string; details: string } };

function clientJson(r: Run): ClientResult {
  const line = r.stdout.trim().split('\n').pop() ?? '';
  try {
    return JSON.parse(line) as ClientResult;
  } catch {
    throw new Error(`the client printed no JSON (exit ${r.status}):\n${r.stdout}\n${r.stderr}`);
  }
}

/** Runs the client on a socket (the sidecar's by default) and returns its JSON summary. */
function callVia(
  dir: string,
  socket: string,
  args: string[] = [],
): { run: Run; result: ClientResult } {
  const r = spawnSync(
    process.execPath,
    [
      join(repo, 'dist', 'examples', 'grpc', 'src', 'client.js'),
      '--socket',
      socket,
      '--json',
      ...args,
    ],
    { encoding: 'utf8', timeout: 60_000 },
  );
  const run = { status: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
  return { run, result: clientJson(run) };
}

/** KEY=VALUE lines of a file (the `export` lines of akv.env, sidecar.env, demo.env). */
function readEnvFile(file: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const m = /^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line.trim());
    if (!m?.[1]) continue;
    out[m[1]] = (m[2] ?? '').replace(/^'(.*)'$/, '$1').replace(/^"(.*)"$/, '$1');
  }
  return out;
}

/** The agent's audit log file, found as the example's scripts find it (lib.sh agent_log_file). */
function auditLogFile(dir: string): string {
  const env = readEnvFile(join(dir, 'akv.env'));
  if (env.AKV_LOG_FILE) return env.AKV_LOG_FILE;
  if (env.AKV_CONFIG) {
    const cfg = JSON.parse(readFileSync(env.AKV_CONFIG, 'utf8')) as { log?: { file?: string } };
    if (cfg.log?.file) return resolve(dirname(env.AKV_CONFIG), cfg.log.file);
  }
  return join(dir, 'akv-dev', 'agent.log');
}

/** Plain-openssl material for an impostor: its own CA and a client certificate from it. */
function makeImpostor(dir: string): { cert: string; key: string; ca: string } {
  const out = join(dir, 'impostor');
  mkdirSync(out, { recursive: true });
  const env = { ...process.env };
  delete env.OPENSSL_CONF; // plain OpenSSL, no provider: the impostor's keys are ordinary files
  const sh = (args: string[]): void => {
    const r = spawnSync('openssl', args, { cwd: out, encoding: 'utf8', env });
    assert.equal(r.status, 0, `openssl ${args.join(' ')}:\n${r.stderr}`);
  };
  sh([
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-nodes',
    '-keyout',
    'ca.key',
    '-subj',
    '/CN=impostor CA',
    '-days',
    '2',
    '-out',
    'ca.pem',
  ]);
  sh([
    'req',
    '-new',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-nodes',
    '-keyout',
    'client.key',
    '-subj',
    '/O=akv demo/CN=greeter-client-rsa',
    '-out',
    'client.csr',
  ]);
  sh([
    'x509',
    '-req',
    '-in',
    'client.csr',
    '-CA',
    'ca.pem',
    '-CAkey',
    'ca.key',
    '-set_serial',
    '7',
    '-days',
    '2',
    '-extfile',
    join(example, 'openssl', 'cert-extensions.cnf'),
    '-extensions',
    'client_ext',
    '-out',
    'client.pem',
  ]);
  return { cert: join(out, 'client.pem'), key: join(out, 'client.key'), ca: join(out, 'ca.pem') };
}

/** Calls through `socket` and asserts that the client failed with `codeName` and `details`. */
function assertCallFails(dir: string, socket: string, codeName: string, details: RegExp): void {
  const { run, result } = callVia(dir, socket);
  assert.equal(run.status, 1);
  assert.ok(!result.ok);
  assert.equal(result.failure.codeName, codeName, JSON.stringify(result));
  assert.match(result.failure.details, details);
}

function serverAppCalls(dir: string): number {
  const file = join(dir, 'akv-dev', 'grpc-server.log'); // bin/akv dev start's log
  if (!existsSync(file)) return 0;
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.includes('"method"')).length;
}

describe('examples/grpc: gRPC mutual TLS through nginx sidecars with HSM keys', () => {
  let dir = '';
  let serverPort = '';
  let caRsa = '';

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'akv-grpc-'));
    ok(script(dir, 'setup.sh', ['--key-type', 'both']), 'setup.sh');
    ok(script(dir, 'start.sh', ['--key-type', 'rsa']), 'start.sh');
    serverPort = readEnvFile(join(dir, 'demo.env')).server_port ?? '';
    assert.match(serverPort, /^\d+$/);
    caRsa = join(dir, 'certs', 'rsa', 'ca.pem');
  });

  /**
   * Starts one more client sidecar called `name` with the given certificate options, listening
   * on run/<name>/greeter.sock (directory 0700) and calling the server sidecar; returns the socket.
   */
  function startClientSidecar(name: string, options: string[], what: string): string {
    const socketDir = join(dir, 'run', name);
    mkdirSync(socketDir, { recursive: true, mode: 0o700 });
    const socket = join(socketDir, 'greeter.sock');
    ok(
      script(dir, 'sidecar.sh', [
        'start',
        'client',
        '--name',
        name,
        ...options,
        '--listen-socket',
        socket,
        '--server-port',
        serverPort,
      ]),
      what,
    );
    return socket;
  }

  after(() => {
    if (!dir) return;
    const r = script(dir, 'stop.sh');
    if (r.status !== 0) console.error(`stop.sh: ${r.stdout}\n${r.stderr}`);
    rmSync(dir, { recursive: true, force: true });
  });

  test('the certificates were issued by the HSM CA key for the HSM server and client keys', () => {
    for (const type of ['rsa', 'ec']) {
      const certs = join(dir, 'certs', type);
      for (const [leaf, purpose] of [
        ['server', 'sslserver'],
        ['client', 'sslclient'],
      ] as const) {
        const r = spawnSync(
          'openssl',
          [
            'verify',
            '-CAfile',
            join(certs, 'ca.pem'),
            '-purpose',
            purpose,
            join(certs, `${leaf}.pem`),
          ],
          { encoding: 'utf8' },
        );
        assert.equal(r.status, 0, `${type} ${leaf}.pem does not verify: ${r.stdout}${r.stderr}`);
        // The key-reference PEM carries no key material, only the reference.
        const ref = readFileSync(join(certs, `${leaf}.keyref.pem`), 'utf8');
        assert.doesNotMatch(ref, /BEGIN (RSA |EC )?PRIVATE KEY/);
      }
    }
  });

  test('unary and server-streaming calls succeed through mutual TLS (RSA keys)', () => {
    const r = ok(
      script(dir, 'test.sh', ['--json', '--count', '4', '--interval-ms', '5']),
      'test.sh',
    );
    const result = clientJson(r);
    assert.ok(result.ok, JSON.stringify(result));
    assert.equal(result.unary.message, 'Hello, akv');
    const caller = result.unary.caller;
    assert.ok(caller);
    assert.match(caller.client_subject, /CN=greeter-client-rsa/);
    assert.match(caller.client_issuer, /CN=akv gRPC demo CA \(rsa\)/);
    assert.equal(caller.client_verify, 'SUCCESS');
    assert.match(caller.tls_protocol, /^TLSv1\.[23]$/);
    assert.deepEqual(
      result.stream.map((g) => g.index),
      [1, 2, 3, 4],
    );
    assert.ok(result.stream.every((g) => g.count === 4));
  });

  test('the agent log shows signatures by the server key and by the client key', () => {
    const entries = readAuditLog(auditLogFile(dir));
    const server = signaturesBy(entries, `managedhsm:${HSM}:grpc-server-rsa`);
    const client = signaturesBy(entries, `managedhsm:${HSM}:grpc-client-rsa`);
    assert.ok(
      server.count > 0,
      `no signature by the server key in the agent log (${entries.length} entries)`,
    );
    assert.ok(
      client.count > 0,
      `no signature by the client key in the agent log (${entries.length} entries)`,
    );
  });

  test('the server sidecar overwrites identity headers a client tries to forge', () => {
    const { result } = callVia(dir, join(dir, 'run', 'client', 'greeter.sock'), [
      '--header',
      'x-sidecar-client-subject=CN=forged',
      '--header',
      'x-sidecar-client-verify=SUCCESS',
    ]);
    assert.ok(result.ok, JSON.stringify(result));
    assert.match(result.unary.caller?.client_subject ?? '', /CN=greeter-client-rsa/);
    assert.doesNotMatch(result.unary.caller?.client_subject ?? '', /forged/);
  });

  test('a client sidecar with a certificate from another CA is rejected', () => {
    const impostor = makeImpostor(dir);
    const socket = startClientSidecar(
      'impostor',
      ['--cert', impostor.cert, '--key', impostor.key, '--ca', caRsa],
      'sidecar.sh start client (impostor)',
    );
    const before = serverAppCalls(dir);
    assertCallFails(dir, socket, 'UNAUTHENTICATED', /not trusted/);
    assert.equal(serverAppCalls(dir), before, 'the call reached the gRPC server');
    const errorLog = readFileSync(join(dir, 'nginx', 'server', 'logs', 'error.log'), 'utf8');
    assert.match(errorLog, /client SSL certificate verify error/);
  });

  test('a client sidecar without a certificate is rejected', () => {
    const socket = startClientSidecar(
      'nocert',
      ['--no-client-cert', '--ca', caRsa],
      'sidecar.sh start client --no-client-cert',
    );
    const before = serverAppCalls(dir);
    assertCallFails(dir, socket, 'UNAUTHENTICATED', /requires a client certificate/);
    assert.equal(serverAppCalls(dir), before, 'the call reached the gRPC server');
  });

  test('a gRPC client speaking TLS to the server sidecar directly, without a certificate, is rejected', async () => {
    const { Client } = loadGreeter();
    const client = new Client(
      `127.0.0.1:${serverPort}`,
      grpc.credentials.createSsl(readFileSync(caRsa)),
      {
        'grpc.ssl_target_name_override': 'localhost',
      },
    );
    try {
      const err = await new Promise<grpc.ServiceError | null>((done) => {
        client.SayHello(
          { name: 'direct' },
          new grpc.Metadata(),
          { deadline: Date.now() + 10_000 },
          (e) => done(e),
        );
      });
      assert.ok(err, 'the call succeeded without a client certificate');
      assert.equal(err.code, grpc.status.UNAUTHENTICATED, `${err.code}: ${err.details}`);
    } finally {
      client.close();
    }
  });

  test('a client sidecar that does not trust the server certificate refuses to call', () => {
    const impostorCa = join(dir, 'impostor', 'ca.pem');
    assert.ok(existsSync(impostorCa));
    const certs = join(dir, 'certs', 'rsa');
    const socket = startClientSidecar(
      'distrust',
      [
        '--cert',
        join(certs, 'client.pem'),
        '--key',
        join(certs, 'client.keyref.pem'),
        '--ca',
        impostorCa,
      ],
      'sidecar.sh start client (distrusting CA)',
    );
    assertCallFails(dir, socket, 'UNAVAILABLE', /no mutual TLS connection to the server sidecar/);
    const errorLog = readFileSync(join(dir, 'nginx', 'distrust', 'logs', 'error.log'), 'utf8');
    assert.match(errorLog, /upstream SSL certificate verify error/);
  });

  test('40 concurrent calls, each with its own mutual TLS handshake signed in the HSM, all succeed', async () => {
    // A client sidecar without keep-alive or session resumption: every call is a new TLS
    // connection, so both sidecars' workers sign concurrently through the agent.
    const certs = join(dir, 'certs', 'rsa');
    const socket = startClientSidecar(
      'concurrent',
      [
        '--no-reuse',
        '--cert',
        join(certs, 'client.pem'),
        '--key',
        join(certs, 'client.keyref.pem'),
        '--ca',
        caRsa,
      ],
      'sidecar.sh start client --no-reuse',
    );
    const log = auditLogFile(dir);
    const clientKey = `managedhsm:${HSM}:grpc-client-rsa`;
    const serverKey = `managedhsm:${HSM}:grpc-server-rsa`;
    const before = readAuditLog(log);
    const client = connectGreeter(socket);
    try {
      const replies = await Promise.allSettled(
        Array.from({ length: 40 }, (_, i) =>
          callHello(client, `caller-${i}`, new grpc.Metadata(), 30_000),
        ),
      );
      const failed = replies.filter((r) => r.status === 'rejected');
      assert.equal(
        failed.length,
        0,
        `failed calls: ${failed.map((f) => String((f as PromiseRejectedResult).reason)).join('; ')}`,
      );
    } finally {
      client.close();
    }
    const after = readAuditLog(log);
    const newClientSigs =
      signaturesBy(after, clientKey).count - signaturesBy(before, clientKey).count;
    const newServerSigs =
      signaturesBy(after, serverKey).count - signaturesBy(before, serverKey).count;
    assert.ok(
      newClientSigs >= 40,
      `expected >= 40 new client-key signatures, saw ${newClientSigs}`,
    );
    assert.ok(
      newServerSigs >= 40,
      `expected >= 40 new server-key signatures, saw ${newServerSigs}`,
    );
  });

  test('EC keys: start.sh --key-type ec switches the sidecars and calls still succeed', () => {
    ok(script(dir, 'start.sh', ['--key-type', 'ec']), 'start.sh --key-type ec');
    const result = clientJson(
      ok(script(dir, 'test.sh', ['--json', '--count', '3']), 'test.sh (ec)'),
    );
    assert.ok(result.ok, JSON.stringify(result));
    assert.match(result.unary.caller?.client_subject ?? '', /CN=greeter-client-ec/);
    assert.equal(result.stream.length, 3);
    const entries = readAuditLog(auditLogFile(dir));
    const server = signaturesBy(entries, `managedhsm:${HSM}:grpc-server-ec`);
    const client = signaturesBy(entries, `managedhsm:${HSM}:grpc-client-ec`);
    assert.ok(server.count > 0 && client.count > 0, 'no EC signatures in the agent log');
    assert.deepEqual(server.algs, ['ES256']);
  });

  test('the scripts are idempotent and run-all.sh runs the whole example', () => {
    const again = ok(script(dir, 'setup.sh', ['--key-type', 'rsa']), 'setup.sh again');
    assert.match(again.stdout, /server\.pem is valid, kept/);
    const all = ok(script(dir, 'run-all.sh', ['--latency', '20'], 180_000), 'run-all.sh');
    assert.match(all.stdout, /Hello, akv/);
    assert.match(all.stdout, /through mutual TLS: +20 unary calls/);
    assert.match(all.stdout, /grpc-server-rsa: \d+ signatures? in the HSM/);
    assert.ok(
      !existsSync(join(dir, 'run', 'client', 'greeter.sock')),
      'run-all.sh left the client sidecar running',
    );
    ok(script(dir, 'stop.sh'), 'stop.sh on a stopped demo');
  });
});

test('the scripts refuse a wrong or renamed setting, saying what to set instead', () => {
  const dir = mkdtempSync(join(tmpdir(), 'akv-grpc-settings-'));
  try {
    const renamed = script(dir, 'start.sh', [], 30_000, { GRPC_USE_EMULATOR: '0' });
    assert.equal(renamed.status, 1);
    assert.match(
      renamed.stderr,
      /^start\.sh: error: the setting GRPC_USE_EMULATOR was renamed; hint: use AKV_MODE=emulator\|azure/,
    );
    const wrong = script(dir, 'start.sh', [], 30_000, { AKV_MODE: 'cloud' });
    assert.equal(wrong.status, 1);
    assert.match(
      wrong.stderr,
      /^start\.sh: error: AKV_MODE must be 'emulator' or 'azure', not 'cloud'; hint: /,
    );
    const usage = script(dir, 'start.sh', ['--dir'], 30_000);
    assert.equal(usage.status, 2);
    assert.match(
      usage.stderr,
      /^start\.sh: error: --dir needs a value; hint: run 'start\.sh --help'/,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
