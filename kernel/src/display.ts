/**
 * Display helpers for notebook cells: every call publishes one MIME bundle
 * that always carries `text/plain`, so a front end without the richer
 * renderer (or a notebook read as text) still shows something meaningful.
 * The `show*` helpers return nothing, so a call on a cell's last line prints
 * no value; `displayBundle` returns a handle for updating the output.
 */
import { spawnSync } from 'child_process';
import { randomBytes } from 'crypto';
import * as path from 'path';

import type { BackendInfo } from '../../src/backend';
import { getLogger } from '../../src/util/log';
import { repositoryRoot } from '../../src/util/repository';
import { DisplayWriter, getDisplayWriter, MimeBundle } from './output';

export const VEGA_LITE_MIME_TYPE = 'application/vnd.vegalite.v5+json';
export const VEGA_LITE_SCHEMA = 'https://vega.github.io/schema/vega-lite/v5.json';

export interface DisplayOptions {
  /** Metadata sent beside the bundle, keyed by MIME type as Jupyter expects. */
  metadata?: Record<string, unknown>;
}

/** A displayed output that can be replaced in place (Jupyter display ids). */
export class DisplayHandle {
  private readonly writer: DisplayWriter = getDisplayWriter();

  constructor(readonly displayId: string = randomBytes(8).toString('hex')) {}

  /** Publishes the first version of the output. */
  show(data: MimeBundle, options: DisplayOptions = {}): this {
    this.writer({ data, metadata: options.metadata ?? {}, transient: { display_id: this.displayId } }, false);
    return this;
  }

  /** Replaces the output everywhere it is shown. */
  update(data: MimeBundle, options: DisplayOptions = {}): void {
    this.writer({ data, metadata: options.metadata ?? {}, transient: { display_id: this.displayId } }, true);
  }
}

/** Publishes a MIME bundle. `text/plain` is required. */
export function displayBundle(data: MimeBundle, options: DisplayOptions = {}): DisplayHandle {
  if (typeof data['text/plain'] !== 'string') {
    throw new Error(`A display bundle needs a text/plain string; got MIME types ${Object.keys(data).join(', ') || '(none)'}`);
  }
  return new DisplayHandle().show(data, options);
}

/** Escapes text for HTML element content and attribute values. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] ?? c);
}

/** Publishes HTML with a plain-text alternative. */
export function showHtml(html: string, text: string): void {
  displayBundle({ 'text/html': html, 'text/plain': text });
}

// ---------------------------------------------------------------------------
// Vega-Lite

/** An encoding channel of a Vega-Lite spec; fields beyond these (scale, axis, legend) pass through. */
export interface VegaLiteChannel {
  field?: string;
  type?: string;
  aggregate?: string;
  [key: string]: unknown;
}

/** The parts of a Vega-Lite v5 spec that the text summary reads; any other field passes through unchanged. */
export interface VegaLiteSpec {
  $schema?: string;
  title?: string | { text: string };
  data?: { values?: unknown[]; [key: string]: unknown };
  mark?: string | { type: string; [key: string]: unknown };
  encoding?: Record<string, VegaLiteChannel | undefined>;
  layer?: VegaLiteSpec[];
  hconcat?: VegaLiteSpec[];
  vconcat?: VegaLiteSpec[];
  [key: string]: unknown;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function markName(mark: unknown): string | undefined {
  if (typeof mark === 'string') return mark;
  return isRecord(mark) && typeof mark.type === 'string' ? mark.type : undefined;
}

function describeChannels(encoding: unknown): string[] {
  if (!isRecord(encoding)) return [];
  const described: string[] = [];
  for (const [name, channel] of Object.entries(encoding)) {
    if (!isRecord(channel) || typeof channel.field !== 'string') continue;
    const field = typeof channel.aggregate === 'string' ? `${channel.aggregate}(${channel.field})` : channel.field;
    described.push(`${name}=${field}`);
  }
  return described;
}

function describeView(spec: Record<string, unknown>): string[] {
  const lines: string[] = [];
  const mark = markName(spec.mark);
  const channels = describeChannels(spec.encoding);
  if (mark !== undefined) lines.push(`${mark}${channels.length > 0 ? ` (${channels.join(', ')})` : ''}`);
  for (const key of ['layer', 'hconcat', 'vconcat', 'concat']) {
    const children = spec[key];
    if (!Array.isArray(children)) continue;
    for (const child of children) if (isRecord(child)) lines.push(...describeView(child));
  }
  if (isRecord(spec.spec)) lines.push(...describeView(spec.spec));
  return lines;
}

/** Summarises a Vega-Lite spec as text: title, marks with their encoded fields, and the number of inline rows. */
export function summarizeVegaLite(spec: VegaLiteSpec | Record<string, unknown>): string {
  const title = typeof spec.title === 'string' ? spec.title : isRecord(spec.title) ? spec.title.text : undefined;
  const rows = isRecord(spec.data) && Array.isArray(spec.data.values) ? spec.data.values.length : undefined;
  const head = `Vega-Lite chart${typeof title === 'string' ? ` "${title}"` : ''}${rows !== undefined ? `, ${rows} data rows` : ''}`;
  const views = describeView(spec);
  return views.length > 0 ? `${head}: ${views.join('; ')}` : head;
}

const RENDER_SCRIPT = path.join(repositoryRoot(), 'scripts', 'render-vegalite.js');
const log = getLogger('kernel.display');

/**
 * Renders a Vega-Lite v5 spec to PNG bytes in a child process (vega-lite,
 * vega and sharp; see scripts/render-vegalite.js), or returns undefined with
 * a logged warning when rendering fails, so a chart never fails its cell.
 */
export function renderVegaLitePng(spec: Record<string, unknown>, scale = 2): Buffer | undefined {
  const result = spawnSync(process.execPath, [RENDER_SCRIPT, String(scale)], {
    input: JSON.stringify(spec), maxBuffer: 64 * 1024 * 1024, timeout: 60000,
  });
  if (result.status !== 0) {
    const reason = result.error?.message ?? result.stderr.toString('utf8').trim();
    log.warn(`chart shown without its PNG form: rendering failed (${reason})`);
    return undefined;
  }
  return result.stdout;
}

/**
 * Shows a Vega-Lite v5 chart. The bundle carries the spec, a text summary
 * and a PNG rendering for viewers without a Vega-Lite renderer (GitHub,
 * nbconvert's HTML export).
 */
export function showVegaLite(spec: VegaLiteSpec | Record<string, unknown>): void {
  const full: Record<string, unknown> = { $schema: VEGA_LITE_SCHEMA, ...spec };
  if (full.$schema !== VEGA_LITE_SCHEMA && !String(full.$schema).includes('vega-lite/v5')) {
    throw new Error(`showVegaLite renders Vega-Lite v5 specs; got $schema "${full.$schema}"`);
  }
  const bundle: MimeBundle = { [VEGA_LITE_MIME_TYPE]: full, 'text/plain': summarizeVegaLite(full) };
  const png = renderVegaLitePng(full);
  if (png !== undefined) bundle['image/png'] = png.toString('base64');
  displayBundle(bundle);
}

// ---------------------------------------------------------------------------
// DataFrames

/** The part of the nodejs-polars DataFrame API that {@link showDataFrame} uses. */
export interface TabularFrame {
  readonly columns: string[];
  readonly height: number;
  head(length: number): TabularFrame;
  tail(length: number): TabularFrame;
  rows(): unknown[][];
  toString(): string;
}

function formatCell(value: unknown): string {
  if (value === null || value === undefined) return 'null';
  if (typeof value === 'number') return Number.isInteger(value) ? String(value) : value.toPrecision(6);
  return String(value);
}

/**
 * Renders a DataFrame as an HTML table. Frames taller than `maxRows` show
 * their first and last rows around an ellipsis row.
 */
export function dataFrameToHtml(frame: TabularFrame, maxRows = 20): string {
  const columns = frame.columns;
  const truncated = frame.height > maxRows;
  const headCount = truncated ? Math.ceil(maxRows / 2) : frame.height;
  const tailCount = truncated ? Math.floor(maxRows / 2) : 0;
  const row = (values: unknown[]): string => `<tr>${values.map((v) => `<td>${escapeHtml(formatCell(v))}</td>`).join('')}</tr>`;
  const body = [...frame.head(headCount).rows().map(row)];
  if (truncated) {
    body.push(`<tr>${columns.map(() => '<td>…</td>').join('')}</tr>`);
    body.push(...frame.tail(tailCount).rows().map(row));
  }
  const header = `<tr>${columns.map((c) => `<th>${escapeHtml(c)}</th>`).join('')}</tr>`;
  return (
    `<table class="more-ts-dataframe"><thead>${header}</thead><tbody>${body.join('')}</tbody></table>` +
    `<p>${frame.height} rows × ${columns.length} columns</p>`
  );
}

/** Shows a DataFrame (nodejs-polars) as an HTML table with polars' own text rendering as text/plain. */
export function showDataFrame(frame: TabularFrame, maxRows = 20): void {
  displayBundle({ 'text/html': dataFrameToHtml(frame, maxRows), 'text/plain': frame.toString() });
}

// ---------------------------------------------------------------------------
// Backend

/** Describes the TensorFlow.js backend in one line. */
export function describeBackend(info: BackendInfo): string {
  return `TensorFlow.js backend: ${info.name} (${info.choice}) on ${info.device}`;
}

/** Shows which TensorFlow.js backend the kernel selected at start-up. */
export function showBackend(info: BackendInfo): void {
  const text = describeBackend(info);
  const skipped = info.skipped.map((s) => `<li>${escapeHtml(s.choice)}: ${escapeHtml(s.reason)}</li>`).join('');
  const html =
    `<div class="more-ts-backend"><b>MoRE kernel</b> · ${escapeHtml(text)}` +
    (skipped === '' ? '' : `<details><summary>backends not used</summary><ul>${skipped}</ul></details>`) +
    '</div>';
  displayBundle({ 'text/html': html, 'text/plain': text });
}
