/**
 * An agent whose installed files are replaced under it (what dpkg does before postinst restarts
 * it: docs/deployment.md, "Upgrades") never loads the new version's code (src/installation.ts).
 * The agent runs from a copy of the checkout (stageAkv) on a socket a holder keeps across agents,
 * as systemd does; "installing a new version" is what dpkg does to package.json: a new file with a
 * higher version renamed into place. Then:
 *  - a module the agent had already loaded keeps serving (a second key listing: no import);
 *  - a module it had not loaded (the Key Vault SDK, loaded by the first listing) is refused with
 *    UNAVAILABLE naming both versions, and the agent stops cleanly (exit 0, drained);
 *  - the next agent is the new version and lists keys.
 * Without the guard the old agent would import the SDK from the replaced tree and answer.
 */
import assert from 'node:assert/strict';
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { AgentClient } from '../../src/client/agent-client.js';
import { AkvError } from '../../src/errors.js';
import { emulatorConfig, startEmulator, type RunningEmulator } from '../helpers/emulator.js';
import { holdSocket, type SocketHolder } from '../helpers/socket-holder.js';
import { stageAkv, type StagedAkv } from '../helpers/stage.js';

const HSM = 'replacedhsm';

describe('an agent whose installation is replaced under it', () => {
  let emulator: RunningEmulator;
  let staged: StagedAkv;
  let holder: SocketHolder;
  let running: number | undefined;
  const pkgFile = (): string => join(staged.root, 'package.json');
  const version = (): string =>
    (JSON.parse(readFileSync(pkgFile(), 'utf8')) as { version: string }).version;

  /** dpkg's way: the new file is written beside the old one and renamed over it. */
  const install = (newVersion: string): void => {
    const pkg = JSON.parse(readFileSync(pkgFile(), 'utf8')) as { version: string };
    pkg.version = newVersion;
    writeFileSync(`${pkgFile()}.dpkg-new`, `${JSON.stringify(pkg, null, 2)}\n`);
    renameSync(`${pkgFile()}.dpkg-new`, pkgFile());
  };
  const call = async <T>(f: (c: AgentClient) => Promise<T>): Promise<T> => {
    const client = new AgentClient(holder.path);
    try {
      return await f(client);
    } finally {
      await client.close();
    }
  };

  before(async () => {
    emulator = await startEmulator();
    await emulator.keyClient().createKey('replaced-ec', 'EC-HSM', { curve: 'P-256' });
    staged = stageAkv();
    const config = join(staged.root, 'agent.json');
    writeFileSync(
      config,
      JSON.stringify({
        socket: join(staged.root, 'unused.sock'),
        ...emulatorConfig(emulator, HSM),
      }),
    );
    const env: NodeJS.ProcessEnv = { ...process.env };
    for (const name of ['AKV_CONFIG', 'AKV_AGENT_SOCKET', 'AKV_LOG_FILE', 'AKV_LOG_LEVEL'])
      delete env[name];
    holder = await holdSocket(
      join(staged.root, 'agent.sock'),
      [staged.bin, 'agent', '--config', config],
      env,
    );
  });
  after(async () => {
    if (running !== undefined) {
      try {
        process.kill(running, 'SIGTERM');
        await holder.exited(running);
      } catch {
        /* already gone */
      }
    }
    await holder?.stop();
    await emulator?.stop();
    staged?.remove();
  });

  it('keeps what it loaded, refuses to load the new version, stops; the next agent is the new one', async () => {
    const original = version();
    const first = await holder.startAgent();
    running = first;
    assert.deepEqual(await call((c) => c.list(HSM)), ['replaced-ec'], 'loads the SDK');
    install(`${original}+second`);
    assert.deepEqual(
      await call((c) => c.list(HSM)),
      ['replaced-ec'],
      'a module already loaded keeps serving after the files changed',
    );
    assert.equal((await call((c) => c.hello())).agentVersion, original);
    process.kill(first, 'SIGTERM');
    assert.equal(await holder.exited(first), 0);

    const second = await holder.startAgent();
    running = second;
    assert.equal((await call((c) => c.hello())).agentVersion, `${original}+second`);
    install(`${original}+third`);
    const refused = await call((c) => c.list(HSM)).then(
      (names) => assert.fail(`listed ${names.join(',')} with the replaced tree's SDK`),
      (err: unknown) => err,
    );
    assert.ok(refused instanceof AkvError, String(refused));
    assert.equal(refused.code, 'UNAVAILABLE');
    assert.equal(
      refused.message,
      `akv ${original}+third was installed in place of this running agent (akv ${original}+second) before it loaded the Key Vault SDK; it does not load another version's code`,
    );
    assert.match(refused.hint ?? '', /the next one runs the new version/);
    assert.equal(await holder.exited(second), 0, 'the agent stops cleanly');
    running = undefined;
    assert.match(holder.output(), /akv agent stopped/);

    const third = await holder.startAgent();
    running = third;
    assert.equal((await call((c) => c.hello())).agentVersion, `${original}+third`);
    assert.deepEqual(await call((c) => c.list(HSM)), ['replaced-ec']);
  });
});
