/**
 * The TypeScript client (CLI, tests, examples) refuses an agent socket another local user could
 * have planted, before sending a byte (src/client/socket-trust.ts): same rules as the provider.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AgentClient } from '../../src/client/agent-client.js';
import { AkvError } from '../../src/errors.js';
import { accountId } from '../../src/system/accounts.js';
import { cleanAkvEnv } from '../helpers/dev.js';
import { AKV_BIN } from '../helpers/emulator.js';

const NOBODY = accountId('passwd', 'nobody') ?? 65534;
let work: string;

/** A listener that counts the connections it was given (a planted socket must get none). */
async function plant(
  dir: string,
): Promise<{ path: string; server: Server; connections: () => number }> {
  const path = join(dir, 'agent.sock');
  let n = 0;
  const server = createServer((s) => {
    n++;
    s.destroy();
  });
  await new Promise<void>((resolve) => server.listen(path, resolve));
  return { path, server, connections: () => n };
}

function close(server: Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}

function freshDir(mode = 0o700): string {
  const dir = mkdtempSync(join(work, 'd-'));
  chmodSync(dir, mode);
  return dir;
}

before(() => {
  work = mkdtempSync(join(tmpdir(), 'akv-trust-'));
  chmodSync(work, 0o755);
});
after(() => rmSync(work, { recursive: true, force: true }));

describe(
  'planted sockets',
  { skip: process.getuid?.() !== 0 && 'needs root to give a socket to nobody' },
  () => {
    it('a socket owned by another user is refused, with whose it is, and gets no connection', async () => {
      const p = await plant(freshDir());
      chownSync(p.path, NOBODY, NOBODY);
      try {
        await assert.rejects(AgentClient.connect(p.path), (err: unknown) => {
          assert.ok(err instanceof AkvError);
          assert.equal(err.code, 'FORBIDDEN');
          assert.match(
            err.fullMessage,
            new RegExp(
              `the socket belongs to uid ${NOBODY} \\(nobody\\), not to you \\(uid 0\\) or root; nothing was sent; hint: .*AKV_AGENT_USER=nobody`,
            ),
          );
          return true;
        });
        assert.equal(p.connections(), 0);
      } finally {
        await close(p.server);
      }
    });

    it('a directory owned by another user is refused', async () => {
      const dir = freshDir();
      const p = await plant(dir);
      chownSync(dir, NOBODY, NOBODY);
      try {
        await assert.rejects(
          AgentClient.connect(p.path),
          /its directory .* belongs to uid \d+ \(nobody\)/,
        );
        assert.equal(p.connections(), 0);
      } finally {
        await close(p.server);
      }
    });

    it('a directory others may write is refused unless it is sticky', async () => {
      const dir = freshDir(0o777);
      const p = await plant(dir);
      try {
        await assert.rejects(AgentClient.connect(p.path), (err: unknown) => {
          assert.ok(err instanceof AkvError);
          assert.match(
            err.fullMessage,
            /lets other users replace it; nothing was sent; hint: chmod go-w/,
          );
          return true;
        });
        assert.equal(p.connections(), 0);
        chmodSync(dir, 0o1777);
        const client = await AgentClient.connect(p.path);
        await client.close();
        assert.equal(p.connections(), 1, 'a sticky directory (like /tmp) is fine');
      } finally {
        await close(p.server);
      }
    });

    it("AKV_AGENT_USER allows that user's agent", async () => {
      const p = await plant(freshDir());
      chownSync(p.path, NOBODY, NOBODY);
      const before = process.env.AKV_AGENT_USER;
      process.env.AKV_AGENT_USER = 'nobody';
      try {
        const client = await AgentClient.connect(p.path);
        await client.close();
        assert.equal(p.connections(), 1);
      } finally {
        if (before === undefined) delete process.env.AKV_AGENT_USER;
        else process.env.AKV_AGENT_USER = before;
        await close(p.server);
      }
    });

    it('akv decrypt and akv sign refuse the planted socket before sending the data', async () => {
      const dir = freshDir();
      const p = await plant(dir);
      chownSync(p.path, NOBODY, NOBODY);
      const input = join(dir, 'secret.bin');
      writeFileSync(input, 'a ciphertext the impostor wants');
      try {
        for (const cmd of [
          [
            'decrypt',
            '--key',
            'managedhsm:myhsm:k',
            '--alg',
            'RSA-OAEP-256',
            '--in',
            input,
            '--socket',
            p.path,
          ],
          [
            'sign',
            '--key',
            'managedhsm:myhsm:k',
            '--alg',
            'ES256',
            '--in',
            input,
            '--socket',
            p.path,
          ],
        ]) {
          const r = spawnSync(AKV_BIN, cmd, { env: cleanAkvEnv(), encoding: 'utf8' });
          assert.equal(r.status, 1, r.stderr);
          assert.match(
            r.stderr,
            /^akv: refused the akv agent socket .*: the socket belongs to uid \d+ \(nobody\)/,
          );
          assert.equal(r.stdout, '');
        }
        assert.equal(p.connections(), 0);
      } finally {
        await close(p.server);
      }
    });
  },
);
