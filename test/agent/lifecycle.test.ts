/**
 * The agent as a process: socket and directory permissions, one agent per socket, stale sockets,
 * restarts under a connected client, SIGTERM draining, SIGHUP reloading, the key cache, metrics.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createConnection } from 'node:net';
import { createHash, createPublicKey, verify } from 'node:crypto';
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Op, encodeFrame } from '../../src/protocol/index.js';
import { AKV_BIN, type RunningEmulator } from '../helpers/emulator.js';
import {
  startAgent,
  startAgentWithEcKey,
  type AgentWithEmulator,
  type RunningAgent,
} from '../helpers/agent.js';

const HSM = 'lifehsm';
const KEY = `managedhsm:${HSM}:life-ec`;
let emulator: RunningEmulator;
let agent: RunningAgent;
let fixture: AgentWithEmulator | undefined;

before(async () => {
  fixture = await startAgentWithEcKey(HSM, 'life-ec');
  ({ emulator, agent } = fixture);
});

after(async () => {
  await fixture?.stop();
});

const mode = (path: string): number => statSync(path).mode & 0o777;
const digest = (s: string): Buffer => createHash('sha256').update(s).digest();

async function signCount(): Promise<number> {
  return (await emulator.stats()).requests.sign ?? 0;
}

async function until(what: string, cond: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 600; i++) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`gave up waiting for: ${what}`);
}

test('the socket is 0600 in a 0700 directory owned by the agent user', () => {
  assert.equal(mode(agent.socket), 0o600);
  assert.equal(mode(dirname(agent.socket)), 0o700);
  assert.equal(statSync(agent.socket).uid, process.getuid!());
  assert.ok(statSync(agent.socket).isSocket());
});

test('with socketGroup the socket is 0660 and the directory 0750, both in that group', async () => {
  // root may give files to any group; anyone else to a group of their own.
  const isRoot = process.getuid!() === 0;
  const group =
    isRoot && /^daemon:/m.test(readFileSync('/etc/group', 'utf8'))
      ? 'daemon'
      : String(process.getgid!());
  const expectedGid =
    group === 'daemon'
      ? Number(/^daemon:[^:]*:(\d+):/m.exec(readFileSync('/etc/group', 'utf8'))![1])
      : process.getgid!();
  const grouped = await startAgent({ emulator, hsmName: HSM, extraConfig: { socketGroup: group } });
  try {
    assert.equal(mode(grouped.socket), 0o660);
    assert.equal(mode(dirname(grouped.socket)), 0o750);
    assert.equal(statSync(grouped.socket).gid, expectedGid);
    assert.equal(statSync(dirname(grouped.socket)).gid, expectedGid);
    await grouped.client().ping();
  } finally {
    await grouped.stop();
  }
});

test('an unknown socketGroup stops the agent with a message naming the group', async () => {
  await assert.rejects(
    startAgent({ emulator, hsmName: HSM, extraConfig: { socketGroup: 'no-such-group-akv' } }),
    /socketGroup "no-such-group-akv" is not a group/,
  );
});

test('a socket directory that another user could write to is refused', async () => {
  const base = mkdtempSync(join(tmpdir(), 'akv-perm-'));
  try {
    const open = join(base, 'open');
    mkdirSync(open);
    chmodSync(open, 0o777); // world-writable, no sticky bit
    await assert.rejects(
      startAgent({ emulator, hsmName: HSM, extraConfig: { socket: join(open, 'agent.sock') } }),
      /is writable by everyone/,
    );
    if (process.getuid!() === 0) {
      const foreign = join(base, 'foreign');
      mkdirSync(foreign);
      chownSync(foreign, 65534, 65534);
      await assert.rejects(
        startAgent({
          emulator,
          hsmName: HSM,
          extraConfig: { socket: join(foreign, 'agent.sock') },
        }),
        /belongs to uid 65534/,
      );
    }
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
});

test('a second agent on the same socket refuses to start, and the first keeps serving', async () => {
  const env = { ...process.env };
  delete env.AKV_AGENT_SOCKET;
  delete env.AKV_CONFIG;
  const second = spawn(AKV_BIN, ['agent', '--config', agent.configFile], {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  second.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const code = await new Promise<number | null>((resolve) =>
    second.once('exit', (c) => resolve(c)),
  );
  assert.notEqual(code, 0);
  assert.match(stderr, /another akv agent is already listening on .*agent\.sock/);
  await agent.client().ping();
});

test('a stale socket left by a killed agent is removed by the next one', async () => {
  const { signal } = await agent.kill('SIGKILL');
  assert.equal(signal, 'SIGKILL');
  assert.ok(existsSync(agent.socket), 'SIGKILL leaves the socket file behind');
  await agent.restart();
  await agent.client().ping();
});

test('agent restarted while a client is connected: the request in flight fails, the next one works', async () => {
  const client = agent.client();
  await client.sign(KEY, 'ES256', digest('warm'));
  await emulator.resetStats();
  await emulator.setFaults({ mode: 'hang', count: 1, operations: ['sign'] });
  // Settled into a value at once: the rejection arrives while we are still restarting.
  const inFlight = client.sign(KEY, 'ES256', digest('lost')).then(
    () => assert.fail('the request in flight succeeded across a SIGKILL'),
    (err: unknown) => err,
  );
  await until('the sign reached the HSM', async () => (await signCount()) >= 1);
  await agent.restart('SIGKILL');
  const err = (await inFlight) as Error & { code?: string };
  assert.equal(err.code, 'UNAVAILABLE');
  assert.match(err.message, /closed the connection/);
  await emulator.clearFaults();
  const { output } = await client.sign(KEY, 'ES256', digest('after restart'));
  assert.equal(output.length, 64);
  // A graceful restart under an idle client: the next request simply works.
  await agent.restart('SIGTERM');
  await client.ping();
});

test('the key cache spares the HSM, and a KEY_NOT_FOUND from a private operation invalidates it', async () => {
  const keys = emulator.keyClient();
  await keys.createKey('cached', 'EC-HSM', { curve: 'P-256' });
  const uri = `managedhsm:${HSM}:cached`;
  const client = agent.client();
  await emulator.resetStats();
  await client.describe(uri);
  const gets = (await emulator.stats()).requests.get ?? 0;
  assert.ok(gets >= 1);
  await client.describe(uri);
  await client.describe(`akv:vault=${HSM.toUpperCase()},name=CACHED`); // names are case-insensitive
  assert.equal(
    (await emulator.stats()).requests.get ?? 0,
    gets,
    'the second describe came from the cache',
  );

  const poller = await keys.beginDeleteKey('cached');
  await poller.pollUntilDone();
  await client.describe(uri); // still cached: no HSM call
  await assert.rejects(client.sign(uri, 'ES256', digest('gone')), { code: 'KEY_NOT_FOUND' });
  await assert.rejects(client.describe(uri), { code: 'KEY_NOT_FOUND' });
});

test('a 403 from a private operation drops the cached key, so DESCRIBE then says KEY_DISABLED', async () => {
  const keys = emulator.keyClient();
  const made = await keys.createKey('disablelater', 'EC-HSM', { curve: 'P-256' });
  const uri = `managedhsm:${HSM}:disablelater`;
  const client = agent.client();
  await client.describe(uri);
  await keys.updateKeyProperties('disablelater', made.properties.version ?? '', { enabled: false });
  await client.describe(uri); // still cached: says nothing of the change
  await assert.rejects(client.sign(uri, 'ES256', digest('disabled')), { code: 'FORBIDDEN' });
  await assert.rejects(client.describe(uri), { code: 'KEY_DISABLED' });
});

test('SIGTERM lets requests in flight finish and answer, then the agent exits 0 and removes its socket', async () => {
  const client = agent.client();
  const info = await client.describe(KEY);
  const pub = createPublicKey({ key: info.publicKey!, format: 'der', type: 'spki' });
  await client.sign(KEY, 'ES256', digest('warm'));
  await emulator.resetStats();
  await emulator.setLatency(1500);
  try {
    const requests = Array.from({ length: 5 }, (_, i) =>
      client.sign(KEY, 'ES256', digest(`drain ${i}`)),
    );
    await until('all 5 signs reached the HSM', async () => (await signCount()) >= 5);
    const exited = agent.kill('SIGTERM');
    const results = await Promise.all(requests);
    results.forEach(({ output }, i) => {
      assert.ok(
        verify(
          'sha256',
          Buffer.from(`drain ${i}`),
          { key: pub, dsaEncoding: 'ieee-p1363' },
          output,
        ),
      );
    });
    const { code } = await exited;
    assert.equal(code, 0);
    assert.equal(existsSync(agent.socket), false, 'the socket file is removed');
  } finally {
    await emulator.setLatency(0);
  }
  await agent.restart();
});

/**
 * A connection like an nginx worker's: it stays open, and never closes its side when the agent
 * closes its own (allowHalfOpen). Resolves once a PING is answered, so the agent holds it, idle.
 */
async function openIdleConnection(path: string): Promise<{ agentClosed: Promise<void> }> {
  const socket = createConnection({ path, allowHalfOpen: true });
  socket.on('error', () => undefined);
  const agentClosed = new Promise<void>((resolve) => socket.once('end', resolve));
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.on('data', () => resolve());
    socket.write(encodeFrame(Op.PING, 1, []));
  });
  return { agentClosed };
}

test('SIGTERM closes idle connections at once and exits as soon as the request in flight is answered', async () => {
  // deadlineMs bounds the request in flight; the drain timeout (deadlineMs + 5 s) comes later.
  const deadlineMs = 3000;
  const draining = await startAgent({ emulator, hsmName: HSM, extraConfig: { deadlineMs } });
  try {
    const idle = await openIdleConnection(draining.socket);
    const client = draining.client();
    await client.sign(KEY, 'ES256', digest('warm'));
    await emulator.resetStats();
    // The HSM holds the sign: it stays in flight until the agent's deadline answers it.
    await emulator.setFaults({ mode: 'hang', count: 1, operations: ['sign'] });
    const events: string[] = [];
    void idle.agentClosed.then(() => events.push('idle connection closed'));
    const inFlight = client.sign(KEY, 'ES256', digest('in flight')).then(
      () => assert.fail('the hung sign succeeded'),
      (err: unknown) => {
        events.push('in-flight request answered');
        return err as Error & { code?: string };
      },
    );
    await until('the sign reached the HSM', async () => (await signCount()) >= 1);

    const exited = draining.kill('SIGTERM');
    await idle.agentClosed;
    await until('the agent began stopping', async () =>
      (await draining.logLines()).some((l) => l.msg === 'stopping: finishing requests in flight'),
    );
    // A request sent after SIGTERM on the busy connection is not started.
    await assert.rejects(client.sign(KEY, 'ES256', digest('too late')), { code: 'UNAVAILABLE' });

    const answer = await inFlight;
    assert.equal(answer.code, 'TIMEOUT', 'the request in flight is answered, not dropped');
    const { code } = await exited;
    assert.equal(code, 0);
    assert.deepEqual(events, ['idle connection closed', 'in-flight request answered']);
    assert.equal(existsSync(draining.socket), false, 'the socket file is removed');
    assert.equal(await signCount(), 1, 'the request sent after SIGTERM never reached the HSM');

    // The idle connection did not hold the exit until the drain timeout cut it.
    const lines = await draining.logLines();
    const stopped = lines.find((l) => l.msg === 'akv agent stopped');
    assert.equal(stopped?.drained, true, 'the agent drained rather than timed out');
    assert.ok(!lines.some((l) => typeof l.msg === 'string' && l.msg.includes('were cut')));
  } finally {
    await emulator.clearFaults();
    await draining.stop();
  }
});

test('SIGHUP reloads the config; an invalid config is refused and the old one kept', async () => {
  const config = JSON.parse(readFileSync(agent.configFile, 'utf8')) as Record<string, unknown>;
  writeFileSync(
    agent.configFile,
    JSON.stringify({
      ...config,
      keyCacheTtlMs: 0,
      log: { ...(config.log as object), level: 'debug' },
    }),
  );
  await agent.reload();
  const client = agent.client();
  await client.sign(KEY, 'ES256', digest('after reload'));
  let lines = await agent.logLines();
  assert.ok(lines.some((l) => l.msg === 'SIGHUP: configuration reloaded'));

  writeFileSync(agent.configFile, '{ not json');
  await agent.reload();
  lines = await agent.logLines();
  assert.ok(lines.some((l) => typeof l.msg === 'string' && l.msg.includes('keeping the old one')));
  await client.sign(KEY, 'ES256', digest('after a bad reload'));
  // Valid JSON, but a log file that cannot be opened: also refused, the old log keeps working.
  const before = (await agent.logLines()).length;
  writeFileSync(
    agent.configFile,
    JSON.stringify({ ...config, log: { file: join(agent.configFile, 'agent.log') } }),
  );
  await agent.reload();
  lines = (await agent.logLines()).slice(before);
  assert.ok(
    lines.some((l) => typeof l.error === 'string' && l.error.includes('cannot open the log file')),
  );
  await client.sign(KEY, 'ES256', digest('after a second bad reload'));
  writeFileSync(agent.configFile, JSON.stringify(config));
});

test('the metrics endpoint counts operations, errors and latency', async () => {
  // The agent restarted above: its metrics URL is printed again, with a new port.
  const url = /^akv agent metrics on (\S+)$/m.exec(agent.stdout())?.[1];
  assert.ok(url, 'the agent prints its metrics URL');
  const scrape = async (): Promise<string> => {
    const res = await fetch(url);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
    return res.text();
  };
  const value = (text: string, series: string): number => {
    const line = text.split('\n').find((l) => l.startsWith(`${series} `));
    return line === undefined ? 0 : Number(line.slice(series.length + 1));
  };
  const before = await scrape();
  const client = agent.client();
  for (let i = 0; i < 3; i++) await client.sign(KEY, 'ES256', digest(`metrics ${i}`));
  await assert.rejects(client.describe(`managedhsm:${HSM}:missing`), { code: 'KEY_NOT_FOUND' });
  const afterText = await scrape();
  const ok = 'akv_agent_requests_total{op="sign",status="OK"}';
  assert.equal(value(afterText, ok) - value(before, ok), 3);
  assert.ok(value(afterText, 'akv_agent_errors_total{op="describe",status="KEY_NOT_FOUND"}') >= 1);
  const count = 'akv_agent_request_duration_seconds_count{op="sign"}';
  assert.equal(value(afterText, count) - value(before, count), 3);
  // Label order is not significant in the exposition format (prom-client writes `le` first).
  assert.match(
    afterText,
    /^akv_agent_request_duration_seconds_bucket\{(le="\+Inf",op="sign"|op="sign",le="\+Inf")\} \d+$/m,
  );
  assert.match(afterText, /^# TYPE akv_agent_token_refreshes_total counter$/m);
  assert.match(afterText, /^akv_agent_connections \d+$/m);
  assert.equal((await fetch(new URL('/nope', url))).status, 404);
  assert.equal((await fetch(url, { method: 'POST' })).status, 405);
});
