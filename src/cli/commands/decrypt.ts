import { privateOpCommand } from '../util/private-op.js';

export default privateOpCommand({
  name: 'decrypt',
  summary: 'Decrypt with an HSM key (RSA)',
  algorithms: ['RSA-OAEP-256', 'RSA-OAEP', 'RSA1_5'],
  inputWhat: 'ciphertext',
  outputWhat: 'plaintext',
  call: (client, uri, alg, input) => client.decrypt(uri, alg, input),
});
