/**
 * `akv doctor`'s links that go through the agent (reachable, key usable, a test signature) and
 * the local ones (this user's credential and HSM access, which `akv key ...` commands use).
 */
import { randomBytes } from 'node:crypto';
import { AgentClient, type KeyInfo } from '../../client/agent-client.js';
import type { AkvConfig } from '../../config/types.js';
import type { KeyRef } from '../../uri/index.js';
import { defaultSignAlg, hashForAlg, verifyDigest } from '../util/local-crypto.js';
import { fail, fromError, ok, type Outcome } from './outcome.js';
import { akvCommandName } from '../../command-name.js';

export async function checkAgent(socket: string): Promise<Outcome> {
  const client = new AgentClient(socket, { timeoutMs: 5000, clientName: 'akv-doctor' });
  try {
    const hello = await client.hello();
    await client.ping();
    return ok(`agent ${hello.agentVersion} answers on ${socket}`);
  } catch (err) {
    return fromError(
      err,
      `start the agent (\`${akvCommandName()} agent\`, or \`eval "$(${akvCommandName()} dev up --dir DIR --hsm-name NAME)"\`) or point AKV_AGENT_SOCKET at its socket`,
    );
  } finally {
    await client.close().catch(() => undefined);
  }
}

export async function checkCredential(
  config: AkvConfig,
  ref: KeyRef | undefined,
): Promise<Outcome> {
  const { AzureClients } = await import('../../azure/clients.js');
  const { probeCredential } = await import('../../azure/probes.js');
  const clients = new AzureClients(config);
  try {
    const token = await probeCredential(clients, ref?.vaultType ?? 'managedhsm');
    const minutes = Math.round((token.expiresOnTimestamp - Date.now()) / 60_000);
    return ok(`${token.source} gives a token for ${token.scope} (valid ${minutes} more min)`);
  } catch (err) {
    return fromError(err, 'run `az login` or set AZURE_CLI_ACCESS_TOKEN');
  } finally {
    clients.close();
  }
}

export async function checkHsm(config: AkvConfig, ref: KeyRef): Promise<Outcome> {
  const { AzureClients } = await import('../../azure/clients.js');
  const { probeVault } = await import('../../azure/probes.js');
  const clients = new AzureClients(config);
  try {
    return ok((await probeVault(clients, ref.vaultType, ref.vault)).detail);
  } catch (err) {
    return fromError(
      err,
      `check the endpoint of ${ref.vault} in the config (${config.path ?? 'no config file: AKV_CONFIG is not set'})`,
    );
  } finally {
    clients.close();
  }
}

export async function checkKey(
  client: AgentClient,
  uri: string,
): Promise<{ outcome: Outcome; info?: KeyInfo }> {
  try {
    const info = await client.describe(uri);
    const what = info.keyType === 'EC' ? `EC ${info.curve ?? ''}` : `${info.keyType} ${info.bits}`;
    const needed = info.keyType === 'AES' ? ['wrapKey', 'unwrapKey'] : ['sign'];
    const missing = needed.filter((op) => !info.keyOps.includes(op));
    if (missing.length > 0) {
      return {
        outcome: fail(
          `${what} key, version ${info.version}, does not allow ${missing.join(', ')} (allowed: ${info.keyOps.join(', ') || 'none'})`,
          `create a key with --ops ${needed.join(' ')} (\`akv key create ... --ops ${needed.join(' ')}\`)`,
        ),
        info,
      };
    }
    return {
      outcome: ok(`${what} key, version ${info.version}, operations ${info.keyOps.join(',')}`),
      info,
    };
  } catch (err) {
    return { outcome: fromError(err, 'check the key URI with `akv key list --hsm-name NAME`') };
  }
}

export async function checkSignature(
  client: AgentClient,
  uri: string,
  info: KeyInfo,
): Promise<Outcome> {
  try {
    if (info.keyType === 'AES') {
      const alg = `A${info.bits || 256}KW`;
      const secret = randomBytes(32);
      const wrapped = await client.wrap(uri, alg, secret);
      const unwrapped = await client.unwrap(uri, alg, wrapped.output);
      return unwrapped.output.equals(secret)
        ? ok(`${alg} wrap/unwrap round trip matches`)
        : fail(`${alg} unwrap did not give back the wrapped key`, 'report this with the agent log');
    }
    if (!info.publicKey)
      return fail('the agent gave no public key', 'report this with the agent log');
    const alg = defaultSignAlg(info.keyType, info.curve);
    const digest = randomBytes({ sha256: 32, sha384: 48, sha512: 64 }[hashForAlg(alg)]);
    const sig = await client.sign(uri, alg, digest);
    if (verifyDigest(info.publicKey, alg, digest, sig.output))
      return ok(`${alg} signature by version ${sig.version} verifies with the public key`);
    return fail(
      `the ${alg} signature does not verify with the public key the agent described`,
      'the key may have been rotated under a cached description: restart the agent (or wait for its key cache TTL) and try again',
    );
  } catch (err) {
    return fromError(err, 'see the agent log');
  }
}
