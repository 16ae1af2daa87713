/**
 * The distribution's HAProxy for the bench, as examples/haproxy runs it: one thread, with or
 * without `ssl-mode-async`, akv_provider activated through OPENSSL_CONF, one TLS frontend per
 * key (a PEM bundle: the certificate, then the key reference or the local key). Runs in the
 * foreground (-db) as our child, so its one pid is the server's CPU.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { run, sleep } from './proc.js';
import { cleanEnv, providerOpensslCnf, type Agent } from './services.js';
import type { TlsServer } from './nginx.js';

/** Why HAProxy cannot be measured, or undefined. */
export async function missingHaproxy(): Promise<string | undefined> {
  const r = await run('haproxy', ['-v']).catch(() => undefined);
  return r && r.status === 0
    ? undefined
    : 'haproxy is not installed (Debian: apt-get install haproxy)';
}

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

export class Haproxy {
  private constructor(
    private readonly child: ChildProcess,
    private readonly stderr: () => string,
  ) {}

  get pid(): number {
    return this.child.pid ?? 0;
  }

  static async start(
    dir: string,
    agent: Agent,
    name: string,
    options: { async: boolean; threads: number },
    servers: TlsServer[],
  ): Promise<Haproxy> {
    const home = join(dir, name);
    mkdirSync(home, { recursive: true });
    const opensslCnf = join(home, 'openssl.cnf');
    writeFileSync(opensslCnf, providerOpensslCnf(agent, { autostart: false }));
    const frontends = servers.map((s, i) => {
      const bundle = join(home, `server-${i}.pem`);
      writeFileSync(
        bundle,
        `${readFileSync(s.certFile, 'utf8')}\n${readFileSync(s.keyFile, 'utf8')}`,
      );
      return `# ${s.label}
frontend f${i}
    bind 127.0.0.1:${s.port} ssl crt ${bundle}
    http-request return status 200 content-type text/plain string "${s.label}"`;
    });
    const cfg = join(home, 'haproxy.cfg');
    writeFileSync(
      cfg,
      `# HAProxy for the akv bench (written by bench/lib/haproxy.ts)
global
    nbthread ${options.threads}
${options.async ? '    ssl-mode-async\n' : ''}    maxconn 4000

defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s

${frontends.join('\n\n')}
`,
    );
    const env = cleanEnv({ OPENSSL_CONF: opensslCnf });
    const child = spawn('haproxy', ['-db', '-f', cfg], {
      env,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let err = '';
    child.stderr?.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-4000)));
    const h = new Haproxy(child, () => err);
    for (let i = 0; i < 200; i++) {
      if (child.exitCode !== null) break;
      const open = await Promise.all(servers.map((s) => portOpen(s.port)));
      if (open.every(Boolean)) return h;
      await sleep(50);
    }
    await h.stop();
    throw new Error(`haproxy (${name}) did not start: ${err}`);
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  }

  errors(): string {
    return this.stderr();
  }
}
