/**
 * TLS checks of the application tests, all made by clients without the provider: a server
 * presents the HSM key and proves it holds it (handshakes signed in the HSM), a client presents
 * its HSM-key certificate to a server that requires one.
 */
import assert from 'node:assert/strict';
import type { AppEnv, HsmKey, LoggedSignature, Run } from './app-env.js';

/** Public key (SubjectPublicKeyInfo PEM) of a certificate, read by plain OpenSSL. */
export function certPublicKey(app: AppEnv, certPem: string): string {
  return app.plainOpensslOk(['x509', '-noout', '-pubkey'], certPem).stdout;
}

/**
 * `openssl s_client` (plain: no provider) against a TLS server on 127.0.0.1:PORT, trusting only
 * the HSM key's certificate and checking the host name; returns the output and the certificate
 * the server sent.
 */
export function plainTlsHandshake(
  app: AppEnv,
  port: number,
  caCert: string,
  extra: string[] = [],
  input = '',
): { output: string; peerCert: string } {
  const r = app.run(
    'openssl',
    [
      's_client',
      '-connect',
      `127.0.0.1:${port}`,
      '-servername',
      'localhost',
      '-CAfile',
      caCert,
      '-verify_hostname',
      'localhost',
      '-verify_return_error',
      '-showcerts',
      ...extra,
    ],
    app.plainEnv,
    input,
  );
  const output = `${r.stdout}${r.stderr}`;
  assert.equal(r.status, 0, `s_client to port ${port} failed:\n${output}`);
  assert.match(output, /Verify return code: 0 \(ok\)/);
  const peerCert = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n/.exec(
    r.stdout,
  )?.[0];
  assert.ok(peerCert, `s_client printed no server certificate:\n${output}`);
  return { output, peerCert };
}

/**
 * Asserts that the server on PORT presents the HSM key and proves it holds it, in a TLS 1.3 and
 * a TLS 1.2 handshake, each signed in the HSM; returns those two signatures (to check who asked).
 */
export function assertServesHsmKey(
  app: AppEnv,
  port: number,
  key: HsmKey,
  extra: string[] = [],
): LoggedSignature[] {
  const { made } = app.signedDuring(key, () => {
    for (const version of ['-tls1_3', '-tls1_2']) {
      const { output, peerCert } = plainTlsHandshake(app, port, key.cert, [version, ...extra]);
      assert.match(output, new RegExp(`New, TLSv1\\.${version === '-tls1_3' ? 3 : 2}, Cipher`));
      assert.equal(certPublicKey(app, peerCert), key.publicKeyPem, 'server key is not the HSM key');
    }
  });
  assert.equal(made.length, 2, `${made.length} HSM signatures with ${key.name} for 2 handshakes`);
  return made;
}

export interface CurlOptions {
  path?: string;
  /** More curl options (client certificate, TLS version...). */
  args?: string[];
  /** Default: plainEnv (curl without the provider). */
  env?: NodeJS.ProcessEnv;
}

/** curl GET of https://localhost:PORT/PATH (resolved to 127.0.0.1), trusting only CA. */
export function curlGet(app: AppEnv, port: number, ca: string, options: CurlOptions = {}): Run {
  return app.run(
    'curl',
    [
      '-sS',
      ...(options.args ?? []),
      '--cacert',
      ca,
      '--resolve',
      `localhost:${port}:127.0.0.1`,
      `https://localhost:${port}${options.path ?? '/'}`,
    ],
    options.env ?? app.plainEnv,
  );
}

/**
 * Runs CONNECT (a client that fetches the -www page of startClientCertServer's server) and asserts
 * that the server received KEY's certificate and that the handshake's CertificateVerify was
 * signed in the HSM. Returns the page.
 */
export function assertPresentsClientCert(app: AppEnv, key: HsmKey, connect: () => Run): string {
  const { result, made } = app.signedDuring(key, connect);
  assert.equal(result.status, 0, result.stderr);
  const at = result.stdout.indexOf('Client certificate');
  const shown = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n/.exec(
    result.stdout.slice(Math.max(at, 0)),
  )?.[0];
  assert.ok(at >= 0 && shown, `the server saw no client certificate:\n${result.stdout}`);
  assert.equal(certPublicKey(app, shown), key.publicKeyPem, 'client key is not the HSM key');
  assert.equal(made.length, 1, 'one CertificateVerify signed in the HSM');
  return result.stdout;
}
