/**
 * Key release (with the emulator's test attestation authority), rotation policies and
 * backup/restore, through the official SDK as an application would use them.
 */
import assert from 'node:assert/strict';
import {
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  X509Certificate,
} from 'node:crypto';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { KeyClient } from '@azure/keyvault-keys';
import { startEmulator, type RunningEmulator } from '../helpers/emulator.js';
import { attestationToken, releasePolicy, unwrapReleased } from '../helpers/attestation.js';

let emu: RunningEmulator;
let client: KeyClient;

before(async () => {
  emu = await startEmulator();
  client = emu.keyClient();
});
after(async () => {
  await emu?.stop();
});

describe('key release', () => {
  test('the authority key is <state-dir>/attestation-key.pem, mode 0600', () => {
    const st = statSync(join(emu.stateDir, 'attestation-key.pem'));
    assert.equal(st.mode & 0o777, 0o600);
  });

  test('an exportable RSA key with a policy is created, returned with its policy, and released to a token that meets it', async () => {
    const key = await client.createRsaKey('exportable-rsa', {
      hsm: true,
      exportable: true,
      releasePolicy: { encodedPolicy: releasePolicy({ 'sdk-test': 'true' }) },
    });
    assert.equal(key.properties.exportable, true);
    const policy = JSON.parse(
      Buffer.from(key.properties.releasePolicy?.encodedPolicy as Uint8Array).toString(),
    );
    assert.equal(policy.version, '1.0.0');
    const target = attestationToken(emu.stateDir, { 'sdk-test': true });
    const released = await client.releaseKey('exportable-rsa', target.token, { nonce: 'n-1' });
    const { payload, header, material } = unwrapReleased(released.value, target.privateKey);
    assert.equal(header.alg, 'ES256');
    assert.ok(Array.isArray(header.x5c) && header.x5c.length === 2);
    new X509Certificate(Buffer.from(String((header.x5c as string[])[0]), 'base64'));
    assert.equal((payload.request as Record<string, unknown>).nonce, 'n-1');
    assert.equal((payload.request as Record<string, unknown>).enc, 'CKM_RSA_AES_KEY_WRAP');
    // The released private key is the key's: its public half is the key's n.
    const priv = createPrivateKey({ key: material, format: 'der', type: 'pkcs8' });
    const n = createPublicKey(priv).export({ format: 'jwk' }).n;
    assert.equal(n, Buffer.from(key.key?.n as Uint8Array).toString('base64url'));
  });

  test('RSA_AES_KEY_WRAP_256 and EC keys; oct keys release their raw bytes', async () => {
    await client.createEcKey('exportable-ec', {
      hsm: true,
      curve: 'P-384',
      exportable: true,
      releasePolicy: { encodedPolicy: releasePolicy({ 'x-ms-attestation-type': 'sevsnpvm' }) },
    });
    const target = attestationToken(emu.stateDir, { 'x-ms-attestation-type': 'sevsnpvm' });
    const released = await client.releaseKey('exportable-ec', target.token, {
      algorithm: 'RSA_AES_KEY_WRAP_256',
    });
    const { material } = unwrapReleased(released.value, target.privateKey);
    assert.equal(
      createPrivateKey({ key: material, format: 'der', type: 'pkcs8' }).asymmetricKeyDetails
        ?.namedCurve,
      'secp384r1',
    );
    await client.createOctKey('exportable-oct', {
      hsm: true,
      keySize: 128,
      exportable: true,
      releasePolicy: { encodedPolicy: releasePolicy({ tier: 'gold' }) },
    });
    const t2 = attestationToken(emu.stateDir, { tier: 'gold' });
    const r2 = await client.releaseKey('exportable-oct', t2.token, {
      algorithm: 'RSA_AES_KEY_WRAP_384',
    });
    assert.equal(unwrapReleased(r2.value, t2.privateKey).material.length, 16);
  });

  test('refusals: claims that miss the policy, another issuer, a forged or expired token, a non-exportable key', async () => {
    const wrong = attestationToken(emu.stateDir, { 'sdk-test': false });
    await assert.rejects(
      client.releaseKey('exportable-rsa', wrong.token),
      (e: Error & { statusCode?: number }) => {
        assert.equal(e.statusCode, 403);
        assert.match(e.message, /do not satisfy the key's release policy/);
        return true;
      },
    );
    const other = attestationToken(
      emu.stateDir,
      { 'sdk-test': true },
      { issuer: 'https://elsewhere.test/' },
    );
    await assert.rejects(
      client.releaseKey('exportable-rsa', other.token),
      /not an authority of the key's release policy/,
    );
    const forger = generateKeyPairSync('rsa', { modulusLength: 2048 })
      .privateKey.export({ format: 'pem', type: 'pkcs8' })
      .toString();
    const forged = attestationToken(emu.stateDir, { 'sdk-test': true }, { signingKeyPem: forger });
    await assert.rejects(
      client.releaseKey('exportable-rsa', forged.token),
      (e: Error & { statusCode?: number }) => {
        assert.equal(e.statusCode, 400);
        assert.match(e.message, /not from a trusted attestation authority/);
        return true;
      },
    );
    const expired = attestationToken(emu.stateDir, { 'sdk-test': true }, { expSeconds: -60 });
    await assert.rejects(client.releaseKey('exportable-rsa', expired.token), /expired/);
    await client.createRsaKey('plain-rsa', { hsm: true });
    const good = attestationToken(emu.stateDir, { 'sdk-test': true });
    await assert.rejects(client.releaseKey('plain-rsa', good.token), /not exportable/);
  });

  test("the service's rules and messages: exportable needs a policy, a policy needs exportable, a policy needs a version", async () => {
    await assert.rejects(
      client.createRsaKey('x1', { hsm: true, exportable: true }),
      /Exportable keys must have release policy \(Activity ID: [0-9a-f-]{36}\)/,
    );
    await assert.rejects(
      client.createRsaKey('x2', {
        hsm: true,
        releasePolicy: { encodedPolicy: releasePolicy({ a: 'b' }) },
      }),
      /Non-exportable keys must not have release policy/,
    );
    await assert.rejects(
      client.createRsaKey('x3', {
        hsm: true,
        exportable: true,
        releasePolicy: { encodedPolicy: Buffer.from(JSON.stringify({ anyOf: [] })) },
      }),
      /Key Release Policy: missing 'version' property/,
    );
  });
});

describe('rotation policy', () => {
  test('none set: empty; set: returned as stored; bad durations refused', async () => {
    await client.createEcKey('rotated', { hsm: true });
    const empty = await client.getKeyRotationPolicy('rotated');
    assert.deepEqual(empty.lifetimeActions ?? [], []);
    const set = await client.updateKeyRotationPolicy('rotated', {
      expiresIn: 'P90D',
      lifetimeActions: [{ action: 'Rotate', timeAfterCreate: 'P30D' }],
    });
    assert.equal(set.expiresIn, 'P90D');
    assert.deepEqual(JSON.parse(JSON.stringify(set.lifetimeActions)), [
      { action: 'Rotate', timeAfterCreate: 'P30D' },
    ]);
    const got = await client.getKeyRotationPolicy('rotated');
    assert.deepEqual(JSON.parse(JSON.stringify(got.lifetimeActions)), [
      { action: 'Rotate', timeAfterCreate: 'P30D' },
    ]);
    await assert.rejects(
      client.updateKeyRotationPolicy('rotated', {
        lifetimeActions: [{ action: 'Rotate', timeAfterCreate: '30 days' }],
      }),
      /ISO 8601 duration/,
    );
  });
});

describe('backup and restore', () => {
  test('a backup restores every version after the key is purged; a live key refuses it (409)', async () => {
    const v1 = await client.createRsaKey('saved', { hsm: true });
    const v2 = await client.rotateKey('saved');
    const blob = await client.backupKey('saved');
    assert.ok(blob && blob.length > 0);
    await assert.rejects(client.restoreKeyBackup(blob), (e: Error & { statusCode?: number }) => {
      assert.equal(e.statusCode, 409);
      return true;
    });
    await (await client.beginDeleteKey('saved')).pollUntilDone();
    await client.purgeDeletedKey('saved');
    const restored = await client.restoreKeyBackup(blob);
    assert.equal(restored.properties.version, v2.properties.version);
    const old = await client.getKey('saved', { version: v1.properties.version as string });
    assert.deepEqual(old.key?.n, v1.key?.n);
    await assert.rejects(
      client.restoreKeyBackup(Buffer.from('not a backup')),
      /not valid for this HSM/,
    );
  });
});
