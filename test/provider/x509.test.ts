/**
 * Certificates with HSM keys, as a person makes them with openssl: a CSR (`req -new`, checked by
 * `req -verify`), self-signed certificates with PKCS#1 v1.5 and RSA-PSS (`req -x509`, checked by
 * `openssl verify`), a small CA whose key is in the HSM signing a leaf (`x509 -req -CAkey URI`),
 * key-reference files (`akv keyref`), and `?version=` pinning after `akv key rotate`.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { PROVIDERS, startProviderEnv, type ProviderEnv } from './openssl-env.js';

let pe: ProviderEnv;
let rsaUri: string;
let ecUri: string;

before(async () => {
  pe = await startProviderEnv('x509', 'x509hsm');
  rsaUri = pe.createKey('ca-rsa', '--kty', 'RSA-HSM', '--size', '3072');
  ecUri = pe.createKey('leaf-ec', '--kty', 'EC-HSM', '--curve', 'P-384');
});

after(async () => {
  await pe?.down();
});

function verifyCert(ca: string, cert: string): void {
  const r = pe.opensslOk(['verify', '-CAfile', ca, cert]);
  assert.match(r.stdout, /: OK/);
}

describe('openssl req and x509 with HSM keys', () => {
  it('req -new makes a CSR whose self-signature req -verify accepts (RSA and EC)', () => {
    for (const [uri, name] of [
      [rsaUri, 'rsa'],
      [ecUri, 'ec'],
    ]) {
      const csr = pe.file(`${name}.csr`);
      pe.opensslOk([
        'req',
        ...PROVIDERS,
        '-new',
        '-key',
        uri as string,
        '-subj',
        `/CN=${name}.example`,
        '-out',
        csr,
      ]);
      const r = pe.opensslOk(['req', '-verify', '-in', csr, '-noout']);
      assert.match(`${r.stdout}${r.stderr}`, /verify OK|self-signature ok/i);
    }
  });

  it('req -x509 self-signed with PKCS#1 v1.5 verifies', () => {
    const crt = pe.file('self-pkcs1.crt');
    pe.opensslOk([
      'req',
      ...PROVIDERS,
      '-new',
      '-x509',
      '-key',
      rsaUri,
      '-subj',
      '/CN=pkcs1',
      '-days',
      '30',
      '-out',
      crt,
    ]);
    verifyCert(crt, crt);
    const text = pe.opensslOk(['x509', '-in', crt, '-noout', '-text']).stdout;
    assert.match(text, /Signature Algorithm: sha256WithRSAEncryption/);
  });

  it('req -x509 self-signed with RSA-PSS carries RFC 4055 parameters and verifies', () => {
    const crt = pe.file('self-pss.crt');
    pe.opensslOk([
      'req',
      ...PROVIDERS,
      '-new',
      '-x509',
      '-key',
      rsaUri,
      '-sha384',
      '-sigopt',
      'rsa_padding_mode:pss',
      '-sigopt',
      'rsa_pss_saltlen:digest',
      '-subj',
      '/CN=pss',
      '-days',
      '30',
      '-out',
      crt,
    ]);
    verifyCert(crt, crt);
    const text = pe.opensslOk(['x509', '-in', crt, '-noout', '-text']).stdout;
    assert.match(text, /Signature Algorithm: rsassaPss/);
    assert.match(text, /Hash Algorithm: sha384/);
    assert.match(text, /Mask Algorithm: mgf1 with sha384/);
    assert.match(text, /Salt Length: 0x30/);
  });

  it('a CA key in the HSM signs a leaf CSR with x509 -req -CAkey, and the chain verifies', () => {
    const ca = pe.file('ca.crt');
    pe.opensslOk([
      'req',
      ...PROVIDERS,
      '-new',
      '-x509',
      '-key',
      rsaUri,
      '-subj',
      '/CN=HSM Test CA',
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign',
      '-days',
      '30',
      '-out',
      ca,
    ]);
    const csr = pe.file('leaf.csr');
    pe.opensslOk([
      'req',
      ...PROVIDERS,
      '-new',
      '-key',
      ecUri,
      '-subj',
      '/CN=leaf.example',
      '-out',
      csr,
    ]);
    const leaf = pe.file('leaf.crt');
    pe.opensslOk([
      'x509',
      ...PROVIDERS,
      '-req',
      '-in',
      csr,
      '-CA',
      ca,
      '-CAkey',
      rsaUri,
      '-CAcreateserial',
      '-days',
      '5',
      '-out',
      leaf,
    ]);
    verifyCert(ca, leaf);
    // The leaf's key is the HSM key: it matches the public key exported through the provider.
    const leafPub = pe.opensslOk(['x509', '-in', leaf, '-noout', '-pubkey']).stdout;
    const hsmPub = pe.opensslOk(['pkey', ...PROVIDERS, '-in', ecUri, '-pubout']).stdout;
    assert.equal(leafPub, hsmPub);
  });
});

describe('software keys next to HSM keys (akv_provider loaded first)', () => {
  it('genpkey and req -newkey still make ordinary keys, which sign and decrypt locally', () => {
    const ec = pe.file('soft-ec.pem');
    pe.opensslOk([
      'genpkey',
      ...PROVIDERS,
      '-algorithm',
      'EC',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-out',
      ec,
    ]);
    assert.match(readFileSync(ec, 'utf8'), /BEGIN PRIVATE KEY/);
    const rsa = pe.file('soft-rsa.pem');
    pe.opensslOk([
      'genpkey',
      ...PROVIDERS,
      '-algorithm',
      'RSA',
      '-pkeyopt',
      'rsa_keygen_bits:2048',
      '-out',
      rsa,
    ]);
    const crt = pe.file('soft.crt');
    pe.opensslOk([
      'req',
      ...PROVIDERS,
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-384',
      '-nodes',
      '-keyout',
      pe.file('soft-new.pem'),
      '-subj',
      '/CN=soft',
      '-x509',
      '-days',
      '1',
      '-out',
      crt,
    ]);
    verifyCert(crt, crt);
    const data = pe.file('soft.txt');
    writeFileSync(data, 'software key');
    const sig = pe.file('soft.sig');
    pe.opensslOk(['dgst', '-sha256', ...PROVIDERS, '-sign', ec, '-out', sig, data]);
    pe.opensslOk(['dgst', '-sha256', '-prverify', ec, '-signature', sig, data]);
    const ct = pe.file('soft.ct');
    pe.opensslOk(['pkeyutl', ...PROVIDERS, '-encrypt', '-inkey', rsa, '-in', data, '-out', ct]);
    assert.equal(
      pe.opensslOk(['pkeyutl', ...PROVIDERS, '-decrypt', '-inkey', rsa, '-in', ct]).stdout,
      'software key',
    );
  });
});

describe('key-reference files (akv keyref)', () => {
  it('akv keyref writes a PEM that openssl reads as the HSM key', () => {
    const ref = pe.file('ec.ref.pem');
    pe.akv(['keyref', ecUri, '--out', ref]);
    const pem = readFileSync(ref, 'utf8');
    assert.match(pem, /^-----BEGIN AKV KEY REFERENCE-----\n/);
    const asn1 = pe.opensslOk(['asn1parse', '-in', ref]).stdout;
    assert.match(asn1, /INTEGER +:01/);
    assert.ok(asn1.includes(`UTF8STRING        :${ecUri}`), asn1);
    const fromRef = pe.opensslOk(['pkey', ...PROVIDERS, '-in', ref, '-pubout']).stdout;
    const fromUri = pe.opensslOk(['pkey', ...PROVIDERS, '-in', ecUri, '-pubout']).stdout;
    assert.equal(fromRef, fromUri);
  });

  it('a key reference signs a CSR like the URI does (req -key ref.pem)', () => {
    const ref = pe.file('rsa.ref.pem');
    pe.akv(['keyref', rsaUri, '--out', ref]);
    const csr = pe.file('ref.csr');
    pe.opensslOk([
      'req',
      ...PROVIDERS,
      '-new',
      '-key',
      ref,
      '-subj',
      '/CN=ref.example',
      '-out',
      csr,
    ]);
    pe.opensslOk(['req', '-verify', '-in', csr, '-noout']);
  });

  it('akv keyref refuses a malformed URI before writing anything', () => {
    const bad = pe.akvRun(['keyref', 'managedhsm:x', '--out', pe.file('bad.ref.pem')]);
    assert.notEqual(bad.status, 0);
    assert.match(bad.stderr, /invalid key URI/);
    assert.equal(existsSync(pe.file('bad.ref.pem')), false);
  });
});

describe('key commands and the running agent agree', () => {
  for (const [command, change] of [
    ['rotate', (name: string) => pe.akv(['key', 'rotate', '--hsm-name', pe.hsm, '--name', name])],
    [
      'import',
      (name: string) => {
        const pem = pe.file(`${name}-imported.pem`);
        pe.opensslOk([
          'genpkey',
          '-algorithm',
          'EC',
          '-pkeyopt',
          'ec_paramgen_curve:P-256',
          '-out',
          pem,
        ]);
        pe.akv(['key', 'import', '--hsm-name', pe.hsm, '--name', name, '--pem-file', pem]);
      },
    ],
  ] as const) {
    it(`after akv key ${command}, the next unpinned load gets the new public key at once`, () => {
      const name = `agree-${command}`;
      const uri = pe.createKey(name, '--kty', 'EC-HSM', '--curve', 'P-256');
      // Loaded once: the agent now caches this description (keyCacheTtlMs is minutes).
      const before = pe.opensslOk(['pkey', ...PROVIDERS, '-in', uri, '-pubout']).stdout;
      change(name);
      const shown = JSON.parse(
        pe.akv(['key', 'show', '--hsm-name', pe.hsm, '--name', name]).stdout,
      ) as {
        key: { kid: string };
      };
      const current = shown.key.kid.split('/').pop() ?? '';
      const expected = pe.opensslOk([
        'pkey',
        ...PROVIDERS,
        '-in',
        `${uri}?version=${current}`,
        '-pubout',
      ]).stdout;
      const after = pe.opensslOk(['pkey', ...PROVIDERS, '-in', uri, '-pubout']).stdout;
      assert.notEqual(after, before, 'the agent still served the old version');
      assert.equal(after, expected);
    });
  }

  it('after akv key delete, loading the key says it does not exist', () => {
    const uri = pe.createKey('agree-delete', '--kty', 'EC-HSM', '--curve', 'P-256');
    pe.opensslOk(['pkey', ...PROVIDERS, '-in', uri, '-pubout']);
    pe.akv(['key', 'delete', '--hsm-name', pe.hsm, '--name', 'agree-delete']);
    const r = pe.openssl(['pkey', ...PROVIDERS, '-in', uri, '-pubout']);
    assert.notEqual(r.status, 0);
    assert.match(
      r.stderr,
      /akv_provider:akv_describe:key not found:.*describe: .*agree-delete.*; hint: /,
    );
  });
});

describe('?version= pinning', () => {
  it('after akv key rotate, the pinned old version still signs with the old key', () => {
    const uri = pe.createKey('rotating', '--kty', 'EC-HSM', '--curve', 'P-256');
    const shown = JSON.parse(
      pe.akv(['key', 'show', '--hsm-name', pe.hsm, '--name', 'rotating']).stdout,
    ) as {
      key: { kid: string };
    };
    const oldVersion = shown.key.kid.split('/').pop() ?? '';
    assert.match(oldVersion, /^[0-9a-f]{32}$/);
    const oldPub = pe.file('old.pub');
    pe.opensslOk(['pkey', ...PROVIDERS, '-in', uri, '-pubout', '-out', oldPub]);

    pe.akv(['key', 'rotate', '--hsm-name', pe.hsm, '--name', 'rotating']);
    const rotated = JSON.parse(
      pe.akv(['key', 'show', '--hsm-name', pe.hsm, '--name', 'rotating']).stdout,
    ) as {
      key: { kid: string };
    };
    const newVersion = rotated.key.kid.split('/').pop() ?? '';
    assert.notEqual(newVersion, oldVersion);
    const newPub = pe.file('new.pub');
    pe.opensslOk([
      'pkey',
      ...PROVIDERS,
      '-in',
      `${uri}?version=${newVersion}`,
      '-pubout',
      '-out',
      newPub,
    ]);
    assert.notEqual(readFileSync(oldPub, 'utf8'), readFileSync(newPub, 'utf8'));

    const data = pe.file('data.txt');
    pe.openssl(['rand', '-out', data, '100']);
    const pinned = `${uri}?version=${oldVersion}`;
    const sig = pe.file('pinned.sig');
    pe.opensslOk(['dgst', '-sha256', ...PROVIDERS, '-sign', pinned, '-out', sig, data]);
    pe.opensslOk(['dgst', '-sha256', '-verify', oldPub, '-signature', sig, data]);
    assert.notEqual(
      pe.openssl(['dgst', '-sha256', '-verify', newPub, '-signature', sig, data]).status,
      0,
    );

    // The pinned URI's public key is the old one, in both URI forms.
    const pinnedPub = pe.opensslOk(['pkey', ...PROVIDERS, '-in', pinned, '-pubout']).stdout;
    assert.equal(pinnedPub, readFileSync(oldPub, 'utf8'));
    const akvForm = `akv:vault=${pe.hsm},name=rotating,version=${oldVersion}`;
    assert.equal(pe.opensslOk(['pkey', ...PROVIDERS, '-in', akvForm, '-pubout']).stdout, pinnedPub);

    // The new version signs with the new key.
    const sig2 = pe.file('current.sig');
    pe.opensslOk([
      'dgst',
      '-sha256',
      ...PROVIDERS,
      '-sign',
      `${uri}?version=${newVersion}`,
      '-out',
      sig2,
      data,
    ]);
    pe.opensslOk(['dgst', '-sha256', '-verify', newPub, '-signature', sig2, data]);
    assert.notEqual(
      pe.openssl(['dgst', '-sha256', '-verify', oldPub, '-signature', sig2, data]).status,
      0,
    );

    // An unpinned load is a snapshot: whatever version describe saw is the one that signs, so the
    // signature always matches the public key the provider loaded (even across a rotation).
    const sig3 = pe.file('unpinned.sig');
    const loadedPub = pe.opensslOk(['pkey', ...PROVIDERS, '-in', uri, '-pubout']).stdout;
    pe.opensslOk(['dgst', '-sha256', ...PROVIDERS, '-sign', uri, '-out', sig3, data]);
    const loadedPubFile = pe.file('loaded.pub');
    writeFileSync(loadedPubFile, loadedPub);
    pe.opensslOk(['dgst', '-sha256', '-verify', loadedPubFile, '-signature', sig3, data]);
  });
});
