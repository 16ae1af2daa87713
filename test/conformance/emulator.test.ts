/**
 * The emulator against real Managed HSM answers: every recorded request (fixtures/, README.md) is
 * sent to a fresh emulator and its answer compared field by field with the real one
 * (fixtures.ts). A difference fails the test unless allow-list.json names it with the reason; an
 * allow-list entry that no longer matches a difference fails too, so the list stays true.
 *
 * Requests that carry data only the real key could have made are remade for the emulator's key:
 * a decrypt or unwrapKey gets the recorded plaintext encrypted to the emulator's key (and must give
 * back the recorded plaintext), unless the fixture imported the recorded private key (then the
 * recorded ciphertext is sent as is); a release gets a token from the emulator's test attestation
 * authority with the recorded claims; a listing page requested with the real service's $skiptoken
 * gets the emulator's own token from its previous page of that listing (none: the first page).
 */
import assert from 'node:assert/strict';
import { constants, createPublicKey, publicEncrypt } from 'node:crypto';
import { after, describe, test } from 'node:test';
import { attestationToken } from '../helpers/attestation.js';
import { startEmulator, type RunningEmulator } from '../helpers/emulator.js';
import {
  compareBody,
  compareHeaders,
  loadAllowList,
  loadFixtures,
  type Difference,
  type RecordedExchange,
} from './fixtures.js';

const allow = loadAllowList();
const used = new Set<number>();
const running: RunningEmulator[] = [];
after(async () => {
  for (const e of running) await e.stop();
});

const OAEP: Record<string, { padding: number; oaepHash?: string }> = {
  RSA1_5: { padding: constants.RSA_PKCS1_PADDING },
  'RSA-OAEP': { padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha1' },
  'RSA-OAEP-256': { padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' },
};

/** Key material the emulator made for each recorded key, by name. */
interface OurKey {
  n?: string;
  e?: string;
}

/** The policy authority of the fixture's exportable key, for the release token's issuer. */
function policyAuthority(exchanges: RecordedExchange[]): string | undefined {
  for (const x of exchanges) {
    const data = (x.request.body as { release_policy?: { data?: string } } | undefined)
      ?.release_policy?.data;
    if (!data) continue;
    const policy = JSON.parse(Buffer.from(data, 'base64url').toString()) as {
      anyOf?: { authority?: string }[];
    };
    return policy.anyOf?.[0]?.authority;
  }
  return undefined;
}

for (const fixture of loadFixtures()) {
  describe(fixture.file, () => {
    let emu: RunningEmulator;
    const versions = new Map<string, string>();
    const keys = new Map<string, OurKey>();
    /** Keys imported with the recorded private key: the emulator holds the real key. */
    const imported = new Set<string>();
    /** The emulator's nextLink for each listing path, for the recorded next-page requests. */
    const nextLinks = new Map<string, string>();

    const recordedDays = fixture.exchanges
      .map(
        (x) =>
          (x.response.body as { attributes?: { recoverableDays?: number } } | null)?.attributes
            ?.recoverableDays,
      )
      .find((d) => d !== undefined);

    for (const x of fixture.exchanges) {
      test(x.name, async () => {
        if (!emu) {
          // The HSM's retention setting is part of the recording (7 days on HSMs made since 2021).
          emu = await startEmulator({ extraArgs: ['--retention-days', String(recordedDays ?? 7)] });
          running.push(emu);
        }
        const name = x.request.path.split('/').filter((s) => s !== '')[1] ?? '';
        let path = x.request.path.replace(
          /\/([0-9a-f]{32})(?=\/|$)/,
          (m, v: string) => `/${versions.get(v) ?? v}`,
        );
        const params = new URLSearchParams(x.request.query);
        if (params.has('$skiptoken')) {
          const ours = nextLinks.get(x.request.path);
          const token = ours ? new URL(ours).searchParams.get('$skiptoken') : null;
          if (token) params.set('$skiptoken', token);
          else params.delete('$skiptoken');
        }
        const query = params.toString();
        let body =
          x.request.body === undefined
            ? undefined
            : (structuredClone(x.request.body) as Record<string, unknown>);
        const op = path.split('/').pop();
        const privateKeyOp = op === 'decrypt' || op === 'unwrapkey';
        if (x.request.method === 'PUT' && (body?.key as { d?: string } | undefined)?.d)
          imported.add(name);
        if (privateKeyOp && body && !imported.has(name)) {
          const ours = keys.get(name);
          assert.ok(ours?.n, `no key ${name} made before the decrypt`);
          const pub = createPublicKey({
            key: { kty: 'RSA', n: ours.n, e: ours.e ?? 'AQAB' },
            format: 'jwk',
          });
          const plain = Buffer.from(
            String((x.response.body as { value: string }).value),
            'base64url',
          );
          body.value = publicEncrypt({ key: pub, ...OAEP[String(body.alg)] }, plain).toString(
            'base64url',
          );
        }
        if (op === 'release' && body) {
          const token = attestationToken(
            emu.stateDir,
            { 'sdk-test': true },
            { issuer: policyAuthority(fixture.exchanges) },
          );
          body = { ...body, target: token.token };
        }
        path = path.replace(/\/\/+/g, '/');
        const res = await emu.request(x.request.method, `${path}?${query}`, {
          ...(body !== undefined ? { body } : {}),
          ...(x.request.auth === false ? { token: null } : {}),
        });
        const diffs: Difference[] = [];
        if (res.status !== x.response.status)
          diffs.push({
            path: 'status',
            real: String(x.response.status),
            ours: `${res.status} ${res.text}`,
          });
        compareHeaders(x.response.headers, res.headers, diffs);
        const realBody = x.response.body;
        const ourBody = res.text === '' ? null : (res.json ?? res.text);
        compareBody(realBody, ourBody, 'body', diffs);
        // The error's Activity ID is this answer's x-ms-request-id, as on the real service.
        const message = (ourBody as { error?: { message?: string } } | null)?.error?.message;
        if (
          message !== undefined &&
          !message.endsWith(`(Activity ID: ${String(res.headers['x-ms-request-id'])})`)
        )
          diffs.push({
            path: 'body.error.message(Activity ID)',
            real: 'x-ms-request-id',
            ours: message,
          });
        if (privateKeyOp && res.status === 200) {
          const want = (realBody as { value: string }).value;
          const got = (ourBody as { value: string }).value;
          if (want !== got) diffs.push({ path: 'body.value(plaintext)', real: want, ours: got });
        }
        if (op === 'sign' && res.status === 200) {
          const len = (b: unknown) =>
            Buffer.from(String((b as { value: string }).value), 'base64url').length;
          if (len(realBody) !== len(ourBody))
            diffs.push({
              path: 'body.value(length)',
              real: String(len(realBody)),
              ours: String(len(ourBody)),
            });
        }
        const nextLink = (ourBody as { nextLink?: unknown } | null)?.nextLink;
        if (typeof nextLink === 'string') nextLinks.set(x.request.path, nextLink);
        // Learn the emulator's versions and key material for later requests.
        const ourKey = (ourBody as { key?: { kid?: string; n?: string; e?: string } } | null)?.key;
        const realKid = (realBody as { key?: { kid?: string } } | null)?.key?.kid;
        if (ourKey?.kid && realKid) {
          versions.set(realKid.slice(-32), ourKey.kid.slice(-32));
          keys.set(name, { n: ourKey.n, e: ourKey.e });
        }
        const unexplained = diffs.filter((d) => {
          const i = allow.findIndex(
            (a) => a.fixture === fixture.file && a.exchange === x.name && a.path === d.path,
          );
          if (i >= 0) used.add(i);
          return i < 0;
        });
        assert.deepEqual(
          unexplained,
          [],
          `differences from the real answer (fix them or allow-list them with the reason)`,
        );
      });
    }
  });
}

test('every allow-list entry still explains a difference', () => {
  const stale = allow.filter((_, i) => !used.has(i));
  assert.deepEqual(stale, [], 'remove entries for differences that are gone');
});
