/**
 * Turns a decoded request frame into a typed request, checking that the op is known and the
 * required fields are present and well-formed. Anything wrong here is a protocol error
 * (ProtocolError): the connection gets an error frame and is closed (docs/protocol.md).
 * Whether the URI parses is NOT checked here: a bad URI is an ordinary BAD_URI answer.
 */
import type { VaultType } from '../config/types.js';
import {
  Op,
  ProtocolError,
  Tag,
  getString,
  getU32,
  opName,
  requireBytes,
  requireString,
  requireU32,
} from '../protocol/index.js';
import type { Frame } from '../protocol/index.js';

export type PrivateOpName = 'sign' | 'decrypt' | 'wrap' | 'unwrap';

interface Base {
  id: number;
  /** The request op code (the response is op | 0x80). */
  opCode: number;
  clientPid?: number;
}

export type AgentRequest =
  | (Base & { kind: 'hello'; protoVersion: number; clientName?: string; accessToken?: string })
  | (Base & { kind: 'ping' })
  | (Base & { kind: 'describe'; uri: string })
  | (Base & { kind: 'forget'; uri: string })
  | (Base & { kind: 'private'; op: PrivateOpName; uri: string; alg: string; input: Buffer })
  | (Base & { kind: 'list'; vault: string; vaultType: VaultType })
  | (Base & { kind: 'diagnose'; uri?: string })
  | (Base & { kind: 'list-vaults' });

const PRIVATE_OPS: Record<number, PrivateOpName> = {
  [Op.SIGN]: 'sign',
  [Op.DECRYPT]: 'decrypt',
  [Op.WRAP]: 'wrap',
  [Op.UNWRAP]: 'unwrap',
};

export function parseRequest(frame: Frame): AgentRequest {
  const clientPid = getU32(frame, Tag.CLIENT_PID);
  const base: Base =
    clientPid === undefined
      ? { id: frame.id, opCode: frame.op }
      : { id: frame.id, opCode: frame.op, clientPid };
  switch (frame.op) {
    case Op.HELLO:
      return parseHello(frame, base);
    case Op.PING:
      return { ...base, kind: 'ping' };
    case Op.DESCRIBE:
      return { ...base, kind: 'describe', uri: requireString(frame, Tag.URI) };
    case Op.FORGET:
      return { ...base, kind: 'forget', uri: requireString(frame, Tag.URI) };
    case Op.SIGN:
    case Op.DECRYPT:
    case Op.WRAP:
    case Op.UNWRAP:
      return {
        ...base,
        kind: 'private',
        op: PRIVATE_OPS[frame.op]!,
        uri: requireString(frame, Tag.URI),
        alg: requireString(frame, Tag.ALG),
        input: requireBytes(frame, Tag.INPUT),
      };
    case Op.LIST:
      return parseList(frame, base);
    case Op.DIAGNOSE: {
      const uri = getString(frame, Tag.URI);
      return uri === undefined ? { ...base, kind: 'diagnose' } : { ...base, kind: 'diagnose', uri };
    }
    case Op.LIST_VAULTS:
      return { ...base, kind: 'list-vaults' };
    default:
      throw new ProtocolError(
        'unknown-op',
        `unknown operation ${opName(frame.op)} (this agent speaks protocol version 1: ops 0x01-0x0b)`,
        frame.id,
      );
  }
}

function parseHello(frame: Frame, base: Base): Extract<AgentRequest, { kind: 'hello' }> {
  const clientName = getString(frame, Tag.CLIENT_NAME);
  const accessToken = getString(frame, Tag.ACCESS_TOKEN);
  return {
    ...base,
    kind: 'hello',
    protoVersion: requireU32(frame, Tag.PROTO_VERSION),
    ...(clientName !== undefined ? { clientName } : {}),
    ...(accessToken !== undefined ? { accessToken } : {}),
  };
}

/** LIST names a vault and its type (Managed HSM unless it says keyvault). */
function parseList(frame: Frame, base: Base): Extract<AgentRequest, { kind: 'list' }> {
  const vault = requireString(frame, Tag.VAULT_NAME);
  const type = getString(frame, Tag.VAULT_TYPE) ?? 'managedhsm';
  if (type !== 'managedhsm' && type !== 'keyvault') {
    throw new ProtocolError(
      'bad-field',
      `VAULT_TYPE must be "managedhsm" or "keyvault", got ${JSON.stringify(type.slice(0, 40))}`,
      frame.id,
    );
  }
  return { ...base, kind: 'list', vault, vaultType: type };
}
