/**
 * Displays MoRE explanations and retrieval results in the versioned MIME types
 * that the JupyterLab extension renders (src/viz/mime.ts), each with a text
 * summary. An explanation also carries a PNG: the relevance overlay where the
 * bundle has an X-ray, otherwise the ECG plot with its relevance band.
 */
import sharp from 'sharp';

import {
  EXPLANATION_MIME_TYPE, ExplanationBundle, GrayscaleImage, RETRIEVAL_MIME_TYPE, RetrievalBundle,
  validateExplanationBundle, validateRetrievalBundle,
} from '../../src/viz/mime';
import { ecgPlotSpec } from '../../src/viz/specs';
import { displayBundle, renderVegaLitePng } from './display';
import { encodePng, heatmapOverlay, RawImage } from './images';
import { MimeBundle } from './output';

/** Decodes a bundle image to 8-bit grayscale pixels. */
export async function decodeGrayscale(image: GrayscaleImage): Promise<RawImage> {
  if (image.encoding === 'raw') {
    return { width: image.width, height: image.height, channels: 1, data: Uint8Array.from(image.data) };
  }
  const { data, info } = await sharp(Buffer.from(image.data, 'base64')).greyscale().raw().toBuffer({ resolveWithObject: true });
  if (info.width !== image.width || info.height !== image.height) {
    throw new Error(`The PNG is ${info.width} x ${info.height} pixels but the bundle states ${image.width} x ${image.height}`);
  }
  const gray = new Uint8Array(info.width * info.height);
  for (let i = 0; i < gray.length; i++) gray[i] = data[i * info.channels];
  return { width: info.width, height: info.height, channels: 1, data: gray };
}

function topTokens(tokens: string[], relevance: number[], count: number): string {
  return tokens
    .map((token, index) => ({ token: token.trim(), value: relevance[index] }))
    .sort((a, b) => b.value - a.value)
    .slice(0, count)
    .map(({ token, value }) => `${token} (${value.toFixed(3)})`)
    .join(', ');
}

/** Summarises an explanation as text: title, similarity, modalities and the most relevant report tokens. */
export function summarizeExplanation(bundle: ExplanationBundle): string {
  const lines = [`Explanation${bundle.title ? `: ${bundle.title}` : ''}`];
  if (bundle.similarity !== undefined) lines.push(`  similarity ${bundle.similarity.toFixed(4)}`);
  if (bundle.xray) {
    const { image, patchGrid, relevanceLayout } = bundle.xray;
    lines.push(`  X-ray ${image.width} x ${image.height}, relevance per ${relevanceLayout} (grid ${patchGrid.rows} x ${patchGrid.cols})`);
  }
  if (bundle.ecg) {
    lines.push(`  ECG ${bundle.ecg.leads.length} leads at ${bundle.ecg.sampleRateHz} Hz, ${bundle.ecg.signals[0]?.length ?? 0} samples`);
  }
  if (bundle.report) {
    lines.push(`  report ${bundle.report.tokens.length} tokens; most relevant: ${topTokens(bundle.report.tokens, bundle.report.relevance, 5)}`);
  }
  return lines.join('\n');
}

/** Renders the X-ray relevance of an explanation as a PNG overlay. */
export async function renderXrayOverlay(bundle: ExplanationBundle): Promise<Buffer | undefined> {
  const xray = bundle.xray;
  if (xray === undefined) return undefined;
  const gray = await decodeGrayscale(xray.image);
  const grid = xray.relevanceLayout === 'patch' ? xray.patchGrid : { rows: gray.height, cols: gray.width };
  return encodePng(heatmapOverlay(gray, xray.relevance, grid));
}

/**
 * Shows an explanation: the bundle for the JupyterLab extension, a text
 * summary, and a PNG overlay when the bundle has an X-ray. Throws a
 * BundleValidationError naming the first invalid field.
 */
export async function showExplanation(bundle: ExplanationBundle): Promise<void> {
  const valid = validateExplanationBundle(bundle);
  const data: MimeBundle = { [EXPLANATION_MIME_TYPE]: valid, 'text/plain': summarizeExplanation(valid) };
  const png = (await renderXrayOverlay(valid)) ?? renderEcgRelevance(valid);
  if (png !== undefined) data['image/png'] = png.toString('base64');
  displayBundle(data);
}

/**
 * Draws the ECG part of an explanation as a 12-panel plot with its relevance
 * band. It needs one relevance row per sample shared by all leads, the layout
 * that the ECG explanations produce, and returns undefined for any other.
 */
export function renderEcgRelevance(bundle: ExplanationBundle): Buffer | undefined {
  const ecg = bundle.ecg;
  if (ecg === undefined || ecg.relevance.length !== 1 || ecg.relevance[0].length !== ecg.signals[0].length) return undefined;
  const spec = ecgPlotSpec(ecg.signals, ecg.leads, ecg.sampleRateHz, { relevance: ecg.relevance[0], title: bundle.title });
  return renderVegaLitePng(spec as unknown as Record<string, unknown>, 1);
}

/** Summarises a retrieval result list as text, one line per rank. */
export function summarizeRetrieval(bundle: RetrievalBundle): string {
  const query = bundle.query;
  const described = query.modality === 'report' ? `"${query.text}"` : (query.label ?? query.modality);
  const lines = [`Retrieval${bundle.title ? `: ${bundle.title}` : ''}, ${query.modality} query ${described}`];
  for (const result of bundle.results) {
    const detail = result.label ?? result.reportExcerpt ?? '';
    lines.push(`  ${result.rank}. ${result.id} [${result.modality}] ${bundle.metric ?? 'score'} ${result.score.toFixed(4)}${detail ? ` ${detail}` : ''}`);
  }
  lines.push(`  ties: ${bundle.tieRule}`);
  return lines.join('\n');
}

/** Shows a ranked retrieval result list. Throws a BundleValidationError naming the first invalid field. */
export function showRetrieval(bundle: RetrievalBundle): void {
  const valid = validateRetrievalBundle(bundle);
  displayBundle({ [RETRIEVAL_MIME_TYPE]: valid, 'text/plain': summarizeRetrieval(valid) });
}
