/**
 * The agent's one way to the HSM: describe a key, run a private-key operation, list keys. Every
 * call goes through AzureClients (cached clients, shared token cache, retries, deadline) and fails
 * only with AkvError. Describe and list use the SDK's KeyClient; the private-key operations use
 * the lean hot path (key-operations.ts). The agent caches descriptions; nothing is cached here
 * except clients.
 */
import type { KeyClient } from '@azure/keyvault-keys';
import type { Logger } from 'pino';
import type { AkvConfig, VaultType } from '../config/types.js';
import { AkvError } from '../errors.js';
import type { KeyRef } from '../uri/index.js';
import { AzureClients, type AzureHooks } from './clients.js';
import { describeKey, keyViewFromBundle, versionFromKid, type KeyDescription } from './describe.js';
import type { RestKeyOp } from './key-operations.js';
import { probeCredential, probeVault, type CredentialProbe, type VaultProbe } from './probes.js';

export type { KeyDescription } from './describe.js';
export type { AzureHooks } from './clients.js';
export type { CredentialProbe, VaultProbe } from './probes.js';

export interface OpResult {
  output: Buffer;
  version: string;
  retries: number;
}

/** Per call: `deadline` (ms since the epoch) when the caller's clock started before the call. */
export interface CallOptions {
  deadline?: number;
}

export interface HsmGateway {
  /** The configured deadline of one operation, retries included. */
  readonly deadlineMs: number;
  describe(ref: KeyRef, opts?: CallOptions): Promise<KeyDescription>;
  sign(ref: KeyRef, alg: string, digest: Buffer, opts?: CallOptions): Promise<OpResult>;
  decrypt(ref: KeyRef, alg: string, ciphertext: Buffer, opts?: CallOptions): Promise<OpResult>;
  wrapKey(ref: KeyRef, alg: string, key: Buffer, opts?: CallOptions): Promise<OpResult>;
  unwrapKey(ref: KeyRef, alg: string, wrapped: Buffer, opts?: CallOptions): Promise<OpResult>;
  listKeys(vaultType: VaultType, vault: string, opts?: CallOptions): Promise<string[]>;
  /** Where the credential comes from (static-config, AZURE_CLI_ACCESS_TOKEN, DefaultAzureCredential). */
  readonly credentialSource: string;
  /** A token for this kind of vault's scope (the token cache's, when it holds one). */
  probeCredential(vaultType: VaultType): Promise<CredentialProbe>;
  /** Whether an HSM or vault answers over HTTPS. */
  probeVault(vaultType: VaultType, vault: string): Promise<VaultProbe>;
  /** The HSMs and vaults this gateway has talked to so far. */
  knownVaults(): VaultName[];
  close(): Promise<void>;
}

export interface VaultName {
  vaultType: VaultType;
  vault: string;
}

const SIGN_ALGORITHMS = [
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'ES256',
  'ES256K',
  'ES384',
  'ES512',
] as const;
const DECRYPT_ALGORITHMS = ['RSA1_5', 'RSA-OAEP', 'RSA-OAEP-256'] as const;
const WRAP_ALGORITHMS = [
  'A128KW',
  'A192KW',
  'A256KW',
  'RSA1_5',
  'RSA-OAEP',
  'RSA-OAEP-256',
] as const;

/** The four private-key operations: their REST name, key_ops name and algorithms. */
interface KeyOperationSpec {
  name: string;
  rest: RestKeyOp;
  /** As key_ops and messages name it (FORBIDDEN hints). */
  keyOp: 'sign' | 'decrypt' | 'wrapKey' | 'unwrapKey';
  algorithms: readonly string[];
}

const KEY_OPERATIONS = {
  sign: { name: 'sign', rest: 'sign', keyOp: 'sign', algorithms: SIGN_ALGORITHMS },
  decrypt: { name: 'decrypt', rest: 'decrypt', keyOp: 'decrypt', algorithms: DECRYPT_ALGORITHMS },
  wrap: { name: 'wrap', rest: 'wrapkey', keyOp: 'wrapKey', algorithms: WRAP_ALGORITHMS },
  unwrap: { name: 'unwrap', rest: 'unwrapkey', keyOp: 'unwrapKey', algorithms: WRAP_ALGORITHMS },
} as const satisfies Record<string, KeyOperationSpec>;

interface RawResponse {
  parsedBody?: unknown;
}

/** `value[name]` when value is an object that has it; undefined otherwise. */
function fieldOf(value: unknown, name: string): unknown {
  if (typeof value !== 'object' || value === null || !(name in value)) return undefined;
  return Reflect.get(value, name);
}

function octBitsOf(raw: RawResponse | undefined): number {
  const size = fieldOf(fieldOf(raw?.parsedBody, 'key'), 'key_size');
  return typeof size === 'number' && Number.isInteger(size) ? size : 0;
}

function unsupportedAlgorithm(op: string, alg: string, allowed: readonly string[]): AkvError {
  return new AkvError(
    'UNSUPPORTED',
    `${op} does not support the algorithm ${JSON.stringify(alg)}`,
    `use one of ${allowed.join(', ')}`,
  );
}

export class AzureGateway implements HsmGateway {
  readonly clients: AzureClients;

  constructor(config: AkvConfig, logger?: Logger, hooks: AzureHooks = {}) {
    this.clients = new AzureClients(config, logger, hooks);
  }

  get deadlineMs(): number {
    return this.clients.deadlineMs;
  }

  async describe(ref: KeyRef, opts: CallOptions = {}): Promise<KeyDescription> {
    const { value } = await this.clients.run(
      this.clients.keyContext(ref, 'get key'),
      async (abortSignal) => {
        // Without the SDK when the HSM takes it (clients.ts, fetchKeyBundle); else through it.
        const answer = await this.clients.fetchKeyBundle(ref, abortSignal);
        if (answer) return keyViewFromBundle(answer.bundle, ref.name);
        const client = await this.keyClient(ref);
        let raw: RawResponse | undefined;
        const key = await client.getKey(ref.name, {
          ...(ref.version ? { version: ref.version } : {}),
          abortSignal,
          onResponse: (r) => {
            raw = r;
          },
        });
        return { key, octBits: octBitsOf(raw) };
      },
      true,
      opts.deadline,
    );
    const description = describeKey(value.key, value.octBits);
    if (
      description.kty === 'oct' &&
      description.bits === 0 &&
      description.keyOps.includes('wrapKey')
    ) {
      description.bits = await this.probeAesBits({ ...ref, version: description.version }, opts);
    }
    return description;
  }

  /**
   * The key bundle of an AES key carries no size (the service never returns `k`), but clients
   * need it to pick A128KW/A192KW/A256KW: a wrap of a zero block tells, since the service refuses
   * an algorithm whose size does not match the key. Returns 0 when no size fits.
   */
  private async probeAesBits(ref: KeyRef, opts: CallOptions): Promise<number> {
    const block = Buffer.alloc(16);
    for (const bits of [256, 128, 192]) {
      try {
        await this.wrapKey(ref, `A${bits}KW`, block, opts);
        return bits;
      } catch (err) {
        // Anything but "wrong size" (no permission, a transient failure) leaves the size unknown.
        if (
          !(err instanceof AkvError) ||
          (err.code !== 'BAD_PARAMETER' && err.code !== 'UNSUPPORTED')
        )
          return 0;
      }
    }
    return 0;
  }

  sign(ref: KeyRef, alg: string, digest: Buffer, opts: CallOptions = {}): Promise<OpResult> {
    return this.keyOperation(KEY_OPERATIONS.sign, ref, alg, digest, opts);
  }

  decrypt(ref: KeyRef, alg: string, ciphertext: Buffer, opts: CallOptions = {}): Promise<OpResult> {
    return this.keyOperation(KEY_OPERATIONS.decrypt, ref, alg, ciphertext, opts);
  }

  wrapKey(ref: KeyRef, alg: string, key: Buffer, opts: CallOptions = {}): Promise<OpResult> {
    return this.keyOperation(KEY_OPERATIONS.wrap, ref, alg, key, opts);
  }

  unwrapKey(ref: KeyRef, alg: string, wrapped: Buffer, opts: CallOptions = {}): Promise<OpResult> {
    return this.keyOperation(KEY_OPERATIONS.unwrap, ref, alg, wrapped, opts);
  }

  async listKeys(vaultType: VaultType, vault: string, opts: CallOptions = {}): Promise<string[]> {
    const client = await this.clients.sdkKeyClient(vaultType, vault);
    const { value } = await this.clients.run(
      this.clients.vaultContext(vaultType, vault, 'list keys'),
      async (abortSignal) => {
        const names: string[] = [];
        for await (const props of client.listPropertiesOfKeys({ abortSignal })) {
          if (props.enabled !== false) names.push(props.name);
        }
        return names;
      },
      true,
      opts.deadline,
    );
    return value.sort();
  }

  get credentialSource(): string {
    return this.clients.credential.source;
  }

  probeCredential(vaultType: VaultType): Promise<CredentialProbe> {
    return probeCredential(this.clients, vaultType);
  }

  probeVault(vaultType: VaultType, vault: string): Promise<VaultProbe> {
    return probeVault(this.clients, vaultType, vault);
  }

  knownVaults(): VaultName[] {
    return this.clients.knownVaults();
  }

  close(): Promise<void> {
    this.clients.close();
    return Promise.resolve();
  }

  private keyClient(ref: KeyRef): Promise<KeyClient> {
    return this.clients.sdkKeyClient(ref.vaultType, ref.vault);
  }

  /** A private-key operation on the hot path (key-operations.ts), with retries and deadline. */
  private async keyOperation(
    op: KeyOperationSpec,
    ref: KeyRef,
    alg: string,
    input: Buffer,
    opts: CallOptions,
  ): Promise<OpResult> {
    if (!op.algorithms.includes(alg)) throw unsupportedAlgorithm(op.name, alg, op.algorithms);
    const { value, retries } = await this.clients.runKeyOperation(
      ref,
      op.keyOp,
      (operations, deadline) => operations.run(ref, op.rest, alg, input, deadline),
      opts.deadline,
    );
    const version = versionFromKid(value.kid) || ref.version || '';
    return { output: value.result, version, retries };
  }
}

export function createGateway(
  config: AkvConfig,
  logger: Logger,
  hooks: AzureHooks = {},
): HsmGateway {
  return new AzureGateway(config, logger, hooks);
}
