/**
 * Credentials and the token cache: a fake `az` on PATH (counts its calls, takes a second like the
 * real Azure CLI) behind DefaultAzureCredential in the real agent process must be asked once for
 * 200 operations; AZURE_CLI_ACCESS_TOKEN is used as given, warned about near its expiry and
 * refused clearly once expired; concurrent token requests share one call.
 */
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import type { AccessToken } from '@azure/core-auth';
import pino from 'pino';
import { createCredential, StaticTokenCredential } from '../../src/azure/credentials.js';
import { createGateway } from '../../src/azure/gateway.js';
import { CachingCredential } from '../../src/azure/token-cache.js';
import { parseConfigObject } from '../../src/config/load.js';
import { AkvError } from '../../src/errors.js';
import { startAgent } from '../helpers/agent.js';
import { startEmulator, type RunningEmulator } from '../helpers/emulator.js';

const HSM = 'credtest';
const dir = mkdtempSync(join(tmpdir(), 'akv-cred-test-'));
let emulator: RunningEmulator;

/** A JWT-shaped token (unsigned; the emulator accepts any bearer token) with the given exp. */
function jwtWithExp(expSeconds: number): string {
  const part = (o: object): string => Buffer.from(JSON.stringify(o)).toString('base64url');
  return `${part({ alg: 'none', typ: 'JWT' })}.${part({ aud: 'https://managedhsm.azure.net', exp: expSeconds })}.sig`;
}

function capturingLogger(): { logger: pino.Logger; lines: () => Array<Record<string, unknown>> } {
  const chunks: string[] = [];
  const logger = pino(
    { level: 'debug' },
    new Writable({
      write(chunk: Buffer, _enc, cb) {
        chunks.push(chunk.toString());
        cb();
      },
    }),
  );
  return {
    logger,
    lines: () =>
      chunks
        .join('')
        .split('\n')
        .filter((l) => l !== '')
        .map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}

function emulatorConfig(credential: Record<string, unknown>) {
  return parseConfigObject(
    {
      vaults: {
        [HSM]: {
          endpoint: emulator.url,
          caFile: emulator.caFile,
          disableChallengeResourceVerification: true,
        },
      },
      credential,
    },
    'credential test config',
    {},
  );
}

before(async () => {
  emulator = await startEmulator();
  await emulator.keyClient().createKey('ec', 'EC-HSM', { curve: 'P-256' });
});

after(async () => {
  await emulator?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('DefaultAzureCredential through the Azure CLI', () => {
  it('asks a slow `az` once for 200 operations in the agent', async () => {
    const binDir = join(dir, 'bin');
    const callLog = join(dir, 'az-calls.log');
    writeFileSync(callLog, '');
    mkdirSync(binDir, { recursive: true });
    const az = join(binDir, 'az');
    writeFileSync(
      az,
      `#!/bin/sh
# Stand-in for the Azure CLI: records each call, takes a second like the real one, prints a token.
echo "$*" >> '${callLog}'
sleep 1
exp=$(( $(date +%s) + 3600 ))
printf '{"accessToken":"token-from-fake-az","expiresOn":"%s","expires_on":%s,"tokenType":"Bearer"}\\n' "$(date -d @$exp '+%Y-%m-%d %H:%M:%S.000000')" "$exp"
`,
    );
    chmodSync(az, 0o755);
    const agent = await startAgent({
      emulator,
      hsmName: HSM,
      extraConfig: { credential: { type: 'default' } },
      env: {
        PATH: `${binDir}:${process.env.PATH ?? ''}`,
        AZURE_TOKEN_CREDENTIALS: 'AzureCliCredential',
      },
    });
    try {
      const clients = Array.from({ length: 10 }, () => agent.client());
      const digest = Buffer.alloc(32, 7);
      // 200 signatures: 20 rounds of 10 concurrent requests on 10 connections.
      for (let round = 0; round < 20; round++) {
        const results = await Promise.all(
          clients.map((c) => c.sign(`managedhsm:${HSM}:ec`, 'ES256', digest)),
        );
        for (const r of results) assert.equal(r.output.length, 64);
      }
      const calls = readFileSync(callLog, 'utf8')
        .split('\n')
        .filter((l) => l !== '');
      assert.equal(calls.length, 1, `az was called ${calls.length} times: ${calls.join(' | ')}`);
      assert.match(
        calls[0] ?? '',
        /get-access-token .*--resource https:\/\/managedhsm\.azure\.net/,
      );
    } finally {
      await agent.stop();
    }
  });

  it('without any credential, says what to do', async () => {
    const gateway = createGateway(emulatorConfig({ type: 'default' }), pino({ level: 'silent' }));
    const savedPath = process.env.PATH;
    const savedSelect = process.env.AZURE_TOKEN_CREDENTIALS;
    // An `az` that fails like a logged-out Azure CLI.
    const binDir = join(dir, 'bin-logged-out');
    mkdirSync(binDir, { recursive: true });
    writeFileSync(
      join(binDir, 'az'),
      '#!/bin/sh\necho "ERROR: Please run \'az login\' to setup account." >&2\nexit 1\n',
    );
    chmodSync(join(binDir, 'az'), 0o755);
    process.env.PATH = `${binDir}:${savedPath ?? ''}`;
    process.env.AZURE_TOKEN_CREDENTIALS = 'AzureCliCredential';
    try {
      await assert.rejects(
        gateway.describe({ vaultType: 'managedhsm', vault: HSM, name: 'ec' }),
        (err: unknown) => {
          assert.ok(err instanceof AkvError);
          assert.equal(err.code, 'UNAUTHORIZED');
          assert.match(err.fullMessage, /az login/);
          assert.match(err.fullMessage, /AZURE_CLI_ACCESS_TOKEN/);
          return true;
        },
      );
    } finally {
      process.env.PATH = savedPath;
      if (savedSelect === undefined) delete process.env.AZURE_TOKEN_CREDENTIALS;
      else process.env.AZURE_TOKEN_CREDENTIALS = savedSelect;
      await gateway.close();
    }
  });
});

describe('AZURE_CLI_ACCESS_TOKEN', () => {
  const config = () => emulatorConfig({ type: 'default' });
  const ref = { vaultType: 'managedhsm' as const, vault: HSM, name: 'ec' };

  it('is used as the bearer token and warns when it is about to expire', async () => {
    const { logger, lines } = capturingLogger();
    const token = jwtWithExp(Math.floor(Date.now() / 1000) + 6 * 60);
    const credential = createCredential(config(), logger, {}, { AZURE_CLI_ACCESS_TOKEN: token });
    assert.equal(credential.source, 'AZURE_CLI_ACCESS_TOKEN');
    const t = await credential.getToken('https://managedhsm.azure.net/.default');
    assert.equal(t?.token, token);
    const warning = lines().find((l) => l.level === 40);
    assert.ok(warning, 'a warning was logged');
    assert.match(String(warning.msg), /AZURE_CLI_ACCESS_TOKEN expires in \d+ min/);
    assert.ok(!JSON.stringify(lines()).includes(token), 'the token itself is never logged');
  });

  it('says clearly when it has expired, and how to get a new one', async () => {
    const expired = jwtWithExp(Math.floor(Date.now() / 1000) - 60);
    const saved = process.env.AZURE_CLI_ACCESS_TOKEN;
    process.env.AZURE_CLI_ACCESS_TOKEN = expired;
    const gateway = createGateway(config(), pino({ level: 'silent' }));
    try {
      await assert.rejects(gateway.describe(ref), (err: unknown) => {
        assert.ok(err instanceof AkvError);
        assert.equal(err.code, 'UNAUTHORIZED');
        assert.match(err.message, /AZURE_CLI_ACCESS_TOKEN expired at/);
        assert.match(err.hint ?? '', /az account get-access-token/);
        assert.ok(!err.fullMessage.includes(expired));
        return true;
      });
    } finally {
      if (saved === undefined) delete process.env.AZURE_CLI_ACCESS_TOKEN;
      else process.env.AZURE_CLI_ACCESS_TOKEN = saved;
      await gateway.close();
    }
  });

  it('works against the HSM when valid (opaque tokens too)', async () => {
    const saved = process.env.AZURE_CLI_ACCESS_TOKEN;
    process.env.AZURE_CLI_ACCESS_TOKEN = 'an-opaque-token';
    const gateway = createGateway(config(), pino({ level: 'silent' }));
    try {
      const d = await gateway.describe(ref);
      assert.equal(d.kty, 'EC');
    } finally {
      if (saved === undefined) delete process.env.AZURE_CLI_ACCESS_TOKEN;
      else process.env.AZURE_CLI_ACCESS_TOKEN = saved;
      await gateway.close();
    }
  });
});

describe('CachingCredential', () => {
  /** A credential that counts calls and answers after `delayMs`, with tokens valid `lifetimeMs`. */
  function countingCredential(now: () => number, lifetimeMs = 3600_000, delayMs = 20) {
    const state = { calls: 0 };
    const credential = {
      getToken: async (): Promise<AccessToken> => {
        state.calls++;
        await new Promise((r) => setTimeout(r, delayMs));
        return { token: `t${state.calls}`, expiresOnTimestamp: now() + lifetimeMs };
      },
    };
    return { state, credential };
  }

  it('coalesces concurrent requests into one call and serves the cache afterwards', async () => {
    let clock = 1_000_000;
    const now = () => clock;
    const { state, credential } = countingCredential(now);
    let refreshes = 0;
    const cache = new CachingCredential(credential, { onRefresh: () => refreshes++ }, now);
    const tokens = await Promise.all(
      Array.from({ length: 50 }, () => cache.getToken('scope/.default')),
    );
    assert.equal(state.calls, 1);
    assert.ok(tokens.every((t) => t?.token === 't1'));
    clock += 30 * 60_000;
    assert.equal((await cache.getToken('scope/.default'))?.token, 't1');
    assert.equal(state.calls, 1);
    assert.equal(refreshes, 1);
  });

  it('refreshes about 5 minutes before expiry, without making callers wait', async () => {
    let clock = 1_000_000;
    const now = () => clock;
    const { state, credential } = countingCredential(now, 60 * 60_000, 50);
    const cache = new CachingCredential(credential, {}, now);
    await cache.getToken('s');
    clock += 56 * 60_000; // 4 minutes left
    const during = await cache.getToken('s');
    assert.equal(during?.token, 't1', 'the still-valid token is served while refreshing');
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(state.calls, 2);
    assert.equal((await cache.getToken('s'))?.token, 't2');
  });

  it('keeps scopes and tenants apart, and does not cache a failure', async () => {
    let fail = true;
    let calls = 0;
    const cache = new CachingCredential({
      getToken: (scopes) => {
        calls++;
        if (fail) return Promise.reject(new Error('no credential yet'));
        return Promise.resolve({
          token: String(scopes),
          expiresOnTimestamp: Date.now() + 3600_000,
        });
      },
    });
    await assert.rejects(cache.getToken('a'), /no credential yet/);
    fail = false;
    assert.equal((await cache.getToken('a'))?.token, 'a');
    assert.equal((await cache.getToken('b'))?.token, 'b');
    await cache.getToken('a', { tenantId: 'other' });
    assert.equal(calls, 4);
  });
});

describe('StaticTokenCredential', () => {
  it('reads the JWT expiry and hands it to the SDK', async () => {
    const exp = Math.floor(Date.now() / 1000) + 3600;
    const t = await new StaticTokenCredential(jwtWithExp(exp), 'test').getToken();
    assert.equal(t.expiresOnTimestamp, exp * 1000);
  });
});
