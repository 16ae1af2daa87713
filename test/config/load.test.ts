import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { defaultSocketPath, loadConfig } from '../../src/config/load.js';
import { AkvError } from '../../src/errors.js';

const dir = mkdtempSync(join(tmpdir(), 'akv-config-test-'));
after(() => rmSync(dir, { recursive: true, force: true }));

let n = 0;
function writeConfig(content: unknown): string {
  const file = join(dir, `config-${n++}.json`);
  writeFileSync(file, typeof content === 'string' ? content : JSON.stringify(content));
  return file;
}

/** An environment with none of the user's own settings, so the tests see only what they set. */
function cleanEnv(extra: Record<string, string> = {}): Record<string, string> {
  return {
    HOME: dir,
    XDG_CONFIG_HOME: join(dir, 'xdg-config'),
    XDG_RUNTIME_DIR: join(dir, 'run'),
    ...extra,
  };
}

function expectConfigError(content: unknown, ...fragments: string[]): void {
  const file = writeConfig(content);
  assert.throws(
    () => loadConfig(file, cleanEnv()),
    (err: unknown) => {
      assert.ok(err instanceof AkvError, `expected AkvError, got ${String(err)}`);
      assert.equal(err.code, 'BAD_REQUEST');
      assert.ok(err.message.includes(file), `message names the file: ${err.message}`);
      for (const f of fragments)
        assert.ok(err.message.includes(f), `message mentions ${f}: ${err.message}`);
      return true;
    },
  );
}

/** An installed akv (the Debian package) has a system-wide config that loadConfig rightly reads. */
const SYSTEM_CONFIG = '/etc/akv/config.json';

describe('loadConfig', () => {
  const systemConfig = existsSync(SYSTEM_CONFIG) && `${SYSTEM_CONFIG} exists on this machine`;
  it('gives defaults when no file exists anywhere', { skip: systemConfig }, () => {
    const c = loadConfig(undefined, cleanEnv());
    assert.equal(c.path, undefined);
    assert.equal(c.socket, join(dir, 'run', 'akv', 'agent.sock'));
    assert.equal(c.deadlineMs, 10_000);
    assert.deepEqual(c.credential, { type: 'default' });
    assert.equal(c.log.level, 'info');
    assert.deepEqual(c.vaults, {});
    assert.equal(c.retry?.maxRetries, 5);
  });

  it('reads a full file and resolves relative paths against its directory', () => {
    const file = writeConfig({
      socket: 'agent.sock',
      socketGroup: 'www-data',
      vaults: {
        myhsm: {
          endpoint: 'https://127.0.0.1:8443/',
          caFile: 'ca.pem',
          disableChallengeResourceVerification: true,
        },
      },
      credential: { type: 'static', token: 'abc' },
      deadlineMs: 2500,
      keyCacheTtlMs: 1000,
      log: { level: 'debug', file: 'agent.log' },
      metricsListen: '127.0.0.1:9464',
      retry: { maxRetries: 2 },
    });
    const c = loadConfig(file, cleanEnv());
    assert.equal(c.path, file);
    assert.equal(c.socket, join(dir, 'agent.sock'));
    assert.equal(c.socketGroup, 'www-data');
    assert.deepEqual(c.vaults.myhsm, {
      endpoint: 'https://127.0.0.1:8443',
      caFile: join(dir, 'ca.pem'),
      disableChallengeResourceVerification: true,
    });
    assert.deepEqual(c.credential, { type: 'static', token: 'abc' });
    assert.equal(c.deadlineMs, 2500);
    assert.equal(c.keyCacheTtlMs, 1000);
    assert.deepEqual(c.log, { level: 'debug', file: join(dir, 'agent.log') });
    assert.equal(c.metricsListen, '127.0.0.1:9464');
    assert.deepEqual(c.retry, {
      maxRetries: 2,
      baseDelayMs: 250,
      maxDelayMs: 8000,
      budgetPercent: 20,
      budgetMinRetries: 10,
    });
  });

  it('finds the file through AKV_CONFIG, then XDG_CONFIG_HOME', () => {
    const viaEnv = writeConfig({ deadlineMs: 1234 });
    assert.equal(loadConfig(undefined, cleanEnv({ AKV_CONFIG: viaEnv })).deadlineMs, 1234);
    const xdg = join(dir, 'xdg');
    const akvDir = join(xdg, 'akv');
    mkdirSync(akvDir, { recursive: true });
    writeFileSync(join(akvDir, 'config.json'), JSON.stringify({ deadlineMs: 4321 }));
    assert.equal(loadConfig(undefined, cleanEnv({ XDG_CONFIG_HOME: xdg })).deadlineMs, 4321);
  });

  it('an explicit path or AKV_CONFIG that does not exist is an error, not a silent default', () => {
    assert.throws(() => loadConfig(join(dir, 'missing.json'), cleanEnv()), /does not exist/);
    assert.throws(
      () => loadConfig(undefined, cleanEnv({ AKV_CONFIG: join(dir, 'missing.json') })),
      /AKV_CONFIG/,
    );
  });

  it('environment variables override the file', () => {
    const file = writeConfig({ socket: '/x/agent.sock', log: { level: 'warn', file: '/x/log' } });
    const c = loadConfig(
      file,
      cleanEnv({ AKV_AGENT_SOCKET: '/y/s.sock', AKV_LOG_FILE: '/y/log', AKV_LOG_LEVEL: 'DEBUG' }),
    );
    assert.equal(c.socket, '/y/s.sock');
    assert.deepEqual(c.log, { level: 'debug', file: '/y/log' });
    assert.throws(
      () => loadConfig(file, cleanEnv({ AKV_LOG_LEVEL: 'loud' })),
      /AKV_LOG_LEVEL=loud/,
    );
  });

  it("AKV_LOG_LEVEL takes the original provider's numbers: 0 error, 1 info, 2 debug, 3 (and more) trace", () => {
    const file = writeConfig({});
    const level = (v: string): string => loadConfig(file, cleanEnv({ AKV_LOG_LEVEL: v })).log.level;
    assert.deepEqual(['0', '1', '2', '3', '5'].map(level), [
      'error',
      'info',
      'debug',
      'trace',
      'trace',
    ]);
    assert.throws(() => level('-1'), /AKV_LOG_LEVEL=-1 is not a log level/);
  });

  it("an autostarted agent ignores the provider's AKV_LOG_FILE and only warns about a bad level", () => {
    const file = writeConfig({ log: { file: '/x/agent.log' } });
    const c = loadConfig(
      file,
      cleanEnv({ AKV_LOG_FILE: '/y/provider.log', AKV_LOG_LEVEL: 'loud' }),
      {
        autostarted: true,
      },
    );
    assert.deepEqual(c.log, { level: 'info', file: '/x/agent.log' });
    assert.match(c.warnings?.join('\n') ?? '', /AKV_LOG_LEVEL=loud is not a log level/);
  });

  it('static credential without a token uses the emulator token "dev"', () => {
    const c = loadConfig(writeConfig({ credential: { type: 'static' } }), cleanEnv());
    assert.deepEqual(c.credential, { type: 'static', token: 'dev' });
  });

  it('rejects malformed files with the file and the field named', () => {
    expectConfigError('{ not json', 'not valid JSON');
    expectConfigError([], 'must be a JSON object');
    expectConfigError({ sokcet: '/tmp/a' }, '"sokcet"', 'not a known setting');
    expectConfigError({ socket: 5 }, '"socket"', 'string');
    expectConfigError({ socket: '' }, '"socket"');
    expectConfigError({ deadlineMs: '10s' }, '"deadlineMs"', 'integer');
    expectConfigError({ deadlineMs: 1.5 }, '"deadlineMs"');
    expectConfigError({ deadlineMs: 0 }, '"deadlineMs"');
    expectConfigError({ keyCacheTtlMs: -1 }, '"keyCacheTtlMs"');
    expectConfigError({ vaults: [] }, '"vaults"', 'object');
    expectConfigError(
      { vaults: { 'bad_name!': {} } },
      '"vaults.bad_name!"',
      'valid HSM/vault name',
    );
    expectConfigError({ vaults: { myhsm: { endpoint: 'not a url' } } }, '"vaults.myhsm.endpoint"');
    expectConfigError(
      { vaults: { myhsm: { endpoint: 'http://127.0.0.1:1' } } },
      '"vaults.myhsm.endpoint"',
      'https',
    );
    expectConfigError({ vaults: { myhsm: { caFile: true } } }, '"vaults.myhsm.caFile"');
    expectConfigError(
      { vaults: { myhsm: { url: 'https://x' } } },
      '"vaults.myhsm.url"',
      'not a known setting',
    );
    expectConfigError(
      { vaults: { myhsm: { disableChallengeResourceVerification: 'yes' } } },
      'disableChallengeResourceVerification',
      'true or false',
    );
    expectConfigError({ credential: { type: 'cli' } }, '"credential.type"', '"default", "static"');
    expectConfigError({ credential: { type: 'default', token: 'x' } }, '"credential.token"');
    expectConfigError({ credential: { type: 'static', secret: 'x' } }, '"credential.secret"');
    expectConfigError({ log: { level: 'loud' } }, '"log.level"');
    expectConfigError({ log: { file: 3 } }, '"log.file"');
    expectConfigError({ log: { lvl: 'info' } }, '"log.lvl"');
    expectConfigError({ metricsListen: 'everywhere' }, '"metricsListen"', 'HOST:PORT');
    expectConfigError({ retry: { maxRetries: 100 } }, '"retry.maxRetries"');
    expectConfigError({ retry: { tries: 1 } }, '"retry.tries"');
    expectConfigError({ retry: { budgetPercent: 150 } }, '"retry.budgetPercent"', '0 to 100');
    expectConfigError({ retry: { budgetMinRetries: -1 } }, '"retry.budgetMinRetries"');
  });

  it('reads the agent limits, with defaults, and refuses values outside their range', () => {
    const defaults = loadConfig(undefined, cleanEnv());
    assert.deepEqual(
      [
        defaults.maxClients,
        defaults.clientIdleTimeoutMs,
        defaults.maxInFlight,
        defaults.maxInFlightPerClient,
      ],
      [1024, 300_000, 512, 1024],
    );
    const c = loadConfig(
      writeConfig({
        maxClients: 64,
        clientIdleTimeoutMs: 0,
        maxInFlight: 32,
        maxInFlightPerClient: 2048,
      }),
      cleanEnv(),
    );
    assert.deepEqual(
      [c.maxClients, c.clientIdleTimeoutMs, c.maxInFlight, c.maxInFlightPerClient],
      [64, 0, 32, 2048],
    );
    expectConfigError({ maxClients: 0 }, '"maxClients"', 'integer from 1');
    expectConfigError({ maxClients: '1024' }, '"maxClients"', 'integer');
    expectConfigError({ maxInFlight: 1.5 }, '"maxInFlight"', 'integer');
    expectConfigError({ maxInFlight: 0 }, '"maxInFlight"');
    expectConfigError({ maxInFlightPerClient: -1 }, '"maxInFlightPerClient"');
    expectConfigError({ clientIdleTimeoutMs: 500 }, '"clientIdleTimeoutMs"', '0 (never)');
    expectConfigError({ clientIdleTimeoutMs: '5m' }, '"clientIdleTimeoutMs"', 'integer');
  });

  it('errors never echo the value of a credential token', () => {
    const file = writeConfig({ credential: { type: 'default', token: 'SECRET-TOKEN-VALUE' } });
    assert.throws(
      () => loadConfig(file, cleanEnv()),
      (err: unknown) => err instanceof AkvError && !err.message.includes('SECRET-TOKEN-VALUE'),
    );
  });
});

describe('defaultSocketPath', () => {
  it('uses XDG_RUNTIME_DIR when set, else a per-user or root location', () => {
    assert.equal(
      defaultSocketPath({ XDG_RUNTIME_DIR: '/run/user/1000' }),
      '/run/user/1000/akv/agent.sock',
    );
    const uid = process.getuid?.() ?? 0;
    assert.equal(
      defaultSocketPath({}),
      uid === 0 ? '/run/akv/agent.sock' : `/tmp/akv-${uid}/agent.sock`,
    );
  });
});
