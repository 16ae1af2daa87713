/**
 * The provider's C tests inside `npm test`: `make -C provider check` builds the module and runs
 * the unit tests (golden protocol vectors shared with the TypeScript codec, key-reference parser,
 * signature helpers, connection pool under 8 threads / fork / restart / garbage) in a plain and
 * an AddressSanitizer + UBSan build; the fuzz target for the decoders runs for a while too.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { makeProvider, PROVIDER_DIR } from './openssl-env.js';

describe('provider C tests', () => {
  it('make check: unit tests pass in the plain and the ASan/UBSan build', () => {
    const r = spawnSync('make', ['-s', '-C', PROVIDER_DIR, 'check'], {
      encoding: 'utf8',
      timeout: 300_000,
    });
    const out = `${r.stdout}${r.stderr}`;
    assert.equal(r.status, 0, out);
    const summary = /provider-c-tests: (\d+) passed, (\d+) failed/.exec(out);
    assert.ok(summary, `no summary line in:\n${out}`);
    assert.ok(Number(summary[1]) >= 40, `only ${summary[1]} C tests ran`);
    assert.equal(summary[2], '0');
    assert.match(out, /ok - frame: golden vectors/);
    assert.match(out, /ok - conn: 8 threads share the pool/);
    assert.match(out, /ok - conn: forked child never uses the parent's connection \(atfork\)/);
    assert.match(out, /ok - async: 24 jobs of one thread wait at once/);
    assert.match(out, /ok - async: an abandoned job leaks no fd and no connection/);
    assert.doesNotMatch(out, /ERROR: AddressSanitizer|runtime error:/);
  });

  it('only OSSL_provider_init is exported from akv_provider.so', () => {
    makeProvider('all');
    const r = spawnSync(
      'nm',
      ['-D', '--defined-only', join(PROVIDER_DIR, 'build', 'akv_provider.so')],
      {
        encoding: 'utf8',
      },
    );
    assert.equal(r.status, 0, r.stderr);
    const symbols = r.stdout
      .split('\n')
      .map((l) => l.trim().split(/\s+/))
      .filter((f) => f.length === 3 && /^[TDBRVW]$/.test(f[1] ?? ''))
      .map((f) => f[2]);
    assert.deepEqual(symbols, ['OSSL_provider_init']);
  });

  it('make fuzz: the decoder fuzz target survives a mutation run', () => {
    makeProvider('fuzz');
    const bin = join(PROVIDER_DIR, 'build', 'fuzz_decoders');
    const isLibFuzzer = spawnSync(bin, ['-help=1'], { encoding: 'utf8' }).stderr.includes(
      'libFuzzer',
    );
    const args = isLibFuzzer ? ['-runs=200000'] : ['-iterations=200000'];
    const r = spawnSync(bin, args, { encoding: 'utf8', timeout: 300_000 });
    assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
    assert.equal(r.signal, null);
  });
});
