/**
 * The demo's two direct checks: that the tools it needs are there (nginx, openssl, curl, a
 * loadable akv_provider.so), and a sample response fetched with curl as a person would.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Settings } from './example.js';

function firstLine(command: string, args: string[], env?: NodeJS.ProcessEnv): string | undefined {
  const r = spawnSync(command, args, { encoding: 'utf8', env });
  if (r.error || r.status !== 0) return undefined;
  return `${r.stdout}${r.stderr}`.split('\n').find((l) => l.trim() !== '');
}

/** One line naming the versions found; throws with the install commands for what is missing. */
export function checkTools(repo: string, env: NodeJS.ProcessEnv): string {
  const missing: string[] = [];
  const nginx = firstLine('sh', ['-c', 'nginx -v 2>&1 || /usr/sbin/nginx -v 2>&1'], env);
  if (!nginx) missing.push('nginx (apt-get install -y nginx)');
  const openssl = firstLine('openssl', ['version'], env);
  if (!openssl) missing.push('openssl (apt-get install -y openssl)');
  if (!firstLine('curl', ['--version'], env)) missing.push('curl (apt-get install -y curl)');
  const provider = join(repo, 'provider', 'build', 'akv_provider.so');
  if (!existsSync(provider)) missing.push('provider/build/akv_provider.so (npm run build)');
  if (missing.length) throw new Error(`missing: ${missing.join(', ')}`);
  const list = spawnSync(
    'openssl',
    ['list', '-providers', '-provider', 'akv_provider', '-provider', 'default'],
    { encoding: 'utf8', env: { ...env, OPENSSL_MODULES: dirname(provider) } },
  );
  if (list.status !== 0) throw new Error(`OpenSSL cannot load ${provider}: ${list.stderr.trim()}`);
  const nginxVersion = nginx?.replace('nginx version: ', '');
  const opensslVersion = openssl?.split(' ').slice(0, 2).join(' ');
  return `${nginxVersion}, ${opensslVersion}, akv_provider loads`;
}

/** GET / from the RSA server and GET /health from the EC server, shown as curl commands. */
export function fetchSample(s: Settings, env: NodeJS.ProcessEnv): string {
  const parts: string[] = [];
  for (const [kind, port, path] of [
    ['rsa', s.rsaPort, '/'],
    ['ec', s.ecPort, '/health'],
  ] as const) {
    const cert = join(s.stateDir, 'certs', `${kind}.crt`);
    const url = `https://localhost:${port}${path}`;
    // --resolve: the certificate's name, at the address nginx listens on (never IPv6 first).
    const args = ['--silent', '--show-error', '--noproxy', '*', '--cacert', cert, url];
    const r = spawnSync('curl', ['--resolve', `localhost:${port}:127.0.0.1`, ...args], {
      encoding: 'utf8',
      env,
    });
    if (r.status !== 0) throw new Error(`curl ${url} failed: ${r.stderr.trim()}`);
    parts.push(`$ curl --cacert ${cert} ${url}\n${r.stdout.trimEnd()}`);
  }
  return parts.join('\n\n');
}
