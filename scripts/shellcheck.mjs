#!/usr/bin/env node
// Runs shellcheck (settings in .shellcheckrc) on every shell script of the repository: files
// named *.sh and files whose first line is a sh/bash shebang, tracked or new (not ignored), so a
// script added anywhere is checked without being listed. Paths narrow it (the lint test uses
// that). Exits 1 with shellcheck's findings, or when shellcheck is missing (scripts/setup.mjs
// installs Debian's). A finding is fixed, or disabled on its line with a comment saying why.
// Plain Node with no dependencies, like setup.mjs.
import { spawnSync } from 'node:child_process';
import { existsSync, openSync, readSync, closeSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

function firstLine(path) {
  const fd = openSync(path, 'r');
  try {
    const buf = Buffer.alloc(128);
    const n = readSync(fd, buf, 0, buf.length, 0);
    return buf.subarray(0, n).toString('utf8').split('\n')[0];
  } finally {
    closeSync(fd);
  }
}

const isShellScript = (path) => path.endsWith('.sh') || /^#!.*\b(ba)?sh\b/.test(firstLine(path));

function repositoryFiles() {
  const r = spawnSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], {
    cwd: root,
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });
  if (r.status !== 0) {
    console.error(`shellcheck: git ls-files failed: ${r.stderr}`);
    process.exit(1);
  }
  return r.stdout
    .split('\0')
    .filter(Boolean)
    .map((f) => join(root, f))
    .filter((f) => existsSync(f) && statSync(f).isFile());
}

const paths = process.argv.slice(2).map((p) => resolve(p));
const files = (paths.length > 0 ? paths : repositoryFiles()).filter(isShellScript);
if (files.length === 0) {
  console.error('shellcheck: no shell scripts found');
  process.exit(1);
}
const r = spawnSync('shellcheck', ['--format=gcc', ...files], { cwd: root, encoding: 'utf8' });
if (r.error) {
  console.error(
    'shellcheck: cannot run shellcheck: install it with `apt-get install shellcheck` (npm run setup does as root)',
  );
  process.exit(1);
}
if (r.status !== 0) {
  process.stdout.write(r.stdout);
  process.stderr.write(r.stderr);
  console.error(`shellcheck: findings in the files above (${files.length} scripts checked)`);
  process.exit(1);
}
console.log(`shellcheck: ${files.length} scripts, no findings`);
