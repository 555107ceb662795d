import * as assert from 'assert';
import * as path from 'path';

import * as tf from '@tensorflow/tfjs';

import { ReportTokenizer } from '../../src/datasets/tokenizer';
import { MoreModel } from '../../src/model/more';
import { loadTextEncoder } from '../../src/model/text/pretrained';
import { buildSampleCorpus } from '../../src/run/corpus';
import { prepareSamples, type PreparedSample } from '../../src/run/data';
import { displayTokens, explanationBundle, retrievalBundle } from '../../src/run/showcase';
import { silentProgress } from '../../src/util/progress';
import { validateExplanationBundle, validateRetrievalBundle } from '../../src/viz/mime';
import { makeTinyTextModel, TEST_MODEL } from './helpers';

const MINILM_TOKENIZER = path.resolve(__dirname, '..', 'fixtures', 'datasets', 'text', 'minilm');

describe('run/showcase', function () {
  this.timeout(300000);
  let model: MoreModel;
  let tokenizer: ReportTokenizer;
  let xrays: PreparedSample[];
  let ecgs: PreparedSample[];

  before(async () => {
    const folder = makeTinyTextModel();
    tokenizer = ReportTokenizer.fromFolder(folder);
    model = new MoreModel(TEST_MODEL, loadTextEncoder(folder).encoder);
    const heldOut = buildSampleCorpus().samples.filter((s) => s.split === 'heldout');
    const pick = async (modality: 'ecg' | 'xray') => (await prepareSamples(
      heldOut.filter((s) => s.modality === modality).slice(0, 6), tokenizer, { maxTextLength: 32, progress: silentProgress },
    )).prepared;
    xrays = await pick('xray');
    ecgs = await pick('ecg');
  });

  after(() => model.dispose());

  it('splits a report into readable tokens', () => {
    const words = ReportTokenizer.fromFolder(MINILM_TOKENIZER);
    const ids = words.encode('The report from ECG is: Sinus bradycardia.').inputIds;
    const tokens = displayTokens(words, ids);
    assert.strictEqual(tokens.length, ids.length);
    assert.strictEqual(tokens.join(''), words.decode(ids, false));
    assert.ok(tokens.includes(' report'), JSON.stringify(tokens));
    assert.ok(tokens.every((token) => !token.startsWith('##')), JSON.stringify(tokens));
  });

  it('explains an X-ray and an ECG', () => {
    const before = tf.memory().numTensors;
    const xray = validateExplanationBundle(explanationBundle(model, tokenizer, xrays[0]));
    assert.ok(xray.xray !== undefined, 'the X-ray sample has no X-ray part');
    assert.strictEqual(xray.ecg, undefined);
    assert.deepStrictEqual(xray.xray.patchGrid, { rows: 7, cols: 7 });
    assert.strictEqual(xray.xray.relevance.length, 49);
    const ecg = validateExplanationBundle(explanationBundle(model, tokenizer, ecgs[0]));
    assert.ok(ecg.ecg !== undefined, 'the ECG sample has no ECG part');
    assert.strictEqual(ecg.xray, undefined);
    assert.strictEqual(ecg.ecg.signals.length, 12);
    assert.strictEqual(ecg.ecg.relevance[0].length, 1000);
    assert.ok(ecg.report !== undefined, 'the explanation has no report part');
    assert.strictEqual(ecg.report.tokens.length, ecg.report.relevance.length);
    assert.strictEqual(tf.memory().numTensors, before);
  });

  it('ranks k distinct gallery items', () => {
    const bundle = validateRetrievalBundle(retrievalBundle(model, xrays, 2, 4));
    assert.strictEqual(bundle.results.length, 4);
    assert.strictEqual(new Set(bundle.results.map((r) => r.id)).size, 4);
    assert.deepStrictEqual(bundle.results.map((r) => r.rank), [1, 2, 3, 4]);
    assert.strictEqual(bundle.query.modality, 'report');
    assert.strictEqual(bundle.query.label, `report of ${xrays[2].sample.id}`);
    assert.ok(bundle.results.every((r) => r.xray !== undefined && r.xray.width === 56));
  });

  it('rejects a query outside the gallery', () => {
    assert.throws(() => retrievalBundle(model, xrays, 6), /Invalid queryIndex 6/);
    assert.throws(() => retrievalBundle(model, [...xrays, ...ecgs], 0), /same modality/);
  });
});
