/**
 * Where an HSM or vault name lives: Azure's public endpoint by default, or the URL (and CA) a
 * config entry gives for that name (the emulator, sovereign clouds, private endpoints).
 */
import { readFileSync } from 'node:fs';
import type { AkvConfig, VaultConfig, VaultType } from '../config/types.js';
import { AkvError, errorMessage } from '../errors.js';

export interface VaultEndpoint {
  vaultType: VaultType;
  /** The name as the user wrote it. */
  vault: string;
  /** Base URL without a trailing slash, e.g. https://myhsm.managedhsm.azure.net */
  url: string;
  /** OAuth scope for this kind of service (the SDK uses the challenge's resource in practice). */
  scope: string;
  /** PEM text of the extra CA certificates from `caFile`, if configured. */
  caPem?: string;
  caFile?: string;
  disableChallengeResourceVerification: boolean;
  /** True when the URL comes from the config rather than Azure's naming scheme. */
  overridden: boolean;
}

export const PUBLIC_SUFFIX: Record<VaultType, string> = {
  managedhsm: 'managedhsm.azure.net',
  keyvault: 'vault.azure.net',
};

export const TOKEN_SCOPE: Record<VaultType, string> = {
  managedhsm: 'https://managedhsm.azure.net/.default',
  keyvault: 'https://vault.azure.net/.default',
};

/** The config entry for a name; names are case-insensitive in Azure, so matching is too. */
export function vaultConfigFor(config: AkvConfig, vault: string): VaultConfig | undefined {
  const exact = config.vaults[vault];
  if (exact) return exact;
  const lower = vault.toLowerCase();
  for (const [name, entry] of Object.entries(config.vaults)) {
    if (name.toLowerCase() === lower) return entry;
  }
  return undefined;
}

export function resolveEndpoint(
  config: AkvConfig,
  vaultType: VaultType,
  vault: string,
): VaultEndpoint {
  const entry = vaultConfigFor(config, vault);
  const url = entry?.endpoint ?? `https://${vault.toLowerCase()}.${PUBLIC_SUFFIX[vaultType]}`;
  const endpoint: VaultEndpoint = {
    vaultType,
    vault,
    url: url.replace(/\/+$/, ''),
    scope: TOKEN_SCOPE[vaultType],
    disableChallengeResourceVerification: entry?.disableChallengeResourceVerification ?? false,
    overridden: entry?.endpoint !== undefined,
  };
  if (entry?.caFile !== undefined) {
    endpoint.caFile = entry.caFile;
    try {
      endpoint.caPem = readFileSync(entry.caFile, 'utf8');
    } catch (err) {
      throw new AkvError(
        'UNAVAILABLE',
        `cannot read the CA file ${entry.caFile} configured for ${vault}: ${errorMessage(err)}`,
        `fix vaults.${vault}.caFile in ${config.path ?? 'the config'} (for the emulator it is <state-dir>/ca.pem)`,
      );
    }
    if (!endpoint.caPem.includes('-----BEGIN CERTIFICATE-----')) {
      throw new AkvError(
        'UNAVAILABLE',
        `the CA file ${entry.caFile} configured for ${vault} holds no PEM certificate`,
        `point vaults.${vault}.caFile at a PEM file (-----BEGIN CERTIFICATE-----)`,
      );
    }
  }
  return endpoint;
}
