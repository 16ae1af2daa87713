/**
 * The agent nobody has to start (docs/provider.md, "Autostart"): the quick start of the original
 * Managed HSM provider, verbatim, against the emulator with nothing akv running; cold parallel
 * starts; idle exit; opt-out; a stale socket; a refreshed token; who may answer on the socket.
 * Every case gets its own XDG_RUNTIME_DIR, so the default socket is private to the test.
 */
import { after, before, describe, it } from 'node:test';
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
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cleanAkvEnv } from '../helpers/dev.js';
import {
  agentsOn,
  defaultSocketIn,
  privateRuntimeDir,
  userShellEnv,
} from '../helpers/autostart-env.js';
import { AKV_BIN, startEmulator, type RunningEmulator } from '../helpers/emulator.js';
import {
  OPENSSL,
  PROVIDER_MODULES_DIR,
  opensslCnf,
  runAsync,
  runSync,
  type Run,
} from './openssl-env.js';

const TOKEN = 'quick-start-token';
let emulator: RunningEmulator;
let work: string;
let config: string;

/** The environment of a user's shell: config and token exported, nothing akv running. */
function userEnv(runtime: string, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return userShellEnv({ config, token: TOKEN, runtime, modulesDir: PROVIDER_MODULES_DIR }, extra);
}

const runtimeDir = (name: string): string => privateRuntimeDir(work, name);
const socketOf = defaultSocketIn;

async function waitFor(what: string, cond: () => boolean, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function waitForAsync(
  what: string,
  cond: () => Promise<boolean>,
  ms = 20_000,
): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** True when something accepts a connection on the socket path. */
function accepts(socket: string): Promise<boolean> {
  return new Promise((resolve) => {
    const c = createConnection({ path: socket });
    c.once('connect', () => {
      c.destroy();
      resolve(true);
    });
    c.once('error', () => resolve(false));
  });
}

async function stopAgents(socket: string): Promise<void> {
  for (const pid of agentsOn(socket)) process.kill(pid, 'SIGTERM');
  await waitFor(`the agents on ${socket} to stop`, () => agentsOn(socket).length === 0);
}

function openssl(args: string[], env: NodeJS.ProcessEnv): Run {
  return runSync(OPENSSL, args, env, work);
}

/** Runs many commands at once (each a separate process), resolving with every result. */
function parallel(
  n: number,
  args: (i: number) => string[],
  env: NodeJS.ProcessEnv,
): Promise<Run[]> {
  return Promise.all(Array.from({ length: n }, (_, i) => runAsync(OPENSSL, args(i), env, work)));
}

const QUICK_START = (out: string): string[] => [
  'req',
  '-new',
  '-x509',
  '-key',
  'managedhsm:myhsm:mykey',
  '-provider',
  'akv_provider',
  '-provider',
  'default',
  '-out',
  out,
  '-days',
  '365',
  '-subj',
  '/CN=test',
];
const SIGN = (out: string): string[] => [
  'dgst',
  '-sha256',
  '-provider',
  'akv_provider',
  '-provider',
  'default',
  '-sign',
  'managedhsm:myhsm:mykey',
  '-out',
  out,
  'data.txt',
];

const sockets: string[] = [];

before(async () => {
  work = mkdtempSync(join(tmpdir(), 'akv-autostart-'));
  // The emulator accepts only this token, as the real HSM accepts only a valid one.
  emulator = await startEmulator({ token: TOKEN });
  config = join(work, 'config.json');
  writeFileSync(
    config,
    JSON.stringify({
      vaults: {
        myhsm: {
          endpoint: emulator.url,
          caFile: emulator.caFile,
          disableChallengeResourceVerification: true,
        },
      },
    }),
  );
  writeFileSync(join(work, 'data.txt'), 'signed through an agent nobody started\n');
  const created = spawnSync(
    AKV_BIN,
    [
      'key',
      'create',
      '--hsm-name',
      'myhsm',
      '--name',
      'mykey',
      '--kty',
      'RSA-HSM',
      '--size',
      '2048',
    ],
    { env: userEnv(runtimeDir('setup')), encoding: 'utf8' },
  );
  assert.equal(created.status, 0, created.stderr);
});

after(async () => {
  for (const s of sockets) await stopAgents(s).catch(() => undefined);
  await emulator?.stop();
  rmSync(work, { recursive: true, force: true });
});

describe('the quick start, with nothing akv started', () => {
  it('openssl req -new -x509 with the managedhsm: URI works, the certificate verifies, an agent now runs', () => {
    const run = runtimeDir('quick');
    const socket = socketOf(run);
    sockets.push(socket);
    assert.equal(agentsOn(socket).length, 0);
    const r = openssl(QUICK_START('cert.pem'), userEnv(run));
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout + r.stderr, '', 'nothing is printed on success');
    const verify = openssl(['verify', '-CAfile', 'cert.pem', 'cert.pem'], cleanAkvEnv());
    assert.equal(verify.status, 0, verify.stderr);
    // The certificate carries the HSM key's public half.
    const certKey = openssl(['x509', '-in', 'cert.pem', '-noout', '-pubkey'], cleanAkvEnv()).stdout;
    const hsmKey = openssl(
      [
        'pkey',
        '-provider',
        'akv_provider',
        '-provider',
        'default',
        '-in',
        'managedhsm:myhsm:mykey',
        '-pubout',
      ],
      userEnv(run),
    ).stdout;
    assert.equal(certKey, hsmKey);
    assert.equal(agentsOn(socket).length, 1, 'exactly one agent serves the default socket');
    const st = spawnSync('stat', ['-c', '%a %U', join(run, 'akv')], { encoding: 'utf8' });
    assert.equal(st.stdout.trim().split(' ')[0], '700', 'the socket directory is created 0700');
    assert.ok(existsSync(join(run, 'akv', 'agent.log')), 'the agent logs beside its socket');
    // The second command finds the agent (one agent, same pid).
    const pid = agentsOn(socket)[0];
    assert.equal(openssl(QUICK_START('cert2.pem'), userEnv(run)).status, 0);
    assert.deepEqual(agentsOn(socket), [pid]);
  });
});

describe('autostart', () => {
  it('8 processes started at once against no agent all succeed, and leave exactly one agent', async () => {
    const run = runtimeDir('cold');
    const socket = socketOf(run);
    sockets.push(socket);
    const results = await parallel(8, (i) => SIGN(`cold-${i}.sig`), userEnv(run));
    for (const r of results) assert.equal(r.status, 0, r.stderr);
    assert.equal(agentsOn(socket).length, 1);
  });

  it('a stale socket of a dead agent is replaced', async () => {
    const run = runtimeDir('stale');
    const socket = socketOf(run);
    sockets.push(socket);
    assert.equal(openssl(SIGN('stale-1.sig'), userEnv(run)).status, 0);
    const [pid] = agentsOn(socket);
    assert.ok(pid);
    process.kill(pid, 'SIGKILL');
    // Gone from /proc's command lines is not enough: a dying process releases its memory before
    // its descriptors, so wait until its listening socket refuses connections too.
    await waitFor('the agent to die', () => agentsOn(socket).length === 0);
    await waitForAsync('its socket to refuse connections', async () => !(await accepts(socket)));
    assert.ok(existsSync(socket), 'SIGKILL leaves the socket file behind');
    const r = openssl(SIGN('stale-2.sig'), userEnv(run));
    assert.equal(r.status, 0, r.stderr);
    const now = agentsOn(socket);
    assert.equal(now.length, 1);
    assert.notEqual(now[0], pid);
  });

  it('an autostarted agent exits after AKV_AGENT_IDLE_EXIT seconds without requests and removes its socket', async () => {
    const run = runtimeDir('idle');
    const socket = socketOf(run);
    sockets.push(socket);
    assert.equal(openssl(SIGN('idle.sig'), userEnv(run, { AKV_AGENT_IDLE_EXIT: '2' })).status, 0);
    assert.equal(agentsOn(socket).length, 1);
    await waitFor('the idle agent to exit', () => agentsOn(socket).length === 0, 30_000);
    assert.ok(!existsSync(socket), 'the socket is removed');
    assert.match(
      readFileSync(join(run, 'akv', 'agent.log'), 'utf8'),
      /idle: no request for the idle-exit period/,
    );
  });

  it("an agent that dies while starting is reported with this start's log lines, not an earlier agent's", () => {
    const run = runtimeDir('dies');
    mkdirSync(join(run, 'akv'), { mode: 0o700 });
    const log = join(run, 'akv', 'agent.log');
    writeFileSync(log, '{"level":60,"msg":"an earlier agent said this before it stopped"}\n', {
      mode: 0o600,
    });
    const silent = join(work, 'dies-silently.sh');
    writeFileSync(silent, '#!/bin/sh\nexit 1\n', { mode: 0o700 });
    const r = openssl(SIGN('dies.sig'), userEnv(run, { AKV_AGENT_COMMAND: silent }));
    assert.notEqual(r.status, 0);
    assert.match(
      r.stderr,
      /the akv agent started for you at .* exited: \(nothing in its log from this start\)/,
    );
    assert.doesNotMatch(r.stderr, /an earlier agent said this/);

    const talks = join(work, 'dies-saying-why.sh');
    writeFileSync(talks, '#!/bin/sh\necho "this start: cannot read the config" >&2\nexit 1\n', {
      mode: 0o700,
    });
    const again = openssl(SIGN('dies2.sig'), userEnv(run, { AKV_AGENT_COMMAND: talks }));
    assert.match(again.stderr, /exited: this start: cannot read the config/);
  });

  it('AKV_AGENT_AUTOSTART=0 and autostart = no: a missing agent is the clear error, and none is started', () => {
    const run = runtimeDir('optout');
    const socket = socketOf(run);
    const r = openssl(SIGN('optout.sig'), userEnv(run, { AKV_AGENT_AUTOSTART: '0' }));
    assert.notEqual(r.status, 0);
    assert.match(
      r.stderr,
      /akv agent not reachable at .*agent\.sock.*it is not started automatically.*; hint: start it with `akv agent`/,
    );
    const cnf = join(work, 'no-autostart.cnf');
    writeFileSync(cnf, opensslCnf(['autostart = no']));
    const viaCnf = runSync(
      OPENSSL,
      ['dgst', '-sha256', '-sign', 'managedhsm:myhsm:mykey', '-out', 'optout2.sig', 'data.txt'],
      { ...userEnv(run), OPENSSL_CONF: cnf },
      work,
    );
    assert.notEqual(viaCnf.status, 0);
    assert.match(viaCnf.stderr, /it is not started automatically/);
    assert.equal(agentsOn(socket).length, 0);
  });

  it('a refreshed AZURE_CLI_ACCESS_TOKEN reaches the running agent (no restart)', () => {
    const run = runtimeDir('token');
    const socket = socketOf(run);
    sockets.push(socket);
    // Started with a token the HSM refuses: the agent runs, the operation fails.
    const stale = openssl(
      SIGN('token-1.sig'),
      userEnv(run, { AZURE_CLI_ACCESS_TOKEN: 'expired-token' }),
    );
    assert.notEqual(stale.status, 0);
    assert.match(stale.stderr, /no usable Azure credential|rejected the access token/);
    const [pid] = agentsOn(socket);
    assert.ok(pid, 'the agent started');
    const fresh = openssl(SIGN('token-2.sig'), userEnv(run));
    assert.equal(fresh.status, 0, fresh.stderr);
    assert.deepEqual(agentsOn(socket), [pid], 'the same agent switched tokens');
    const log = readFileSync(join(run, 'akv', 'agent.log'), 'utf8');
    assert.match(log, /using the AZURE_CLI_ACCESS_TOKEN a client handed over/);
    assert.ok(!log.includes(TOKEN) && !log.includes('expired-token'), 'no token in the log');
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    assert.ok(
      !cmdline.includes(TOKEN) && !cmdline.includes('expired-token'),
      'no token on the command line',
    );
  });

  it('refuses a default socket directory with a wider mode, and an explicit socket in a directory that is not ours', () => {
    const run = runtimeDir('wide');
    mkdirSync(join(run, 'akv'), { mode: 0o750 });
    chmodSync(join(run, 'akv'), 0o750);
    const r = openssl(SIGN('wide.sig'), userEnv(run));
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /will not start an akv agent in .*akv: its mode is 750.*; hint: /);
    assert.equal(agentsOn(socketOf(run)).length, 0);

    const shared = mkdtempSync(join(tmpdir(), 'akv-notmine-'));
    chmodSync(shared, 0o777);
    try {
      const socket = join(shared, 'agent.sock');
      const e = openssl(
        SIGN('notmine.sig'),
        userEnv(runtimeDir('notmine'), { AKV_AGENT_SOCKET: socket }),
      );
      assert.notEqual(e.status, 0);
      assert.match(e.stderr, /will not start an akv agent in .*: its mode is 777/);
      assert.equal(agentsOn(socket).length, 0);
    } finally {
      rmSync(shared, { recursive: true, force: true });
    }
  });

  it('settings are parsed strictly: a unit in AKV_AGENT_TIMEOUT_MS is an error naming the variable', () => {
    const r = openssl(
      SIGN('strict.sig'),
      userEnv(runtimeDir('strict'), { AKV_AGENT_TIMEOUT_MS: '15s' }),
    );
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /AKV_AGENT_TIMEOUT_MS=15s is not a number of milliseconds/);
    const big = openssl(
      SIGN('strict.sig'),
      userEnv(runtimeDir('strict2'), { AKV_AGENT_TIMEOUT_MS: '99999999999' }),
    );
    assert.match(big.stderr, /AKV_AGENT_TIMEOUT_MS=99999999999 is not a number of milliseconds/);
  });
});

describe(
  'who answers on the socket',
  { skip: process.getuid?.() !== 0 && 'needs root to run a listener as nobody' },
  () => {
    it("another user's 0700 agent directory is reported as theirs, not as a socket-group problem", (t) => {
      // Root's own agent directory, 0700; the client runs as nobody (root would pass anyway).
      const dir = mkdtempSync(join(tmpdir(), 'akv-others-'));
      chmodSync(dir, 0o700);
      const asNobody = ['--reuid=nobody', '--regid=nogroup', '--clear-groups'];
      const module = join(PROVIDER_MODULES_DIR, 'akv_provider.so');
      if (spawnSync('setpriv', [...asNobody, 'test', '-r', module]).status !== 0) {
        rmSync(dir, { recursive: true, force: true });
        t.skip('the provider module is not readable by nobody from this checkout');
        return;
      }
      // A matrix OpenSSL under root's home finds its libraries by rpath only as root.
      const version = spawnSync('setpriv', [...asNobody, OPENSSL, 'version'], { encoding: 'utf8' });
      if (version.status !== 0 || version.stderr !== '') {
        rmSync(dir, { recursive: true, force: true });
        t.skip(`${OPENSSL} does not run as nobody (its libraries are not readable by nobody)`);
        return;
      }
      try {
        const r = spawnSync(
          'setpriv',
          [
            ...asNobody,
            OPENSSL,
            'pkey',
            '-provider',
            'akv_provider',
            '-provider',
            'default',
            '-pubout',
            '-in',
            'managedhsm:myhsm:mykey',
          ],
          {
            env: {
              ...cleanAkvEnv(),
              OPENSSL_MODULES: PROVIDER_MODULES_DIR,
              AKV_AGENT_SOCKET: join(dir, 'agent.sock'),
            },
            encoding: 'utf8',
            cwd: '/',
          },
        );
        assert.notEqual(r.status, 0);
        assert.match(
          r.stderr,
          /cannot reach the akv agent socket .*agent\.sock: its directory .*akv-others-\w+ belongs to uid 0 \(root\) with mode 700, closed to you \(uid \d+\): it is that user's own agent/,
        );
        assert.doesNotMatch(r.stderr, /socket's group/);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });

    it('a socket served by another user is refused with the clear error, and nothing is sent to it', async () => {
      const dir = mkdtempSync(join(tmpdir(), 'akv-impostor-'));
      chmodSync(dir, 0o777);
      const socket = join(dir, 'agent.sock');
      const counts = join(dir, 'received');
      // A listener running as nobody that records how many bytes each client sent.
      // Node itself (not a script file): nothing needs staging where nobody can read it.
      const listener = spawn(
        'setpriv',
        [
          '--reuid=nobody',
          '--regid=nogroup',
          '--clear-groups',
          process.execPath,
          '-e',
          `const net = require('node:net'), fs = require('node:fs');
         const [socket, counts] = process.argv.slice(1);
         net.createServer((c) => {
           let n = 0;
           c.on('data', (b) => { n += b.length; });
           c.on('close', () => fs.appendFileSync(counts, n + '\\n'));
           c.on('error', () => {});
         }).listen(socket, () => console.log('ready'));`,
          socket,
          counts,
        ],
        { stdio: ['ignore', 'pipe', 'inherit'] },
      );
      try {
        await new Promise<void>((resolve, reject) => {
          listener.stdout.once('data', () => resolve());
          listener.once('exit', (code) => reject(new Error(`listener exited ${code}`)));
        });
        const r = openssl(
          SIGN('impostor.sig'),
          userEnv(runtimeDir('impostor'), { AKV_AGENT_SOCKET: socket }),
        );
        assert.notEqual(r.status, 0);
        assert.match(
          r.stderr,
          /refused the akv agent socket .*agent\.sock: it is served by uid \d+ \(nobody\), not by you \(uid 0\) or root; nothing was sent; hint: .*agent_user = nobody.*AKV_AGENT_USER=nobody/,
        );
        await waitFor('the listener to record the connection', () => existsSync(counts));
        assert.deepEqual(
          readFileSync(counts, 'utf8').trim().split('\n'),
          ['0'],
          'the listener received nothing',
        );
      } finally {
        listener.kill('SIGKILL');
        rmSync(dir, { recursive: true, force: true });
      }
    });
  },
);
