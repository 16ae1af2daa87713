/** `akv key rotate`: a new version with the current version's type, size and operations. */
import { createSpec, keyOps, type CreateSpec } from '../../util/key-options.js';
import { keyBundleJson } from '../../util/key-bundle.js';
import { agentForgets, namedTarget, type KeyCommandContext } from './context.js';
import { createKey } from './create.js';

function rsaBits(n: Uint8Array): number {
  let i = 0;
  while (i < n.length && n[i] === 0) i++;
  return (n.length - i) * 8;
}

export default async function rotate(ctx: KeyCommandContext): Promise<unknown> {
  const t = namedTarget(ctx);
  const client = ctx.clients.keyClient(t.vaultType, t.vault);
  const current = (
    await ctx.clients.run(ctx.clients.keyContext(t, 'get key'), (abortSignal) =>
      client.getKey(t.name, { abortSignal }),
    )
  ).value;
  const fallback: CreateSpec = { kty: current.key?.kty ?? current.keyType ?? '' };
  if (current.key?.crv) fallback.curve = current.key.crv;
  if (current.key?.n) fallback.size = rsaBits(current.key.n);
  const spec = createSpec(ctx.p, t, ctx.sub, fallback);
  const ops =
    keyOps(ctx.p, ctx.sub) ?? (current.keyOperations ? [...current.keyOperations] : undefined);
  const created = await createKey(ctx, t, spec, ops);
  await agentForgets(ctx, t);
  return keyBundleJson(created);
}
