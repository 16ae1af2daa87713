/**
 * nginx >= 1.29's `ssl_certificate_key "store:URI";` stood in for by provider/tools/nginx_store.c
 * (the same OpenSSL calls in nginx's order: OSSL_STORE_open/load/eof/close in the master,
 * SSL_CTX_use_PrivateKey against the certificate, fork, UI_null and TLS handshakes in the
 * workers), against the OpenSSL this run selects (AKV_TEST_OPENSSL_PREFIX, see openssl-env.ts):
 * managedhsm:, akv: and ?version= URIs, RSA and EC, workers unprivileged when run as root,
 * checked with s_client (TLS 1.2 and 1.3, certificate verified) and curl.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  keyrefWithCertificate,
  makeProvider,
  OPENSSL,
  PROVIDER_BUILD_DIR,
  PROVIDER_DIR,
  runAsync,
  startProviderEnv,
  type ProviderEnv,
} from '../provider/openssl-env.js';

const IS_ROOT = process.getuid?.() === 0;
const WORKER_USER = 'www-data';
const DRIVER = join(PROVIDER_BUILD_DIR, 'nginx_store');

let pe: ProviderEnv;
let env: NodeJS.ProcessEnv;

before(async () => {
  makeProvider('all');
  makeProvider(relative(PROVIDER_DIR, DRIVER));
  pe = await startProviderEnv(
    'nginx-store',
    'nginxstorehsm',
    IS_ROOT ? { socketGroup: WORKER_USER } : {},
  );
  env = { ...pe.env, OPENSSL_CONF: pe.writeOpensslCnf() };
  pe.createKey('rsa', '--kty', 'RSA-HSM', '--size', '2048');
  pe.createKey('ec', '--kty', 'EC-HSM', '--curve', 'P-256');
  keyrefWithCertificate(pe, 'rsa', env);
  keyrefWithCertificate(pe, 'ec', env);
});

after(async () => {
  await pe?.down();
});

interface Driver {
  proc: ChildProcess;
  port: number;
  stderr: () => string;
}

/** Starts the driver with 2 workers and resolves once it listens (rejects if it exits first). */
function startDriver(cert: string, uri: string): Promise<Driver> {
  const args = [pe.file(cert), `store:${uri}`, '2', ...(IS_ROOT ? [WORKER_USER] : [])];
  const proc = spawn(DRIVER, args, { env, cwd: pe.dir, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  proc.stderr.on('data', (c: Buffer) => (err += c.toString()));
  return new Promise((resolve, reject) => {
    proc.stdout.on('data', (c: Buffer) => {
      out += c.toString();
      const m = /listening on (\d+)/.exec(out);
      if (m) resolve({ proc, port: Number(m[1]), stderr: () => err });
    });
    proc.on('exit', (code, signal) =>
      reject(new Error(`nginx_store exited (${code ?? signal}) before listening:\n${err}`)),
    );
  });
}

/** Runs the driver to its end (a load that must fail). */
function runDriverToEnd(cert: string, uri: string) {
  return runAsync(DRIVER, [pe.file(cert), `store:${uri}`, '1'], env, pe.dir);
}

async function stop(d: Driver): Promise<void> {
  const exited = new Promise<number | null>((resolve) =>
    d.proc.on('exit', (code) => resolve(code)),
  );
  d.proc.kill('SIGTERM');
  assert.equal(await exited, 0, `nginx_store did not stop cleanly:\n${d.stderr()}`);
}

/** s_client and curl against the driver; returns the worker pids that answered. */
async function checkClients(d: Driver, cert: string): Promise<number[]> {
  const pids: number[] = [];
  for (const version of ['-tls1_3', '-tls1_2']) {
    const r = await runAsync(
      'sh',
      [
        '-c',
        `printf 'GET / HTTP/1.0\\r\\n\\r\\n' | "$0" s_client -connect 127.0.0.1:${d.port} ${version} -servername localhost -CAfile "$1" -verify_return_error -ign_eof`,
        OPENSSL,
        pe.file(cert),
      ],
      { ...pe.env, OPENSSL_CONF: '/dev/null' },
      pe.dir,
    );
    assert.equal(
      r.status,
      0,
      `s_client ${version} failed:\n${r.stdout}\n${r.stderr}\n${d.stderr()}`,
    );
    assert.match(r.stdout, /Verify return code: 0 \(ok\)/);
    const m = /nginx_store worker (\d+) (TLSv1\.[23])/.exec(r.stdout);
    assert.ok(m, `no answer from a worker:\n${r.stdout}`);
    assert.equal(m[2], version === '-tls1_3' ? 'TLSv1.3' : 'TLSv1.2');
    pids.push(Number(m[1]));
  }
  const curl = await runAsync(
    'curl',
    [
      '-sS',
      '--cacert',
      pe.file(cert),
      '--resolve',
      `localhost:${d.port}:127.0.0.1`,
      `https://localhost:${d.port}/`,
    ],
    pe.env,
    pe.dir,
  );
  assert.equal(curl.status, 0, `curl failed: ${curl.stderr}\n${d.stderr()}`);
  assert.match(curl.stdout, /nginx_store worker \d+ TLSv1\.3/);
  return pids;
}

function uidOf(pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8')
    .split('\n')
    .find((l) => l.startsWith('Uid:'));
  return Number(line?.split(/\s+/)[1]);
}

describe(`nginx store: driver with ${OPENSSL}`, () => {
  for (const [label, key, uri] of [
    ['RSA, managedhsm: URI', 'rsa', () => `managedhsm:${pe.hsm}:rsa`],
    ['EC, akv: URI', 'ec', () => `akv:vault=${pe.hsm},name=ec`],
  ] as const) {
    it(`${label}: the master loads the key, unprivileged workers sign handshakes`, async () => {
      const d = await startDriver(`${key}.crt`, uri());
      try {
        const pids = await checkClients(d, `${key}.crt`);
        if (IS_ROOT)
          for (const pid of pids) assert.equal(uidOf(pid), 33, `worker ${pid} is not www-data`);
      } finally {
        await stop(d);
      }
    });
  }

  it('?version= pins the version the certificate was made for, after a rotation', async () => {
    pe.createKey('pinned', '--kty', 'EC-HSM', '--curve', 'P-256');
    keyrefWithCertificate(pe, 'pinned', env);
    const shown = JSON.parse(
      pe.akv(['key', 'show', '--hsm-name', pe.hsm, '--name', 'pinned']).stdout,
    ) as { key: { kid: string } };
    const version = shown.key.kid.split('/').pop() ?? '';
    assert.match(version, /^[0-9a-f]{32}$/);
    pe.akv(['key', 'rotate', '--hsm-name', pe.hsm, '--name', 'pinned']);

    // Unpinned, the URI now names the new version: nginx refuses it against the old certificate.
    const unpinned = await runDriverToEnd('pinned.crt', `managedhsm:${pe.hsm}:pinned`);
    assert.equal(unpinned.status, 1, unpinned.stderr);
    assert.match(unpinned.stderr, /SSL_CTX_use_PrivateKey\(\) failed/);
    assert.match(unpinned.stderr, /key values mismatch/);

    const d = await startDriver('pinned.crt', `managedhsm:${pe.hsm}:pinned?version=${version}`);
    try {
      await checkClients(d, 'pinned.crt');
    } finally {
      await stop(d);
    }
  });

  it('an unknown key: nginx "cannot load certificate key" with akv saying why, no hang', async () => {
    const r = await runDriverToEnd('rsa.crt', `managedhsm:${pe.hsm}:no-such-key`);
    assert.equal(r.status, 1, `${r.stdout}\n${r.stderr}`);
    assert.equal(r.signal, null);
    assert.match(r.stderr, /cannot load certificate key/);
    assert.match(r.stderr, /no-such-key/);
  });
});
