/**
 * Type guards for values that arrive without a type (parsed JSON, command-line words, settings):
 * checked once where they enter, so that the code behind works with narrowed types instead of
 * `as` casts. Bottom layer: imports nothing of akv.
 */

/** A JSON object (not null, not an array). */
export function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** One of `list`'s values (a list of string or number literals). */
export function isOneOf<T extends string | number>(list: readonly T[], v: unknown): v is T {
  return list.some((item) => item === v);
}

/** A list of strings. */
export function isStringArray(v: unknown): v is string[] {
  return Array.isArray(v) && v.every((e) => typeof e === 'string');
}

/** A whole number (what `Number.isInteger` checks, as a guard). */
export function isInteger(v: unknown): v is number {
  return Number.isInteger(v);
}
