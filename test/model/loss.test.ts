import * as assert from 'assert';

import { tf } from '../../src/backend';
import { Temperature, contrastiveLogits, infoNce, moreLoss, presentRows } from '../../src/model';
import { expected, readFixture } from './vision-fixtures';

function fixed(name: string): tf.Tensor2D {
  const io = readFixture('heads_io.safetensors');
  const entry = expected(io, name);
  return tf.tensor2d(entry.data, entry.shape as [number, number]);
}

describe('contrastive loss', () => {
  const io = readFixture('heads_io.safetensors');
  const ecgRows = JSON.parse(io.metadata.ecg_rows) as number[];

  it('InfoNCE matches PyTorch at temperature 0.02', () => {
    const text = fixed('text_embedding');
    const image = fixed('image_embedding');
    const loss = infoNce(text, image, 0.02);
    const error = Math.abs(loss.dataSync()[0] - expected(io, 'image_loss').data[0]);
    assert.ok(error < 1e-5, `error ${error}`);
    tf.dispose([text, image, loss]);
  });

  it('total loss sums both pairs over present rows', () => {
    const text = fixed('text_embedding');
    const image = fixed('image_embedding');
    const ecg = fixed('ecg_embedding');
    const before = tf.memory().numTensors;
    const loss = moreLoss({ text, image: { embedding: image, rows: [0, 1, 2, 3] }, ecg: { embedding: ecg, rows: ecgRows } }, 0.02);
    const error = Math.abs(loss.dataSync()[0] - expected(io, 'loss').data[0]);
    assert.ok(error < 1e-5, `error ${error}`);
    loss.dispose();
    assert.strictEqual(tf.memory().numTensors, before);
    tf.dispose([text, image, ecg]);
  });

  it('learnable temperature loss and gradient match', () => {
    const text = fixed('text_embedding');
    const image = fixed('image_embedding');
    const temperature = new Temperature({ mode: 'learnable', initial: 0.07 });
    const { value, grads } = tf.variableGrads(() => infoNce(text, image, temperature), temperature.trainableVariables());
    const lossError = Math.abs(value.dataSync()[0] - expected(io, 'learnable_loss').data[0]);
    assert.ok(lossError < 1e-5, `loss error ${lossError}`);
    const grad = grads[temperature.logitScale!.name].dataSync()[0];
    const reference = expected(io, 'grad.logit_scale').data[0];
    assert.ok(Math.abs(grad - reference) / Math.abs(reference) < 1e-4, `gradient ${grad} vs ${reference}`);
    tf.dispose([text, image, value, ...Object.values(grads)]);
    temperature.dispose();
  });

  it('clamps the learnable multiplier at 100', () => {
    const temperature = new Temperature({ mode: 'learnable' });
    temperature.logitScale!.assign(tf.scalar(5));
    // exp(5) = 148 would exceed the cap, so cosine 1 and 0 give logits 100 and 0.
    const a = tf.tensor2d([[1, 0], [0, 1]]);
    const b = tf.tensor2d([[1, 0], [0, 1]]);
    const logits = contrastiveLogits(a, b, temperature);
    const values = Array.from(logits.dataSync());
    assert.ok(Math.abs(values[0] - 100) < 1e-4, `cosine 1 gives ${values[0]}`);
    assert.ok(Math.abs(values[1]) < 1e-6, `cosine 0 gives ${values[1]}`);
    assert.ok(Math.abs(temperature.value() - 0.01) < 1e-7);
    tf.dispose([a, b, logits]);
    temperature.dispose();
  });

  it('fixed temperature has no variables and defaults to 0.02', () => {
    const temperature = new Temperature();
    assert.strictEqual(temperature.trainableVariables().length, 0);
    assert.ok(Math.abs(temperature.value() - 0.02) < 1e-9);
    temperature.dispose();
  });

  it('masked rows give the loss of present pairs', () => {
    // Row 1 has no ECG, so its row of the full-batch embedding holds junk. The reference
    // computed its loss over rows 0, 2 and 3 only.
    const present = Array.from(expected(io, 'ecg_present').data, (flag) => flag === 1);
    assert.deepStrictEqual(present, [true, false, true, true]);
    const text = fixed('text_embedding');
    const ecgPresent = fixed('ecg_embedding');
    const junk = tf.fill([1, 16], 123);
    const fullEcg = tf.concat([ecgPresent.slice([0, 0], [1, 16]), junk, ecgPresent.slice([1, 0], [2, 16])]) as tf.Tensor2D;
    const ecg = presentRows(fullEcg, present);
    assert.deepStrictEqual(ecg.rows, ecgRows);
    const loss = moreLoss({ text, ecg }, 0.02);
    const error = Math.abs(loss.dataSync()[0] - expected(io, 'ecg_loss').data[0]);
    assert.ok(error < 1e-5, `masked loss error ${error}`);
    tf.dispose([text, ecgPresent, junk, fullEcg, ecg.embedding, loss]);
  });

  it('a batch without any ECG adds nothing', () => {
    const text = fixed('text_embedding');
    const image = fixed('image_embedding');
    const ecgAll = tf.zeros([4, 16]) as tf.Tensor2D;
    const none = presentRows(ecgAll, [false, false, false, false]);
    const withEmpty = moreLoss({ text, image: { embedding: image, rows: [0, 1, 2, 3] }, ecg: none }, 0.02);
    const imageOnly = infoNce(text, image, 0.02);
    assert.strictEqual(withEmpty.dataSync()[0], imageOnly.dataSync()[0]);
    tf.dispose([text, image, ecgAll, none.embedding, withEmpty, imageOnly]);
  });

  it('rejects mismatched shapes and bad temperatures', () => {
    const a = tf.zeros([3, 4]) as tf.Tensor2D;
    const b = tf.zeros([2, 4]) as tf.Tensor2D;
    assert.throws(() => infoNce(a, b, 0.02), /got \[3, 4\] and \[2, 4\]/);
    assert.throws(() => infoNce(a, a, 0), /Invalid temperature 0/);
    assert.throws(() => moreLoss({ text: a, image: { embedding: b, rows: [0, 5] } }, 0.02), /Invalid row index 5/);
    tf.dispose([a, b]);
  });
});
