/**
 * The hot path (src/azure/key-operations.ts) and a 401 carrying a continuous access evaluation
 * challenge: the operation gets a token for the claims the HSM named (decoded, `enableCae`, same
 * scope and tenant) and is sent once more, as the SDK's challenge policy does; a second such 401,
 * or a 401 without claims, is final. The HSM is an in-process HTTPS server; the credential is a
 * stand-in that records what it was asked (Entra ID cannot run here).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createSecureContext, rootCertificates } from 'node:tls';
import { after, before, beforeEach, it } from 'node:test';
import type { AccessToken, GetTokenOptions, TokenCredential } from '@azure/core-auth';
import { Deadline } from '../../src/azure/abort.js';
import { HsmHttpClient } from '../../src/azure/hsm-http.js';
import {
  ChallengeRecorder,
  HsmHttpError,
  KeyOperations,
  claimsChallenge,
} from '../../src/azure/key-operations.js';
import { ensureTlsMaterial } from '../../src/emulator/tls.js';
import type { KeyRef } from '../../src/uri/index.js';

const dir = mkdtempSync(join(tmpdir(), 'akv-claims-'));
const CLAIMS = '{"access_token":{"nbf":{"essential":true,"value":"1733500000"}}}';
const SCOPE = 'https://managedhsm.azure.net/.default';
let server: Server;
let origin: string;
let ca: string;
/** What the server does with a sign request, given its Authorization header. */
let policy: (auth: string | undefined) => 'ok' | 'claims' | 'plain401' = () => 'ok';
let posts: Array<string | undefined> = [];

before(async () => {
  const tls = await ensureTlsMaterial(dir);
  ca = tls.caPem;
  server = createServer({ key: tls.keyPem, cert: tls.certPem }, (req, res) => {
    req.resume();
    req.on('end', () => {
      posts.push(req.headers.authorization);
      const what = policy(req.headers.authorization);
      if (what === 'ok') {
        res.writeHead(200, { 'content-type': 'application/json; charset=utf-8' });
        res.end(
          JSON.stringify({
            kid: `${origin}/keys/k/v1`,
            value: Buffer.from('sig').toString('base64url'),
          }),
        );
        return;
      }
      const challenge =
        what === 'claims'
          ? `Bearer authorization="https://login.microsoftonline.com/tenant1", error="insufficient_claims", claims="${Buffer.from(CLAIMS).toString('base64')}"`
          : 'Bearer authorization="https://login.microsoftonline.com/tenant1", resource="https://managedhsm.azure.net"';
      res.writeHead(401, {
        'www-authenticate': challenge,
        'content-type': 'application/json; charset=utf-8',
      });
      res.end(JSON.stringify({ error: { code: 'Unauthorized', message: 'token refused' } }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  origin = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

after(() => {
  server?.close();
  rmSync(dir, { recursive: true, force: true });
});

beforeEach(() => {
  posts = [];
  policy = () => 'ok';
});

/** Hands out 'plain' tokens, or 'cae-<n>' when asked for claims; records each request. */
class RecordingCredential implements TokenCredential {
  asked: GetTokenOptions[] = [];
  private n = 0;
  getToken(_scopes: string | string[], options?: GetTokenOptions): Promise<AccessToken> {
    this.asked.push(options ?? {});
    const token = options?.claims ? `cae-${++this.n}` : 'plain';
    return Promise.resolve({ token, expiresOnTimestamp: Date.now() + 3_600_000 });
  }
}

function setup(): { ops: KeyOperations; credential: RecordingCredential; http: HsmHttpClient } {
  const credential = new RecordingCredential();
  const recorder = new ChallengeRecorder(credential);
  const http = new HsmHttpClient(origin, {
    secureContext: createSecureContext({ ca: [...rootCertificates, ca] }),
    maxConnections: 2,
  });
  // The SDK's challenge handling would ask for this scope and tenant.
  const authenticate = (): Promise<unknown> => recorder.getToken(SCOPE, { tenantId: 'tenant1' });
  return { ops: new KeyOperations(origin, http, recorder, authenticate, 'test'), credential, http };
}

const ref = { vaultType: 'managedhsm', vault: 'h', name: 'k' } as KeyRef;
const deadline = (): Deadline => new Deadline(Date.now() + 10_000);

it('a claims challenge gets a token for those claims and the operation is sent once more', async () => {
  policy = (auth) => (auth?.startsWith('Bearer cae-') ? 'ok' : 'claims');
  const { ops, credential, http } = setup();
  try {
    const r = await ops.run(ref, 'sign', 'ES256', Buffer.alloc(32), deadline());
    assert.equal(r.result.toString(), 'sig');
    assert.deepEqual(posts, ['Bearer plain', 'Bearer cae-1']);
    const cae = credential.asked.find((o) => o.claims !== undefined);
    assert.ok(cae, 'the credential was asked for the claims');
    assert.equal(cae.claims, CLAIMS, 'decoded from base64');
    assert.equal(cae.enableCae, true);
    assert.equal(cae.tenantId, 'tenant1');
    // The claims token is used from now on: no second challenge.
    await ops.run(ref, 'sign', 'ES256', Buffer.alloc(32), deadline());
    assert.deepEqual(posts.slice(2), ['Bearer cae-1']);
  } finally {
    http.close();
  }
});

it('a second claims challenge in a row is final (once, not a loop)', async () => {
  policy = () => 'claims';
  const { ops, http } = setup();
  try {
    await assert.rejects(ops.run(ref, 'sign', 'ES256', Buffer.alloc(32), deadline()), (err) => {
      assert.ok(err instanceof HsmHttpError);
      assert.equal(err.statusCode, 401);
      return true;
    });
    assert.equal(posts.length, 2);
  } finally {
    http.close();
  }
});

it('a 401 without claims is not retried here', async () => {
  policy = () => 'plain401';
  const { ops, credential, http } = setup();
  try {
    await assert.rejects(ops.run(ref, 'sign', 'ES256', Buffer.alloc(32), deadline()), {
      statusCode: 401,
    });
    assert.equal(posts.length, 1);
    assert.ok(credential.asked.every((o) => o.claims === undefined));
  } finally {
    http.close();
  }
});

it('reads the claims of a challenge as the SDK does', () => {
  const b64 = Buffer.from(CLAIMS).toString('base64');
  assert.equal(claimsChallenge(`Bearer error="insufficient_claims", claims="${b64}"`), CLAIMS);
  assert.equal(claimsChallenge(`Bearer claims="${b64}"`), undefined, 'needs insufficient_claims');
  assert.equal(claimsChallenge('Bearer error="insufficient_claims", claims="!!"'), undefined);
  assert.equal(claimsChallenge(undefined), undefined);
});
