/**
 * The agent's access policy (docs/security.md, "Access policy"): which peers, identified by the
 * kernel (peer-credentials.ts), may use which keys for which operations. The rules this file
 * keeps:
 *  - no policy in the config: everything is allowed, as before (one info line at start says so);
 *  - with a policy, a request is allowed only when some rule is for the peer (all its selectors
 *    match) and grants the operation on a pattern matching the key; anything else is refused with
 *    ACCESS_DENIED naming the policy, the peer, the operation and the key;
 *  - a policy is never enforced on credentials a client reports: without the native helper it
 *    is refused at start and at SIGHUP, and a connection whose credentials the kernel did not give
 *    is refused everything;
 *  - names (users, groups) are resolved when the policy is loaded (start, SIGHUP), so an unknown
 *    name fails the load, and a request costs a few comparisons.
 */
import type { AkvConfig, PolicyOperation, PolicyRule } from '../config/types.js';
import { AkvError } from '../errors.js';
import type { KeyRef } from '../uri/index.js';
import {
  describePeer,
  lookupGroupId,
  lookupUserId,
  peerCredentialsUnavailable,
  peerExecutable,
  type PeerCredentials,
} from './peer-credentials.js';

/** What a request wants: an operation on a key, or (list) on a vault. */
export interface AccessTarget {
  vaultType: KeyRef['vaultType'];
  vault: string;
  /** The key name; absent for list. */
  name?: string;
}

interface CompiledRule {
  name: string;
  uids?: Set<number>;
  gids?: Set<number>;
  executables?: Set<string>;
  keys: Array<{ text: string; vaultType: string; vault: RegExp; name: RegExp }>;
  operations: Set<PolicyOperation>;
}

function glob(pattern: string): RegExp {
  // Patterns hold only letters, digits, '-', '*' and '?' (src/config/policy.ts): nothing to escape.
  return new RegExp(`^${pattern.replace(/\*/g, '.*').replace(/\?/g, '.')}$`, 'i');
}

function resolveIds(
  list: Array<string | number> | undefined,
  lookup: (name: string) => number | undefined,
  what: 'user' | 'group',
  where: string,
): Set<number> | undefined {
  if (list === undefined) return undefined;
  return new Set(
    list.map((entry) => {
      if (typeof entry === 'number') return entry;
      const id = lookup(entry);
      if (id === undefined) {
        throw new AkvError(
          'BAD_REQUEST',
          `${where}: there is no ${what} named "${entry}" on this host`,
          `create the ${what}, fix the name, or give the numeric ${what === 'user' ? 'uid' : 'gid'}`,
        );
      }
      return id;
    }),
  );
}

function compileRule(rule: PolicyRule, file: string, index: number): CompiledRule {
  const where = (field: string): string =>
    `config ${file}: field "policy.rules[${index}].${field}"`;
  const uids = resolveIds(rule.users, lookupUserId, 'user', where('users'));
  const gids = resolveIds(rule.groups, lookupGroupId, 'group', where('groups'));
  return {
    name: rule.name,
    ...(uids ? { uids } : {}),
    ...(gids ? { gids } : {}),
    ...(rule.executables ? { executables: new Set(rule.executables) } : {}),
    keys: rule.keys.map((text) => {
      // KEY_PATTERN (config/policy.ts) let only vaultType:vault:name through.
      const [vaultType = '', vault = '', name = ''] = text.split(':');
      return { text, vaultType, vault: glob(vault), name: glob(name) };
    }),
    operations: new Set(rule.operations),
  };
}

export class AccessPolicy {
  private constructor(
    /** How messages name it: its "name", else the config file. */
    readonly name: string,
    private readonly rules: CompiledRule[],
    private readonly hint: string,
  ) {}

  /** Some rule looks at the executable: read /proc/<pid>/exe when a client connects. */
  get needsExecutable(): boolean {
    return this.rules.some((r) => r.executables !== undefined);
  }

  get ruleCount(): number {
    return this.rules.length;
  }

  /**
   * The config's policy, ready to enforce; undefined when the config has none. Throws AkvError
   * (BAD_REQUEST) when it names an unknown user or group, or when peer credentials are unavailable.
   */
  static fromConfig(config: AkvConfig): AccessPolicy | undefined {
    if (!config.policy) return undefined;
    const file = config.path ?? 'the inline config';
    const unavailable = peerCredentialsUnavailable();
    if (unavailable !== undefined) {
      throw new AkvError(
        'BAD_REQUEST',
        `config ${file} sets an access policy, but the agent cannot read its clients' credentials from the kernel (${unavailable}); it will not enforce a policy on what clients say about themselves`,
        'rebuild the native helper (`npm run build` builds native/build/akv_peercred.node; it needs the Node.js headers, Debian: nodejs) or reinstall the akv package',
      );
    }
    const rules = config.policy.rules.map((r, i) => compileRule(r, file, i));
    return new AccessPolicy(
      config.policy.name ?? file,
      rules,
      `if this client should be allowed, grant it with a rule in "policy.rules" of ${file}, then send SIGHUP to the agent (docs/security.md, "Access policy")`,
    );
  }

  private rulesFor(peer: PeerCredentials): CompiledRule[] {
    return this.rules.filter(
      (r) =>
        (r.uids === undefined || r.uids.has(peer.uid)) &&
        (r.gids === undefined || r.gids.has(peer.gid) || peer.groups.some((g) => r.gids!.has(g))) &&
        (r.executables === undefined || r.executables.has(peerExecutable(peer) ?? '')),
    );
  }

  private static grants(rule: CompiledRule, op: PolicyOperation, t: AccessTarget): boolean {
    return (
      rule.operations.has(op) &&
      rule.keys.some(
        (k) =>
          k.vaultType === t.vaultType &&
          k.vault.test(t.vault) &&
          (t.name === undefined || k.name.test(t.name)),
      )
    );
  }

  /**
   * The name of the rule that lets PEER do OP on TARGET; throws ACCESS_DENIED (naming the policy,
   * the peer, the operation and the key) when none does.
   */
  check(peer: PeerCredentials | undefined, op: PolicyOperation, target: AccessTarget): string {
    const what =
      target.name === undefined
        ? `${target.vaultType}:${target.vault}:`
        : `${target.vaultType}:${target.vault}:${target.name}`;
    if (!peer) {
      throw new AkvError(
        'ACCESS_DENIED',
        `access denied by policy "${this.name}": the kernel did not give this connection's credentials, so it may not ${op} ${what}`,
        "connect over the agent's Unix socket (credentials are read with SO_PEERCRED when the client connects)",
      );
    }
    const mine = this.rulesFor(peer);
    const rule = mine.find((r) => AccessPolicy.grants(r, op, target));
    if (rule) return rule.name;
    const why =
      mine.length === 0
        ? 'no rule is for this client'
        : `the rules for this client (${mine.map((r) => `"${r.name}": ${[...r.operations].join('/')} on ${r.keys.map((k) => k.text).join(', ')}`).join('; ')}) do not allow it`;
    throw new AkvError(
      'ACCESS_DENIED',
      `access denied by policy "${this.name}": ${describePeer(peer)} may not ${op} ${what} (${why})`,
      this.hint,
    );
  }

  /** LIST: which of a vault's key names the peer may see (the keys granted for list there). */
  listFilter(peer: PeerCredentials | undefined, target: AccessTarget): (name: string) => boolean {
    this.check(peer, 'list', target);
    const patterns = this.rulesFor(peer!)
      .filter((r) => AccessPolicy.grants(r, 'list', target))
      .flatMap((r) =>
        r.keys.filter((k) => k.vaultType === target.vaultType && k.vault.test(target.vault)),
      );
    return (name) => patterns.some((k) => k.name.test(name));
  }
}
