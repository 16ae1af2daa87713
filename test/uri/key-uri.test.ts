import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AkvError } from '../../src/errors.js';
import { formatKeyUri, formatVaultUri, parseKeyUri, parseVaultUri } from '../../src/uri/index.js';
import type { KeyRef } from '../../src/uri/index.js';

const V = '0123456789abcdef0123456789abcdef';
const VU = '0123456789ABCDEF0123456789ABCDEF';
const KEY127 = 'k'.repeat(127);
const HSM24 = 'h'.repeat(24);

const accepted: Array<[string, KeyRef]> = [
  ['managedhsm:MyHSM:myrsakey', { vaultType: 'managedhsm', vault: 'MyHSM', name: 'myrsakey' }],
  [
    `managedhsm:MyHSM:myrsakey?version=${V}`,
    { vaultType: 'managedhsm', vault: 'MyHSM', name: 'myrsakey', version: V },
  ],
  ['MANAGEDHSM:my-hsm:k', { vaultType: 'managedhsm', vault: 'my-hsm', name: 'k' }],
  ['managedHsm:abc:key-1', { vaultType: 'managedhsm', vault: 'abc', name: 'key-1' }],
  [`managedhsm:${HSM24}:${KEY127}`, { vaultType: 'managedhsm', vault: HSM24, name: KEY127 }],
  [
    `managedhsm:h1:k?version=${VU}`.replace('h1', 'h12'),
    { vaultType: 'managedhsm', vault: 'h12', name: 'k', version: VU },
  ],
  ['keyvault:myvault:mykey', { vaultType: 'keyvault', vault: 'myvault', name: 'mykey' }],
  [
    `keyvault:myvault:mykey?version=${V}`,
    { vaultType: 'keyvault', vault: 'myvault', name: 'mykey', version: V },
  ],
  ['KeyVault:my-vault-01:Key-02', { vaultType: 'keyvault', vault: 'my-vault-01', name: 'Key-02' }],
  ['akv:vault=MyHSM,name=k1', { vaultType: 'managedhsm', vault: 'MyHSM', name: 'k1' }],
  [
    `akv:vault=MyHSM,name=k1,version=${V}`,
    { vaultType: 'managedhsm', vault: 'MyHSM', name: 'k1', version: V },
  ],
  [
    'akv:vault=MyHSM,name=k1,type=managedhsm',
    { vaultType: 'managedhsm', vault: 'MyHSM', name: 'k1' },
  ],
  [
    'akv:vault=myvault,name=k1,type=keyvault',
    { vaultType: 'keyvault', vault: 'myvault', name: 'k1' },
  ],
  [
    `akv:type=keyvault,version=${V},name=k1,vault=myvault`,
    { vaultType: 'keyvault', vault: 'myvault', name: 'k1', version: V },
  ],
  ['akv:keyvault_name=MyHSM,key_name=k1', { vaultType: 'managedhsm', vault: 'MyHSM', name: 'k1' }],
  [
    `akv:keyvault_type=managedHsm,keyvault_name=MyHSM,key_name=myrsakey,key_version=${V}`,
    { vaultType: 'managedhsm', vault: 'MyHSM', name: 'myrsakey', version: V },
  ],
  ['AKV:Vault=MyHSM,Name=k1,Type=KeyVault', { vaultType: 'keyvault', vault: 'MyHSM', name: 'k1' }],
  [
    'akv:keyvault_name=MyHSM,name=k1,keyvault_type=keyvault',
    { vaultType: 'keyvault', vault: 'MyHSM', name: 'k1' },
  ],
];

for (const [uri, expected] of accepted) {
  test(`accepts ${uri.length > 70 ? uri.slice(0, 70) + '...' : uri}`, () => {
    assert.deepEqual(parseKeyUri(uri), expected);
  });
}

test('format and parse round-trip to the canonical form', () => {
  for (const [, ref] of accepted) {
    const text = formatKeyUri(ref);
    assert.deepEqual(parseKeyUri(text), ref);
    assert.match(text, /^(managedhsm|keyvault):/);
  }
  assert.equal(
    formatKeyUri({ vaultType: 'managedhsm', vault: 'h1x', name: 'k' }),
    'managedhsm:h1x:k',
  );
  assert.equal(
    formatKeyUri({ vaultType: 'keyvault', vault: 'v1x', name: 'k', version: V }),
    `keyvault:v1x:k?version=${V}`,
  );
});

const malformed: string[] = [
  '',
  ' ',
  'managedhsm',
  'managedhsm:',
  'managedhsm::',
  'managedhsm:MyHSM',
  'managedhsm:MyHSM:',
  'managedhsm::key',
  'managedhsm:MyHSM:key:extra',
  'managedhsm:MyHSM::key',
  'managedhsm:MyHSM:key?',
  'managedhsm:MyHSM:key?version=',
  'managedhsm:MyHSM:key?version=abc',
  `managedhsm:MyHSM:key?version=${V}0`,
  `managedhsm:MyHSM:key?version=${V.slice(1)}g`,
  `managedhsm:MyHSM:key?ver=${V}`,
  `managedhsm:MyHSM:key?version=${V}&x=1`,
  `managedhsm:MyHSM:key?version=${V}?version=${V}`,
  'managedhsm:ab:key',
  `managedhsm:${'h'.repeat(25)}:key`,
  `managedhsm:MyHSM:${'k'.repeat(128)}`,
  'managedhsm:My_HSM:key',
  'managedhsm:MyHSM:my_key',
  'managedhsm:MyHSM:my key',
  'managedhsm:MyHSM:key ',
  ' managedhsm:MyHSM:key',
  'managedhsm:MyHSM:key\n',
  'managedhsm:My.HSM:key',
  'managedhsm:MyHSM:kéy',
  'managedhsm:MyHSM:key/1',
  'managedhsm:MyHSM:key%2F',
  'managedhsm://MyHSM/key',
  'https://myhsm.managedhsm.azure.net/keys/k',
  'pkcs11:object=key',
  'file:/etc/key.pem',
  'mhsm:MyHSM:key',
  ':MyHSM:key',
  'MyHSM:key',
  'keyvault:v:key',
  'keyvault:myvault',
  'keyvault:myvault:key:1',
  'keyvault:myvault:key?version=1',
  'akv:',
  'akv:vault=MyHSM',
  'akv:name=k1',
  'akv:vault=MyHSM,name=',
  'akv:vault=,name=k1',
  'akv:vault=MyHSM,,name=k1',
  'akv:vault=MyHSM,name=k1,',
  ',akv:vault=MyHSM,name=k1',
  'akv:vault=MyHSM,name=k1,colour=blue',
  'akv:vault=MyHSM,name=k1,name=k2',
  'akv:vault=MyHSM,keyvault_name=MyHSM,name=k1',
  'akv:vault=MyHSM,name=k1,key_name=k1',
  'akv:vault=MyHSM,name=k1,type=hsm',
  'akv:vault=MyHSM,name=k1,type=',
  'akv:vault=MyHSM,name=k1,type=managedhsm,keyvault_type=keyvault',
  'akv:vault=MyHSM,name=k1,version=xyz',
  `akv:vault=MyHSM,name=k1,version=${V},key_version=${V}`,
  'akv:vault MyHSM,name=k1',
  'akv:vault=My HSM,name=k1',
  'akv:vault=MyHSM;name=k1',
  'akv:vault=MyHSM,name=k1=2',
  'akv: vault=MyHSM,name=k1',
  'akv:vault=MyHSM,name=k_1',
  `akv:vault=MyHSM,name=k1?version=${V}`,
  'akv:=MyHSM,name=k1',
  `managedhsm:MyHSM:${'k'.repeat(2000)}`,
];

test(`rejects ${malformed.length} malformed URIs with BAD_URI and the accepted forms`, () => {
  assert.ok(malformed.length >= 50);
  for (const uri of malformed) {
    assert.throws(
      () => parseKeyUri(uri),
      (err: unknown) => {
        assert.ok(err instanceof AkvError, `not an AkvError for ${JSON.stringify(uri)}`);
        assert.equal(err.code, 'BAD_URI');
        assert.match(err.message, /managedhsm:<hsm>:<key>\[\?version=<v>\]/);
        assert.match(err.message, /akv:vault=<hsm>,name=<key>/);
        assert.match(err.message, /keyvault:<vault>:<key>/);
        return true;
      },
      `accepted ${JSON.stringify(uri)}`,
    );
  }
});

test('error messages name the specific problem', () => {
  const reason = (uri: string): string => {
    try {
      parseKeyUri(uri);
    } catch (err) {
      return (err as AkvError).message;
    }
    throw new Error(`accepted ${uri}`);
  };
  assert.match(reason('akv:vault=MyHSM,name=k1,colour=blue'), /unknown field "colour"/);
  assert.match(reason('akv:vault=MyHSM,name=k1,name=k2'), /given twice/);
  assert.match(reason('akv:vault=MyHSM,name=k1,type=hsm'), /must be managedhsm or keyvault/);
  assert.match(reason('managedhsm:MyHSM:key:extra'), /too many colons/);
  assert.match(reason('managedhsm:ab:key'), /3-24 characters/);
  assert.match(reason('managedhsm:MyHSM:key?version=abc'), /32 hex characters/);
  assert.match(reason('pkcs11:object=key'), /unknown scheme "pkcs11"/);
  assert.match(reason('managedhsm:MyHSM'), /key name is missing/);
  assert.match(reason('akv:vault=MyHSM'), /name= \(key_name=\) field is missing/);
  // Untrusted input is quoted and shortened, never echoed raw at any length.
  assert.ok(reason(`managedhsm:MyHSM:${'k'.repeat(2000)}`).length < 800);
  assert.match(reason('managedhsm:MyHSM:key\n'), /"managedhsm:MyHSM:key\\n"/);
});

test('non-string input is rejected as BAD_URI, not a TypeError', () => {
  assert.throws(() => parseKeyUri(undefined as unknown as string), { code: 'BAD_URI' });
});

test('vault URIs for listing', () => {
  assert.deepEqual(parseVaultUri('managedhsm:MyHSM:'), { vaultType: 'managedhsm', vault: 'MyHSM' });
  assert.deepEqual(parseVaultUri('managedhsm:MyHSM'), { vaultType: 'managedhsm', vault: 'MyHSM' });
  assert.deepEqual(parseVaultUri('ManagedHSM:MyHSM:'), { vaultType: 'managedhsm', vault: 'MyHSM' });
  assert.deepEqual(parseVaultUri('keyvault:myvault:'), { vaultType: 'keyvault', vault: 'myvault' });
  assert.deepEqual(parseVaultUri('akv:vault=MyHSM'), { vaultType: 'managedhsm', vault: 'MyHSM' });
  assert.deepEqual(parseVaultUri('akv:keyvault_name=v12,keyvault_type=keyvault'), {
    vaultType: 'keyvault',
    vault: 'v12',
  });
  assert.equal(formatVaultUri({ vaultType: 'managedhsm', vault: 'MyHSM' }), 'managedhsm:MyHSM:');
  for (const bad of [
    'managedhsm:',
    'managedhsm::',
    'managedhsm:MyHSM:key',
    'managedhsm:ab:',
    'managedhsm:MyHSM:?version=x',
    'akv:vault=MyHSM,name=k',
    'akv:type=keyvault',
    'vault:MyHSM:',
  ]) {
    assert.throws(
      () => parseVaultUri(bad),
      (err: unknown) => {
        assert.ok(err instanceof AkvError && err.code === 'BAD_URI', bad);
        assert.match(err.message, /managedhsm:<hsm>:/);
        return true;
      },
      bad,
    );
  }
});
