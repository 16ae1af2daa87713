/** How CLI commands find and talk to the agent. */
import { AgentClient } from '../../client/agent-client.js';
import { loadConfig } from '../../config/load.js';

/** The socket: --socket, else AKV_AGENT_SOCKET, else the config's (AKV_CONFIG) or the default. */
export function agentSocketPath(explicit?: string): string {
  if (explicit) return explicit;
  if (process.env.AKV_AGENT_SOCKET) return process.env.AKV_AGENT_SOCKET;
  return loadConfig().socket;
}

export function connectAgent(explicit?: string): Promise<AgentClient> {
  return AgentClient.connect(agentSocketPath(explicit), { clientName: 'akv-cli' });
}
