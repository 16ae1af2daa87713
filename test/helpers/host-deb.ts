/**
 * For tests that install the akv .deb on this host (as root): the lock every such test takes
 * (`flock /run/lock/akv-host-deb.lock`, so two never install at once), apt-get that waits for
 * dpkg's own lock, and a second build of a package with a higher version.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * Holds `flock /run/lock/akv-host-deb.lock` until release() is called; waits up to 20 minutes for
 * another holder.
 */
export async function hostInstallLock(): Promise<{ release: () => void }> {
  const child = spawn(
    'flock',
    ['-w', '1200', '/run/lock/akv-host-deb.lock', 'sh', '-c', 'echo locked; exec cat >/dev/null'],
    { stdio: ['pipe', 'pipe', 'inherit'] },
  );
  await new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (d: Buffer) => d.toString().includes('locked') && resolve());
    child.on('exit', (code) => reject(new Error(`flock gave up (exit ${code})`)));
  });
  return { release: () => child.stdin.end() };
}

/** apt-get's arguments for a test install: wait for dpkg's lock, no fsync per file, no questions. */
export const APT_GET_ARGS = [
  '-o',
  'DPkg::Lock::Timeout=900',
  '-o',
  'DPkg::Options::=--force-unsafe-io',
  '-y',
  '-q',
];
export const APT_ENV = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };

/**
 * `deb` again as version `version`: the same files with the version changed where the package and
 * akv read it (DEBIAN/control, /usr/lib/akv/package.json, with its md5sums line), written to
 * `out`. What a release with no code change would be; the agent it installs reports `version`.
 */
export function repackWithVersion(deb: string, version: string, scratch: string, out: string) {
  const tree = mkdtempSync(join(scratch, 'repack-'));
  const ok = (cmd: string, args: string[]): void => {
    const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 << 20 });
    assert.equal(r.status, 0, `${cmd} ${args.join(' ')}: ${r.stderr}`);
  };
  try {
    ok('dpkg-deb', ['-R', deb, tree]);
    const control = join(tree, 'DEBIAN', 'control');
    writeFileSync(
      control,
      readFileSync(control, 'utf8').replace(/^Version: .*$/m, `Version: ${version}`),
    );
    const rel = 'usr/lib/akv/package.json';
    const pkgFile = join(tree, rel);
    const pkg = JSON.parse(readFileSync(pkgFile, 'utf8')) as { version: string };
    pkg.version = version;
    const text = `${JSON.stringify(pkg, null, 2)}\n`;
    writeFileSync(pkgFile, text);
    const md5sums = join(tree, 'DEBIAN', 'md5sums');
    const md5 = createHash('md5').update(text).digest('hex');
    writeFileSync(
      md5sums,
      readFileSync(md5sums, 'utf8').replace(
        new RegExp(`^[0-9a-f]{32}  ${rel}$`, 'm'),
        `${md5}  ${rel}`,
      ),
    );
    ok('dpkg-deb', ['--root-owner-group', '-Zgzip', '-z1', '--build', tree, out]);
  } finally {
    rmSync(tree, { recursive: true, force: true });
  }
}
