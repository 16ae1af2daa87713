#!/usr/bin/env node
// The bundles bin/akv runs (issue 25, docs/performance.md "Cold start"), made by `npm run build`
// from tsc's output (dist/src) with esbuild, into dist/bundle/:
//   agent.cjs   `akv agent` (src/cli/agent-main.ts): one CommonJS file holding all of the agent's
//               code;
//   akv.cjs     every other command (src/cli/main.ts), likewise;
//   worker.js   the emulator's crypto worker (an ES module), which src/emulator/crypto/pool.ts
//               finds beside akv.cjs.
// CommonJS because bin/akv compiles each file with its V8 code cache (scripts/code-cache.mjs makes
// agent.cjs.cache and akv.cjs.cache) and because Node's ES module loader costs a start more than
// it saves. What a command or the agent loads only when needed (a command's module, the undici
// pool, the metrics modules, the SDK, @azure/identity, prom-client) is required inside esbuild's
// lazy module initialisers, when first used: dynamic import() is turned into them (supported:
// dynamic-import false), so an unused module is compiled but never run.
// The Azure SDK, @azure/identity, prom-client and undici stay in node_modules and are loaded
// when needed, as in the tree (what loads them lazily is src/azure/clients.ts, credentials.ts,
// src/agent/metrics-sink.ts, warming-http.ts). pino and @noble/curves are bundled.
// Source maps (tsc's, composed by esbuild) name the TypeScript sources: bin/akv turns them on for
// stack traces. Every bundled file sits two directories below the root, like dist/src/*.js
// (src/install-root.ts relies on it). Options: --quiet.
import { build } from 'esbuild';
import { rmSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const src = join(root, 'dist', 'src');
const out = join(root, 'dist', 'bundle');
const quiet = process.argv.includes('--quiet');

const common = {
  absWorkingDir: root,
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  sourcemap: 'linked',
  // File and line are what a stack trace needs; the sources are in the repository.
  sourcesContent: false,
  external: ['@azure/*', 'prom-client', 'undici'],
  // CommonJS packages bundled into ES modules (pino) call require() for Node's own modules.
  banner: {
    js: "import { createRequire as __akvCreateRequire } from 'node:module'; const require = __akvCreateRequire(import.meta.url);",
  },
  logLevel: 'warning',
  metafile: true,
};

rmSync(out, { recursive: true, force: true });
const commonJs = {
  ...common,
  format: 'cjs',
  outExtension: { '.js': '.cjs' },
  outdir: out,
  // import.meta.url (src/install-root.ts, installation.ts, peer-credentials.ts, the emulator's
  // worker pool) from the file bin/akv compiled, as CommonJS names it.
  define: { 'import.meta.url': '__akvImportMetaUrl' },
  banner: {
    js: "const __akvImportMetaUrl = require('node:url').pathToFileURL(__filename).href;",
  },
  supported: { 'dynamic-import': false },
};
const results = await Promise.all([
  build({ ...commonJs, entryPoints: [{ in: join(src, 'cli', 'agent-main.js'), out: 'agent' }] }),
  build({ ...commonJs, entryPoints: [{ in: join(src, 'cli', 'main.js'), out: 'akv' }] }),
  build({
    ...common,
    entryPoints: [{ in: join(src, 'emulator', 'crypto', 'worker.js'), out: 'worker' }],
    outdir: out,
  }),
]);

if (!quiet)
  console.log(
    `bundle: ${results
      .flatMap((r) => Object.entries(r.metafile.outputs))
      .filter(([, o]) => o.entryPoint)
      .map(([f, o]) => `${basename(f)} (${o.entryPoint}) ${(o.bytes / 1024).toFixed(0)} KiB`)
      .join(', ')}`,
  );
