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

// Ops (docs/protocol.md); an answer's op is its request's with the high bit set.
const HELLO = 0x01,
  PING = 0x02,
  DESCRIBE = 0x03,
  SIGN = 0x04,
  DECRYPT = 0x05,
  WRAP = 0x06,
  UNWRAP = 0x07,
  LIST = 0x08,
  FORGET = 0x09,
  DIAGNOSE = 0x0a;
const answer = (op: number): number => op | 0x80;

// Field values by kind.
const num = (tag: number, n: number): F => field(tag, u32(n));
const text = (tag: number, s: string): F => field(tag, hex(s));
const ok = num(STATUS, 0);
/** A private-key operation's request: the key, the algorithm, the input. */
const keyOp = (uri: string, alg: string, input: string): F[] => [
  text(URI, uri),
  text(ALG, alg),
  field(INPUT, input),
];
/** Its answer: OK, the output, the key version that produced it. */
const keyOpAnswer = (output: string): F[] => [
  ok,
  field(OUTPUT, output),
  text(KEY_VERSION, VERSION),
];
const kid = (key: string): string => `https://myhsm.managedhsm.azure.net/keys/${key}/${VERSION}`;

interface OkVector {
  name: string;
  op: number;
  id: number;
  fields: F[];
}

/** One row per vector: name, op, request id, fields in frame order. */
const okRows: [name: string, op: number, id: number, fields: F[]][] = [
  [
    'hello-request',
    HELLO,
    1,
    [num(PROTO_VERSION, 1), text(CLIENT_NAME, 'akv_provider'), num(CLIENT_PID, 12345)],
  ],
  ['hello-response', answer(HELLO), 1, [ok, num(PROTO_VERSION, 1), text(AGENT_VERSION, '0.1.0')]],
  ['ping-request-empty-body', PING, 0, []],
  ['ping-request-max-id', PING, 0xffffffff, []],
  ['ping-response', answer(PING), 7, [ok]],
  ['describe-request', DESCRIBE, 2, [text(URI, 'managedhsm:MyHSM:myrsakey')]],
  [
    'describe-request-akv-form-with-pid',
    DESCRIBE,
    3,
    [text(URI, `akv:vault=MyHSM,name=myeckey,version=${VERSION}`), num(CLIENT_PID, 4242)],
  ],
  [
    'describe-response-rsa2048',
    answer(DESCRIBE),
    2,
    [
      ok,
      num(KEY_TYPE, 1),
      num(KEY_BITS, 2048),
      text(KEY_VERSION, VERSION),
      text(KEY_OPS, 'sign,verify,encrypt,decrypt,wrapKey,unwrapKey'),
      field(PUBLIC_KEY, RSA2048_SPKI),
      text(KEY_ID, KID),
    ],
  ],
  [
    'describe-response-ec-p256',
    answer(DESCRIBE),
    3,
    [
      ok,
      num(KEY_TYPE, 2),
      num(KEY_BITS, 256),
      text(CURVE, 'P-256'),
      text(KEY_VERSION, VERSION),
      text(KEY_OPS, 'sign,verify'),
      field(PUBLIC_KEY, P256_SPKI),
      text(KEY_ID, kid('myeckey')),
    ],
  ],
  [
    'describe-response-aes256',
    answer(DESCRIBE),
    4,
    [
      ok,
      num(KEY_TYPE, 3),
      num(KEY_BITS, 256),
      text(KEY_VERSION, VERSION),
      text(KEY_OPS, 'wrapKey,unwrapKey'),
      text(KEY_ID, kid('myaeskey')),
    ],
  ],
  ['sign-request-rs256', SIGN, 5, keyOp('managedhsm:MyHSM:myrsakey', 'RS256', seq(32))],
  [
    'sign-request-es384-pinned-with-pid',
    SIGN,
    6,
    [
      num(CLIENT_PID, 31337),
      ...keyOp(`managedhsm:MyHSM:myeckey?version=${VERSION}`, 'ES384', seq(48, 0x80)),
    ],
  ],
  ['sign-response-rsa2048', answer(SIGN), 5, keyOpAnswer(seq(256, 7))],
  [
    'sign-response-es256-with-retries',
    answer(SIGN),
    8,
    [...keyOpAnswer(seq(64, 0xc0)), num(RETRIES, 2)],
  ],
  [
    'decrypt-request-rsa-oaep-256',
    DECRYPT,
    9,
    keyOp('keyvault:myvault:myrsakey', 'RSA-OAEP-256', seq(256, 0x33)),
  ],
  ['decrypt-response', answer(DECRYPT), 9, keyOpAnswer(hex('hello, world'))],
  ['wrap-request-a256kw', WRAP, 10, keyOp('managedhsm:MyHSM:myaeskey', 'A256KW', seq(32, 0x40))],
  ['wrap-response', answer(WRAP), 10, keyOpAnswer(seq(40, 0x90))],
  [
    'unwrap-request-a128kw',
    UNWRAP,
    11,
    keyOp('akv:keyvault_name=MyHSM,key_name=myaeskey', 'A128KW', seq(24, 0x10)),
  ],
  ['unwrap-response', answer(UNWRAP), 11, keyOpAnswer(seq(16, 0x20))],
  ['list-request', LIST, 12, [text(VAULT_NAME, 'MyHSM'), text(VAULT_TYPE, 'managedhsm')]],
  [
    'list-response-repeated-key-name',
    answer(LIST),
    12,
    [ok, text(KEY_NAME, 'myaeskey'), text(KEY_NAME, 'myeckey'), text(KEY_NAME, 'myrsakey')],
  ],
  ['list-response-no-keys', answer(LIST), 13, [ok]],
  [
    'error-response-key-not-found',
    answer(SIGN),
    14,
    [
      num(STATUS, 3),
      text(MESSAGE, 'managedhsm:MyHSM:nokey does not exist (404 KeyNotFound)'),
      text(HINT, 'check the key name, or create it with `akv key create`'),
    ],
  ],
  [
    'error-response-access-denied',
    answer(SIGN),
    15,
    [
      num(STATUS, 13),
      text(
        MESSAGE,
        'access denied by policy "web-host": uid 65534 (nobody), gid 65534, pid 4242 may not sign with managedhsm:MyHSM:myrsakey',
      ),
      text(
        HINT,
        'grant it with a rule in policy.rules of /etc/akv/config.json, then send SIGHUP to the agent',
      ),
    ],
  ],
  ['forget-request', FORGET, 17, [text(URI, 'managedhsm:MyHSM:myrsakey'), num(CLIENT_PID, 31337)]],
  ['forget-response', answer(FORGET), 17, [ok]],
  ['diagnose-request', DIAGNOSE, 21, [num(CLIENT_PID, 31337)]],
  [
    'diagnose-request-with-key',
    DIAGNOSE,
    22,
    [text(URI, 'managedhsm:MyHSM:myeckey'), num(CLIENT_PID, 31337)],
  ],
  [
    'diagnose-response',
    answer(DIAGNOSE),
    22,
    [
      ok,
      text(
        REPORT,
        '{"ready":true,"credential":{"ok":true,"source":"DefaultAzureCredential","expiresInSeconds":3300},"vaults":[{"name":"MyHSM","reachable":true}]}',
      ),
    ],
  ],
  [
    'protocol-error-frame',
    0xff,
    15,
    [num(STATUS, 1), text(MESSAGE, 'malformed request: field 0x0003 appears twice')],
  ],
  ['empty-field-value', answer(PING), 16, [ok, field(MESSAGE, '')]],
  [
    'unknown-tag-is-decoded-and-kept',
    PING,
    17,
    [text(0x7fff, 'future'), num(CLIENT_PID, 1), field(0xffff, '')],
  ],
  ['unknown-op-still-frames', 0x42, 18, [text(URI, 'managedhsm:MyHSM:k')]],
  [
    'utf8-message',
    answer(DESCRIBE),
    19,
    [num(STATUS, 12), text(MESSAGE, 'clé introuvable — ключ')],
  ],
  ['repeated-key-name-in-request', LIST, 20, [text(KEY_NAME, 'a'), text(KEY_NAME, 'a')]],
  ['body-exactly-at-request-limit', SIGN, 21, [field(INPUT, seq(65_536 - 6))]],
];
const okVectors: OkVector[] = okRows.map(([name, op, id, fields]) => ({ name, op, id, fields }));

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
