/**
 * The akv version: package.json is its one source. The CLI and the agent read it here, the
 * provider's Makefile passes it to the C build (-DAKV_PROVIDER_VERSION) and `npm run package`
 * writes it into the Debian package, so the three never disagree.
 */
import { readFileSync } from 'node:fs';

let cached: string | undefined;

/** package.json's version (dist/src/version.js sits two levels below the package root). */
export function akvVersion(): string {
  if (cached !== undefined) return cached;
  try {
    const pkg = JSON.parse(
      readFileSync(new URL('../../package.json', import.meta.url), 'utf8'),
    ) as { version?: unknown };
    cached = typeof pkg.version === 'string' ? pkg.version : '0.0.0';
  } catch {
    cached = '0.0.0';
  }
  return cached;
}
