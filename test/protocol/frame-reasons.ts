/**
 * The reasons docs/protocol.md ("Protocol errors") gives for refusing a frame, as the tests expect
 * them: the vectors must cover each one and the fuzzer must reach each one. Written out here rather
 * than taken from src/protocol, so that a reason added or dropped there fails these tests.
 */
export const DOCUMENTED_FRAME_REASONS: readonly string[] = [
  'magic',
  'version',
  'too-large',
  'field-overrun',
  'duplicate-tag',
  'partial-field-header',
  'short-header',
  'short-body',
];
