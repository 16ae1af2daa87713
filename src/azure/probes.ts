/**
 * Cheap checks of the two things every HSM call needs, shared by the agent (its /readyz endpoint
 * and the DIAGNOSE report) and `akv doctor`: does the credential give a token (from the token
 * cache when it holds one, so a probe costs nothing once the agent is warm), and does an HSM
 * answer over HTTPS (one page of one key name; "forbidden" still proves it answered).
 */
import type { VaultType } from '../config/types.js';
import { AkvError } from '../errors.js';
import type { AzureClients } from './clients.js';
import { TOKEN_SCOPE } from './endpoints.js';

export interface CredentialProbe {
  source: string;
  scope: string;
  /** When the token expires (ms since the epoch); the token itself never leaves the credential. */
  expiresOnTimestamp: number;
}

export interface VaultProbe {
  url: string;
  /** What answered, e.g. "answers" or "answers (listing keys: FORBIDDEN)". */
  detail: string;
}

/** Rejects with TIMEOUT when `p` has not settled after `ms`. */
export function withTimeout<T>(p: Promise<T>, ms: number, what: string, hint: string): Promise<T> {
  return new Promise((resolveDone, reject) => {
    const t = setTimeout(
      () => reject(new AkvError('TIMEOUT', `${what} took longer than ${ms} ms`, hint)),
      ms,
    );
    t.unref();
    p.then(
      (v) => {
        clearTimeout(t);
        resolveDone(v);
      },
      (e: unknown) => {
        clearTimeout(t);
        reject(e instanceof Error ? e : new Error(String(e)));
      },
    );
  });
}

/** A token for the scope of `vaultType`; throws AkvError (UNAUTHORIZED, TIMEOUT) when none. */
export async function probeCredential(
  clients: AzureClients,
  vaultType: VaultType,
): Promise<CredentialProbe> {
  const scope = TOKEN_SCOPE[vaultType];
  const token = await withTimeout(
    clients.credential.getToken(scope),
    clients.deadlineMs * 3,
    'getting a token',
    'the credential is slow or stuck: try `az account get-access-token` by hand',
  );
  if (!token) {
    throw new AkvError(
      'UNAUTHORIZED',
      `${clients.credential.source} gave no token for ${scope}`,
      'run `az login` or set AZURE_CLI_ACCESS_TOKEN',
    );
  }
  return {
    source: clients.credential.source,
    scope,
    expiresOnTimestamp: token.expiresOnTimestamp,
  };
}

/** Whether the HSM (or vault) answers; throws the AkvError of the call when it does not. */
export async function probeVault(
  clients: AzureClients,
  vaultType: VaultType,
  vault: string,
): Promise<VaultProbe> {
  const client = await clients.sdkKeyClient(vaultType, vault);
  const url = clients.endpoint(vaultType, vault).url;
  try {
    await clients.run(clients.vaultContext(vaultType, vault, 'list keys'), async (abortSignal) => {
      const page = await client
        .listPropertiesOfKeys({ abortSignal })
        .byPage({ maxPageSize: 1 })
        .next();
      return page.done;
    });
    return { url, detail: `${url} answers` };
  } catch (err) {
    // An HSM that refuses to list keys has still answered: reachability is proven.
    if (err instanceof AkvError && (err.code === 'FORBIDDEN' || err.code === 'KEY_NOT_FOUND'))
      return { url, detail: `${url} answers (listing keys: ${err.code})` };
    throw err;
  }
}
