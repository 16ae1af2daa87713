/**
 * The access policy's config and decisions without a running agent: the documented example
 * (docs/security.md's fenced json block) loads as written; malformed policies are refused with
 * the field named; a compiled policy allows exactly what its rules grant, on the kernel's
 * credentials, and refuses everything else with ACCESS_DENIED naming the policy, peer and key.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { loadConfig, parseConfigObject } from '../../src/config/load.js';
import { AkvError } from '../../src/errors.js';
import { peerCredentialsUnavailable } from '../../src/agent/peer-credentials.js';
import { AccessPolicy } from '../../src/agent/policy.js';
import { REPO_ROOT } from '../helpers/emulator.js';

const dir = mkdtempSync(join(tmpdir(), 'akv-policy-config-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const exists = (db: 'passwd' | 'group', name: string): boolean =>
  spawnSync('getent', [db, name], { stdio: 'ignore' }).status === 0;

/** The first ```json block of docs/security.md under "## Access policy". */
function documentedExample(): string {
  const text = readFileSync(join(REPO_ROOT, 'docs', 'security.md'), 'utf8');
  const section = text.slice(text.indexOf('## Access policy'));
  const m = /```json\n([\s\S]*?)\n```/.exec(section);
  assert.ok(m, 'docs/security.md has no ```json block in "Access policy"');
  return m[1] as string;
}

function refused(raw: unknown, field: RegExp): void {
  assert.throws(
    () => parseConfigObject({ policy: raw }, 'test.json', {}),
    (err: unknown) => err instanceof AkvError && field.test(err.message),
  );
}

const base = { name: 'r', users: [0], keys: ['managedhsm:h1:k'], operations: ['sign'] };

describe('policy config', () => {
  it('the example of docs/security.md loads and compiles (names as on this host)', () => {
    const file = join(dir, 'config.json');
    writeFileSync(file, documentedExample());
    const config = loadConfig(file, {});
    assert.equal(config.policy?.name, 'web-host');
    assert.equal(config.policy?.rules.length, 4);
    assert.deepEqual(config.policy?.rules[0]?.operations, ['describe', 'sign']);
    // Its users and groups (ci, release, akv-clients) are a real host's: where they exist here,
    // the compiled policy must also resolve them; where not, the refusal names the one missing.
    const missing = ['ci'].filter((u) => !exists('passwd', u));
    if (missing.length === 0 && exists('group', 'release')) {
      assert.equal(AccessPolicy.fromConfig(config)?.ruleCount, 4);
    } else {
      assert.throws(
        () => AccessPolicy.fromConfig(config),
        /field "policy\.rules\[1\]\.(users|groups)": there is no (user|group) named "(ci|release)" on this host/,
      );
    }
  });

  it('refuses malformed policies, naming the field', () => {
    refused({ rules: [] }, /"policy\.rules" must be a non-empty list/);
    refused({ rules: [{ ...base, name: undefined }] }, /"policy\.rules\[0\]\.name" is required/);
    refused(
      { rules: [{ ...base, users: undefined }] },
      /"policy\.rules\[0\]\.users" or "groups" is required/,
    );
    refused(
      { rules: [{ ...base, keys: ['managedhsm:h1'] }] },
      /"policy\.rules\[0\]\.keys" must be key URI patterns/,
    );
    refused(
      { rules: [{ ...base, keys: ['managedhsm:h1:k?version=1'] }] },
      /"policy\.rules\[0\]\.keys" must be key URI patterns/,
    );
    refused(
      { rules: [{ ...base, operations: ['sign', 'export'] }] },
      /"policy\.rules\[0\]\.operations" must name operations among sign, decrypt, wrap, unwrap, describe, list/,
    );
    refused(
      { rules: [{ ...base, executables: ['nginx'] }] },
      /"policy\.rules\[0\]\.executables" must be absolute paths/,
    );
    refused({ rules: [base, base] }, /"policy\.rules\[1\]\.name" repeats the rule name "r"/);
    refused(
      { rules: [{ ...base, extra: 1 }] },
      /"policy\.rules\[0\]\.extra" is not a known setting/,
    );
    refused(
      { rules: [{ ...base, users: [-1] }] },
      /"policy\.rules\[0\]\.users" must be a non-empty list of names or numeric ids/,
    );
  });

  it('refuses a user or group that does not exist on this host when the policy is loaded', () => {
    const config = parseConfigObject(
      { policy: { rules: [{ ...base, users: ['no-such-user-akv'] }] } },
      'test.json',
      {},
    );
    assert.throws(
      () => AccessPolicy.fromConfig(config),
      /config the inline config: field "policy\.rules\[0\]\.users": there is no user named "no-such-user-akv" on this host/,
    );
  });
});

describe('policy decisions', () => {
  assert.equal(peerCredentialsUnavailable(), undefined, 'the native helper must load in tests');
  const policy = AccessPolicy.fromConfig(
    parseConfigObject(
      {
        policy: {
          name: 'unit',
          rules: [
            {
              name: 'web',
              users: ['root'],
              keys: ['managedhsm:H1:web-*'],
              operations: ['describe', 'sign'],
            },
            { name: 'grp', groups: [4242], keys: ['managedhsm:h1:job-?'], operations: ['decrypt'] },
            {
              name: 'lister',
              users: [7],
              keys: ['managedhsm:h1:a*', 'managedhsm:h2:*'],
              operations: ['list'],
            },
            {
              name: 'exe',
              users: [8],
              executables: ['/bin/true'],
              keys: ['keyvault:v1:*'],
              operations: ['sign'],
            },
          ],
        },
      },
      'unit.json',
      {},
    ),
  )!;
  const root = { uid: 0, gid: 0, pid: 1, groups: [] };
  const key = (name: string, vault = 'h1') => ({ vaultType: 'managedhsm' as const, vault, name });

  it('allows what a rule for the peer grants, names matched case-insensitively', () => {
    assert.equal(policy.check(root, 'sign', key('web-1')), 'web');
    assert.equal(policy.check(root, 'describe', key('WEB-2', 'h1')), 'web');
    assert.equal(
      policy.check({ uid: 40001, gid: 40002, pid: 2, groups: [4242] }, 'decrypt', key('job-7')),
      'grp',
    );
  });

  it('refuses the rest with ACCESS_DENIED naming the policy, peer, operation and key', () => {
    const denied = (
      peer: typeof root,
      op: 'sign' | 'decrypt' | 'unwrap',
      k: ReturnType<typeof key>,
      why: RegExp,
    ) =>
      assert.throws(
        () => policy.check(peer, op, k),
        (err: unknown) =>
          err instanceof AkvError &&
          err.code === 'ACCESS_DENIED' &&
          why.test(err.message) &&
          /SIGHUP/.test(err.hint ?? ''),
      );
    denied(
      root,
      'unwrap',
      key('web-1'),
      /^access denied by policy "unit": uid 0 \(root\), gid 0 \(root\), pid 1 may not unwrap managedhsm:h1:web-1 \(the rules for this client \("web": describe\/sign on managedhsm:H1:web-\*\) do not allow it\)$/,
    );
    denied(root, 'sign', key('job-1'), /may not sign managedhsm:h1:job-1/);
    denied(root, 'sign', key('web-1', 'h2'), /may not sign managedhsm:h2:web-1/);
    denied(
      { uid: 40001, gid: 40002, pid: 2, groups: [] },
      'decrypt',
      key('job-7'),
      /uid 40001, gid 40002, pid 2 may not decrypt .* \(no rule is for this client\)/,
    );
    denied(
      { uid: 40001, gid: 4242, pid: 2, groups: [] },
      'decrypt',
      key('job-77'),
      /may not decrypt managedhsm:h1:job-77/,
    );
    // An executable rule: the peer's /proc/<pid>/exe (this test's own process is node, not /bin/true).
    denied(
      { uid: 8, gid: 8, pid: process.pid, groups: [] },
      'sign',
      { vaultType: 'keyvault' as never, vault: 'v1', name: 'k' },
      /, \/\S*node\S* may not sign keyvault:v1:k \(no rule is for this client\)/,
    );
    assert.throws(
      () => policy.check(undefined, 'sign', key('web-1')),
      /the kernel did not give this connection's credentials/,
    );
  });

  it('list: allowed per vault, the names filtered to the patterns granted', () => {
    const lister = { uid: 7, gid: 7, pid: 3, groups: [] };
    const visible = policy.listFilter(lister, { vaultType: 'managedhsm', vault: 'h1' });
    assert.deepEqual(['alpha', 'beta', 'Apple'].filter(visible), ['alpha', 'Apple']);
    assert.throws(
      () => policy.listFilter(root, { vaultType: 'managedhsm', vault: 'h1' }),
      /may not list managedhsm:h1:/,
    );
  });
});
