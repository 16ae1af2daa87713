/**
 * nginx serving TLS with HSM keys through akv_provider, under the conditions that break naive
 * providers: many concurrent handshakes in 4 forked workers, a configuration reload, the agent
 * going away and coming back, and a second TLS implementation (GnuTLS) checking the signatures.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import {
  childPids,
  eventually,
  type ExampleSettings,
  httpsGet,
  loggedSignatures,
  missingPrerequisite,
  nginxSignal,
  processAlive,
  readPid,
  runStep,
  startExample,
  stopExample,
} from './example.js';

const WORKERS = 4;

describe('nginx with HSM keys (4 workers)', { skip: missingPrerequisite() }, () => {
  let s: ExampleSettings | undefined;
  let rsaCa = '';
  let ecCa = '';
  const settings = (): ExampleSettings => {
    assert.ok(s, 'the example did not start');
    return s;
  };

  before(async () => {
    s = await startExample('server', WORKERS);
    rsaCa = readFileSync(s.rsaCert, 'utf8');
    ecCa = readFileSync(s.ecCert, 'utf8');
  });
  after(async () => {
    await stopExample(s);
  });

  test('nginx runs one master and 4 workers', () => {
    const master = readPid(settings().nginxPidFile);
    assert.ok(processAlive(master));
    assert.equal(childPids(master).length, WORKERS);
  });

  test('gnutls-cli completes verified handshakes with both servers', () => {
    const st = settings();
    for (const [port, ca, sigAlg] of [
      [st.rsaPort, st.rsaCert, /RSA-PSS|RSA-SHA/],
      [st.ecPort, st.ecCert, /ECDSA-(SECP256R1-)?SHA256/],
    ] as const) {
      for (const priority of ['NORMAL', 'NORMAL:-VERS-TLS1.3']) {
        const r = spawnSync(
          'gnutls-cli',
          ['--x509cafile', ca, '--port', String(port), '--priority', priority, '127.0.0.1'],
          {
            input: '',
            encoding: 'utf8',
            timeout: 30000,
          },
        );
        const out = `${r.stdout}\n${r.stderr}`;
        assert.equal(r.status, 0, `gnutls-cli ${priority} on port ${port} failed:\n${out}`);
        assert.match(out, /Handshake was completed/);
        assert.match(out, /certificate is trusted/);
        assert.match(out, sigAlg);
        assert.match(out, priority === 'NORMAL' ? /TLS1\.3/ : /TLS1\.2/);
      }
    }
  });

  test('200 concurrent full handshakes per server, spread over the workers, all succeed', async (t) => {
    const st = settings();
    const master = readPid(st.nginxPidFile);
    const workersBefore = childPids(master);
    const signedBefore = loggedSignatures(st, st.rsaKey) + loggedSignatures(st, st.ecKey);
    const answers = await Promise.allSettled([
      ...Array.from({ length: 200 }, () => httpsGet(st.rsaPort, rsaCa)),
      ...Array.from({ length: 200 }, () => httpsGet(st.ecPort, ecCa)),
    ]);
    const failures = answers
      .filter((a) => a.status === 'rejected')
      .map((a) => String((a as PromiseRejectedResult).reason));
    assert.deepEqual(failures, [], `${failures.length} of 400 handshakes failed`);
    const served = answers.map(
      (a) => (a as PromiseFulfilledResult<Awaited<ReturnType<typeof httpsGet>>>).value,
    );
    assert.ok(served.every((a) => a.status === 200 && a.body.includes('protocol=TLSv1.3')));
    const workers = new Set(served.map((a) => /worker=(\d+)/.exec(a.body)?.[1]));
    const perWorker = new Map<string, number>();
    for (const a of served) {
      const w = /worker=(\d+)/.exec(a.body)?.[1] ?? '?';
      perWorker.set(w, (perWorker.get(w) ?? 0) + 1);
    }
    t.diagnostic(`answers per worker pid: ${JSON.stringify(Object.fromEntries(perWorker))}`);
    // Every answer came from one of the forked workers, none of which crashed or was replaced.
    for (const w of workers)
      assert.ok(workersBefore.includes(Number(w)), `answer from unknown worker ${String(w)}`);
    assert.deepEqual(childPids(master), workersBefore);
    // And the agent made (at least) one signature per handshake.
    assert.ok(
      await eventually(
        () =>
          loggedSignatures(st, st.rsaKey) + loggedSignatures(st, st.ecKey) - signedBefore >= 400,
        10000,
      ),
      'the agent log does not show 400 new signatures',
    );
  });

  test('nginx -s reload keeps serving with the HSM key', async () => {
    const st = settings();
    const master = readPid(st.nginxPidFile);
    const oldWorkers = childPids(master);
    const r = nginxSignal(st, 'reload');
    assert.equal(r.status, 0, `nginx -s reload failed: ${r.stderr}`);
    assert.ok(
      await eventually(() => {
        const now = childPids(master);
        return now.length === WORKERS && now.every((p) => !oldWorkers.includes(p));
      }, 30000),
      'nginx did not replace its workers after the reload',
    );
    const signedBefore = loggedSignatures(st, st.rsaKey);
    for (let i = 0; i < 8; i++) {
      const a = await httpsGet(st.rsaPort, rsaCa, '/', {
        maxVersion: i % 2 ? 'TLSv1.2' : 'TLSv1.3',
      });
      assert.equal(a.status, 200);
      assert.match(a.body, /worker=\d+/);
      assert.ok(
        !oldWorkers.includes(Number(/worker=(\d+)/.exec(a.body)?.[1])),
        'served by a worker from before the reload',
      );
    }
    const e = await httpsGet(st.ecPort, ecCa, '/health');
    assert.equal(JSON.parse(e.body).type, 'EC');
    assert.ok(
      await eventually(() => loggedSignatures(st, st.rsaKey) - signedBefore >= 8, 10000),
      'no HSM signatures after the reload',
    );
    assert.equal(readPid(st.nginxPidFile), master);
  });

  test('agent restarted while nginx runs: handshakes fail while it is down, succeed after, no nginx process lost', async () => {
    const st = settings();
    const master = readPid(st.nginxPidFile);
    const workers = childPids(master);
    assert.equal((await httpsGet(st.rsaPort, rsaCa)).status, 200);

    // The agent alone goes away (the emulator keeps running): SIGTERM, as a service manager does.
    const agent = readPid(st.agentPidFile);
    process.kill(agent, 'SIGTERM');
    assert.ok(await eventually(() => !processAlive(agent), 20000), 'the agent did not stop');
    for (let i = 0; i < 8; i++) {
      await assert.rejects(
        httpsGet(i % 2 ? st.ecPort : st.rsaPort, i % 2 ? ecCa : rsaCa),
        'a handshake succeeded without the agent',
      );
    }
    assert.ok(processAlive(master));
    assert.deepEqual(
      childPids(master),
      workers,
      'nginx lost or replaced a worker while the agent was down',
    );

    // setup.sh again starts what is not running: the agent (keys and certificates are kept).
    await runStep('setup.sh', ['--env-file', st.envFile]);
    const signedBefore = loggedSignatures(st, st.rsaKey) + loggedSignatures(st, st.ecKey);
    // Enough handshakes that every worker's stale connection to the old agent is exercised.
    const answers = await Promise.all(
      Array.from({ length: 16 }, (_, i) =>
        httpsGet(i % 2 ? st.ecPort : st.rsaPort, i % 2 ? ecCa : rsaCa, '/health'),
      ),
    );
    assert.ok(answers.every((a) => a.status === 200 && JSON.parse(a.body).status === 'healthy'));
    assert.deepEqual(childPids(master), workers, 'nginx lost or replaced a worker');
    assert.ok(
      await eventually(
        () => loggedSignatures(st, st.rsaKey) + loggedSignatures(st, st.ecKey) - signedBefore >= 16,
        10000,
      ),
      'the restarted agent did not log the signatures',
    );
    // The master's own connection (it loads the keys again on reload) also recovers.
    const r = nginxSignal(st, 'reload');
    assert.equal(r.status, 0, `nginx -s reload after the agent restart failed: ${r.stderr}`);
    assert.ok(
      await eventually(
        () =>
          childPids(master).every((p) => !workers.includes(p)) &&
          childPids(master).length === WORKERS,
        30000,
      ),
      'nginx did not reload after the agent restart',
    );
    assert.equal((await httpsGet(st.ecPort, ecCa)).status, 200);
  });
});
