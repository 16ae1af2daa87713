/**
 * `akv --version`: the CLI's version on the first line (`akv X.Y.Z`, what scripts read), then the
 * agent this shell would talk to and the provider OpenSSL would load, each with its own version,
 * so a mismatch after an upgrade (an old agent still running) is visible. It only looks: it never
 * starts an agent, and an absent one is reported, not an error (exit 0).
 */
import { AgentClient } from '../client/agent-client.js';
import { akvVersion } from '../version.js';
import { providerLoad } from './doctor/provider-check.js';
import { agentSocketPath } from './util/agent.js';
import { opensslModulesDir } from './util/provider-location.js';
import { errorMessage } from '../errors.js';

async function agentLine(): Promise<string> {
  let socket: string;
  try {
    socket = agentSocketPath();
  } catch (err) {
    return `agent:    unknown (${errorMessage(err)})`;
  }
  const client = new AgentClient(socket, { timeoutMs: 2000, clientName: 'akv-version' });
  try {
    const hello = await client.hello();
    return `agent:    ${hello.agentVersion} on ${socket} (protocol ${hello.protoVersion})`;
  } catch {
    return `agent:    none answers on ${socket} (started on demand unless AKV_AGENT_AUTOSTART=0)`;
  } finally {
    await client.close().catch(() => undefined);
  }
}

function providerLine(): string {
  const system = providerLoad(undefined);
  if (!(system instanceof Error) && system.loaded)
    return `provider: ${system.version ?? '?'} in ${opensslModulesDir() ?? "OpenSSL's modules directory"}`;
  const fromEnv = process.env.OPENSSL_MODULES;
  if (fromEnv) {
    const env = providerLoad(fromEnv);
    if (!(env instanceof Error) && env.loaded)
      return `provider: ${env.version ?? '?'} in OPENSSL_MODULES=${fromEnv}`;
  }
  return `provider: not found (openssl cannot load akv_provider; \`akv doctor\` says why)`;
}

export async function printVersions(): Promise<number> {
  console.log(`akv ${akvVersion()}`);
  console.log(await agentLine());
  console.log(providerLine());
  return 0;
}
