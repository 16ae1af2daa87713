/**
 * `akv key backup --file F` / `akv key restore --file F`: the HSM's opaque, protected backup of
 * a key (every version) to a file and back. A backup restores only into the same HSM (security
 * domain); backup never overwrites an existing file.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { UsageError } from '../../command.js';
import { str } from '../../util/args.js';
import { target } from '../../util/key-options.js';
import { keyBundleJson } from '../../util/key-bundle.js';
import { namedTarget, type KeyCommandContext } from './context.js';
import { errnoCode, errorMessage } from '../../../errors.js';

function fileOption(ctx: KeyCommandContext): string {
  const file = str(ctx.p, 'file');
  if (!file) throw new UsageError(`key ${ctx.sub}: --file FILE is required`);
  return file;
}

export async function backup(ctx: KeyCommandContext): Promise<unknown> {
  const t = namedTarget(ctx);
  const file = fileOption(ctx);
  const client = ctx.clients.keyClient(t.vaultType, t.vault);
  const { value } = await ctx.clients.run(ctx.clients.keyContext(t, 'back up key'), (abortSignal) =>
    client.backupKey(t.name, { abortSignal }),
  );
  if (!value || value.length === 0)
    throw new Error(`the HSM returned an empty backup of ${t.name}`);
  try {
    writeFileSync(file, value, { flag: 'wx', mode: 0o600 });
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

export async function restore(ctx: KeyCommandContext): Promise<unknown> {
  const t = target(ctx.p, ctx.sub, false);
  const file = fileOption(ctx);
  let blob: Buffer;
  try {
    blob = readFileSync(file);
  } catch (err) {
    throw new UsageError(
      `key ${ctx.sub}: cannot read ${file}: ${errnoCode(err) ?? errorMessage(err)}`,
    );
  }
  if (blob.length === 0) throw new UsageError(`key ${ctx.sub}: ${file} is empty`);
  const client = ctx.clients.keyClient(t.vaultType, t.vault);
  const { value } = await ctx.clients.run(
    ctx.clients.vaultContext(t.vaultType, t.vault, 'restore key'),
    (abortSignal) => client.restoreKeyBackup(blob, { abortSignal }),
    false,
  );
  return keyBundleJson(value);
}
