#!/usr/bin/env node
// npm run matrix [-- --skip-system] [-- --only openssl-3.5,...]: the version matrix
// (docs/compatibility.md). Builds what is missing (scripts/matrix-build.sh), then per OpenSSL:
// the provider built -Werror against it and installed into its modules directory, the
// installed module loading without OPENSSL_MODULES, and the openssl-CLI tests run with that
// openssl (AKV_TEST_OPENSSL_PREFIX, test/provider/openssl-env.ts); the module built against the
// system's OpenSSL 3.0 in each newer one (a distribution upgrade); HAProxy 3.0 on OpenSSL 3.5;
// nginx >= 1.29 when the archive serves it. Prints the table (and writes it to
// $AKV_MATRIX_DIR/results.md); exits 1 when a cell fails. A cell the archive cannot serve is
// reported as such, never as passed.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const matrixDir = process.env.AKV_MATRIX_DIR || join(homedir(), '.cache', 'akv', 'matrix');
const args = process.argv.slice(2);
const skipSystem = args.includes('--skip-system');
const onlyIndex = args.indexOf('--only');
const only = onlyIndex >= 0 ? new Set((args[onlyIndex + 1] ?? '').split(',')) : undefined;

/** The openssl-CLI tests run on every OpenSSL (file-name substrings for run-tests.mjs). */
const OPENSSL_TESTS = [
  'provider/sign',
  'provider/cipher',
  'provider/x509',
  'provider/tls',
  'provider/async',
  'provider/negative',
  'provider/autostart',
  'matrix/',
  'compat/',
];
/** What the 3.0-built module is run through in a newer OpenSSL. */
const UPGRADE_TESTS = ['provider/sign', 'provider/x509', 'provider/tls', 'matrix/nginx-store'];

const log = (msg) => process.stderr.write(`[matrix] ${msg}\n`);

function run(cmd, argv, env = process.env, quiet = false) {
  const r = spawnSync(cmd, argv, {
    cwd: root,
    env,
    stdio: quiet ? ['ignore', 'pipe', 'pipe'] : 'inherit',
    encoding: 'utf8',
  });
  return { ok: r.status === 0, status: r.status, out: `${r.stdout ?? ''}${r.stderr ?? ''}` };
}

function branches() {
  return readFileSync(join(root, 'scripts', 'matrix-versions.txt'), 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'))
    .map((l) => {
      const [component, branch] = l.split(/\s+/);
      return { component, branch, target: `${component}-${branch}` };
    });
}

/** Minutes the first build of PREFIX took (from its .akv-complete), or undefined. */
function buildMinutes(prefix) {
  const marker = join(prefix, '.akv-complete');
  if (!existsSync(marker)) return undefined;
  const seconds = Number(/^seconds=(\d+)$/m.exec(readFileSync(marker, 'utf8'))?.[1]);
  return Number.isFinite(seconds) ? Math.round(seconds / 6) / 10 : undefined;
}

function builtVersion(prefix) {
  const marker = join(prefix, '.akv-complete');
  if (!existsSync(marker)) return undefined;
  return /^version=(.*)$/m.exec(readFileSync(marker, 'utf8'))?.[1];
}

const available = (target) => {
  const f = join(matrixDir, `${target}.unavailable`);
  return existsSync(f) ? readFileSync(f, 'utf8').trim() : undefined;
};

/** The test files a filter list selects (run one at a time, so that each gets its own cell). */
function testFiles(filters) {
  const r = run('find', ['dist/test', '-name', '*.test.js'], process.env, true);
  return r.out
    .split('\n')
    .filter(Boolean)
    .map((f) => f.replace(/^dist\/test\//, '').replace(/\.test\.js$/, ''))
    .filter((f) => filters.some((s) => `${f}.test.js`.includes(s)))
    .sort();
}

const results = []; // { column, row, result, note }
function record(column, row, result, note = '') {
  results.push({ column, row, result, note });
  log(`${column} | ${row}: ${result}${note ? ` (${note})` : ''}`);
}

function runTests(column, filters, env) {
  for (const file of testFiles(filters)) {
    log(`${column}: ${file}`);
    let r = run(process.execPath, ['scripts/run-tests.mjs', `${file}.test.js`], env);
    if (r.ok) {
      record(column, file, 'pass');
      continue;
    }
    // One more run: on a loaded machine the emulator's RSA-4096 key generation or a deadline can
    // miss; a cell passing only the second time says so.
    log(`${column}: ${file} failed; running it once more`);
    r = run(process.execPath, ['scripts/run-tests.mjs', `${file}.test.js`], env);
    record(column, file, r.ok ? 'pass' : 'FAIL', r.ok ? 'passed on the second run' : '');
  }
}

function withEnv(extra) {
  const env = { ...process.env, ...extra };
  for (const [k, v] of Object.entries(extra)) if (v === undefined) delete env[k];
  return env;
}

function opensslCell(branch, prefix) {
  const column = `OpenSSL ${builtVersion(prefix)}`;
  const make = (target) =>
    run('make', ['-s', '-C', 'provider', `OPENSSL_PREFIX=${prefix}`, target], process.env, true);
  const built = make('all');
  record(column, 'provider builds -Werror', built.ok ? 'pass' : 'FAIL', built.ok ? '' : built.out);
  if (!built.ok) return;
  const installed = make('install');
  const version = run(join(prefix, 'bin', 'openssl'), ['version', '-m'], process.env, true);
  const modulesDir = /MODULESDIR: "([^"]+)"/.exec(version.out)?.[1] ?? '';
  const loads = run(
    join(prefix, 'bin', 'openssl'),
    ['list', '-providers', '-provider', 'akv_provider', '-provider', 'default'],
    withEnv({ OPENSSL_MODULES: undefined, OPENSSL_CONF: undefined }),
    true,
  );
  const ok =
    installed.ok &&
    existsSync(join(modulesDir, 'akv_provider.so')) &&
    loads.ok &&
    /akv_provider/.test(loads.out);
  record(
    column,
    'installed into its modules dir, loads',
    ok ? 'pass' : 'FAIL',
    ok ? modulesDir : `${installed.out}${loads.out}`,
  );
  runTests(column, OPENSSL_TESTS, withEnv({ AKV_TEST_OPENSSL_PREFIX: prefix }));
  if (branch !== '3.0') {
    runTests(
      `OpenSSL ${builtVersion(prefix)}, 3.0-built module`,
      UPGRADE_TESTS,
      withEnv({
        AKV_TEST_OPENSSL_PREFIX: prefix,
        AKV_TEST_OPENSSL_MODULES: join(root, 'provider', 'build'),
      }),
    );
  }
}

function main() {
  const started = Date.now();
  const wanted = (t) => only === undefined || only.has(t);
  const targets = branches().filter((b) => wanted(b.target));
  const build = run(
    join(root, 'scripts', 'matrix-build.sh'),
    targets.map((b) => b.target),
  );
  if (!build.ok) {
    log('the matrix builds failed (see above)');
    process.exit(1);
  }
  let total = 0;
  for (const { target } of targets) {
    const minutes = buildMinutes(join(matrixDir, target));
    if (minutes === undefined) continue;
    total += minutes;
    record(target, 'first build (min)', String(minutes));
  }
  log(`first builds took ${Math.round(total * 10) / 10} min in all (each in its .akv-complete)`);
  if (!run('make', ['-s', '-C', 'provider'], process.env, true).ok) {
    log('make -C provider (system OpenSSL) failed');
    process.exit(1);
  }
  if (!skipSystem && wanted('openssl-3.0')) {
    const system = run('openssl', ['version'], process.env, true).out.split(' ')[1] ?? '3.0';
    runTests(
      `OpenSSL ${system} (system)`,
      OPENSSL_TESTS,
      withEnv({ AKV_TEST_OPENSSL_PREFIX: undefined }),
    );
  }
  for (const { component, branch, target } of targets) {
    const prefix = join(matrixDir, target);
    const missing = available(target);
    if (missing !== undefined || builtVersion(prefix) === undefined) {
      record(`${component} ${branch}`, 'build', 'not available from the archive', missing ?? '');
      continue;
    }
    if (component === 'openssl') opensslCell(branch, prefix);
    else if (component === 'haproxy') {
      runTests(
        `HAProxy ${builtVersion(prefix)} on OpenSSL ${builtVersion(join(matrixDir, 'openssl-3.5'))}`,
        ['haproxy/run-all'],
        withEnv({
          AKV_TEST_OPENSSL_PREFIX: join(matrixDir, 'openssl-3.5'),
          AKV_TEST_HAPROXY: join(prefix, 'sbin', 'haproxy'),
        }),
      );
    } else if (component === 'nginx') {
      runTests(
        `nginx ${builtVersion(prefix)} on OpenSSL ${builtVersion(join(matrixDir, 'openssl-3.5'))}`,
        ['nginx/run-all'],
        withEnv({
          AKV_TEST_OPENSSL_PREFIX: join(matrixDir, 'openssl-3.5'),
          AKV_TEST_NGINX: join(prefix, 'sbin', 'nginx'),
        }),
      );
    }
  }

  const lines = [
    `Matrix run ${new Date().toISOString()} (${Math.round((Date.now() - started) / 60000)} min, ${basename(matrixDir)})`,
    '',
    '| column | check | result | note |',
    '|---|---|---|---|',
    ...results.map(
      (r) => `| ${r.column} | ${r.row} | ${r.result} | ${r.note.split('\n')[0].slice(0, 120)} |`,
    ),
  ];
  writeFileSync(join(matrixDir, 'results.md'), `${lines.join('\n')}\n`);
  process.stdout.write(`${lines.join('\n')}\n`);
  const failed = results.filter((r) => r.result === 'FAIL');
  if (failed.length > 0) {
    log(`${failed.length} cell(s) failed`);
    process.exit(1);
  }
  log(`every cell passed or is reported as not available (${join(matrixDir, 'results.md')})`);
}

main();
