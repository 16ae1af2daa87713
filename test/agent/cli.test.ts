import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { AKV_BIN } from '../helpers/emulator.js';

const run = (...args: string[]) =>
  spawnSync(AKV_BIN, ['agent', ...args], { encoding: 'utf8', timeout: 30_000 });

test('akv agent --help explains the options, signals and environment', () => {
  const r = run('--help');
  assert.equal(r.status, 0);
  assert.match(r.stdout, /^Usage: akv agent \[--socket PATH\] \[--config FILE\]/);
  assert.match(r.stdout, /SIGHUP/);
  assert.match(r.stdout, /AKV_AGENT_SOCKET/);
});

test('unknown options and a missing config file are refused with a clear message', () => {
  const bad = run('--sokcet', '/tmp/x.sock');
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /sokcet/);
  const missing = run('--config', '/nonexistent/akv.json');
  assert.equal(missing.status, 1);
  assert.match(missing.stderr, /\/nonexistent\/akv\.json does not exist/);
});
