#!/usr/bin/env node
// Runs the test files under dist/test with node's test runner, in two tiers:
//   unit         tests that need no external program besides gcc/make (protocol, uri, config,
//                crypto, azure against in-process servers, client, the emulator, the C unit tests
//                against the fake agent): their ports and directories are their own, so they run
//                side by side (one file per core).
//   integration  everything else (openssl, nginx, HAProxy, Java, ssh, the .deb): one file at a
//                time, because several of them install on the host, bind the applications' own
//                ports or measure ratios that a busy machine distorts.
// `--unit` runs the unit tier only (`npm run test:unit`); with no flag both tiers run, unit first.
// Other arguments filter files by substring of their path under dist/test:
// `node scripts/run-tests.mjs emulator provider/`. The last line is "test: N passed, N failed, N skipped".
import { spawn } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { readdirSync, statSync } from 'node:fs';
import { dirname, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const testRoot = join(root, 'dist', 'test');

/** Folders (or files) under test/ whose tests form the unit tier. */
const UNIT = [
  'protocol/',
  'uri/',
  'config/',
  'crypto/',
  'azure/',
  'client/',
  'emulator/',
  'vectors/',
  'bench/',
  'provider/c-unit.test.js',
];

function walk(dir) {
  const out = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...walk(p));
    else if (name.endsWith('.test.js')) out.push(p);
  }
  return out;
}

const args = process.argv.slice(2);
const unitOnly = args.includes('--unit');
const filters = args.filter((a) => a !== '--unit');
const rel = (f) => relative(testRoot, f).split(sep).join('/');
const isUnit = (f) => UNIT.some((u) => (u.endsWith('/') ? rel(f).startsWith(u) : rel(f) === u));

const all = walk(testRoot).filter(
  (f) => filters.length === 0 || filters.some((s) => rel(f).includes(s)),
);
const unit = all.filter(isUnit);
const integration = unitOnly ? [] : all.filter((f) => !isUnit(f));
if (unit.length + integration.length === 0) {
  console.error('run-tests: no test files matched');
  process.exit(1);
}

/** Runs one tier; resolves with its exit status and the counts its spec reporter printed. */
function runTier(name, files, concurrency) {
  return new Promise((resolve) => {
    console.log(`run-tests: ${name} tier, ${files.length} files, ${concurrency} at a time`);
    const child = spawn(
      process.execPath,
      [
        '--test',
        `--test-concurrency=${concurrency}`,
        '--test-timeout=600000',
        '--test-reporter=spec',
        ...files,
      ],
      { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] },
    );
    const counts = { pass: 0, fail: 0, skipped: 0, cancelled: 0 };
    let tail = '';
    child.stdout.on('data', (chunk) => {
      process.stdout.write(chunk);
      tail = (tail + chunk.toString('utf8')).slice(-4096);
    });
    child.on('close', (status) => {
      for (const key of Object.keys(counts)) {
        const m = new RegExp(`^\\S*\\s*${key} (\\d+)$`, 'm').exec(tail);
        if (m) counts[key] = Number(m[1]);
      }
      resolve({ status: status ?? 1, counts });
    });
  });
}

const started = Date.now();
const results = [];
if (unit.length > 0) {
  results.push(await runTier('unit', unit, Math.max(2, availableParallelism())));
}
if (integration.length > 0) results.push(await runTier('integration', integration, 1));

const sum = (k) => results.reduce((n, r) => n + r.counts[k], 0);
const failed = sum('fail') + sum('cancelled');
const status = results.some((r) => r.status !== 0) ? 1 : 0;
console.log(`run-tests: ${((Date.now() - started) / 1000).toFixed(0)} s`);
console.log(`test: ${sum('pass')} passed, ${failed} failed, ${sum('skipped')} skipped`);
process.exit(status === 0 && failed === 0 ? 0 : 1);
