/**
 * examples/grpc started by an ordinary user: no `user` directive, nginx workers and the agent
 * run as that user, sockets owner-only. CI runs as root, so this file runs the whole example
 * again as `nobody` (via runuser), from a copy of akv that `nobody` can read (the checkout may be
 * in a directory closed to others); run by an ordinary user, grpc-mtls.test.ts covers it.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chownSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stageAkv, type StagedAkv } from '../helpers/stage.js';

const USER = 'nobody';

function userIds(name: string): { uid: number; gid: number } | undefined {
  const r = spawnSync('id', ['-u', name], { encoding: 'utf8' });
  const g = spawnSync('id', ['-g', name], { encoding: 'utf8' });
  if (r.status !== 0 || g.status !== 0) return undefined;
  return { uid: Number(r.stdout.trim()), gid: Number(g.stdout.trim()) };
}

const isRoot = process.getuid?.() === 0;
const ids = isRoot ? userIds(USER) : undefined;
const hasRunuser = spawnSync('runuser', ['--help'], { encoding: 'utf8' }).status === 0;
const skip = !isRoot
  ? 'not root: grpc-mtls.test.ts runs the example as this ordinary user'
  : !ids || !hasRunuser
    ? `no '${USER}' user or no runuser on this system`
    : false;

/** Runs an example script as the ordinary user, with only the settings this test chooses. */
function asUser(
  akv: StagedAkv,
  dir: string,
  scriptName: string,
  args: string[],
  timeoutMs = 180_000,
) {
  const env = [
    `PATH=${process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin'}`,
    `HOME=${dir}`,
    `STATE_DIR=${join(dir, 'demo')}`,
    'AKV_HSM_NAME=grpcuser',
    'AKV_MODE=emulator',
    'KEY_PREFIX=grpc',
    'KEY_TYPE=ec',
  ];
  const r = spawnSync(
    'runuser',
    [
      '-u',
      USER,
      '--',
      'env',
      '-i',
      ...env,
      join(akv.root, 'examples', 'grpc', scriptName),
      ...args,
    ],
    {
      cwd: dir,
      encoding: 'utf8',
      timeout: timeoutMs,
    },
  );
  return { status: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? String(r.error ?? '') };
}

let dir = '';
let akv: StagedAkv | undefined;

before(() => {
  if (skip) return;
  akv = stageAkv();
  dir = mkdtempSync(join(tmpdir(), 'akv-grpc-user-'));
  chownSync(dir, ids!.uid, ids!.gid);
});

after(() => {
  if (dir && akv) asUser(akv, dir, 'stop.sh', []);
  if (dir) rmSync(dir, { recursive: true, force: true });
  akv?.remove();
});

test('examples/grpc run-all.sh works for an ordinary user (EC keys)', { skip }, () => {
  const r = asUser(akv!, dir, 'run-all.sh', ['--latency', '10']);
  assert.equal(
    r.status,
    0,
    `run-all.sh as ${USER} failed (exit ${r.status}):\n${r.stdout}\n${r.stderr}`,
  );
  assert.match(r.stdout, /Hello, akv/);
  assert.match(r.stdout, /grpc-client-ec: \d+ signatures? in the HSM \(ES256\)/);
  // Owner-only sockets: the server's socket directory is not opened to any group.
  const serverRun = join(dir, 'demo', 'run', 'server');
  assert.equal(statSync(serverRun).mode & 0o077, 0, `${serverRun} is open to others`);
  assert.equal(statSync(serverRun).uid, ids!.uid);
});
