/**
 * Where akv_provider.so is for this copy of akv: in a checkout, `provider/build/` (what `npm run
 * build` makes); when installed (the Debian package, `make -C provider install`), OpenSSL's own
 * modules directory (`openssl version -m`), where applications find it without OPENSSL_MODULES.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { AKV_ROOT } from '../../install-root.js';

/** The root of this copy of akv (a checkout, or /usr/lib/akv when installed). */
export { AKV_ROOT };
/** Where `npm run build` puts the module in a checkout. */
export const BUILD_MODULES_DIR = join(AKV_ROOT, 'provider', 'build');
export const MODULE_FILE = 'akv_provider.so';

let systemDir: string | null | undefined;

/** OpenSSL's modules directory (`openssl version -m`), or null when openssl cannot say. */
export function opensslModulesDir(): string | null {
  if (systemDir !== undefined) return systemDir;
  const r = spawnSync('openssl', ['version', '-m'], { encoding: 'utf8', timeout: 15_000 });
  const m = /MODULESDIR:\s*"([^"]+)"/.exec(r.stdout ?? '');
  systemDir = m ? m[1]! : null;
  return systemDir;
}

/**
 * The directory to give OPENSSL_MODULES for this copy of akv: the checkout's build when there is
 * one, otherwise OpenSSL's modules directory (an installed akv).
 */
export function providerModulesDir(): string {
  if (existsSync(join(BUILD_MODULES_DIR, MODULE_FILE))) return BUILD_MODULES_DIR;
  return opensslModulesDir() ?? BUILD_MODULES_DIR;
}
