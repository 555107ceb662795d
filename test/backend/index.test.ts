import * as assert from 'assert';

import { backendInfo, initBackend, tf } from '../../src/backend';

describe('backend', () => {
  it('selects the native TensorFlow backend', async () => {
    const info = await initBackend();
    // On machines where the set-up built the addon (every supported Linux x86_64
    // machine), anything else means the native route broke.
    assert.strictEqual(info.name, 'tensorflow', `expected the native backend, got ${JSON.stringify(info)}`);
    assert.match(info.device, /native TensorFlow \d+\.\d+/);
    assert.strictEqual(tf.getBackend(), 'tensorflow');
  });

  it('returns the same answer on later calls', async () => {
    const first = await initBackend();
    const second = await initBackend();
    assert.strictEqual(first, second);
    assert.strictEqual(backendInfo(), first);
  });

  it('computes a matmul equal to the JavaScript result', () => {
    const a = tf.tensor2d([[1, 2], [3, 4]]);
    const b = tf.tensor2d([[5, 6], [7, 8]]);
    const product = tf.matMul(a, b);
    assert.deepStrictEqual(Array.from(product.dataSync()), [19, 22, 43, 50]);
    tf.dispose([a, b, product]);
  });

  it('computes gradients on the native backend', () => {
    const x = tf.tensor1d([1, 2, 3]);
    const grad = tf.grad((v: tf.Tensor) => v.square().sum())(x);
    assert.deepStrictEqual(Array.from(grad.dataSync()), [2, 4, 6]);
    tf.dispose([x, grad]);
  });
});
