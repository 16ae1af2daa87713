/**
 * curl client certificates with HSM keys: `curl --cert client.crt --key keyref.pem` with
 * OPENSSL_CONF activating the provider, against a plain `openssl s_server -Verify 1` that refuses
 * clients without a certificate. The server's status page shows the certificate it received; its
 * key must be the HSM's, and the agent must have signed the handshake. curl 7.88 reads `--key` as
 * a file (its engine support aside), so a key URI is refused: tested, as documented.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  missingCommand,
  startAppEnv,
  versionOf,
  type AppEnv,
  type HsmKey,
  type Run,
} from './app-env.js';
import { startClientCertServer, type Server } from './servers.js';
import { assertPresentsClientCert, curlGet } from './tls-checks.js';

const skip = missingCommand('curl', 'curl');

describe('curl client certificates with HSM keys', { skip }, () => {
  let app: AppEnv;
  let rsa: HsmKey;
  let ec: HsmKey;
  let server: Server | undefined;
  let port = 0;
  let serverCert = '';

  before(async () => {
    app = await startAppEnv('curl', 'curlhsm');
    rsa = app.hsmKey('curl-rsa', { kty: 'RSA-HSM', subject: '/CN=akv curl client RSA' });
    ec = app.hsmKey('curl-ec', { kty: 'EC-HSM', subject: '/CN=akv curl client EC' });
    ({ port, serverCert, server } = await startClientCertServer(app, [rsa.cert, ec.cert]));
  });

  after(async () => {
    await server?.stop();
    await app?.down();
  });

  /** curl with the provider (OPENSSL_CONF) and ARGS against the client-certificate server. */
  const curl = (args: string[]): Run => curlGet(app, port, serverCert, { args, env: app.cnfEnv });

  for (const [label, keyOf] of [
    ['RSA', (): HsmKey => rsa],
    ['EC', (): HsmKey => ec],
  ] as const) {
    it(`${label}: --cert/--key <keyref>: the server receives the HSM key's certificate`, (t) => {
      if (label === 'RSA') t.diagnostic(versionOf(app, 'curl', ['--version']));
      const key = keyOf();
      const page = assertPresentsClientCert(app, key, () =>
        curl(['--cert', key.cert, '--key', key.keyref]),
      );
      assert.match(page, new RegExp(`akv curl client ${label}`));
    });
  }

  it('without a client certificate the server refuses the connection', () => {
    const r = curl([]);
    assert.notEqual(r.status, 0, `curl without --cert was served:\n${r.stdout}`);
    assert.doesNotMatch(r.stdout, /Client certificate/);
  });

  it('--key <URI> is refused: curl reads the key from a file (documented limitation)', () => {
    const r = curl(['--cert', ec.cert, '--key', ec.uri]);
    assert.equal(r.status, 58, r.stderr);
    assert.match(r.stderr, new RegExp(`unable to set private key file: '${ec.uri}' type PEM`));
  });
});
