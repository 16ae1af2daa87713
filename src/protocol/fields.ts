/**
 * Typed access to the fields of a decoded frame. Readers throw ProtocolError('bad-field') for a
 * value of the wrong shape and the `require*` forms ProtocolError('missing-field') when absent;
 * the agent turns both into a protocol-error frame.
 */
import { Tag, nameOf } from './constants.js';
import { ProtocolError } from './errors.js';
import type { Frame } from './frame.js';

const utf8 = new TextDecoder('utf-8', { fatal: true });

function tagLabel(tag: number): string {
  return nameOf(Tag, tag) ?? `0x${tag.toString(16).padStart(4, '0')}`;
}

export function getBytes(frame: Frame, tag: number): Buffer | undefined {
  return frame.fields.find((f) => f.tag === tag)?.value;
}

export function getU32(frame: Frame, tag: number): number | undefined {
  const value = getBytes(frame, tag);
  if (value === undefined) return undefined;
  if (value.length !== 4) {
    throw new ProtocolError(
      'bad-field',
      `field ${tagLabel(tag)} must be a 4-byte u32, got ${value.length} bytes`,
      frame.id,
    );
  }
  return value.readUInt32BE(0);
}

function decodeString(frame: Frame, tag: number, value: Buffer): string {
  try {
    return utf8.decode(value);
  } catch {
    throw new ProtocolError('bad-field', `field ${tagLabel(tag)} is not valid UTF-8`, frame.id);
  }
}

export function getString(frame: Frame, tag: number): string | undefined {
  const value = getBytes(frame, tag);
  return value === undefined ? undefined : decodeString(frame, tag, value);
}

/** Every value of a repeatable tag (KEY_NAME), in frame order. */
export function getStrings(frame: Frame, tag: number): string[] {
  return frame.fields.filter((f) => f.tag === tag).map((f) => decodeString(frame, tag, f.value));
}

function missing(frame: Frame, tag: number): ProtocolError {
  return new ProtocolError('missing-field', `required field ${tagLabel(tag)} is missing`, frame.id);
}

export function requireBytes(frame: Frame, tag: number): Buffer {
  const v = getBytes(frame, tag);
  if (v === undefined) throw missing(frame, tag);
  return v;
}

export function requireU32(frame: Frame, tag: number): number {
  const v = getU32(frame, tag);
  if (v === undefined) throw missing(frame, tag);
  return v;
}

export function requireString(frame: Frame, tag: number): string {
  const v = getString(frame, tag);
  if (v === undefined) throw missing(frame, tag);
  return v;
}
