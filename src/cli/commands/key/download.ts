/**
 * `akv key download`: the public key of an HSM key as a file, PEM (SubjectPublicKeyInfo,
 * `-----BEGIN PUBLIC KEY-----`) or DER, like `az keyvault key download --file F --encoding PEM|DER`.
 * An existing file is never overwritten.
 */
import { createPublicKey } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { UsageError } from '../../command.js';
import { str } from '../../util/args.js';
import { namedTarget, type KeyCommandContext } from './context.js';
import { errnoCode, errorMessage } from '../../../errors.js';

const NODE_CURVE: Record<string, string> = {
  'P-256': 'P-256',
  'P-256K': 'secp256k1',
  'P-384': 'P-384',
  'P-521': 'P-521',
};

export default async function download(ctx: KeyCommandContext): Promise<unknown> {
  const t = namedTarget(ctx);
  const file = str(ctx.p, 'file');
  if (!file) throw new UsageError(`key ${ctx.sub}: --file FILE is required`);
  const encoding = (str(ctx.p, 'encoding') ?? 'PEM').toUpperCase();
  if (encoding !== 'PEM' && encoding !== 'DER')
    throw new UsageError(`key ${ctx.sub}: --encoding takes PEM or DER`);
  const client = ctx.clients.keyClient(t.vaultType, t.vault);
  const { value } = await ctx.clients.run(ctx.clients.keyContext(t, 'get key'), (abortSignal) =>
    client.getKey(t.name, { abortSignal, ...(t.version ? { version: t.version } : {}) }),
  );
  const jwk = value.key;
  const b64 = (v: Uint8Array | undefined): string => Buffer.from(v ?? []).toString('base64url');
  let keyJwk: Record<string, string>;
  if (jwk?.n && jwk.e) keyJwk = { kty: 'RSA', n: b64(jwk.n), e: b64(jwk.e) };
  else if (jwk?.x && jwk.y && jwk.crv)
    keyJwk = { kty: 'EC', crv: NODE_CURVE[jwk.crv] ?? jwk.crv, x: b64(jwk.x), y: b64(jwk.y) };
  else
    throw new UsageError(
      `key ${ctx.sub}: ${t.name} is a ${jwk?.kty ?? 'symmetric'} key: it has no public key to download`,
    );
  const key = createPublicKey({ key: keyJwk, format: 'jwk' });
  const out =
    encoding === 'PEM'
      ? key.export({ format: 'pem', type: 'spki' })
      : key.export({ format: 'der', type: 'spki' });
  try {
    writeFileSync(file, out, { flag: 'wx', mode: 0o644 });
  } catch (err) {
    const code = errnoCode(err);
    throw new UsageError(
      code === 'EEXIST'
        ? `key ${ctx.sub}: ${file} already exists; remove it or choose another --file`
        : `key ${ctx.sub}: cannot write ${file}: ${code ?? errorMessage(err)}`,
    );
  }
  return undefined;
}
