/**
 * The agent's own entry point: bin/akv runs its bundle (dist/bundle/agent.cjs, scripts/bundle.mjs)
 * for `akv agent`, so that the agent's start reads the agent's code in one file, compiled with
 * its V8 code cache, instead of resolving the CLI's module graph. What only some agents need (the Key Vault SDK,
 * @azure/identity, prom-client, undici) is still imported when needed, from node_modules.
 * Its arguments are `akv agent`'s, after the word `agent`. It imports the agent statically: a
 * dynamic import of it here would make the bundler put the agent in a chunk of its own.
 */
import '../started.js'; // first: it notes when akv's own code started
import { runAgent } from '../agent/agent.js';
import { runAgentCommand } from './agent-arguments.js';
import { UsageError } from './command.js';
import { finish } from './finish.js';

const [name, ...rest] = process.argv.slice(2);
finish(
  name === 'agent'
    ? runAgentCommand(rest, () => Promise.resolve(runAgent))
    : Promise.reject(
        new UsageError(
          `this entry point runs only \`akv agent\`, not ${JSON.stringify(name ?? '')}; run bin/akv for the other commands`,
        ),
      ),
);
