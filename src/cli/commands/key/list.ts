/** `akv key list`: the keys of an HSM or vault, or (--include-versions --name) one key's versions. */
import { flag } from '../../util/args.js';
import { target } from '../../util/key-options.js';
import { keyListEntryJson, keyVersionEntryJson } from '../../util/key-bundle.js';
import type { KeyCommandContext } from './context.js';

export default async function list(ctx: KeyCommandContext): Promise<unknown> {
  const versions = flag(ctx.p, 'include-versions');
  const t = target(ctx.p, ctx.sub, versions);
  const client = ctx.clients.keyClient(t.vaultType, t.vault);
  const name = t.name;
  if (versions && name !== undefined) {
    const keyCtx = ctx.clients.keyContext({ ...t, name }, 'list key versions');
    const { value } = await ctx.clients.run(keyCtx, async (abortSignal) => {
      const out: Record<string, unknown>[] = [];
      for await (const v of client.listPropertiesOfKeyVersions(name, { abortSignal }))
        out.push(keyVersionEntryJson(v));
      return out;
    });
    return value;
  }
  const { value } = await ctx.clients.run(
    ctx.clients.vaultContext(t.vaultType, t.vault, 'list keys'),
    async (abortSignal) => {
      const out: Record<string, unknown>[] = [];
      for await (const k of client.listPropertiesOfKeys({ abortSignal }))
        out.push(keyListEntryJson(k));
      return out;
    },
  );
  return value.sort((a, b) => String(a.name).localeCompare(String(b.name)));
}
