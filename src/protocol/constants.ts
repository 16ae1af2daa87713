/**
 * Numbers of the agent wire protocol, version 1 (docs/protocol.md is the specification; keep the
 * two in step). This file is the one source: provider/src/protocol_codes.h is generated from it
 * (src/protocol/c-header.ts; the protocol tests fail when the committed header has drifted), so
 * every name here is also the C name with an `AKV_` prefix (`Op.SIGN` is `AKV_OP_SIGN`).
 */
export const MAGIC = 0x414b; // 'A' 'K'
export const PROTOCOL_VERSION = 1;
export const FRAME_HEADER_SIZE = 12;
export const FIELD_HEADER_SIZE = 6;

/** Largest request body the agent accepts (and the limit every golden vector is decoded with). */
export const MAX_REQUEST_BODY = 65_536;
/** Largest response body a client accepts. */
export const MAX_RESPONSE_BODY = 1_048_576;

/** Set in the op of every response: response op = request op | RESPONSE_BIT. */
export const RESPONSE_BIT = 0x80;

export const Op = {
  HELLO: 0x01,
  PING: 0x02,
  DESCRIBE: 0x03,
  SIGN: 0x04,
  DECRYPT: 0x05,
  WRAP: 0x06,
  UNWRAP: 0x07,
  LIST: 0x08,
  /** Drop the agent's cached description of a key (after a rotate, import or delete). */
  FORGET: 0x09,
  /** What the agent sees (credential, HSMs, optionally a key): answered with a JSON REPORT. */
  DIAGNOSE: 0x0a,
  /** The HSM names of the agent's config (the PKCS#11 module's tokens): answered with VAULT_NAMES. */
  LIST_VAULTS: 0x0b,
  /** Protocol-error frame: the agent sends it for a malformed request, then closes the connection. */
  PROTOCOL_ERROR: 0xff,
} as const;
export type OpName = keyof typeof Op;

export const Tag = {
  STATUS: 0x0001,
  MESSAGE: 0x0002,
  URI: 0x0003,
  ALG: 0x0004,
  INPUT: 0x0005,
  OUTPUT: 0x0006,
  /** What to do about a failure (optional beside MESSAGE, which says only what failed). */
  HINT: 0x0007,
  KEY_TYPE: 0x0010,
  KEY_BITS: 0x0011,
  CURVE: 0x0012,
  KEY_VERSION: 0x0013,
  KEY_OPS: 0x0014,
  PUBLIC_KEY: 0x0015,
  KEY_ID: 0x0016,
  KEY_NAME: 0x0017,
  VAULT_NAME: 0x0018,
  VAULT_TYPE: 0x0019,
  CLIENT_PID: 0x0020,
  CLIENT_NAME: 0x0021,
  PROTO_VERSION: 0x0022,
  AGENT_VERSION: 0x0023,
  RETRIES: 0x0024,
  /** DIAGNOSE response: UTF-8 JSON (docs/protocol.md). */
  REPORT: 0x0025,
  /**
   * The client's AZURE_CLI_ACCESS_TOKEN (HELLO, optional): an autostarted agent switches to it
   * when it is newer than its own (docs/protocol.md). A secret: never logged.
   */
  ACCESS_TOKEN: 0x0026,
  /** LIST_VAULTS response: the config's vault names, comma-separated, in the config's order. */
  VAULT_NAMES: 0x0027,
  /** DESCRIBE response, optional: the DER certificate the config names for the key (PKCS#11). */
  CERTIFICATE: 0x0028,
} as const;
export type TagName = keyof typeof Tag;

/** Tags that may appear more than once in one frame. */
export const REPEATABLE_TAGS: ReadonlySet<number> = new Set([Tag.KEY_NAME]);

/** KEY_TYPE values. */
export const KeyType = { RSA: 1, EC: 2, AES: 3 } as const;

/** STATUS values: 0 is success, every other code names what failed (docs/protocol.md). */
export const Status = {
  OK: 0,
  BAD_REQUEST: 1,
  BAD_URI: 2,
  KEY_NOT_FOUND: 3,
  FORBIDDEN: 4,
  UNAUTHORIZED: 5,
  THROTTLED: 6,
  UNAVAILABLE: 7,
  TIMEOUT: 8,
  UNSUPPORTED: 9,
  KEY_DISABLED: 10,
  BAD_PARAMETER: 11,
  INTERNAL: 12,
  /** The agent's access policy does not let this peer use this key for this operation. */
  ACCESS_DENIED: 13,
} as const;
export type StatusName = keyof typeof Status;

/** The name under which `table` (Op, Tag or Status) holds `value`, undefined when none does. */
export function nameOf<T extends Record<string, number>>(
  table: T,
  value: number,
): Extract<keyof T, string> | undefined {
  for (const name in table) if (table[name] === value) return name;
  return undefined;
}

/** The name of a status code, undefined when unknown. */
export function statusName(status: number): StatusName | undefined {
  return nameOf(Status, status);
}

/** The name of an op code for messages and logs (`op 0x42` when unknown). */
export function opName(op: number): string {
  const base = op === Op.PROTOCOL_ERROR ? op : op & ~RESPONSE_BIT;
  const name = nameOf(Op, base);
  const hex = `0x${op.toString(16).padStart(2, '0')}`;
  if (name === undefined) return `op ${hex}`;
  return op !== Op.PROTOCOL_ERROR && op & RESPONSE_BIT ? `${name} response` : name;
}
