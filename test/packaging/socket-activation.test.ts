/**
 * The agent under socket activation, as akv-agent.socket runs it, without a running systemd:
 * `systemd-socket-activate -l SOCKET bin/akv agent` serves the provider (the first connection
 * starts the agent and waits in the kernel's queue meanwhile); the agent reports the socket as
 * systemd's and leaves it in place at exit; LISTEN_PID of another process is ignored; a TCP
 * socket is refused.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { AgentClient } from '../../src/client/agent-client.js';
import {
  AKV_BIN,
  REPO_ROOT,
  emulatorConfig,
  startEmulator,
  type RunningEmulator,
} from '../helpers/emulator.js';
import { signAndVerify, socketActivate } from '../helpers/socket-activation.js';
import { freePort } from '../provider/openssl-env.js';

const HSM = 'sockhsm';
const KEY = `managedhsm:${HSM}:activated-ec`;
let emulator: RunningEmulator;
let dir: string;
let configFile: string;

before(async () => {
  emulator = await startEmulator();
  await emulator.keyClient().createKey('activated-ec', 'EC-HSM', { curve: 'P-256' });
  dir = mkdtempSync(join(tmpdir(), 'akv-activate-'));
  configFile = join(dir, 'config.json');
  writeFileSync(
    configFile,
    JSON.stringify({
      socket: join(dir, 'configured', 'agent.sock'),
      ...emulatorConfig(emulator, HSM),
    }),
  );
});
after(async () => {
  await emulator?.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** systemd-socket-activate passes only -E variables: the agent needs node on PATH and its config. */
const agentEnv = (): Record<string, string> => ({
  PATH: process.env.PATH ?? '/usr/bin:/bin',
  AKV_CONFIG: configFile,
});

test('systemd-socket-activate -l SOCKET akv agent serves the provider', async () => {
  const socket = join(dir, 'activated', 'agent.sock');
  mkdirSync(join(dir, 'activated'));
  const activated = await socketActivate(socket, [AKV_BIN, 'agent'], agentEnv());
  try {
    assert.equal(activated.stdout(), '', 'the agent starts only on the first connection');
    signAndVerify({
      uri: KEY,
      socket,
      dir,
      modulesDir: join(REPO_ROOT, 'provider', 'build'),
    });
    // The openssl runs above blocked this process's event loop: let the agent's output arrive.
    const ready = new RegExp(
      `^akv agent listening on ${socket} \\(socket passed by systemd\\)$`,
      'm',
    );
    for (let i = 0; !ready.test(activated.stdout()) && i < 100; i++)
      await new Promise((r) => setTimeout(r, 50));
    assert.match(activated.stdout(), ready);
    assert.ok(!existsSync(join(dir, 'configured')), "the config's socket path is not bound");
    const client = new AgentClient(socket);
    const report = await client.diagnose();
    await client.close();
    assert.equal(report.agent.socketActivated, true);
    assert.equal(report.agent.socket, socket);
  } finally {
    assert.equal(await activated.stop(), 0, activated.stderr());
  }
  assert.ok(statSync(socket).isSocket(), "systemd's socket stays when the agent stops");
});

test('LISTEN_PID naming another process is ignored: the agent binds its own socket', async () => {
  const socket = join(dir, 'own', 'agent.sock');
  const child = spawn(AKV_BIN, ['agent', '--config', configFile, '--socket', socket], {
    env: { ...process.env, LISTEN_PID: '1', LISTEN_FDS: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  for (let i = 0; !out.includes('listening') && i < 300; i++)
    await new Promise((r) => setTimeout(r, 50));
  child.kill('SIGTERM');
  assert.equal(await exited, 0);
  assert.match(out, new RegExp(`^akv agent listening on ${socket}$`, 'm'));
  assert.ok(!existsSync(socket), 'its own socket is removed at exit');
});

test('a TCP socket passed by systemd is refused with the reason', async () => {
  const port = await freePort();
  const activated = await socketActivate(`127.0.0.1:${port}`, [AKV_BIN, 'agent'], agentEnv());
  const probe = createConnection({ host: '127.0.0.1', port });
  probe.on('error', () => undefined);
  const { code } = await activated.exited;
  probe.destroy();
  assert.equal(code, 1);
  assert.match(activated.stderr(), /the socket passed as fd 3 is not a Unix socket; hint: /);
});
