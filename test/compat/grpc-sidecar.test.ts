/**
 * The original provider's gRPC mTLS sidecars (src_provider_rust/grpc-example of
 * microsoft/AzureKeyVaultManagedHSMEngine) against akv: its generate-certs.sh (one HSM key is the
 * CA's, the server's and the client's: `openssl req -new ... -key managedhsm:...`, the CA
 * self-signed with `x509 -req -signkey managedhsm:...`, the others with `x509 -req -CA ca.crt
 * -CAkey managedhsm:...`), its nginx-server.conf (a stream server: TLS with the HSM key,
 * `ssl_verify_client on`, proxying to the application's Unix socket) and nginx-client.conf (a
 * stream server on a Unix socket proxying with `proxy_ssl_certificate_key` = the HSM key and
 * `proxy_ssl_verify on`). The application is a line echo server instead of the Rust greeter:
 * the sidecars only carry bytes. Only paths and ports differ, nginx's stream module is loaded
 * where it is a dynamic module (Debian), and before nginx 1.29 the key lines name an `akv keyref`
 * file instead of `store:` (docs/migrating.md).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createConnection, createServer, type Server } from 'node:net';
import { join } from 'node:path';
import {
  PROVIDER_MODULES_DIR,
  freePort,
  runSync,
  startProviderEnv,
  type ProviderEnv,
} from '../provider/openssl-env.js';

const NGINX = process.env.AKV_COMPAT_NGINX || 'nginx';
const STREAM_MODULE = '/usr/share/nginx/modules/ngx_stream_module.so';
const isRoot = process.getuid?.() === 0;

function nginxFacts(): { version?: [number, number]; staticStream: boolean } {
  const r = spawnSync(NGINX, ['-V'], { encoding: 'utf8' });
  const text = `${r.stderr ?? ''}${r.stdout ?? ''}`;
  const m = /nginx\/(\d+)\.(\d+)/.exec(text);
  return {
    ...(m ? { version: [Number(m[1]), Number(m[2])] as [number, number] } : {}),
    staticStream: /--with-stream(?!=dynamic)(\s|$)/.test(text),
  };
}
const facts = nginxFacts();
const skip =
  facts.version === undefined
    ? `no nginx (${NGINX})`
    : !facts.staticStream && !existsSync(STREAM_MODULE)
      ? `nginx has no stream module (apt-get install libnginx-mod-stream)`
      : false;

let pe: ProviderEnv;
let env: NodeJS.ProcessEnv;
let app: Server;
let serverPort: number;
const confs: string[] = [];

function sidecarConf(name: string, body: string): string {
  const dir = pe.dir;
  const conf = pe.file(`nginx/nginx-${name}.conf`);
  const load = facts.staticStream ? '' : `load_module ${STREAM_MODULE};\n`;
  writeFileSync(
    conf,
    `${load}worker_processes 1;
env AZURE_CLI_ACCESS_TOKEN;
env AKV_LOG_FILE;
env AKV_LOG_LEVEL;
env OPENSSL_CONF;
error_log ${dir}/logs/nginx-${name}-error.log debug;
pid ${dir}/logs/nginx-${name}.pid;
events {
    worker_connections 1024;
}
stream {
    log_format stream_fmt '$remote_addr [$time_local] '
                          '$protocol $status $bytes_sent $bytes_received '
                          '$session_time "$upstream_addr"';
    access_log ${dir}/logs/nginx-${name}-access.log stream_fmt;
${body}
}
`,
  );
  return conf;
}

before(async () => {
  if (skip) return;
  const store = facts.version !== undefined && (facts.version[0] > 1 || facts.version[1] >= 29);
  pe = await startProviderEnv(
    'compat-grpc',
    'grpccompat',
    isRoot ? { socketGroup: 'nogroup' } : {},
  );
  for (const d of ['certs', 'logs', 'nginx', 'run']) mkdirSync(pe.file(d), { mode: 0o711 });
  chmodSync(pe.file('run'), 0o711);
  const uri = pe.createKey('grpc-key', '--kty', 'RSA-HSM', '--size', '2048');
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
  env = { ...pe.env, OPENSSL_CONF: cnf, AKV_LOG_LEVEL: 'debug' };
  const provider = [
    '-provider-path',
    PROVIDER_MODULES_DIR,
    '-provider',
    'akv_provider',
    '-provider',
    'default',
  ];
  const c = (n: string): string => pe.file(`certs/${n}`);
  writeFileSync(
    c('ca.ext'),
    'basicConstraints = critical, CA:TRUE, pathlen:0\nkeyUsage = critical, keyCertSign, cRLSign\nsubjectKeyIdentifier = hash\n',
  );
  writeFileSync(
    c('server.ext'),
    'basicConstraints = CA:FALSE\nkeyUsage = critical, digitalSignature, keyEncipherment\nextendedKeyUsage = serverAuth\nsubjectAltName = DNS:localhost, IP:127.0.0.1, IP:::1\n',
  );
  writeFileSync(
    c('client.ext'),
    'basicConstraints = CA:FALSE\nkeyUsage = critical, digitalSignature\nextendedKeyUsage = clientAuth\nsubjectAltName = DNS:grpc-client\n',
  );
  const subject = (cn: string): string => `/C=US/ST=WA/L=Redmond/O=Contoso/OU=gRPC/CN=${cn}`;
  pe.opensslOk(
    [
      'req',
      '-new',
      ...provider,
      '-key',
      uri,
      '-subj',
      subject('gRPC-mTLS-CA'),
      '-out',
      c('ca.csr'),
    ],
    { env },
  );
  pe.opensslOk(
    [
      'x509',
      '-req',
      '-in',
      c('ca.csr'),
      '-signkey',
      uri,
      ...provider,
      '-days',
      '30',
      '-sha256',
      '-extfile',
      c('ca.ext'),
      '-out',
      c('ca.crt'),
    ],
    { env },
  );
  for (const [name, cn] of [
    ['server', 'localhost'],
    ['client', 'grpc-client'],
  ] as const) {
    pe.opensslOk(
      ['req', '-new', ...provider, '-key', uri, '-subj', subject(cn), '-out', c(`${name}.csr`)],
      { env },
    );
    pe.opensslOk(
      [
        'x509',
        '-req',
        '-in',
        c(`${name}.csr`),
        '-CA',
        c('ca.crt'),
        '-CAkey',
        uri,
        ...provider,
        '-CAcreateserial',
        '-days',
        '30',
        '-sha256',
        '-extfile',
        c(`${name}.ext`),
        '-out',
        c(`${name}.crt`),
      ],
      { env },
    );
    pe.opensslOk(['verify', '-CAfile', c('ca.crt'), c(`${name}.crt`)], { env });
  }
  let keyLine = `"store:${uri}"`;
  if (!store) {
    pe.akv(['keyref', uri, '--out', c('grpc-key.pem')]);
    keyLine = c('grpc-key.pem');
  }

  // The application behind the server sidecar (the greeter's Unix socket): echoes each line.
  const appSocket = pe.file('run/grpc-server.sock');
  app = createServer((s) => s.on('data', (d) => s.write(`hello ${d.toString()}`)));
  await new Promise<void>((resolve) => app.listen(appSocket, resolve));
  chmodSync(appSocket, 0o777); // nginx's workers may run as another user
  serverPort = await freePort();

  confs.push(
    sidecarConf(
      'server',
      `    upstream grpc_app {
        server unix:${appSocket};
    }
    server {
        listen 127.0.0.1:${serverPort} ssl;
        ssl_certificate ${c('server.crt')};
        ssl_certificate_key ${keyLine};
        ssl_verify_client on;
        ssl_client_certificate ${c('ca.crt')};
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_prefer_server_ciphers on;
        ssl_ciphers 'ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-AES128-GCM-SHA256';
        ssl_session_cache shared:SSL:10m;
        ssl_session_timeout 1h;
        ssl_session_tickets off;
        proxy_pass grpc_app;
        proxy_connect_timeout 60s;
        proxy_timeout 3600s;
    }`,
    ),
    sidecarConf(
      'client',
      `    upstream server_sidecar {
        server 127.0.0.1:${serverPort};
    }
    server {
        listen unix:${pe.file('run/grpc-client.sock')};
        proxy_pass server_sidecar;
        proxy_ssl on;
        proxy_ssl_certificate ${c('client.crt')};
        proxy_ssl_certificate_key ${keyLine};
        proxy_ssl_verify on;
        proxy_ssl_trusted_certificate ${c('ca.crt')};
        proxy_ssl_name localhost;
        proxy_ssl_protocols TLSv1.2 TLSv1.3;
        proxy_ssl_session_reuse on;
        proxy_connect_timeout 60s;
        proxy_timeout 3600s;
    }`,
    ),
  );
  for (const conf of confs) {
    const r = runSync(NGINX, ['-c', conf, '-p', pe.dir], env, pe.dir);
    assert.equal(r.status, 0, `nginx -c ${conf} did not start:\n${r.stderr}`);
  }
});

after(async () => {
  if (skip || pe === undefined) return;
  for (const name of ['server', 'client']) {
    const pidFile = pe.file(`logs/nginx-${name}.pid`);
    if (!existsSync(pidFile)) continue;
    const pid = Number(readFileSync(pidFile, 'utf8'));
    try {
      process.kill(pid, 'SIGQUIT');
    } catch {
      continue;
    }
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
  await new Promise((r) => app?.close(r));
  await pe.down();
});

/** One line through the client sidecar's Unix socket; resolves with what comes back. */
function throughSidecars(line: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = createConnection({ path: pe.file('run/grpc-client.sock') });
    let got = '';
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`no answer through the sidecars (got ${JSON.stringify(got)})`));
    }, 20_000);
    s.on('connect', () => s.write(`${line}\n`));
    s.on('data', (d: Buffer) => {
      got += d.toString();
      if (got.endsWith('\n')) {
        clearTimeout(timer);
        s.end();
        resolve(got);
      }
    });
    s.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
}

describe("the original's gRPC mTLS sidecars, with akv", { skip }, () => {
  it('a request crosses client sidecar -> mutual TLS with HSM keys on both ends -> server sidecar -> app', async () => {
    assert.equal(await throughSidecars('greeter'), 'hello greeter\n');
    assert.equal(await throughSidecars('again'), 'hello again\n');
  });

  it('the server sidecar refuses a client without a certificate (ssl_verify_client on)', () => {
    const r = runSync(
      'openssl',
      [
        's_client',
        '-connect',
        `127.0.0.1:${serverPort}`,
        '-CAfile',
        pe.file('certs/ca.crt'),
        '-quiet',
      ],
      pe.env,
      pe.dir,
      'greeter\n',
    );
    assert.doesNotMatch(r.stdout, /hello greeter/);
    const log = readFileSync(pe.file('logs/nginx-server-error.log'), 'utf8');
    assert.match(log, /client sent no required SSL certificate/, 'the server sidecar says why');
  });

  it('both HSM signatures were made by the agent (its audit lines)', () => {
    const audit = readFileSync(join(pe.dir, 'dev', 'agent.log'), 'utf8')
      .split('\n')
      .filter((l) => l.includes('"audit":true') && l.includes('"op":"sign"'));
    assert.ok(
      audit.length >= 2,
      `signatures for the server and client handshakes:\n${audit.join('\n')}`,
    );
  });
});
