/**
 * The extension in a real JupyterLab server and headless Chromium. Notebooks with saved outputs of both
 * MIME types render without a kernel and the views react to their controls. Hostile text stays text, and
 * a notebook saved by JupyterLab shows the same views after a server restart.
 *
 * Expected values come from reference/extension/make_fixtures.py (numpy locates the relevance peaks,
 * scikit-learn scores and ranks the retrieval results, Pillow gives the X-ray's mean brightness).
 */
import { strict as assert } from 'assert';
import { createHash } from 'crypto';
import { mkdirSync, readFileSync, rmSync } from 'fs';
import { join } from 'path';
import type { BrowserContext, Page } from 'playwright-core';

import { EXPLANATION_MIME_TYPE, RETRIEVAL_MIME_TYPE } from '../../src/viz/mime';
import {
  LabHome,
  LabServer,
  PageCanvas,
  PageElement,
  PageWindow,
  REPO_ROOT,
  checkPrerequisites,
  createLabHome,
  launchBrowser,
  readFixture,
  setTheme,
  startLab,
  writeNotebook,
} from './lab';

interface Cell {
  row: number;
  col: number;
}

interface Expected {
  explanation: {
    similarityText: string;
    xray: {
      displaySide: number;
      patchGrid: number;
      displayMean: number;
      overallMax: Cell;
      overallMin: Cell;
      classMax: Record<string, Cell>;
      tokenMax: Cell;
    };
    ecg: {
      leads: string[];
      overallMaxLead: number;
      overallMaxSegment: number;
      segments: number;
      classMaxSegment: Record<string, number>;
      tokenMaxSegment: number;
    };
    report: { tokens: string[]; hoveredToken: number; maxToken: number; classMaxToken: Record<string, number> };
  };
  retrieval: { ids: string[]; scores: number[]; tiedIds: string[]; queryText: string };
  hostileText: string[];
}

/** The retrieval fixture with its query replaced by the ECG or X-ray of one of its results. */
function withQuery(modality: 'ecg' | 'xray'): Record<string, unknown> {
  const bundle = readFixture<{ query: unknown; results: Record<string, unknown>[] }>('retrieval.json');
  const source = bundle.results.find((result) => result.modality === modality);
  if (source === undefined) throw new Error(`retrieval.json has no ${modality} result to use as the query`);
  bundle.query =
    modality === 'ecg'
      ? { modality, ecg: source.ecg, label: `query ${String(source.id)}` }
      : { modality, image: source.xray, label: `query ${String(source.id)}` };
  return bundle;
}

interface CanvasPixels {
  width: number;
  height: number;
  data: Buffer;
}

const ARTIFACTS = join(REPO_ROOT, 'artifacts', 'extension');
// One relevance value short of one per token, and its title tries to inject markup into the error text.
const INVALID_EXPLANATION = { version: 1, title: '<b>broken</b>', report: { tokens: ['No', ' effusion'], relevance: [0.5] } };
const EXPLANATION = '.more-ts-explanation-output';
const RETRIEVAL = '.more-ts-retrieval-output';
// Colours of relevance 1 and 0 on the scale in extension/src/draw.ts.
const HIGH_RGB = [180, 10, 30];
const LOW_RGB = [20, 30, 120];
// The ECG panel draws 40 px lanes at 720 px per zoom step (extension/src/explanation.ts).
const ECG_LANE = 40;
const ECG_WIDTH = 720;

async function readCanvas(page: Page, selector: string): Promise<CanvasPixels> {
  const result = await page.locator(selector).first().evaluate((node) => {
    const canvas = node as unknown as PageCanvas;
    const context = canvas.getContext('2d');
    if (context === null) throw new Error('canvas has no 2D context');
    const bytes = context.getImageData(0, 0, canvas.width, canvas.height).data;
    let text = '';
    for (let i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
    return { width: canvas.width, height: canvas.height, base64: btoa(text) };
  });
  return { width: result.width, height: result.height, data: Buffer.from(result.base64, 'base64') };
}

function pixelAt(pixels: CanvasPixels, x: number, y: number): number[] {
  const offset = 4 * (Math.round(y) * pixels.width + Math.round(x));
  return Array.from(pixels.data.subarray(offset, offset + 4));
}

/** Pixel at the centre of a patch of the X-ray display canvas. */
function patchCentre(pixels: CanvasPixels, cell: Cell, grid: number): number[] {
  return pixelAt(pixels, ((cell.col + 0.5) * pixels.width) / grid, ((cell.row + 0.5) * pixels.height) / grid);
}

function colourDistance(a: number[], b: number[]): number {
  return Math.hypot(a[0] - b[0], a[1] - b[1], a[2] - b[2]);
}

/**
 * Finds the most opaque relevance shading along the pixel row just below a lane's top, which the trace,
 * the lead label and the lane border never reach. The shading's alpha grows with relevance.
 */
function mostShadedColumn(pixels: CanvasPixels, laneTop: number): number {
  let best = 0;
  let bestAlpha = -1;
  for (let x = 0; x < pixels.width; x++) {
    const alpha = pixelAt(pixels, x, laneTop + 1)[3];
    if (alpha > bestAlpha) {
      bestAlpha = alpha;
      best = x;
    }
  }
  return best;
}

/**
 * Counts opaque dark and opaque light pixels right of the lead labels, skipping the lane border rows.
 * Only the trace is drawn opaque there, because the relevance shading stays below 60 % alpha.
 */
function traceShades(pixels: CanvasPixels): { dark: number; light: number } {
  const counts = { dark: 0, light: 0 };
  for (let y = 0; y < pixels.height; y++) {
    if (y % ECG_LANE === ECG_LANE - 1) continue;
    for (let x = 40; x < pixels.width; x++) {
      const [r, g, b, a] = pixelAt(pixels, x, y);
      if (a < 200) continue;
      if (Math.max(r, g, b) < 90) counts.dark += 1;
      if (Math.min(r, g, b) > 160) counts.light += 1;
    }
  }
  return counts;
}

function segmentCentreX(segment: number, segments: number, width: number): number {
  return ((segment + 0.5) / segments) * width;
}

/** Index of the report token with the most opaque relevance background. */
async function strongestToken(page: Page): Promise<number> {
  const alphas = await page.locator(`${EXPLANATION} .more-ts-token`).evaluateAll((nodes) =>
    nodes.map((node) => {
      const match = /rgba\(\d+, \d+, \d+, ([\d.]+)\)/.exec((node as unknown as PageElement).style.backgroundColor);
      return match === null ? 1 : Number(match[1]);
    }),
  );
  return alphas.indexOf(Math.max(...alphas));
}

async function setSlider(page: Page, selector: string, value: number): Promise<void> {
  await page.locator(selector).first().fill(String(value));
}

async function openNotebook(page: Page, lab: LabServer, workspace: string, name: string): Promise<void> {
  // A fresh workspace name per visit, so JupyterLab restores no other notebook next to this one.
  await page.goto(lab.url(`/lab/workspaces/${workspace}/tree/${name}?reset`));
  await page.waitForSelector('.jp-Notebook', { timeout: 90_000 });
  // Without a kernel spec JupyterLab opens a kernel selection dialog once the session starts. "No Kernel" closes it.
  const noKernel = page.locator('.jp-Dialog button', { hasText: 'No Kernel' });
  try {
    await noKernel.waitFor({ state: 'visible', timeout: 20_000 });
    await noKernel.click();
  } catch {
    // The dialog did not appear, so nothing blocks the page.
  }
  try {
    await page.locator('.jp-Dialog').waitFor({ state: 'detached', timeout: 10_000 });
  } catch (error) {
    await page.screenshot({ path: join(ARTIFACTS, 'dialog-left-open.png') });
    throw error;
  }
}

/** Text and pixels of both views, for comparing a notebook before and after a server restart. */
async function viewSignature(page: Page): Promise<Record<string, string>> {
  const xray = await readCanvas(page, `${EXPLANATION} .more-ts-xray-canvas`);
  const ecg = await readCanvas(page, `${EXPLANATION} .more-ts-ecg-canvas`);
  const thumbnail = await readCanvas(page, `${RETRIEVAL} .more-ts-thumbnail`);
  const hash = (pixels: CanvasPixels): string => createHash('sha256').update(pixels.data).digest('hex');
  return {
    explanationText: await page.locator(EXPLANATION).innerText(),
    retrievalText: await page.locator(RETRIEVAL).innerText(),
    xray: hash(xray),
    ecg: hash(ecg),
    thumbnail: hash(thumbnail),
  };
}

describe('JupyterLab extension in Chromium', function () {
  this.timeout(300_000);
  const expected = readFixture<Expected>('expected.json');
  let home: LabHome;
  let lab: LabServer;
  let context: BrowserContext;
  let blocked: string[] = [];
  let page: Page;
  const dialogs: string[] = [];
  const pageErrors: string[] = [];

  /** Closes the current page without its unload prompt and opens `name` in a new page. */
  async function openPage(workspace: string, name: string): Promise<void> {
    await page?.close({ runBeforeUnload: false });
    page = await context.newPage();
    page.on('dialog', (dialog) => {
      dialogs.push(`${dialog.type()}: ${dialog.message()}`);
      void dialog.dismiss();
    });
    page.on('pageerror', (error) => pageErrors.push(error.message));
    await openNotebook(page, lab, workspace, name);
    await page.locator(`${RETRIEVAL} .more-ts-result`).first().waitFor({ timeout: 30_000 });
  }

  /** Puts the explanation controls back to their initial state. */
  async function resetExplanation(): Promise<void> {
    await page.locator(`${EXPLANATION} .more-ts-title`).hover();
    await page.locator(`${EXPLANATION} .more-ts-class-control select`).selectOption('');
    await page.locator(`${EXPLANATION} .more-ts-lead-control select`).selectOption('all');
    await setSlider(page, `${EXPLANATION} .more-ts-zoom-control input`, 1);
    await setSlider(page, `${EXPLANATION} .more-ts-opacity-control input`, 50);
  }

  before(async () => {
    checkPrerequisites();
    mkdirSync(ARTIFACTS, { recursive: true });
    home = createLabHome();
    setTheme(home, 'JupyterLab Light');
    writeNotebook(join(home.root, 'views.ipynb'), [
      { mimeType: EXPLANATION_MIME_TYPE, bundle: readFixture('explanation.json'), source: 'explain(sample)' },
      { mimeType: RETRIEVAL_MIME_TYPE, bundle: readFixture('retrieval.json'), source: 'retrieve(query, 6)' },
    ]);
    writeNotebook(join(home.root, 'hostile.ipynb'), [
      { mimeType: EXPLANATION_MIME_TYPE, bundle: readFixture('hostile-explanation.json'), source: 'explain(hostile)' },
      { mimeType: RETRIEVAL_MIME_TYPE, bundle: readFixture('hostile-retrieval.json'), source: 'retrieve(hostile, 6)' },
      { mimeType: EXPLANATION_MIME_TYPE, bundle: INVALID_EXPLANATION, source: 'explain(broken)' },
      { mimeType: RETRIEVAL_MIME_TYPE, bundle: withQuery('ecg'), source: 'retrieve(ecg, 6)' },
      { mimeType: RETRIEVAL_MIME_TYPE, bundle: withQuery('xray'), source: 'retrieve(xray, 6)' },
    ]);
    lab = await startLab(home);
    ({ context, blocked } = await launchBrowser(home));
    await openPage('views', 'views.ipynb');
  });

  beforeEach(async () => {
    if (await page.locator(`${EXPLANATION} .more-ts-class-control`).count()) await resetExplanation();
  });

  after(async () => {
    await context?.close();
    await lab?.stop();
    if (home !== undefined) rmSync(home.base, { recursive: true, force: true });
  });

  it('draws the X-ray heatmap canvas', async () => {
    const pixels = await readCanvas(page, `${EXPLANATION} .more-ts-xray-canvas`);
    assert.equal(pixels.width, expected.explanation.xray.displaySide);
    let opaque = 0;
    const colours = new Set<number>();
    for (let i = 0; i < pixels.data.length; i += 4) {
      if (pixels.data[i + 3] === 255) opaque += 1;
      colours.add(pixels.data.readUInt32BE(i));
    }
    assert.equal(opaque, pixels.width * pixels.height, 'every pixel of the X-ray canvas is painted');
    assert.ok(colours.size > 1000, `the canvas shows an image, not a flat fill (${colours.size} colours)`);
  });

  it('shows the similarity score', async () => {
    const text = await page.locator(`${EXPLANATION} .more-ts-similarity`).innerText();
    assert.equal(text, `similarity ${expected.explanation.similarityText}`);
  });

  it('puts the heatmap peak on the oracle patch', async () => {
    const grid = expected.explanation.xray.patchGrid;
    await setSlider(page, `${EXPLANATION} .more-ts-opacity-control input`, 100);
    const pixels = await readCanvas(page, `${EXPLANATION} .more-ts-xray-canvas`);
    const peak = patchCentre(pixels, expected.explanation.xray.overallMax, grid);
    const low = patchCentre(pixels, expected.explanation.xray.overallMin, grid);
    assert.ok(colourDistance(peak, HIGH_RGB) < 20, `peak patch colour ${peak} should be near ${HIGH_RGB}`);
    assert.ok(colourDistance(low, LOW_RGB) < 40, `lowest patch colour ${low} should be near ${LOW_RGB}`);
  });

  it('slider changes the overlay opacity', async () => {
    const selector = `${EXPLANATION} .more-ts-opacity-control input`;
    await setSlider(page, selector, 0);
    const bare = await readCanvas(page, `${EXPLANATION} .more-ts-xray-canvas`);
    await setSlider(page, selector, 50);
    const half = await readCanvas(page, `${EXPLANATION} .more-ts-xray-canvas`);
    await setSlider(page, selector, 100);
    const full = await readCanvas(page, `${EXPLANATION} .more-ts-xray-canvas`);

    let grayPixels = 0;
    let sum = 0;
    for (let i = 0; i < bare.data.length; i += 4) {
      if (bare.data[i] === bare.data[i + 1] && bare.data[i + 1] === bare.data[i + 2]) grayPixels += 1;
      sum += bare.data[i];
    }
    assert.equal(grayPixels, bare.width * bare.height, 'opacity 0 shows the grayscale X-ray only');
    const mean = sum / (bare.width * bare.height);
    assert.ok(Math.abs(mean - expected.explanation.xray.displayMean) < 3, `mean ${mean} vs Pillow ${expected.explanation.xray.displayMean}`);
    assert.notDeepEqual(half.data, bare.data, 'opacity 50 differs from opacity 0');
    assert.notDeepEqual(full.data, half.data, 'opacity 100 differs from opacity 50');
  });

  it('class choice re-weights X-ray and ECG', async () => {
    const grid = expected.explanation.xray.patchGrid;
    await setSlider(page, `${EXPLANATION} .more-ts-opacity-control input`, 100);
    for (const [name, cell] of Object.entries(expected.explanation.xray.classMax)) {
      await page.locator(`${EXPLANATION} .more-ts-class-control select`).selectOption(name);
      const xray = await readCanvas(page, `${EXPLANATION} .more-ts-xray-canvas`);
      const peak = patchCentre(xray, cell, grid);
      assert.ok(colourDistance(peak, HIGH_RGB) < 20, `${name}: patch ${JSON.stringify(cell)} colour ${peak}`);

      const ecg = await readCanvas(page, `${EXPLANATION} .more-ts-ecg-canvas`);
      const column = mostShadedColumn(ecg, 0);
      const target = segmentCentreX(expected.explanation.ecg.classMaxSegment[name], expected.explanation.ecg.segments, ECG_WIDTH);
      assert.ok(Math.abs(column - target) <= ECG_WIDTH / expected.explanation.ecg.segments, `${name}: ECG peak x ${column} vs ${target}`);
      const caption = await page.locator(`${EXPLANATION} .more-ts-panel .more-ts-caption`).first().innerText();
      assert.ok(caption.includes(name), `caption "${caption}" names ${name}`);
      assert.equal(await strongestToken(page), expected.explanation.report.classMaxToken[name], `${name}: strongest report token`);
    }
  });

  it('token hover re-weights X-ray and ECG', async () => {
    const grid = expected.explanation.xray.patchGrid;
    const { hoveredToken } = expected.explanation.report;
    await setSlider(page, `${EXPLANATION} .more-ts-opacity-control input`, 100);
    await page.locator(`${EXPLANATION} .more-ts-token`).nth(hoveredToken).hover();
    const xray = await readCanvas(page, `${EXPLANATION} .more-ts-xray-canvas`);
    assert.ok(colourDistance(patchCentre(xray, expected.explanation.xray.tokenMax, grid), HIGH_RGB) < 20, 'token map peak');
    const ecg = await readCanvas(page, `${EXPLANATION} .more-ts-ecg-canvas`);
    const target = segmentCentreX(expected.explanation.ecg.tokenMaxSegment, expected.explanation.ecg.segments, ECG_WIDTH);
    assert.ok(Math.abs(mostShadedColumn(ecg, 0) - target) <= ECG_WIDTH / expected.explanation.ecg.segments, 'token ECG peak');

    await page.locator(`${EXPLANATION} .more-ts-title`).hover();
    const restored = await readCanvas(page, `${EXPLANATION} .more-ts-xray-canvas`);
    assert.ok(colourDistance(patchCentre(restored, expected.explanation.xray.overallMax, grid), HIGH_RGB) < 20, 'overall map is back');
  });

  it('shades report tokens by relevance', async () => {
    const tokens = page.locator(`${EXPLANATION} .more-ts-token`);
    const texts = await tokens.allTextContents();
    assert.deepEqual(texts, expected.explanation.report.tokens);
    assert.equal(await strongestToken(page), expected.explanation.report.maxToken);
  });

  it('ECG peak lead, lead selector and zoom', async () => {
    const { overallMaxLead, overallMaxSegment, segments, leads } = expected.explanation.ecg;
    const all = await readCanvas(page, `${EXPLANATION} .more-ts-ecg-canvas`);
    assert.equal(all.height, ECG_LANE * leads.length);
    const laneAlphas = leads.map((_, lane) => pixelAt(all, mostShadedColumn(all, lane * ECG_LANE), lane * ECG_LANE + 1)[3]);
    assert.equal(laneAlphas.indexOf(Math.max(...laneAlphas)), overallMaxLead, `lane shading maxima ${laneAlphas}`);
    const column = mostShadedColumn(all, overallMaxLead * ECG_LANE);
    assert.ok(Math.abs(column - segmentCentreX(overallMaxSegment, segments, ECG_WIDTH)) <= ECG_WIDTH / segments);

    await page.locator(`${EXPLANATION} .more-ts-lead-control select`).selectOption({ label: leads[overallMaxLead] });
    const single = await readCanvas(page, `${EXPLANATION} .more-ts-ecg-canvas`);
    assert.ok(single.height < all.height, 'one lead takes a single lane');
    await setSlider(page, `${EXPLANATION} .more-ts-zoom-control input`, 4);
    const zoomed = await readCanvas(page, `${EXPLANATION} .more-ts-ecg-canvas`);
    assert.equal(zoomed.width, 4 * ECG_WIDTH);
    const scrollable = await page
      .locator(`${EXPLANATION} .more-ts-ecg-scroller`)
      .evaluate((node) => node.scrollWidth > node.clientWidth);
    assert.ok(scrollable, 'the zoomed ECG scrolls sideways');
  });

  it('lists k results in score order', async () => {
    const items = page.locator(`${RETRIEVAL} .more-ts-result`);
    const ids = await items.evaluateAll((nodes) => nodes.map((node) => node.getAttribute('data-id')));
    assert.deepEqual(ids, expected.retrieval.ids);
    const scores = await items.evaluateAll((nodes) => nodes.map((node) => Number(node.getAttribute('data-score'))));
    assert.deepEqual(scores, expected.retrieval.scores);
    const ranks = await items.locator('.more-ts-rank').allTextContents();
    assert.deepEqual(ranks, expected.retrieval.ids.map((_, i) => `#${i + 1}`));
    const query = await page.locator(`${RETRIEVAL} .more-ts-query-text`).innerText();
    assert.equal(query, expected.retrieval.queryText);
  });

  it('shows tied results with equal scores', async () => {
    assert.equal(expected.retrieval.tiedIds.length, 2, 'the fixture has one tie in the top k');
    const texts: string[] = [];
    for (const id of expected.retrieval.tiedIds) {
      const item = page.locator(`${RETRIEVAL} .more-ts-result[data-id="${id}"]`);
      texts.push(await item.locator('.more-ts-score').innerText());
      assert.equal(await item.locator('.more-ts-tie').count(), 1, `${id} carries a tie badge`);
    }
    assert.equal(texts[0], texts[1]);
    assert.equal(await page.locator(`${RETRIEVAL} .more-ts-tie`).count(), 2, 'only the tied pair has tie badges');
  });

  it('expands results by keyboard and click', async () => {
    const summaries = page.locator(`${RETRIEVAL} .more-ts-result-summary[role="button"]`);
    assert.equal(await summaries.count(), expected.retrieval.ids.length);
    const first = summaries.first();
    await first.focus();
    await page.keyboard.press('Enter');
    assert.equal(await first.getAttribute('aria-expanded'), 'true');
    const detailId = await first.getAttribute('aria-controls');
    assert.ok(await page.locator(`[id="${detailId}"]`).isVisible(), 'Enter shows the detail');
    await page.keyboard.press('Tab');
    const focused = await page.evaluate(() => {
      const active = (globalThis as unknown as PageWindow).document.activeElement;
      return active?.parentElement?.getAttribute('data-id');
    });
    assert.equal(focused, expected.retrieval.ids[1], 'Tab moves to the next result');
    await first.focus();
    await page.keyboard.press('Enter');
    assert.equal(await first.getAttribute('aria-expanded'), 'false');

    const xrayResult = page.locator(`${RETRIEVAL} .more-ts-result[data-id^="nih/"] .more-ts-result-summary`).first();
    await xrayResult.click();
    assert.equal(await xrayResult.getAttribute('aria-expanded'), 'true');
    const detail = await readCanvas(page, `${RETRIEVAL} .more-ts-result-expanded .more-ts-result-detail canvas`);
    assert.ok(detail.width > 200, 'the expanded X-ray is larger than its thumbnail');
    await xrayResult.click();
  });

  it('screenshots both views in light and dark', async () => {
    await page.locator(EXPLANATION).screenshot({ path: join(ARTIFACTS, 'explanation-light.png') });
    await page.locator(RETRIEVAL).screenshot({ path: join(ARTIFACTS, 'retrieval-light.png') });
    const lightText = await page.locator(EXPLANATION).evaluate((node) => (globalThis as unknown as PageWindow).getComputedStyle(node).color);

    setTheme(home, 'JupyterLab Dark');
    await openPage('views-dark', 'views.ipynb');
    await page.waitForFunction(
      () => (globalThis as unknown as PageWindow).document.body.getAttribute('data-jp-theme-light') === 'false',
      null,
      { timeout: 30_000 },
    );
    await page.locator(`${RETRIEVAL} .more-ts-result`).first().waitFor();
    const darkText = await page.locator(EXPLANATION).evaluate((node) => (globalThis as unknown as PageWindow).getComputedStyle(node).color);
    assert.notEqual(darkText, lightText, 'the text colour follows the theme');
    await page.locator(EXPLANATION).screenshot({ path: join(ARTIFACTS, 'explanation-dark.png') });
    await page.locator(RETRIEVAL).screenshot({ path: join(ARTIFACTS, 'retrieval-dark.png') });
    setTheme(home, 'JupyterLab Light');
  });

  it('redraws canvases on a theme switch', async () => {
    const selector = `${EXPLANATION} .more-ts-ecg-canvas`;
    const dark = traceShades(await readCanvas(page, selector));
    assert.ok(dark.light > 500, `the dark theme draws light traces (${JSON.stringify(dark)})`);
    await page.evaluate(() =>
      (globalThis as unknown as PageWindow).jupyterapp.commands.execute('apputils:change-theme', { theme: 'JupyterLab Light' }),
    );
    await page.waitForFunction(
      () => (globalThis as unknown as PageWindow).document.body.getAttribute('data-jp-theme-light') === 'true',
      null,
      { timeout: 30_000 },
    );
    const light = traceShades(await readCanvas(page, selector));
    assert.ok(light.dark > 500, `the light theme draws dark traces (${JSON.stringify(light)})`);
    assert.ok(light.light < 50, `no light trace is left (${JSON.stringify(light)})`);
  });

  it('renders hostile report text as text', async () => {
    const before = dialogs.length;
    await openPage('hostile', 'hostile.ipynb');
    for (const summary of await page.locator(RETRIEVAL).first().locator('.more-ts-result-summary').all()) await summary.click();
    await page.waitForTimeout(1000);

    const valid = page.locator(EXPLANATION).first();
    const report = await valid.locator('.more-ts-report').textContent();
    for (const text of expected.hostileText) assert.ok(report?.includes(text), `report shows ${text} literally`);
    const retrieval = (await page.locator(RETRIEVAL).first().textContent()) ?? '';
    assert.ok(retrieval.includes('<script>alert(3)</script> query'), 'query text is literal');
    assert.ok(retrieval.includes('<img src=x onerror=alert(4)>.png'), 'labels are literal');
    assert.ok(retrieval.includes('<script>alert(7)</script><img src=x onerror=alert(8)>'), 'excerpts are literal');
    const title = await valid.locator('.more-ts-title').textContent();
    assert.equal(title, '<img src=x onerror=alert(5)> title');
    const injected = await page.locator('.more-ts-output img, .more-ts-output script, .more-ts-output b').count();
    assert.equal(injected, 0, 'no element was created from bundle text');
    assert.deepEqual(dialogs.slice(before), [], 'no dialog opened');
    await valid.screenshot({ path: join(ARTIFACTS, 'hostile-explanation.png') });
    await page.locator(RETRIEVAL).first().screenshot({ path: join(ARTIFACTS, 'retrieval-expanded.png') });
  });

  it('shows an invalid bundle as an error', async () => {
    const error = await page.locator(`${EXPLANATION} .more-ts-error`).textContent();
    assert.equal(
      error,
      `Cannot render ${EXPLANATION_MIME_TYPE}: invalid explanation bundle: report.relevance must have 2 values, got 1`,
    );
  });

  it('draws ECG and X-ray queries', async () => {
    for (const [index, label] of [[1, 'query ptbxl/'], [2, 'query nih/']] as const) {
      const query = page.locator(RETRIEVAL).nth(index).locator('.more-ts-query');
      assert.ok((await query.locator('.more-ts-label').innerText()).startsWith(label));
      const pixels = await readCanvas(page, `${RETRIEVAL} >> nth=${index} >> .more-ts-query canvas`);
      let painted = 0;
      for (let i = 3; i < pixels.data.length; i += 4) if (pixels.data[i] > 0) painted += 1;
      assert.ok(painted > 100, `query canvas ${index} has ${painted} painted pixels`);
    }
  });

  it('reopens a saved notebook after restart', async () => {
    await openPage('save', 'views.ipynb');
    const before = await viewSignature(page);
    // JupyterLab itself writes the file, so the test covers its serialisation of both bundles.
    await page.locator('.jp-Notebook').first().click({ position: { x: 5, y: 5 } });
    await page.keyboard.press('Control+s');
    await page.waitForFunction(
      () => (globalThis as unknown as PageWindow).document.querySelector('.jp-mod-current.jp-mod-dirty') === null,
      null,
      { timeout: 30_000 },
    );
    const saved = JSON.parse(readFileSync(join(home.root, 'views.ipynb'), 'utf8')) as {
      cells: { outputs?: { data: Record<string, unknown> }[] }[];
    };
    const savedTypes = saved.cells.flatMap((cell) => (cell.outputs ?? []).flatMap((output) => Object.keys(output.data)));
    assert.ok(savedTypes.includes(EXPLANATION_MIME_TYPE), 'the explanation bundle was saved');
    assert.ok(savedTypes.includes(RETRIEVAL_MIME_TYPE), 'the retrieval bundle was saved');

    await page.close({ runBeforeUnload: false });
    await lab.stop();
    lab = await startLab(home);
    await openPage('reopen', 'views.ipynb');
    const after = await viewSignature(page);
    assert.deepEqual(after, before);
    const kernels = await page.evaluate(async (url) => (await (await fetch(url)).json()) as unknown[], lab.url('/api/kernels'));
    assert.deepEqual(kernels, [], 'no kernel ran');
  });

  it('contacted only loopback and threw nothing', () => {
    assert.deepEqual(blocked, []);
    assert.deepEqual(pageErrors, []);
  });
});
