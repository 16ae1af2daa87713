/**
 * The one error type the frame decoder and the field readers throw. `reason` is the stable word
 * used in docs/protocol.md and in the golden vectors; `id` is the frame's request id when the
 * header could be read (0 otherwise), so the agent can address its protocol-error frame.
 */
export type FrameErrorReason =
  | 'magic'
  | 'version'
  | 'too-large'
  | 'field-overrun'
  | 'duplicate-tag'
  | 'partial-field-header'
  | 'short-header'
  | 'short-body'
  /** decodeFrame() was given bytes after the end of the frame. */
  | 'trailing-bytes';

/** Reasons found by the typed field readers and request validation, after framing succeeded. */
export type FieldErrorReason = 'missing-field' | 'bad-field' | 'unknown-op';

export type ProtocolErrorReason = FrameErrorReason | FieldErrorReason;

export class ProtocolError extends Error {
  override name = 'ProtocolError';
  constructor(
    readonly reason: ProtocolErrorReason,
    message: string,
    /** Request id from the frame header; 0 when the header itself was bad. */
    readonly id = 0,
  ) {
    super(message);
  }
}
