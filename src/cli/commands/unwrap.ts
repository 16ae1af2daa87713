import { privateOpCommand } from '../util/private-op.js';

export default privateOpCommand({
  name: 'unwrap',
  summary: 'Unwrap a key with an HSM key (AES key wrap, or RSA)',
  algorithms: ['A256KW', 'A192KW', 'A128KW', 'RSA-OAEP-256', 'RSA-OAEP', 'RSA1_5'],
  inputWhat: 'the wrapped key',
  outputWhat: 'the unwrapped key',
  call: (client, uri, alg, input) => client.unwrap(uri, alg, input),
});
