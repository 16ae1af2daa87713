/**
 * How a 403 reaches the user. No public recording of a real Managed HSM shows a 403 (see
 * test/conformance/README.md), so akv must not guess the cause from the message text: every 403
 * becomes FORBIDDEN with the service's code and inner code, and a hint naming both causes (the
 * identity's rights, the key's state) and what to check for each. A real KeyClient reads the 403
 * from an in-process HTTPS server, so the RestError (and its parsed body) is the SDK's own.
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
import { classify, toAkvError, type OpContext } from '../../src/azure/failures.js';
import { ensureTlsMaterial } from '../../src/emulator/tls.js';

const dir = mkdtempSync(join(tmpdir(), 'akv-forbidden-'));
let server: Server;
let origin: string;
let ca: string;
let body: unknown;

before(async () => {
  const tls = await ensureTlsMaterial(dir);
  ca = tls.caPem;
  server = createServer({ key: tls.keyPem, cert: tls.certPem }, (req, res) => {
    req.resume();
    if (!req.headers.authorization) {
      res.writeHead(401, {
        'content-type': 'application/json; charset=utf-8',
        'www-authenticate':
          'Bearer authorization="https://login.microsoftonline.com/t", resource="https://managedhsm.azure.net"',
      });
      res.end();
      return;
    }
    res.writeHead(403, { 'content-type': 'application/json; charset=utf-8' });
    res.end(JSON.stringify(body));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  origin = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

after(() => {
  server?.close();
  rmSync(dir, { recursive: true, force: true });
});

async function forbidden(answer: unknown): Promise<Error> {
  body = answer;
  const credential = {
    getToken: () => Promise.resolve({ token: 't', expiresOnTimestamp: Date.now() + 3_600_000 }),
  };
  const client = new KeyClient(origin, credential, {
    disableChallengeResourceVerification: true,
    retryOptions: { maxRetries: 0 },
    agent: new Agent({ secureContext: createSecureContext({ ca: [...rootCertificates, ca] }) }),
  });
  return client.getKey('tls-key').then(
    () => assert.fail('a 403 was read as a key'),
    (e: Error) => e,
  );
}

const HSM_CTX: OpContext = {
  op: 'sign',
  target: 'managedhsm:prodhsm:tls-key',
  vault: 'prodhsm',
  url: 'https://prodhsm.managedhsm.azure.net',
  keyOp: 'sign',
};

it('a 403 whose words speak of a disabled key is not taken for a key-state answer', async () => {
  // The words of Key Vault's disabled-secret answer (azure-sdk-for-js issue 24756), on a key: the
  // text alone proves nothing, so the answer stays FORBIDDEN and names both causes.
  const err = await forbidden({
    error: {
      code: 'Forbidden',
      message: 'Operation sign is not allowed on a disabled key.',
      innererror: { code: 'KeyDisabled' },
    },
  });
  assert.equal(classify(err).innerCode, 'KeyDisabled');
  const e = toAkvError(err, HSM_CTX, 0);
  assert.equal(e.code, 'FORBIDDEN');
  assert.match(
    e.message,
    /refused sign with managedhsm:prodhsm:tls-key \(403 Forbidden\/KeyDisabled\)/,
  );
  assert.match(e.message, /not allowed on a disabled key/);
  assert.match(String(e.hint), /Managed HSM Crypto User/);
  assert.match(String(e.hint), /role assignment list --hsm-name prodhsm --scope \/keys\/tls-key/);
  assert.match(
    String(e.hint),
    /disabled, outside its not-before\/expiry dates, or sign not in its key_ops/,
  );
  assert.match(String(e.hint), /key show --hsm-name prodhsm --name tls-key/);
});

it('an RBAC-shaped 403 gets the same answer: code, message, both causes', async () => {
  const err = await forbidden({
    error: {
      code: 'Forbidden',
      message: 'Caller is not authorized to perform action on resource.',
      innererror: { code: 'AccessDenied' },
    },
  });
  const e = toAkvError(err, HSM_CTX, 0);
  assert.equal(e.code, 'FORBIDDEN');
  assert.match(e.message, /\(403 Forbidden\/AccessDenied\): Caller is not authorized/);
  assert.match(String(e.hint), /^either the identity akv runs as needs a role that allows sign/);
  assert.match(String(e.hint), /or the key cannot do it now/);
});

it('a 403 without an inner error, on a Key Vault key, names the vault flags', async () => {
  const err = await forbidden({ error: { code: 'Forbidden', message: 'Access denied.' } });
  assert.equal(classify(err).innerCode, undefined);
  const e = toAkvError(
    err,
    {
      op: 'get key',
      target: 'keyvault:myvault:app-key',
      vault: 'myvault',
      url: 'https://myvault.vault.azure.net',
    },
    0,
  );
  assert.equal(e.code, 'FORBIDDEN');
  assert.match(e.message, /\(403 Forbidden\): Access denied\./);
  assert.match(String(e.hint), /role \(or access policy\) that allows the operation/);
  assert.match(String(e.hint), /key show --vault-name myvault --name app-key/);
});
