#!/usr/bin/env node
// Formats the provider's C sources with clang-format and provider/.clang-format (`npm run
// format:c`), or, with --check, lists the files that are not formatted and exits 1 (the lint test
// and `npm run lint`). Without paths it takes every .c and .h under provider/src, tests, fuzz and
// tools, and pkcs11/src and tests; paths (files or directories) narrow it. The check is made with
// clang-format 14, Debian 12's, which scripts/setup.mjs installs: another major version may break
// a few lines otherwise.
// Plain Node with no dependencies, like setup.mjs.
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const style = `--style=file:${join(root, 'provider', '.clang-format')}`;
const SOURCE_DIRS = [
  ...['src', 'tests', 'fuzz', 'tools'].map((d) => join(root, 'provider', d)),
  join(root, 'native'),
  ...['src', 'tests'].map((d) => join(root, 'pkcs11', d)),
];
const CHECKED_MAJOR = 14;

function cFiles(path) {
  if (!statSync(path).isDirectory()) return [path];
  return readdirSync(path)
    .sort()
    .flatMap((name) => {
      const p = join(path, name);
      if (statSync(p).isDirectory()) return cFiles(p);
      return /\.[ch]$/.test(name) ? [p] : [];
    });
}

function clangFormat(args) {
  return spawnSync('clang-format', [style, ...args], {
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });
}

const args = process.argv.slice(2);
const check = args.includes('--check');
const paths = args.filter((a) => a !== '--check').map((p) => resolve(p));
const files = (paths.length > 0 ? paths : SOURCE_DIRS).flatMap(cFiles);

const version = spawnSync('clang-format', ['--version'], { encoding: 'utf8' });
if (version.error || version.status !== 0) {
  console.error(
    'format-c: clang-format is not installed; install it with `node scripts/setup.mjs` (as root) ' +
      'or `apt-get install clang-format`',
  );
  process.exit(2);
}
const major = Number(/version (\d+)/.exec(version.stdout)?.[1]);

if (!check) {
  const r = clangFormat(['-i', ...files]);
  process.stderr.write(r.stderr);
  process.exit(r.status ?? 1);
}

const unformatted = files.filter((file) => {
  const r = clangFormat([file]);
  if (r.status !== 0) {
    console.error(`format-c: clang-format failed on ${file}: ${r.stderr.trim()}`);
    process.exit(2);
  }
  return r.stdout !== readFileSync(file, 'utf8');
});
if (unformatted.length > 0) {
  console.error(
    `format-c: ${unformatted.length} C file(s) are not formatted as provider/.clang-format says:`,
  );
  for (const file of unformatted) console.error(`  ${relative(process.cwd(), file) || file}`);
  console.error('fix them with: npm run format:c');
  if (major !== CHECKED_MAJOR) {
    console.error(
      `(this is clang-format ${major}; the style is checked with clang-format ${CHECKED_MAJOR}, ` +
        'whose line breaks may differ in places)',
    );
  }
  process.exit(1);
}
