/**
 * Keyless TLS with a key-reference file: `openssl s_server -key ref.pem` (an application that only
 * reads PEM key files) signs its handshakes in the HSM, and `openssl s_client` completes TLS 1.3
 * and TLS 1.2 handshakes that verify against the server's certificate. Runs with the providers
 * activated in an openssl.cnf (default first, then akv_provider), as nginx is configured, and with
 * `-provider` options on the command line in either order.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PROVIDERS } from './openssl-env.js';
import { tlsFixture } from './tls-fixture.js';

const fx = tlsFixture('tls', 'tlshsm', { rsa: 'tls-rsa', ec: 'tls-ec' });
const DEFAULT_FIRST = ['-provider', 'default', '-provider', 'akv_provider'];
// NIST groups only: from 3.5 on a server given X25519 too prefers it.
const nistGroups = (version: string): string[] => [
  '-groups',
  version === '-tls1_2' ? 'P-256' : 'P-384',
];

describe('TLS handshakes signed in the HSM (s_server -key <keyref.pem>)', () => {
  for (const [label, envOf, extra] of [
    [
      'openssl.cnf activates default and akv_provider',
      (): NodeJS.ProcessEnv => fx.cnfEnv,
      [] as string[],
    ],
    ['-provider default -provider akv_provider', (): NodeJS.ProcessEnv => fx.pe.env, DEFAULT_FIRST],
    // akv_provider first: TLS then takes the NIST groups and ECDHE keys from akv_provider's keymgmt.
    ['-provider akv_provider -provider default', (): NodeJS.ProcessEnv => fx.pe.env, PROVIDERS],
  ] as const) {
    for (const key of ['tls-rsa', 'tls-ec']) {
      it(`${key}: TLS 1.3 and TLS 1.2 handshakes verify (${label})`, async () => {
        // Two connections, -www.
        const server = await fx.server(key, [...extra, '-naccept', '2', '-www'], envOf());
        const { tls13, tls12 } = await fx.tls13Then12(server, key, nistGroups);
        assert.match(
          tls12,
          key === 'tls-ec' ? /Ciphersuite: ECDHE-ECDSA-/ : /Ciphersuite: ECDHE-RSA-/,
        );
        // NIST-curve ECDHE: the ephemeral keys come from whichever provider is first for "EC".
        // (s_client -brief says "Server Temp Key" up to 3.4, "Peer Temp Key" from 3.5 on.)
        assert.match(tls12, /(?:Server|Peer) Temp Key: ECDH, prime256v1/);
        assert.match(tls13, /(?:Server|Peer) Temp Key: ECDH, secp384r1/);
      });
    }
  }
});
