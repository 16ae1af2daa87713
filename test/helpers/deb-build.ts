/**
 * The .deb of this checkout for the packaging tests, built once with `npm run package`'s script
 * and kept in build/deb-test/<key>/ of the checkout, so that deb.test.ts (contents, lintian) and
 * deb-install.test.ts (installs on the host) share one build: each alone stays within the test
 * runner's time limit on a busy machine. The key is a hash of what goes into the package
 * (package.json, the lock, debian/, the packaging scripts, and the names, sizes and times of the
 * built files), so a changed tree is built again; older keys are removed.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from './emulator.js';

function listing(dir: string, out: string[]): void {
  if (!existsSync(dir)) return;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) listing(p, out);
    else {
      const st = statSync(p);
      out.push(`${p} ${st.size} ${st.mtimeMs}`);
    }
  }
}

function key(): string {
  const h = createHash('sha256');
  for (const f of ['package.json', 'package-lock.json', 'CHANGELOG.md', 'README.md'])
    h.update(readFileSync(join(REPO_ROOT, f)));
  const files: string[] = [];
  for (const d of ['debian', 'scripts', 'dist/src', 'provider/src', 'packaging/systemd', 'docs'])
    listing(join(REPO_ROOT, d), files);
  h.update(files.join('\n'));
  return h.digest('hex').slice(0, 16);
}

export interface BuiltDeb {
  deb: string;
  dbgsym: string;
  /** What the build printed (from the build that made it). */
  output: string;
}

export function builtDeb(): BuiltDeb {
  const root = join(REPO_ROOT, 'build', 'deb-test');
  const dir = join(root, key());
  const done = join(dir, 'output.txt');
  if (!existsSync(done)) {
    rmSync(root, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    const r = spawnSync(
      process.execPath,
      [join(REPO_ROOT, 'scripts', 'package.mjs'), '--out', dir],
      {
        cwd: REPO_ROOT,
        encoding: 'utf8',
        maxBuffer: 64 << 20,
        timeout: 480_000,
      },
    );
    const output = `${r.stdout ?? ''}${r.stderr ?? ''}`;
    assert.equal(r.status, 0, output);
    writeFileSync(done, output);
  }
  const output = readFileSync(done, 'utf8');
  const deb = output.trimEnd().split('\n').at(-1)!;
  return { deb, dbgsym: deb.replace(/\/akv_/, '/akv-dbgsym_'), output };
}
