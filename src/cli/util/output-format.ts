/**
 * `--output json|table|tsv` (`-o`), as az has it: JSON (default) as returned; table = aligned
 * columns with a header; tsv = the same columns, tab-separated, no header (for scripts: `cut`,
 * `while read`). Columns are chosen per listing; a cell is the value at a dotted path.
 */
import { UsageError } from '../command.js';
import { isRecord } from '../../guards.js';

export type OutputFormat = 'json' | 'table' | 'tsv';

export interface Column {
  header: string;
  path: string;
}

export function outputFormat(value: string | undefined, command: string): OutputFormat {
  if (value === undefined) return 'json';
  if (value === 'json' || value === 'table' || value === 'tsv') return value;
  throw new UsageError(
    `${command}: --output takes json, table or tsv, got ${JSON.stringify(value)}`,
  );
}

function cell(row: unknown, path: string): string {
  let v: unknown = row;
  for (const part of path.split('.')) {
    if (!isRecord(v)) return '';
    v = v[part];
  }
  if (v === undefined || v === null) return '';
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v).replace(/[\t\n]/g, ' ');
}

/** Renders rows (an array, or one object as one row) in the format; json is JSON as given. */
export function render(value: unknown, format: OutputFormat, columns: readonly Column[]): string {
  if (format === 'json') return JSON.stringify(value, null, 2);
  const rows = (Array.isArray(value) ? value : [value]).map((r) =>
    columns.map((c) => cell(r, c.path)),
  );
  if (format === 'tsv') return rows.map((r) => r.join('\t')).join('\n');
  const widths = columns.map((c, i) =>
    Math.max(c.header.length, ...rows.map((r) => (r[i] ?? '').length)),
  );
  const line = (cells: string[]): string =>
    cells
      .map((c, i) => c.padEnd(widths[i] ?? 0))
      .join('  ')
      .trimEnd();
  return [
    line(columns.map((c) => c.header)),
    line(widths.map((w) => '-'.repeat(w))),
    ...rows.map(line),
  ].join('\n');
}
