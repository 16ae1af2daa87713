/**
 * examples/haproxy/run-all.sh against the emulator, as a person runs it: setup (keys, key
 * references, certificates signed in the HSM), HAProxy with ssl-mode-async and one thread, the
 * client checks for the RSA and the EC frontend, then the clean-up.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { makeTestDir, runScript, uniqueHsmName } from './example.js';

test('run-all.sh passes every step with an RSA and an EC key, HAProxy never waiting on the HSM', async () => {
  const envFile = join(makeTestDir('runall'), '.env');
  try {
    const r = await runScript('run-all.sh', [
      '--env-file',
      envFile,
      '--hsm-name',
      uniqueHsmName('hxrun'),
    ]);
    const output = `${r.stdout}\n${r.stderr}`;
    assert.equal(r.status, 0, `run-all.sh failed:\n${output}`);
    assert.match(r.stdout, /run-all: every step passed/);
    assert.match(r.stdout, /test\.sh: 12 passed, 0 failed/);
    assert.doesNotMatch(r.stdout, /^FAIL/m);
    assert.match(r.stdout, /ssl-mode-async on/);
    // The version matrix's HAProxy (AKV_TEST_HAPROXY, docs/compatibility.md) is the one that ran.
    const matrixHaproxy = process.env.AKV_TEST_HAPROXY;
    if (matrixHaproxy) {
      const version = /HAProxy version (\S+)/.exec(
        spawnSync(matrixHaproxy, ['-v'], { encoding: 'utf8' }).stdout,
      )?.[1];
      assert.ok(version, `${matrixHaproxy} -v printed no version`);
      assert.ok(
        r.stdout.includes(`HAProxy version ${version}`),
        `not ${matrixHaproxy}:\n${r.stdout}`,
      );
    }
    for (const label of ['RSA', 'EC ']) {
      for (const check of [
        'curl',
        's_client -tls1_3',
        's_client -tls1_2',
        'public key',
        'signatures by',
        'async jobs',
      ]) {
        assert.ok(
          r.stdout.split('\n').some((l) => l.startsWith(`PASS  ${label}`) && l.includes(check)),
          `no PASS line for ${label} ${check}:\n${r.stdout}`,
        );
      }
    }
    // stop.sh --all removed the settings file and the state directory.
    assert.equal(existsSync(envFile), false);
    const state = /state: (\S+)\)/.exec(r.stdout)?.[1];
    assert.ok(state && !existsSync(state), `state directory left behind: ${state}`);
  } finally {
    if (existsSync(envFile)) await runScript('stop.sh', ['--env-file', envFile, '--all']);
    rmSync(dirname(envFile), { recursive: true, force: true });
  }
});

test('the scripts refuse bad input with a hint', async () => {
  const envFile = join(makeTestDir('bad'), '.env');
  try {
    let r = await runScript('start.sh', ['--env-file', envFile]);
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /no settings file at .*; hint: run \.\/setup\.sh first/);
    r = await runScript('setup.sh', ['--env-file', envFile, '--latency-ms', 'fast']);
    assert.notEqual(r.status, 0);
    assert.match(
      r.stderr,
      /--latency-ms must be a whole number of milliseconds, not 'fast'; hint:/,
    );
    assert.equal(existsSync(envFile), false);
    r = await runScript('setup.sh', ['--env-file', envFile, '--bogus']);
    assert.match(r.stderr, /unknown option '--bogus'; hint: run 'setup\.sh --help'/);
  } finally {
    rmSync(dirname(envFile), { recursive: true, force: true });
  }
});
