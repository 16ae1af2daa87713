/**
 * Frame encoding and decoding (docs/protocol.md): a 12-byte header (magic, version, op, id,
 * length) and a body of tag-length-value fields.
 */
import {
  FIELD_HEADER_SIZE,
  FRAME_HEADER_SIZE,
  MAGIC,
  MAX_REQUEST_BODY,
  MAX_RESPONSE_BODY,
  PROTOCOL_VERSION,
  REPEATABLE_TAGS,
} from './constants.js';
import { ProtocolError } from './errors.js';

export interface Field {
  tag: number;
  value: Buffer;
}

export interface Frame {
  op: number;
  id: number;
  fields: Field[];
}

export interface FrameHeader {
  op: number;
  id: number;
  length: number;
}

function checkU32(what: string, n: number): void {
  if (!Number.isInteger(n) || n < 0 || n > 0xffff_ffff)
    throw new RangeError(`${what} ${n} is not a u32`);
}

/**
 * Encodes one frame. Throws RangeError for values that cannot be represented and when the body
 * would exceed `maxBodyLength` (a sender must never emit a frame its peer will reject).
 */
export function encodeFrame(
  op: number,
  id: number,
  fields: readonly Field[],
  maxBodyLength: number = MAX_RESPONSE_BODY,
): Buffer {
  if (!Number.isInteger(op) || op < 0 || op > 0xff) throw new RangeError(`op ${op} is not a byte`);
  checkU32('id', id);
  let bodyLength = 0;
  for (const f of fields) {
    if (!Number.isInteger(f.tag) || f.tag < 0 || f.tag > 0xffff)
      throw new RangeError(`tag ${f.tag} is not a u16`);
    bodyLength += FIELD_HEADER_SIZE + f.value.length;
  }
  if (bodyLength > maxBodyLength) {
    throw new RangeError(`frame body of ${bodyLength} bytes exceeds the limit of ${maxBodyLength}`);
  }
  const out = Buffer.allocUnsafe(FRAME_HEADER_SIZE + bodyLength);
  out.writeUInt16BE(MAGIC, 0);
  out.writeUInt8(PROTOCOL_VERSION, 2);
  out.writeUInt8(op, 3);
  out.writeUInt32BE(id, 4);
  out.writeUInt32BE(bodyLength, 8);
  let pos = FRAME_HEADER_SIZE;
  for (const f of fields) {
    out.writeUInt16BE(f.tag, pos);
    out.writeUInt32BE(f.value.length, pos + 2);
    f.value.copy(out, pos + FIELD_HEADER_SIZE);
    pos += FIELD_HEADER_SIZE + f.value.length;
  }
  return out;
}

export function u32Field(tag: number, n: number): Field {
  checkU32('field value', n);
  const value = Buffer.allocUnsafe(4);
  value.writeUInt32BE(n, 0);
  return { tag, value };
}

export function stringField(tag: number, s: string): Field {
  return { tag, value: Buffer.from(s, 'utf8') };
}

export function bytesField(tag: number, b: Uint8Array): Field {
  return { tag, value: Buffer.from(b.buffer, b.byteOffset, b.byteLength) };
}

/**
 * Checks the part of a header that is present (`bytes` may be shorter than a header): magic as
 * soon as 2 bytes are in, version at 3, length at 12. Checking early means a peer that speaks
 * something else entirely (HTTP, garbage) is refused at once instead of being waited on.
 * Returns the header when all 12 bytes are present.
 */
function checkHeader(bytes: Buffer, maxBodyLength: number): FrameHeader | undefined {
  if (bytes.length >= 2 && bytes.readUInt16BE(0) !== MAGIC) {
    throw new ProtocolError(
      'magic',
      `bad magic 0x${bytes.subarray(0, 2).toString('hex')} (expected 0x414b "AK")`,
    );
  }
  if (bytes.length >= 3 && bytes[2] !== PROTOCOL_VERSION) {
    throw new ProtocolError(
      'version',
      `unsupported protocol version ${bytes[2]} (this side speaks ${PROTOCOL_VERSION})`,
    );
  }
  if (bytes.length < FRAME_HEADER_SIZE) return undefined;
  const op = bytes.readUInt8(3);
  const id = bytes.readUInt32BE(4);
  const length = bytes.readUInt32BE(8);
  if (length > maxBodyLength) {
    throw new ProtocolError(
      'too-large',
      `frame body of ${length} bytes exceeds the limit of ${maxBodyLength}`,
      id,
    );
  }
  return { op, id, length };
}

/** Splits a complete body into fields; the fields must fill it exactly. */
export function decodeBody(body: Buffer, id = 0): Field[] {
  const fields: Field[] = [];
  const seen = new Set<number>();
  let pos = 0;
  while (pos < body.length) {
    if (body.length - pos < FIELD_HEADER_SIZE) {
      throw new ProtocolError(
        'partial-field-header',
        `the body ends inside a field header (${body.length - pos} of ${FIELD_HEADER_SIZE} bytes at offset ${pos})`,
        id,
      );
    }
    const tag = body.readUInt16BE(pos);
    const length = body.readUInt32BE(pos + 2);
    const start = pos + FIELD_HEADER_SIZE;
    if (length > body.length - start) {
      throw new ProtocolError(
        'field-overrun',
        `field 0x${tag.toString(16).padStart(4, '0')} claims ${length} bytes but only ${body.length - start} remain in the body`,
        id,
      );
    }
    if (seen.has(tag) && !REPEATABLE_TAGS.has(tag)) {
      throw new ProtocolError(
        'duplicate-tag',
        `field 0x${tag.toString(16).padStart(4, '0')} appears twice`,
        id,
      );
    }
    seen.add(tag);
    fields.push({ tag, value: body.subarray(start, start + length) });
    pos = start + length;
  }
  return fields;
}

/** Decodes exactly one frame from `bytes` (no more, no less). */
export function decodeFrame(bytes: Buffer, maxBodyLength: number = MAX_REQUEST_BODY): Frame {
  const header = checkHeader(bytes, maxBodyLength);
  if (header === undefined) {
    throw new ProtocolError(
      'short-header',
      `only ${bytes.length} of the ${FRAME_HEADER_SIZE} header bytes`,
    );
  }
  const available = bytes.length - FRAME_HEADER_SIZE;
  if (available < header.length) {
    throw new ProtocolError(
      'short-body',
      `only ${available} of the ${header.length} body bytes`,
      header.id,
    );
  }
  if (available > header.length) {
    throw new ProtocolError(
      'trailing-bytes',
      `${available - header.length} bytes after the end of the frame`,
      header.id,
    );
  }
  const fields = decodeBody(bytes.subarray(FRAME_HEADER_SIZE), header.id);
  return { op: header.op, id: header.id, fields };
}

/**
 * Incremental decoder for a byte stream that arrives in arbitrary pieces. `push` returns every
 * frame completed by the new bytes. After it has thrown once, the stream is unusable (framing
 * cannot resynchronise) and every later call throws the same error.
 */
export class FrameDecoder {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private header: FrameHeader | undefined;
  private failure: ProtocolError | undefined;

  constructor(private readonly maxBodyLength: number = MAX_REQUEST_BODY) {}

  get bufferedBytes(): number {
    return this.buffered;
  }

  push(chunk: Buffer): Frame[] {
    const { frames, error } = this.feed(chunk);
    if (error) throw error;
    return frames;
  }

  /**
   * Like push, but also hands back the frames that were complete before a malformed one in the
   * same chunk, so that a server can still answer them.
   */
  feed(chunk: Buffer): { frames: Frame[]; error?: ProtocolError } {
    if (this.failure) return { frames: [], error: this.failure };
    this.append(chunk);
    const frames: Frame[] = [];
    try {
      for (let f = this.next(); f !== undefined; f = this.next()) frames.push(f);
      return { frames };
    } catch (err) {
      if (!(err instanceof ProtocolError)) throw err;
      return { frames, error: err };
    }
  }

  /**
   * Adds bytes without decoding them: `next()` takes the frames out one at a time, so that a
   * reader that is not ready for more requests keeps raw bytes, not decoded frames.
   */
  append(chunk: Buffer): void {
    if (chunk.length > 0) {
      this.chunks.push(chunk);
      this.buffered += chunk.length;
    }
  }

  /**
   * The next complete frame of what was appended, or undefined when more bytes are needed.
   * Throws the ProtocolError of a malformed frame (and so does every later call).
   */
  next(): Frame | undefined {
    if (this.failure) throw this.failure;
    try {
      return this.nextUnchecked();
    } catch (err) {
      if (err instanceof ProtocolError) this.failure = err;
      throw err;
    }
  }

  /** Call at end of stream: throws short-header/short-body if a frame was cut off. */
  finish(): void {
    if (this.failure) throw this.failure;
    if (this.buffered === 0) return;
    if (this.header === undefined) {
      this.failure = new ProtocolError(
        'short-header',
        `the stream ended ${this.buffered} bytes into a frame header`,
      );
    } else {
      const got = this.buffered - FRAME_HEADER_SIZE;
      this.failure = new ProtocolError(
        'short-body',
        `the stream ended after ${got} of the ${this.header.length} body bytes`,
        this.header.id,
      );
    }
    throw this.failure;
  }

  private take(n: number): Buffer {
    const all =
      this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks, this.buffered);
    const head = all.subarray(0, n);
    const rest = all.subarray(n);
    this.chunks = rest.length > 0 ? [rest] : [];
    this.buffered = rest.length;
    return head;
  }

  private nextUnchecked(): Frame | undefined {
    if (this.header === undefined) {
      if (this.buffered === 0) return undefined;
      const start =
        this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks, this.buffered);
      this.chunks = [start];
      this.header = checkHeader(start.subarray(0, FRAME_HEADER_SIZE), this.maxBodyLength);
      if (this.header === undefined) return undefined;
    }
    if (this.buffered < FRAME_HEADER_SIZE + this.header.length) return undefined;
    const frameBytes = this.take(FRAME_HEADER_SIZE + this.header.length);
    const { op, id } = this.header;
    this.header = undefined;
    // Copy so that a frame kept by the caller does not pin the whole receive buffer.
    const body = Buffer.from(frameBytes.subarray(FRAME_HEADER_SIZE));
    return { op, id, fields: decodeBody(body, id) };
  }
}
