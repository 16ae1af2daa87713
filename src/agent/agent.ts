/**
 * The agent process's life: start an AgentProcess (src/agent/agent-process.ts), serve until
 * SIGTERM/SIGINT (drain, then exit 0), reload the config on SIGHUP, and on a bug log it, remove
 * the socket and exit 70 (a supervisor restarts it). It also stops (drain, exit 0) when another
 * version was installed under it and it needed a module it had not loaded yet.
 */
import { onInstallationReplaced } from '../installation.js';
import { AgentProcess } from './agent-process.js';
import type { AgentOptions } from './agent-process.js';

export { agentVersion } from './agent-process.js';
export type { AgentOptions } from './agent-process.js';

/** Runs the agent until it is told to stop; resolves with the process exit status. */
export async function runAgent(opts: AgentOptions = {}, idleExitSeconds = 0): Promise<number> {
  const agent = await AgentProcess.start(opts);

  const die = (what: string) => (err: unknown) => {
    agent.crashed(what, err);
    process.exit(70);
  };
  process.on('uncaughtException', die('uncaught exception'));
  process.on('unhandledRejection', die('unhandled promise rejection'));

  return new Promise<number>((resolveExit) => {
    let stopping = false;
    const reload = (): void => agent.reload();
    const stop = (signal: string): void => {
      if (stopping) return;
      stopping = true;
      void agent.stop(signal).then(() => {
        process.off('SIGTERM', onTerm);
        process.off('SIGINT', onInt);
        process.off('SIGHUP', reload);
        resolveExit(0);
      });
    };
    const onTerm = (): void => stop('SIGTERM');
    const onInt = (): void => stop('SIGINT');
    process.on('SIGTERM', onTerm);
    process.on('SIGINT', onInt);
    process.on('SIGHUP', reload);
    if (idleExitSeconds > 0) agent.exitWhenIdle(idleExitSeconds, () => stop('idle-exit'));
    // Another version was installed under this agent and it needed a module it had not loaded
    // (src/installation.ts): the next agent, started by whatever started this one, runs it.
    onInstallationReplaced((installed) => stop(`akv ${installed} installed in its place`));
  });
}
