import { strict as assert } from 'assert';
import * as fs from 'fs';
import * as path from 'path';

import * as tf from '@tensorflow/tfjs';

import {
  CHEXPERT_PROMPT_PHRASES,
  CHEXPERT_ZERO_SHOT_CLASSES,
  ECG_SUPERCLASS_PROMPTS,
  allPrompts,
  chexpertPromptSets,
  ecgPromptSets,
  isNegation,
  promptPair,
  samplePrompts,
} from '../../src/tasks/prompts';
import { MoreModel } from '../../src/model';
import { TransformerTextEncoder, textPreset } from '../../src/model/text';
import {
  PTBXL_LABEL_PRIORITY,
  modelPromptEncoder,
  embedPromptPairs,
  embedPromptSets,
  evaluateEcgZeroShot,
  evaluateZeroShot,
  pairedPromptProbabilities,
  singleLabelByPriority,
  zeroShotScores,
} from '../../src/tasks/zeroshot';
import { setLogSink } from '../../src/util/log';

// Produced by reference/eval_zeroshot.py with numpy, scipy and scikit-learn.
const fixture = JSON.parse(fs.readFileSync(path.join(__dirname, '../fixtures/tasks/zeroshot.json'), 'utf8'));

function assertRowsClose(actual: number[][], expected: number[][], tolerance: number, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: ${actual.length} rows, expected ${expected.length}`);
  actual.forEach((row, i) => row.forEach((value, j) => {
    assert.ok(Math.abs(value - expected[i][j]) <= tolerance, `${what}[${i}][${j}] = ${value}, expected ${expected[i][j]}`);
  }));
}

describe('tasks/prompts', () => {
  it('samples five distinct prompts per CheXpert class', () => {
    const sets = chexpertPromptSets(5, 0);
    assert.deepEqual(Object.keys(sets), [...CHEXPERT_ZERO_SHOT_CLASSES]);
    for (const [name, prompts] of Object.entries(sets)) {
      assert.equal(prompts.length, 5, name);
      assert.equal(new Set(prompts).size, 5, `${name} prompts are distinct`);
      const possible = new Set(allPrompts(CHEXPERT_PROMPT_PHRASES[name]));
      for (const prompt of prompts) assert.ok(possible.has(prompt), `"${prompt}" comes from the ${name} phrases`);
    }
  });

  it('repeats with a seed and changes with another', () => {
    assert.deepEqual(chexpertPromptSets(5, 7), chexpertPromptSets(5, 7));
    assert.notDeepEqual(chexpertPromptSets(5, 7), chexpertPromptSets(5, 8));
  });

  it('samples a class the same way in any class order', () => {
    const alone = chexpertPromptSets(5, 3, ['Edema']);
    const together = chexpertPromptSets(5, 3, ['Cardiomegaly', 'Edema']);
    assert.deepEqual(alone.Edema, together.Edema);
  });

  it('builds severity, subtype and location prompts', () => {
    const prompts = allPrompts({ severity: ['', 'small'], subtype: ['effusion'], location: ['', 'on the left'] });
    assert.deepEqual(prompts, ['effusion', 'effusion on the left', 'small effusion', 'small effusion on the left']);
  });

  it('rejects requests beyond the combinations', () => {
    assert.throws(() => samplePrompts('X', { severity: [''], subtype: ['a', 'b'], location: [''] }, 3),
      /3 prompts requested for "X" but its phrases give only 2/);
  });

  it('rejects negated positive phrases', () => {
    assert.throws(() => samplePrompts('X', { severity: ['no'], subtype: ['effusion'], location: [''] }, 1),
      /build the negated prompt "no effusion"/);
  });

  it('gives the five ECG superclass prompts', () => {
    assert.deepEqual(ecgPromptSets(), {
      NORM: ['Normal ECG'], MI: ['Myocardial Infarction'], STTC: ['ST T Change'], CD: ['Conduction Disturbance'], HYP: ['Hypertrophy'],
    });
  });

  describe('prompt pairs', () => {
    it('negates a finding with "no"', () => {
      assert.deepEqual(promptPair('Pleural Effusion'), { positive: 'Pleural Effusion', negative: 'no Pleural Effusion' });
    });

    it('never negates No Finding twice', () => {
      const pair = promptPair('No Finding');
      assert.ok(!/^no no/i.test(pair.negative), pair.negative);
      assert.equal(pair.negative, 'abnormal findings');
    });

    it('pairs Normal ECG with Abnormal ECG', () => {
      assert.deepEqual(promptPair('NORM', ECG_SUPERCLASS_PROMPTS.NORM), { positive: 'Normal ECG', negative: 'Abnormal ECG' });
    });

    it('rejects an unknown negation-like class', () => {
      assert.throws(() => promptPair('No Pneumothorax'), /already reads as a negation/);
    });

    it('no ECG or CheXpert pair negates a negation', () => {
      const pairs = [
        ...Object.entries(ECG_SUPERCLASS_PROMPTS).map(([code, prompt]) => promptPair(code, prompt)),
        ...CHEXPERT_ZERO_SHOT_CLASSES.map((name) => promptPair(name)),
        promptPair('No Finding'),
      ];
      for (const pair of pairs) {
        const doubled = isNegation(pair.positive) && isNegation(pair.negative);
        assert.ok(!doubled, `"${pair.positive}" / "${pair.negative}"`);
        assert.ok(!/\bno\s+(no|normal)\b/i.test(pair.negative), pair.negative);
      }
    });
  });
});

describe('tasks/zeroshot', () => {
  const prompts = fixture.prompts as Record<string, number[][]>;
  const classes = fixture.classes as string[];
  let restoreSink: ReturnType<typeof setLogSink> | undefined;
  const warnings: string[] = [];
  before(() => {
    restoreSink = setLogSink((record) => warnings.push(record.message));
  });
  after(() => {
    if (restoreSink) setLogSink(restoreSink);
  });

  for (const reduction of ['max', 'mean'] as const) {
    it(`scores with ${reduction} over prompts like numpy`, () => {
      const result = zeroShotScores(fixture.samples, prompts, { reduction });
      assert.deepEqual(result.classes, classes);
      assertRowsClose(result.similarity, fixture.cases[reduction].similarity, 1e-12, 'similarity');
      assertRowsClose(result.scores, fixture.cases[reduction].scores, 1e-9, 'z-scores');
    });

    it(`matches scikit-learn AUROC with ${reduction}`, () => {
      const { scores } = zeroShotScores(fixture.samples, prompts, { reduction });
      const evaluation = evaluateZeroShot(scores, fixture.labels, classes);
      evaluation.auroc.perLabel.forEach((entry, c) => {
        assert.ok(Math.abs((entry.value as number) - fixture.cases[reduction].aurocPerClass[c]) < 1e-9, entry.label);
      });
      assert.ok(Math.abs((evaluation.auroc.micro.value as number) - fixture.cases[reduction].aurocMicro) < 1e-9, 'micro');
    });
  }

  it('flags a class below chance as a polarity error', () => {
    warnings.length = 0;
    const { scores } = zeroShotScores(fixture.samples, prompts);
    const evaluation = evaluateZeroShot(scores, fixture.labels, classes);
    assert.deepEqual(evaluation.polarityWarnings.map((w) => w.label), ['Inverted']);
    assert.match(evaluation.polarityWarnings[0].message, /opposite polarity/);
    assert.ok(warnings.some((message) => message.includes('Inverted')), 'the warning is logged');
  });

  it('accepts tensors as embeddings', () => {
    const samples = tf.tensor2d(fixture.samples);
    const fromTensor = zeroShotScores(samples, prompts);
    samples.dispose();
    assertRowsClose(fromTensor.scores, fixture.cases.max.scores, 1e-5, 'z-scores from a tensor');
  });

  it('computes pair probabilities like scipy softmax', () => {
    const pairs: Record<string, { positive: number[]; negative: number[] }> = {};
    classes.forEach((name, c) => {
      pairs[name] = { positive: fixture.pairs.positives[c], negative: fixture.pairs.negatives[c] };
    });
    const { probabilities } = pairedPromptProbabilities(fixture.samples, pairs, fixture.pairs.temperature);
    assertRowsClose(probabilities, fixture.pairs.probabilities, 1e-12, 'probabilities');
  });

  it('embeds prompt sets through an encoder callback', async () => {
    const table: Record<string, number[]> = { a: [1, 0], b: [0, 1], c: [1, 1] };
    const encoded = await embedPromptSets((texts) => texts.map((t) => table[t]), { X: ['a', 'b'], Y: ['c'] });
    assert.deepEqual(encoded, { X: [[1, 0], [0, 1]], Y: [[1, 1]] });
  });

  it('embeds prompt pairs without double negation', async () => {
    const seen: string[] = [];
    const { pairs } = await embedPromptPairs((texts) => {
      seen.push(...texts);
      return texts.map((_, i) => [i + 1, 1]);
    }, { NORM: 'Normal ECG', MI: 'Myocardial Infarction' });
    assert.deepEqual(seen, ['Normal ECG', 'Abnormal ECG', 'Myocardial Infarction', 'no Myocardial Infarction']);
    assert.equal(pairs.NORM.negative, 'Abnormal ECG');
  });

  it('scores ECG zero-shot both ways like scikit-learn', () => {
    const data = fixture.ecg;
    const result = evaluateEcgZeroShot(data.scores, data.labels, data.classes);
    result.multiLabel.auroc.perLabel.forEach((entry, c) => {
      assert.ok(Math.abs((entry.value as number) - data.multiLabelAuroc[c]) < 1e-9, `multi-label ${entry.label}`);
    });
    result.singleLabel.auroc.perLabel.forEach((entry, c) => {
      assert.ok(Math.abs((entry.value as number) - data.singleLabelAuroc[c]) < 1e-9, `single-label ${entry.label}`);
    });
    assert.ok(Math.abs(result.singleLabel.accuracy - data.singleLabelAccuracy) < 1e-12, 'accuracy');
    const withoutLabel = (data.singleLabel as number[]).filter((label) => label < 0).length;
    assert.equal(result.withoutLabel, withoutLabel);
    assert.equal(result.singleLabel.records, data.labels.length - withoutLabel);
  });

  it('reduces PTB-XL labels by priority', () => {
    const order = ['NORM', 'MI', 'STTC', 'CD', 'HYP'];
    assert.equal(singleLabelByPriority([0, 1, 1, 0, 0], order, PTBXL_LABEL_PRIORITY), 2);
    assert.equal(singleLabelByPriority([0, 1, 0, 1, 1], order, PTBXL_LABEL_PRIORITY), 1);
    assert.equal(singleLabelByPriority([0, 0, 0, 1, 1], order, PTBXL_LABEL_PRIORITY), 4);
    assert.equal(singleLabelByPriority([0, 0, 0, 0, 0], order, PTBXL_LABEL_PRIORITY), -1);
  });

  it('rejects prompts of another width', () => {
    assert.throws(() => zeroShotScores([[1, 0, 0]], { A: [[1, 0]] }), /row 0 has 2 values; expected 3/);
  });

  it('encodes prompts with the MoRE model', async () => {
    const text = new TransformerTextEncoder(textPreset('tiny'), { seed: 2 });
    const model = new MoreModel({ preset: 'tiny', image: { imageSize: 64, patchSize: 16 }, ecg: { samples: 100 } }, text, { seed: 2 });
    // Character codes stand in for a tokenizer: <s> = 0, </s> = 2, padding = 1.
    const tokenize = (texts: string[]) => {
      const length = Math.max(...texts.map((t) => t.length)) + 2;
      const ids = texts.map((t) => [0, ...Array.from(t, (c) => 3 + (c.charCodeAt(0) % 900)), 2].concat(new Array(length).fill(1)).slice(0, length));
      const mask = texts.map((t) => Array.from({ length }, (_, i) => (i < t.length + 2 ? 1 : 0)));
      return { inputIds: tf.tensor2d(ids, undefined, 'int32'), attentionMask: tf.tensor2d(mask, undefined, 'int32') };
    };
    const before = tf.memory().numTensors;
    const embedded = await embedPromptSets(modelPromptEncoder(model, tokenize), ecgPromptSets());
    assert.equal(tf.memory().numTensors, before, 'tensors leaked');
    const direct = tf.tidy(() => {
      const batch = tokenize(['Hypertrophy']);
      return model.encodeText(batch.inputIds, batch.attentionMask).embedding.arraySync()[0];
    });
    assert.equal(embedded.HYP[0].length, 32);
    embedded.HYP[0].forEach((value, i) => assert.ok(Math.abs(value - direct[i]) < 1e-4, `HYP[${i}] = ${value}, expected ${direct[i]}`));
    model.dispose();
  });
});
