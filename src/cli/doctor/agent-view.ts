/**
 * What the agent itself sees (the DIAGNOSE op): the agent's credential and each HSM it knows,
 * turned into doctor lines. This is what counts for OpenSSL applications, whose keys are used
 * with the agent's identity, not with the identity of whoever runs `akv doctor`.
 */
import { AgentClient, type AgentReport } from '../../client/agent-client.js';
import { fail, fromError, ok, type Outcome } from './outcome.js';

export type Check = [name: string, outcome: Outcome];

/** Asks the agent for its report; an agent too old to know DIAGNOSE gives an error outcome. */
export async function askAgent(
  socket: string,
  uri: string | undefined,
): Promise<{ report: AgentReport } | { outcome: Outcome }> {
  const client = new AgentClient(socket, { timeoutMs: 60_000, clientName: 'akv-doctor' });
  try {
    return { report: await client.diagnose(uri) };
  } catch (err) {
    return {
      outcome: fromError(
        err,
        'upgrade the agent to the version of this akv command (older agents do not answer DIAGNOSE)',
      ),
    };
  } finally {
    await client.close().catch(() => undefined);
  }
}

export function agentChecks(report: AgentReport): Check[] {
  const c = report.credential;
  const who = `the agent (uid ${report.agent.uid})`;
  const checks: Check[] = [
    [
      'agent credential',
      c.ok
        ? ok(
            `${c.source} gives ${who} a token for ${c.scope} (valid ${Math.round(c.expiresInSeconds / 60)} more min)`,
          )
        : fail(
            `${c.source} gives ${who} no token: ${c.error}`,
            c.hint ?? "fix the agent's credential (docs/configuration.md) and reload it",
          ),
    ],
  ];
  for (const v of report.vaults) {
    checks.push([
      `agent HSM ${v.name}`,
      v.reachable
        ? ok(v.detail)
        : fail(v.detail, v.hint ?? `check the endpoint of ${v.name} in the agent's config`),
    ]);
  }
  if (report.vaults.length === 0) {
    checks.push([
      'agent HSM',
      {
        status: 'warn',
        detail: 'the agent knows no HSM yet',
        hint: 'give a key URI, or list the HSM under "vaults" in the agent\'s config',
      },
    ]);
  }
  return checks;
}
