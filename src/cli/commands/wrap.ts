import { KEY_WRAP_ALGORITHMS, privateOpCommand } from '../util/private-op.js';

export default privateOpCommand({
  name: 'wrap',
  summary: 'Wrap a key with an HSM key (AES key wrap, or RSA)',
  algorithms: KEY_WRAP_ALGORITHMS,
  inputWhat: 'the key to wrap',
  outputWhat: 'the wrapped key',
  call: (client, uri, alg, input) => client.wrap(uri, alg, input),
});
