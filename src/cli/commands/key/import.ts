/** `akv key import`: a PEM or JWK private key becomes an HSM key. */
import { readFileSync } from 'node:fs';
import type { JsonWebKey } from '@azure/keyvault-keys';
import { UsageError } from '../../command.js';
import { flag, str } from '../../util/args.js';
import { keyOps, tags } from '../../util/key-options.js';
import { keyBundleJson, sdkJwkFromJson, sdkJwkFromPem } from '../../util/key-bundle.js';
import { agentForgets, namedTarget, type KeyCommandContext } from './context.js';
import { errnoCode, errorMessage } from '../../../errors.js';
import { isRecord } from '../../../guards.js';

function readJwk(ctx: KeyCommandContext): JsonWebKey {
  const pemFile = str(ctx.p, 'pem-file');
  const jwkFile = str(ctx.p, 'jwk-file');
  const file = pemFile ?? jwkFile;
  if (file === undefined || (pemFile !== undefined && jwkFile !== undefined))
    throw new UsageError('key import: give exactly one of --pem-file FILE or --jwk-file FILE');
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch (err) {
    throw new UsageError(`key import: cannot read ${file}: ${errnoCode(err) ?? errorMessage(err)}`);
  }
  if (pemFile !== undefined) return sdkJwkFromPem(bytes, pemFile, str(ctx.p, 'pem-password'));
  let json: unknown;
  try {
    json = JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    throw new UsageError(`key import: ${file} is not JSON: ${errorMessage(err)}`);
  }
  if (!isRecord(json)) throw new UsageError(`key import: ${file} must hold one JWK object`);
  return sdkJwkFromJson(json, file);
}

export default async function importKey(ctx: KeyCommandContext): Promise<unknown> {
  const t = namedTarget(ctx);
  const jwk = readJwk(ctx);
  if (!jwk.d && !jwk.k)
    throw new UsageError('key import: the file holds no private key material (d or k)');
  if (t.vaultType === 'managedhsm' && jwk.kty && !jwk.kty.endsWith('-HSM'))
    jwk.kty = `${jwk.kty}-HSM`;
  const ops = keyOps(ctx.p, ctx.sub);
  if (ops) jwk.keyOps = ops;
  const tagMap = tags(ctx.p, ctx.sub);
  const client = ctx.clients.keyClient(t.vaultType, t.vault);
  const { value } = await ctx.clients.run(
    ctx.clients.keyContext(t, 'import key'),
    (abortSignal) =>
      client.importKey(t.name, jwk, {
        abortSignal,
        ...(t.vaultType === 'managedhsm' ? { hardwareProtected: true } : {}),
        ...(tagMap ? { tags: tagMap } : {}),
        ...(flag(ctx.p, 'disabled') ? { enabled: false } : {}),
      }),
    false,
  );
  await agentForgets(ctx, t);
  return keyBundleJson(value);
}
