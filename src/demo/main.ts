/**
 * `npm run demo` (interim, until the keyless-TLS demo replaces it): starts the emulator, creates
 * an RSA and an EC key, signs with the HSM and verifies locally with the public key, wraps and
 * unwraps with an AES key, prints a summary table and exits 0 only if every step worked.
 */
import { createPublicKey, randomBytes, verify, constants, type KeyObject } from 'node:crypto';
import {
  CryptographyClient,
  KeyClient,
  type KeyVaultKey,
  type SignatureAlgorithm,
} from '@azure/keyvault-keys';
import { startEmulatorProcess } from './emulator-process.js';

interface Row {
  step: string;
  key: string;
  detail: string;
  ok: boolean;
}

const rows: Row[] = [];

async function step(stepName: string, key: string, work: () => Promise<string>): Promise<void> {
  try {
    rows.push({ step: stepName, key, detail: await work(), ok: true });
  } catch (err) {
    rows.push({ step: stepName, key, detail: (err as Error).message, ok: false });
  }
}

function publicKeyOf(key: KeyVaultKey): KeyObject {
  const jwk = key.key;
  const b64 = (bytes: Uint8Array | undefined) =>
    Buffer.from(bytes ?? new Uint8Array()).toString('base64url');
  if (jwk?.n)
    return createPublicKey({ key: { kty: 'RSA', n: b64(jwk.n), e: b64(jwk.e) }, format: 'jwk' });
  return createPublicKey({
    key: { kty: 'EC', crv: jwk?.crv, x: b64(jwk?.x), y: b64(jwk?.y) },
    format: 'jwk',
  });
}

async function signAndVerify(
  crypto: CryptographyClient,
  key: KeyVaultKey,
  alg: SignatureAlgorithm,
): Promise<string> {
  const data = Buffer.from(`akv demo: data signed with ${alg}`);
  const hash = `sha${alg.slice(2, 5)}`;
  const signed = await crypto.signData(alg, data);
  const publicKey = publicKeyOf(key);
  const options = alg.startsWith('PS')
    ? {
        key: publicKey,
        padding: constants.RSA_PKCS1_PSS_PADDING,
        saltLength: Number(alg.slice(2)) / 8,
      }
    : alg.startsWith('ES')
      ? { key: publicKey, dsaEncoding: 'ieee-p1363' as const }
      : publicKey;
  if (!verify(hash, data, options, signed.result))
    throw new Error(`${alg} signature did not verify`);
  return `${alg}: ${signed.result.length}-byte signature verified locally`;
}

function printTable(): void {
  const headers = ['step', 'key', 'result', 'detail'];
  const body = rows.map((r) => [r.step, r.key, r.ok ? 'ok' : 'FAILED', r.detail]);
  const widths = headers.map((h, i) =>
    Math.max(h.length, ...body.map((cells) => (cells[i] as string).length)),
  );
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i] as number))
      .join('  ')
      .trimEnd();
  console.log(line(headers));
  console.log(line(widths.map((w) => '-'.repeat(w))));
  for (const cells of body) console.log(line(cells));
}

async function main(): Promise<number> {
  console.log('akv demo: starting the Managed HSM emulator...');
  const emulator = await startEmulatorProcess();
  console.log(`akv demo: emulator at ${emulator.url}\n`);
  try {
    const credential = {
      getToken: () =>
        Promise.resolve({ token: 'demo-token', expiresOnTimestamp: Date.now() + 3600_000 }),
    };
    const options = {
      tlsOptions: { ca: emulator.caPem },
      disableChallengeResourceVerification: true,
    };
    const keys = new KeyClient(emulator.url, credential, options);
    const cryptoFor = (key: KeyVaultKey) => new CryptographyClient(key, credential, options);

    let rsa: KeyVaultKey | undefined;
    let ec: KeyVaultKey | undefined;
    let aes: KeyVaultKey | undefined;
    await step('create', 'demo-rsa', async () => {
      rsa = await keys.createRsaKey('demo-rsa', { hsm: true, keySize: 2048 });
      return `RSA-HSM 2048, version ${rsa.properties.version}`;
    });
    await step('create', 'demo-ec', async () => {
      ec = await keys.createEcKey('demo-ec', { hsm: true, curve: 'P-256' });
      return `EC-HSM P-256, version ${ec.properties.version}`;
    });
    await step('create', 'demo-aes', async () => {
      aes = await keys.createOctKey('demo-aes', { hsm: true, keySize: 256 });
      return `oct-HSM 256, version ${aes.properties.version}`;
    });
    for (const alg of ['RS256', 'PS256'] as const) {
      await step('sign+verify', 'demo-rsa', () => {
        if (!rsa) throw new Error('no RSA key');
        return signAndVerify(cryptoFor(rsa), rsa, alg);
      });
    }
    await step('sign+verify', 'demo-ec', () => {
      if (!ec) throw new Error('no EC key');
      return signAndVerify(cryptoFor(ec), ec, 'ES256');
    });
    await step('wrap+unwrap', 'demo-aes', async () => {
      if (!aes) throw new Error('no AES key');
      const crypto = cryptoFor(aes);
      const dataKey = randomBytes(32);
      const wrapped = await crypto.wrapKey('A256KW', dataKey);
      const unwrapped = await crypto.unwrapKey('A256KW', wrapped.result);
      if (!Buffer.from(unwrapped.result).equals(dataKey)) throw new Error('unwrapped key differs');
      return `A256KW: 32-byte key wrapped to ${wrapped.result.length} bytes and back`;
    });
  } finally {
    await emulator.stop();
  }
  console.log('');
  printTable();
  const failed = rows.filter((r) => !r.ok).length;
  console.log(
    failed === 0
      ? `\nakv demo: all ${rows.length} steps passed`
      : `\nakv demo: ${failed} step(s) FAILED`,
  );
  return failed === 0 ? 0 : 1;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    console.error(`akv demo: ${(err as Error).message}`);
    process.exitCode = 1;
  },
);
