/** `akv key create`: a new key (also the second half of `akv key rotate`). */
import type { KeyVaultKey } from '@azure/keyvault-keys';
import { flag } from '../../util/args.js';
import { createSpec, keyOps, tags, type CreateSpec } from '../../util/key-options.js';
import { keyBundleJson } from '../../util/key-bundle.js';
import { exportableOption, releasePolicyOption } from '../../util/release-policy-option.js';
import { namedTarget, type KeyCommandContext, type NamedTarget } from './context.js';

/** Creates a key (or a new version of one) with the given type, size/curve and operations. */
export async function createKey(
  ctx: KeyCommandContext,
  t: NamedTarget,
  spec: CreateSpec,
  ops: string[] | undefined,
): Promise<KeyVaultKey> {
  const client = ctx.clients.keyClient(t.vaultType, t.vault);
  const keyCtx = ctx.clients.keyContext(t, `${ctx.sub} key`);
  const tagMap = tags(ctx.p, ctx.sub);
  const exportable = exportableOption(ctx.p, ctx.sub);
  const releasePolicy = releasePolicyOption(ctx.p, ctx.sub);
  const { value } = await ctx.clients.run(
    keyCtx,
    (abortSignal) =>
      client.createKey(t.name, spec.kty, {
        abortSignal,
        ...(spec.size !== undefined ? { keySize: spec.size } : {}),
        ...(spec.curve !== undefined ? { curve: spec.curve } : {}),
        ...(ops ? { keyOps: ops } : {}),
        ...(tagMap ? { tags: tagMap } : {}),
        ...(flag(ctx.p, 'disabled') ? { enabled: false } : {}),
        ...(exportable !== undefined ? { exportable } : {}),
        ...(releasePolicy ? { releasePolicy } : {}),
      }),
    false,
  );
  return value;
}

export default async function create(ctx: KeyCommandContext): Promise<unknown> {
  const t = namedTarget(ctx);
  const spec = createSpec(ctx.p, t, ctx.sub);
  return keyBundleJson(await createKey(ctx, t, spec, keyOps(ctx.p, ctx.sub)));
}
