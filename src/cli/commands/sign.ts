import type { Command } from '../command.js';
import { UsageError, wantsHelp } from '../command.js';
import { withAgent } from '../util/agent.js';
import { flag, parseOptions, str } from '../util/args.js';
import { inputIsDigest, KEY_OP_OPTIONS, requireKeyAndAlg } from '../util/key-args.js';
import { readInput, writeOutput } from '../util/io.js';
import { checkDigestLength, digestOf, ecdsaSignatureToDer } from '../util/local-crypto.js';

const usage = `Usage: akv sign --key URI --alg ALG [--in FILE|-] [--out FILE|-] [--digest] [--der] [--socket PATH]

Sign with an HSM key through the akv agent. By default the input is data, hashed locally with the
algorithm's hash; with --digest the input is already the digest (32/48/64 bytes).

Options:
  --key URI      the key: managedhsm:<hsm>:<key>[?version=<v>] (or akv:..., keyvault:...)
  --alg ALG      RS256 RS384 RS512 PS256 PS384 PS512 ES256 ES256K ES384 ES512
  --in FILE      data (or digest) to sign (default or "-": stdin)
  --out FILE     signature (default or "-": stdout)
  --data         the input is data to hash (the default)
  --digest       the input is the digest itself
  --der          EC only: write the signature as DER (what openssl dgst -verify reads)
                 instead of Azure's raw r||s
  --socket PATH  agent socket (default: AKV_AGENT_SOCKET, else the config's)

Example:
  akv sign --key managedhsm:myhsm:mykey --alg ES256 --in data.txt --out data.sig
  akv verify --key managedhsm:myhsm:mykey --alg ES256 --in data.txt --signature data.sig`;

const command: Command = {
  summary: 'Sign data or a digest with an HSM key',
  usage,
  async run(argv) {
    if (wantsHelp(argv)) {
      console.log(usage);
      return 0;
    }
    const p = parseOptions('sign', argv, {
      ...KEY_OP_OPTIONS,
      out: { type: 'string' },
      data: { type: 'boolean' },
      digest: { type: 'boolean' },
      der: { type: 'boolean' },
    });
    const { uri, alg } = requireKeyAndAlg(p, 'sign', '(RS256, PS256, ES256, ...)');
    const isDigest = inputIsDigest(p, 'sign');
    if (flag(p, 'der') && !alg.startsWith('ES'))
      throw new UsageError('sign: --der applies to EC signatures (ES*) only');
    const input = await readInput('sign', str(p, 'in'), isDigest ? 'digest' : 'data');
    const digest = isDigest ? input : digestOf(alg, input);
    checkDigestLength(alg, digest);
    await withAgent(str(p, 'socket'), async (client) => {
      const { output } = await client.sign(uri, alg, digest);
      await writeOutput(
        'sign',
        str(p, 'out'),
        flag(p, 'der') ? ecdsaSignatureToDer(alg, output) : output,
      );
    });
    return 0;
  },
};

export default command;
