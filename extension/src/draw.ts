/**
 * Canvas drawing shared by the explanation and retrieval views: the relevance colour scale, grayscale
 * images, the X-ray heatmap overlay and ECG traces with relevance shading.
 */
import type { EcgSignal, GrayscaleImage } from '../../src/viz/mime';

export type Rgb = [number, number, number];

// Colour scale from low to high relevance: dark blue, light blue, yellow, orange, dark red.
const SCALE_STOPS: { at: number; rgb: Rgb }[] = [
  { at: 0, rgb: [20, 30, 120] },
  { at: 0.35, rgb: [40, 150, 230] },
  { at: 0.6, rgb: [250, 225, 40] },
  { at: 0.8, rgb: [245, 130, 20] },
  { at: 1, rgb: [180, 10, 30] },
];

/** Maps a relevance in [0, 1] to its colour on the scale; values outside the range are clamped. */
export function relevanceColour(value: number): Rgb {
  const v = Math.min(1, Math.max(0, value));
  for (let i = 1; i < SCALE_STOPS.length; i++) {
    const upper = SCALE_STOPS[i];
    if (v <= upper.at) {
      const lower = SCALE_STOPS[i - 1];
      const t = (v - lower.at) / (upper.at - lower.at);
      return [0, 1, 2].map((c) => Math.round(lower.rgb[c] + t * (upper.rgb[c] - lower.rgb[c]))) as Rgb;
    }
  }
  return SCALE_STOPS[SCALE_STOPS.length - 1].rgb;
}

/** Scales values linearly to [0, 1] by their minimum and maximum; a constant map becomes all zeros. */
export function normalise(values: readonly number[]): { scaled: Float32Array; min: number; max: number } {
  let min = Infinity;
  let max = -Infinity;
  for (const v of values) {
    if (v < min) min = v;
    if (v > max) max = v;
  }
  const span = max - min;
  const scaled = new Float32Array(values.length);
  if (span > 0) {
    for (let i = 0; i < values.length; i++) scaled[i] = (values[i] - min) / span;
  }
  return { scaled, min, max };
}

/** Reads a JupyterLab theme variable from the element's computed style, with a fallback colour. */
export function themeColour(element: Element, variable: string, fallback: string): string {
  const value = getComputedStyle(element).getPropertyValue(variable).trim();
  return value === '' ? fallback : value;
}

function createCanvas(width: number, height: number): HTMLCanvasElement {
  const canvas = document.createElement('canvas');
  canvas.width = width;
  canvas.height = height;
  return canvas;
}

function context2d(canvas: HTMLCanvasElement): CanvasRenderingContext2D {
  const context = canvas.getContext('2d');
  if (context === null) throw new Error('the browser returned no 2D canvas context');
  return context;
}

/** Decodes a bundle image into a canvas of its own size. */
export async function decodeGrayscale(image: GrayscaleImage): Promise<HTMLCanvasElement> {
  const canvas = createCanvas(image.width, image.height);
  const context = context2d(canvas);
  if (image.encoding === 'raw') {
    const pixels = context.createImageData(image.width, image.height);
    for (let i = 0; i < image.data.length; i++) {
      const gray = image.data[i];
      pixels.data[4 * i] = gray;
      pixels.data[4 * i + 1] = gray;
      pixels.data[4 * i + 2] = gray;
      pixels.data[4 * i + 3] = 255;
    }
    context.putImageData(pixels, 0, 0);
    return canvas;
  }
  const element = new Image();
  element.src = `data:image/png;base64,${image.data}`;
  try {
    await element.decode();
  } catch (error) {
    throw new Error(`the PNG image (${image.width} x ${image.height}) could not be decoded: ${String(error)}`);
  }
  context.drawImage(element, 0, 0, image.width, image.height);
  return canvas;
}

/** Computes a display size that fits `maxSide` and keeps the aspect ratio. */
export function fitSize(width: number, height: number, maxSide: number): { width: number; height: number } {
  const scale = maxSide / Math.max(width, height);
  return { width: Math.max(1, Math.round(width * scale)), height: Math.max(1, Math.round(height * scale)) };
}

/**
 * Renders a relevance map of `cols` x `rows` cells into an opaque colour canvas of that size, which the
 * caller then stretches over the image with smoothing, so patch maps blend like an upsampled heatmap.
 */
export function heatmapCanvas(values: readonly number[], cols: number, rows: number): HTMLCanvasElement {
  const canvas = createCanvas(cols, rows);
  const context = context2d(canvas);
  const pixels = context.createImageData(cols, rows);
  const { scaled } = normalise(values);
  for (let i = 0; i < scaled.length; i++) {
    const [r, g, b] = relevanceColour(scaled[i]);
    pixels.data[4 * i] = r;
    pixels.data[4 * i + 1] = g;
    pixels.data[4 * i + 2] = b;
    pixels.data[4 * i + 3] = 255;
  }
  context.putImageData(pixels, 0, 0);
  return canvas;
}

/** Draws the image and, at the given opacity in [0, 1], the heatmap stretched over it. */
export function drawOverlay(
  target: HTMLCanvasElement,
  image: HTMLCanvasElement,
  heatmap: HTMLCanvasElement | null,
  opacity: number,
): void {
  const context = context2d(target);
  context.clearRect(0, 0, target.width, target.height);
  context.globalAlpha = 1;
  context.imageSmoothingEnabled = true;
  context.drawImage(image, 0, 0, target.width, target.height);
  if (heatmap !== null && opacity > 0) {
    context.globalAlpha = opacity;
    context.drawImage(heatmap, 0, 0, target.width, target.height);
    context.globalAlpha = 1;
  }
}

/** Draws the colour scale as a horizontal gradient across the canvas. */
export function drawScale(target: HTMLCanvasElement): void {
  const context = context2d(target);
  const gradient = context.createLinearGradient(0, 0, target.width, 0);
  for (const stop of SCALE_STOPS) gradient.addColorStop(stop.at, `rgb(${stop.rgb.join(',')})`);
  context.fillStyle = gradient;
  context.fillRect(0, 0, target.width, target.height);
}

/** Colours and sizes for {@link drawEcg}. */
export interface EcgStyle {
  width: number;
  laneHeight: number;
  trace: string;
  grid: string;
  label: string;
  /** Background behind the lead names, so they stay readable over the trace. */
  labelBackground: string;
  font: string;
  /** Maximum alpha of the relevance shading at the highest relevance. */
  shadingAlpha: number;
  showLabels: boolean;
}

/**
 * Draws the chosen leads one lane each, traces scaled to each lead's own range. `relevance` has one row
 * shared by all leads or one row per lead; value i of a row shades samples floor(i*T/R) to floor((i+1)*T/R).
 * The whole map is scaled to [0, 1] by its global minimum and maximum so leads stay comparable.
 */
export function drawEcg(
  target: HTMLCanvasElement,
  ecg: EcgSignal,
  leadIndices: readonly number[],
  relevance: readonly number[][] | null,
  style: EcgStyle,
): void {
  target.width = style.width;
  target.height = style.laneHeight * leadIndices.length;
  const context = context2d(target);
  context.clearRect(0, 0, target.width, target.height);
  const samples = ecg.signals[0].length;
  const xOf = (sample: number): number => (sample / Math.max(1, samples - 1)) * (style.width - 1);

  const scaledRows = relevance === null ? null : scaleRows(relevance);
  leadIndices.forEach((lead, lane) => {
    const top = lane * style.laneHeight;
    if (scaledRows !== null) {
      const row = scaledRows.length === 1 ? scaledRows[0] : scaledRows[lead];
      shadeLane(context, row, samples, top, style, xOf);
    }
    context.strokeStyle = style.grid;
    context.lineWidth = 1;
    context.beginPath();
    context.moveTo(0, top + style.laneHeight - 0.5);
    context.lineTo(style.width, top + style.laneHeight - 0.5);
    context.stroke();
    traceLane(context, ecg.signals[lead], top, style, xOf);
    if (style.showLabels) {
      context.font = style.font;
      context.textBaseline = 'top';
      const name = ecg.leads[lead];
      context.fillStyle = style.labelBackground;
      context.fillRect(2, top + 2, context.measureText(name).width + 4, 13);
      context.fillStyle = style.label;
      context.fillText(name, 4, top + 3);
    }
  });
}

function scaleRows(rows: readonly number[][]): Float32Array[] {
  const { scaled } = normalise(rows.flat());
  const width = rows[0].length;
  return rows.map((_, r) => scaled.subarray(r * width, (r + 1) * width));
}

function shadeLane(
  context: CanvasRenderingContext2D,
  row: Float32Array,
  samples: number,
  top: number,
  style: EcgStyle,
  xOf: (sample: number) => number,
): void {
  const segments = row.length;
  for (let i = 0; i < segments; i++) {
    const start = Math.floor((i * samples) / segments);
    const end = Math.floor(((i + 1) * samples) / segments);
    const [r, g, b] = relevanceColour(row[i]);
    context.fillStyle = `rgba(${r},${g},${b},${(row[i] * style.shadingAlpha).toFixed(3)})`;
    const x0 = xOf(start);
    const x1 = end >= samples ? style.width : xOf(end);
    context.fillRect(x0, top, Math.max(1, x1 - x0), style.laneHeight);
  }
}

function traceLane(
  context: CanvasRenderingContext2D,
  signal: readonly number[],
  top: number,
  style: EcgStyle,
  xOf: (sample: number) => number,
): void {
  let min = Infinity;
  let max = -Infinity;
  for (const v of signal) {
    if (v < min) min = v;
    if (v > max) max = v;
  }
  const span = max - min || 1;
  const margin = 4;
  const usable = style.laneHeight - 2 * margin;
  context.strokeStyle = style.trace;
  context.lineWidth = 1.2;
  context.beginPath();
  for (let i = 0; i < signal.length; i++) {
    const y = top + margin + usable * (1 - (signal[i] - min) / span);
    if (i === 0) context.moveTo(xOf(i), y);
    else context.lineTo(xOf(i), y);
  }
  context.stroke();
}
