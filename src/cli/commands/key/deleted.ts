/**
 * `akv key list-deleted|show-deleted|recover|purge`: the soft-deleted keys of an HSM. A deleted
 * key keeps its name for the retention period; recover brings it back, purge frees the name.
 */
import { target } from '../../util/key-options.js';
import { deletedKeyJson, deletedKeyListEntryJson, keyBundleJson } from '../../util/key-bundle.js';
import { agentForgets, namedTarget, type KeyCommandContext } from './context.js';

export async function listDeleted(ctx: KeyCommandContext): Promise<unknown> {
  const t = target(ctx.p, ctx.sub, false);
  const client = ctx.clients.keyClient(t.vaultType, t.vault);
  const { value } = await ctx.clients.run(
    ctx.clients.vaultContext(t.vaultType, t.vault, 'list deleted keys'),
    async (abortSignal) => {
      const out: Record<string, unknown>[] = [];
      for await (const k of client.listDeletedKeys({ abortSignal }))
        out.push(deletedKeyListEntryJson(k));
      return out;
    },
  );
  return value.sort((a, b) => String(a.name).localeCompare(String(b.name)));
}

export async function showDeleted(ctx: KeyCommandContext): Promise<unknown> {
  const t = namedTarget(ctx);
  const client = ctx.clients.keyClient(t.vaultType, t.vault);
  const { value } = await ctx.clients.run(
    ctx.clients.keyContext(t, 'get deleted key'),
    (abortSignal) => client.getDeletedKey(t.name, { abortSignal }),
  );
  return deletedKeyJson(value);
}

export async function recover(ctx: KeyCommandContext): Promise<unknown> {
  const t = namedTarget(ctx);
  const client = ctx.clients.keyClient(t.vaultType, t.vault);
  const { value } = await ctx.clients.run(
    ctx.clients.keyContext(t, 'recover deleted key'),
    async (abortSignal) => {
      const poller = await client.beginRecoverDeletedKey(t.name, { abortSignal });
      return poller.pollUntilDone({ abortSignal });
    },
    false,
  );
  await agentForgets(ctx, t);
  return keyBundleJson(value);
}

/** Prints nothing on success, as `az keyvault key purge` does. */
export async function purge(ctx: KeyCommandContext): Promise<unknown> {
  const t = namedTarget(ctx);
  const client = ctx.clients.keyClient(t.vaultType, t.vault);
  await ctx.clients.run(
    ctx.clients.keyContext(t, 'purge deleted key'),
    (abortSignal) => client.purgeDeletedKey(t.name, { abortSignal }),
    false,
  );
  return undefined;
}
