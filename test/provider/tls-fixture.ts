/**
 * The set-up the provider's TLS tests share (tls.test.ts, async.test.ts): an emulator and agent
 * with one RSA 2048 and one EC P-256 HSM key, each with a key-reference file and a certificate
 * for localhost; `openssl s_server` on a free port with the key-reference file as its key; and
 * `openssl s_client` handshakes that must verify against that certificate.
 */
import assert from 'node:assert/strict';
import { type ChildProcess } from 'node:child_process';
import { after, before } from 'node:test';
import {
  keyrefWithCertificate,
  startProviderEnv,
  startSServer,
  type ProviderEnv,
  type ProviderEnvOptions,
} from './openssl-env.js';

export type TlsVersion = '-tls1_3' | '-tls1_2';

export interface TlsServer {
  port: number;
  proc: ChildProcess;
}

export interface TlsFixture {
  readonly pe: ProviderEnv;
  /** The environment with OPENSSL_CONF activating default and akv_provider. */
  readonly cnfEnv: NodeJS.ProcessEnv;
  /** s_server with `key`'s certificate and key-reference file; killed at the end if still running. */
  server(key: string, args: string[], env: NodeJS.ProcessEnv): Promise<TlsServer>;
  /** One s_client handshake that must succeed; returns its output. */
  handshake(port: number, key: string, version: TlsVersion, clientArgs?: string[]): string;
  /**
   * A TLS 1.3 then a TLS 1.2 handshake against a server started for two connections; both must
   * verify; resolves with their outputs once the server has exited.
   */
  tls13Then12(
    server: TlsServer,
    key: string,
    clientArgs?: (version: TlsVersion) => string[],
  ): Promise<{ tls13: string; tls12: string }>;
}

/**
 * Registers the before/after hooks of a test file: `prefix` names its temporary directory, `hsm`
 * the emulated HSM, `keys` the RSA and EC key names to create.
 */
export function tlsFixture(
  prefix: string,
  hsm: string,
  keys: { rsa: string; ec: string },
  options: ProviderEnvOptions = {},
): TlsFixture {
  const servers = new Set<ChildProcess>();
  let pe: ProviderEnv | undefined;
  let cnfEnv: NodeJS.ProcessEnv = {};
  const fixture: TlsFixture = {
    get pe(): ProviderEnv {
      if (pe === undefined) throw new Error('tlsFixture: used before its before() hook ran');
      return pe;
    },
    get cnfEnv(): NodeJS.ProcessEnv {
      return cnfEnv;
    },
    async server(key: string, args: string[], env: NodeJS.ProcessEnv): Promise<TlsServer> {
      const server = await startSServer(fixture.pe, key, args, env);
      servers.add(server.proc);
      server.proc.on('exit', () => servers.delete(server.proc));
      return server;
    },
    handshake(port: number, key: string, version: TlsVersion, clientArgs: string[] = []): string {
      const r = fixture.pe.openssl(
        [
          's_client',
          '-connect',
          `127.0.0.1:${port}`,
          version,
          ...clientArgs,
          '-CAfile',
          fixture.pe.file(`${key}.crt`),
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
    },
    async tls13Then12(
      server: TlsServer,
      key: string,
      clientArgs: (version: TlsVersion) => string[] = () => [],
    ): Promise<{ tls13: string; tls12: string }> {
      const exited = new Promise((resolve) => server.proc.on('exit', resolve));
      const tls13 = fixture.handshake(server.port, key, '-tls1_3', clientArgs('-tls1_3'));
      assert.match(tls13, /Protocol version: TLSv1\.3/);
      assert.match(tls13, /Verification: OK/);
      const tls12 = fixture.handshake(server.port, key, '-tls1_2', clientArgs('-tls1_2'));
      assert.match(tls12, /Protocol version: TLSv1\.2/);
      assert.match(tls12, /Verification: OK/);
      await exited;
      return { tls13, tls12 };
    },
  };

  before(async () => {
    const env = await startProviderEnv(prefix, hsm, options);
    pe = env;
    env.createKey(keys.rsa, '--kty', 'RSA-HSM', '--size', '2048');
    env.createKey(keys.ec, '--kty', 'EC-HSM', '--curve', 'P-256');
    cnfEnv = { ...env.env, OPENSSL_CONF: env.writeOpensslCnf() };
    for (const key of [keys.rsa, keys.ec]) keyrefWithCertificate(env, key, cnfEnv);
  });

  after(async () => {
    for (const proc of servers) proc.kill('SIGKILL');
    await pe?.down();
  });

  return fixture;
}
