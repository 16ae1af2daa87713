/**
 * `akv key set-attributes`: enable/disable a key (or one version), set or clear its expiry and
 * not-before dates, its operations and tags, as `az keyvault key set-attributes` does.
 */
import type { UpdateKeyPropertiesOptions } from '@azure/keyvault-keys';
import { UsageError } from '../../command.js';
import { str } from '../../util/args.js';
import { keyOps, tags } from '../../util/key-options.js';
import { keyBundleJson } from '../../util/key-bundle.js';
import { releasePolicyOption } from '../../util/release-policy-option.js';
import { agentForgets, namedTarget, type KeyCommandContext } from './context.js';

function bool(ctx: KeyCommandContext, name: string): boolean | undefined {
  const v = str(ctx.p, name);
  if (v === undefined) return undefined;
  if (/^(true|yes|1)$/i.test(v)) return true;
  if (/^(false|no|0)$/i.test(v)) return false;
  throw new UsageError(`key ${ctx.sub}: --${name} takes true or false, got ${JSON.stringify(v)}`);
}

/** A date option: ISO 8601 (`2027-01-31`, `2027-01-31T12:00:00Z`), as az takes it. */
export function dateOption(ctx: KeyCommandContext, name: string): Date | undefined {
  const v = str(ctx.p, name);
  if (v === undefined) return undefined;
  const d = /^\d{4}-\d{2}-\d{2}([T ][0-9:.]+(Z|[+-]\d{2}:?\d{2})?)?$/.test(v)
    ? new Date(v)
    : undefined;
  if (!d || Number.isNaN(d.getTime()))
    throw new UsageError(
      `key ${ctx.sub}: --${name} takes an ISO 8601 date such as 2027-01-31 or 2027-01-31T12:00:00Z, got ${JSON.stringify(v)}`,
    );
  return d;
}

export default async function setAttributes(ctx: KeyCommandContext): Promise<unknown> {
  const t = namedTarget(ctx);
  const options: UpdateKeyPropertiesOptions = {};
  const enabled = bool(ctx, 'enabled');
  if (enabled !== undefined) options.enabled = enabled;
  const expires = dateOption(ctx, 'expires');
  if (expires) options.expiresOn = expires;
  const notBefore = dateOption(ctx, 'not-before');
  if (notBefore) options.notBefore = notBefore;
  const ops = keyOps(ctx.p, ctx.sub);
  if (ops) options.keyOps = ops;
  const tagMap = tags(ctx.p, ctx.sub);
  if (tagMap) options.tags = tagMap;
  const releasePolicy = releasePolicyOption(ctx.p, ctx.sub);
  if (releasePolicy) options.releasePolicy = releasePolicy;
  if (Object.keys(options).length === 0)
    throw new UsageError(
      `key ${ctx.sub}: nothing to change: give --enabled, --expires, --not-before, --ops, --tags or --policy`,
    );
  const client = ctx.clients.keyClient(t.vaultType, t.vault);
  const { value } = await ctx.clients.run(
    ctx.clients.keyContext(t, 'update key attributes'),
    (abortSignal) =>
      t.version
        ? client.updateKeyProperties(t.name, t.version, { ...options, abortSignal })
        : client.updateKeyProperties(t.name, { ...options, abortSignal }),
  );
  await agentForgets(ctx, t);
  return keyBundleJson(value);
}
