/**
 * Retrieval view: the query, then the ranked results as a gallery of X-ray thumbnails, small ECG plots and
 * report excerpts with their scores. A result expands on click, Enter or Space.
 */
import type { EcgSignal, GrayscaleImage, RetrievalBundle, RetrievalQuery, RetrievalResult } from '../../src/viz/mime';
import { createElement, uniqueId } from './dom';
import { decodeGrayscale, drawEcg, drawOverlay, fitSize, themeColour } from './draw';
import type { RenderedView } from './explanation';

const THUMBNAIL_SIDE = 112;
const DETAIL_SIDE = 280;
const MODALITY_NAMES = { xray: 'X-ray', ecg: 'ECG', report: 'report' } as const;

/**
 * Formats the scores with the fewest decimals (at least 4) that keep distinct scores distinct, so equal
 * displayed scores always mean a tie.
 */
export function formatScores(scores: readonly number[]): string[] {
  const distinct = new Set(scores).size;
  for (let digits = 4; digits < 17; digits++) {
    const texts = scores.map((score) => score.toFixed(digits));
    if (new Set(texts).size === distinct) return texts;
  }
  return scores.map((score) => String(score));
}

/** Builds the retrieval view into `host` and resolves once every thumbnail is drawn. */
export async function renderRetrieval(host: HTMLElement, bundle: RetrievalBundle): Promise<RenderedView> {
  const redrawers: (() => void)[] = [];
  const root = createElement('div', { className: 'more-ts-retrieval' });
  root.appendChild(
    createElement('div', { className: 'more-ts-header' }, [
      createElement('span', { className: 'more-ts-title', text: bundle.title ?? 'MoRE retrieval' }),
    ]),
  );
  root.appendChild(await renderQuery(bundle.query, redrawers));

  const metric = bundle.metric ?? 'score';
  root.appendChild(
    createElement('div', {
      className: 'more-ts-caption',
      text: `${bundle.results.length} results ranked by ${metric}. Ties: ${bundle.tieRule}`,
    }),
  );

  const gallery = createElement('ol', { className: 'more-ts-gallery', attributes: { 'aria-label': 'Ranked results' } });
  const scoreTexts = formatScores(bundle.results.map((result) => result.score));
  for (let i = 0; i < bundle.results.length; i++) {
    const result = bundle.results[i];
    const tied =
      (i > 0 && bundle.results[i - 1].score === result.score) ||
      (i + 1 < bundle.results.length && bundle.results[i + 1].score === result.score);
    gallery.appendChild(await renderResult(result, scoreTexts[i], tied, redrawers));
  }
  root.appendChild(gallery);
  host.appendChild(root);
  const redraw = (): void => redrawers.forEach((draw) => draw());
  redraw();

  // Canvas colours come from the theme's CSS variables, so a theme switch needs a redraw.
  const observer = new MutationObserver(redraw);
  observer.observe(document.body, { attributes: true, attributeFilter: ['data-jp-theme-name'] });
  return { redraw, dispose: () => observer.disconnect() };
}

async function renderQuery(query: RetrievalQuery, redrawers: (() => void)[]): Promise<HTMLElement> {
  const element = createElement('div', { className: 'more-ts-query', attributes: { 'aria-label': 'Query' } });
  element.appendChild(createElement('span', { className: 'more-ts-query-kind', text: `Query (${MODALITY_NAMES[query.modality]})` }));
  if (query.label !== undefined) element.appendChild(createElement('span', { className: 'more-ts-label', text: query.label }));
  if (query.modality === 'report') {
    element.appendChild(createElement('blockquote', { className: 'more-ts-query-text', text: query.text }));
  } else if (query.modality === 'xray') {
    element.appendChild(await imageCanvas(query.image, THUMBNAIL_SIDE, 'Query X-ray'));
  } else {
    element.appendChild(ecgCanvas(query.ecg, 'small', element, redrawers));
  }
  return element;
}

async function imageCanvas(image: GrayscaleImage, side: number, label: string): Promise<HTMLCanvasElement> {
  const decoded = await decodeGrayscale(image);
  const size = fitSize(image.width, image.height, side);
  const canvas = createElement('canvas', {
    className: 'more-ts-thumbnail',
    attributes: { width: String(size.width), height: String(size.height), role: 'img', 'aria-label': label },
  });
  drawOverlay(canvas, decoded, null, 0);
  return canvas;
}

/** Draws an ECG: `small` shows one lead (II when present) as a thumbnail, `full` shows every lead. */
function ecgCanvas(ecg: EcgSignal, kind: 'small' | 'full', themed: HTMLElement, redrawers: (() => void)[]): HTMLCanvasElement {
  const canvas = createElement('canvas', {
    className: kind === 'small' ? 'more-ts-ecg-thumbnail' : 'more-ts-ecg-canvas',
    attributes: { role: 'img', 'aria-label': kind === 'small' ? 'ECG thumbnail' : 'ECG leads' },
  });
  let leadIndices = ecg.leads.map((_, i) => i);
  if (kind === 'small') {
    const leadII = ecg.leads.indexOf('II');
    leadIndices = [Math.max(0, leadII)];
  }
  const draw = (): void =>
    drawEcg(canvas, ecg, leadIndices, null, {
      width: kind === 'small' ? 2 * THUMBNAIL_SIDE : 640,
      laneHeight: kind === 'small' ? THUMBNAIL_SIDE / 2 : 36,
      trace: themeColour(themed, '--jp-content-font-color1', '#222'),
      grid: themeColour(themed, '--jp-border-color2', '#ccc'),
      label: themeColour(themed, '--jp-content-font-color2', '#555'),
      labelBackground: themeColour(themed, '--jp-layout-color1', '#fff'),
      font: `11px ${themeColour(themed, '--jp-ui-font-family', 'sans-serif')}`,
      shadingAlpha: 0,
      showLabels: true,
    });
  redrawers.push(draw);
  return canvas;
}

async function renderResult(
  result: RetrievalResult,
  scoreText: string,
  tied: boolean,
  redrawers: (() => void)[],
): Promise<HTMLLIElement> {
  const item = createElement('li', {
    className: 'more-ts-result',
    attributes: { 'data-rank': String(result.rank), 'data-score': String(result.score), 'data-id': result.id },
  });
  const detailId = uniqueId('result-detail');
  const summary = createElement('div', {
    className: 'more-ts-result-summary',
    attributes: {
      role: 'button',
      tabindex: '0',
      'aria-expanded': 'false',
      'aria-controls': detailId,
      'aria-label': `Rank ${result.rank}, ${MODALITY_NAMES[result.modality]} ${result.id}, score ${scoreText}`,
    },
  });
  const badges = [createElement('span', { className: 'more-ts-rank', text: `#${result.rank}` })];
  badges.push(createElement('span', { className: 'more-ts-score', text: scoreText }));
  if (tied) badges.push(createElement('span', { className: 'more-ts-tie', text: 'tie', attributes: { title: 'Equal score' } }));
  summary.appendChild(createElement('div', { className: 'more-ts-result-badges' }, badges));
  summary.appendChild(await renderPreview(result, item, redrawers));
  summary.appendChild(createElement('div', { className: 'more-ts-label', text: result.label ?? result.id }));
  item.appendChild(summary);

  const detail = createElement('div', { className: 'more-ts-result-detail', attributes: { id: detailId, role: 'region' } });
  detail.hidden = true;
  let detailBuilt = false;
  const toggle = async (): Promise<void> => {
    const expand = detail.hidden;
    if (expand && !detailBuilt) {
      detailBuilt = true;
      await renderDetail(result, detail, redrawers);
    }
    detail.hidden = !expand;
    summary.setAttribute('aria-expanded', String(expand));
    item.classList.toggle('more-ts-result-expanded', expand);
  };
  summary.addEventListener('click', () => void toggle());
  summary.addEventListener('keydown', (event) => {
    if (event.key === 'Enter' || event.key === ' ') {
      event.preventDefault();
      void toggle();
    }
  });
  item.appendChild(detail);
  return item;
}

async function renderPreview(result: RetrievalResult, themed: HTMLElement, redrawers: (() => void)[]): Promise<HTMLElement> {
  if (result.modality === 'xray' && result.xray !== undefined) {
    return imageCanvas(result.xray, THUMBNAIL_SIDE, `X-ray ${result.id}`);
  }
  if (result.modality === 'ecg' && result.ecg !== undefined) {
    return ecgCanvas(result.ecg, 'small', themed, redrawers);
  }
  return createElement('div', { className: 'more-ts-excerpt', text: result.reportExcerpt ?? '' });
}

async function renderDetail(result: RetrievalResult, detail: HTMLElement, redrawers: (() => void)[]): Promise<void> {
  detail.appendChild(createElement('div', { className: 'more-ts-caption', text: `${MODALITY_NAMES[result.modality]} ${result.id}` }));
  if (result.xray !== undefined) detail.appendChild(await imageCanvas(result.xray, DETAIL_SIDE, `X-ray ${result.id}`));
  if (result.ecg !== undefined) {
    const canvas = ecgCanvas(result.ecg, 'full', detail, redrawers);
    detail.appendChild(createElement('div', { className: 'more-ts-ecg-scroller' }, [canvas]));
    // The canvas reads theme colours from its parent, so it is drawn once attached.
    redrawers[redrawers.length - 1]();
  }
  if (result.reportExcerpt !== undefined) {
    detail.appendChild(createElement('p', { className: 'more-ts-report-full', text: result.reportExcerpt }));
  }
}
