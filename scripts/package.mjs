#!/usr/bin/env node
// `npm run package`: builds akv_<version>_<arch>.deb (and akv-dbgsym_<version>_<arch>.deb) with
// debhelper and prints the .deb's path as the last line. `npm run build` runs first.
//
// dpkg-buildpackage runs in a source tree prepared in a temporary directory, never in the
// checkout (its build products would land in the checkout's parent directory):
//   debian/       this repository's debian/, with debian/copyright completed from node_modules
//   app/          dist/bundle (what bin/akv runs, with its source maps), dist/src (no source maps:
//                 `akv dev` starts its emulator and agent from it), bin/akv, a run-time package.json, and the production
//                 node_modules (the lock's non-dev packages) without docs, tests, licence files (in
//                 debian/copyright), type declarations, source maps, dotfiles or empty directories
//   man/, completion/   generated from the CLI's --help texts (scripts/generate-man.mjs)
//   provider/, pkcs11/, package.json, packaging/systemd/, README.md, docs/, CHANGELOG.md
//   app/native/build/akv_peercred.node   the agent's peer-credentials addon (npm run build)
// debian/rules builds the provider there with dpkg-buildflags' flags; debhelper does the rest
// (docs/packaging.md). Nothing installed may point into this checkout or the temporary tree: the
// script checks every file of the built .deb and fails if one does.
// Options: --out DIR (default: the repository root).
import { execFileSync, spawnSync } from 'node:child_process';
import {
  chmodSync,
  copyFileSync,
  cpSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  renameSync,
  rmSync,
  rmdirSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { debianCopyright } from './package-copyright.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const version = pkg.version;
const outIndex = process.argv.indexOf('--out');
const outDir = resolve(outIndex > 0 ? process.argv[outIndex + 1] : root);

const say = (msg) => console.log(`package: ${msg}`);
const run = (cmd, args, opts = {}) =>
  execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], ...opts });
function fail(message, hint) {
  console.error(`package: ${message}; hint: ${hint}`);
  process.exit(1);
}

if (!/^\d+\.\d+\.\d+([~+.][0-9A-Za-z.+~]+)?$/.test(version ?? ''))
  fail(`package.json's version ${JSON.stringify(version)} is not a Debian version`, 'use x.y.z');
const changelogVersion = /^akv \(([^)]+)\)/.exec(
  readFileSync(join(root, 'debian/changelog'), 'utf8'),
)?.[1];
if (changelogVersion !== version)
  fail(
    `debian/changelog's latest entry is ${changelogVersion ?? '(none)'} but package.json says ${version}`,
    'follow the version bump procedure in docs/releasing.md (both, and CHANGELOG.md, change together)',
  );
for (const built of [
  'dist/bundle/akv.cjs',
  'dist/bundle/akv.cjs.cache',
  'dist/bundle/agent.cjs',
  'dist/bundle/agent.cjs.cache',
  'dist/src/cli/main.js',
  'native/build/akv_peercred.node',
])
  if (!existsSync(join(root, built)))
    fail(`${built} is missing`, 'run `npm run build` first (`npm run package` does)');
for (const tool of ['dpkg-buildpackage', 'dh'])
  if (spawnSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' }).status !== 0)
    fail(`${tool} is not installed`, 'apt-get install debhelper (npm run setup installs it)');

const arch = run('dpkg', ['--print-architecture']).trim();
const work = mkdtempSync(join(tmpdir(), 'akv-package-'));
const src = join(work, `akv-${version}`);
try {
  say(`preparing the source tree of akv ${version} in ${src}`);
  const copy = (from, to = from, filter = undefined) =>
    cpSync(join(root, from), join(src, to), { recursive: true, filter });
  copy('debian');
  copy('package.json');
  copy('provider', 'provider', (p) => !relative(join(root, 'provider'), p).startsWith('build'));
  for (const optional of ['pkcs11']) if (existsSync(join(root, optional))) copy(optional);
  copy('packaging/systemd');
  copy('README.md');
  copy('docs');
  // Apart from the docs: dh_installchangelogs would take it for the package's changelog.gz (in a
  // native package, debian/changelog); debian/rules installs it as CHANGELOG.md afterwards.
  copy('CHANGELOG.md', 'upstream/CHANGELOG.md');

  // The bundle bin/akv runs (scripts/bundle.mjs), with its code caches and source maps (AKV_DEBUG's
  // stack traces name the TypeScript files and lines); and the TypeScript build, without tests,
  // benches or source maps, which `akv dev` runs (src/cli/util/dev-services.ts).
  const app = join(src, 'app');
  cpSync(join(root, 'dist/bundle'), join(app, 'dist/bundle'), { recursive: true });
  cpSync(join(root, 'dist/src'), join(app, 'dist/src'), {
    recursive: true,
    filter: (p) => !p.endsWith('.map'),
  });
  mkdirSync(join(app, 'bin'));
  copyFileSync(join(root, 'bin/akv'), join(app, 'bin/akv'));
  chmodSync(join(app, 'bin/akv'), 0o755);
  // bin/akv runs as CommonJS because of it (no ES module loader at the agent's start).
  copyFileSync(join(root, 'bin/package.json'), join(app, 'bin/package.json'));
  copyFileSync(join(root, 'package.json'), join(app, 'package.json'));
  // The agent's peer-credentials addon, where dist/src/agent/peer-credentials.js looks for it.
  mkdirSync(join(app, 'native/build'), { recursive: true });
  copyFileSync(
    join(root, 'native/build/akv_peercred.node'),
    join(app, 'native/build/akv_peercred.node'),
  );

  // Production dependencies exactly as locked: every package-lock.json entry not marked dev (or
  // optional), copied from this checkout's node_modules, which `npm ci` installed from the same lock
  // (npm run build checks that it is not older than the lock). Checked against the lock's version.
  say('copying the production node_modules (the lock file without its dev packages)');
  const lock = JSON.parse(readFileSync(join(root, 'package-lock.json'), 'utf8'));
  let copied = 0;
  for (const [path, entry] of Object.entries(lock.packages ?? {})) {
    if (path === '' || entry.dev || entry.devOptional || entry.optional || entry.link) continue;
    const installed = join(root, path, 'package.json');
    if (!existsSync(installed))
      fail(
        `${path} is in package-lock.json but not installed`,
        'run `npm ci` (npm run build does)',
      );
    const { version: found } = JSON.parse(readFileSync(installed, 'utf8'));
    if (found !== entry.version)
      fail(
        `${path} is ${found}, the lock says ${entry.version}`,
        'run `npm ci` (npm run build does)',
      );
    cpSync(join(root, path), join(app, path), {
      recursive: true,
      // Nested node_modules are entries of their own (copied only when they are production ones).
      filter: (p) => !relative(join(root, path), p).split('/').includes('node_modules'),
    });
    copied++;
  }
  say(`node_modules: ${copied} packages`);
  // What Node needs at run time ("type": "module") and what `akv --version` reads.
  const { name, description, license, type, engines, dependencies } = pkg;
  writeFileSync(
    join(app, 'package.json'),
    `${JSON.stringify({ name, version, description, license, type, private: true, engines, dependencies }, null, 2)}\n`,
  );
  // The licences go into debian/copyright before pruning removes the packages' licence files.
  writeFileSync(
    join(src, 'debian/copyright'),
    debianCopyright(
      readFileSync(join(root, 'debian/copyright'), 'utf8'),
      join(app, 'node_modules'),
    ),
  );
  const pruned = pruneNodeModules(join(app, 'node_modules'));
  say(`node_modules: ${pruned} files and directories not needed at run time removed`);

  say('generating the manual pages and shell completion from the --help texts');
  run(process.execPath, [join(root, 'scripts/generate-man.mjs'), '--out', src], {
    stdio: ['ignore', 'ignore', 'inherit'],
  });

  say('dpkg-buildpackage -us -uc -b (debhelper)');
  const build = spawnSync('dpkg-buildpackage', ['-us', '-uc', '-b'], {
    cwd: src,
    encoding: 'utf8',
    maxBuffer: 64 << 20,
    env: { ...process.env, DEB_BUILD_OPTIONS: process.env.DEB_BUILD_OPTIONS ?? 'nocheck' },
  });
  if (build.status !== 0) {
    process.stderr.write(`${build.stdout}${build.stderr}`.split('\n').slice(-60).join('\n'));
    fail(
      `dpkg-buildpackage failed (exit ${build.status ?? build.signal})`,
      'the lines above say which debhelper step; missing build tools: npm run setup',
    );
  }

  const deb = join(work, `akv_${version}_${arch}.deb`);
  const dbgsym = join(work, `akv-dbgsym_${version}_${arch}.deb`);
  if (!existsSync(deb)) fail(`dpkg-buildpackage made no ${deb}`, 'check debian/control');

  // Nothing installed may point into the checkout or the build tree.
  const tree = join(work, 'check');
  run('dpkg-deb', ['-x', deb, tree]);
  for (const f of walk(tree)) {
    const st = lstatSync(f);
    const text = st.isSymbolicLink()
      ? run('readlink', [f])
      : st.isFile()
        ? readFileSync(f).toString('latin1')
        : '';
    for (const bad of [root, work])
      if (text.includes(bad))
        fail(
          `${relative(tree, f)} contains the path ${bad}`,
          'it must not depend on the build tree',
        );
  }

  mkdirSync(outDir, { recursive: true });
  const out = join(outDir, `akv_${version}_${arch}.deb`);
  moveFile(deb, out);
  if (existsSync(dbgsym)) {
    const outDbgsym = join(outDir, `akv-dbgsym_${version}_${arch}.deb`);
    moveFile(dbgsym, outDbgsym);
    say(`debug symbols: ${outDbgsym}`);
  }
  console.log(out);
} finally {
  if (!process.env.AKV_PACKAGE_KEEP) rmSync(work, { recursive: true, force: true });
}

/**
 * Removes from node_modules what is never loaded: documentation, tests, examples, licence files
 * (recorded in debian/copyright), type declarations, source maps, TypeScript sources shipped
 * beside their JavaScript, dotfiles (.npmignore, .github, ...), then the directories left empty.
 * Returns how many entries went.
 */
function pruneNodeModules(dir) {
  const DIRS = /^(docs?|tests?|__tests__|examples?|benchmarks?|\..*)$/i;
  const FILES =
    /^(readme|changelog|changes|history|authors|contributing|licen[cs]e|copying|notice|security|copyrightnotice)([.-].*)?$|\.(md|markdown|html|sh|map|d\.ts|d\.cts|d\.mts|tsbuildinfo)$|^\.|^tsconfig.*\.json$/i;
  const CODE = /\.(c|m)?js$|\.node$|^package\.json$/;
  let removed = 0;
  // The packages' own command-line programs ("bin" in package.json): akv never runs them.
  for (const pkgDir of readdirSync(dir, { recursive: true })
    .filter((f) => f.endsWith('package.json'))
    .map((f) => dirname(join(dir, f)))) {
    const { bin } = JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8'));
    for (const f of typeof bin === 'string' ? [bin] : Object.values(bin ?? {}))
      if (existsSync(join(pkgDir, f))) {
        rmSync(join(pkgDir, f));
        removed++;
      }
  }
  const visit = (d) => {
    // node_modules/<name> and node_modules/@scope/<name> are packages, whatever their names.
    const holdsPackages =
      basename(d) === 'node_modules' ||
      (basename(d).startsWith('@') && basename(dirname(d)) === 'node_modules');
    for (const entry of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, entry.name);
      if (entry.isDirectory()) {
        if (DIRS.test(entry.name) && (!holdsPackages || entry.name.startsWith('.'))) {
          rmSync(p, { recursive: true });
          removed++;
          continue;
        }
        visit(p);
        if (readdirSync(p).length === 0) {
          rmdirSync(p);
          removed++;
        }
      } else if (
        (FILES.test(entry.name) && !CODE.test(entry.name)) ||
        (/\.[cm]?ts$/.test(entry.name) && existsSync(p.replace(/ts$/, 'js')))
      ) {
        rmSync(p);
        removed++;
      }
    }
  };
  visit(dir);
  return removed;
}

function walk(dir) {
  const out = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...walk(p));
    else out.push(p);
  }
  return out;
}

function moveFile(from, to) {
  try {
    renameSync(from, to);
  } catch {
    copyFileSync(from, to);
    rmSync(from);
  }
}
