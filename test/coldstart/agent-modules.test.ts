/**
 * Issue 25: the first command from nothing. A user's shell with AZURE_CLI_ACCESS_TOKEN and nothing
 * running: the provider autostarts the agent, which must serve the first signature without
 * loading @azure/identity (a static token needs no credential library), the Key Vault SDK (the
 * key's description is a plain GET) or prom-client (no metrics listener). A management request
 * then loads the SDK on demand. What each agent loaded is recorded by a module hook passed in
 * NODE_OPTIONS, which the autostarted agent inherits with the rest of the user's environment.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import {
  agentsOn,
  defaultSocketIn,
  privateRuntimeDir,
  userShellEnv,
} from '../helpers/autostart-env.js';
import { REPO_ROOT, startEmulator, type RunningEmulator } from '../helpers/emulator.js';
import { PROVIDER_DIR, PROVIDERS, runSync } from '../provider/openssl-env.js';

const HOOK = pathToFileURL(join(REPO_ROOT, 'dist', 'test', 'helpers', 'module-log.js')).href;
const HSM = 'coldhsm';

let emulator: RunningEmulator;
let work: string;
let config: string;

before(async () => {
  work = mkdtempSync(join(tmpdir(), 'akv-coldstart-'));
  emulator = await startEmulator();
  await emulator.keyClient().createKey('ec1', 'EC-HSM', { curve: 'P-256' });
  config = join(work, 'akv.json');
  // No credential in the config: the agent takes AZURE_CLI_ACCESS_TOKEN, as in the quick start.
  writeFileSync(
    config,
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
  writeFileSync(join(work, 'data.txt'), 'the first command of a CI job\n');
});

after(async () => {
  await emulator?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

interface Shell {
  env: NodeJS.ProcessEnv;
  socket: string;
  moduleLog: string;
}

/** A user's shell: a private runtime directory (nothing running), the token, the module hook. */
function shell(name: string): Shell {
  const runtime = privateRuntimeDir(work, name);
  const moduleLog = join(work, `${name}-modules.txt`);
  const env = userShellEnv(
    { config, token: emulator.token, runtime, modulesDir: join(PROVIDER_DIR, 'build') },
    { NODE_OPTIONS: `--import=${HOOK}`, AKV_TEST_MODULE_LOG: moduleLog },
  );
  return { env, socket: defaultSocketIn(runtime), moduleLog };
}

/** Stops the shell's agent (SIGTERM: it writes the module log at exit) and returns what it loaded. */
async function stopAndReadModules(sh: Shell): Promise<string[]> {
  const pids = agentsOn(sh.socket);
  assert.equal(pids.length, 1, `one autostarted agent on ${sh.socket}`);
  for (const pid of pids) process.kill(pid, 'SIGTERM');
  const end = Date.now() + 20_000;
  while (agentsOn(sh.socket).length > 0) {
    if (Date.now() > end) throw new Error('the agent did not stop within 20 s');
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.ok(existsSync(sh.moduleLog), 'the agent recorded its modules');
  return readFileSync(sh.moduleLog, 'utf8').split('\n').filter(Boolean);
}

function loaded(modules: string[], fragment: string): string[] {
  return modules.filter((m) => m.includes(fragment));
}

function openssl(args: string[], sh: Shell): void {
  const r = runSync('openssl', args, sh.env, work);
  assert.equal(r.status, 0, `openssl ${args.join(' ')} failed:\n${r.stderr}`);
}

describe('cold start: what the agent loads', () => {
  it('serves the first signature from nothing without @azure/identity, the Key Vault SDK or prom-client', async () => {
    const sh = shell('first');
    const sig = join(work, 'first.sig');
    const pub = join(work, 'first.pub');
    const key = `managedhsm:${HSM}:ec1`;
    openssl(
      ['dgst', '-sha256', ...PROVIDERS, '-sign', key, '-out', sig, join(work, 'data.txt')],
      sh,
    );
    // The signature is right: verified with the public key the agent described.
    openssl(['pkey', ...PROVIDERS, '-in', key, '-pubout', '-out', pub], sh);
    const v = runSync(
      'openssl',
      ['dgst', '-sha256', '-verify', pub, '-signature', sig, join(work, 'data.txt')],
      sh.env,
      work,
    );
    assert.match(v.stdout, /Verified OK/);
    const modules = await stopAndReadModules(sh);
    // The hook saw the agent's own modules, so an absence below means something.
    assert.ok(
      loaded(modules, '/dist/bundle/agent.cjs').length > 0,
      'the hook recorded the agent (bin/akv runs the bundle)',
    );
    assert.deepEqual(loaded(modules, '/node_modules/@azure/identity/'), [], 'no @azure/identity');
    assert.deepEqual(
      loaded(modules, '/node_modules/@azure/keyvault-keys/'),
      [],
      'no Key Vault SDK',
    );
    assert.deepEqual(loaded(modules, '/node_modules/prom-client/'), [], 'no prom-client');
  });

  it('loads the Key Vault SDK when a management request needs it (listing keys), still no @azure/identity', async () => {
    const sh = shell('listing');
    const r = runSync(
      'openssl',
      ['storeutl', ...PROVIDERS, '-keys', `managedhsm:${HSM}:`],
      sh.env,
      work,
    );
    assert.equal(r.status, 0, `openssl storeutl failed:\n${r.stderr}`);
    assert.match(r.stdout, /ec1/);
    const modules = await stopAndReadModules(sh);
    assert.ok(
      loaded(modules, '/node_modules/@azure/keyvault-keys/').length > 0,
      'the SDK was loaded',
    );
    assert.deepEqual(loaded(modules, '/node_modules/@azure/identity/'), [], 'no @azure/identity');
  });
});
