/**
 * The agent's side of the PKCS#11 module: LIST_VAULTS answers the config's HSM names in order,
 * and DESCRIBE carries the certificate `vaults.<hsm>.certificates.<key>` names only when it is
 * that key's certificate. A missing file, a file that is not a certificate, or another key's
 * certificate (a config edited by hand) is left out with a warning in the agent log, and the key
 * stays usable; a renewed certificate file shows without a reload. Config validation of the
 * field itself (bad key name, empty path).
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { AgentClient } from '../../src/client/agent-client.js';
import { parseConfigObject } from '../../src/config/load.js';
import { Op, Tag } from '../../src/protocol/index.js';
import { PROVIDERS, startProviderEnv, type ProviderEnv } from '../provider/openssl-env.js';

let pe: ProviderEnv;
let client: AgentClient;
const HSM = 'certhsm';

function certificateFor(key: string, file: string): string {
  pe.opensslOk([
    'req',
    '-new',
    '-x509',
    ...PROVIDERS,
    '-key',
    `managedhsm:${HSM}:${key}`,
    '-subj',
    `/CN=${key}`,
    '-days',
    '2',
    '-out',
    file,
  ]);
  return file;
}

/** Writes vaults.<HSM>.certificates into the agent's config and has it reload (SIGHUP). */
async function configure(certificates: Record<string, string>): Promise<void> {
  const path = pe.env.AKV_CONFIG ?? '';
  const config = JSON.parse(readFileSync(path, 'utf8')) as {
    vaults: Record<string, Record<string, unknown>>;
  };
  const vault = config.vaults[HSM] ?? {};
  vault.certificates = certificates;
  config.vaults[HSM] = vault;
  writeFileSync(path, JSON.stringify(config, null, 2));
  // Waits for the agent's "configuration reloaded" line (a fixed pause loses on a busy machine).
  const reloads = () => agentLog().split('SIGHUP: configuration reloaded').length;
  const before = reloads();
  process.kill(Number(readFileSync(join(pe.dir, 'dev', 'agent.pid'), 'utf8').trim()), 'SIGHUP');
  for (let i = 0; i < 300 && reloads() === before; i++) await new Promise((r) => setTimeout(r, 50));
  assert.ok(reloads() > before, `the agent did not reload its config:\n${agentLog().slice(-2000)}`);
}

async function describedCertificate(key: string): Promise<Buffer | undefined> {
  const r = await client.request(Op.DESCRIBE, [
    { tag: Tag.URI, value: Buffer.from(`managedhsm:${HSM}:${key}`) },
  ]);
  const f = r.fields.find((x) => x.tag === Tag.CERTIFICATE);
  return f ? Buffer.from(f.value) : undefined;
}

function agentLog(): string {
  return readFileSync(join(pe.dir, 'dev', 'agent.log'), 'utf8');
}

before(async () => {
  pe = await startProviderEnv('pkcs11-certs', HSM);
  pe.createKey('k1', '--kty', 'EC-HSM', '--curve', 'P-256');
  pe.createKey('k2', '--kty', 'EC-HSM', '--curve', 'P-256');
  client = await AgentClient.connect(pe.env.AKV_AGENT_SOCKET ?? '', { clientName: 'test' });
});

after(async () => {
  await client?.close();
  await pe?.down();
});

describe('agent: LIST_VAULTS and DESCRIBE certificates', () => {
  it("LIST_VAULTS answers the config's HSM names", async () => {
    const r = await client.request(Op.LIST_VAULTS, []);
    const names = r.fields.find((f) => f.tag === Tag.VAULT_NAMES);
    assert.equal(Buffer.from(names?.value ?? []).toString(), HSM);
  });

  it("the key's own certificate is sent as DER; another key's, a missing file, a non-certificate are not", async () => {
    const own = certificateFor('k1', pe.file('k1.pem'));
    const other = certificateFor('k2', pe.file('k2.pem'));
    writeFileSync(pe.file('not-a-cert.pem'), 'hello\n');
    await configure({ k1: own, k2: other });
    const der = pe.opensslOk(['x509', '-in', own, '-outform', 'DER']).out;
    assert.deepEqual(await describedCertificate('k1'), der);

    await configure({ k1: other, k2: pe.file('missing.pem') });
    assert.equal(await describedCertificate('k1'), undefined);
    assert.equal(await describedCertificate('k2'), undefined);
    assert.match(
      agentLog(),
      /certificate file .*k2\.pem is for another key than managedhsm:certhsm:k1: not presented/,
    );
    assert.match(
      agentLog(),
      /certificate file .*missing\.pem for managedhsm:certhsm:k2 cannot be used: not presented/,
    );

    await configure({ k1: pe.file('not-a-cert.pem') });
    assert.equal(await describedCertificate('k1'), undefined);
    assert.match(
      agentLog(),
      /certificate file .*not-a-cert\.pem for managedhsm:certhsm:k1 cannot be used/,
    );
    // the key itself is still usable
    const info = await client.describe(`managedhsm:${HSM}:k1`);
    assert.equal(info.keyType, 'EC');
  });

  it('a renewed certificate file shows without a reload', async () => {
    const file = pe.file('renewed.pem');
    certificateFor('k1', file);
    await configure({ k1: file });
    const first = await describedCertificate('k1');
    certificateFor('k1', file);
    const second = await describedCertificate('k1');
    assert.ok(first && second && !first.equals(second));
    assert.deepEqual(second, pe.opensslOk(['x509', '-in', file, '-outform', 'DER']).out);
  });

  it('config: a bad key name or an empty path in certificates is refused with the field', () => {
    assert.throws(
      () => parseConfigObject({ vaults: { h1x: { certificates: { 'bad name': '/x.pem' } } } }),
      /field "vaults\.h1x\.certificates\.bad name" is not a valid key name/,
    );
    assert.throws(
      () => parseConfigObject({ vaults: { h1x: { certificates: { k: '' } } } }),
      /field "vaults\.h1x\.certificates\.k" must be a non-empty string/,
    );
    const c = parseConfigObject(
      { vaults: { h1x: { certificates: { k: 'rel.pem' } } } },
      '/etc/akv/config.json',
    );
    assert.equal(c.vaults.h1x?.certificates?.k, '/etc/akv/rel.pem');
  });
});
