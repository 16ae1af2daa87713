/** The interim `npm run demo` program (already built) runs end to end and exits 0. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';
import { REPO_ROOT } from '../helpers/emulator.js';

test('demo: creates keys, signs, verifies, wraps and prints a passing summary', () => {
  const r = spawnSync(process.execPath, [join(REPO_ROOT, 'dist', 'src', 'demo', 'main.js')], {
    encoding: 'utf8',
    timeout: 120_000,
  });
  assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
  assert.match(r.stdout, /akv demo: all \d+ steps passed/);
  for (const step of ['create', 'sign+verify', 'wrap+unwrap']) assert.ok(r.stdout.includes(step));
  assert.doesNotMatch(r.stdout, /FAILED/);
});
