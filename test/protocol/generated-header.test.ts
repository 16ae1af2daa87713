/**
 * provider/src/protocol_codes.h is generated from src/protocol/constants.ts: the committed file
 * must be exactly what the generator writes, and the C names must be the TypeScript ones.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { protocolCodesHeader } from '../../src/protocol/c-header.js';
import { Op, Status, Tag } from '../../src/protocol/index.js';
import { REPO_ROOT } from '../helpers/emulator.js';

const committed = readFileSync(join(REPO_ROOT, 'provider', 'src', 'protocol_codes.h'), 'utf8');

test('the committed C header is what the generator writes', () => {
  assert.equal(committed, protocolCodesHeader(), 'run `npm run generate` and commit the result');
});

test('every op, tag and status has its C twin with the same number', () => {
  const twins: Array<[string, Record<string, number>]> = [
    ['AKV_OP', Op],
    ['AKV_TAG', Tag],
    ['AKV_STATUS', Status],
  ];
  for (const [prefix, table] of twins) {
    for (const [name, value] of Object.entries(table)) {
      const m = new RegExp(`\\b${prefix}_${name} = (0x[0-9A-F]+|\\d+)\\b`).exec(committed);
      assert.ok(m, `${prefix}_${name} is in the header`);
      assert.equal(Number(m[1]), value, `${prefix}_${name}`);
    }
  }
  assert.match(committed, /X\(KEY_NOT_FOUND, 3\)/);
});
