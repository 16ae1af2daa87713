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
import { parseOptions, str, type Parsed } from '../util/args.js';
import { outputFormat, render, type Column } from '../util/output-format.js';
import { akvCommandName } from '../../command-name.js';
import { target } from '../util/key-options.js';
import type { KeySubcommand } from './key/context.js';

const usage = `Usage: akv key <sub-command> [options]

Manage keys in a Managed HSM (--hsm-name, default $AKV_HSM_NAME) or Key Vault (--vault-name), like
\`az keyvault key\`, with az's flag names. Talks to the HSM directly with the config in AKV_CONFIG
(\`akv dev up\` prints it). Output is JSON; listings also take --output table|tsv (-o).

  create   --hsm-name NAME --name KEY --kty RSA-HSM|EC-HSM|oct-HSM [--size BITS]
           [--curve P-256|P-256K|P-384|P-521] [--ops OP ...] [--tags K=V ...] [--disabled]
           [--exportable true --policy JSON|@FILE [--immutable]]
      RSA: --size 2048 (default), 3072, 4096; EC: --curve P-256 (default) ...; oct: --size 256 (default), 128, 192.
      OP: sign verify encrypt decrypt wrapKey unwrapKey (default: what a new key of the type gets).
  import   --hsm-name NAME --name KEY (--pem-file FILE [--pem-password PW] | --jwk-file FILE)
           [--ops OP ...] [--tags K=V ...]
  list     --hsm-name NAME [--include-versions --name KEY] [--output json|table|tsv]
  show     --hsm-name NAME --name KEY [--version V]     (or: --id managedhsm:NAME:KEY[?version=V])
  rotate   --hsm-name NAME --name KEY [--size BITS]     (new version, same type, size and operations)
  delete   --hsm-name NAME --name KEY                   (soft delete: the name stays taken)
  list-deleted --hsm-name NAME [--output json|table|tsv]
  show-deleted --hsm-name NAME --name KEY
  recover  --hsm-name NAME --name KEY                   (undo a delete within the retention period)
  purge    --hsm-name NAME --name KEY                   (destroy a deleted key for good; frees the name)
  set-attributes --hsm-name NAME --name KEY [--version V] [--enabled true|false]
           [--expires DATE] [--not-before DATE] [--ops OP ...] [--tags K=V ...] [--policy JSON|@FILE]
      DATE: ISO 8601, e.g. 2027-01-31 or 2027-01-31T12:00:00Z.
  download --hsm-name NAME --name KEY [--version V] --file FILE [--encoding PEM|DER]   (public key)
  backup   --hsm-name NAME --name KEY --file FILE       (protected blob; restores into the same HSM)
  restore  --hsm-name NAME --file FILE
  release  --hsm-name NAME --name KEY [--version V] --target-attestation-token TOKEN|@FILE
           [--algorithm CKM_RSA_AES_KEY_WRAP|RSA_AES_KEY_WRAP_256|RSA_AES_KEY_WRAP_384] [--nonce N]
  get-rotation-policy --hsm-name NAME --name KEY
  set-rotation-policy --hsm-name NAME --name KEY --value JSON|@FILE
      e.g. {"lifetimeActions":[{"trigger":{"timeAfterCreate":"P90D"},"action":{"type":"Rotate"}}],
            "attributes":{"expiryTime":"P2Y"}}

Use --vault-name instead of --hsm-name for Azure Key Vault (keyvault: URIs).

Examples:
  eval "$(akv dev up --dir /tmp/akv --hsm-name devhsm)"
  akv key create --name tls-key --kty EC-HSM --curve P-256 --ops sign verify
  akv key list -o table
  akv key delete --name tls-key && akv key purge --name tls-key`;

const OPTIONS = {
  'hsm-name': { type: 'string' },
  'vault-name': { type: 'string' },
  id: { type: 'string' },
  name: { type: 'string', short: 'n' },
  version: { type: 'string', short: 'v' },
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
  output: { type: 'string', short: 'o' },
  enabled: { type: 'string' },
  expires: { type: 'string' },
  'not-before': { type: 'string' },
  file: { type: 'string', short: 'f' },
  encoding: { type: 'string', short: 'e' },
  'target-attestation-token': { type: 'string', short: 't' },
  algorithm: { type: 'string', short: 'a' },
  nonce: { type: 'string' },
  value: { type: 'string' },
  policy: { type: 'string' },
  immutable: { type: 'boolean' },
  exportable: { type: 'string' },
} as const;

/** Which options each sub-command takes (beyond --hsm-name/--vault-name/--id/--name/--version). */
const ACCEPTS: Record<string, readonly string[]> = {
  create: ['kty', 'size', 'curve', 'ops', 'tags', 'disabled', 'exportable', 'policy', 'immutable'],
  import: ['pem-file', 'pem-password', 'jwk-file', 'ops', 'tags', 'disabled'],
  list: ['include-versions', 'output'],
  show: ['output'],
  rotate: ['size', 'kty', 'curve', 'ops', 'tags'],
  delete: [],
  'list-deleted': ['output'],
  'show-deleted': ['output'],
  recover: [],
  purge: [],
  'set-attributes': ['enabled', 'expires', 'not-before', 'ops', 'tags', 'policy', 'immutable'],
  download: ['file', 'encoding'],
  backup: ['file'],
  restore: ['file'],
  release: ['target-attestation-token', 'algorithm', 'nonce'],
  'get-rotation-policy': [],
  'set-rotation-policy': ['value', 'policy'],
};
const COMMON = ['hsm-name', 'vault-name', 'id', 'name', 'version'];

/** Table/tsv columns of the listings. */
const COLUMNS: Record<string, readonly Column[]> = {
  list: [
    { header: 'Name', path: 'name' },
    { header: 'Enabled', path: 'attributes.enabled' },
    { header: 'Expires', path: 'attributes.expires' },
    { header: 'Updated', path: 'attributes.updated' },
    { header: 'Kid', path: 'kid' },
  ],
  'list-deleted': [
    { header: 'Name', path: 'name' },
    { header: 'DeletedDate', path: 'deletedDate' },
    { header: 'ScheduledPurgeDate', path: 'scheduledPurgeDate' },
    { header: 'RecoveryId', path: 'recoveryId' },
  ],
};
const VERSION_COLUMNS: readonly Column[] = [
  { header: 'Version', path: 'version' },
  { header: 'Enabled', path: 'attributes.enabled' },
  { header: 'Expires', path: 'attributes.expires' },
  { header: 'Created', path: 'attributes.created' },
  { header: 'Kid', path: 'kid' },
];
const KEY_COLUMNS: readonly Column[] = [
  { header: 'Kid', path: 'key.kid' },
  { header: 'Kty', path: 'key.kty' },
  { header: 'Enabled', path: 'attributes.enabled' },
  { header: 'Expires', path: 'attributes.expires' },
  { header: 'RecoveryLevel', path: 'attributes.recoveryLevel' },
];

/** Adds "AKV_CONFIG is not set" to connection errors when no config was found at all. */
function explainMissingConfig(err: unknown, config: AkvConfig, p: Parsed, sub: string): unknown {
  if (err instanceof AkvError && err.code === 'UNAVAILABLE' && config.path === undefined) {
    const t = target(p, sub, false);
    return new AkvError(
      err.code,
      err.message,
      `no akv config was found (AKV_CONFIG is not set), so ${t.vault} was looked up in public Azure; for the emulator run \`eval "$(${akvCommandName()} dev up --dir DIR --hsm-name ${t.vault})"\` first`,
      err.retries,
    );
  }
  return err;
}

const SUBCOMMANDS: Record<string, () => Promise<KeySubcommand>> = {
  create: async () => (await import('./key/create.js')).default,
  import: async () => (await import('./key/import.js')).default,
  list: async () => (await import('./key/list.js')).default,
  show: async () => (await import('./key/show.js')).default,
  rotate: async () => (await import('./key/rotate.js')).default,
  delete: async () => (await import('./key/delete.js')).default,
  'list-deleted': async () => (await import('./key/deleted.js')).listDeleted,
  'show-deleted': async () => (await import('./key/deleted.js')).showDeleted,
  recover: async () => (await import('./key/deleted.js')).recover,
  purge: async () => (await import('./key/deleted.js')).purge,
  'set-attributes': async () => (await import('./key/set-attributes.js')).default,
  download: async () => (await import('./key/download.js')).default,
  backup: async () => (await import('./key/backup.js')).backup,
  restore: async () => (await import('./key/backup.js')).restore,
  release: async () => (await import('./key/release.js')).default,
  'get-rotation-policy': async () => (await import('./key/rotation-policy.js')).getPolicy,
  'set-rotation-policy': async () => (await import('./key/rotation-policy.js')).setPolicy,
};

/** An option given to a sub-command that does not take it is a mistake worth naming. */
function refuseForeignOptions(sub: string, p: Parsed): void {
  const allowed = [...COMMON, ...(ACCEPTS[sub] ?? [])];
  for (const [name, value] of Object.entries(p.values)) {
    if (value !== undefined && !allowed.includes(name))
      throw new UsageError(
        `key ${sub}: --${name} does not apply here (it takes ${allowed.map((o) => `--${o}`).join(', ')}). Run \`${akvCommandName()} key --help\`.`,
      );
  }
}

async function runKey(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === undefined || wantsHelp(argv)) {
    console.log(usage);
    return sub === undefined ? 2 : 0;
  }
  const load = SUBCOMMANDS[sub];
  if (load === undefined)
    throw new UsageError(
      `key: unknown sub-command ${JSON.stringify(sub)}; use one of ${Object.keys(SUBCOMMANDS).join(', ')}`,
    );
  const p = parseOptions(`key ${sub}`, rest, OPTIONS, ['ops', 'tags']);
  refuseForeignOptions(sub, p);
  const format = outputFormat(str(p, 'output'), `key ${sub}`);
  const config = loadConfig();
  const clients = new AzureClients(config);
  await loadKeyVaultSdk(); // the sub-commands use clients.keyClient()
  try {
    const run = await load();
    const result = await run({ sub, p, config, clients });
    const columns =
      sub === 'list' && p.values['include-versions'] === true
        ? VERSION_COLUMNS
        : (COLUMNS[sub] ?? KEY_COLUMNS);
    if (result !== undefined) console.log(render(result, format, columns));
    return 0;
  } catch (err) {
    throw explainMissingConfig(err, config, p, sub);
  } finally {
    clients.close();
  }
}

const command: Command = {
  summary:
    'manage HSM keys like az keyvault key: create, list, delete, recover, purge, release ...',
  usage,
  run: runKey,
};

export default command;
