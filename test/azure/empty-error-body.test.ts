/**
 * DESCRIBE (the SDK's getKey) against an HSM that answers with a redirect, or with an error
 * status and no body: the SDK's deserializer threw "Cannot read properties of undefined (reading
 * 'error')"; with the agent's pipeline settings (src/azure/empty-error-body.ts, clients.ts) it is
 * a RestError with the status and a message naming the redirect. In-process HTTPS server.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { Agent, createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createSecureContext, rootCertificates } from 'node:tls';
import { after, before, it } from 'node:test';
import { KeyClient } from '@azure/keyvault-keys';
import { emptyErrorBodyPolicy } from '../../src/azure/empty-error-body.js';
import { classify } from '../../src/azure/failures.js';
import { ensureTlsMaterial } from '../../src/emulator/tls.js';

const dir = mkdtempSync(join(tmpdir(), 'akv-redirect-'));
let server: Server;
let origin: string;
let ca: string;
let answer: 'redirect' | 'bare502' = 'redirect';
const seen: string[] = [];

before(async () => {
  const tls = await ensureTlsMaterial(dir);
  ca = tls.caPem;
  server = createServer({ key: tls.keyPem, cert: tls.certPem }, (req, res) => {
    seen.push(`${req.method} ${req.url}`);
    if (!req.headers.authorization) {
      res.writeHead(401, {
        'www-authenticate':
          'Bearer authorization="https://login.microsoftonline.com/t", resource="https://managedhsm.azure.net"',
      });
      res.end();
      return;
    }
    if (answer === 'redirect') res.writeHead(302, { location: `${origin}/moved${req.url}` });
    else res.writeHead(502);
    res.end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  origin = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

after(() => {
  server?.close();
  rmSync(dir, { recursive: true, force: true });
});

function keyClient(): KeyClient {
  const credential = {
    getToken: () => Promise.resolve({ token: 't', expiresOnTimestamp: Date.now() + 3_600_000 }),
  };
  // The options clients.ts gives every KeyClient (besides its own agent and versions).
  return new KeyClient(origin, credential, {
    disableChallengeResourceVerification: true,
    retryOptions: { maxRetries: 0 },
    agent: new Agent({ secureContext: createSecureContext({ ca: [...rootCertificates, ca] }) }),
    redirectOptions: { maxRetries: 0 },
    additionalPolicies: [{ policy: emptyErrorBodyPolicy, position: 'perRetry' }],
  });
}

it('a redirect is reported as one, with its status and Location, not followed', async () => {
  answer = 'redirect';
  const err = await keyClient()
    .getKey('k')
    .then(
      () => assert.fail('a redirect was read as a key'),
      (e: Error) => e,
    );
  assert.equal(err.name, 'RestError', err.message);
  assert.match(err.message, /redirect \(HTTP 302 to https:\/\/127\.0\.0\.1:\d+\/moved\/keys\/k/);
  const c = classify(err);
  assert.equal(c.status, 302);
  assert.equal(c.kind, 'fatal');
  assert.ok(!seen.some((s) => s.startsWith('GET /moved')), 'not followed');
});

it('an error status without a body keeps its status', async () => {
  answer = 'bare502';
  const err = await keyClient()
    .getKey('k')
    .then(
      () => assert.fail('a 502 was read as a key'),
      (e: Error) => e,
    );
  assert.equal(err.name, 'RestError', err.message);
  assert.match(err.message, /HTTP 502 without an error body/);
  assert.equal(classify(err).kind, 'server-error', 'retried like any 502');
});
