/**
 * Horizontal grouped bar charts as standalone SVG (no chart library): one block per group, one
 * bar per series with its value printed at the end, and an optional dashed reference line
 * (a target or a bound). Series keep the same colour across groups.
 */
import type { Chart } from './result.js';

const PALETTE = ['#2f6db5', '#e08a1e', '#3a9a5b', '#8a5bb5', '#c44e52', '#6b7b8c'];
const WIDTH = 820;
const LABEL_W = 300;
const PLOT_W = 400;
const BAR_H = 20;
const BAR_GAP = 6;
const GROUP_HEADER_H = 24;
const GROUP_GAP = 12;
const TOP = 56;

function escapeXml(s: string): string {
  return s
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;');
}

function formatValue(v: number): string {
  if (!Number.isFinite(v)) return 'n/a';
  if (Math.abs(v) >= 100) return Math.round(v).toLocaleString('en-US');
  return String(Math.round(v * 100) / 100);
}

/** A "nice" axis maximum at or above `v` (1, 2, 2.5, 5 × 10^k). */
function niceMax(v: number): number {
  if (!(v > 0)) return 1;
  const exp = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * exp >= v) return m * exp;
  return 10 * exp;
}

export function barChartSvg(chart: Chart): string {
  const series: string[] = [];
  for (const g of chart.groups)
    for (const b of g.bars) if (!series.includes(b.label)) series.push(b.label);
  const colour = (label: string): string =>
    PALETTE[series.indexOf(label) % PALETTE.length] as string;
  const values = chart.groups.flatMap((g) => g.bars.map((b) => b.value)).filter(Number.isFinite);
  const max = niceMax(Math.max(...values, chart.reference?.value ?? 0, 0));
  const x = (v: number): number => LABEL_W + (Math.max(0, v) / max) * PLOT_W;

  const parts: string[] = [];
  let y = TOP;
  for (const g of chart.groups) {
    parts.push(`<text x="10" y="${y + 16}" class="group">${escapeXml(g.label)}</text>`);
    y += GROUP_HEADER_H;
    for (const b of g.bars) {
      const w = Number.isFinite(b.value) ? x(b.value) - LABEL_W : 0;
      parts.push(
        `<text x="${LABEL_W - 8}" y="${y + BAR_H - 6}" class="label" text-anchor="end">${escapeXml(b.label)}</text>`,
        `<rect x="${LABEL_W}" y="${y}" width="${w.toFixed(1)}" height="${BAR_H}" fill="${colour(b.label)}"/>`,
        `<text x="${(LABEL_W + w + 6).toFixed(1)}" y="${y + BAR_H - 6}" class="value">${formatValue(b.value)}</text>`,
      );
      y += BAR_H + BAR_GAP;
    }
    y += GROUP_GAP;
  }
  const plotBottom = y;
  const axis: string[] = [];
  for (let i = 0; i <= 4; i++) {
    const v = (max * i) / 4;
    const xv = x(v).toFixed(1);
    axis.push(
      `<line x1="${xv}" y1="${TOP - 6}" x2="${xv}" y2="${plotBottom}" class="grid"/>`,
      `<text x="${xv}" y="${plotBottom + 16}" class="tick" text-anchor="middle">${formatValue(v)}</text>`,
    );
  }
  if (chart.reference) {
    const xr = x(chart.reference.value).toFixed(1);
    axis.push(
      `<line x1="${xr}" y1="${TOP - 10}" x2="${xr}" y2="${plotBottom}" class="ref"/>`,
      `<text x="${xr}" y="${TOP - 14}" class="reflabel" text-anchor="middle">${escapeXml(chart.reference.label)}</text>`,
    );
  }
  const height = plotBottom + 40;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="Helvetica, Arial, sans-serif">
<style>
.title { font-size: 15px; font-weight: bold; fill: #222; }
.group { font-size: 13px; font-weight: bold; fill: #333; }
.label { font-size: 12px; fill: #333; }
.value { font-size: 12px; fill: #222; }
.tick { font-size: 11px; fill: #666; }
.unit { font-size: 11px; fill: #666; }
.grid { stroke: #e3e3e3; stroke-width: 1; }
.ref { stroke: #c0392b; stroke-width: 1.5; stroke-dasharray: 5 4; }
.reflabel { font-size: 11px; fill: #c0392b; }
</style>
<rect width="100%" height="100%" fill="#ffffff"/>
<text x="10" y="22" class="title">${escapeXml(chart.title)}</text>
${axis.join('\n')}
${parts.join('\n')}
<text x="${LABEL_W + PLOT_W}" y="${plotBottom + 32}" class="unit" text-anchor="end">${escapeXml(chart.unit)}</text>
</svg>
`;
}
