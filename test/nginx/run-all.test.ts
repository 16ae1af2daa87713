/**
 * examples/nginx/run-all.sh against the emulator, as a person runs it: setup.sh, start.sh,
 * test.sh (both keys, RSA 3072 and EC P-256, every client check), then stop.sh --all.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { makeTestDir, missingPrerequisite, runScript, uniqueHsmName } from './example.js';
import { stageAkv } from '../helpers/stage.js';

test(
  'run-all.sh passes every step on the emulator with an RSA and an EC key, then cleans up',
  { skip: missingPrerequisite() },
  async () => {
    const dir = makeTestDir('runall');
    const envFile = join(dir, '.env');
    try {
      const r = await runScript('run-all.sh', [
        '--env-file',
        envFile,
        '--hsm-name',
        uniqueHsmName('runall'),
      ]);
      const output = `${r.stdout}\n${r.stderr}`;
      assert.equal(r.status, 0, `run-all.sh failed:\n${output}`);
      assert.match(r.stdout, /run-all: every step passed/);
      assert.doesNotMatch(r.stdout, /^FAIL/m);
      // Both servers went through every check of test.sh.
      for (const label of ['RSA', 'EC ']) {
        for (const check of [
          'GET /health',
          's_client -tls1_3',
          's_client -tls1_2',
          'public key',
          'agent log',
          'refuses the server',
        ]) {
          assert.ok(
            r.stdout.split('\n').some((l) => l.startsWith(`PASS  ${label}`) && l.includes(check)),
            `no PASS line for ${label} ${check}:\n${r.stdout}`,
          );
        }
      }
      assert.match(r.stdout, /test\.sh: \d+ passed, 0 failed/);
      // stop.sh --all removed the state directory (and with it the emulator's keys) and .env.
      const stateDir = /^setup\.sh: {3}state: (\/\S+)$/m.exec(r.stdout)?.[1];
      assert.ok(stateDir, `setup.sh did not name its state directory:\n${r.stdout}`);
      assert.equal(existsSync(stateDir), false, `${stateDir} is still there`);
      assert.equal(existsSync(envFile), false, `${envFile} is still there`);
    } finally {
      if (existsSync(envFile)) await runScript('stop.sh', ['--env-file', envFile, '--all']);
      rmSync(dir, { recursive: true, force: true });
    }
  },
);

test('the step scripts refuse to run without settings, with a message that says what to run', async () => {
  const dir = makeTestDir('nosettings');
  try {
    const r = await runScript('start.sh', ['--env-file', join(dir, 'missing.env')]);
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /no settings file at .*missing\.env/);
    assert.match(r.stderr, /run \.\/setup\.sh first/);
    const bad = await runScript('setup.sh', ['--env-file', join(dir, '.env'), '--mode', 'cloud']);
    assert.notEqual(bad.status, 0);
    assert.match(bad.stderr, /AKV_MODE must be 'emulator' or 'azure'/);
    const help = await runScript('test.sh', ['--help']);
    assert.equal(help.status, 0);
    assert.match(help.stdout, /^Usage: test\.sh/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/**
 * As root (CI), also run the example as an ordinary user: nginx cannot switch users then, so its
 * workers run as that user and the agent socket stays owner-only. `nobody` runs a copy of akv it
 * can read (stageAkv), since the checkout may be in a directory closed to others.
 */
function whyNoUserRun(): string | undefined {
  const missing = missingPrerequisite();
  if (missing) return missing;
  if (process.getuid?.() !== 0) return 'runs only as root (it switches to the user nobody)';
  return undefined;
}

test(
  'run-all.sh also passes when started by an ordinary user (nobody)',
  { skip: whyNoUserRun() },
  () => {
    const akv = stageAkv();
    const example = join(akv.root, 'examples', 'nginx');
    const dir = makeTestDir('user');
    chmodSync(dir, 0o777);
    const envFile = `${dir}/.env`;
    const asNobody = (args: string[]) =>
      spawnSync('runuser', ['-u', 'nobody', '--', 'env', 'HOME=/tmp', ...args], {
        cwd: dir,
        encoding: 'utf8',
        timeout: 180_000,
      });
    try {
      const r = asNobody([
        `${example}/run-all.sh`,
        '--env-file',
        envFile,
        '--hsm-name',
        uniqueHsmName('user'),
      ]);
      assert.equal(r.status, 0, `run-all.sh as nobody failed:\n${r.stdout}\n${r.stderr}`);
      assert.match(
        r.stdout,
        /workers: auto\)/,
        'nginx should not switch users when started by an ordinary user',
      );
      assert.match(r.stdout, /test\.sh: \d+ passed, 0 failed/);
      assert.match(r.stdout, /run-all: every step passed/);
    } finally {
      if (existsSync(envFile)) asNobody([`${example}/stop.sh`, '--env-file', envFile, '--all']);
      rmSync(dir, { recursive: true, force: true });
      akv.remove();
    }
  },
);
