import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AgentClient } from '../../src/client/agent-client.js';
import { AkvError } from '../../src/errors.js';

test('a missing agent socket gives the "start it" message', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'akv-client-'));
  const path = join(dir, 'agent.sock');
  try {
    await assert.rejects(AgentClient.connect(path), (err: unknown) => {
      assert.ok(err instanceof AkvError);
      assert.equal(err.code, 'UNAVAILABLE');
      assert.equal(
        err.fullMessage,
        `akv agent not reachable at ${path} (ENOENT); hint: start it with \`akv agent\`, or point AKV_AGENT_SOCKET at its socket`,
      );
      return true;
    });
    // A lazily connecting client reports the same on its first request.
    const lazy = new AgentClient(path);
    await assert.rejects(lazy.ping(), /akv agent not reachable at/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test(
  'a socket the user may not open gives a permission message',
  { skip: process.getuid?.() === 0 && 'root ignores modes' },
  async () => {
    const dir = mkdtempSync(join(tmpdir(), 'akv-client-'));
    const path = join(dir, 'agent.sock');
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(path, resolve));
    chmodSync(path, 0o000);
    try {
      await assert.rejects(AgentClient.connect(path), {
        code: 'UNAVAILABLE',
        message: /permission denied on the akv agent socket/,
      });
    } finally {
      server.close();
      rmSync(dir, { recursive: true, force: true });
    }
  },
);
