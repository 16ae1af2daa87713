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

/** Connects to the agent, runs `use` with the client, and closes the connection however it ends. */
export async function withAgent<T>(
  explicit: string | undefined,
  use: (client: AgentClient) => Promise<T>,
): Promise<T> {
  const client = await connectAgent(explicit);
  try {
    return await use(client);
  } finally {
    await client.close();
  }
}
