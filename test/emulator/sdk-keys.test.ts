/**
 * Key management through the official KeyClient: create (every type and size), import, get,
 * list (paged), versions, rotate, update, delete/recover/purge, random bytes. Responses never
 * carry private key material.
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import type { KeyClient } from '@azure/keyvault-keys';
import { startEmulator, type RunningEmulator } from '../helpers/emulator.js';

let emu: RunningEmulator;
let client: KeyClient;

before(async () => {
  emu = await startEmulator();
  client = emu.keyClient();
});
after(async () => {
  await emu?.stop();
});

const PRIVATE_FIELDS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'k'];
const VERSION = /^[0-9a-f]{32}$/;

/** Fails when any private JWK member appears anywhere in a response body. */
function assertNoPrivateParts(body: unknown, where: string): void {
  const walk = (value: unknown): void => {
    if (Array.isArray(value)) value.forEach(walk);
    else if (value && typeof value === 'object') {
      for (const [k, v] of Object.entries(value)) {
        if (k === 'key' && v && typeof v === 'object') {
          for (const field of PRIVATE_FIELDS)
            assert.equal(field in v, false, `${where}: response has "${field}"`);
        }
        walk(v);
      }
    }
  };
  walk(body);
}

describe('create', () => {
  for (const size of [2048, 3072, 4096]) {
    test(`RSA-HSM ${size}`, async () => {
      const key = await client.createRsaKey(`rsa-${size}`, { hsm: true, keySize: size });
      assert.equal(key.keyType, 'RSA-HSM');
      assert.equal(key.key?.n?.length, size / 8, 'modulus without a leading zero byte');
      assert.deepEqual(Buffer.from(key.key?.e as Uint8Array), Buffer.from([1, 0, 1]));
      // The order varies from response to response, as on a real HSM.
      assert.deepEqual([...(key.keyOperations ?? [])].sort(), [
        'decrypt',
        'encrypt',
        'sign',
        'unwrapKey',
        'verify',
        'wrapKey',
      ]);
      assert.match(key.properties.version as string, VERSION);
      assert.equal(key.id, `${emu.url}/keys/rsa-${size}/${key.properties.version}`);
      assert.equal(key.properties.enabled, true);
      assert.ok(key.properties.createdOn instanceof Date);
    });
  }
  for (const curve of ['P-256', 'P-256K', 'P-384', 'P-521'] as const) {
    test(`EC-HSM ${curve}`, async () => {
      const key = await client.createEcKey(`ec-${curve}`, { hsm: true, curve });
      assert.equal(key.keyType, 'EC-HSM');
      assert.equal(key.key?.crv, curve);
      const length = { 'P-256': 32, 'P-256K': 32, 'P-384': 48, 'P-521': 66 }[curve];
      assert.equal(key.key?.x?.length, length);
      assert.equal(key.key?.y?.length, length);
      assert.deepEqual([...(key.keyOperations ?? [])].sort(), ['sign', 'verify']);
    });
  }
  for (const size of [128, 192, 256]) {
    test(`oct-HSM ${size}`, async () => {
      const key = await client.createOctKey(`oct-${size}`, { hsm: true, keySize: size });
      assert.equal(key.keyType, 'oct-HSM');
      assert.equal(key.key?.k, undefined);
      // A real HSM (2022+) gives a new oct-HSM key these seven operations.
      assert.deepEqual([...(key.keyOperations ?? [])].sort(), [
        'decrypt',
        'deriveKey',
        'encrypt',
        'sign',
        'unwrapKey',
        'verify',
        'wrapKey',
      ]);
      assert.equal(key.properties.recoverableDays, 7);
      assert.equal(key.properties.recoveryLevel, 'CustomizedRecoverable+Purgeable');
    });
  }
  test('key_ops, tags, enabled and expiry are stored as given', async () => {
    const expiresOn = new Date(Math.floor(Date.now() / 1000 + 3600) * 1000);
    const key = await client.createKey('with-options', 'EC-HSM', {
      keyOps: ['sign'],
      tags: { team: 'crypto' },
      enabled: false,
      expiresOn,
    });
    assert.deepEqual(key.keyOperations, ['sign']);
    assert.deepEqual(key.properties.tags, { team: 'crypto' });
    assert.equal(key.properties.enabled, false);
    assert.equal(key.properties.expiresOn?.getTime(), expiresOn.getTime());
  });
});

describe('import', () => {
  test('RSA private JWK: public part returned, private part kept', async () => {
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const jwk = privateKey.export({ format: 'jwk' });
    const b = (s: string | undefined) => Buffer.from(s as string, 'base64url');
    const key = await client.importKey(
      'imported-rsa',
      {
        kty: 'RSA-HSM',
        n: b(jwk.n),
        e: b(jwk.e),
        d: b(jwk.d),
        p: b(jwk.p),
        q: b(jwk.q),
        dp: b(jwk.dp),
        dq: b(jwk.dq),
        qi: b(jwk.qi),
      },
      { hardwareProtected: true },
    );
    assert.equal(key.keyType, 'RSA-HSM');
    assert.deepEqual(Buffer.from(key.key?.n as Uint8Array), b(jwk.n));
    const raw = await emu.request('GET', `/keys/imported-rsa?api-version=7.4`);
    assertNoPrivateParts(raw.json, 'get imported');
  });
  test('EC P-384 private JWK', async () => {
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'secp384r1' });
    const jwk = privateKey.export({ format: 'jwk' });
    const b = (s: string | undefined) => Buffer.from(s as string, 'base64url');
    const key = await client.importKey('imported-ec', {
      kty: 'EC-HSM',
      crv: 'P-384',
      x: b(jwk.x),
      y: b(jwk.y),
      d: b(jwk.d),
    });
    assert.equal(key.key?.crv, 'P-384');
    assert.deepEqual(Buffer.from(key.key?.x as Uint8Array), b(jwk.x));
  });
  test('oct key', async () => {
    const key = await client.importKey('imported-oct', { kty: 'oct-HSM', k: randomBytes(32) });
    assert.equal(key.keyType, 'oct-HSM');
    assert.equal(key.key?.k, undefined);
  });
  test('an EC key whose x/y do not match d is refused', async () => {
    const one = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey.export({
      format: 'jwk',
    });
    const two = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey.export({
      format: 'jwk',
    });
    const b = (s: string | undefined) => Buffer.from(s as string, 'base64url');
    await assert.rejects(
      client.importKey('mismatched', {
        kty: 'EC-HSM',
        crv: 'P-256',
        x: b(one.x),
        y: b(one.y),
        d: b(two.d),
      }),
      (err: { statusCode?: number; code?: string }) =>
        err.statusCode === 400 && err.code === 'BadParameter',
    );
  });
});

describe('get, versions, rotate, update', () => {
  test('every create/import/rotate adds a version; the latest is used without one', async () => {
    const first = await client.createEcKey('versioned', { curve: 'P-256' });
    const second = await client.createEcKey('versioned', { curve: 'P-384' });
    const third = await client.rotateKey('versioned');
    assert.equal(
      third.key?.crv,
      'P-384',
      'rotation makes the same kind of key as the current version',
    );
    assert.notEqual(third.properties.version, second.properties.version);
    const latest = await client.getKey('versioned');
    assert.equal(latest.properties.version, third.properties.version);
    const old = await client.getKey('versioned', { version: first.properties.version });
    assert.equal(old.key?.crv, 'P-256');
    const versions: string[] = [];
    for await (const props of client.listPropertiesOfKeyVersions('versioned'))
      versions.push(props.version as string);
    assert.deepEqual(
      versions.sort(),
      [first, second, third].map((k) => k.properties.version as string).sort(),
    );
  });
  test('updateKeyProperties changes attributes and tags of one version', async () => {
    const key = await client.createEcKey('updatable');
    const updated = await client.updateKeyProperties(
      'updatable',
      key.properties.version as string,
      {
        enabled: false,
        tags: { env: 'test' },
        keyOps: ['verify'],
      },
    );
    assert.equal(updated.properties.enabled, false);
    assert.deepEqual(updated.properties.tags, { env: 'test' });
    assert.deepEqual(updated.keyOperations, ['verify']);
    const again = await client.getKey('updatable');
    assert.equal(again.properties.enabled, false);
  });
  test('getRandomBytes returns the requested count', async () => {
    const bytes = await client.getRandomBytes(48);
    assert.equal(bytes.length, 48);
  });
});

describe('list', () => {
  test('listPropertiesOfKeys follows nextLink across pages', async () => {
    for (let i = 0; i < 7; i++) await client.createOctKey(`paged-${i}`, { keySize: 128 });
    let pages = 0;
    const names = new Set<string>();
    for await (const page of client.listPropertiesOfKeys().byPage({ maxPageSize: 3 })) {
      pages += 1;
      assert.ok(page.length <= 3);
      for (const props of page) names.add(props.name);
    }
    for (let i = 0; i < 7; i++) assert.ok(names.has(`paged-${i}`));
    assert.ok(pages >= 3, `expected several pages, got ${pages}`);
    const raw = await emu.request('GET', '/keys?api-version=7.4&maxresults=2');
    assertNoPrivateParts(raw.json, 'list');
    assert.match(
      String((raw.json as { nextLink?: string }).nextLink),
      /^https:\/\/127\.0\.0\.1:\d+\/keys\?/,
    );
  });
});

describe('delete', () => {
  test('delete, get deleted, recover, delete again, purge', async () => {
    await client.createEcKey('doomed');
    const poller = await client.beginDeleteKey('doomed');
    const deleted = await poller.pollUntilDone();
    assert.equal(deleted.name, 'doomed');
    assert.ok(deleted.properties.deletedOn instanceof Date);
    await assert.rejects(client.getKey('doomed'), (err: { statusCode?: number; code?: string }) => {
      return err.statusCode === 404 && err.code === 'KeyNotFound';
    });
    await assert.rejects(
      client.createEcKey('doomed'),
      (err: { statusCode?: number }) => err.statusCode === 409,
    );
    const found = await client.getDeletedKey('doomed');
    assert.equal(found.name, 'doomed');
    const names: string[] = [];
    for await (const d of client.listDeletedKeys()) names.push(d.name);
    assert.ok(names.includes('doomed'));

    const recovered = await (await client.beginRecoverDeletedKey('doomed')).pollUntilDone();
    assert.equal(recovered.name, 'doomed');
    assert.equal((await client.getKey('doomed')).name, 'doomed');

    await (await client.beginDeleteKey('doomed')).pollUntilDone();
    await client.purgeDeletedKey('doomed');
    await assert.rejects(
      client.getDeletedKey('doomed'),
      (err: { statusCode?: number }) => err.statusCode === 404,
    );
    const fresh = await client.createEcKey('doomed');
    assert.equal(fresh.name, 'doomed', 'the name is free again after purge');
  });
});

describe('no private key material leaves the emulator', () => {
  test('raw responses of every key endpoint', async () => {
    await client.createRsaKey('leak-check', { keySize: 2048 });
    const paths = [
      ['GET', '/keys/leak-check?api-version=7.4'],
      ['GET', '/keys/leak-check/versions?api-version=7.4'],
      ['GET', '/keys?api-version=7.4'],
      ['POST', '/keys/leak-check/rotate?api-version=7.4'],
    ] as const;
    for (const [method, path] of paths) {
      const res = await emu.request(method, path);
      assert.equal(res.status, 200, `${method} ${path}: ${res.text}`);
      assertNoPrivateParts(res.json, path);
      for (const field of ['"d"', '"p"', '"q"', '"dp"', '"dq"', '"qi"', '"k"']) {
        assert.equal(res.text.includes(field), false, `${path} has ${field}`);
      }
    }
  });
});
