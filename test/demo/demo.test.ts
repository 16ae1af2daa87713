/**
 * `npm run demo` (dist/src/demo/main.js, already built by `npm test`): the keyless-TLS demo on the
 * emulator runs end to end, prints progress, the summary table and a sample response, stops
 * everything and exits 0.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { missingPrerequisite, REPO_DIR } from '../nginx/example.js';

function runDemo(args: string[]): Promise<{ status: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      [join(REPO_DIR, 'dist', 'src', 'demo', 'main.js'), ...args],
      { cwd: REPO_DIR },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ status: code ?? 1, stdout, stderr }));
  });
}

test(
  'npm run demo: every step passes, with a summary table and a sample response, and stops everything',
  { skip: missingPrerequisite() },
  async () => {
    const r = await runDemo(['--hsm-name', 'demotest']);
    assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
    // Progress, step by step, as the steps run.
    for (let n = 1; n <= 9; n++) assert.match(r.stdout, new RegExp(`^\\[${n}/9\\] `, 'm'));
    // The summary table has a row per step and per client check, all ok.
    const table = r.stdout.slice(r.stdout.indexOf('\nSummary\n'));
    for (const step of [
      'emulator + agent',
      'RSA 3072 key',
      'EC P-256 key',
      'certificates',
      'nginx',
      'client checks',
      'stop',
    ]) {
      assert.match(
        table,
        new RegExp(`^${step.replace(/[+]/g, '\\+')}\\s+\\|.*\\|\\s*ok$`, 'm'),
        `no ok row for ${step}`,
      );
    }
    assert.doesNotMatch(table, /FAILED|skipped/);
    assert.match(
      r.stdout,
      /Sample response[\s\S]*protocol=TLSv1\.3 cipher=\S+[\s\S]*"status":"healthy"/,
    );
    assert.match(r.stdout, /akv demo: all 9 steps passed/);
    // Everything was stopped and removed.
    const stateDir = /files in (\/\S+)/.exec(r.stdout)?.[1];
    assert.ok(stateDir, 'the demo did not say where its files are');
    assert.equal(existsSync(stateDir), false, `${stateDir} was not removed`);
  },
);

test('npm run demo -- --help describes the demo; an unknown option is refused', async () => {
  const help = await runDemo(['--help']);
  assert.equal(help.status, 0);
  assert.match(help.stdout, /--keep/);
  const bad = await runDemo(['--frobnicate']);
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /Unknown option '--frobnicate'/);
});

test(
  'npm run demo -- --keep leaves nginx serving and prints the command that stops it',
  { skip: missingPrerequisite() },
  async () => {
    const r = await runDemo(['--keep', '--hsm-name', 'demokeep']);
    const stop = /stop everything: (\S+stop\.sh) --env-file (\S+) --all/.exec(r.stdout);
    try {
      assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
      assert.ok(stop, 'the demo did not print how to stop it');
      const curl = /^\s+curl --cacert (\S+) (https:\/\/localhost:\d+\/)$/m.exec(r.stdout);
      assert.ok(curl, 'the demo did not print a curl command');
      const answer = spawnSync(
        'curl',
        [
          '--silent',
          '--show-error',
          '--noproxy',
          '*',
          '--cacert',
          curl[1] as string,
          curl[2] as string,
        ],
        { encoding: 'utf8' },
      );
      assert.equal(answer.status, 0, answer.stderr);
      assert.match(answer.stdout, /keyless TLS/);
    } finally {
      if (stop) {
        spawnSync(stop[1] as string, ['--env-file', stop[2] as string, '--all'], {
          stdio: 'ignore',
        });
        rmSync(dirname(stop[2] as string), { recursive: true, force: true });
      }
    }
  },
);
