/**
 * `akv doctor [URI] [--json]`: walks the chain a signature takes (provider, agent, what the agent
 * sees, key, a test signature) plus this user's own credential, and prints one line per link, so
 * the broken one is obvious with a hint; `--json` gives the same for scripts, with the agent's
 * whole DIAGNOSE report.
 */
import type { Command } from '../command.js';
import { UsageError, wantsHelp } from '../command.js';
import type { AgentReport } from '../../client/agent-client.js';
import { AgentClient } from '../../client/agent-client.js';
import { loadConfig } from '../../config/load.js';
import type { AkvConfig } from '../../config/types.js';
import { withHint } from '../../errors.js';
import { parseKeyUri } from '../../uri/index.js';
import { akvVersion } from '../../version.js';
import { agentChecks, askAgent, type Check } from '../doctor/agent-view.js';
import { checkAgentOrAutostart } from '../doctor/autostart-check.js';
import { checkCredential, checkHsm, checkKey, checkSignature } from '../doctor/checks.js';
import { fail, fromError, skip, type Outcome } from '../doctor/outcome.js';
import { checkProvider } from '../doctor/provider-check.js';
import { agentSocketPath } from '../util/agent.js';
import { flag, parseOptions, str } from '../util/args.js';

const usage = `Usage: akv doctor [URI] [--socket PATH] [--json]

Checks each link between an OpenSSL application and the HSM key, in order, and prints one line
per link ([ ok ], [FAIL] with a hint, [warn], [skip]):
  provider loadable   openssl loads akv_provider: from OpenSSL's modules directory first
                      (openssl version -m), else from OPENSSL_MODULES
  agent reachable     HELLO and PING over AKV_AGENT_SOCKET (or the config's socket); when no
                      agent runs but the provider would start one (autostart), a warning
                      without URI (after checking that it could), and with a URI doctor starts
                      it as the provider would (AKV_AGENT_AUTOSTART=0: a failure)
  agent credential    what the agent sees (DIAGNOSE): its credential and token expiry,
  agent HSM NAME      and whether each HSM it knows (the config's, the URI's) answers
  credential          this user's own token (config AKV_CONFIG, AZURE_CLI_ACCESS_TOKEN, az login
  HSM reachable       ...) and HSM access, used by \`akv key\` commands; a warning only when the
                      agent's own work
  key usable          the agent describes the key: enabled, allowed operations
  test signature      the agent signs a random digest, verified here with the public key
                      (AES keys: a wrap/unwrap round trip)
Without URI, the key checks are skipped. Exits 0 only when no check fails.

Options:
  --socket PATH   the agent's socket (default: AKV_AGENT_SOCKET, the config's socket)
  --json          print one JSON object instead: {"ok", "version", "uri", "checks": [{"name",
                  "status", "detail", "hint"}], "agentReport": the agent's DIAGNOSE
                  report, or null when the agent did not answer}

Example:
  akv doctor managedhsm:devhsm:tls-key`;

const LOCAL_NOTE =
  "this user's own credential; the agent's works, so OpenSSL applications are not affected: only `akv key` commands run as this user need it";

/** A local failure is only a warning when the agent (what applications use) has it working. */
function demoteWhenAgentWorks(outcome: Outcome, agentWorks: boolean): Outcome {
  if (outcome.status !== 'fail' || !agentWorks) return outcome;
  return { ...outcome, status: 'warn', detail: `${outcome.detail} (${LOCAL_NOTE})` };
}

async function runChecks(
  uri: string | undefined,
  socketOption: string | undefined,
): Promise<{ checks: Check[]; report: AgentReport | null }> {
  const ref = uri !== undefined ? parseKeyUri(uri) : undefined;
  const checks: Check[] = [['provider loadable', checkProvider()]];

  let socket: string | undefined;
  let config: AkvConfig | undefined;
  try {
    config = loadConfig();
    socket = agentSocketPath(socketOption);
  } catch (err) {
    checks.push(['config', fromError(err, 'fix the config file named by AKV_CONFIG')]);
  }
  const agentOutcome: Outcome = socket
    ? await checkAgentOrAutostart(socket, uri !== undefined)
    : fail('no agent socket known', 'set AKV_AGENT_SOCKET');
  checks.push(['agent reachable', agentOutcome]);

  const view = await agentView(socket, agentOutcome, uri);
  checks.push(...view.checks);
  const report = view.report;
  const agentWorks =
    report !== null && report.credential.ok && report.vaults.some((v) => v.reachable);

  const credentialOutcome = config ? await checkCredential(config, ref) : undefined;
  checks.push([
    'credential',
    credentialOutcome
      ? demoteWhenAgentWorks(credentialOutcome, agentWorks)
      : skip('no usable config'),
  ]);

  if (!ref || uri === undefined) {
    for (const name of ['HSM reachable', 'key usable', 'test signature'])
      checks.push([name, skip('give a key URI to check these')]);
    return { checks, report };
  }
  checks.push([
    'HSM reachable',
    config && credentialOutcome?.status === 'ok'
      ? demoteWhenAgentWorks(await checkHsm(config, ref), agentWorks)
      : skip('needs a working credential of this user'),
  ]);

  if (agentOutcome.status !== 'ok' || !socket) {
    checks.push(
      ['key usable', skip('needs the agent')],
      ['test signature', skip('needs the agent')],
    );
    return { checks, report };
  }
  checks.push(...(await keyChecks(socket, uri)));
  return { checks, report };
}

/** What the agent itself sees (its credential, each HSM), when it answers. */
async function agentView(
  socket: string | undefined,
  agentOutcome: Outcome,
  uri: string | undefined,
): Promise<{ checks: Check[]; report: AgentReport | null }> {
  if (!socket || agentOutcome.status !== 'ok')
    return { checks: [['agent view', skip('needs the agent')]], report: null };
  const asked = await askAgent(socket, uri);
  if ('report' in asked) return { checks: agentChecks(asked.report), report: asked.report };
  return { checks: [['agent view', asked.outcome]], report: null };
}

/** The key as the agent describes it, then a test signature with it. */
async function keyChecks(socket: string, uri: string): Promise<Check[]> {
  const client = new AgentClient(socket, { timeoutMs: 30_000, clientName: 'akv-doctor' });
  try {
    const key = await checkKey(client, uri);
    return [
      ['key usable', key.outcome],
      [
        'test signature',
        key.outcome.status === 'ok' && key.info
          ? await checkSignature(client, uri, key.info)
          : skip('the key is not usable'),
      ],
    ];
  } finally {
    await client.close().catch(() => undefined);
  }
}

const LABEL: Record<Outcome['status'], string> = {
  ok: '[ ok ]',
  fail: '[FAIL]',
  warn: '[warn]',
  skip: '[skip]',
};

async function runDoctor(argv: string[]): Promise<number> {
  if (wantsHelp(argv)) {
    console.log(usage);
    return 0;
  }
  const p = parseOptions(
    'doctor',
    argv,
    { socket: { type: 'string' }, json: { type: 'boolean' } },
    [],
    true,
  );
  if (p.positionals.length > 1) throw new UsageError('doctor: give at most one key URI');
  const uri = p.positionals[0];
  const { checks, report } = await runChecks(uri, str(p, 'socket'));
  const passed = !checks.some(([, o]) => o.status === 'fail');
  if (flag(p, 'json')) {
    const out = {
      ok: passed,
      version: akvVersion(),
      uri: uri ?? null,
      checks: checks.map(([name, o]) => ({ name, ...o })),
      agentReport: report,
    };
    console.log(JSON.stringify(out, null, 2));
  } else {
    for (const [name, o] of checks)
      console.log(`${LABEL[o.status]} ${name}: ${o.hint ? withHint(o.detail, o.hint) : o.detail}`);
  }
  return passed ? 0 : 1;
}

const command: Command = {
  summary: 'Check every link from OpenSSL to the HSM key and say which one is broken',
  usage,
  run: runDoctor,
};

export default command;
