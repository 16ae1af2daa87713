/**
 * `akv doctor`'s "agent reachable" when no agent runs: the provider (and the CLI's crypto
 * commands) would start the user's own agent (autostart), so that is not a failure by itself.
 * Without a key URI, doctor checks that an autostart could happen (the socket's directory is this
 * user's, the akv command runs) and says so as a warning; with a URI, it starts the agent as the
 * provider would, so that the key and test-signature checks can run. Where autostart is off or
 * would be refused, the failure says why.
 */
import { spawnSync } from 'node:child_process';
import { autostartAgent, autostartPlan } from '../util/autostart.js';
import { checkAgent } from './checks.js';
import { fail, fromError, ok, type Outcome } from './outcome.js';

const ABSENT = /not reachable at .*\((ENOENT|ECONNREFUSED)\)/;

export async function checkAgentOrAutostart(socket: string, startIt: boolean): Promise<Outcome> {
  const outcome = await checkAgent(socket);
  if (outcome.status !== 'fail' || !ABSENT.test(outcome.detail)) return outcome;
  const plan = autostartPlan(socket, false);
  if (!plan.possible)
    return fail(
      `${outcome.detail}, and it is not started automatically: ${plan.reason}`,
      outcome.hint ?? 'start it with `akv agent`',
    );
  if (!startIt) {
    const probe = spawnSync(plan.command, ['agent', '--help'], {
      encoding: 'utf8',
      timeout: 30_000,
    });
    if (probe.status !== 0)
      return fail(
        `no agent runs on ${socket}, and the autostart command fails: ${plan.command} agent --help: ${(probe.stderr || probe.error?.message || `exit ${probe.status}`).trim()}`,
        'fix or set AKV_AGENT_COMMAND (the provider: agent_command), or start the agent yourself',
      );
    return {
      status: 'warn',
      detail: `no agent runs on ${socket}; the provider starts one on first use (autostart: ${plan.command} agent, log ${plan.log}); checked: the directory is this user's and the command runs. Give a key URI to start it and check the key`,
    };
  }
  try {
    await autostartAgent(socket);
  } catch (err) {
    return fromError(err, 'start it with `akv agent`');
  }
  const started = await checkAgent(socket);
  return started.status === 'ok'
    ? ok(
        `${started.detail} (no agent was running: started it as the provider would, autostart; log ${plan.log})`,
      )
    : started;
}
