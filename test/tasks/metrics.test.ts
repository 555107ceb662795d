import { strict as assert } from 'assert';
import * as fs from 'fs';
import * as path from 'path';

import {
  accuracy,
  argmaxRows,
  averagePrecision,
  f1Score,
  multiclassAurocOvr,
  multilabelAuroc,
  multilabelAveragePrecision,
  multilabelF1,
  rocAuc,
  rocCurve,
} from '../../src/tasks/metrics';

// Produced by reference/eval_metrics.py with scikit-learn.
const fixture = JSON.parse(fs.readFileSync(path.join(__dirname, '../fixtures/tasks/metrics.json'), 'utf8'));
const TOLERANCE = 1e-9;

function assertClose(actual: number | null, expected: number | null, what: string): void {
  if (expected === null) {
    assert.equal(actual, null, `${what}: expected undefined (null), got ${actual}`);
    return;
  }
  assert.notEqual(actual, null, `${what}: expected ${expected}, got null`);
  assert.ok(Math.abs((actual as number) - expected) <= TOLERANCE, `${what}: expected ${expected}, got ${actual}`);
}

function assertArrayClose(actual: number[], expected: number[], what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length ${actual.length}, expected ${expected.length}`);
  actual.forEach((value, i) => assertClose(value, expected[i], `${what}[${i}]`));
}

describe('tasks/metrics', () => {
  describe('binary metrics against scikit-learn', () => {
    for (const testCase of fixture.binary) {
      it(`AUROC: ${testCase.name}`, () => {
        assertClose(rocAuc(testCase.yTrue, testCase.yScore).value, testCase.auroc, 'roc_auc_score');
      });

      it(`average precision: ${testCase.name}`, () => {
        assertClose(averagePrecision(testCase.yTrue, testCase.yScore).value, testCase.averagePrecision,
          'average_precision_score');
      });

      it(`ROC curve points: ${testCase.name}`, () => {
        const curve = rocCurve(testCase.yTrue, testCase.yScore);
        assertArrayClose(curve.fpr, testCase.rocCurve.fpr, 'fpr');
        assertArrayClose(curve.tpr, testCase.rocCurve.tpr, 'tpr');
        assert.equal(curve.thresholds[0], Number.POSITIVE_INFINITY, 'first threshold');
        assertArrayClose(curve.thresholds.slice(1), testCase.rocCurve.thresholdsAfterFirst, 'thresholds');
      });
    }
  });

  describe('undefined values', () => {
    it('AUROC without positives is null with a reason', () => {
      const result = rocAuc([0, 0, 0], [0.1, 0.5, 0.9]);
      assert.equal(result.value, null);
      assert.match(result.reason ?? '', /no positive samples/);
    });

    it('AUROC without negatives is null with a reason', () => {
      const result = rocAuc([1, 1], [0.1, 0.9]);
      assert.equal(result.value, null);
      assert.match(result.reason ?? '', /no negative samples/);
    });

    it('average precision without positives is null', () => {
      assert.equal(averagePrecision([0, 0], [0.2, 0.3]).value, null);
    });

    it('F1 without positives or predictions is null', () => {
      assert.equal(f1Score([0, 0], [0, 0]).value, null);
    });

    it('ROC curve with one class throws', () => {
      assert.throws(() => rocCurve([1, 1], [0.2, 0.4]), /ROC curve is undefined with 2 positives and 0 negatives/);
    });
  });

  describe('multi-label with a mask against scikit-learn', () => {
    const data = fixture.multilabel;
    const options = { labels: data.labels as string[], mask: data.mask as boolean[][] };

    it('AUROC per label, macro and micro', () => {
      const report = multilabelAuroc(data.yTrue, data.yScore, options);
      report.perLabel.forEach((entry, j) => assertClose(entry.value, data.auroc.perLabel[j], `AUROC ${entry.label}`));
      assertClose(report.macro.value, data.auroc.macro, 'macro AUROC');
      assertClose(report.micro.value, data.auroc.micro, 'micro AUROC');
    });

    it('AUROC names the undefined labels', () => {
      const report = multilabelAuroc(data.yTrue, data.yScore, options);
      assert.deepEqual(report.undefinedLabels, ['Absent', 'AllPositive']);
      assert.match(report.perLabel[3].reason ?? '', /no positive samples/);
      assert.match(report.perLabel[4].reason ?? '', /no negative samples/);
      assert.equal(report.perLabel[4].negatives, 0);
    });

    it('average precision per label, macro and micro', () => {
      const report = multilabelAveragePrecision(data.yTrue, data.yScore, options);
      report.perLabel.forEach((entry, j) =>
        assertClose(entry.value, data.averagePrecision.perLabel[j], `AP ${entry.label}`));
      assertClose(report.macro.value, data.averagePrecision.macro, 'macro AP');
      assertClose(report.micro.value, data.averagePrecision.micro, 'micro AP');
    });

    it('F1 per label, macro and micro', () => {
      const report = multilabelF1(data.yTrue, data.yScore, data.threshold, options);
      report.perLabel.forEach((entry, j) => assertClose(entry.value, data.f1.perLabel[j], `F1 ${entry.label}`));
      assertClose(report.macro.value, data.f1.macro, 'macro F1');
      assertClose(report.micro.value, data.f1.micro, 'micro F1');
    });
  });

  describe('multi-label without a mask against scikit-learn averaging', () => {
    const data = fixture.multilabelUnmasked;

    it('AUROC macro and micro', () => {
      const report = multilabelAuroc(data.yTrue, data.yScore);
      assertClose(report.macro.value, data.aurocMacro, 'macro AUROC');
      assertClose(report.micro.value, data.aurocMicro, 'micro AUROC');
    });

    it('average precision macro and micro', () => {
      const report = multilabelAveragePrecision(data.yTrue, data.yScore);
      assertClose(report.macro.value, data.apMacro, 'macro AP');
      assertClose(report.micro.value, data.apMicro, 'micro AP');
    });

    it('F1 macro and micro', () => {
      const report = multilabelF1(data.yTrue, data.yScore, data.threshold);
      assertClose(report.macro.value, data.f1Macro, 'macro F1');
      assertClose(report.micro.value, data.f1Micro, 'micro F1');
    });
  });

  describe('multi-class against scikit-learn', () => {
    const data = fixture.multiclass;

    it('accuracy of the argmax', () => {
      assertClose(accuracy(data.yTrue, argmaxRows(data.probabilities)), data.accuracy, 'accuracy_score');
    });

    it('one-vs-rest macro AUROC', () => {
      assertClose(multiclassAurocOvr(data.yTrue, data.probabilities).value, data.aurocOvrMacro, 'ovr macro AUROC');
    });
  });

  describe('masked uncertain labels', () => {
    it('leaves masked -1 labels out', () => {
      const yTrue = [[1], [-1], [0], [1], [0]];
      const yScore = [[0.9], [0.1], [0.3], [0.4], [0.5]];
      const mask = [[true], [false], [true], [true], [true]];
      const report = multilabelAuroc(yTrue, yScore, { mask });
      assert.equal(report.perLabel[0].value, rocAuc([1, 0, 1, 0], [0.9, 0.3, 0.4, 0.5]).value);
      assert.equal(report.perLabel[0].positives + report.perLabel[0].negatives, 4);
    });

    it('rejects an unmasked -1 label', () => {
      assert.throws(() => multilabelAuroc([[1], [-1], [0]], [[0.2], [0.4], [0.6]]), /yTrue\[1\] is -1/);
    });
  });

  describe('input validation', () => {
    it('rejects labels other than 0 and 1', () => {
      assert.throws(() => rocAuc([0, -1, 1], [0.1, 0.2, 0.3]), /yTrue\[1\] is -1; expected 0 or 1/);
    });

    it('rejects mismatched lengths', () => {
      assert.throws(() => rocAuc([0, 1], [0.1]), /yTrue has 2 entries but yScore has 1/);
    });

    it('rejects ragged multi-label rows', () => {
      assert.throws(() => multilabelAuroc([[0, 1], [1]], [[0.1, 0.2], [0.3, 0.4]]), /row 1 has 1 labels/);
    });
  });
});
