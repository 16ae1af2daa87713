/**
 * `akv key release`: secure key release of an exportable key to an attested environment
 * (`--target-attestation-token`, optional `--algorithm` and `--nonce`), like
 * `az keyvault key release`. Prints `{"value": <JWS>}`: the key wrapped for the token's key.
 */
import type { KeyExportEncryptionAlgorithm } from '@azure/keyvault-keys';
import { readFileSync } from 'node:fs';
import { UsageError } from '../../command.js';
import { str } from '../../util/args.js';
import { namedTarget, type KeyCommandContext } from './context.js';
import { errnoCode, errorMessage } from '../../../errors.js';
import { isOneOf } from '../../../guards.js';

const ALGORITHMS: readonly KeyExportEncryptionAlgorithm[] = [
  'CKM_RSA_AES_KEY_WRAP',
  'RSA_AES_KEY_WRAP_256',
  'RSA_AES_KEY_WRAP_384',
];

/** The token as given, or read from a file with `@FILE` (as az reads JSON arguments). */
function tokenOption(ctx: KeyCommandContext): string {
  const v = str(ctx.p, 'target-attestation-token');
  if (!v)
    throw new UsageError(`key ${ctx.sub}: --target-attestation-token TOKEN (or @FILE) is required`);
  if (!v.startsWith('@')) return v.trim();
  try {
    return readFileSync(v.slice(1), 'utf8').trim();
  } catch (err) {
    throw new UsageError(
      `key ${ctx.sub}: cannot read ${v.slice(1)}: ${errnoCode(err) ?? errorMessage(err)}`,
    );
  }
}

export default async function release(ctx: KeyCommandContext): Promise<unknown> {
  const t = namedTarget(ctx);
  const token = tokenOption(ctx);
  const algorithm = str(ctx.p, 'algorithm');
  if (algorithm !== undefined && !isOneOf(ALGORITHMS, algorithm))
    throw new UsageError(`key ${ctx.sub}: --algorithm takes ${ALGORITHMS.join(', ')}`);
  const nonce = str(ctx.p, 'nonce');
  const client = ctx.clients.keyClient(t.vaultType, t.vault);
  const { value } = await ctx.clients.run(ctx.clients.keyContext(t, 'release key'), (abortSignal) =>
    client.releaseKey(t.name, token, {
      abortSignal,
      ...(t.version ? { version: t.version } : {}),
      ...(algorithm ? { algorithm } : {}),
      ...(nonce !== undefined ? { nonce } : {}),
    }),
  );
  return { value: value.value };
}
