/**
 * Apache httpd (mod_ssl, event MPM) serving TLS with an RSA and an EC key held in the HSM, given
 * as key-reference files in SSLCertificateKeyFile, the provider activated by OPENSSL_CONF in
 * Apache's environment. Started as root (as a service is), Apache reads the keys in its root
 * parent and handshakes are signed in workers running as www-data, so the agent's socket is
 * opened to that group (`akv dev up --socket-group www-data`). Checked with plain `openssl
 * s_client` and `curl`; the server's public keys are compared with the HSM's; the agent's audit
 * log must show the signatures coming from www-data workers, also after a graceful restart.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { after, before, describe, it } from 'node:test';
import { childPids, eventually } from '../nginx/example.js';
import {
  freePort,
  missingCommand,
  startAppEnv,
  versionOf,
  type AppEnv,
  type HsmKey,
} from './app-env.js';
import { startServer, uidOf, type Server } from './servers.js';
import { assertServesHsmKey, curlGet } from './tls-checks.js';

const APACHE = '/usr/sbin/apache2';
const MODULES = '/usr/lib/apache2/modules';
const isRoot = process.getuid?.() === 0;
const WORKER_USER = isRoot ? 'www-data' : userInfo().username;

function skipReason(): string | undefined {
  const missing = missingCommand('apache2', 'apache2-bin');
  if (missing) return missing;
  if (isRoot && spawnSync('getent', ['passwd', 'www-data'], { stdio: 'ignore' }).status !== 0)
    return 'running as root but there is no www-data user for the Apache workers';
  return undefined;
}

describe('Apache httpd mod_ssl with HSM keys', { skip: skipReason() }, () => {
  let app: AppEnv;
  let rsa: HsmKey;
  let ec: HsmKey;
  let port = 0;
  let apache: Server | undefined;
  let errorLog = '';
  const workerUid = Number(spawnSync('id', ['-u', WORKER_USER], { encoding: 'utf8' }).stdout);

  before(async () => {
    app = await startAppEnv('apache', 'apachehsm', isRoot ? { socketGroup: 'www-data' } : {});
    rsa = app.hsmKey('apache-rsa', { kty: 'RSA-HSM' });
    ec = app.hsmKey('apache-ec', { kty: 'EC-HSM' });
    // The workers read the documents: a directory they can enter (the test directory is 0711).
    const htdocs = app.file('htdocs');
    mkdirSync(htdocs);
    writeFileSync(app.file('htdocs/index.html'), 'served by Apache with an HSM key\n');
    chmodSync(htdocs, 0o755);
    chmodSync(app.file('htdocs/index.html'), 0o644);
    port = await freePort();
    errorLog = app.file('apache-error.log');
    const conf = app.file('httpd.conf');
    writeFileSync(
      conf,
      [
        `ServerRoot ${app.dir}`,
        'ServerName localhost',
        `Listen 127.0.0.1:${port}`,
        `PidFile ${app.file('httpd.pid')}`,
        `DefaultRuntimeDir ${app.dir}`,
        `ErrorLog ${errorLog}`,
        'LogLevel warn ssl:info',
        `LoadModule mpm_event_module ${MODULES}/mod_mpm_event.so`,
        `LoadModule authz_core_module ${MODULES}/mod_authz_core.so`,
        `LoadModule socache_shmcb_module ${MODULES}/mod_socache_shmcb.so`,
        `LoadModule ssl_module ${MODULES}/mod_ssl.so`,
        // Ignored unless started as root, where workers drop to this user.
        ...(isRoot ? ['User www-data', 'Group www-data'] : []),
        'StartServers 2',
        `DocumentRoot ${htdocs}`,
        `<Directory ${htdocs}>`,
        '  Require all granted',
        '</Directory>',
        `SSLSessionCache shmcb:${app.file('ssl_scache')}(512000)`,
        'SSLEngine on',
        `SSLCertificateFile ${rsa.cert}`,
        `SSLCertificateKeyFile ${rsa.keyref}`,
        `SSLCertificateFile ${ec.cert}`,
        `SSLCertificateKeyFile ${ec.keyref}`,
        '',
      ].join('\n'),
    );
    try {
      apache = await startServer(APACHE, ['-f', conf, '-DFOREGROUND'], app.cnfEnv, app.dir, port);
    } catch (err) {
      throw new Error(`${(err as Error).message}\n--- ${errorLog}\n${readLog()}`);
    }
  });

  after(async () => {
    await apache?.stop();
    await app?.down();
  });

  function readLog(): string {
    try {
      return readFileSync(errorLog, 'utf8');
    } catch {
      return '';
    }
  }

  /**
   * Asserts that Apache serves KEY (handshakes restricted to SIGALGS) and that every HSM signature
   * it made came from a worker (a child of the parent) running as WORKER_USER.
   */
  function assertServedByWorkers(key: HsmKey, sigalgs: string): void {
    const made = assertServesHsmKey(app, port, key, ['-sigalgs', sigalgs]);
    const workers = childPids(apache?.proc.pid ?? -1);
    for (const s of made) {
      assert.ok(workers.includes(s.clientPid), `signature from pid ${s.clientPid}, not a worker`);
      assert.equal(uidOf(s.clientPid), workerUid, `worker ${s.clientPid} is not ${WORKER_USER}`);
    }
  }

  it(`serves both HSM keys (TLS 1.3 and 1.2) from workers running as ${WORKER_USER}`, (t) => {
    t.diagnostic(versionOf(app, APACHE, ['-v']));
    assert.match(
      readLog(),
      /AH02568: Certificate and private key .* configured from .*apache-rsa\.ref\.pem/,
    );
    assertServedByWorkers(rsa, 'rsa_pss_rsae_sha256:rsa_pkcs1_sha256');
    assertServedByWorkers(ec, 'ecdsa_secp256r1_sha256');
  });

  it('curl (no provider) fetches a page over TLS 1.2 with the RSA key, verified against its certificate', () => {
    const { result, made } = app.signedDuring(rsa, () =>
      curlGet(app, port, rsa.cert, {
        path: '/index.html',
        args: ['--tls-max', '1.2', '--ciphers', 'ECDHE-RSA-AES128-GCM-SHA256'],
      }),
    );
    assert.equal(result.status, 0, result.stderr);
    assert.equal(result.stdout, 'served by Apache with an HSM key\n');
    assert.equal(made.length, 1);
  });

  it('keeps signing in the HSM after a graceful restart (SIGUSR1: keys loaded again, new workers)', async () => {
    const parent = apache?.proc.pid ?? -1;
    const oldWorkers = childPids(parent);
    process.kill(parent, 'SIGUSR1');
    assert.ok(
      await eventually(() => {
        const now = childPids(parent);
        return now.length > 0 && now.every((p) => !oldWorkers.includes(p));
      }, 30_000),
      `Apache did not replace its workers after the graceful restart:\n${readLog()}`,
    );
    assert.equal(
      readLog().match(
        /AH02568: Certificate and private key .* configured from .*apache-ec\.ref\.pem/g,
      )?.length ?? 0,
      // Apache reads its configuration twice at start-up and once more per restart.
      3,
    );
    assertServedByWorkers(ec, 'ecdsa_secp256r1_sha256');
  });
});
