/**
 * Keyless TLS with a key-reference file: `openssl s_server -key ref.pem` (an application that only
 * reads PEM key files) signs its handshakes in the HSM, and `openssl s_client` completes TLS 1.3
 * and TLS 1.2 handshakes that verify against the server's certificate. Runs with the providers
 * activated in an openssl.cnf (default first, then akv_provider), as nginx is configured, and with
 * `-provider` options on the command line in either order.
 */
import assert from 'node:assert/strict';
import { type ChildProcess } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import {
  keyrefWithCertificate,
  PROVIDERS,
  startProviderEnv,
  startSServer,
  type ProviderEnv,
} from './openssl-env.js';

let pe: ProviderEnv;
let cnfEnv: NodeJS.ProcessEnv;
const servers = new Set<ChildProcess>();
const DEFAULT_FIRST = ['-provider', 'default', '-provider', 'akv_provider'];

before(async () => {
  pe = await startProviderEnv('tls', 'tlshsm');
  pe.createKey('tls-rsa', '--kty', 'RSA-HSM', '--size', '2048');
  pe.createKey('tls-ec', '--kty', 'EC-HSM', '--curve', 'P-256');
  cnfEnv = { ...pe.env, OPENSSL_CONF: pe.writeOpensslCnf() };
  for (const key of ['tls-rsa', 'tls-ec']) keyrefWithCertificate(pe, key, cnfEnv);
});

after(async () => {
  for (const s of servers) s.kill('SIGKILL');
  await pe?.down();
});

/** Starts s_server on a free port (two connections, -www) and resolves once it accepts them. */
async function startServer(
  key: string,
  env: NodeJS.ProcessEnv,
  extra: string[],
): Promise<{ port: number; proc: ChildProcess }> {
  const server = await startSServer(pe, key, [...extra, '-naccept', '2', '-www'], env);
  servers.add(server.proc);
  return server;
}

function handshake(port: number, key: string, version: '-tls1_3' | '-tls1_2'): string {
  const r = pe.openssl(
    [
      's_client',
      '-connect',
      `127.0.0.1:${port}`,
      version,
      // NIST groups only: from 3.5 on a server given X25519 too prefers it.
      '-groups',
      version === '-tls1_2' ? 'P-256' : 'P-384',
      '-CAfile',
      pe.file(`${key}.crt`),
      '-verify_hostname',
      'localhost',
      '-verify_return_error',
      '-brief',
    ],
    { input: '' },
  );
  const out = `${r.stdout}${r.stderr}`;
  assert.equal(r.status, 0, out);
  return out;
}

describe('TLS handshakes signed in the HSM (s_server -key <keyref.pem>)', () => {
  for (const [label, envOf, extra] of [
    [
      'openssl.cnf activates default and akv_provider',
      (): NodeJS.ProcessEnv => cnfEnv,
      [] as string[],
    ],
    ['-provider default -provider akv_provider', (): NodeJS.ProcessEnv => pe.env, DEFAULT_FIRST],
    // akv_provider first: TLS then takes the NIST groups and ECDHE keys from akv_provider's keymgmt.
    ['-provider akv_provider -provider default', (): NodeJS.ProcessEnv => pe.env, PROVIDERS],
  ] as const) {
    for (const key of ['tls-rsa', 'tls-ec']) {
      it(`${key}: TLS 1.3 and TLS 1.2 handshakes verify (${label})`, async () => {
        const { port, proc } = await startServer(key, envOf(), [...extra]);
        const exited = new Promise((resolve) => proc.on('exit', resolve));
        const tls13 = handshake(port, key, '-tls1_3');
        assert.match(tls13, /Protocol version: TLSv1\.3/);
        assert.match(tls13, /Verification: OK/);
        const tls12 = handshake(port, key, '-tls1_2');
        assert.match(tls12, /Protocol version: TLSv1\.2/);
        assert.match(tls12, /Verification: OK/);
        assert.match(
          tls12,
          key === 'tls-ec' ? /Ciphersuite: ECDHE-ECDSA-/ : /Ciphersuite: ECDHE-RSA-/,
        );
        // NIST-curve ECDHE: the ephemeral keys come from whichever provider is first for "EC".
        // (s_client -brief says "Server Temp Key" up to 3.4, "Peer Temp Key" from 3.5 on.)
        assert.match(tls12, /(?:Server|Peer) Temp Key: ECDH, prime256v1/);
        assert.match(tls13, /(?:Server|Peer) Temp Key: ECDH, secp384r1/);
        await exited;
        servers.delete(proc);
      });
    }
  }
});
