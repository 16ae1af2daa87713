/**
 * Without its native helper (native/build/akv_peercred.node missing: a build without the Node.js
 * headers) the agent never enforces a policy on what clients say about themselves: a config with
 * a policy is refused at start, naming the reason and the fix; without a policy it starts, says
 * loudly that credentials cannot be read, and marks audit pids as the client's word. The agent
 * runs from a copy of dist/src that has no native/ directory beside it.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { AgentClient } from '../../src/client/agent-client.js';
import {
  REPO_ROOT,
  emulatorConfig,
  startEmulator,
  type RunningEmulator,
} from '../helpers/emulator.js';

const HSM = 'noaddonhsm';

describe('agent without its peer-credentials addon', () => {
  const dir = mkdtempSync(join(tmpdir(), 'akv-no-addon-'));
  const copy = join(dir, 'akv');
  const main = join(copy, 'dist', 'src', 'cli', 'main.js');
  let emulator: RunningEmulator;

  before(async () => {
    cpSync(join(REPO_ROOT, 'dist', 'src'), join(copy, 'dist', 'src'), { recursive: true });
    cpSync(join(REPO_ROOT, 'package.json'), join(copy, 'package.json'));
    symlinkSync(join(REPO_ROOT, 'node_modules'), join(copy, 'node_modules'));
    emulator = await startEmulator();
    await emulator.keyClient().createKey('k', 'EC-HSM', { curve: 'P-256' });
  });
  after(async () => {
    await emulator?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const config = (name: string, extra: object): string => {
    const file = join(dir, `${name}.json`);
    writeFileSync(
      file,
      JSON.stringify({
        socket: join(dir, name, 'agent.sock'),
        ...emulatorConfig(emulator, HSM),
        log: { level: 'info', file: join(dir, `${name}.log`) },
        ...extra,
      }),
    );
    return file;
  };

  it('refuses to start with a policy, saying why and what to do', () => {
    const file = config('policy', {
      policy: {
        rules: [{ name: 'me', users: [0], keys: [`managedhsm:${HSM}:k`], operations: ['sign'] }],
      },
    });
    const r = spawnSync(process.execPath, [main, 'agent', '--config', file], {
      encoding: 'utf8',
      timeout: 60_000,
    });
    assert.notEqual(r.status, 0, `the agent started with a policy it cannot enforce: ${r.stdout}`);
    assert.match(
      r.stderr,
      /sets an access policy, but the agent cannot read its clients' credentials from the kernel \(cannot load .*akv_peercred\.node.*\); it will not enforce a policy on what clients say about themselves; hint: rebuild the native helper/,
    );
  });

  it('without a policy: starts, warns, and marks audit pids as reported by the client', async () => {
    const file = config('plain', {});
    const child = spawn(process.execPath, [main, 'agent', '--config', file], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    const exited = new Promise((resolve) => child.once('exit', resolve));
    try {
      for (let i = 0; !out.includes('listening') && i < 600; i++)
        await new Promise((r) => setTimeout(r, 50));
      assert.match(out, /akv agent listening/);
      const client = new AgentClient(join(dir, 'plain', 'agent.sock'));
      await client.sign(`managedhsm:${HSM}:k`, 'ES256', Buffer.alloc(32, 1));
      await client.close();
    } finally {
      child.kill('SIGTERM');
      await exited;
    }
    const lines = readFileSync(join(dir, 'plain.log'), 'utf8')
      .split('\n')
      .filter((l) => l.trim())
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.ok(
      lines.some(
        (l) =>
          l.level === 'warn' &&
          String(l.msg).startsWith("cannot read clients' credentials from the kernel"),
      ),
      'no warning that peer credentials are unavailable',
    );
    const audit = lines.find((l) => l.audit === true);
    assert.equal(audit?.pid_source, 'client');
    assert.equal(audit?.client_pid, process.pid);
    assert.equal('uid' in (audit ?? {}), false);
  });
});
