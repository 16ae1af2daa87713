/**
 * The `bin/akv` entry point as installers call it: through symlinks (what `npm link`, `npm i -g`
 * and the Debian package's /usr/bin/akv create), absolute or relative, chained, from any working
 * directory; and the one version (package.json) that the CLI and the provider both report.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { after, test } from 'node:test';
import { AKV_BIN, REPO_ROOT } from '../helpers/emulator.js';

const version = (
  JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string }
).version;
const scratch = mkdtempSync(join(tmpdir(), 'akv-entry-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

function run(command: string, args: string[]): { status: number | null; out: string; err: string } {
  const r = spawnSync(command, args, { cwd: '/', encoding: 'utf8', timeout: 30_000 });
  return { status: r.status, out: r.stdout, err: r.stderr };
}

test('bin/akv --version prints the version of package.json', () => {
  const r = run(AKV_BIN, ['--version']);
  assert.equal(r.status, 0, r.err);
  // The first line; the next ones name the agent's and the provider's versions (version-report.ts).
  assert.equal(r.out.split('\n')[0], `akv ${version}`);
});

test('the provider reports the version of package.json', () => {
  const r = spawnSync(
    'openssl',
    ['list', '-providers', '-verbose', '-provider', 'akv_provider', '-provider', 'default'],
    {
      encoding: 'utf8',
      env: { ...process.env, OPENSSL_MODULES: join(REPO_ROOT, 'provider', 'build') },
    },
  );
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, new RegExp(`version: ${version.replace(/\./g, '\\.')}\\n`));
});

test('bin/akv works through an absolute symlink, a relative one and a chain, from /', () => {
  const binDir = join(scratch, 'bin');
  const libDir = join(scratch, 'lib', 'node_modules', '.bin');
  mkdirSync(binDir, { recursive: true });
  mkdirSync(libDir, { recursive: true });
  const absolute = join(binDir, 'akv-absolute');
  symlinkSync(AKV_BIN, absolute);
  const relativeLink = join(libDir, 'akv');
  symlinkSync(relative(libDir, AKV_BIN), relativeLink);
  const chained = join(binDir, 'akv');
  symlinkSync(relative(binDir, relativeLink), chained); // bin/akv -> ../lib/node_modules/.bin/akv -> repo
  for (const link of [absolute, relativeLink, chained]) {
    const r = run(link, ['--version']);
    assert.equal(r.status, 0, `${link}: ${r.err}`);
    assert.equal(r.out.split('\n')[0], `akv ${version}`);
    const help = run(link, ['--help']);
    assert.equal(help.status, 0, `${link}: ${help.err}`);
    assert.match(help.out, /^Usage: akv <command>/);
  }
});

test('a copy of bin/akv without a build next to it says so and names the directory', () => {
  const fake = join(scratch, 'unbuilt');
  mkdirSync(join(fake, 'bin'), { recursive: true });
  copyFileSync(AKV_BIN, join(fake, 'bin', 'akv'));
  const link = join(scratch, 'akv-unbuilt');
  symlinkSync(join(fake, 'bin', 'akv'), link);
  // bin/akv is a Node script: alone it is read as CommonJS, beside akv's package.json as an ES
  // module ("type": "module"); both must say what to do.
  for (const beside of ['nothing', 'package.json']) {
    if (beside === 'package.json')
      copyFileSync(join(REPO_ROOT, 'package.json'), join(fake, 'package.json'));
    const r = run(link, ['--version']);
    assert.equal(r.status, 1, `beside ${beside}: ${r.err}`);
    assert.match(r.err, new RegExp(`not built yet: run \`npm run build\` in ${fake}`));
  }
});
