/**
 * `akv doctor [URI]`: walks the chain a signature takes (provider, agent, credential, HSM, key,
 * a test signature) and prints one line per link, so the broken one is obvious with a hint.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from '../command.js';
import { UsageError, wantsHelp } from '../command.js';
import { AgentClient, type KeyInfo } from '../../client/agent-client.js';
import { loadConfig } from '../../config/load.js';
import type { AkvConfig } from '../../config/types.js';
import { AkvError, withHint } from '../../errors.js';
import { parseKeyUri, type KeyRef } from '../../uri/index.js';
import { agentSocketPath } from '../util/agent.js';
import { parseOptions, str } from '../util/args.js';
import { defaultSignAlg, hashForAlg, verifyDigest } from '../util/local-crypto.js';

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..');

const usage = `Usage: akv doctor [URI] [--socket PATH]

Checks each link between an OpenSSL application and the HSM key, in order, and prints one line
per link (ok / FAIL with a hint):
  1. provider loadable   openssl list -providers -provider akv_provider -provider default
  2. agent reachable     ping over AKV_AGENT_SOCKET (or the config's socket)
  3. credential          a token for the URI's HSM (config AKV_CONFIG, AZURE_CLI_ACCESS_TOKEN, az login ...)
  4. HSM reachable       the HSM answers over HTTPS
  5. key usable          the agent describes the key: enabled, allowed operations
  6. test signature      the agent signs a random digest, verified here with the public key
                         (AES keys: a wrap/unwrap round trip)
Without URI, checks 1-3 only. Exits 0 only when every check passes.

Example:
  akv doctor managedhsm:devhsm:tls-key`;

type Outcome = { ok: true; detail: string } | { ok: false; detail: string; hint: string };

const ok = (detail: string): Outcome => ({ ok: true, detail });
const fail = (detail: string, hint: string): Outcome => ({ ok: false, detail, hint });

function fromError(err: unknown, fallbackHint: string): Outcome {
  if (err instanceof AkvError) return fail(err.message, err.hint ?? fallbackHint);
  return fail((err as Error).message ?? String(err), fallbackHint);
}

function checkProvider(): Outcome {
  const modules = process.env.OPENSSL_MODULES || join(REPO_ROOT, 'provider', 'build');
  const r = spawnSync(
    'openssl',
    ['list', '-providers', '-provider', 'akv_provider', '-provider', 'default'],
    {
      env: { ...process.env, OPENSSL_MODULES: modules },
      encoding: 'utf8',
      timeout: 15_000,
    },
  );
  if (r.error)
    return fail(
      `cannot run openssl: ${r.error.message}`,
      'install OpenSSL 3 (Debian/Ubuntu: apt-get install openssl)',
    );
  if (r.status === 0 && /akv/i.test(r.stdout)) return ok(`akv_provider loads from ${modules}`);
  const why =
    (r.stderr || r.stdout).split('\n').find((l) => l.trim() !== '') ?? `exit status ${r.status}`;
  return fail(
    `openssl cannot load akv_provider from OPENSSL_MODULES=${modules}: ${why.trim()}`,
    `build it (\`npm run build\`, or \`make -C ${join(REPO_ROOT, 'provider')}\`) and export OPENSSL_MODULES=${join(REPO_ROOT, 'provider', 'build')} (\`akv dev up\` prints it)`,
  );
}

async function checkAgent(socket: string): Promise<Outcome> {
  const client = new AgentClient(socket, { timeoutMs: 5000, clientName: 'akv-doctor' });
  try {
    const hello = await client.hello();
    await client.ping();
    return ok(`agent ${hello.agentVersion} answers on ${socket}`);
  } catch (err) {
    return fromError(
      err,
      `start the agent (\`bin/akv agent\`, or \`eval "$(bin/akv dev up --dir DIR --hsm-name NAME)"\`) or point AKV_AGENT_SOCKET at its socket`,
    );
  } finally {
    await client.close().catch(() => undefined);
  }
}

async function checkCredential(config: AkvConfig, ref: KeyRef | undefined): Promise<Outcome> {
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

async function checkHsm(config: AkvConfig, ref: KeyRef): Promise<Outcome> {
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

async function checkKey(
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

async function checkSignature(client: AgentClient, uri: string, info: KeyInfo): Promise<Outcome> {
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

async function runDoctor(argv: string[]): Promise<number> {
  if (wantsHelp(argv)) {
    console.log(usage);
    return 0;
  }
  const p = parseOptions('doctor', argv, { socket: { type: 'string' } }, [], true);
  if (p.positionals.length > 1) throw new UsageError('doctor: give at most one key URI');
  const uri = p.positionals[0];
  const ref = uri !== undefined ? parseKeyUri(uri) : undefined;

  let failed = false;
  const report = (name: string, outcome: Outcome | 'skipped', why?: string): void => {
    if (outcome === 'skipped') {
      console.log(`[skip] ${name}: ${why ?? 'an earlier link is broken'}`);
      return;
    }
    if (outcome.ok) {
      console.log(`[ ok ] ${name}: ${outcome.detail}`);
    } else {
      failed = true;
      console.log(`[FAIL] ${name}: ${withHint(outcome.detail, outcome.hint)}`);
    }
  };

  report('provider loadable', checkProvider());

  let socket: string | undefined;
  let config: AkvConfig | undefined;
  try {
    config = loadConfig();
    socket = agentSocketPath(str(p, 'socket'));
  } catch (err) {
    report('config', fromError(err, 'fix the config file named by AKV_CONFIG'));
  }
  const agentOutcome: Outcome = socket
    ? await checkAgent(socket)
    : fail('no agent socket known', 'set AKV_AGENT_SOCKET');
  report('agent reachable', agentOutcome);
  const credentialOutcome = config ? await checkCredential(config, ref) : undefined;
  if (credentialOutcome) report('credential', credentialOutcome);
  else report('credential', 'skipped', 'no usable config');

  if (!ref || uri === undefined) {
    for (const name of ['HSM reachable', 'key usable', 'test signature'])
      report(name, 'skipped', 'give a key URI to check these');
    return failed ? 1 : 0;
  }
  const hsmOutcome = config && credentialOutcome?.ok ? await checkHsm(config, ref) : undefined;
  if (hsmOutcome) report('HSM reachable', hsmOutcome);
  else report('HSM reachable', 'skipped', 'needs a working credential');

  if (!agentOutcome.ok || !socket) {
    report('key usable', 'skipped', 'needs the agent');
    report('test signature', 'skipped', 'needs the agent');
    return 1;
  }
  const client = new AgentClient(socket, { timeoutMs: 30_000, clientName: 'akv-doctor' });
  try {
    const key = await checkKey(client, uri);
    report('key usable', key.outcome);
    if (key.outcome.ok && key.info)
      report('test signature', await checkSignature(client, uri, key.info));
    else report('test signature', 'skipped', 'the key is not usable');
  } finally {
    await client.close().catch(() => undefined);
  }
  return failed ? 1 : 0;
}

const command: Command = {
  summary: 'Check every link from OpenSSL to the HSM key and say which one is broken',
  usage,
  run: runDoctor,
};

export default command;
