/**
 * HAProxy (Debian's) with one thread and the emulator at a high latency, through
 * examples/haproxy: with ssl-mode-async, many concurrent full handshakes finish in about one HSM
 * latency; without, one after the other. A client that goes away mid-handshake leaves no fd in
 * HAProxy; killing the agent while handshakes wait fails each of them cleanly, HAProxy keeps
 * running, and serves again once the agent is back.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  abandonHandshake,
  concurrentHandshakes,
  fdCount,
  handshake,
  logCount,
  processAlive,
  readPid,
  runStep,
  setupExample,
  startHaproxy,
  stopExample,
  waitFor,
  type HaproxyExample,
} from './example.js';

const LATENCY_MS = 300;
const CLIENTS = 12;
let ex: HaproxyExample;
let caFile: string;

before(async () => {
  ex = await setupExample('async', LATENCY_MS);
  caFile = join(ex.certDir, 'ec.pem');
});

after(async () => {
  await stopExample(ex);
});

describe('HAProxy nbthread 1, HSM latency 300 ms', () => {
  it(`${CLIENTS} concurrent handshakes: about one latency with ssl-mode-async, about ${CLIENTS} without`, async () => {
    await startHaproxy(ex, false);
    await handshake(ex.ecPort, caFile); // warm: connections to the agent, key described
    const blocking = await concurrentHandshakes(CLIENTS, ex.ecPort, caFile);
    assert.deepEqual(
      blocking.outcomes.filter((o) => !o.ok),
      [],
    );
    const pausesBefore = logCount(ex, 'async: job paused');
    await startHaproxy(ex, true);
    await handshake(ex.ecPort, caFile);
    const async = await concurrentHandshakes(CLIENTS, ex.ecPort, caFile);
    assert.deepEqual(
      async.outcomes.filter((o) => !o.ok),
      [],
    );
    const ratio = blocking.ms / async.ms;
    console.log(
      `blocking: ${CLIENTS} handshakes in ${blocking.ms.toFixed(0)} ms; async: ${async.ms.toFixed(0)} ms; ratio ${ratio.toFixed(1)}`,
    );
    // In theory 12; the margin covers a busy machine.
    assert.ok(ratio > 4, `async was only ${ratio.toFixed(1)}x faster than blocking`);
    // The async path was really used: every handshake's job paused for the HSM.
    assert.ok(
      logCount(ex, 'async: job paused') - pausesBefore >= CLIENTS,
      'the provider logged no async pauses',
    );
  });

  it('clients that go away mid-handshake leave no fd behind in HAProxy', async () => {
    const pid = await startHaproxy(ex, true);
    // Fill the provider's pool to its idle limit (8 agent connections), so that the count after
    // can only be lower or equal when nothing leaks.
    const warm = await concurrentHandshakes(10, ex.ecPort, caFile);
    assert.deepEqual(
      warm.outcomes.filter((o) => !o.ok),
      [],
    );
    await new Promise((r) => setTimeout(r, 300));
    const fdsBefore = fdCount(pid);
    const signsBefore = logCount(ex, 'op=sign');
    const abandonedBefore = logCount(ex, 'paused job was abandoned');
    // Gone 100 ms into a 300 ms signature, while each handshake's job waits for the HSM. HAProxy
    // learns of it when it resumes the job (the answer came: the signature completes, the write
    // fails) or, should it give up on the connection first, frees the paused job (abandoned).
    await Promise.all(Array.from({ length: 8 }, () => abandonHandshake(ex.ecPort, 100)));
    const settled = (): number =>
      logCount(ex, 'op=sign') -
      signsBefore +
      logCount(ex, 'paused job was abandoned') -
      abandonedBefore;
    await waitFor('HAProxy to finish with the 8 handshakes', () => settled() >= 8, 15_000);
    await new Promise((r) => setTimeout(r, 200));
    const fdsAfter = fdCount(pid);
    assert.ok(
      fdsAfter <= fdsBefore,
      `HAProxy had ${fdsBefore} fds before, ${fdsAfter} after 8 abandoned handshakes`,
    );
    assert.deepEqual(await handshake(ex.ecPort, caFile), { ok: true });
    assert.ok(processAlive(pid));
  });

  it('agent killed while handshakes wait: each fails cleanly, HAProxy keeps running and serves again', async () => {
    const pid = await startHaproxy(ex, true);
    assert.deepEqual(await handshake(ex.ecPort, caFile), { ok: true });
    const pausesBefore = logCount(ex, 'async: job paused');
    const pending = Array.from({ length: 6 }, () => handshake(ex.ecPort, caFile, 20_000));
    await waitFor(
      '6 jobs paused',
      () => logCount(ex, 'async: job paused') - pausesBefore >= 6,
      10_000,
    );
    process.kill(readPid(ex.agentPidFile), 'SIGKILL');
    const outcomes = await Promise.all(pending);
    assert.equal(outcomes.filter((o) => o.ok).length, 0, 'a handshake succeeded without an agent');
    assert.ok(processAlive(pid), 'HAProxy died with the agent');
    // The provider said why for each one (the agent's connection broke, or it is not reachable).
    assert.ok(
      logCount(ex, 'result=transport-error') >= 6,
      'the provider logged no transport errors',
    );
    // The agent back (setup.sh starts what is not running): HAProxy serves again, same process.
    await runStep('setup.sh', ['--env-file', ex.envFile]);
    assert.deepEqual(await handshake(ex.ecPort, caFile), { ok: true });
    assert.equal(readPid(ex.haproxyPidFile), pid);
  });

  // Last: it slows the HSM down for good.
  it('HAProxy gives up on handshakes whose jobs wait for the HSM: the abandoned jobs leave no fd', async () => {
    // Every HSM request now takes 2.5 s; HAProxy drops a client after 1 s (timeout client), so it
    // frees each connection while its job is paused (it waits for the wait fd first, then frees
    // the SSL object without resuming the job).
    await runStep('setup.sh', ['--env-file', ex.envFile, '--latency-ms', '2500']);
    const pid = await startHaproxy(ex, true, 1);
    const fdsBefore = fdCount(pid);
    const abandonedBefore = logCount(ex, 'paused job was abandoned');
    const outcomes = await Promise.all(
      Array.from({ length: 4 }, () => handshake(ex.ecPort, caFile, 20_000)),
    );
    assert.equal(outcomes.filter((o) => o.ok).length, 0, 'a handshake outlived timeout client');
    await waitFor(
      'the 4 jobs to be abandoned',
      () => logCount(ex, 'paused job was abandoned') - abandonedBefore >= 4,
      15_000,
    );
    await new Promise((r) => setTimeout(r, 200));
    const fdsAfter = fdCount(pid);
    assert.ok(
      fdsAfter <= fdsBefore,
      `HAProxy had ${fdsBefore} fds before, ${fdsAfter} after 4 abandoned jobs`,
    );
    assert.ok(processAlive(pid), 'HAProxy died freeing paused jobs');
  });
});
