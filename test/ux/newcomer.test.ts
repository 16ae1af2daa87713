/**
 * The small things a newcomer hit (issue 22), each checked against the real thing:
 *  - README's "Try it by hand" creates data.txt before it signs it;
 *  - stop.sh --all removes the demo's private akv-demo-* directory with its settings file;
 *  - docs quote no C line numbers (they move);
 *  - the agent test helper leaves no /tmp/akv-agent-test-* directory, even for an agent that was
 *    killed rather than stopped (run in a private TMPDIR, so other tests' directories do not count).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { REPO_ROOT } from '../helpers/emulator.js';

const scratch = mkdtempSync(join(tmpdir(), 'akv-newcomer-test-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

test('README "Try it by hand" creates data.txt before signing it', () => {
  const readme = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');
  const section = readme.split('## Try it by hand')[1]!.split('\n## ')[0]!;
  const lines = section.split('\n');
  const created = lines.findIndex((l) => /^\s+(echo|printf) .*> *data\.txt/.test(l));
  const used = lines.findIndex((l) => /data\.txt/.test(l) && !/> *data\.txt/.test(l));
  assert.ok(created >= 0, 'a line writes data.txt');
  assert.ok(used < 0 || created < used, 'it is written before it is used');
});

test("examples/nginx/stop.sh --all removes the demo's akv-demo-* settings directory", () => {
  const dir = mkdtempSync(join(scratch, 'akv-demo-'));
  const env = join(dir, '.env');
  writeFileSync(
    env,
    [
      'AKV_MODE=emulator',
      'AKV_HSM_NAME=akvdemo',
      'RSA_KEY_NAME=rsa',
      'EC_KEY_NAME=ec',
      'RSA_PORT=1',
      'EC_PORT=2',
      `STATE_DIR=${join(scratch, 'no-state')}`,
      '',
    ].join('\n'),
  );
  const r = spawnSync(join(REPO_ROOT, 'examples/nginx/stop.sh'), ['--env-file', env, '--all'], {
    encoding: 'utf8',
  });
  assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
  assert.ok(!existsSync(dir), `${dir} removed:\n${r.stdout}${r.stderr}`);
  // Another directory holding a settings file is the user's: it stays.
  const own = mkdtempSync(join(scratch, 'mine-'));
  writeFileSync(
    join(own, '.env'),
    `AKV_MODE=emulator\nAKV_HSM_NAME=a\nRSA_KEY_NAME=r\nEC_KEY_NAME=e\nRSA_PORT=1\nEC_PORT=2\nSTATE_DIR=${join(scratch, 'none')}\n`,
  );
  const r2 = spawnSync(
    join(REPO_ROOT, 'examples/nginx/stop.sh'),
    ['--env-file', join(own, '.env'), '--all'],
    { encoding: 'utf8' },
  );
  assert.equal(r2.status, 0, r2.stderr);
  assert.ok(existsSync(own), 'a directory not named akv-demo-* stays');
});

test('docs quote no C source line numbers', () => {
  for (const f of readdirSync(join(REPO_ROOT, 'docs')).filter((f) => f.endsWith('.md'))) {
    const text = readFileSync(join(REPO_ROOT, 'docs', f), 'utf8');
    assert.doesNotMatch(text, /\b[a-z_]+\.c:\d+/, `docs/${f} quotes a line number`);
  }
});

test('the agent test helper leaves no /tmp/akv-agent-test-* behind, even after kill()', () => {
  const tmp = mkdtempSync(join(scratch, 'tmp-'));
  const script = `
    import { startAgentWithEcKey } from ${JSON.stringify(join(REPO_ROOT, 'dist/test/helpers/agent.js'))};
    const { agent, emulator } = await startAgentWithEcKey('newcomer', 'k');
    await agent.kill('SIGKILL');
    await emulator.stop();
  `;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
    encoding: 'utf8',
    env: { ...process.env, TMPDIR: tmp },
    timeout: 120_000,
  });
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(
    readdirSync(tmp).filter((f) => f.startsWith('akv-agent-test-')),
    [],
  );
});
