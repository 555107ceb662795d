/**
 * Explanation view: the X-ray with a relevance heatmap, the ECG leads shaded by relevance over time and
 * the report tokens shaded by relevance. Choosing a class or hovering a report token re-weights the
 * X-ray and ECG views wherever the bundle has a map for that class or token.
 */
import type {
  EcgExplanation,
  ExplanationBundle,
  ReportExplanation,
  TokenRelevance,
  XrayExplanation,
} from '../../src/viz/mime';
import { createElement, createSelect, createSlider } from './dom';
import {
  decodeGrayscale,
  drawEcg,
  drawOverlay,
  drawScale,
  fitSize,
  heatmapCanvas,
  normalise,
  relevanceColour,
  themeColour,
} from './draw';

/** A rendered view. `redraw` repaints the canvases with the current theme and `dispose` stops its theme observer. */
export interface RenderedView {
  redraw(): void;
  dispose(): void;
}

const XRAY_DISPLAY_SIDE = 320;
const ECG_BASE_WIDTH = 720;
const OVERALL = '';

interface ViewState {
  /** Chosen class name, or OVERALL for the bundle's overall relevance. */
  className: string;
  /** Report token under the pointer or keyboard focus. */
  tokenIndex: number | null;
}

/** Relevance map chosen for the current state, with a caption saying which map it is. */
interface ChosenMap<T> {
  values: T;
  caption: string;
}

function chooseMap<T>(
  state: ViewState,
  overall: T,
  byClass: Record<string, T> | undefined,
  byToken: TokenRelevance<T>[] | undefined,
  tokens: string[] | undefined,
): ChosenMap<T> {
  if (state.tokenIndex !== null) {
    const entry = byToken?.find((item) => item.tokenIndex === state.tokenIndex);
    if (entry !== undefined) {
      const token = tokens?.[state.tokenIndex] ?? '';
      return { values: entry.values, caption: `relevance for the report token "${token.trim()}"` };
    }
  }
  if (state.className !== OVERALL && byClass?.[state.className] !== undefined) {
    return { values: byClass[state.className], caption: `relevance for the class ${state.className}` };
  }
  return { values: overall, caption: 'overall relevance' };
}

/** Builds the explanation view into `host` and resolves once every canvas is drawn. */
export async function renderExplanation(host: HTMLElement, bundle: ExplanationBundle): Promise<RenderedView> {
  const state: ViewState = { className: OVERALL, tokenIndex: null };
  const redrawers: (() => void)[] = [];
  const redraw = (): void => redrawers.forEach((draw) => draw());

  const root = createElement('div', { className: 'more-ts-explanation' });
  root.appendChild(renderHeader(bundle, state, redraw));

  const panels = createElement('div', { className: 'more-ts-panels' });
  root.appendChild(panels);
  const tokens = bundle.report?.tokens;
  if (bundle.xray !== undefined) {
    const panel = await renderXray(bundle.xray, state, tokens);
    panels.appendChild(panel.element);
    redrawers.push(panel.redraw);
  }
  if (bundle.report !== undefined) {
    const panel = renderReport(bundle.report, state, redraw);
    panels.appendChild(panel.element);
    redrawers.push(panel.redraw);
  }
  if (bundle.ecg !== undefined) {
    const panel = renderEcg(bundle.ecg, state, tokens);
    root.appendChild(panel.element);
    redrawers.push(panel.redraw);
  }
  host.appendChild(root);
  redraw();

  // Canvas colours come from the theme's CSS variables, so a theme switch needs a redraw.
  const observer = new MutationObserver(redraw);
  observer.observe(document.body, { attributes: true, attributeFilter: ['data-jp-theme-name'] });
  return { redraw, dispose: () => observer.disconnect() };
}

function renderHeader(bundle: ExplanationBundle, state: ViewState, redraw: () => void): HTMLElement {
  const header = createElement('div', { className: 'more-ts-header' });
  header.appendChild(createElement('span', { className: 'more-ts-title', text: bundle.title ?? 'MoRE explanation' }));
  if (bundle.similarity !== undefined) {
    header.appendChild(
      createElement('span', {
        className: 'more-ts-similarity',
        text: `similarity ${bundle.similarity.toFixed(4)}`,
        attributes: { 'data-similarity': String(bundle.similarity) },
      }),
    );
  }

  const classNames = bundle.classNames ?? [];
  const hasClassMaps = [bundle.xray, bundle.ecg, bundle.report].some((part) => part?.relevanceByClass !== undefined);
  if (classNames.length > 0 && hasClassMaps) {
    const options = [{ value: OVERALL, text: 'overall' }, ...classNames.map((name) => ({ value: name, text: name }))];
    const { wrapper } = createSelect('Class ', options, (value) => {
      state.className = value;
      redraw();
    });
    wrapper.classList.add('more-ts-class-control');
    header.appendChild(wrapper);
  }
  return header;
}

function createPanel(title: string): { element: HTMLElement; caption: HTMLElement } {
  const element = createElement('section', { className: 'more-ts-panel' });
  element.appendChild(createElement('h4', { className: 'more-ts-panel-title', text: title }));
  const caption = createElement('div', { className: 'more-ts-caption', attributes: { 'aria-live': 'polite' } });
  element.appendChild(caption);
  return { element, caption };
}

function createLegend(): { element: HTMLElement; update: (min: number, max: number) => void } {
  const scale = createElement('canvas', { className: 'more-ts-legend-scale', attributes: { width: '160', height: '10' } });
  drawScale(scale);
  const low = createElement('span', { className: 'more-ts-legend-value' });
  const high = createElement('span', { className: 'more-ts-legend-value' });
  const element = createElement('div', { className: 'more-ts-legend', attributes: { 'aria-label': 'Relevance colour scale' } }, [
    low,
    scale,
    high,
  ]);
  const update = (min: number, max: number): void => {
    low.textContent = min.toPrecision(3);
    high.textContent = max.toPrecision(3);
  };
  return { element, update };
}

async function renderXray(
  xray: XrayExplanation,
  state: ViewState,
  tokens: string[] | undefined,
): Promise<{ element: HTMLElement; redraw: () => void }> {
  const { element, caption } = createPanel('X-ray');
  const image = await decodeGrayscale(xray.image);
  const size = fitSize(xray.image.width, xray.image.height, XRAY_DISPLAY_SIDE);
  const canvas = createElement('canvas', {
    className: 'more-ts-xray-canvas',
    attributes: { width: String(size.width), height: String(size.height), role: 'img', 'aria-label': 'X-ray with relevance heatmap' },
  });
  const [cols, rows] =
    xray.relevanceLayout === 'patch' ? [xray.patchGrid.cols, xray.patchGrid.rows] : [xray.image.width, xray.image.height];

  let opacity = 0.5;
  let heatmap: HTMLCanvasElement | null = null;
  const paint = (): void => drawOverlay(canvas, image, heatmap, opacity);
  const { wrapper: opacityControl } = createSlider('Overlay opacity ', { min: 0, max: 100, step: 1, value: 50 }, (value) => {
    opacity = value / 100;
    paint();
  });
  opacityControl.classList.add('more-ts-opacity-control');
  const legend = createLegend();

  element.appendChild(canvas);
  element.appendChild(createElement('div', { className: 'more-ts-controls' }, [opacityControl, legend.element]));

  const redraw = (): void => {
    const chosen = chooseMap(state, xray.relevance, xray.relevanceByClass, xray.relevanceByToken, tokens);
    heatmap = heatmapCanvas(chosen.values, cols, rows);
    const { min, max } = normalise(chosen.values);
    legend.update(min, max);
    caption.textContent = `Showing ${chosen.caption}`;
    paint();
  };
  return { element, redraw };
}

function renderEcg(ecg: EcgExplanation, state: ViewState, tokens: string[] | undefined): { element: HTMLElement; redraw: () => void } {
  const { element, caption } = createPanel('ECG');
  const canvas = createElement('canvas', {
    className: 'more-ts-ecg-canvas',
    attributes: { role: 'img', 'aria-label': 'ECG leads shaded by relevance over time' },
  });
  const scroller = createElement('div', { className: 'more-ts-ecg-scroller' }, [canvas]);

  let lead = 'all';
  let zoom = 1;
  const leadOptions = [{ value: 'all', text: 'all leads' }, ...ecg.leads.map((name, i) => ({ value: String(i), text: name }))];
  const { wrapper: leadControl } = createSelect('Lead ', leadOptions, (value) => {
    lead = value;
    redraw();
  });
  leadControl.classList.add('more-ts-lead-control');
  const { wrapper: zoomControl } = createSlider('Zoom ', { min: 1, max: 8, step: 1, value: 1 }, (value) => {
    zoom = value;
    redraw();
  });
  zoomControl.classList.add('more-ts-zoom-control');
  const legend = createLegend();
  const samples = ecg.signals[0].length;
  const duration = createElement('span', {
    className: 'more-ts-caption',
    text: `${(samples / ecg.sampleRateHz).toFixed(2)} s at ${ecg.sampleRateHz} Hz`,
  });

  element.appendChild(createElement('div', { className: 'more-ts-controls' }, [leadControl, zoomControl, legend.element, duration]));
  element.appendChild(scroller);

  const redraw = (): void => {
    const chosen = chooseMap(state, ecg.relevance, ecg.relevanceByClass, ecg.relevanceByToken, tokens);
    const leadIndices = lead === 'all' ? ecg.leads.map((_, i) => i) : [Number(lead)];
    const { min, max } = normalise(chosen.values.flat());
    legend.update(min, max);
    caption.textContent = `Showing ${chosen.caption}`;
    drawEcg(canvas, ecg, leadIndices, chosen.values, {
      width: ECG_BASE_WIDTH * zoom,
      laneHeight: lead === 'all' ? 40 : 140,
      trace: themeColour(element, '--jp-content-font-color1', '#222'),
      grid: themeColour(element, '--jp-border-color2', '#ccc'),
      label: themeColour(element, '--jp-content-font-color2', '#555'),
      labelBackground: themeColour(element, '--jp-layout-color1', '#fff'),
      font: `11px ${themeColour(element, '--jp-ui-font-family', 'sans-serif')}`,
      shadingAlpha: 0.6,
      showLabels: true,
    });
  };
  return { element, redraw };
}

function renderReport(
  report: ReportExplanation,
  state: ViewState,
  redrawAll: () => void,
): { element: HTMLElement; redraw: () => void } {
  const { element, caption } = createPanel('Report');
  const text = createElement('p', { className: 'more-ts-report', attributes: { 'aria-label': 'Report tokens shaded by relevance' } });
  const spans = report.tokens.map((token, index) => {
    const span = createElement('span', { className: 'more-ts-token', text: token, attributes: { tabindex: '0' } });
    const enter = (): void => {
      state.tokenIndex = index;
      redrawAll();
    };
    const leave = (): void => {
      if (state.tokenIndex === index) {
        state.tokenIndex = null;
        redrawAll();
      }
    };
    span.addEventListener('mouseenter', enter);
    span.addEventListener('focus', enter);
    span.addEventListener('mouseleave', leave);
    span.addEventListener('blur', leave);
    text.appendChild(span);
    return span;
  });
  element.appendChild(text);

  const redraw = (): void => {
    const chosen = chooseMap(state, report.relevance, report.relevanceByClass, undefined, report.tokens);
    const { scaled } = normalise(chosen.values);
    caption.textContent = `Showing ${chosen.caption}`;
    spans.forEach((span, i) => {
      const [r, g, b] = relevanceColour(scaled[i]);
      span.style.backgroundColor = `rgba(${r}, ${g}, ${b}, ${(0.7 * scaled[i]).toFixed(3)})`;
      span.setAttribute('data-relevance', String(chosen.values[i]));
      span.title = `relevance ${chosen.values[i].toPrecision(3)}`;
      span.classList.toggle('more-ts-token-active', state.tokenIndex === i);
    });
  };
  return { element, redraw };
}
