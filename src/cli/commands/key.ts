/**
 * `akv key create|import|list|show|rotate|delete`: key management straight against the HSM (not
 * through the agent), with flags mirroring `az keyvault key ...` and az-shaped JSON output.
 */
import { readFileSync } from 'node:fs';
import type { JsonWebKey, KeyClient, KeyVaultKey } from '@azure/keyvault-keys';
import type { Command } from '../command.js';
import { UsageError, wantsHelp } from '../command.js';
import { loadConfig } from '../../config/load.js';
import type { AkvConfig } from '../../config/types.js';
import { AkvError } from '../../errors.js';
import { AzureClients } from '../../azure/clients.js';
import { flag, parseOptions, str, type Parsed } from '../util/args.js';
import {
  createSpec,
  keyOps,
  tags,
  target,
  type CreateSpec,
  type Target,
} from '../util/key-options.js';
import {
  keyBundleJson,
  keyListEntryJson,
  keyVersionEntryJson,
  sdkJwkFromJson,
  sdkJwkFromPem,
} from '../util/key-bundle.js';

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

function print(value: unknown): void {
  console.log(JSON.stringify(value, null, 2));
}

/** Adds "AKV_CONFIG is not set" to connection errors when no config was found at all. */
function explainMissingConfig(err: unknown, config: AkvConfig, t: Target): unknown {
  if (err instanceof AkvError && err.code === 'UNAVAILABLE' && config.path === undefined) {
    return new AkvError(
      err.code,
      err.message,
      `no akv config was found (AKV_CONFIG is not set), so ${t.vault} was looked up in public Azure; for the emulator run \`eval "$(bin/akv dev up --dir DIR --hsm-name ${t.vault})"\` first`,
      err.retries,
    );
  }
  return err;
}

async function create(
  clients: AzureClients,
  client: KeyClient,
  p: Parsed,
  t: Target,
  sub: string,
  spec: CreateSpec,
  ops: string[] | undefined,
): Promise<KeyVaultKey> {
  const ctx = clients.keyContext(
    { vaultType: t.vaultType, vault: t.vault, name: t.name as string },
    `${sub} key`,
  );
  const tagMap = tags(p, sub);
  const { value } = await clients.run(
    ctx,
    (abortSignal) =>
      client.createKey(t.name as string, spec.kty as never, {
        abortSignal,
        ...(spec.size !== undefined ? { keySize: spec.size } : {}),
        ...(spec.curve !== undefined ? { curve: spec.curve as never } : {}),
        ...(ops ? { keyOps: ops as never } : {}),
        ...(tagMap ? { tags: tagMap } : {}),
        ...(flag(p, 'disabled') ? { enabled: false } : {}),
      }),
    false,
  );
  return value;
}

async function runKey(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === undefined || wantsHelp(argv)) {
    console.log(usage);
    return sub === undefined ? 2 : 0;
  }
  const p = parseOptions(`key ${sub}`, rest, OPTIONS, ['ops', 'tags']);
  const config = loadConfig();
  const clients = new AzureClients(config);
  let t: Target | undefined;
  try {
    switch (sub) {
      case 'create': {
        t = target(p, sub, true);
        const spec = createSpec(p, t, sub);
        const client = clients.keyClient(t.vaultType, t.vault);
        print(keyBundleJson(await create(clients, client, p, t, sub, spec, keyOps(p, sub))));
        return 0;
      }
      case 'rotate': {
        t = target(p, sub, true);
        const client = clients.keyClient(t.vaultType, t.vault);
        const ref = { vaultType: t.vaultType, vault: t.vault, name: t.name as string };
        const current = (
          await clients.run(clients.keyContext(ref, 'get key'), (abortSignal) =>
            client.getKey(ref.name, { abortSignal }),
          )
        ).value;
        const kty = current.key?.kty ?? current.keyType ?? '';
        const fallback: CreateSpec = { kty };
        if (current.key?.crv) fallback.curve = current.key.crv;
        if (current.key?.n) fallback.size = rsaBits(current.key.n);
        const spec = createSpec(p, t, sub, fallback);
        const ops =
          keyOps(p, sub) ?? (current.keyOperations ? [...current.keyOperations] : undefined);
        print(keyBundleJson(await create(clients, client, p, t, sub, spec, ops)));
        return 0;
      }
      case 'import': {
        t = target(p, sub, true);
        const pemFile = str(p, 'pem-file');
        const jwkFile = str(p, 'jwk-file');
        if ((pemFile === undefined) === (jwkFile === undefined))
          throw new UsageError(
            'key import: give exactly one of --pem-file FILE or --jwk-file FILE',
          );
        const file = (pemFile ?? jwkFile) as string;
        let bytes: Buffer;
        try {
          bytes = readFileSync(file);
        } catch (err) {
          throw new UsageError(
            `key import: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
          );
        }
        let jwk: JsonWebKey;
        if (pemFile !== undefined) {
          jwk = sdkJwkFromPem(bytes, pemFile, str(p, 'pem-password'));
        } else {
          let json: unknown;
          try {
            json = JSON.parse(bytes.toString('utf8'));
          } catch (err) {
            throw new UsageError(`key import: ${file} is not JSON: ${(err as Error).message}`);
          }
          if (typeof json !== 'object' || json === null || Array.isArray(json))
            throw new UsageError(`key import: ${file} must hold one JWK object`);
          jwk = sdkJwkFromJson(json as Record<string, unknown>, file);
        }
        if (!jwk.d && !jwk.k)
          throw new UsageError(`key import: ${file} holds no private key material (d or k)`);
        if (t.vaultType === 'managedhsm' && jwk.kty && !jwk.kty.endsWith('-HSM'))
          jwk.kty = `${jwk.kty}-HSM` as never;
        const ops = keyOps(p, sub);
        if (ops) jwk.keyOps = ops as never;
        const tagMap = tags(p, sub);
        const name = t.name as string;
        const ctx = clients.keyContext(
          { vaultType: t.vaultType, vault: t.vault, name },
          'import key',
        );
        const client = clients.keyClient(t.vaultType, t.vault);
        const { value } = await clients.run(
          ctx,
          (abortSignal) =>
            client.importKey(name, jwk, {
              abortSignal,
              hardwareProtected: t?.vaultType === 'managedhsm' || undefined,
              ...(tagMap ? { tags: tagMap } : {}),
              ...(flag(p, 'disabled') ? { enabled: false } : {}),
            }),
          false,
        );
        print(keyBundleJson(value));
        return 0;
      }
      case 'show': {
        t = target(p, sub, true);
        const ref = {
          vaultType: t.vaultType,
          vault: t.vault,
          name: t.name as string,
          ...(t.version ? { version: t.version } : {}),
        };
        const client = clients.keyClient(t.vaultType, t.vault);
        const { value } = await clients.run(clients.keyContext(ref, 'get key'), (abortSignal) =>
          client.getKey(ref.name, {
            abortSignal,
            ...(ref.version ? { version: ref.version } : {}),
          }),
        );
        print(keyBundleJson(value));
        return 0;
      }
      case 'list': {
        t = target(p, sub, flag(p, 'include-versions'));
        const client = clients.keyClient(t.vaultType, t.vault);
        const name = t.name;
        if (flag(p, 'include-versions') && name) {
          const ctx = clients.keyContext(
            { vaultType: t.vaultType, vault: t.vault, name },
            'list key versions',
          );
          const { value } = await clients.run(ctx, async (abortSignal) => {
            const out: Record<string, unknown>[] = [];
            for await (const v of client.listPropertiesOfKeyVersions(name, { abortSignal }))
              out.push(keyVersionEntryJson(v));
            return out;
          });
          print(value);
          return 0;
        }
        const { value } = await clients.run(
          clients.vaultContext(t.vaultType, t.vault, 'list keys'),
          async (abortSignal) => {
            const out: Record<string, unknown>[] = [];
            for await (const k of client.listPropertiesOfKeys({ abortSignal }))
              out.push(keyListEntryJson(k));
            return out;
          },
        );
        value.sort((a, b) => String(a.name).localeCompare(String(b.name)));
        print(value);
        return 0;
      }
      case 'delete': {
        t = target(p, sub, true);
        const name = t.name as string;
        const client = clients.keyClient(t.vaultType, t.vault);
        const ctx = clients.keyContext(
          { vaultType: t.vaultType, vault: t.vault, name },
          'delete key',
        );
        const { value } = await clients.run(
          ctx,
          async (abortSignal) => {
            // The first poll sends the DELETE; waiting for the purge-able state is not needed here.
            const poller = await client.beginDeleteKey(name, { abortSignal });
            return poller.getResult();
          },
          false,
        );
        print(value ? keyBundleJson(value) : { deleted: name });
        return 0;
      }
      default:
        throw new UsageError(
          `key: unknown sub-command ${JSON.stringify(sub)}; use create, import, list, show, rotate or delete`,
        );
    }
  } catch (err) {
    throw t ? explainMissingConfig(err, config, t) : err;
  } finally {
    clients.close();
  }
}

function rsaBits(n: Uint8Array): number {
  let i = 0;
  while (i < n.length && n[i] === 0) i++;
  return (n.length - i) * 8;
}

const command: Command = {
  summary: 'Create, import, list, show, rotate and delete HSM keys (like az keyvault key)',
  usage,
  run: runKey,
};

export default command;
