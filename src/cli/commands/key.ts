/**
 * `akv key create|import|list|show|rotate|delete`: key management straight against the HSM (not
 * through the agent), with flags mirroring `az keyvault key ...` and az-shaped JSON output. Each
 * sub-command is one module in key/; rotate, import and delete also tell a running agent to forget
 * the key's cached description (key/context.ts, agentForgets).
 */
import type { Command } from '../command.js';
import { UsageError, wantsHelp } from '../command.js';
import { loadConfig } from '../../config/load.js';
import type { AkvConfig } from '../../config/types.js';
import { AkvError } from '../../errors.js';
import { AzureClients, loadKeyVaultSdk } from '../../azure/clients.js';
import { parseOptions, type Parsed } from '../util/args.js';
import { target } from '../util/key-options.js';
import type { KeySubcommand } from './key/context.js';

const usage = `Usage: akv key <create|import|list|show|rotate|delete> [options]

Manage keys in a Managed HSM (--hsm-name) or Key Vault (--vault-name), like \`az keyvault key\`.
Talks to the HSM directly with the config in AKV_CONFIG (\`akv dev up\` prints it). Output is JSON.

  akv key create --hsm-name NAME --name KEY --kty RSA-HSM|EC-HSM|oct-HSM [--size BITS]
                 [--curve P-256|P-256K|P-384|P-521] [--ops OP ...] [--tags K=V ...] [--disabled]
      RSA: --size 2048 (default), 3072, 4096; EC: --curve P-256 (default) ...; oct: --size 256 (default), 128, 192.
      OP: sign verify encrypt decrypt wrapKey unwrapKey (default: all the key type allows).
  akv key import --hsm-name NAME --name KEY (--pem-file FILE [--pem-password PW] | --jwk-file FILE)
                 [--ops OP ...] [--tags K=V ...]
  akv key list   --hsm-name NAME [--include-versions --name KEY]
  akv key show   --hsm-name NAME --name KEY [--version V]     (or: --id managedhsm:NAME:KEY[?version=V])
  akv key rotate --hsm-name NAME --name KEY [--size BITS]     (new version, same type, size and operations)
  akv key delete --hsm-name NAME --name KEY

Use --vault-name instead of --hsm-name for Azure Key Vault (keyvault: URIs).

Examples:
  eval "$(akv dev up --dir /tmp/akv --hsm-name devhsm)"
  akv key create --hsm-name devhsm --name tls-key --kty EC-HSM --curve P-256 --ops sign verify
  akv key show --id managedhsm:devhsm:tls-key`;

const OPTIONS = {
  'hsm-name': { type: 'string' },
  'vault-name': { type: 'string' },
  id: { type: 'string' },
  name: { type: 'string', short: 'n' },
  version: { type: 'string' },
  kty: { type: 'string' },
  size: { type: 'string' },
  curve: { type: 'string' },
  ops: { type: 'string', multiple: true },
  tags: { type: 'string', multiple: true },
  disabled: { type: 'boolean' },
  'pem-file': { type: 'string' },
  'pem-password': { type: 'string' },
  'jwk-file': { type: 'string' },
  'include-versions': { type: 'boolean' },
} as const;

/** Adds "AKV_CONFIG is not set" to connection errors when no config was found at all. */
function explainMissingConfig(err: unknown, config: AkvConfig, p: Parsed, sub: string): unknown {
  if (err instanceof AkvError && err.code === 'UNAVAILABLE' && config.path === undefined) {
    const t = target(p, sub, false);
    return new AkvError(
      err.code,
      err.message,
      `no akv config was found (AKV_CONFIG is not set), so ${t.vault} was looked up in public Azure; for the emulator run \`eval "$(bin/akv dev up --dir DIR --hsm-name ${t.vault})"\` first`,
      err.retries,
    );
  }
  return err;
}

const SUBCOMMANDS: Record<string, () => Promise<{ default: KeySubcommand }>> = {
  create: () => import('./key/create.js'),
  import: () => import('./key/import.js'),
  list: () => import('./key/list.js'),
  show: () => import('./key/show.js'),
  rotate: () => import('./key/rotate.js'),
  delete: () => import('./key/delete.js'),
};

async function runKey(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === undefined || wantsHelp(argv)) {
    console.log(usage);
    return sub === undefined ? 2 : 0;
  }
  const load = SUBCOMMANDS[sub];
  if (load === undefined)
    throw new UsageError(
      `key: unknown sub-command ${JSON.stringify(sub)}; use create, import, list, show, rotate or delete`,
    );
  const p = parseOptions(`key ${sub}`, rest, OPTIONS, ['ops', 'tags']);
  const config = loadConfig();
  const clients = new AzureClients(config);
  await loadKeyVaultSdk(); // the sub-commands use clients.keyClient()
  try {
    const run = (await load()).default;
    console.log(JSON.stringify(await run({ sub, p, config, clients }), null, 2));
    return 0;
  } catch (err) {
    throw explainMissingConfig(err, config, p, sub);
  } finally {
    clients.close();
  }
}

const command: Command = {
  summary: 'Create, import, list, show, rotate and delete HSM keys (like az keyvault key)',
  usage,
  run: runKey,
};

export default command;
