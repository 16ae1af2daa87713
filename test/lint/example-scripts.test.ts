/**
 * The examples' shell scripts (examples/**\/*.sh, libraries included): each states bash's strict
 * mode itself, before its first command, and bash reads every one of them without a syntax error.
 * (What they do is tested by running them: test/nginx, test/grpc, test/demo.)
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { test } from 'node:test';
import { REPO_ROOT } from '../helpers/emulator.js';

const EXAMPLES = join(REPO_ROOT, 'examples');

function scripts(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return name === 'node_modules' ? [] : scripts(path);
    return name.endsWith('.sh') ? [path] : [];
  });
}

const all = scripts(EXAMPLES);
const name = (path: string): string => relative(REPO_ROOT, path);

test('there are example scripts to check', () => {
  assert.ok(all.length >= 15, `only ${all.length} scripts under examples/`);
});

test('every example script states strict mode (set -euo pipefail) before its first command', () => {
  for (const path of all) {
    const commands = readFileSync(path, 'utf8')
      .split('\n')
      .map((line) => line.trim())
      .filter((line) => line !== '' && !line.startsWith('#'));
    assert.equal(commands[0], 'set -euo pipefail', `${name(path)} starts with: ${commands[0]}`);
  }
});

test('bash reads every example script without a syntax error', () => {
  for (const path of all) {
    const r = spawnSync('bash', ['-n', path], { encoding: 'utf8' });
    assert.equal(r.status, 0, `${name(path)}: ${r.stderr}`);
  }
});

// Issue 23: every example speaks one vocabulary, and each verb explains itself.
const VERBS = ['setup', 'start', 'test', 'stop', 'run-all'];

test('every example has setup, start, test, stop and run-all, each with --help', () => {
  const examples = readdirSync(EXAMPLES).filter((d) => statSync(join(EXAMPLES, d)).isDirectory());
  assert.ok(examples.length >= 3, `only ${examples.length} examples`);
  for (const example of examples) {
    for (const verb of VERBS) {
      const script = join(EXAMPLES, example, `${verb}.sh`);
      const r = spawnSync(script, ['--help'], { encoding: 'utf8' });
      assert.equal(r.status, 0, `examples/${example}/${verb}.sh --help: ${r.stderr}`);
      assert.match(r.stdout, new RegExp(`^Usage: ${verb}\\.sh`), `examples/${example}/${verb}.sh`);
    }
  }
});
