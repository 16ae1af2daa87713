// The linter and the formatter are part of the test suite, so that style drift fails CI.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { REPO_ROOT } from '../helpers/emulator.js';

function run(bin: string, args: string[]): { status: number | null; output: string } {
  const r = spawnSync(`${REPO_ROOT}/node_modules/.bin/${bin}`, args, {
    cwd: REPO_ROOT,
    encoding: 'utf8',
  });
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

test('eslint reports no problems', () => {
  const r = run('eslint', ['.']);
  assert.equal(r.status, 0, r.output);
});

test('prettier finds every file formatted', () => {
  const r = run('prettier', ['--check', '.']);
  assert.equal(r.status, 0, r.output);
});
