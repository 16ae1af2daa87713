/**
 * The `policy` section of the config (docs/security.md, "Access policy"): its shape only. Names
 * of users and groups are resolved, and the policy enforced, by the agent (src/agent/policy.ts),
 * so that the CLI can read a config without the agent's native helper.
 */
import type { FieldReader } from './load.js';
import { POLICY_OPERATIONS, type PolicyConfig, type PolicyRule } from './types.js';
import { isOneOf, isStringArray } from '../guards.js';

/** `<type>:<vault>:<key>` with `*`/`?` globs; the vault and key parts use their names' characters. */
export const KEY_PATTERN = /^(managedhsm|keyvault):([A-Za-z0-9*?-]{1,24}):([A-Za-z0-9*?-]{1,127})$/;

const MAX_ID = 0xfffffffe;

export function readPolicy(p: FieldReader): PolicyConfig {
  p.rejectUnknown(['name', 'rules']);
  const name = p.string('name');
  const rules = p.raw('rules');
  if (!Array.isArray(rules) || rules.length === 0) {
    p.fail(
      'rules',
      'must be a non-empty list of rules (leave "policy" out to allow every client every key)',
    );
  }
  const seen = new Set<string>();
  const out: PolicyRule[] = rules.map((_, i) => {
    const r = p.element('rules', i);
    const rule = readRule(r);
    if (seen.has(rule.name)) r.fail('name', `repeats the rule name "${rule.name}"`);
    seen.add(rule.name);
    return rule;
  });
  return name === undefined ? { rules: out } : { name, rules: out };
}

function readRule(r: FieldReader): PolicyRule {
  r.rejectUnknown(['name', 'users', 'groups', 'executables', 'keys', 'operations']);
  const name = r.string('name') ?? r.fail('name', 'is required: it names the rule in the audit');
  const users = idList(r, 'users');
  const groups = idList(r, 'groups');
  if (users === undefined && groups === undefined)
    r.fail('users', 'or "groups" is required: a rule names whom it is for');
  const executables = stringList(r, 'executables', (v) =>
    v.startsWith('/') ? undefined : 'must be absolute paths, e.g. "/usr/sbin/nginx"',
  );
  const keys =
    stringList(r, 'keys', (v) =>
      KEY_PATTERN.test(v)
        ? undefined
        : `must be key URI patterns such as "managedhsm:my-hsm:web-*" (got ${JSON.stringify(v.slice(0, 80))})`,
    ) ?? r.fail('keys', 'is required: the key URI patterns the rule allows');
  const operations =
    stringList(r, 'operations', (v) =>
      isOneOf(POLICY_OPERATIONS, v)
        ? undefined
        : `must name operations among ${POLICY_OPERATIONS.join(', ')} (got ${JSON.stringify(v.slice(0, 40))})`,
    ) ?? r.fail('operations', `is required: some of ${POLICY_OPERATIONS.join(', ')}`);
  return {
    name,
    ...(users !== undefined ? { users } : {}),
    ...(groups !== undefined ? { groups } : {}),
    ...(executables !== undefined ? { executables } : {}),
    keys,
    operations: operations.filter((op) => isOneOf(POLICY_OPERATIONS, op)),
  };
}

/** A non-empty list of strings, each checked by `bad` (which returns the problem, if any). */
function stringList(
  r: FieldReader,
  key: string,
  bad: (v: string) => string | undefined,
): string[] | undefined {
  const v = r.raw(key);
  if (v === undefined) return undefined;
  if (!isStringArray(v) || v.length === 0 || v.some((e) => e === ''))
    r.fail(key, 'must be a non-empty list of non-empty strings');
  for (const e of v) {
    const problem = bad(e);
    if (problem) r.fail(key, problem);
  }
  return v;
}

/** A non-empty list of names or numeric ids. */
function idList(r: FieldReader, key: string): Array<string | number> | undefined {
  const v = r.raw(key);
  if (v === undefined) return undefined;
  if (!Array.isArray(v) || v.length === 0 || !v.every(isNameOrId))
    r.fail(key, 'must be a non-empty list of names or numeric ids');
  return v;
}

/** A user or group name, or a numeric id. */
function isNameOrId(e: unknown): e is string | number {
  return (
    (typeof e === 'string' && /^[A-Za-z0-9_.][A-Za-z0-9_.-]{0,63}\$?$/.test(e)) ||
    (typeof e === 'number' && Number.isInteger(e) && e >= 0 && e <= MAX_ID)
  );
}
