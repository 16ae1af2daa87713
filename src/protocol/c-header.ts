/**
 * Renders provider/src/protocol_codes.h from constants.ts, so that the C provider and the
 * TypeScript side can never disagree on a number or a name: every C name is the TypeScript name
 * with an `AKV_` prefix (`Op.SIGN` → `AKV_OP_SIGN`, `FRAME_HEADER_SIZE` → `AKV_FRAME_HEADER_SIZE`).
 * `npm run generate` writes the file; test/protocol/generated-header.test.ts fails when the
 * committed header has drifted from this rendering.
 */
import {
  FIELD_HEADER_SIZE,
  FRAME_HEADER_SIZE,
  KeyType,
  MAGIC,
  MAX_REQUEST_BODY,
  MAX_RESPONSE_BODY,
  Op,
  PROTOCOL_VERSION,
  RESPONSE_BIT,
  Status,
  Tag,
} from './constants.js';

const hex = (n: number, digits: number): string =>
  `0x${n.toString(16).toUpperCase().padStart(digits, '0')}`;

function cEnum(
  name: string,
  prefix: string,
  table: Record<string, number>,
  format: (n: number) => string,
): string[] {
  const entries = Object.entries(table).map(([k, v]) => `    ${prefix}_${k} = ${format(v)}`);
  return [`enum ${name} {`, entries.join(',\n'), '};', ''];
}

export function protocolCodesHeader(): string {
  const statusList = Object.entries(Status)
    .map(([k, v]) => `    X(${k}, ${v})`)
    .join(' \\\n');
  return [
    '/*',
    ' * Numbers of the akv agent protocol, version 1 (docs/protocol.md).',
    ' * Generated from src/protocol/constants.ts by `npm run generate`: do not edit by hand.',
    ' * Kept as generated (test/protocol/generated-header.test.ts), so clang-format leaves it alone.',
    ' */',
    '/* clang-format off */',
    '#ifndef AKV_PROTOCOL_CODES_H',
    '#define AKV_PROTOCOL_CODES_H',
    '',
    `#define AKV_MAGIC ${hex(MAGIC, 4)}u`,
    `#define AKV_PROTOCOL_VERSION ${PROTOCOL_VERSION}`,
    `#define AKV_FRAME_HEADER_SIZE ${FRAME_HEADER_SIZE}`,
    `#define AKV_FIELD_HEADER_SIZE ${FIELD_HEADER_SIZE}`,
    `#define AKV_MAX_REQUEST_BODY ${MAX_REQUEST_BODY}u`,
    `#define AKV_MAX_RESPONSE_BODY ${MAX_RESPONSE_BODY}u`,
    `#define AKV_RESPONSE_BIT ${hex(RESPONSE_BIT, 2)}`,
    '',
    ...cEnum('akv_op', 'AKV_OP', Op, (n) => hex(n, 2)),
    ...cEnum('akv_tag', 'AKV_TAG', Tag, (n) => hex(n, 4)),
    ...cEnum('akv_key_type', 'AKV_KEY_TYPE', KeyType, String),
    ...cEnum('akv_status', 'AKV_STATUS', Status, String),
    '/* Every status as X(NAME, code), for tables of names. */',
    `#define AKV_STATUS_LIST(X) \\\n${statusList}`,
    '',
    '#endif',
    '',
  ].join('\n');
}
