/**
 * DIAGNOSE: what the agent sees, over the socket (the client's diagnose()), and `akv doctor
 * --json`, which reports it beside the local checks: the agent's credential and token expiry
 * (never the token), each HSM's reachability, the key, version, uptime and limits; the agent's
 * view counts for the exit status, this user's own credential only warns when the agent's works.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { startAgent, startAgentWithEcKey, type AgentWithEmulator } from '../helpers/agent.js';
import { AKV_BIN, REPO_ROOT, startEmulator } from '../helpers/emulator.js';
import { FrameDecoder, Op, Tag, encodeFrame, getString } from '../../src/protocol/index.js';

const HSM = 'diaghsm';
const KEY = `managedhsm:${HSM}:diag-ec`;
let fixture: AgentWithEmulator;

before(async () => {
  fixture = await startAgentWithEcKey(HSM, 'diag-ec');
});
after(async () => {
  await fixture?.stop();
});

test('DIAGNOSE without a URI: credential, token expiry, HSMs, version, uptime, limits', async () => {
  const report = await fixture.agent.client().diagnose();
  assert.equal(report.ready, true);
  const pkg = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as {
    version: string;
  };
  assert.equal(report.agent.version, pkg.version);
  assert.equal(report.agent.socket, fixture.agent.socket);
  assert.equal(report.agent.socketActivated, false);
  assert.equal(report.agent.config, fixture.agent.configFile);
  assert.ok(report.agent.uptimeSeconds >= 0);
  assert.equal(report.credential.ok, true);
  if (report.credential.ok) {
    assert.equal(report.credential.source, 'static-config');
    assert.ok(report.credential.expiresInSeconds > 0);
    assert.ok(!Number.isNaN(Date.parse(report.credential.expiresAt)));
  }
  assert.deepEqual(
    report.vaults.map((v) => [v.name, v.reachable, v.url]),
    [[HSM, true, fixture.emulator.url]],
  );
  assert.equal(report.limits.deadlineMs, 10_000);
  assert.equal(report.key, undefined);
  assert.ok(!JSON.stringify(report).includes(fixture.emulator.token), 'no token in the report');
});

test('DIAGNOSE with a URI describes the key, or says why it cannot', async () => {
  const client = fixture.agent.client();
  const good = await client.diagnose(KEY);
  assert.deepEqual(good.key && { ok: good.key.ok, uri: good.key.uri }, { ok: true, uri: KEY });
  if (good.key?.ok) {
    assert.equal(good.key.keyType, 'EC');
    assert.equal(good.key.curve, 'P-256');
    assert.deepEqual(good.key.keyOps.sort(), ['sign', 'verify']);
  }
  const missing = await client.diagnose(`managedhsm:${HSM}:no-such-key`);
  assert.equal(missing.key?.ok, false);
  if (missing.key && !missing.key.ok) assert.match(missing.key.error, /no-such-key/);
  const bad = await client.diagnose('not a uri');
  assert.equal(bad.key?.ok, false);
  assert.equal(bad.ready, true, 'a bad URI does not make the agent unready');
});

test('DIAGNOSE on the wire: op 0x0A answered by 0x8A with STATUS 0 and a JSON REPORT', async () => {
  const socket = createConnection({ path: fixture.agent.socket });
  const decoder = new FrameDecoder(1 << 20);
  const frames = new Promise<ReturnType<FrameDecoder['push']>>((resolve) => {
    socket.on('data', (chunk: Buffer) => {
      const got = decoder.push(chunk);
      if (got.length > 0) resolve(got);
    });
  });
  socket.write(encodeFrame(Op.DIAGNOSE, 7, []));
  const [frame] = await frames;
  socket.destroy();
  assert.equal(frame?.op, 0x8a);
  assert.equal(frame?.id, 7);
  const report = JSON.parse(getString(frame!, Tag.REPORT) ?? '') as { ready: boolean };
  assert.equal(report.ready, true);
});

/** Runs `bin/akv doctor --json URI` against the fixture's agent; AKV_CONFIG is the caller's. */
function doctorJson(
  socket: string,
  env: Record<string, string>,
): Promise<{ code: number | null; json: DoctorJson; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(AKV_BIN, ['doctor', '--json', '--socket', socket, KEY], {
      env: {
        ...process.env,
        OPENSSL_MODULES: join(REPO_ROOT, 'provider', 'build'),
        AZURE_CLI_ACCESS_TOKEN: '',
        ...env,
      },
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (err += c.toString()));
    child.once('error', reject);
    child.once('exit', (code) => {
      try {
        resolve({ code, json: JSON.parse(out) as DoctorJson, stderr: err });
      } catch {
        reject(new Error(`doctor --json printed no JSON: ${out}${err}`));
      }
    });
  });
}

interface DoctorJson {
  ok: boolean;
  version: string;
  uri: string | null;
  checks: Array<{ name: string; status: string; detail: string; hint?: string }>;
  agentReport: { ready: boolean; credential: { ok: boolean; source: string } } | null;
}

const statusOf = (j: DoctorJson): Record<string, string> =>
  Object.fromEntries(j.checks.map((c) => [c.name, c.status]));

test('doctor --json: every check with its status, and the agent report', async () => {
  const { code, json } = await doctorJson(fixture.agent.socket, {
    AKV_CONFIG: fixture.agent.configFile,
  });
  assert.equal(code, 0, JSON.stringify(json, null, 2));
  assert.equal(json.ok, true);
  assert.equal(json.uri, KEY);
  assert.deepEqual(statusOf(json), {
    'provider loadable': 'ok',
    'agent reachable': 'ok',
    'agent credential': 'ok',
    [`agent HSM ${HSM}`]: 'ok',
    credential: 'ok',
    'HSM reachable': 'ok',
    'key usable': 'ok',
    'test signature': 'ok',
  });
  assert.equal(json.agentReport?.ready, true);
  assert.equal(json.agentReport?.credential.source, 'static-config');
});

test("doctor fails on the agent's broken HSM access even when this user's works", async () => {
  // An emulator that checks tokens: the agent gets a wrong one, this user the right one.
  const strict = await startEmulator({ token: 'right-token' });
  const agent = await startAgent({
    emulator: { ...strict, token: 'wrong-token' },
    hsmName: HSM,
    extraConfig: { retry: { maxRetries: 0, baseDelayMs: 1, maxDelayMs: 1 } },
  });
  try {
    const callerConfig = join(agent.dir, 'caller.json');
    writeFileSync(
      callerConfig,
      JSON.stringify({
        vaults: {
          [HSM]: {
            endpoint: strict.url,
            caFile: strict.caFile,
            disableChallengeResourceVerification: true,
          },
        },
        credential: { type: 'static', token: 'right-token' },
      }),
    );
    const { code, json } = await doctorJson(agent.socket, { AKV_CONFIG: callerConfig });
    assert.equal(code, 1);
    assert.equal(json.ok, false);
    const s = statusOf(json);
    assert.equal(s['agent reachable'], 'ok');
    assert.equal(s[`agent HSM ${HSM}`], 'fail');
    assert.equal(s.credential, 'ok');
    assert.equal(s['HSM reachable'], 'ok');
    const hsm = json.checks.find((c) => c.name === `agent HSM ${HSM}`)!;
    assert.match(hsm.detail, /UNAUTHORIZED|401|token/i);
    assert.ok(hsm.hint, 'the failure carries a hint');
  } finally {
    await agent.stop();
    await strict.stop();
  }
});

test("this user's broken credential is a warning when the agent's works", async () => {
  // An expired JWT in AZURE_CLI_ACCESS_TOKEN: this shell's credential fails, the agent's is fine.
  const b64 = (o: object): string => Buffer.from(JSON.stringify(o)).toString('base64url');
  const expired = `${b64({ alg: 'none' })}.${b64({ exp: Math.floor(Date.now() / 1000) - 3600 })}.x`;
  const callerConfig = join(fixture.agent.dir, 'caller-default.json');
  writeFileSync(callerConfig, JSON.stringify({ credential: { type: 'default' } }));
  const { code, json } = await doctorJson(fixture.agent.socket, {
    AKV_CONFIG: callerConfig,
    AZURE_CLI_ACCESS_TOKEN: expired,
  });
  assert.equal(code, 0, JSON.stringify(json.checks, null, 2));
  const credential = json.checks.find((c) => c.name === 'credential')!;
  assert.equal(credential.status, 'warn');
  assert.match(credential.detail, /expired.*the agent's works/);
  assert.equal(statusOf(json)['agent credential'], 'ok');
});
