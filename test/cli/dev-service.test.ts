/**
 * `akv dev start|stop|status`: services of a dev DIR, each run as a real `bin/akv` process on
 * real programs (node scripts): one that serves a port, one that dies at start, one that never
 * gets ready, one that ignores SIGTERM, and pid files that name a process that is not ours.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { cleanAkvEnv } from '../helpers/dev.js';
import { AKV_BIN } from '../helpers/emulator.js';

const scratch = mkdtempSync(join(tmpdir(), 'akv-dev-service-test-'));
const started: number[] = [];
const bystanders: ChildProcess[] = [];
after(() => {
  for (const pid of started) {
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      // already gone, as it should be
    }
  }
  for (const child of bystanders) child.kill('SIGKILL');
  rmSync(scratch, { recursive: true, force: true });
});

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function akv(args: string[]): Run {
  const r = spawnSync(AKV_BIN, args, { encoding: 'utf8', env: cleanAkvEnv(), timeout: 60_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const address = s.address();
      s.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

function running(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/^[ZX]/.test(stat.slice(stat.lastIndexOf(')') + 2));
  } catch {
    return false;
  }
}

async function gone(pid: number, ms = 5000): Promise<boolean> {
  for (const until = Date.now() + ms; Date.now() < until;)
    if (running(pid)) await new Promise((r) => setTimeout(r, 50));
    else return true;
  return !running(pid);
}

/** A node program serving 127.0.0.1:PORT, printing "serving" when it listens. */
const SERVER = `require('net').createServer((c)=>c.end('hi\\n')).listen(Number(process.argv[1]),'127.0.0.1',()=>console.log('serving'))`;

function dir(label: string): string {
  return mkdtempSync(join(scratch, `${label}-`));
}

function pidOf(d: string, name: string): number {
  const pid = Number(readFileSync(join(d, `${name}.pid`), 'utf8').trim());
  started.push(pid);
  return pid;
}

describe('akv dev start|stop|status', () => {
  it('starts a real server, waits for its port, is idempotent, stops it', async () => {
    const d = dir('web');
    const port = await freePort();
    const cmd = [process.execPath, '-e', SERVER, String(port)];
    const r = akv([
      'dev',
      'start',
      '--dir',
      d,
      '--name',
      'web',
      '--ready-port',
      String(port),
      '--',
      ...cmd,
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /web started \(pid \d+\), accepting connections on 127\.0\.0\.1:\d+/);
    const pid = pidOf(d, 'web');
    assert.ok(running(pid));
    assert.match(readFileSync(join(d, 'web.log'), 'utf8'), /serving/);

    const status = akv(['dev', 'status', '--dir', d]);
    assert.equal(status.code, 0, status.stdout + status.stderr);
    assert.match(status.stdout, new RegExp(`^web  running \\(pid ${pid}, since .*\\): .*-e`, 'm'));

    const again = akv([
      'dev',
      'start',
      '--dir',
      d,
      '--name',
      'web',
      '--ready-port',
      String(port),
      '--',
      ...cmd,
    ]);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stderr, new RegExp(`web already running \\(pid ${pid}\\)`));
    assert.equal(pidOf(d, 'web'), pid);

    const other = akv([
      'dev',
      'start',
      '--dir',
      d,
      '--name',
      'web',
      '--',
      process.execPath,
      '-e',
      '1',
    ]);
    assert.equal(other.code, 2, other.stderr);
    assert.match(other.stderr, /already runs \(pid \d+\) another command.*akv dev stop/);

    const stop = akv(['dev', 'stop', '--dir', d, '--name', 'web']);
    assert.equal(stop.code, 0, stop.stderr);
    assert.match(stop.stderr, new RegExp(`web \\(pid ${pid}\\) stopped`));
    assert.ok(await gone(pid), 'the server exited');
    assert.ok(!existsSync(join(d, 'web.pid')), 'the pid file is removed');

    const stopAgain = akv(['dev', 'stop', '--dir', d, '--name', 'web']);
    assert.equal(stopAgain.code, 0, stopAgain.stderr);
    assert.match(stopAgain.stderr, /web was not running/);
    const after = akv(['dev', 'status', '--dir', d, '--name', 'web']);
    assert.equal(after.code, 3);
    assert.match(after.stdout, /^web {2}stopped$/m);
  });

  it('a program that dies at start: the error quotes its log', () => {
    const d = dir('dies');
    const r = akv([
      'dev',
      'start',
      '--dir',
      d,
      '--name',
      'broken',
      '--ready-port',
      '1',
      '--',
      process.execPath,
      '-e',
      `console.error('broken.conf line 3: unknown directive "sever"'); process.exit(3)`,
    ]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /broken \(pid \d+\) exited with status 3 before it was ready/);
    assert.match(r.stderr, /broken\.log says:\nbroken\.conf line 3: unknown directive "sever"/);
    assert.ok(!existsSync(join(d, 'broken.pid')));
  });

  it('a program that daemonizes (exits 0) is told to stay in the foreground', () => {
    const d = dir('daemon');
    const r = akv([
      'dev',
      'start',
      '--dir',
      d,
      '--name',
      'forks',
      '--ready-port',
      '1',
      '--',
      process.execPath,
      '-e',
      '0',
    ]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /exited with status 0 before it was ready/);
    assert.match(r.stderr, /foreground.*daemon off/);
  });

  it('a command that does not exist is named', () => {
    const d = dir('missing');
    const r = akv(['dev', 'start', '--dir', d, '--name', 'x', '--', join(d, 'no-such-program')]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /could not be started: spawn .*no-such-program ENOENT/);
  });

  it('a program that never gets ready is stopped after --timeout, quoting its log', async () => {
    const d = dir('slow');
    const port = await freePort();
    const r = akv([
      'dev',
      'start',
      '--dir',
      d,
      '--name',
      'slow',
      '--ready-port',
      String(port),
      '--timeout',
      '1',
      '--',
      process.execPath,
      '-e',
      `console.log('loading a very large config'); setInterval(() => {}, 1000)`,
    ]);
    assert.notEqual(r.code, 0);
    assert.match(
      r.stderr,
      /slow \(pid (\d+)\) was not ready within 1 s \(accepting connections on 127\.0\.0\.1:\d+\), so it was stopped/,
    );
    assert.match(r.stderr, /loading a very large config/);
    const pid = Number(/slow \(pid (\d+)\)/.exec(r.stderr)?.[1]);
    started.push(pid);
    assert.ok(await gone(pid), 'the process was stopped');
    assert.ok(!existsSync(join(d, 'slow.pid')));
  });

  it('--ready-log waits for a line; SIGTERM ignored: SIGKILL after the stop --timeout', async () => {
    const d = dir('stubborn');
    const r = akv([
      'dev',
      'start',
      '--dir',
      d,
      '--name',
      'stubborn',
      '--ready-log',
      'ready now',
      '--',
      process.execPath,
      '-e',
      `process.on('SIGTERM', () => console.log('ignoring SIGTERM')); setTimeout(() => console.log('ready now'), 300); setInterval(() => {}, 1000)`,
    ]);
    assert.equal(r.code, 0, r.stderr);
    const pid = pidOf(d, 'stubborn');
    const stop = akv(['dev', 'stop', '--dir', d, '--name', 'stubborn', '--timeout', '0.5']);
    assert.equal(stop.code, 0, stop.stderr);
    assert.match(stop.stderr, /did not stop within 0\.5 s of SIGTERM: killed \(SIGKILL\)/);
    assert.ok(await gone(pid));
  });

  it('a stale pid file naming another live process: that process is never signalled', async () => {
    const d = dir('stale');
    const bystander = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], {
      stdio: 'ignore',
    });
    bystanders.push(bystander);
    const pid = bystander.pid ?? 0;
    // What a service started long ago left behind, after its pid was reused by `bystander`.
    writeFileSync(join(d, 'web.pid'), `${pid}\n`);
    writeFileSync(
      join(d, 'web.service.json'),
      JSON.stringify({
        pid,
        startTime: '1',
        command: ['nginx'],
        startedAt: '2026-01-01T00:00:00Z',
      }),
    );
    const status = akv(['dev', 'status', '--dir', d]);
    assert.equal(status.code, 3);
    assert.match(
      status.stdout,
      /^web {2}stopped \(stale pid file: pid \d+ is another process now/m,
    );
    const stop = akv(['dev', 'stop', '--dir', d, '--name', 'web', '--timeout', '0.5']);
    assert.equal(stop.code, 0, stop.stderr);
    assert.match(
      stop.stderr,
      /web was not running \(removed the stale .*web\.pid.*not signalled\)/,
    );
    assert.ok(running(pid), 'the other process still runs');
    assert.ok(!existsSync(join(d, 'web.pid')));

    // A bare pid file (no record) is not taken for ours either; start goes ahead.
    writeFileSync(join(d, 'web.pid'), `${pid}\n`);
    const port = await freePort();
    const start = akv([
      'dev',
      'start',
      '--dir',
      d,
      '--name',
      'web',
      '--ready-port',
      String(port),
      '--',
      process.execPath,
      '-e',
      SERVER,
      String(port),
    ]);
    assert.equal(start.code, 0, start.stderr);
    assert.match(
      start.stderr,
      /ignoring .*web\.pid: .* does not describe pid \d+ \(not signalled\)/,
    );
    const ours = pidOf(d, 'web');
    assert.notEqual(ours, pid);
    assert.ok(running(pid), 'the other process still runs');
    assert.equal(akv(['dev', 'stop', '--dir', d, '--name', 'web']).code, 0);
    assert.ok(await gone(ours));
  });

  it('akv dev down stops the services of DIR too', async () => {
    const d = dir('down');
    const r = akv([
      'dev',
      'start',
      '--dir',
      d,
      '--name',
      'idle',
      '--',
      process.execPath,
      '-e',
      'setInterval(() => {}, 1000)',
    ]);
    assert.equal(r.code, 0, r.stderr);
    const pid = pidOf(d, 'idle');
    const down = akv(['dev', 'down', '--dir', d]);
    assert.equal(down.code, 0, down.stderr);
    assert.match(down.stderr, new RegExp(`idle \\(pid ${pid}\\) stopped`));
    assert.ok(await gone(pid));
  });

  it('refuses a busy --ready-port, a reserved name and a missing command', async () => {
    const d = dir('usage');
    const busy = createServer().listen(0, '127.0.0.1');
    await new Promise((r) => busy.once('listening', r));
    const address = busy.address();
    const port = typeof address === 'object' && address ? address.port : 0;
    const r = akv([
      'dev',
      'start',
      '--dir',
      d,
      '--name',
      'web',
      '--ready-port',
      String(port),
      '--',
      process.execPath,
      '-e',
      SERVER,
      String(port),
    ]);
    busy.close();
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /something already accepts connections on 127\.0\.0\.1:\d+/);
    assert.ok(!existsSync(join(d, 'web.pid')), 'nothing was started');

    const reserved = akv(['dev', 'start', '--dir', d, '--name', 'agent', '--', 'true']);
    assert.equal(reserved.code, 2);
    assert.match(reserved.stderr, /not a service name/);
    const none = akv(['dev', 'start', '--dir', d, '--name', 'web']);
    assert.equal(none.code, 2);
    assert.match(none.stderr, /the command to run is missing: put it after --/);
    const help = akv(['dev', 'start', '--dir', d, '--name', 'h', '--', process.execPath, '--help']);
    assert.doesNotMatch(
      help.stdout + help.stderr,
      /Usage: akv dev/,
      "the command's --help is its own",
    );
    akv(['dev', 'stop', '--dir', d, '--name', 'h']);
  });
});
