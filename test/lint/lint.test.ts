// The linter and the formatters are part of the test suite, so that style drift fails CI.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO_ROOT } from '../helpers/emulator.js';

function run(command: string, args: string[]): { status: number | null; output: string } {
  const r = spawnSync(command, args, { cwd: REPO_ROOT, encoding: 'utf8' });
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}
const bin = (name: string): string => `${REPO_ROOT}/node_modules/.bin/${name}`;
const formatC = (args: string[]) =>
  run(process.execPath, [join(REPO_ROOT, 'scripts', 'format-c.mjs'), ...args]);

test('eslint reports no problems', () => {
  const r = run(bin('eslint'), ['.']);
  assert.equal(r.status, 0, r.output);
});

test('prettier finds every file formatted', () => {
  const r = run(bin('prettier'), ['--check', '.']);
  assert.equal(r.status, 0, r.output);
});

test('clang-format finds every C file of the provider formatted (provider/.clang-format)', () => {
  const r = formatC(['--check']);
  assert.equal(r.status, 0, r.output);
});

test('shellcheck finds no problem in any shell script (.shellcheckrc)', () => {
  const r = run(process.execPath, [join(REPO_ROOT, 'scripts', 'shellcheck.mjs')]);
  assert.equal(r.status, 0, r.output);
  assert.match(r.output, /shellcheck: \d+ scripts, no findings/);
});

test('the shell-script check fails on a script with a finding and names it', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'akv-shellcheck-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'unquoted');
  writeFileSync(file, '#!/usr/bin/env bash\nrm -rf $1/cache\n');
  const r = run(process.execPath, [join(REPO_ROOT, 'scripts', 'shellcheck.mjs'), file]);
  assert.equal(r.status, 1, r.output);
  assert.match(r.output, /unquoted:2:\d+: .*SC2086/);
});

test('the C format check names an unformatted file and the fix; npm run format:c fixes it', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'akv-format-c-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'messy.c');
  writeFileSync(file, 'static int  answer( void ){return 42;}\n');

  const before = formatC(['--check', file]);
  assert.equal(before.status, 1, before.output);
  assert.match(before.output, /messy\.c/);
  assert.match(before.output, /fix them with: npm run format:c/);

  const fix = formatC([file]);
  assert.equal(fix.status, 0, fix.output);
  assert.equal(readFileSync(file, 'utf8'), 'static int answer(void)\n{\n    return 42;\n}\n');
  const after = formatC(['--check', file]);
  assert.equal(after.status, 0, after.output);
});
