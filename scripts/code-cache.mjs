#!/usr/bin/env node
// Makes dist/bundle/agent.cjs.cache and akv.cjs.cache, the V8 code caches bin/akv compiles the
// bundles with (issue 25, docs/performance.md "Cold start"): `npm run build` runs it after the
// bundle and the native addon. It starts the bundled agent once as a user would (bin/akv, with the
// `node` on PATH that runs it later: a cache is valid only for the V8 and flags that made it),
// runs `akv ping` against it (HELLO and PING), and stops it; each process writes the cache of
// everything it compiled as it exits (AKV_WRITE_CODE_CACHE). No HSM is contacted. Options: --quiet.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { setTimeout, clearTimeout } from 'node:timers';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const akv = join(root, 'bin', 'akv');
const agentCache = join(root, 'dist', 'bundle', 'agent.cjs.cache');
const cliCache = join(root, 'dist', 'bundle', 'akv.cjs.cache');
const quiet = process.argv.includes('--quiet');
const START_TIMEOUT_MS = 30_000;

function fail(message) {
  console.error(`code-cache: ${message}`);
  process.exit(1);
}

const dir = mkdtempSync(join(tmpdir(), 'akv-code-cache-'));
const socket = join(dir, 'agent.sock');
const config = join(dir, 'akv.json');
writeFileSync(config, JSON.stringify({ vaults: {} }));
// The user's settings must not reach this agent; neither may V8 flags in NODE_OPTIONS (a cache is
// rejected under other flags), nor NODE_EXTRA_CA_CERTS (it costs the start, not the cache).
const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: dir, AZURE_CLI_ACCESS_TOKEN: 'x' };
for (const f of [agentCache, cliCache]) rmSync(f, { force: true });

const agent = spawn(akv, ['agent', '--socket', socket, '--config', config], {
  env: { ...env, AKV_LOG_FILE: join(dir, 'agent.log'), AKV_WRITE_CODE_CACHE: agentCache },
  stdio: ['ignore', 'pipe', 'pipe'],
});
let output = '';
agent.stdout.on('data', (d) => (output += d));
agent.stderr.on('data', (d) => (output += d));
const exited = new Promise((resolve) =>
  agent.once('exit', (code, signal) => resolve({ code, signal })),
);
const timer = setTimeout(() => agent.kill('SIGKILL'), START_TIMEOUT_MS);
try {
  const listening = await Promise.race([
    new Promise((resolve) =>
      agent.stdout.on('data', () => output.includes('akv agent listening on') && resolve(true)),
    ),
    exited.then(() => false),
  ]);
  if (!listening) fail(`the bundled agent did not start:\n${output}`);
  const ping = spawnSync(akv, ['ping', '--socket', socket, '--quiet'], {
    env: { ...env, AKV_WRITE_CODE_CACHE: cliCache },
    encoding: 'utf8',
  });
  if (ping.status !== 0) fail(`akv ping did not reach the bundled agent:\n${ping.stderr}`);
  agent.kill('SIGTERM');
  const { code, signal } = await exited;
  if (code !== 0) fail(`the bundled agent exited with ${code ?? signal}:\n${output}`);
  for (const f of [agentCache, cliCache]) {
    if (!existsSync(f)) fail(`${f} was not written`);
    if (!quiet) console.log(`code-cache: ${f} (${statSync(f).size} bytes)`);
  }
} finally {
  clearTimeout(timer);
  agent.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
}
