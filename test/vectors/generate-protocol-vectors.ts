/**
 * Writes test/vectors/protocol-vectors.txt, the golden frames that the TypeScript tests
 * (test/protocol/vectors.test.ts) and the C provider's tests both decode.
 *
 *   npx tsc -p . && node dist/test/vectors/generate-protocol-vectors.js > test/vectors/protocol-vectors.txt
 *
 * Frames are assembled here byte by byte from hex, on purpose without src/protocol's encoder, so
 * that the vectors check the encoder and decoder instead of repeating them. The vectors test
 * regenerates the text and fails when the committed file has drifted from this script.
 */
import { fileURLToPath } from 'node:url';

const hex = (s: string): string => Buffer.from(s, 'utf8').toString('hex');
const u16 = (n: number): string => n.toString(16).padStart(4, '0');
const u32 = (n: number): string => n.toString(16).padStart(8, '0');
/** Deterministic filler bytes 00 01 02 ... (wrapping), so long values are not all one byte. */
const seq = (count: number, start = 0): string =>
  Array.from({ length: count }, (_, i) => ((start + i) & 0xff).toString(16).padStart(2, '0')).join(
    '',
  );

interface F {
  tag: number;
  value: string; // hex
}
const field = (tag: number, value: string): F => ({ tag, value });
const fieldHex = (f: F): string => u16(f.tag) + u32(f.value.length / 2) + f.value;
const bodyHex = (fields: F[]): string => fields.map(fieldHex).join('');
const headerHex = (op: number, id: number, length: number, magic = '414b', version = 1): string =>
  magic +
  version.toString(16).padStart(2, '0') +
  op.toString(16).padStart(2, '0') +
  u32(id) +
  u32(length);
const frameHex = (op: number, id: number, fields: F[]): string => {
  const body = bodyHex(fields);
  return headerHex(op, id, body.length / 2) + body;
};

// Tags (docs/protocol.md).
const STATUS = 0x0001,
  MESSAGE = 0x0002,
  HINT = 0x0007,
  URI = 0x0003,
  ALG = 0x0004,
  INPUT = 0x0005,
  OUTPUT = 0x0006;
const KEY_TYPE = 0x0010,
  KEY_BITS = 0x0011,
  CURVE = 0x0012,
  KEY_VERSION = 0x0013,
  KEY_OPS = 0x0014;
const PUBLIC_KEY = 0x0015,
  KEY_ID = 0x0016,
  KEY_NAME = 0x0017,
  VAULT_NAME = 0x0018,
  VAULT_TYPE = 0x0019;
const CLIENT_PID = 0x0020,
  CLIENT_NAME = 0x0021,
  PROTO_VERSION = 0x0022,
  AGENT_VERSION = 0x0023;
const RETRIES = 0x0024,
  REPORT = 0x0025;

/** Real DER SubjectPublicKeyInfo values, so a C test may also d2i_PUBKEY() them. */
const RSA2048_SPKI =
  '30820122300d06092a864886f70d01010105000382010f003082010a0282010100c2215fbb2ee4ce8a1ac2a6fba5ab03bd' +
  'b481d5e4e0d0be87ed75aad52fca630ddf9ed77106f14d49de4deeec3208077d595a5a5858352c56e410521d71b8d584b8' +
  'fb765b4167bf1942fb309c315f944df3d64c084817a4e3fc4b1f3078b30de9beb770c88bca24ed0ad0f1ad64f745eaf5c7' +
  '71826331bb1886b762932819070f5adc091112df50ba1c98af7d230c18e8b0fdd4a3ebd1b2a70bda5ba10aac8e8cd3e4ef' +
  '961e6f4a45fbfcd6af27e648997bff7f171f21ab1c64dab2a656b71ebf97cdc641d1b475ea98124595392b64049a1b2f5d' +
  'b8493ee4eeb15831bf8e07481a97ec075f4c873d78491e4c7378701c429db635ce11a4edb6f98cdfd24fbda50203010001';
const P256_SPKI =
  '3059301306072a8648ce3d020106082a8648ce3d03010703420004f5fe98f21e8bc0d5e3071a8bdfa0eff55d0e842d6e34' +
  '33aadcbd0ce5c825f4e0217eb4984d6b6ee58e96888fe9332362e4367d9abf853ae4d9dd31ee3b85d9d9';
const VERSION = '4b1f6d0c2a8e4f7b9c3d5e6f70819203';
const KID = `https://myhsm.managedhsm.azure.net/keys/myrsakey/${VERSION}`;

interface OkVector {
  name: string;
  op: number;
  id: number;
  fields: F[];
}

const okVectors: OkVector[] = [
  {
    name: 'hello-request',
    op: 0x01,
    id: 1,
    fields: [
      field(PROTO_VERSION, u32(1)),
      field(CLIENT_NAME, hex('akv_provider')),
      field(CLIENT_PID, u32(12345)),
    ],
  },
  {
    name: 'hello-response',
    op: 0x81,
    id: 1,
    fields: [
      field(STATUS, u32(0)),
      field(PROTO_VERSION, u32(1)),
      field(AGENT_VERSION, hex('0.1.0')),
    ],
  },
  { name: 'ping-request-empty-body', op: 0x02, id: 0, fields: [] },
  { name: 'ping-request-max-id', op: 0x02, id: 0xffffffff, fields: [] },
  { name: 'ping-response', op: 0x82, id: 7, fields: [field(STATUS, u32(0))] },
  {
    name: 'describe-request',
    op: 0x03,
    id: 2,
    fields: [field(URI, hex('managedhsm:MyHSM:myrsakey'))],
  },
  {
    name: 'describe-request-akv-form-with-pid',
    op: 0x03,
    id: 3,
    fields: [
      field(URI, hex(`akv:vault=MyHSM,name=myeckey,version=${VERSION}`)),
      field(CLIENT_PID, u32(4242)),
    ],
  },
  {
    name: 'describe-response-rsa2048',
    op: 0x83,
    id: 2,
    fields: [
      field(STATUS, u32(0)),
      field(KEY_TYPE, u32(1)),
      field(KEY_BITS, u32(2048)),
      field(KEY_VERSION, hex(VERSION)),
      field(KEY_OPS, hex('sign,verify,encrypt,decrypt,wrapKey,unwrapKey')),
      field(PUBLIC_KEY, RSA2048_SPKI),
      field(KEY_ID, hex(KID)),
    ],
  },
  {
    name: 'describe-response-ec-p256',
    op: 0x83,
    id: 3,
    fields: [
      field(STATUS, u32(0)),
      field(KEY_TYPE, u32(2)),
      field(KEY_BITS, u32(256)),
      field(CURVE, hex('P-256')),
      field(KEY_VERSION, hex(VERSION)),
      field(KEY_OPS, hex('sign,verify')),
      field(PUBLIC_KEY, P256_SPKI),
      field(KEY_ID, hex(`https://myhsm.managedhsm.azure.net/keys/myeckey/${VERSION}`)),
    ],
  },
  {
    name: 'describe-response-aes256',
    op: 0x83,
    id: 4,
    fields: [
      field(STATUS, u32(0)),
      field(KEY_TYPE, u32(3)),
      field(KEY_BITS, u32(256)),
      field(KEY_VERSION, hex(VERSION)),
      field(KEY_OPS, hex('wrapKey,unwrapKey')),
      field(KEY_ID, hex(`https://myhsm.managedhsm.azure.net/keys/myaeskey/${VERSION}`)),
    ],
  },
  {
    name: 'sign-request-rs256',
    op: 0x04,
    id: 5,
    fields: [
      field(URI, hex('managedhsm:MyHSM:myrsakey')),
      field(ALG, hex('RS256')),
      field(INPUT, seq(32)),
    ],
  },
  {
    name: 'sign-request-es384-pinned-with-pid',
    op: 0x04,
    id: 6,
    fields: [
      field(CLIENT_PID, u32(31337)),
      field(URI, hex(`managedhsm:MyHSM:myeckey?version=${VERSION}`)),
      field(ALG, hex('ES384')),
      field(INPUT, seq(48, 0x80)),
    ],
  },
  {
    name: 'sign-response-rsa2048',
    op: 0x84,
    id: 5,
    fields: [field(STATUS, u32(0)), field(OUTPUT, seq(256, 7)), field(KEY_VERSION, hex(VERSION))],
  },
  {
    name: 'sign-response-es256-with-retries',
    op: 0x84,
    id: 8,
    fields: [
      field(STATUS, u32(0)),
      field(OUTPUT, seq(64, 0xc0)),
      field(KEY_VERSION, hex(VERSION)),
      field(RETRIES, u32(2)),
    ],
  },
  {
    name: 'decrypt-request-rsa-oaep-256',
    op: 0x05,
    id: 9,
    fields: [
      field(URI, hex('keyvault:myvault:myrsakey')),
      field(ALG, hex('RSA-OAEP-256')),
      field(INPUT, seq(256, 0x33)),
    ],
  },
  {
    name: 'decrypt-response',
    op: 0x85,
    id: 9,
    fields: [
      field(STATUS, u32(0)),
      field(OUTPUT, hex('hello, world')),
      field(KEY_VERSION, hex(VERSION)),
    ],
  },
  {
    name: 'wrap-request-a256kw',
    op: 0x06,
    id: 10,
    fields: [
      field(URI, hex('managedhsm:MyHSM:myaeskey')),
      field(ALG, hex('A256KW')),
      field(INPUT, seq(32, 0x40)),
    ],
  },
  {
    name: 'wrap-response',
    op: 0x86,
    id: 10,
    fields: [field(STATUS, u32(0)), field(OUTPUT, seq(40, 0x90)), field(KEY_VERSION, hex(VERSION))],
  },
  {
    name: 'unwrap-request-a128kw',
    op: 0x07,
    id: 11,
    fields: [
      field(URI, hex('akv:keyvault_name=MyHSM,key_name=myaeskey')),
      field(ALG, hex('A128KW')),
      field(INPUT, seq(24, 0x10)),
    ],
  },
  {
    name: 'unwrap-response',
    op: 0x87,
    id: 11,
    fields: [field(STATUS, u32(0)), field(OUTPUT, seq(16, 0x20)), field(KEY_VERSION, hex(VERSION))],
  },
  {
    name: 'list-request',
    op: 0x08,
    id: 12,
    fields: [field(VAULT_NAME, hex('MyHSM')), field(VAULT_TYPE, hex('managedhsm'))],
  },
  {
    name: 'list-response-repeated-key-name',
    op: 0x88,
    id: 12,
    fields: [
      field(STATUS, u32(0)),
      field(KEY_NAME, hex('myaeskey')),
      field(KEY_NAME, hex('myeckey')),
      field(KEY_NAME, hex('myrsakey')),
    ],
  },
  { name: 'list-response-no-keys', op: 0x88, id: 13, fields: [field(STATUS, u32(0))] },
  {
    name: 'error-response-key-not-found',
    op: 0x84,
    id: 14,
    fields: [
      field(STATUS, u32(3)),
      field(MESSAGE, hex('managedhsm:MyHSM:nokey does not exist (404 KeyNotFound)')),
      field(HINT, hex('check the key name, or create it with `akv key create`')),
    ],
  },
  {
    name: 'error-response-access-denied',
    op: 0x84,
    id: 15,
    fields: [
      field(STATUS, u32(13)),
      field(
        MESSAGE,
        hex(
          'access denied by policy "web-host": uid 65534 (nobody), gid 65534, pid 4242 may not sign with managedhsm:MyHSM:myrsakey',
        ),
      ),
      field(
        HINT,
        hex(
          'grant it with a rule in policy.rules of /etc/akv/config.json, then send SIGHUP to the agent',
        ),
      ),
    ],
  },
  {
    name: 'forget-request',
    op: 0x09,
    id: 17,
    fields: [field(URI, hex('managedhsm:MyHSM:myrsakey')), field(CLIENT_PID, u32(31337))],
  },
  { name: 'forget-response', op: 0x89, id: 17, fields: [field(STATUS, u32(0))] },
  { name: 'diagnose-request', op: 0x0a, id: 21, fields: [field(CLIENT_PID, u32(31337))] },
  {
    name: 'diagnose-request-with-key',
    op: 0x0a,
    id: 22,
    fields: [field(URI, hex('managedhsm:MyHSM:myeckey')), field(CLIENT_PID, u32(31337))],
  },
  {
    name: 'diagnose-response',
    op: 0x8a,
    id: 22,
    fields: [
      field(STATUS, u32(0)),
      field(
        REPORT,
        hex(
          '{"ready":true,"credential":{"ok":true,"source":"DefaultAzureCredential","expiresInSeconds":3300},"vaults":[{"name":"MyHSM","reachable":true}]}',
        ),
      ),
    ],
  },
  {
    name: 'protocol-error-frame',
    op: 0xff,
    id: 15,
    fields: [
      field(STATUS, u32(1)),
      field(MESSAGE, hex('malformed request: field 0x0003 appears twice')),
    ],
  },
  {
    name: 'empty-field-value',
    op: 0x82,
    id: 16,
    fields: [field(STATUS, u32(0)), field(MESSAGE, '')],
  },
  {
    name: 'unknown-tag-is-decoded-and-kept',
    op: 0x02,
    id: 17,
    fields: [field(0x7fff, hex('future')), field(CLIENT_PID, u32(1)), field(0xffff, '')],
  },
  {
    name: 'unknown-op-still-frames',
    op: 0x42,
    id: 18,
    fields: [field(URI, hex('managedhsm:MyHSM:k'))],
  },
  {
    name: 'utf8-message',
    op: 0x83,
    id: 19,
    fields: [field(STATUS, u32(12)), field(MESSAGE, hex('clé introuvable — ключ'))],
  },
  {
    name: 'repeated-key-name-in-request',
    op: 0x08,
    id: 20,
    fields: [field(KEY_NAME, hex('a')), field(KEY_NAME, hex('a'))],
  },
  {
    name: 'body-exactly-at-request-limit',
    op: 0x04,
    id: 21,
    fields: [field(INPUT, seq(65_536 - 6))],
  },
];

interface BadVector {
  name: string;
  frame: string;
  reason: string;
}

const ping = frameHex(0x02, 1, []);
const okStatus = bodyHex([field(STATUS, u32(0))]);

const badVectors: BadVector[] = [
  { name: 'magic-zero', frame: headerHex(0x02, 1, 0, '0000'), reason: 'magic' },
  { name: 'magic-swapped', frame: headerHex(0x02, 1, 0, '4b41'), reason: 'magic' },
  { name: 'magic-http', frame: hex('GET / HTTP/1.1\r\n'), reason: 'magic' },
  { name: 'version-0', frame: headerHex(0x02, 1, 0, '414b', 0), reason: 'version' },
  { name: 'version-2', frame: headerHex(0x02, 1, 0, '414b', 2), reason: 'version' },
  {
    name: 'version-255-with-body',
    frame: headerHex(0x82, 1, 10, '414b', 255) + okStatus,
    reason: 'version',
  },
  { name: 'too-large-by-one', frame: headerHex(0x04, 2, 65_537), reason: 'too-large' },
  {
    name: 'too-large-max-u32',
    frame: headerHex(0x04, 3, 0xffffffff) + okStatus,
    reason: 'too-large',
  },
  { name: 'too-large-response-size', frame: headerHex(0x84, 4, 1_048_576), reason: 'too-large' },
  {
    name: 'field-overrun-by-one',
    frame: headerHex(0x03, 5, 6 + 4) + u16(URI) + u32(5) + hex('abcd'),
    reason: 'field-overrun',
  },
  {
    name: 'field-overrun-max-u32-length',
    frame: headerHex(0x03, 6, 6 + 4) + u16(URI) + u32(0xffffffff) + hex('abcd'),
    reason: 'field-overrun',
  },
  {
    name: 'field-overrun-second-field',
    frame: headerHex(0x04, 7, 10 + 6 + 2) + okStatus + u16(OUTPUT) + u32(3) + 'aabb',
    reason: 'field-overrun',
  },
  {
    name: 'duplicate-tag-status',
    frame: frameHex(0x84, 8, [field(STATUS, u32(0)), field(STATUS, u32(1))]),
    reason: 'duplicate-tag',
  },
  {
    name: 'duplicate-tag-uri-not-adjacent',
    frame: frameHex(0x04, 9, [
      field(URI, hex('managedhsm:a1b:k')),
      field(ALG, hex('RS256')),
      field(URI, hex('managedhsm:a1b:k')),
    ]),
    reason: 'duplicate-tag',
  },
  {
    name: 'duplicate-tag-empty-values',
    frame: frameHex(0x02, 10, [field(MESSAGE, ''), field(MESSAGE, '')]),
    reason: 'duplicate-tag',
  },
  {
    name: 'partial-field-header-3-bytes',
    frame: headerHex(0x02, 11, 3) + '000100',
    reason: 'partial-field-header',
  },
  {
    name: 'partial-field-header-after-field',
    frame: headerHex(0x82, 12, 10 + 5) + okStatus + '0002000000',
    reason: 'partial-field-header',
  },
  {
    name: 'partial-field-header-1-byte',
    frame: headerHex(0x02, 13, 1) + '00',
    reason: 'partial-field-header',
  },
  { name: 'short-header-1-byte', frame: '41', reason: 'short-header' },
  { name: 'short-header-11-bytes', frame: ping.slice(0, 22), reason: 'short-header' },
  { name: 'short-body-empty', frame: headerHex(0x82, 14, 10), reason: 'short-body' },
  {
    name: 'short-body-one-missing',
    frame: headerHex(0x82, 15, 10) + okStatus.slice(0, 18),
    reason: 'short-body',
  },
];

export function protocolVectorsText(): string {
  const lines: string[] = [
    '# Golden vectors of the akv agent protocol, version 1 (docs/protocol.md, "Golden vectors").',
    '# Generated by test/vectors/generate-protocol-vectors.ts; do not edit by hand.',
    '#   ok <name> <frame-hex> op=<hh> id=<decimal> [<tttt>=<value-hex> ...]',
    '#   bad <name> <frame-hex> <reason>',
    '# Decode every vector with the request limit (65536). Lines can be ~131,200 characters long.',
    '# Decoders keep unknown tags (the caller ignores them) and decode any op byte.',
  ];
  for (const v of okVectors) {
    const fields = v.fields.map((f) => `${u16(f.tag)}=${f.value}`);
    lines.push(
      [
        'ok',
        v.name,
        frameHex(v.op, v.id, v.fields),
        `op=${v.op.toString(16).padStart(2, '0')}`,
        `id=${v.id}`,
        ...fields,
      ].join(' '),
    );
  }
  for (const v of badVectors) lines.push(['bad', v.name, v.frame, v.reason].join(' '));
  return lines.join('\n') + '\n';
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  process.stdout.write(protocolVectorsText());
}
