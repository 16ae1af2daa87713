#!/usr/bin/env node
// Writes the files generated from the protocol's TypeScript source (src/protocol/constants.ts):
// provider/src/protocol_codes.h and test/vectors/protocol-vectors.txt. Run through
// `npm run generate` (which compiles first); the protocol tests fail when either is stale.
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const { protocolCodesHeader } = await import(join(root, 'dist/src/protocol/c-header.js'));
const { protocolVectorsText } = await import(
  join(root, 'dist/test/vectors/generate-protocol-vectors.js')
);
const outputs = {
  'provider/src/protocol_codes.h': protocolCodesHeader(),
  'test/vectors/protocol-vectors.txt': protocolVectorsText(),
};
for (const [path, text] of Object.entries(outputs)) {
  writeFileSync(join(root, path), text);
  console.log(`wrote ${path}`);
}
