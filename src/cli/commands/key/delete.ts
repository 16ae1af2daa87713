/** `akv key delete`: deletes a key (soft delete, as the HSM does it). */
import { keyBundleJson } from '../../util/key-bundle.js';
import { agentForgets, namedTarget, type KeyCommandContext } from './context.js';

export default async function deleteKey(ctx: KeyCommandContext): Promise<unknown> {
  const t = namedTarget(ctx);
  const client = ctx.clients.keyClient(t.vaultType, t.vault);
  const { value } = await ctx.clients.run(
    ctx.clients.keyContext(t, 'delete key'),
    async (abortSignal) => {
      // The first poll sends the DELETE; waiting for the purge-able state is not needed here.
      const poller = await client.beginDeleteKey(t.name, { abortSignal });
      return poller.getResult();
    },
    false,
  );
  await agentForgets(ctx, t);
  return value ? keyBundleJson(value) : { deleted: t.name };
}
