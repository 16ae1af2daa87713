/**
 * One nginx (the distribution's binary) serving several TLS servers side by side, so that an HSM
 * key and the same key from a local PEM file are measured on the same nginx, same workers, same
 * OpenSSL config (default + akv_provider activated for every server). HSM keys are given as
 * key-reference PEM files (`bin/akv keyref`), which nginx 1.22 reads like any key file.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { childPids, run, runChecked, sleep } from './proc.js';
import {
  AKV_BIN,
  cleanEnv,
  PROVIDER_DIR,
  providerOpensslCnf,
  type Agent,
  type BenchKey,
} from './services.js';

export interface TlsServer {
  label: string;
  port: number;
  certFile: string;
  /** A PEM private key file or a key-reference PEM. */
  keyFile: string;
}

/** A free loopback TCP port (bound then released; nginx binds it right after). */
export async function freePort(): Promise<number> {
  const { createServer } = await import('node:net');
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const address = srv.address();
      srv.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

/** A self-signed certificate for the key's public half, made with the local PEM (same key). */
export async function certificateFor(dir: string, key: BenchKey): Promise<string> {
  const certFile = join(dir, 'keys', `${key.spec.name}.crt`);
  await runChecked(
    'openssl',
    [
      'req',
      '-x509',
      '-new',
      '-key',
      key.pemFile,
      '-subj',
      '/CN=localhost',
      '-days',
      '2',
      '-sha256',
      '-out',
      certFile,
    ],
    { env: cleanEnv() },
  );
  return certFile;
}

/** `bin/akv keyref URI --out FILE`: the PEM that stands for the HSM key in nginx. */
export async function keyReferenceFor(dir: string, agent: Agent, key: BenchKey): Promise<string> {
  const file = join(dir, 'keys', `${key.spec.name}.keyref.pem`);
  await runChecked(AKV_BIN, ['keyref', key.uri, '--out', file], { env: agent.providerEnv() });
  return file;
}

export class Nginx {
  private constructor(
    private readonly prefix: string,
    private readonly confFile: string,
    private readonly env: NodeJS.ProcessEnv,
  ) {}

  static async start(
    dir: string,
    agent: Agent,
    workers: number,
    servers: TlsServer[],
    /** Directory under `dir` (several nginx can run side by side). */
    name = 'nginx',
  ): Promise<Nginx> {
    const prefix = join(dir, name);
    for (const sub of ['logs', 'tmp']) mkdirSync(join(prefix, sub), { recursive: true });
    const opensslCnf = join(prefix, 'openssl.cnf');
    writeFileSync(opensslCnf, providerOpensslCnf(agent));
    const isRoot = process.getuid?.() === 0;
    const serverBlocks = servers.map(
      (s) => `    # ${s.label}
    server {
        listen 127.0.0.1:${s.port} ssl;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_certificate ${s.certFile};
        ssl_certificate_key ${s.keyFile};
        location / { return 200 "${s.label}\\n"; }
    }`,
    );
    const conf = `# nginx for the akv bench (written by bench/lib/nginx.ts)
${isRoot ? '# Workers keep root so they can reach the bench agent socket (0700, owner only).\nuser root;' : ''}
daemon on;
worker_processes ${workers};
pid ${prefix}/nginx.pid;
error_log ${prefix}/logs/error.log warn;
env OPENSSL_CONF;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path ${prefix}/tmp/body;
    proxy_temp_path ${prefix}/tmp/proxy;
    fastcgi_temp_path ${prefix}/tmp/fastcgi;
    uwsgi_temp_path ${prefix}/tmp/uwsgi;
    scgi_temp_path ${prefix}/tmp/scgi;
    # Resumption stays available, as in production; the load generator never uses it.
    ssl_session_cache shared:${name}:10m;
${serverBlocks.join('\n')}
}
`;
    const confFile = join(prefix, 'nginx.conf');
    writeFileSync(confFile, conf);
    const env = cleanEnv({ OPENSSL_CONF: opensslCnf, OPENSSL_MODULES: PROVIDER_DIR });
    await runChecked('nginx', ['-p', prefix, '-c', confFile], { env });
    const nginx = new Nginx(prefix, confFile, env);
    for (let i = 0; i < 100 && nginx.workerPids().length < workers; i++) await sleep(50);
    if (nginx.workerPids().length < workers) {
      throw new Error(
        `nginx did not start ${workers} workers; ${prefix}/logs/error.log says:\n${nginx.errorLog()}`,
      );
    }
    return nginx;
  }

  masterPid(): number {
    return Number(readFileSync(join(this.prefix, 'nginx.pid'), 'utf8').trim());
  }

  workerPids(): number[] {
    try {
      return childPids(this.masterPid());
    } catch {
      return [];
    }
  }

  errorLog(): string {
    try {
      return readFileSync(join(this.prefix, 'logs', 'error.log'), 'utf8').slice(-3000);
    } catch {
      return '(no error log)';
    }
  }

  async stop(): Promise<void> {
    const master = this.masterPid();
    await run('nginx', ['-p', this.prefix, '-c', this.confFile, '-s', 'stop'], { env: this.env });
    for (let i = 0; i < 100; i++) {
      try {
        process.kill(master, 0);
      } catch {
        return;
      }
      await sleep(50);
    }
  }
}
