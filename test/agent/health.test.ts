/**
 * Operating the agent: prom-client's metrics beside akv's own (build info, process and event-loop
 * metrics), /healthz and /readyz on the metrics listener (ready only with a token and an HSM that
 * answers), and `akv ping` (exit 0 when the agent answers, 1 with a hint when not, --wait).
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { startAgent, startAgentWithEcKey, type AgentWithEmulator } from '../helpers/agent.js';
import { AKV_BIN, REPO_ROOT } from '../helpers/emulator.js';

const HSM = 'healthhsm';
let fixture: AgentWithEmulator;
const scratch = mkdtempSync(join(tmpdir(), 'akv-health-'));
const version = (
  JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string }
).version;

before(async () => {
  fixture = await startAgentWithEcKey(HSM, 'health-ec');
});
after(async () => {
  await fixture?.stop();
  rmSync(scratch, { recursive: true, force: true });
});

const endpoint = (metricsUrl: string | undefined, path: string): URL => {
  assert.ok(metricsUrl, 'the agent prints its metrics URL');
  return new URL(path, metricsUrl);
};

test('metrics: akv_agent_build_info and prom-client default metrics beside akv metrics', async () => {
  const text = await (await fetch(endpoint(fixture.agent.metricsUrl, '/metrics'))).text();
  assert.match(
    text,
    new RegExp(`^akv_agent_build_info\\{version="${version}",node="${process.version}"\\} 1$`, 'm'),
  );
  assert.match(text, /^# TYPE process_cpu_seconds_total counter$/m);
  assert.match(text, /^process_resident_memory_bytes \d+/m);
  assert.match(text, /^# TYPE nodejs_eventloop_lag_seconds gauge$/m);
  assert.match(text, /^# TYPE akv_agent_requests_total counter$/m);
});

test('/healthz answers 200 while the agent serves', async () => {
  const res = await fetch(endpoint(fixture.agent.metricsUrl, '/healthz'));
  assert.equal(res.status, 200);
  assert.deepEqual(await res.json(), { status: 'alive' });
});

test('/readyz is 200 with a token and a reachable HSM, and never shows the token', async () => {
  const res = await fetch(endpoint(fixture.agent.metricsUrl, '/readyz'));
  const text = await res.text();
  assert.equal(res.status, 200, text);
  const body = JSON.parse(text) as {
    ready: boolean;
    credential: { ok: boolean; source: string; expiresInSeconds: number };
    vaults: Array<{ name: string; reachable: boolean; configured: boolean }>;
  };
  assert.equal(body.ready, true);
  assert.equal(body.credential.ok, true);
  assert.equal(body.credential.source, 'static-config');
  assert.ok(body.credential.expiresInSeconds > 0);
  assert.deepEqual(
    body.vaults.map((v) => [v.name, v.reachable, v.configured]),
    [[HSM, true, true]],
  );
  assert.ok(!text.includes(fixture.emulator.token), 'the token is not in /readyz');
});

test('/readyz is 503 with the reason when no HSM answers or none is known', async () => {
  const down = await startAgent({
    emulator: fixture.emulator,
    hsmName: 'downhsm',
    extraConfig: {
      metricsListen: '127.0.0.1:0',
      deadlineMs: 1000,
      retry: { maxRetries: 0, baseDelayMs: 1, maxDelayMs: 1 },
      vaults: { downhsm: { endpoint: 'https://127.0.0.1:1' } },
    },
  });
  const none = await startAgent({
    emulator: fixture.emulator,
    hsmName: 'unused',
    extraConfig: { metricsListen: '127.0.0.1:0', vaults: {} },
  });
  try {
    let res = await fetch(endpoint(down.metricsUrl, '/readyz'));
    let body = (await res.json()) as { ready: boolean; reason: string };
    assert.equal(res.status, 503);
    assert.equal(body.ready, false);
    assert.match(body.reason, /^no HSM answers \(downhsm: /);
    res = await fetch(endpoint(none.metricsUrl, '/readyz'));
    body = (await res.json()) as { ready: boolean; reason: string };
    assert.equal(res.status, 503);
    assert.match(body.reason, /^no HSM to check: list it under "vaults"/);
    // /healthz stays 200: the agent is alive, only its HSM is not there.
    assert.equal((await fetch(endpoint(down.metricsUrl, '/healthz'))).status, 200);
  } finally {
    await down.stop();
    await none.stop();
  }
});

test('akv ping exits 0 with the version when the agent answers', () => {
  const r = spawnSync(AKV_BIN, ['ping', '--socket', fixture.agent.socket], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.match(
    r.stdout,
    new RegExp(
      `^akv agent ${version.replace(/\./g, '\\.')} answers on ${fixture.agent.socket} \\(protocol 1, [\\d.]+ ms\\)\\n$`,
    ),
  );
  const quiet = spawnSync(AKV_BIN, ['ping', '--quiet'], {
    encoding: 'utf8',
    env: { ...process.env, AKV_AGENT_SOCKET: fixture.agent.socket },
  });
  assert.equal(quiet.status, 0, quiet.stderr);
  assert.equal(quiet.stdout, '');
});

test('akv ping exits 1 with the reason and a hint when no agent answers', () => {
  const socket = join(scratch, 'nobody.sock');
  const r = spawnSync(AKV_BIN, ['ping', '--socket', socket], { encoding: 'utf8' });
  assert.equal(r.status, 1);
  assert.match(r.stderr, new RegExp(`akv agent not reachable at ${socket} \\(ENOENT\\); hint: `));
  const bad = spawnSync(AKV_BIN, ['ping', '--timeout', 'soon'], { encoding: 'utf8' });
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /--timeout must be a whole number/);
});

test('akv ping --wait waits for an agent that is still starting', async () => {
  const socket = join(scratch, 'later', 'agent.sock');
  const ping = spawn(AKV_BIN, ['ping', '--socket', socket, '--wait', '30'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  ping.stdout.on('data', (c: Buffer) => (out += c.toString()));
  const exited = new Promise<number | null>((resolve) => ping.once('exit', resolve));
  await new Promise((r) => setTimeout(r, 1000)); // ping is retrying against a missing socket
  const late = spawn(AKV_BIN, ['agent', '--config', fixture.agent.configFile, '--socket', socket], {
    stdio: 'ignore',
  });
  try {
    assert.equal(await exited, 0);
    assert.match(out, /answers on /);
  } finally {
    late.kill('SIGTERM');
    await new Promise((r) => late.once('exit', r));
  }
});
