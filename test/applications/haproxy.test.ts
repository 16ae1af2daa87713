/**
 * HAProxy serving TLS with HSM keys (no async engine mode; examples/haproxy covers that). HAProxy
 * reads `crt` as a PEM bundle, so the key-reference block goes where a private key would:
 *   - in the bundle with the certificate (before or after it), or
 *   - in `<crt>.key` next to the certificate (`ssl-load-extra-files`, on by default).
 * The provider is activated by OPENSSL_CONF, or by HAProxy's own `ssl-provider` global keywords.
 * Plain `openssl s_client` and curl verify the handshakes and compare the keys with the HSM's.
 * `crt` is a file path: a key URI is refused (tested, as documented).
 */
import assert from 'node:assert/strict';
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import {
  freePort,
  missingCommand,
  startAppEnv,
  versionOf,
  type AppEnv,
  type HsmKey,
} from './app-env.js';
import { startServer, type Server } from './servers.js';
import { assertServesHsmKey, curlGet } from './tls-checks.js';

const skip = missingCommand('haproxy', 'haproxy');

interface Frontend {
  name: string;
  crt: string;
  port: number;
  key: HsmKey;
}

function haproxyConf(frontends: Frontend[], globals: string[] = []): string {
  return [
    'global',
    ...globals.map((g) => `  ${g}`),
    'defaults',
    '  mode http',
    '  timeout connect 5s',
    '  timeout client 10s',
    '  timeout server 10s',
    ...frontends.flatMap((f) => [
      `frontend ${f.name}`,
      `  bind 127.0.0.1:${f.port} ssl crt ${f.crt}`,
      `  http-request return status 200 content-type text/plain string "served by ${f.name}"`,
    ]),
    '',
  ].join('\n');
}

describe('HAProxy with HSM keys', { skip }, () => {
  let app: AppEnv;
  let rsa: HsmKey;
  let ec: HsmKey;
  const servers: Server[] = [];

  before(async () => {
    app = await startAppEnv('haproxy', 'haproxyhsm');
    rsa = app.hsmKey('haproxy-rsa', { kty: 'RSA-HSM' });
    ec = app.hsmKey('haproxy-ec', { kty: 'EC-HSM' });
    const read = (f: string): string => readFileSync(f, 'utf8');
    writeFileSync(app.file('rsa-bundle.pem'), read(rsa.keyref) + read(rsa.cert));
    writeFileSync(app.file('ec-cert-first.pem'), read(ec.cert) + read(ec.keyref));
    copyFileSync(ec.cert, app.file('ec-site.pem'));
    copyFileSync(ec.keyref, app.file('ec-site.pem.key'));
  });

  after(async () => {
    for (const s of servers) await s.stop();
    await app?.down();
  });

  async function start(
    frontends: Frontend[],
    env: NodeJS.ProcessEnv,
    globals: string[] = [],
  ): Promise<Server> {
    const conf = app.file(`haproxy-${frontends[0]?.name}.cfg`);
    writeFileSync(conf, haproxyConf(frontends, globals));
    const server = await startServer(
      'haproxy',
      ['-db', '-f', conf],
      env,
      app.dir,
      frontends[0]?.port ?? 0,
    );
    servers.push(server);
    return server;
  }

  function assertServed(f: Frontend, server: Server): void {
    const made = assertServesHsmKey(app, f.port, f.key);
    assert.ok(
      made.every((s) => s.clientPid === server.proc.pid),
      'signed by another process',
    );
    const r = curlGet(app, f.port, f.key.cert);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, `served by ${f.name}`);
  }

  it('crt <bundle> (key reference and certificate in either order) and crt <cert> + <cert>.key, with OPENSSL_CONF', async (t) => {
    t.diagnostic(versionOf(app, 'haproxy', ['-v']));
    const frontends: Frontend[] = [
      { name: 'rsa-bundle', crt: app.file('rsa-bundle.pem'), port: await freePort(), key: rsa },
      {
        name: 'ec-cert-first',
        crt: app.file('ec-cert-first.pem'),
        port: await freePort(),
        key: ec,
      },
      { name: 'ec-key-file', crt: app.file('ec-site.pem'), port: await freePort(), key: ec },
    ];
    const server = await start(frontends, app.cnfEnv);
    for (const f of frontends) assertServed(f, server);
  });

  it('global ssl-provider default + ssl-provider akv_provider instead of OPENSSL_CONF', async () => {
    const f: Frontend = {
      name: 'ssl-provider',
      crt: app.file('rsa-bundle.pem'),
      port: await freePort(),
      key: rsa,
    };
    const server = await start([f], app.env, ['ssl-provider default', 'ssl-provider akv_provider']);
    assertServed(f, server);
  });

  it('crt <URI> is refused: HAProxy reads certificates and keys from files (documented limitation)', async () => {
    const conf = app.file('haproxy-uri.cfg');
    writeFileSync(
      conf,
      haproxyConf([{ name: 'uri', crt: rsa.uri, port: await freePort(), key: rsa }]),
    );
    const r = app.run('haproxy', ['-c', '-f', conf]);
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, new RegExp(`unable to stat SSL certificate from file '${rsa.uri}'`));
  });
});
