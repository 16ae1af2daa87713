/**
 * Issue 25: bin/akv runs the bundle (scripts/bundle.mjs). The agent started from it, as an
 * installed `akv agent` is, answers HELLO and signs with a static token having loaded its own code
 * from dist/bundle/agent.cjs alone, compiled with the code cache the build made (its start-up log
 * says so), and nothing of the tree (dist/src), @azure/identity, the Key Vault SDK or prom-client.
 * The signature is checked with the key's public half. What the agent loaded is recorded by the
 * module hook in NODE_OPTIONS.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { cleanAkvEnv } from '../helpers/dev.js';
import { AKV_BIN, REPO_ROOT, startEmulator, type RunningEmulator } from '../helpers/emulator.js';
import { PROVIDER_DIR, PROVIDERS, runSync } from '../provider/openssl-env.js';
import { bundleFilesLoaded } from './bundle-files.js';
import { startAgentFrom } from './bundled-agent.js';

const HOOK = pathToFileURL(join(REPO_ROOT, 'dist', 'test', 'helpers', 'module-log.js')).href;
const HSM = 'bundlehsm';

let emulator: RunningEmulator;
let work: string;

before(async () => {
  work = mkdtempSync(join(tmpdir(), 'akv-coldstart-bundle-'));
  emulator = await startEmulator();
  await emulator.keyClient().createKey('ec1', 'EC-HSM', { curve: 'P-256' });
  writeFileSync(
    join(work, 'akv.json'),
    JSON.stringify({
      vaults: {
        [HSM]: {
          endpoint: emulator.url,
          caFile: emulator.caFile,
          disableChallengeResourceVerification: true,
        },
      },
    }),
  );
  writeFileSync(join(work, 'data.txt'), 'signed by the bundled agent\n');
});

after(async () => {
  await emulator?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('cold start: the bundle', () => {
  it('the agent started from the bundle answers HELLO and signs with a static token, loading only its bundle', async () => {
    const socket = join(work, 'agent.sock');
    const moduleLog = join(work, 'agent-modules.txt');
    const env: NodeJS.ProcessEnv = {
      ...cleanAkvEnv(),
      AKV_CONFIG: join(work, 'akv.json'),
      AKV_AGENT_SOCKET: socket,
      AKV_AGENT_AUTOSTART: '0',
      AZURE_CLI_ACCESS_TOKEN: emulator.token,
      OPENSSL_MODULES: join(PROVIDER_DIR, 'build'),
      AKV_LOG_FILE: join(work, 'agent.log'),
    };
    delete env.OPENSSL_CONF;
    const agent = await startAgentFrom(AKV_BIN, socket, [], {
      ...env,
      NODE_OPTIONS: `--import=${HOOK}`,
      AKV_TEST_MODULE_LOG: moduleLog,
    });
    try {
      // HELLO: `akv ping` exits 0 only when the agent answers it.
      const ping = runSync(AKV_BIN, ['ping'], env, work);
      assert.equal(ping.status, 0, `akv ping: ${ping.stderr}`);
      const key = `managedhsm:${HSM}:ec1`;
      const sig = join(work, 'data.sig');
      const pub = join(work, 'ec1.pub');
      const data = join(work, 'data.txt');
      for (const args of [
        ['dgst', '-sha256', ...PROVIDERS, '-sign', key, '-out', sig, data],
        ['pkey', ...PROVIDERS, '-in', key, '-pubout', '-out', pub],
      ]) {
        const r = runSync('openssl', args, env, work);
        assert.equal(r.status, 0, `openssl ${args.join(' ')}:\n${r.stderr}`);
      }
      const verify = runSync(
        'openssl',
        ['dgst', '-sha256', '-verify', pub, '-signature', sig, data],
        env,
        work,
      );
      assert.match(verify.stdout, /Verified OK/);
    } finally {
      assert.equal(await agent.stop(), 0, agent.output());
    }
    assert.ok(existsSync(moduleLog), 'the agent recorded its modules');
    const modules = readFileSync(moduleLog, 'utf8').split('\n').filter(Boolean);

    // One file holds the whole agent: what it loads later (the undici pool once idle, the metrics
    // modules with a metrics listener) is inside it, initialised when first used.
    assert.deepEqual(
      bundleFilesLoaded(modules),
      ['agent.cjs'],
      'the agent ran dist/bundle/agent.cjs only',
    );
    assert.deepEqual(
      modules.filter((m) => m.includes('/dist/src/')),
      [],
      'nothing of the tree (dist/src)',
    );
    const listening = readFileSync(env.AKV_LOG_FILE ?? '', 'utf8')
      .split('\n')
      .find((l) => l.includes('"akv agent listening"'));
    assert.match(listening ?? '', /"code_cache":"used"/, "compiled with the build's code cache");
    for (const pkg of ['@azure/identity', '@azure/keyvault-keys', 'prom-client'])
      assert.deepEqual(
        modules.filter((m) => m.includes(`/node_modules/${pkg}/`)),
        [],
        `no ${pkg}`,
      );
  });
});
