/**
 * A TypeScript client of the agent socket (docs/protocol.md), used by the CLI and the tests.
 * One connection carries many requests at once, matched by id. When the connection drops (agent
 * restarted), the requests in flight fail and the next request connects again. Before each
 * connect, the socket must be one this user may trust (socket-trust.ts): nothing is sent otherwise.
 */
import { createConnection } from 'node:net';
import type { Socket } from 'node:net';
import { AkvError, errorMessage } from '../errors.js';
import { checkSocketTrust } from './socket-trust.js';
import {
  FrameDecoder,
  KeyType,
  MAX_REQUEST_BODY,
  MAX_RESPONSE_BODY,
  Op,
  PROTOCOL_VERSION,
  ProtocolError,
  RESPONSE_BIT,
  Tag,
  bytesField,
  encodeFrame,
  getString,
  getStrings,
  getU32,
  opName,
  requireBytes,
  requireString,
  requireU32,
  statusName,
  stringField,
  u32Field,
} from '../protocol/index.js';
import type { Field, Frame, StatusName } from '../protocol/index.js';
import type { AgentReport } from '../protocol/index.js';

export type { AgentReport } from '../protocol/index.js';

export interface AgentClientOptions {
  /** Per-request timeout; the agent's own HSM deadline is 10 s by default, so keep this above. */
  timeoutMs?: number;
  /** Sent in HELLO (CLIENT_NAME). */
  clientName?: string;
}

export interface KeyInfo {
  keyType: 'RSA' | 'EC' | 'AES';
  bits: number;
  curve?: string;
  version: string;
  keyOps: string[];
  /** DER SubjectPublicKeyInfo (RSA, EC). */
  publicKey?: Buffer;
  kid: string;
}

export interface OpResponse {
  output: Buffer;
  version: string;
  retries: number;
}

interface Pending {
  op: number;
  resolve: (frame: Frame) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

const DEFAULT_TIMEOUT_MS = 30_000;

function unreachable(path: string, err: NodeJS.ErrnoException): AkvError {
  if (err.code === 'EACCES' || err.code === 'EPERM') {
    return new AkvError(
      'UNAVAILABLE',
      `permission denied on the akv agent socket ${path}`,
      'run as the user the agent runs as, or set socketGroup in the agent config and join that group',
    );
  }
  return new AkvError(
    'UNAVAILABLE',
    `akv agent not reachable at ${path} (${err.code ?? err.message})`,
    'start it with `akv agent`, or point AKV_AGENT_SOCKET at its socket',
  );
}

export class AgentClient {
  private socket: Socket | undefined;
  private connecting: Promise<Socket> | undefined;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private closed = false;
  private readonly timeoutMs: number;

  constructor(
    readonly socketPath: string,
    private readonly options: AgentClientOptions = {},
  ) {
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  }

  /** Creates a client and connects it now, so that an absent agent is reported at once. */
  static async connect(socketPath: string, options?: AgentClientOptions): Promise<AgentClient> {
    const client = new AgentClient(socketPath, options);
    await client.ensureConnected();
    return client;
  }

  /** Requests currently waiting for their response. */
  get inFlight(): number {
    return this.pending.size;
  }

  private ensureConnected(): Promise<Socket> {
    if (this.closed)
      return Promise.reject(new AkvError('INTERNAL', 'this AgentClient has been closed'));
    if (this.socket) return Promise.resolve(this.socket);
    if (!this.connecting) {
      try {
        checkSocketTrust(this.socketPath);
      } catch (err) {
        return Promise.reject(err);
      }
    }
    this.connecting ??= new Promise<Socket>((resolve, reject) => {
      const socket = createConnection({ path: this.socketPath });
      const onConnectError = (err: NodeJS.ErrnoException): void => {
        this.connecting = undefined;
        reject(unreachable(this.socketPath, err));
      };
      socket.once('error', onConnectError);
      socket.once('connect', () => {
        socket.off('error', onConnectError);
        this.connecting = undefined;
        this.attach(socket);
        resolve(socket);
      });
    });
    return this.connecting;
  }

  private attach(socket: Socket): void {
    this.socket = socket;
    const decoder = new FrameDecoder(MAX_RESPONSE_BODY);
    socket.on('data', (chunk: Buffer) => {
      let frames: Frame[];
      try {
        frames = decoder.push(chunk);
      } catch (err) {
        const reason = err instanceof ProtocolError ? err.message : String(err);
        this.drop(
          socket,
          new AkvError(
            'INTERNAL',
            `the akv agent sent a malformed frame (${reason})`,
            'report this as a bug',
          ),
        );
        return;
      }
      for (const frame of frames) this.dispatch(socket, frame);
    });
    socket.on('error', (err: NodeJS.ErrnoException) => {
      this.drop(
        socket,
        new AkvError(
          'UNAVAILABLE',
          `connection to the akv agent at ${this.socketPath} failed: ${err.message}`,
          'check that the agent is running',
        ),
      );
    });
    socket.on('close', () => {
      this.drop(
        socket,
        new AkvError(
          'UNAVAILABLE',
          `the akv agent at ${this.socketPath} closed the connection`,
          'the agent stopped or restarted; retry the request',
        ),
      );
    });
  }

  /** Forgets a connection and fails every request that was waiting on it. */
  private drop(socket: Socket, err: AkvError): void {
    if (this.socket === socket) this.socket = undefined;
    socket.destroy();
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer);
      this.pending.delete(id);
      p.reject(err);
    }
  }

  private dispatch(socket: Socket, frame: Frame): void {
    if (frame.op === Op.PROTOCOL_ERROR) {
      // The agent refused one of our frames and is closing the connection: a client bug.
      let message = 'protocol error';
      try {
        message = getString(frame, Tag.MESSAGE) ?? message;
      } catch {
        /* keep the generic message */
      }
      const err = new AkvError('BAD_REQUEST', `the akv agent rejected a request: ${message}`);
      const p = this.pending.get(frame.id);
      if (p) {
        clearTimeout(p.timer);
        this.pending.delete(frame.id);
        p.reject(err);
      }
      this.drop(socket, err);
      return;
    }
    const p = this.pending.get(frame.id);
    if (!p) return; // a response that arrived after its timeout
    clearTimeout(p.timer);
    this.pending.delete(frame.id);
    if (frame.op !== (p.op | RESPONSE_BIT)) {
      p.reject(
        new AkvError(
          'INTERNAL',
          `the akv agent answered ${opName(p.op)} with ${opName(frame.op)}`,
          'report this as a bug',
        ),
      );
      return;
    }
    p.resolve(frame);
  }

  private allocateId(): number {
    for (;;) {
      const id = this.nextId;
      this.nextId = this.nextId >= 0xffff_ffff ? 1 : this.nextId + 1;
      if (!this.pending.has(id)) return id;
    }
  }

  /**
   * Sends one request and waits for its response frame. A response whose STATUS is not OK is
   * thrown as AkvError carrying the agent's status name, message and RETRIES.
   */
  async request(op: number, fields: Field[], timeoutMs = this.timeoutMs): Promise<Frame> {
    // Encoded once, before touching the socket (an oversized request is refused here); the id
    // is patched in when it is allocated.
    let bytes: Buffer;
    try {
      bytes = encodeFrame(op, 0, fields, MAX_REQUEST_BODY);
    } catch (err) {
      throw new AkvError(
        'BAD_PARAMETER',
        `request too large for the agent protocol: ${errorMessage(err)}`,
      );
    }
    const socket = await this.ensureConnected();
    const id = this.allocateId();
    bytes.writeUInt32BE(id, 4);
    const frame = await new Promise<Frame>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(
          new AkvError(
            'TIMEOUT',
            `the akv agent did not answer ${opName(op)} within ${timeoutMs} ms`,
            'check the agent log',
          ),
        );
      }, timeoutMs);
      this.pending.set(id, { op, resolve, reject, timer });
      if (socket.destroyed || this.socket !== socket) {
        this.drop(
          socket,
          new AkvError(
            'UNAVAILABLE',
            `the akv agent at ${this.socketPath} closed the connection`,
            'retry the request',
          ),
        );
        return;
      }
      socket.write(bytes);
    });
    const status = requireU32(frame, Tag.STATUS);
    if (status !== 0) {
      const name: StatusName = statusName(status) ?? 'INTERNAL';
      const message = getString(frame, Tag.MESSAGE) ?? `the agent answered status ${status}`;
      throw new AkvError(
        name === 'OK' ? 'INTERNAL' : name,
        message,
        getString(frame, Tag.HINT),
        getU32(frame, Tag.RETRIES) ?? 0,
      );
    }
    return frame;
  }

  private pid(): Field {
    return u32Field(Tag.CLIENT_PID, process.pid);
  }

  async hello(): Promise<{ protoVersion: number; agentVersion: string }> {
    const fields = [u32Field(Tag.PROTO_VERSION, PROTOCOL_VERSION), this.pid()];
    if (this.options.clientName) fields.push(stringField(Tag.CLIENT_NAME, this.options.clientName));
    const r = await this.request(Op.HELLO, fields);
    return {
      protoVersion: requireU32(r, Tag.PROTO_VERSION),
      agentVersion: requireString(r, Tag.AGENT_VERSION),
    };
  }

  async ping(): Promise<void> {
    await this.request(Op.PING, []);
  }

  async describe(uri: string): Promise<KeyInfo> {
    const r = await this.request(Op.DESCRIBE, [stringField(Tag.URI, uri), this.pid()]);
    const typeCode = requireU32(r, Tag.KEY_TYPE);
    const keyType =
      typeCode === KeyType.RSA
        ? 'RSA'
        : typeCode === KeyType.EC
          ? 'EC'
          : typeCode === KeyType.AES
            ? 'AES'
            : undefined;
    if (keyType === undefined)
      throw new AkvError('INTERNAL', `the akv agent sent unknown KEY_TYPE ${typeCode}`);
    const opsText = requireString(r, Tag.KEY_OPS);
    const info: KeyInfo = {
      keyType,
      bits: requireU32(r, Tag.KEY_BITS),
      version: requireString(r, Tag.KEY_VERSION),
      keyOps: opsText === '' ? [] : opsText.split(','),
      kid: requireString(r, Tag.KEY_ID),
    };
    const curve = getString(r, Tag.CURVE);
    if (curve !== undefined) info.curve = curve;
    const spki = r.fields.find((f) => f.tag === Tag.PUBLIC_KEY)?.value;
    if (spki !== undefined) info.publicKey = Buffer.from(spki);
    return info;
  }

  /** Makes the agent forget its cached description of the key (every version). */
  async forget(uri: string): Promise<void> {
    await this.request(Op.FORGET, [stringField(Tag.URI, uri), this.pid()]);
  }

  private async privateOp(
    op: number,
    uri: string,
    alg: string,
    input: Uint8Array,
  ): Promise<OpResponse> {
    const r = await this.request(op, [
      stringField(Tag.URI, uri),
      stringField(Tag.ALG, alg),
      bytesField(Tag.INPUT, input),
      this.pid(),
    ]);
    return {
      output: Buffer.from(requireBytes(r, Tag.OUTPUT)),
      version: requireString(r, Tag.KEY_VERSION),
      retries: getU32(r, Tag.RETRIES) ?? 0,
    };
  }

  /** Signs a digest (RS*, PS*: as is; ES*: raw r||s). */
  sign(uri: string, alg: string, digest: Uint8Array): Promise<OpResponse> {
    return this.privateOp(Op.SIGN, uri, alg, digest);
  }

  decrypt(uri: string, alg: string, ciphertext: Uint8Array): Promise<OpResponse> {
    return this.privateOp(Op.DECRYPT, uri, alg, ciphertext);
  }

  wrap(uri: string, alg: string, key: Uint8Array): Promise<OpResponse> {
    return this.privateOp(Op.WRAP, uri, alg, key);
  }

  unwrap(uri: string, alg: string, wrapped: Uint8Array): Promise<OpResponse> {
    return this.privateOp(Op.UNWRAP, uri, alg, wrapped);
  }

  /** Names of the enabled keys of an HSM or vault, sorted. */
  async list(
    vault: string,
    vaultType: 'managedhsm' | 'keyvault' = 'managedhsm',
  ): Promise<string[]> {
    const r = await this.request(Op.LIST, [
      stringField(Tag.VAULT_NAME, vault),
      stringField(Tag.VAULT_TYPE, vaultType),
      this.pid(),
    ]);
    return getStrings(r, Tag.KEY_NAME);
  }

  /**
   * What the agent sees: its credential and token expiry, each HSM it knows and whether it
   * answers, the key when a URI is given, its version, uptime and limits (docs/protocol.md).
   */
  async diagnose(uri?: string): Promise<AgentReport> {
    const fields = [this.pid()];
    if (uri !== undefined) fields.unshift(stringField(Tag.URI, uri));
    const r = await this.request(Op.DIAGNOSE, fields);
    const text = requireString(r, Tag.REPORT);
    try {
      // The agent's own report, built from this type by src/agent/diagnose.ts: checking each
      // field again here would restate the type.
      return JSON.parse(text) as AgentReport;
    } catch (err) {
      throw new AkvError(
        'INTERNAL',
        `the akv agent sent a REPORT that is not JSON: ${errorMessage(err)}`,
        'report this as a bug',
      );
    }
  }

  /** Closes the connection; requests still in flight fail. */
  async close(): Promise<void> {
    this.closed = true;
    const socket = this.socket;
    if (!socket) return;
    await new Promise<void>((resolve) => {
      socket.once('close', () => resolve());
      socket.end();
      // A peer that does not close its side must not keep us waiting.
      setTimeout(() => socket.destroy(), 1000).unref();
    });
  }
}
