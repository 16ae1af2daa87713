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
import { freePort } from '../provider/openssl-env.js';
import { portAccepts } from '../../src/cli/util/dev-service.js';

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

/** `akv dev start --dir D --name NAME OPTIONS -- COMMAND`. */
function start(d: string, name: string, options: string[], command: string[]): Run {
  return akv(['dev', 'start', '--dir', d, '--name', name, ...options, '--', ...command]);
}

/** `akv dev stop --dir D --name NAME OPTIONS`. */
function stop(d: string, name: string, ...options: string[]): Run {
  return akv(['dev', 'stop', '--dir', d, '--name', name, ...options]);
}

/** A service's command: node running SCRIPT with ARGS. */
function node(script: string, ...args: string[]): string[] {
  return [process.execPath, '-e', script, ...args];
}

const IDLE = 'setInterval(() => {}, 1000)';

function pidOf(d: string, name: string): number {
  const pid = Number(readFileSync(join(d, `${name}.pid`), 'utf8').trim());
  started.push(pid);
  return pid;
}

describe('akv dev start|stop|status', () => {
  it('starts a real server, waits for its port, is idempotent, stops it', async () => {
    const d = dir('web');
    const port = await freePort();
    const cmd = node(SERVER, String(port));
    const r = start(d, 'web', ['--ready-port', String(port)], cmd);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /web started \(pid \d+\), accepting connections on 127\.0\.0\.1:\d+/);
    const pid = pidOf(d, 'web');
    assert.ok(running(pid));
    assert.match(readFileSync(join(d, 'web.log'), 'utf8'), /serving/);

    const status = akv(['dev', 'status', '--dir', d]);
    assert.equal(status.code, 0, status.stdout + status.stderr);
    assert.match(status.stdout, new RegExp(`^web  running \\(pid ${pid}, since .*\\): .*-e`, 'm'));

    const again = start(d, 'web', ['--ready-port', String(port)], cmd);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stderr, new RegExp(`web already running \\(pid ${pid}\\)`));
    assert.equal(pidOf(d, 'web'), pid);

    const other = start(d, 'web', [], node('1'));
    assert.equal(other.code, 2, other.stderr);
    assert.match(other.stderr, /already runs \(pid \d+\) another command.*akv dev stop/);

    const stopped = stop(d, 'web');
    assert.equal(stopped.code, 0, stopped.stderr);
    assert.match(stopped.stderr, new RegExp(`web \\(pid ${pid}\\) stopped`));
    assert.ok(await gone(pid), 'the server exited');
    assert.ok(!existsSync(join(d, 'web.pid')), 'the pid file is removed');

    const stopAgain = stop(d, 'web');
    assert.equal(stopAgain.code, 0, stopAgain.stderr);
    assert.match(stopAgain.stderr, /web was not running/);
    const after = akv(['dev', 'status', '--dir', d, '--name', 'web']);
    assert.equal(after.code, 3);
    assert.match(after.stdout, /^web {2}stopped$/m);
  });

  // Starts that fail: the service is not left behind, and the error says why.
  for (const { what, name, options, command, says } of [
    {
      what: 'a program that dies at start: the error quotes its log',
      name: 'broken',
      options: ['--ready-port', '1'],
      command: node(
        `console.error('broken.conf line 3: unknown directive "sever"'); process.exit(3)`,
      ),
      says: [
        /broken \(pid \d+\) exited with status 3 before it was ready/,
        /broken\.log says:\nbroken\.conf line 3: unknown directive "sever"/,
      ],
    },
    {
      what: 'a program that daemonizes (exits 0) is told to stay in the foreground',
      name: 'forks',
      options: ['--ready-port', '1'],
      command: node('0'),
      says: [/exited with status 0 before it was ready/, /foreground.*daemon off/],
    },
    {
      what: 'a command that does not exist is named',
      name: 'x',
      options: [],
      command: [join(scratch, 'no-such-program')],
      says: [/could not be started: spawn .*no-such-program ENOENT/],
    },
  ]) {
    it(what, () => {
      const d = dir(name);
      const r = start(d, name, options, command);
      assert.notEqual(r.code, 0);
      for (const pattern of says) assert.match(r.stderr, pattern);
      assert.ok(!existsSync(join(d, `${name}.pid`)));
    });
  }

  it('a program that never gets ready is stopped after --timeout, quoting its log', async () => {
    const d = dir('slow');
    const port = await freePort();
    const r = start(
      d,
      'slow',
      ['--ready-port', String(port), '--timeout', '1'],
      node(`console.log('loading a very large config'); ${IDLE}`),
    );
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
    const r = start(
      d,
      'stubborn',
      ['--ready-log', 'ready now'],
      node(
        `process.on('SIGTERM', () => console.log('ignoring SIGTERM')); setTimeout(() => console.log('ready now'), 300); ${IDLE}`,
      ),
    );
    assert.equal(r.code, 0, r.stderr);
    const pid = pidOf(d, 'stubborn');
    const stopped = stop(d, 'stubborn', '--timeout', '0.5');
    assert.equal(stopped.code, 0, stopped.stderr);
    assert.match(stopped.stderr, /did not stop within 0\.5 s of SIGTERM: killed \(SIGKILL\)/);
    assert.ok(await gone(pid));
  });

  it('a stale pid file naming another live process: that process is never signalled', async () => {
    const d = dir('stale');
    const bystander = spawn(process.execPath, ['-e', IDLE], {
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
    const stopped = stop(d, 'web', '--timeout', '0.5');
    assert.equal(stopped.code, 0, stopped.stderr);
    assert.match(
      stopped.stderr,
      /web was not running \(removed the stale .*web\.pid.*not signalled\)/,
    );
    assert.ok(running(pid), 'the other process still runs');
    assert.ok(!existsSync(join(d, 'web.pid')));

    // A bare pid file (no record) is not taken for ours either; start goes ahead.
    writeFileSync(join(d, 'web.pid'), `${pid}\n`);
    const port = await freePort();
    const fresh = start(d, 'web', ['--ready-port', String(port)], node(SERVER, String(port)));
    assert.equal(fresh.code, 0, fresh.stderr);
    assert.match(
      fresh.stderr,
      /ignoring .*web\.pid: .* does not describe pid \d+ \(not signalled\)/,
    );
    const ours = pidOf(d, 'web');
    assert.notEqual(ours, pid);
    assert.ok(running(pid), 'the other process still runs');
    assert.equal(stop(d, 'web').code, 0);
    assert.ok(await gone(ours));
  });

  it('akv dev down stops the services of DIR too', async () => {
    const d = dir('down');
    const r = start(d, 'idle', [], node(IDLE));
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
    const r = start(d, 'web', ['--ready-port', String(port)], node(SERVER, String(port)));
    busy.close();
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /something already accepts connections on 127\.0\.0\.1:\d+/);
    assert.ok(!existsSync(join(d, 'web.pid')), 'nothing was started');

    const reserved = start(d, 'agent', [], ['true']);
    assert.equal(reserved.code, 2);
    assert.match(reserved.stderr, /not a service name/);
    const none = akv(['dev', 'start', '--dir', d, '--name', 'web']);
    assert.equal(none.code, 2);
    assert.match(none.stderr, /the command to run is missing: put it after --/);
    const help = start(d, 'h', [], [process.execPath, '--help']);
    assert.doesNotMatch(
      help.stdout + help.stderr,
      /Usage: akv dev/,
      "the command's --help is its own",
    );
    stop(d, 'h');
  });
});

// CI found it: the readiness probe closed its connection with a reset whenever the server had
// already written to it, and a server that does not expect resets (the test's own, here) died of
// it right after `akv dev start` had said it was ready.
it('the port probe closes its connection politely, even after the server wrote to it', async () => {
  const server = spawn(
    process.execPath,
    [
      '-e',
      `require('net').createServer((c)=>{c.on('error',(e)=>console.log(e.code));c.end('hi\\n')}).listen(0,'127.0.0.1',function(){console.log('port '+this.address().port)})`,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  bystanders.push(server);
  let out = '';
  server.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
  for (let i = 0; i < 100 && !/port \d+/.test(out); i++)
    await new Promise((r) => setTimeout(r, 20));
  const port = Number(/port (\d+)/.exec(out)?.[1]);
  for (let i = 0; i < 5; i++) {
    const accepts = portAccepts(port);
    // Once the connect is under way, hold this thread so the server's bytes are in before the
    // probe sees its connection: what a loaded machine does at random, every time.
    await new Promise((r) => process.nextTick(r));
    for (const until = Date.now() + 100; Date.now() < until;);
    assert.ok(await accepts, 'the server accepts');
  }
  await new Promise((r) => setTimeout(r, 200));
  assert.doesNotMatch(out, /ECONNRESET|EPIPE/, 'the server saw a reset');
});
