/**
 * Issue 25: bin/akv compiles the agent (dist/bundle/agent.cjs) with the V8 code cache the build
 * made beside it, and only when that cache was made from the very same file: V8 itself compares
 * only the source's length, so a cache of another build of the same length would run that
 * build's code. Each case copies the installed layout (bin/, dist/bundle/agent.cjs, package.json,
 * with node_modules and the native addon linked) into a temporary root, gives it a cache, starts
 * `akv agent` from it and asks it HELLO: the agent starts and answers whatever the cache, and its
 * start-up log says what became of the cache.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import Module from 'node:module';
import { join } from 'node:path';
import { Script } from 'node:vm';
import { cleanAkvEnv } from '../helpers/dev.js';
import { AKV_BIN, REPO_ROOT } from '../helpers/emulator.js';
import { runSync } from '../provider/openssl-env.js';
import { startAgentFrom } from './bundled-agent.js';

const BUNDLE = join(REPO_ROOT, 'dist', 'bundle');

let work: string;

before(() => {
  work = mkdtempSync(join(tmpdir(), 'akv-code-cache-'));
});

after(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

/** A copy of the installed layout under a new root, its agent.cjs.cache being CACHE (or none). */
function install(name: string, cache: Buffer | undefined): string {
  const root = join(work, name);
  mkdirSync(join(root, 'bin'), { recursive: true });
  mkdirSync(join(root, 'dist', 'bundle'), { recursive: true });
  for (const f of ['bin/akv', 'bin/package.json', 'package.json', 'dist/bundle/agent.cjs'])
    copyFileSync(join(REPO_ROOT, f), join(root, f));
  for (const d of ['node_modules', 'native']) symlinkSync(join(REPO_ROOT, d), join(root, d));
  if (cache) writeFileSync(join(root, 'dist', 'bundle', 'agent.cjs.cache'), cache);
  return root;
}

/** Starts `akv agent` from ROOT, asks it HELLO, stops it; returns its "listening" log line. */
async function startAndPing(root: string): Promise<string> {
  const socket = join(root, 'agent.sock');
  const config = join(root, 'akv.json');
  const log = join(root, 'agent.log');
  writeFileSync(config, JSON.stringify({ vaults: {} }));
  const env = { ...cleanAkvEnv(), AZURE_CLI_ACCESS_TOKEN: 'x', AKV_LOG_FILE: log };
  const agent = await startAgentFrom(join(root, 'bin', 'akv'), socket, ['--config', config], env);
  try {
    const ping = runSync(AKV_BIN, ['ping', '--socket', socket], env, root);
    assert.equal(ping.status, 0, `akv ping: ${ping.stderr}`);
  } finally {
    assert.equal(await agent.stop(), 0, agent.output());
  }
  return (
    readFileSync(log, 'utf8')
      .split('\n')
      .find((l) => l.includes('"akv agent listening"')) ?? ''
  );
}

describe('cold start: the agent compiled with its code cache', () => {
  const built = (): Buffer => readFileSync(join(BUNDLE, 'agent.cjs.cache'));
  const source = (): Buffer => readFileSync(join(BUNDLE, 'agent.cjs'));
  const lengthOf = (b: Buffer): Buffer => {
    const length = Buffer.alloc(4);
    length.writeUInt32LE(b.length);
    return length;
  };
  const cases: Array<{ name: string; cache: () => Buffer | undefined; state: string }> = [
    { name: 'the build made it for this file', cache: built, state: 'used' },
    {
      name: 'made from another build of the file, of the same length',
      cache: () => {
        const other = Buffer.from(built());
        // A byte of its copy of the source, in the middle: V8 alone would take this cache.
        const at = 4 + (source().length >> 1);
        other[at] = (other[at] ?? 0) ^ 0x01;
        return other;
      },
      state: 'stale',
    },
    {
      name: 'for this file but not V8 code (V8 rejects it)',
      cache: () => Buffer.concat([lengthOf(source()), source(), Buffer.alloc(4096, 0x5a)]),
      state: 'rejected',
    },
    {
      name: 'shorter than its header',
      cache: () => Buffer.from('akv'),
      state: 'stale',
    },
    { name: 'no cache', cache: () => undefined, state: 'absent' },
  ];
  for (const bundle of ['agent.cjs', 'akv.cjs'])
    it(`the build made ${bundle}.cache for ${bundle}, for this Node, with no path of the tree`, () => {
      const file = join(BUNDLE, bundle);
      const bytes = readFileSync(file);
      const cache = readFileSync(`${file}.cache`);
      const header = 4 + bytes.length;
      assert.equal(cache.readUInt32LE(0), bytes.length);
      assert.ok(cache.subarray(4, header).equals(bytes), 'it holds the source it was made from');
      // As bin/akv compiles it (the test runs the same node, with no V8 flags).
      const script = new Script(Module.wrap(bytes.toString('utf8')), {
        filename: `dist/bundle/${bundle}`,
        cachedData: cache.subarray(header),
      });
      assert.equal(script.cachedDataRejected, false, 'V8 accepts it');
      // V8 keeps the file name a cache was made under: a path would name the build tree.
      assert.equal(cache.subarray(header).includes(Buffer.from(REPO_ROOT)), false);
    });
  for (const [i, c] of cases.entries())
    it(`${c.name}: the agent starts and answers, code_cache "${c.state}"`, async () => {
      const line = await startAndPing(install(`case-${i}`, c.cache()));
      assert.match(line, new RegExp(`"code_cache":"${c.state}"`), line);
    });
});
