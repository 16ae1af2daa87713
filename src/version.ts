/**
 * The akv version: package.json is its one source. The CLI and the agent read it here, the
 * provider's Makefile passes it to the C build (-DAKV_PROVIDER_VERSION) and `npm run package`
 * writes it into the Debian package, so the three never disagree.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { AKV_ROOT } from './install-root.js';
import { isRecord } from './guards.js';

let cached: string | undefined;

/** The version a package.json names, undefined when it names none; throws when unreadable. */
export function readPackageVersion(file: string | URL): string | undefined {
  const pkg: unknown = JSON.parse(readFileSync(file, 'utf8'));
  return isRecord(pkg) && typeof pkg.version === 'string' ? pkg.version : undefined;
}

/** package.json's version, read from the root of this copy (install-root.ts). */
export function akvVersion(): string {
  if (cached !== undefined) return cached;
  try {
    cached = readPackageVersion(join(AKV_ROOT, 'package.json')) ?? '0.0.0';
  } catch {
    cached = '0.0.0';
  }
  return cached;
}
