/**
 * How CLI commands find and talk to the agent. The crypto commands start the user's agent when
 * none answers, as the provider does (autostart.ts), and say so on stderr when a wait is long.
 */
import { AgentClient } from '../../client/agent-client.js';
import { loadConfig } from '../../config/load.js';
import { autostartAgent, isAbsentAgent } from './autostart.js';
import { waitNote } from './progress.js';

/** The socket: --socket, else AKV_AGENT_SOCKET, else the config's (AKV_CONFIG) or the default. */
export function agentSocketPath(explicit?: string): string {
  if (explicit) return explicit;
  if (process.env.AKV_AGENT_SOCKET) return process.env.AKV_AGENT_SOCKET;
  return loadConfig().socket;
}

/** Connects to the agent; when none answers, starts one (unless AKV_AGENT_AUTOSTART=0). */
export async function connectAgent(explicit?: string): Promise<AgentClient> {
  const socket = agentSocketPath(explicit);
  try {
    return await AgentClient.connect(socket, { clientName: 'akv-cli' });
  } catch (err) {
    if (!isAbsentAgent(err)) throw err;
    await autostartAgent(socket);
    return AgentClient.connect(socket, { clientName: 'akv-cli' });
  }
}

/** Connects to the agent, runs `use` with the client, and closes the connection however it ends. */
export async function withAgent<T>(
  explicit: string | undefined,
  use: (client: AgentClient) => Promise<T>,
): Promise<T> {
  const client = await connectAgent(explicit);
  // The agent retries a throttling or failing HSM within its deadline: say why nothing happens.
  const note = waitNote('waiting for the agent (the HSM is slow to answer; the agent retries)');
  try {
    return await use(client);
  } finally {
    note.done();
    await client.close();
  }
}
