import { KEY_WRAP_ALGORITHMS, privateOpCommand } from '../util/private-op.js';

export default privateOpCommand({
  name: 'unwrap',
  summary: 'Unwrap a key with an HSM key (AES key wrap, or RSA)',
  algorithms: KEY_WRAP_ALGORITHMS,
  inputWhat: 'the wrapped key',
  outputWhat: 'the unwrapped key',
  call: (client, uri, alg, input) => client.unwrap(uri, alg, input),
});
