/**
 * `akv dev up --socket-group GROUP`: the agent's socket is 0660 in a 0750 DIR/akv, both in
 * GROUP, DIR lets GROUP through, and (as root) a process running as a member of GROUP really
 * talks to the agent. Changing the group of a running environment and a DIR that GROUP cannot
 * reach are refused with a message that says what to do.
 */
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { cleanAkvEnv, devDown, devUp, parseExports } from '../helpers/dev.js';
import { AKV_BIN } from '../helpers/emulator.js';
import { stageAkv } from '../helpers/stage.js';

const run = promisify(execFile);
const isRoot = process.getuid?.() === 0;

function groupExists(name: string): boolean {
  return spawnSync('getent', ['group', name], { stdio: 'ignore' }).status === 0;
}

/** As root: www-data, the group of Debian's nginx workers. Otherwise this user's own group. */
function pickGroup(): { group?: string; skip?: string } {
  if (isRoot) {
    return groupExists('www-data')
      ? { group: 'www-data' }
      : { skip: 'running as root and there is no www-data group to hand the socket to' };
  }
  const name = spawnSync('id', ['-gn'], { encoding: 'utf8' }).stdout.trim();
  return name ? { group: name } : { skip: '`id -gn` names no group for this user' };
}

const { group, skip } = pickGroup();
const gidOf = (name: string): number =>
  Number(spawnSync('getent', ['group', name], { encoding: 'utf8' }).stdout.split(':')[2]);

/** Runs `bin/akv ARGS`, resolving with the exit code and output even when it fails. */
async function akv(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(AKV_BIN, args, { env: cleanAkvEnv(), timeout: 90_000 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: e.code ?? -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

const mode = (path: string): number => statSync(path).mode & 0o777;

describe('akv dev up --socket-group', { skip }, () => {
  // mkdtemp makes an owner-only directory: open it for passing through, as /tmp itself is.
  const work = mkdtempSync(join(tmpdir(), 'akv-sg-'));
  chmodSync(work, 0o711);
  const dir = join(work, 'env');
  const HSM = 'sghsm';
  let env: Record<string, string>;

  before(async () => {
    env = await devUp(dir, HSM, ['--socket-group', group as string]);
  });

  after(async () => {
    await devDown(dir);
    rmSync(work, { recursive: true, force: true });
  });

  it('writes socketGroup into the config and gives the socket and its directory to the group', () => {
    const gid = gidOf(group as string);
    const config = JSON.parse(readFileSync(env.AKV_CONFIG as string, 'utf8')) as {
      socket: string;
      socketGroup?: string;
    };
    assert.equal(config.socketGroup, group);
    assert.equal(env.AKV_AGENT_SOCKET, join(dir, 'akv', 'agent.sock'));
    assert.equal(config.socket, env.AKV_AGENT_SOCKET);
    const socket = env.AKV_AGENT_SOCKET as string;
    assert.ok(statSync(socket).isSocket());
    assert.equal(mode(socket).toString(8), '660');
    assert.equal(statSync(socket).gid, gid);
    assert.equal(mode(dirname(socket)).toString(8), '750');
    assert.equal(statSync(dirname(socket)).gid, gid);
    // DIR: the group passes through to DIR/akv, but cannot list or read the config and logs.
    assert.equal(mode(dir).toString(8), '710');
    assert.equal(statSync(dir).gid, gid);
    assert.equal(mode(env.AKV_CONFIG as string).toString(8), '600');
  });

  it(
    'lets a member of the group (not the owner) use the agent',
    { skip: !isRoot && 'needs root to run a process as another user' },
    () => {
      // `akv ping` as the group's user, from a copy it can read (the checkout may be closed to it).
      const staged = stageAkv();
      try {
        const r = spawnSync(
          'setpriv',
          [
            `--reuid=${group as string}`,
            `--regid=${group as string}`,
            '--init-groups',
            'env',
            '-i',
            `PATH=${process.env.PATH ?? '/usr/bin:/bin'}`,
            staged.bin,
            'ping',
            '--socket',
            env.AKV_AGENT_SOCKET as string,
          ],
          { cwd: staged.root, encoding: 'utf8', timeout: 30_000 },
        );
        assert.equal(
          r.status,
          0,
          `a ${group as string} process could not ping the agent: ${r.stdout}${r.stderr}`,
        );
        assert.match(r.stdout, /akv agent \S+ answers on /);
      } finally {
        staged.remove();
      }
    },
  );

  it('prints the same exports again with the same options', async () => {
    const again = await akv([
      'dev',
      'up',
      '--dir',
      dir,
      '--hsm-name',
      HSM,
      '--socket-group',
      group as string,
    ]);
    assert.equal(again.code, 0, again.stderr);
    assert.deepEqual(parseExports(again.stdout), env);
  });

  it('refuses another socket group (or none) on the running environment, naming the restart', async () => {
    const none = await akv(['dev', 'up', '--dir', dir, '--hsm-name', HSM]);
    assert.equal(none.code, 2);
    assert.match(none.stderr, new RegExp(`runs with --socket-group ${group as string}`));
    assert.match(none.stderr, /akv dev down --dir/);
    const other = isRoot
      ? 'root'
      : String(process.getgroups?.().find((g) => g !== gidOf(group as string)) ?? '');
    if (other !== '') {
      const r = await akv(['dev', 'up', '--dir', dir, '--hsm-name', HSM, '--socket-group', other]);
      assert.equal(r.code, 2);
      assert.match(r.stderr, /a socket's group is set when the agent starts/);
    }
    // The agent still answers with its group unchanged.
    assert.equal(statSync(env.AKV_AGENT_SOCKET as string).gid, gidOf(group as string));
  });

  it('refuses a DIR the group cannot reach, without changing its parents', async () => {
    const closed = join(work, 'closed');
    mkdirSync(closed, { mode: 0o700 });
    chmodSync(closed, 0o700);
    const r = await akv([
      'dev',
      'up',
      '--dir',
      join(closed, 'env'),
      '--hsm-name',
      HSM,
      '--socket-group',
      group as string,
    ]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, new RegExp(`users of group ${group as string} cannot reach`));
    assert.match(r.stderr, new RegExp(`chmod o\\+x ${closed}`));
    assert.equal(mode(closed).toString(8), '700', 'the parent is left as it was');
  });

  it('refuses a group that does not exist', async () => {
    const r = await akv([
      'dev',
      'up',
      '--dir',
      join(work, 'nogroup'),
      '--hsm-name',
      HSM,
      '--socket-group',
      'akv-no-such-group',
    ]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /"akv-no-such-group" is not a group on this system/);
  });

  it('documents the option in --help', async () => {
    const r = await akv(['dev', '--help']);
    assert.equal(r.code, 0);
    assert.match(r.stdout, /--socket-group GROUP/);
  });
});
