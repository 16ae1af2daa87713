/**
 * Sets up what every scenario measures against: an emulator, an agent configured for it, three
 * keys (made locally, imported, so the same material exists as a PEM file), and, on first use, an
 * nginx serving each TLS key twice (HSM key and local PEM).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { certificateFor, freePort, keyReferenceFor, Nginx } from './nginx.js';
import { run } from './proc.js';
import { NGINX_WORKERS, type BenchContext, type BenchNginx, type Profile } from './result.js';
import { Agent, Emulator, importKey, PROVIDER_DIR, REPO_ROOT } from './services.js';

/** Why the bench cannot run at all in this checkout, or undefined. */
export function missingBuild(): string | undefined {
  const needed = [
    join(PROVIDER_DIR, 'akv_provider.so'),
    ...['emulator', 'agent', 'key', 'keyref'].map((c) =>
      join(REPO_ROOT, 'dist', 'src', 'cli', 'commands', `${c}.js`),
    ),
  ];
  const missing = needed.find((f) => !existsSync(f));
  return missing
    ? `${missing} is missing: run \`npm run build\` first (npm run bench does)`
    : undefined;
}

/** Why the nginx scenarios cannot run, or undefined. */
export async function missingNginx(): Promise<string | undefined> {
  const r = await run('nginx', ['-v']).catch(() => undefined);
  return r && r.status === 0 ? undefined : 'nginx is not installed (Debian: apt-get install nginx)';
}

export interface OpenContext {
  ctx: BenchContext;
  close(): Promise<void>;
}

export async function openContext(
  dir: string,
  profile: Profile,
  log: (m: string) => void,
): Promise<OpenContext> {
  const hsmName = 'benchhsm';
  const closers: Array<() => Promise<void>> = [];
  const close = async (): Promise<void> => {
    for (const c of closers.reverse()) await c().catch(() => undefined);
    closers.length = 0;
  };
  try {
    log('starting the emulator and the agent');
    const emulator = await Emulator.start(dir);
    closers.push(() => emulator.stop());
    const agent = await Agent.start(dir, emulator, { label: 'main', hsmName });
    closers.push(() => agent.stop());
    log('making and importing keys: RSA 2048, RSA 3072, EC P-256');
    const keys = {
      rsa2048: await importKey(dir, agent, hsmName, { name: 'rsa2048', kty: 'RSA', bits: 2048 }),
      rsa3072: await importKey(dir, agent, hsmName, { name: 'rsa3072', kty: 'RSA', bits: 3072 }),
      ec256: await importKey(dir, agent, hsmName, { name: 'ec256', kty: 'EC', curve: 'P-256' }),
    };
    let nginx: Promise<BenchNginx> | undefined;
    const ctx: BenchContext = {
      dir,
      hsmName,
      profile,
      emulator,
      agent,
      keys,
      log,
      nginx: () => {
        nginx ??= (async () => {
          log(`starting nginx (${NGINX_WORKERS} workers, HSM and local-key servers)`);
          const servers = [];
          const ports = { rsa3072: { hsm: 0, local: 0 }, ec256: { hsm: 0, local: 0 } };
          for (const name of ['rsa3072', 'ec256'] as const) {
            const key = keys[name];
            const certFile = await certificateFor(dir, key);
            ports[name].hsm = await freePort();
            ports[name].local = await freePort();
            servers.push(
              {
                label: `${name} HSM key`,
                port: ports[name].hsm,
                certFile,
                keyFile: await keyReferenceFor(dir, agent, key),
              },
              {
                label: `${name} local key`,
                port: ports[name].local,
                certFile,
                keyFile: key.pemFile,
              },
            );
          }
          const n = await Nginx.start(dir, agent, NGINX_WORKERS, servers);
          closers.push(() => n.stop());
          return { nginx: n, workers: NGINX_WORKERS, ports };
        })();
        return nginx;
      },
    };
    return { ctx, close };
  } catch (err) {
    await close();
    throw err;
  }
}
