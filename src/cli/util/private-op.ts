/**
 * The shape shared by `akv decrypt`, `wrap` and `unwrap`: read input, send it with the key URI and
 * algorithm to the agent, write the output. (`sign` adds hashing; see commands/sign.ts.)
 */
import type { Command } from '../command.js';
import { wantsHelp } from '../command.js';
import type { AgentClient } from '../../client/agent-client.js';
import { withAgent } from './agent.js';
import { parseOptions, str } from './args.js';
import { readInput, writeOutput } from './io.js';
import { KEY_OP_OPTIONS, requireKeyAndAlg } from './key-args.js';

/** What `akv wrap` and `akv unwrap` accept: AES key wrap with an AES key, or RSA. */
export const KEY_WRAP_ALGORITHMS = [
  'A256KW',
  'A192KW',
  'A128KW',
  'RSA-OAEP-256',
  'RSA-OAEP',
  'RSA1_5',
] as const;

export interface PrivateOpSpec {
  name: 'decrypt' | 'wrap' | 'unwrap';
  summary: string;
  algorithms: readonly string[];
  inputWhat: string;
  outputWhat: string;
  call(client: AgentClient, uri: string, alg: string, input: Buffer): Promise<{ output: Buffer }>;
}

export function privateOpCommand(spec: PrivateOpSpec): Command {
  const usage = `Usage: akv ${spec.name} --key URI --alg ALG [--in FILE|-] [--out FILE|-] [--socket PATH]

${spec.summary}. The private-key operation runs in the HSM, through the akv agent.

Options:
  --key URI       the key: managedhsm:<hsm>:<key>[?version=<v>] (or akv:..., keyvault:...)
  --alg ALG       ${spec.algorithms.join(', ')}
  --in FILE       ${spec.inputWhat} (default or "-": stdin)
  --out FILE      ${spec.outputWhat} (default or "-": stdout)
  --socket PATH   agent socket (default: AKV_AGENT_SOCKET, else the config's)

Example:
  akv ${spec.name} --key managedhsm:myhsm:mykey --alg ${spec.algorithms[0]} --in in.bin --out out.bin`;
  return {
    summary: spec.summary,
    usage,
    async run(argv) {
      if (wantsHelp(argv)) {
        console.log(usage);
        return 0;
      }
      const p = parseOptions(spec.name, argv, { ...KEY_OP_OPTIONS, out: { type: 'string' } });
      const algHint = `(${spec.algorithms.join(', ')})`;
      const { uri, alg } = requireKeyAndAlg(p, spec.name, algHint);
      const input = await readInput(spec.name, str(p, 'in'), spec.inputWhat);
      await withAgent(str(p, 'socket'), async (client) => {
        const { output } = await spec.call(client, uri, alg, input);
        await writeOutput(spec.name, str(p, 'out'), output);
      });
      return 0;
    },
  };
}
