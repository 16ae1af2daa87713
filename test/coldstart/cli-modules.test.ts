/**
 * Issue 25: `akv` commands that need no Azure SDK do not load it: `--version`, `--help`, `ping`,
 * `keyref`, `sign --help`. bin/akv runs the bundle (dist/bundle/akv.cjs, one file), which runs
 * only the command's own module (each in a lazy initialiser); `--help` lists the summaries from
 * src/cli/command-list.ts, which must match each command's own.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { COMMANDS } from '../../src/cli/command-list.js';
import type { Command } from '../../src/cli/command.js';
import { cleanAkvEnv } from '../helpers/dev.js';
import { AKV_BIN, REPO_ROOT } from '../helpers/emulator.js';
import { bundleFilesLoaded } from './bundle-files.js';

const HOOK = pathToFileURL(join(REPO_ROOT, 'dist', 'test', 'helpers', 'module-log.js')).href;
let work: string;
let runs = 0;

before(() => {
  work = mkdtempSync(join(tmpdir(), 'akv-coldstart-cli-'));
});
after(() => rmSync(work, { recursive: true, force: true }));

/** Runs `akv ARGS` with the module hook; returns its status, output and the modules it loaded. */
function akv(args: string[]): {
  status: number | null;
  stdout: string;
  stderr: string;
  modules: string[];
} {
  const log = join(work, `modules-${++runs}.txt`);
  const r = spawnSync(AKV_BIN, args, {
    cwd: work,
    env: {
      ...cleanAkvEnv(),
      // Nothing answers here: ping must fail fast, as it does when no agent runs.
      AKV_AGENT_SOCKET: join(work, 'none', 'agent.sock'),
      NODE_OPTIONS: `--import=${HOOK}`,
      AKV_TEST_MODULE_LOG: log,
    },
    timeout: 60_000,
  });
  const modules = existsSync(log) ? readFileSync(log, 'utf8').split('\n').filter(Boolean) : [];
  return { status: r.status, stdout: r.stdout.toString(), stderr: r.stderr.toString(), modules };
}

function assertNoAzure(modules: string[], what: string): void {
  assert.ok(
    modules.some((m) => m.endsWith('/dist/bundle/akv.cjs')),
    `${what}: the hook recorded the CLI entry point (bin/akv runs the bundle)`,
  );
  assert.deepEqual(
    modules.filter((m) => m.includes('/dist/src/')),
    [],
    `${what}: nothing of the tree (dist/src)`,
  );
  assert.deepEqual(bundleFilesLoaded(modules), ['akv.cjs'], `${what}: only dist/bundle/akv.cjs`);
  assert.deepEqual(
    modules.filter((m) => m.includes('/node_modules/@azure/')),
    [],
    `${what} loaded the Azure SDK`,
  );
}

describe('cold start: what the CLI loads', () => {
  it('lists in --help the summary each command module gives', async () => {
    for (const [name, summary] of Object.entries(COMMANDS)) {
      const mod = (await import(`../../src/cli/commands/${name}.js`)) as { default: Command };
      assert.equal(
        summary,
        mod.default.summary,
        `the summary of ${name} in src/cli/command-list.ts`,
      );
    }
  });

  it('akv --version and --help load no Azure SDK', () => {
    const version = akv(['--version']);
    assert.equal(version.status, 0);
    assert.match(version.stdout, /^akv \d+\.\d+\.\d+/);
    assertNoAzure(version.modules, '--version');
    const help = akv(['--help']);
    assert.equal(help.status, 0);
    for (const name of Object.keys(COMMANDS))
      assert.match(help.stdout, new RegExp(`^  ${name} `, 'm'));
    assertNoAzure(help.modules, '--help');
  });

  it('akv ping, keyref and sign --help load no Azure SDK', () => {
    const ping = akv(['ping']);
    assert.notEqual(ping.status, 0, 'no agent runs here');
    assert.match(ping.stderr, /agent/);
    assertNoAzure(ping.modules, 'ping');
    const out = join(work, 'key.pem');
    const keyref = akv(['keyref', 'managedhsm:somehsm:somekey', '--out', out]);
    assert.equal(keyref.status, 0, keyref.stderr);
    assert.match(readFileSync(out, 'utf8'), /BEGIN/);
    assertNoAzure(keyref.modules, 'keyref');
    const sign = akv(['sign', '--help']);
    assert.equal(sign.status, 0);
    assertNoAzure(sign.modules, 'sign --help');
  });
});
