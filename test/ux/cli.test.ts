/**
 * The CLI behaving like the tools people know (issue 22), against the real emulator and agent:
 *  - the crypto commands start the user's agent when none answers, like the provider does (one
 *    agent for many starters, the same opt-out and directory rules);
 *  - a wait longer than ~2 s is said once on stderr (no control characters when not a terminal);
 *  - `akv doctor` knows autostart (a warning after checking it could, or it starts the agent);
 *  - `akv --version` prints the CLI's, the agent's and the provider's versions.
 * Every agent started here has its own socket in a temp dir and an idle exit of a few seconds;
 * the test also stops them (found by that socket path on their command line).
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import {
  AKV_BIN,
  REPO_ROOT,
  emulatorConfig,
  startEmulator,
  type RunningEmulator,
} from '../helpers/emulator.js';
import { agentsOn } from '../helpers/autostart-env.js';

const HSM = 'uxhsm';
const KEY = `managedhsm:${HSM}:ux-ec`;
const version = (
  JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string }
).version;
const scratch = mkdtempSync(join(tmpdir(), 'akv-ux-test-'));
let emulator: RunningEmulator;
let config: string;
const data = join(scratch, 'data.txt');

before(async () => {
  emulator = await startEmulator();
  await emulator.keyClient().createKey('ux-ec', 'EC-HSM', { curve: 'P-256' });
  config = join(scratch, 'akv.json');
  writeFileSync(config, JSON.stringify(emulatorConfig(emulator, HSM)));
  writeFileSync(data, 'hello from the ux test\n');
});

/** The sockets of this test's commands: the agents on them are stopped at the end (agentsOn). */
const sockets: string[] = [];
function socketDir(name: string, mode = 0o700): string {
  const dir = join(scratch, name);
  mkdirSync(dir, { mode });
  chmodSync(dir, mode);
  sockets.push(join(dir, 'agent.sock'));
  return join(dir, 'agent.sock');
}

after(async () => {
  for (const socket of sockets) for (const pid of agentsOn(socket)) process.kill(pid, 'SIGTERM');
  await emulator?.stop();
  rmSync(scratch, { recursive: true, force: true });
});

function envFor(socket: string, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    AKV_CONFIG: config,
    AKV_AGENT_SOCKET: socket,
    AKV_AGENT_IDLE_EXIT: '20',
    ...extra,
  };
  delete env.AKV_AGENT_AUTOSTART;
  delete env.OPENSSL_MODULES;
  if (extra.AKV_AGENT_AUTOSTART !== undefined) env.AKV_AGENT_AUTOSTART = extra.AKV_AGENT_AUTOSTART;
  if (extra.OPENSSL_MODULES !== undefined) env.OPENSSL_MODULES = extra.OPENSSL_MODULES;
  return env;
}
function akvSync(args: string[], env: NodeJS.ProcessEnv) {
  const r = spawnSync(AKV_BIN, args, { encoding: 'utf8', env, cwd: scratch, timeout: 120_000 });
  return { code: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}
function akvAsync(
  args: string[],
  env: NodeJS.ProcessEnv,
): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(AKV_BIN, args, { env, cwd: scratch, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('exit', (code) => resolve({ code, stderr }));
  });
}
const sign = (socket: string, out: string) => [
  'sign',
  '--key',
  KEY,
  '--alg',
  'ES256',
  '--in',
  data,
  '--out',
  out,
  '--socket',
  socket,
];

test('akv sign starts the agent when none answers, and akv verify uses it', () => {
  const socket = socketDir('auto');
  const sig = join(scratch, 'auto.sig');
  const r = akvSync(sign(socket, sig), envFor(socket));
  assert.equal(r.code, 0, r.stderr);
  assert.equal(agentsOn(socket).length, 1, 'one agent runs on the socket');
  assert.match(readFileSync(join(scratch, 'auto', 'agent.log'), 'utf8'), /listening on/);
  const v = akvSync(
    [
      'verify',
      '--key',
      KEY,
      '--alg',
      'ES256',
      '--in',
      data,
      '--signature',
      sig,
      '--socket',
      socket,
    ],
    envFor(socket),
  );
  assert.equal(v.code, 0, v.stderr);
  assert.equal(agentsOn(socket).length, 1, 'verify used the running agent');
});

test('six commands at once start exactly one agent, and all succeed', async () => {
  const socket = socketDir('crowd');
  const results = await Promise.all(
    Array.from({ length: 6 }, (_, i) =>
      akvAsync(sign(socket, join(scratch, `crowd-${i}.sig`)), envFor(socket)),
    ),
  );
  for (const r of results) assert.equal(r.code, 0, r.stderr);
  assert.equal(agentsOn(socket).length, 1);
});

test('AKV_AGENT_AUTOSTART=0 turns it off, with a message that says so', () => {
  const socket = socketDir('off');
  const r = akvSync(
    sign(socket, join(scratch, 'off.sig')),
    envFor(socket, { AKV_AGENT_AUTOSTART: '0' }),
  );
  assert.equal(r.code, 1);
  assert.match(
    r.stderr,
    /akv agent not reachable at .*off\/agent\.sock, and it is not started automatically: autostart is off \(AKV_AGENT_AUTOSTART\); hint: start it with `akv agent`/,
  );
  assert.deepEqual(agentsOn(socket), []);
});

test('a socket directory others may write to is refused, as the provider refuses it', () => {
  const socket = socketDir('open', 0o777);
  const r = akvSync(sign(socket, join(scratch, 'open.sig')), envFor(socket));
  assert.equal(r.code, 1);
  assert.match(r.stderr, /not started automatically: .*open is writable by others \(mode 777\)/);
  assert.deepEqual(agentsOn(socket), []);
});

test('a broken config stops the command with the field named, and no agent is left', () => {
  const socket = socketDir('broken');
  const bad = join(scratch, 'bad.json');
  writeFileSync(bad, '{ "sokcet": 1 }');
  const r = akvSync(sign(socket, join(scratch, 'broken.sig')), envFor(socket, { AKV_CONFIG: bad }));
  assert.equal(r.code, 1);
  assert.match(r.stderr, /sokcet/);
  assert.deepEqual(agentsOn(socket), []);
});

test('a wait over ~2 s is said once on stderr (no control characters off a terminal); a quick one says nothing', async () => {
  const socket = socketDir('slow');
  const env = envFor(socket);
  // Start the agent (and warm its key cache) first so only the HSM's latency is waited for.
  const first = akvSync(sign(socket, join(scratch, 'slow0.sig')), env);
  assert.equal(first.code, 0, first.stderr);
  await emulator.setLatency(2600);
  let r;
  try {
    r = await akvAsync(sign(socket, join(scratch, 'slow.sig')), env);
  } finally {
    await emulator.setLatency(0);
  }
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stderr.split('\n').filter((l) => l !== '');
  assert.deepEqual(lines, [
    'akv: waiting for the agent (the HSM is slow to answer; the agent retries) ...',
  ]);
  assert.ok(!r.stderr.includes('\r') && !r.stderr.includes('\u001b'), 'no control characters');
  const fast = socketDir('fast');
  akvSync(sign(fast, join(scratch, 'fast0.sig')), envFor(fast));
  const quick = akvSync(sign(fast, join(scratch, 'fast.sig')), envFor(fast));
  assert.equal(quick.code, 0, quick.stderr);
  assert.equal(quick.stderr, '');
});

test('akv doctor without a URI: no agent is a warning after checking autostart could start one', () => {
  const socket = socketDir('doctor-plain');
  const r = akvSync(['doctor', '--socket', socket], envFor(socket));
  assert.match(
    r.stdout,
    /\[warn\] agent reachable: no agent runs on .*doctor-plain\/agent\.sock; the provider starts one on first use \(autostart: .*bin\/akv agent, .*checked: the directory is this user's and the command runs/,
  );
  assert.deepEqual(agentsOn(socket), [], 'nothing started without a URI');
  const off = akvSync(['doctor', '--socket', socket], envFor(socket, { AKV_AGENT_AUTOSTART: '0' }));
  assert.match(
    off.stdout,
    /\[FAIL\] agent reachable: .*not started automatically: autostart is off/,
  );
  assert.equal(off.code, 1);
});

test('akv doctor with a URI starts the agent as the provider would and checks the key', () => {
  const socket = socketDir('doctor-key');
  const r = akvSync(['doctor', KEY, '--socket', socket], envFor(socket));
  assert.match(
    r.stdout,
    /\[ ok \] agent reachable: agent .* answers on .*doctor-key\/agent\.sock \(no agent was running: started it as the provider would/,
  );
  assert.match(r.stdout, /\[ ok \] test signature/);
  assert.equal(agentsOn(socket).length, 1);
});

test('akv --version: the CLI, the agent it reaches and the provider OpenSSL loads', () => {
  const socket = socketDir('version');
  const modules = join(REPO_ROOT, 'provider', 'build');
  const none = akvSync(['--version'], envFor(socket, { OPENSSL_MODULES: modules }));
  assert.equal(none.code, 0, none.stderr);
  const lines = none.stdout.trimEnd().split('\n');
  assert.equal(lines[0], `akv ${version}`);
  assert.match(lines[1]!, /^agent: +none answers on .*version\/agent\.sock/);
  if (existsSync(join(modules, 'akv_provider.so')))
    assert.match(
      lines[2]!,
      new RegExp(`^provider: +${version.replace(/\./g, '\\.')} in OPENSSL_MODULES=${modules}$`),
    );
  assert.deepEqual(agentsOn(socket), [], '--version never starts an agent');
  assert.equal(akvSync(sign(socket, join(scratch, 'v.sig')), envFor(socket)).code, 0);
  const running = akvSync(['--version'], envFor(socket));
  assert.match(
    running.stdout.split('\n')[1]!,
    new RegExp(
      `^agent: +${version.replace(/\./g, '\\.')} on .*version/agent\\.sock \\(protocol \\d+\\)$`,
    ),
  );
});
