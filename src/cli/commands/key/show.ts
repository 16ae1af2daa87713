/** `akv key show`: one key (or one version of it), az-shaped JSON. */
import { keyBundleJson } from '../../util/key-bundle.js';
import { namedTarget, type KeyCommandContext } from './context.js';

export default async function show(ctx: KeyCommandContext): Promise<unknown> {
  const t = namedTarget(ctx);
  const client = ctx.clients.keyClient(t.vaultType, t.vault);
  const { value } = await ctx.clients.run(ctx.clients.keyContext(t, 'get key'), (abortSignal) =>
    client.getKey(t.name, { abortSignal, ...(t.version ? { version: t.version } : {}) }),
  );
  return keyBundleJson(value);
}
