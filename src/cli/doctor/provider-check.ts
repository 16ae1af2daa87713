/**
 * `akv doctor`'s first link: can OpenSSL load akv_provider? OpenSSL's own modules directory comes
 * first, because that is where nginx, HAProxy and every application without OPENSSL_MODULES look
 * (the Debian package and `make -C provider install` put it there); then OPENSSL_MODULES, when this
 * shell sets it (a checkout after `akv dev up`).
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { AKV_ROOT, BUILD_MODULES_DIR, opensslModulesDir } from '../util/provider-location.js';
import { fail, ok, type Outcome } from './outcome.js';

interface Load {
  loaded: boolean;
  version?: string;
  why: string;
}

/** What `openssl list -providers` says of akv_provider from modulesDir (undefined: OpenSSL's own). */
export function providerLoad(modulesDir: string | undefined): Load | Error {
  const env = { ...process.env };
  if (modulesDir === undefined) delete env.OPENSSL_MODULES;
  else env.OPENSSL_MODULES = modulesDir;
  const r = spawnSync(
    'openssl',
    ['list', '-providers', '-verbose', '-provider', 'akv_provider', '-provider', 'default'],
    { env, encoding: 'utf8', timeout: 15_000 },
  );
  if (r.error) return r.error;
  const version = /akv_provider[\s\S]*?version: (\S+)/.exec(r.stdout)?.[1];
  const why =
    (r.stderr || r.stdout)
      .split('\n')
      .find((l) => l.trim() !== '')
      ?.trim() ?? `exit status ${r.status}`;
  return r.status === 0 && /akv_provider/.test(r.stdout)
    ? { loaded: true, ...(version ? { version } : {}), why }
    : { loaded: false, why };
}

export function checkProvider(): Outcome {
  const systemDir = opensslModulesDir() ?? "OpenSSL's modules directory";
  const system = providerLoad(undefined);
  if (system instanceof Error)
    return fail(
      `cannot run openssl: ${system.message}`,
      'install OpenSSL 3 (Debian/Ubuntu: apt-get install openssl)',
    );
  if (system.loaded)
    return ok(
      `akv_provider ${system.version ?? ''} loads from ${systemDir} (OpenSSL's modules directory)`,
    );
  const fromEnv = process.env.OPENSSL_MODULES;
  if (fromEnv) {
    const env = providerLoad(fromEnv);
    if (!(env instanceof Error) && env.loaded)
      return ok(
        `akv_provider ${env.version ?? ''} loads from OPENSSL_MODULES=${fromEnv} (not installed in ${systemDir}: applications started without OPENSSL_MODULES, such as nginx from systemd, will not find it)`,
      );
  }
  const where = fromEnv ? `OPENSSL_MODULES=${fromEnv} nor ${systemDir}` : systemDir;
  return fail(
    `openssl cannot load akv_provider from ${where}: ${system.why}`,
    `install it (the akv Debian package, or \`make -C ${join(AKV_ROOT, 'provider')} install\`), or build it (\`npm run build\`) and export OPENSSL_MODULES=${BUILD_MODULES_DIR} (\`akv dev up\` prints it)`,
  );
}
