/**
 * MIME bundles that carry MoRE attention explanations and retrieval results from a kernel (or a saved
 * notebook) to the JupyterLab extension under `extension/`.
 *
 * The kernel emits one bundle per display as JSON under one of the two vendor MIME types below. The
 * extension renders from the bundle alone, so a saved notebook reopened without a kernel draws the same
 * views. The version in the MIME type changes whenever a field changes meaning or a required field is
 * added. Optional fields may be added within a version.
 *
 * This file has no DOM or TensorFlow.js dependency because the extension compiles it too.
 */

/** MIME type of an attention explanation: {@link ExplanationBundle}. */
export const EXPLANATION_MIME_TYPE = 'application/vnd.more-ts.explanation.v1+json';

/** MIME type of a ranked retrieval result list: {@link RetrievalBundle}. */
export const RETRIEVAL_MIME_TYPE = 'application/vnd.more-ts.retrieval.v1+json';

/** Bundle format version written in both bundles' `version` field. */
export const BUNDLE_VERSION = 1;

/** The three MoRE modalities. A free-text query counts as `report`. */
export type Modality = 'xray' | 'ecg' | 'report';

export const MODALITIES: readonly Modality[] = ['xray', 'ecg', 'report'];

/**
 * A grayscale image, either as a base64 PNG (no `data:` prefix) or as raw 8-bit pixels in row-major order.
 * Both forms state their size so a view can lay out before the PNG decodes.
 */
export type GrayscaleImage =
  | { encoding: 'png'; width: number; height: number; data: string }
  | { encoding: 'raw'; width: number; height: number; data: number[] };

/**
 * A relevance map tied to one report token, for re-weighting a view while the reader hovers that token.
 * `tokenIndex` indexes {@link ReportExplanation.tokens}.
 */
export interface TokenRelevance<T> {
  tokenIndex: number;
  values: T;
}

/**
 * The X-ray part of an explanation.
 *
 * Relevance values are finite numbers where larger means more relevant; the view scales each map linearly
 * from its minimum to its maximum. With `relevanceLayout` `patch` every map has `patchGrid.rows *
 * patchGrid.cols` values in row-major order (one per ViT patch), and with `pixel` it has `image.width *
 * image.height` values.
 */
export interface XrayExplanation {
  image: GrayscaleImage;
  /** ViT patch grid laid over the image, e.g. 14 x 14 for ViT-B/16 at 224 x 224. */
  patchGrid: { rows: number; cols: number };
  relevanceLayout: 'patch' | 'pixel';
  /** Relevance towards the bundle's overall target (the similarity or the predicted class). */
  relevance: number[];
  /** Relevance towards each class, keyed by a name from {@link ExplanationBundle.classNames}. */
  relevanceByClass?: Record<string, number[]>;
  /** Relevance towards single report tokens, shown while the reader hovers that token. */
  relevanceByToken?: TokenRelevance<number[]>[];
}

/**
 * The ECG part of an explanation.
 *
 * A relevance map is an array of rows: one row shared by all leads, or one row per lead in `leads` order.
 * Each row has R values, where 1 <= R <= T and T is the number of samples. Value i covers samples floor(i*T/R) up to
 * floor((i+1)*T/R), so a map may be per sample or per ECG token. Values follow the X-ray rules.
 */
export interface EcgExplanation {
  /** Lead names in row order, e.g. I, II, III, aVR, aVL, aVF, V1..V6. */
  leads: string[];
  sampleRateHz: number;
  /** Signals as [lead][sample], in the units the caller chose (the preprocessed ECG is scaled to [-1, 1]). */
  signals: number[][];
  relevance: number[][];
  relevanceByClass?: Record<string, number[][]>;
  relevanceByToken?: TokenRelevance<number[][]>[];
}

/** The report part of an explanation: display strings of the tokens, special tokens excluded. */
export interface ReportExplanation {
  /** Display text of each token, including its leading space where the tokenizer encodes one. */
  tokens: string[];
  /** One relevance value per token. */
  relevance: number[];
  relevanceByClass?: Record<string, number[]>;
}

/** An attention explanation of one sample over up to three modalities (at least one is present). */
export interface ExplanationBundle {
  version: typeof BUNDLE_VERSION;
  title?: string;
  /** Cosine similarity between the explained embeddings, shown next to the title. */
  similarity?: number;
  /** Class names that the `relevanceByClass` maps are keyed by, in display order. */
  classNames?: string[];
  xray?: XrayExplanation;
  ecg?: EcgExplanation;
  report?: ReportExplanation;
}

/** A short ECG for a query or a result thumbnail, as [lead][sample]. */
export interface EcgSignal {
  leads: string[];
  sampleRateHz: number;
  signals: number[][];
}

/** Search query: a free text, an X-ray or an ECG. `label` is a caption such as a file name. */
export type RetrievalQuery =
  | { modality: 'report'; text: string; label?: string }
  | { modality: 'xray'; image: GrayscaleImage; label?: string }
  | { modality: 'ecg'; ecg: EcgSignal; label?: string };

/**
 * One ranked result. The field named by `modality` is required (`xray`, `ecg` or `reportExcerpt`); the
 * others may be added as context, e.g. the report excerpt of a retrieved X-ray.
 */
export interface RetrievalResult {
  /** Record identifier in the searched collection. */
  id: string;
  /** 1-based position. The results carry the ranks 1..k in order. */
  rank: number;
  /** Similarity score, never larger than the score of the previous rank. */
  score: number;
  modality: Modality;
  label?: string;
  /** X-ray thumbnail. */
  xray?: GrayscaleImage;
  /** Small ECG plot. */
  ecg?: EcgSignal;
  reportExcerpt?: string;
}

/** A ranked result list of one query. */
export interface RetrievalBundle {
  version: typeof BUNDLE_VERSION;
  title?: string;
  query: RetrievalQuery;
  /** Name of the score, e.g. "cosine similarity". */
  metric?: string;
  /** Rule that ordered equal scores, e.g. "equal scores keep the collection order". Shown under the list. */
  tieRule: string;
  results: RetrievalResult[];
}

/** Error thrown by the validators. `field` is the dotted path of the first invalid field. */
export class BundleValidationError extends Error {
  constructor(
    readonly bundle: 'explanation' | 'retrieval',
    readonly field: string,
    detail: string,
  ) {
    super(`invalid ${bundle} bundle: ${field} ${detail}`);
    this.name = 'BundleValidationError';
  }
}

type Fail = (field: string, detail: string) => never;

function failFor(bundle: 'explanation' | 'retrieval'): Fail {
  return (field, detail) => {
    throw new BundleValidationError(bundle, field, detail);
  };
}

function describeValue(value: unknown): string {
  if (Array.isArray(value)) return `an array of length ${value.length}`;
  if (value === null) return 'null';
  if (typeof value === 'string') return `the string ${JSON.stringify(value.slice(0, 40))}`;
  return `${typeof value} ${String(value).slice(0, 40)}`;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function requireRecord(value: unknown, field: string, fail: Fail): Record<string, unknown> {
  if (!isRecord(value)) fail(field, `must be an object, got ${describeValue(value)}`);
  return value as Record<string, unknown>;
}

function requireString(value: unknown, field: string, fail: Fail): string {
  if (typeof value !== 'string') fail(field, `must be a string, got ${describeValue(value)}`);
  return value as string;
}

function optionalString(value: unknown, field: string, fail: Fail): void {
  if (value !== undefined) requireString(value, field, fail);
}

function requireFinite(value: unknown, field: string, fail: Fail): number {
  if (typeof value !== 'number' || !Number.isFinite(value)) fail(field, `must be a finite number, got ${describeValue(value)}`);
  return value as number;
}

function requirePositiveInteger(value: unknown, field: string, fail: Fail): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1) {
    fail(field, `must be a positive integer, got ${describeValue(value)}`);
  }
  return value as number;
}

function requireNumbers(value: unknown, field: string, fail: Fail, length?: number): number[] {
  if (!Array.isArray(value)) fail(field, `must be an array of numbers, got ${describeValue(value)}`);
  const values = value as unknown[];
  if (length !== undefined && values.length !== length) {
    fail(field, `must have ${length} values, got ${values.length}`);
  }
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (typeof v !== 'number' || !Number.isFinite(v)) fail(`${field}[${i}]`, `must be a finite number, got ${describeValue(v)}`);
  }
  return values as number[];
}

const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;
// Every PNG starts with the 8-byte signature 89 50 4E 47 0D 0A 1A 0A, which is this text in base64.
const PNG_SIGNATURE_BASE64 = 'iVBORw0KGgo';

function validateImage(value: unknown, field: string, fail: Fail): GrayscaleImage {
  const image = requireRecord(value, field, fail);
  const width = requirePositiveInteger(image.width, `${field}.width`, fail);
  const height = requirePositiveInteger(image.height, `${field}.height`, fail);
  if (image.encoding === 'png') {
    const data = requireString(image.data, `${field}.data`, fail);
    if (!BASE64.test(data) || data.length % 4 !== 0) fail(`${field}.data`, 'must be base64 text without a data: prefix');
    if (!data.startsWith(PNG_SIGNATURE_BASE64)) fail(`${field}.data`, 'is not a PNG (the PNG signature is missing)');
  } else if (image.encoding === 'raw') {
    const data = requireNumbers(image.data, `${field}.data`, fail, width * height);
    const bad = data.findIndex((v) => !Number.isInteger(v) || v < 0 || v > 255);
    if (bad >= 0) fail(`${field}.data[${bad}]`, `must be an integer in 0..255, got ${data[bad]}`);
  } else {
    fail(`${field}.encoding`, `must be "png" or "raw", got ${describeValue(image.encoding)}`);
  }
  return image as unknown as GrayscaleImage;
}

function validateClassKeys(value: unknown, field: string, classNames: string[] | undefined, fail: Fail): Record<string, unknown> {
  const byClass = requireRecord(value, field, fail);
  for (const name of Object.keys(byClass)) {
    if (classNames === undefined || !classNames.includes(name)) {
      fail(`${field}.${name}`, `is keyed by a class missing from classNames (${JSON.stringify(classNames ?? [])})`);
    }
  }
  return byClass;
}

function validateTokenMaps(
  value: unknown,
  field: string,
  tokenCount: number | undefined,
  fail: Fail,
  checkValues: (values: unknown, valuesField: string) => void,
): void {
  if (!Array.isArray(value)) fail(field, `must be an array, got ${describeValue(value)}`);
  if (tokenCount === undefined) fail(field, 'needs a report part whose tokens it indexes');
  (value as unknown[]).forEach((entry, i) => {
    const item = requireRecord(entry, `${field}[${i}]`, fail);
    const index = item.tokenIndex;
    if (typeof index !== 'number' || !Number.isInteger(index) || index < 0 || index >= (tokenCount as number)) {
      fail(`${field}[${i}].tokenIndex`, `must be an integer in 0..${(tokenCount as number) - 1}, got ${describeValue(index)}`);
    }
    checkValues(item.values, `${field}[${i}].values`);
  });
}

function validateXray(value: unknown, classNames: string[] | undefined, tokenCount: number | undefined, fail: Fail): void {
  const xray = requireRecord(value, 'xray', fail);
  const image = validateImage(xray.image, 'xray.image', fail);
  const grid = requireRecord(xray.patchGrid, 'xray.patchGrid', fail);
  const rows = requirePositiveInteger(grid.rows, 'xray.patchGrid.rows', fail);
  const cols = requirePositiveInteger(grid.cols, 'xray.patchGrid.cols', fail);
  let length: number;
  if (xray.relevanceLayout === 'patch') length = rows * cols;
  else if (xray.relevanceLayout === 'pixel') length = image.width * image.height;
  else fail('xray.relevanceLayout', `must be "patch" or "pixel", got ${describeValue(xray.relevanceLayout)}`);

  const checkMap = (values: unknown, field: string): void => {
    requireNumbers(values, field, fail, length);
  };
  checkMap(xray.relevance, 'xray.relevance');
  if (xray.relevanceByClass !== undefined) {
    const byClass = validateClassKeys(xray.relevanceByClass, 'xray.relevanceByClass', classNames, fail);
    for (const [name, values] of Object.entries(byClass)) checkMap(values, `xray.relevanceByClass.${name}`);
  }
  if (xray.relevanceByToken !== undefined) {
    validateTokenMaps(xray.relevanceByToken, 'xray.relevanceByToken', tokenCount, fail, checkMap);
  }
}

function validateSignals(value: unknown, field: string, leadCount: number, fail: Fail): number {
  if (!Array.isArray(value)) fail(field, `must be an array of ${leadCount} arrays, got ${describeValue(value)}`);
  const rows = value as unknown[];
  if (rows.length !== leadCount) fail(field, `must have one row per lead (${leadCount}), got ${rows.length}`);
  const samples = Array.isArray(rows[0]) ? rows[0].length : 0;
  if (samples < 1) fail(`${field}[0]`, 'must be a non-empty array of numbers');
  rows.forEach((row, i) => requireNumbers(row, `${field}[${i}]`, fail, samples));
  return samples;
}

function validateLeads(value: unknown, field: string, fail: Fail): string[] {
  if (!Array.isArray(value) || value.length === 0) fail(field, `must be a non-empty array of lead names, got ${describeValue(value)}`);
  (value as unknown[]).forEach((name, i) => requireString(name, `${field}[${i}]`, fail));
  return value as string[];
}

function validateEcgSignal(value: unknown, field: string, fail: Fail): EcgSignal {
  const ecg = requireRecord(value, field, fail);
  const leads = validateLeads(ecg.leads, `${field}.leads`, fail);
  const rate = requireFinite(ecg.sampleRateHz, `${field}.sampleRateHz`, fail);
  if (rate <= 0) fail(`${field}.sampleRateHz`, `must be positive, got ${rate}`);
  validateSignals(ecg.signals, `${field}.signals`, leads.length, fail);
  return ecg as unknown as EcgSignal;
}

function validateEcg(value: unknown, classNames: string[] | undefined, tokenCount: number | undefined, fail: Fail): void {
  validateEcgSignal(value, 'ecg', fail);
  const ecg = value as Record<string, unknown> & { leads: string[]; signals: number[][] };
  const samples = ecg.signals[0].length;

  const checkMap = (map: unknown, field: string): void => {
    if (!Array.isArray(map) || (map.length !== 1 && map.length !== ecg.leads.length)) {
      fail(field, `must have 1 row (shared) or ${ecg.leads.length} rows (one per lead), got ${describeValue(map)}`);
    }
    const rows = map as unknown[];
    const width = Array.isArray(rows[0]) ? rows[0].length : 0;
    if (width < 1 || width > samples) fail(`${field}[0]`, `must have between 1 and ${samples} values, got ${width}`);
    rows.forEach((row, i) => requireNumbers(row, `${field}[${i}]`, fail, width));
  };
  checkMap(ecg.relevance, 'ecg.relevance');
  if (ecg.relevanceByClass !== undefined) {
    const byClass = validateClassKeys(ecg.relevanceByClass, 'ecg.relevanceByClass', classNames, fail);
    for (const [name, map] of Object.entries(byClass)) checkMap(map, `ecg.relevanceByClass.${name}`);
  }
  if (ecg.relevanceByToken !== undefined) {
    validateTokenMaps(ecg.relevanceByToken, 'ecg.relevanceByToken', tokenCount, fail, checkMap);
  }
}

function validateReport(value: unknown, classNames: string[] | undefined, fail: Fail): number {
  const report = requireRecord(value, 'report', fail);
  if (!Array.isArray(report.tokens)) fail('report.tokens', `must be an array of strings, got ${describeValue(report.tokens)}`);
  const tokens = report.tokens as unknown[];
  tokens.forEach((token, i) => requireString(token, `report.tokens[${i}]`, fail));
  requireNumbers(report.relevance, 'report.relevance', fail, tokens.length);
  if (report.relevanceByClass !== undefined) {
    const byClass = validateClassKeys(report.relevanceByClass, 'report.relevanceByClass', classNames, fail);
    for (const [name, values] of Object.entries(byClass)) {
      requireNumbers(values, `report.relevanceByClass.${name}`, fail, tokens.length);
    }
  }
  return tokens.length;
}

function validateVersion(value: unknown, fail: Fail): void {
  if (value !== BUNDLE_VERSION) fail('version', `must be ${BUNDLE_VERSION}, got ${describeValue(value)}`);
}

/**
 * Checks that `value` is a well-formed {@link ExplanationBundle} and returns it typed.
 * @throws BundleValidationError naming the first invalid field and what was expected.
 */
export function validateExplanationBundle(value: unknown): ExplanationBundle {
  const fail = failFor('explanation');
  const bundle = requireRecord(value, '(root)', fail);
  validateVersion(bundle.version, fail);
  optionalString(bundle.title, 'title', fail);
  if (bundle.similarity !== undefined) requireFinite(bundle.similarity, 'similarity', fail);

  let classNames: string[] | undefined;
  if (bundle.classNames !== undefined) {
    if (!Array.isArray(bundle.classNames)) fail('classNames', `must be an array of strings, got ${describeValue(bundle.classNames)}`);
    classNames = bundle.classNames as string[];
    classNames.forEach((name, i) => requireString(name, `classNames[${i}]`, fail));
    if (new Set(classNames).size !== classNames.length) fail('classNames', 'must not repeat a name');
  }
  if (bundle.xray === undefined && bundle.ecg === undefined && bundle.report === undefined) {
    fail('(root)', 'must contain at least one of xray, ecg and report');
  }

  // The report comes first because the token-keyed maps of the other parts index its tokens.
  const tokenCount = bundle.report === undefined ? undefined : validateReport(bundle.report, classNames, fail);
  if (bundle.xray !== undefined) validateXray(bundle.xray, classNames, tokenCount, fail);
  if (bundle.ecg !== undefined) validateEcg(bundle.ecg, classNames, tokenCount, fail);
  return bundle as unknown as ExplanationBundle;
}

function validateQuery(value: unknown, fail: Fail): void {
  const query = requireRecord(value, 'query', fail);
  optionalString(query.label, 'query.label', fail);
  switch (query.modality) {
    case 'report':
      requireString(query.text, 'query.text', fail);
      break;
    case 'xray':
      validateImage(query.image, 'query.image', fail);
      break;
    case 'ecg':
      validateEcgSignal(query.ecg, 'query.ecg', fail);
      break;
    default:
      fail('query.modality', `must be one of ${MODALITIES.join(', ')}, got ${describeValue(query.modality)}`);
  }
}

function validateResult(value: unknown, index: number, previousScore: number | undefined, fail: Fail): number {
  const field = `results[${index}]`;
  const result = requireRecord(value, field, fail);
  requireString(result.id, `${field}.id`, fail);
  if (result.rank !== index + 1) fail(`${field}.rank`, `must be ${index + 1} (ranks run 1..k in order), got ${describeValue(result.rank)}`);
  const score = requireFinite(result.score, `${field}.score`, fail);
  if (previousScore !== undefined && score > previousScore) {
    fail(`${field}.score`, `must not exceed the score of rank ${index} (${previousScore}), got ${score}`);
  }
  optionalString(result.label, `${field}.label`, fail);
  if (result.xray !== undefined) validateImage(result.xray, `${field}.xray`, fail);
  if (result.ecg !== undefined) validateEcgSignal(result.ecg, `${field}.ecg`, fail);
  optionalString(result.reportExcerpt, `${field}.reportExcerpt`, fail);

  const required: Record<Modality, string> = { xray: 'xray', ecg: 'ecg', report: 'reportExcerpt' };
  const modality = result.modality as Modality;
  if (!MODALITIES.includes(modality)) {
    fail(`${field}.modality`, `must be one of ${MODALITIES.join(', ')}, got ${describeValue(result.modality)}`);
  }
  if (result[required[modality]] === undefined) fail(`${field}.${required[modality]}`, `is required for ${modality} results`);
  return score;
}

/**
 * Checks that `value` is a well-formed {@link RetrievalBundle} and returns it typed.
 * @throws BundleValidationError naming the first invalid field and what was expected.
 */
export function validateRetrievalBundle(value: unknown): RetrievalBundle {
  const fail = failFor('retrieval');
  const bundle = requireRecord(value, '(root)', fail);
  validateVersion(bundle.version, fail);
  optionalString(bundle.title, 'title', fail);
  optionalString(bundle.metric, 'metric', fail);
  requireString(bundle.tieRule, 'tieRule', fail);
  validateQuery(bundle.query, fail);
  if (!Array.isArray(bundle.results)) fail('results', `must be an array, got ${describeValue(bundle.results)}`);

  let previousScore: number | undefined;
  (bundle.results as unknown[]).forEach((result, i) => {
    previousScore = validateResult(result, i, previousScore, fail);
  });
  const ids = (bundle.results as RetrievalResult[]).map((r) => r.id);
  const repeated = ids.find((id, i) => ids.indexOf(id) !== i);
  if (repeated !== undefined) fail('results', `repeat the id ${JSON.stringify(repeated)}`);
  return bundle as unknown as RetrievalBundle;
}
