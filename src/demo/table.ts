/**
 * A plain-text table for the demo's summary: columns padded to the widest cell, long cells
 * wrapped at word boundaries so that the table fits a terminal.
 */
export function formatTable(header: string[], rows: string[][], maxCellWidth = 72): string {
  const wrapped = [header, ...rows].map((row) => row.map((cell) => wrap(cell, maxCellWidth)));
  const widths = header.map((_, c) =>
    Math.max(...wrapped.map((row) => Math.max(...(row[c] ?? ['']).map((l) => l.length)))),
  );
  const line = (cells: string[]): string =>
    cells
      .map((cell, c) => cell.padEnd(widths[c] ?? 0))
      .join(' | ')
      .trimEnd();
  const rule = widths.map((w) => '-'.repeat(w)).join('-+-');
  const out: string[] = [];
  wrapped.forEach((row, r) => {
    const height = Math.max(...row.map((lines) => lines.length));
    for (let i = 0; i < height; i++) out.push(line(row.map((lines) => lines[i] ?? '')));
    if (r === 0) out.push(rule);
  });
  return out.join('\n');
}

function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let current = '';
  for (const word of text.split(/\s+/).filter(Boolean)) {
    if (current && current.length + 1 + word.length > width) {
      lines.push(current);
      current = word;
    } else {
      current = current ? `${current} ${word}` : word;
    }
  }
  lines.push(current);
  return lines;
}
