/**
 * The original provider's nginx-example (src_provider_rust/nginx-example of
 * microsoft/AzureKeyVaultManagedHSMEngine) against akv: certificates made the way its
 * generate-cert.sh makes them (`openssl req -new -provider-path ... -provider akv_provider
 * -provider default -key managedhsm:...`, then `openssl x509 -req -signkey managedhsm:...
 * -extfile server.ext`), its openssl-provider.cnf (default, base, then akv_provider with
 * `module = <dir>/libakv_provider.so`) and its nginx.conf.template (the `env` lines, TLS 1.2/1.3,
 * a shared session cache, tickets off, an RSA and an EC server with /health), checked the way
 * its test-client.sh does (curl -k, openssl s_client). Only paths and ports differ, and on an
 * nginx without `store:` (before 1.29; Debian 12 has 1.22) the key line names an `akv keyref` file
 * instead, the one change docs/migrating.md asks of those users. Running as root, nginx's workers
 * become nobody: the agent's socket then admits the group nogroup (as a server's agent would admit
 * www-data).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  PROVIDER_MODULES_DIR,
  freePort,
  runSync,
  startProviderEnv,
  type ProviderEnv,
} from '../provider/openssl-env.js';

const NGINX = process.env.AKV_COMPAT_NGINX || 'nginx';
const isRoot = process.getuid?.() === 0;
let pe: ProviderEnv;
let env: NodeJS.ProcessEnv;
let conf: string;
let ports: { rsa: number; ec: number };
let storeSupported = false;

function nginxVersion(): [number, number] | undefined {
  const r = spawnSync(NGINX, ['-v'], { encoding: 'utf8' });
  const m = /nginx\/(\d+)\.(\d+)/.exec(`${r.stderr ?? ''}${r.stdout ?? ''}`);
  return m ? [Number(m[1]), Number(m[2])] : undefined;
}

const version = nginxVersion();
const skip = version === undefined ? `no nginx (${NGINX})` : false;

before(async () => {
  if (skip) return;
  storeSupported = version !== undefined && (version[0] > 1 || version[1] >= 29);
  pe = await startProviderEnv(
    'compat-nginx',
    'nginxcompat',
    isRoot ? { socketGroup: 'nogroup' } : {},
  );
  for (const d of ['certs', 'logs', 'tmp']) mkdirSync(pe.file(d));
  pe.createKey('myrsakey', '--kty', 'RSA-HSM', '--size', '2048');
  pe.createKey('ecckey', '--kty', 'EC-HSM', '--curve', 'P-256');
  // openssl-provider.cnf.template, PROVIDER_PATH = akv's build directory.
  const cnf = pe.file('openssl-provider.cnf');
  writeFileSync(
    cnf,
    [
      'openssl_conf = openssl_init',
      '[openssl_init]',
      'providers = provider_sect',
      '[provider_sect]',
      'default = default_sect',
      'base = base_sect',
      'akv_provider = akv_provider_sect',
      '[default_sect]',
      'activate = 1',
      '[base_sect]',
      'activate = 1',
      '[akv_provider_sect]',
      `module = ${join(PROVIDER_MODULES_DIR, 'libakv_provider.so')}`,
      'activate = 1',
      '',
    ].join('\n'),
  );
  env = {
    ...pe.env,
    OPENSSL_CONF: cnf,
    AKV_LOG_FILE: pe.file('logs/akv-provider.log'),
    AKV_LOG_LEVEL: '3',
  };
  // generate-cert.sh's server.ext and its two openssl steps per key.
  writeFileSync(
    pe.file('certs/server.ext'),
    'basicConstraints = CA:FALSE\nkeyUsage = digitalSignature, keyEncipherment\nextendedKeyUsage = serverAuth\nsubjectAltName = DNS:localhost, IP:127.0.0.1\n',
  );
  for (const [key, prefix] of [
    ['myrsakey', 'server-rsa'],
    ['ecckey', 'server-ec'],
  ] as const) {
    const uri = `managedhsm:${pe.hsm}:${key}`;
    const provider = [
      '-provider-path',
      PROVIDER_MODULES_DIR,
      '-provider',
      'akv_provider',
      '-provider',
      'default',
    ];
    pe.opensslOk(
      [
        'req',
        '-new',
        ...provider,
        '-key',
        uri,
        '-subj',
        '/CN=localhost/O=Contoso',
        '-out',
        pe.file(`certs/${prefix}.csr`),
      ],
      { env },
    );
    pe.opensslOk(
      [
        'x509',
        '-req',
        '-in',
        pe.file(`certs/${prefix}.csr`),
        '-signkey',
        uri,
        ...provider,
        '-days',
        '30',
        '-sha256',
        '-extfile',
        pe.file('certs/server.ext'),
        '-out',
        pe.file(`certs/${prefix}.crt`),
      ],
      { env },
    );
    if (!storeSupported) pe.akv(['keyref', uri, '--out', pe.file(`certs/${prefix}.key.pem`)]);
  }
  ports = { rsa: await freePort(), ec: await freePort() };
  const keyLine = (key: string, prefix: string): string =>
    storeSupported
      ? `ssl_certificate_key "store:managedhsm:${pe.hsm}:${key}";`
      : `ssl_certificate_key ${pe.file(`certs/${prefix}.key.pem`)};`;
  const server = (port: number, prefix: string, key: string, type: string): string => `
    server {
        listen 127.0.0.1:${port} ssl;
        server_name localhost;
        ssl_certificate ${pe.file(`certs/${prefix}.crt`)};
        ${keyLine(key, prefix)}
        location / {
            default_type text/plain;
            return 200 'Hello from Nginx with Azure Managed HSM keyless TLS!\\nKey: ${key} (${type})\\n';
        }
        location /health {
            default_type application/json;
            return 200 '{"status": "healthy", "ssl": true, "hsm": "${pe.hsm}", "key": "${key}", "type": "${type}"}\\n';
        }
    }`;
  conf = pe.file('nginx.conf');
  const dir = pe.dir;
  writeFileSync(
    conf,
    `worker_processes 1;
env AZURE_CLI_ACCESS_TOKEN;
env AKV_LOG_FILE;
env AKV_LOG_LEVEL;
env OPENSSL_CONF;
error_log ${dir}/logs/error.log debug;
pid ${dir}/logs/nginx.pid;
events {
    worker_connections 1024;
}
http {
    client_body_temp_path ${dir}/tmp/client_body;
    proxy_temp_path ${dir}/tmp/proxy;
    fastcgi_temp_path ${dir}/tmp/fastcgi;
    uwsgi_temp_path ${dir}/tmp/uwsgi;
    scgi_temp_path ${dir}/tmp/scgi;
    access_log ${dir}/logs/access.log;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_prefer_server_ciphers on;
    ssl_session_cache shared:SSL:10m;
    ssl_session_timeout 1h;
    ssl_session_tickets off;
${server(ports.rsa, 'server-rsa', 'myrsakey', 'RSA')}
${server(ports.ec, 'server-ec', 'ecckey', 'EC')}
}
`,
  );
  const started = runSync(NGINX, ['-c', conf, '-p', dir], env, dir);
  assert.equal(started.status, 0, `nginx did not start:\n${started.stderr}`);
});

after(async () => {
  if (skip || pe === undefined) return;
  const pidFile = pe.file('logs/nginx.pid');
  if (existsSync(pidFile)) {
    const pid = Number(readFileSync(pidFile, 'utf8'));
    runSync(NGINX, ['-c', conf, '-p', pe.dir, '-s', 'quit'], env, pe.dir);
    const end = Date.now() + 15_000;
    while (Date.now() < end) {
      try {
        process.kill(pid, 0);
      } catch {
        break;
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  await pe.down();
});

describe("the original's nginx-example, served by akv", { skip }, () => {
  for (const [name, type] of [
    ['rsa', 'RSA'],
    ['ec', 'EC'],
  ] as const) {
    it(`${type} server: curl -k /health and / (test-client.sh)`, () => {
      const port = ports[name];
      const health = runSync(
        'curl',
        ['-k', '-s', '--max-time', '10', `https://127.0.0.1:${port}/health`],
        env,
        pe.dir,
      );
      assert.equal(health.status, 0, health.stderr);
      assert.equal((JSON.parse(health.stdout) as { type: string }).type, type);
      const root = runSync(
        'curl',
        ['-k', '-s', '--max-time', '10', `https://127.0.0.1:${port}/`],
        env,
        pe.dir,
      );
      assert.match(root.stdout, /keyless TLS/);
    });

    it(`${type} server: openssl s_client sees the HSM key's certificate (TLS 1.2 and 1.3)`, () => {
      const cert = readFileSync(pe.file(`certs/server-${name}.crt`), 'utf8');
      for (const proto of ['-tls1_2', '-tls1_3']) {
        const r = runSync(
          'openssl',
          ['s_client', '-connect', `127.0.0.1:${ports[name]}`, proto, '-showcerts'],
          env,
          pe.dir,
          '',
        );
        assert.match(r.stdout, /Verify return code|Protocol/, r.stderr);
        const served = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(
          r.stdout,
        )?.[0];
        assert.equal(
          served?.replace(/\s/g, ''),
          cert.trim().replace(/\s/g, ''),
          `${proto}: the certificate of ${type}`,
        );
      }
    });
  }

  it('the master logged to AKV_LOG_FILE at level 3; the handshakes were signed by the agent', () => {
    const log = readFileSync(pe.file('logs/akv-provider.log'), 'utf8');
    assert.match(log, / debug /);
    assert.match(log, /op=describe key=managedhsm:nginxcompat:ecckey result=ok/);
    const audit = readFileSync(join(pe.dir, 'dev', 'agent.log'), 'utf8');
    assert.match(
      audit,
      /"op":"sign"[^\n]*managedhsm:nginxcompat:myrsakey|managedhsm:nginxcompat:myrsakey[^\n]*"op":"sign"/,
    );
  });
});
