import { privateOpCommand } from '../util/private-op.js';

export default privateOpCommand({
  name: 'wrap',
  summary: 'Wrap a key with an HSM key (AES key wrap, or RSA)',
  algorithms: ['A256KW', 'A192KW', 'A128KW', 'RSA-OAEP-256', 'RSA-OAEP', 'RSA1_5'],
  inputWhat: 'the key to wrap',
  outputWhat: 'the wrapped key',
  call: (client, uri, alg, input) => client.wrap(uri, alg, input),
});
