import type { Command } from '../command.js';
import { wantsHelp } from '../command.js';
import { AkvError } from '../../errors.js';
import { withAgent } from '../util/agent.js';
import { parseOptions, str } from '../util/args.js';
import { KEY_OP_OPTIONS, requireKeyAndAlg } from '../util/key-args.js';
import { readInput, writeOutput } from '../util/io.js';
import { ENCRYPT_ALGORITHMS, encryptLocally } from '../util/local-crypto.js';

const usage = `Usage: akv encrypt --key URI --alg ALG [--in FILE|-] [--out FILE|-] [--socket PATH]

Encrypt locally with the public part of an RSA HSM key (fetched through the akv agent);
\`akv decrypt\` then decrypts inside the HSM.

Options:
  --key URI      the key: managedhsm:<hsm>:<key>[?version=<v>]
  --alg ALG      ${ENCRYPT_ALGORITHMS.join(', ')}
  --in FILE      plaintext (default or "-": stdin)
  --out FILE     ciphertext (default or "-": stdout)
  --socket PATH  agent socket (default: AKV_AGENT_SOCKET, else the config's)

Example:
  akv encrypt --key managedhsm:myhsm:rsakey --alg RSA-OAEP-256 --in secret.txt --out secret.bin`;

const command: Command = {
  summary: 'Encrypt with the public part of an RSA HSM key',
  usage,
  async run(argv) {
    if (wantsHelp(argv)) {
      console.log(usage);
      return 0;
    }
    const p = parseOptions('encrypt', argv, { ...KEY_OP_OPTIONS, out: { type: 'string' } });
    const { uri, alg } = requireKeyAndAlg(p, 'encrypt', `(${ENCRYPT_ALGORITHMS.join(', ')})`);
    const input = await readInput('encrypt', str(p, 'in'), 'plaintext');
    const info = await withAgent(str(p, 'socket'), (client) => client.describe(uri));
    if (!info.publicKey)
      throw new AkvError(
        'UNSUPPORTED',
        `${uri} is an ${info.keyType} key: encrypt needs an RSA key`,
        'for AES keys use `akv wrap --alg A256KW`',
      );
    if (!info.keyOps.includes('encrypt') && !info.keyOps.includes('decrypt')) {
      throw new AkvError(
        'FORBIDDEN',
        `key ${uri} allows neither encrypt nor decrypt (its operations: ${info.keyOps.join(', ') || 'none'})`,
        'create the key with --ops encrypt decrypt',
      );
    }
    await writeOutput('encrypt', str(p, 'out'), encryptLocally(info.publicKey, alg, input));
    return 0;
  },
};

export default command;
