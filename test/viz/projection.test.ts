import { strict as assert } from 'assert';
import * as fs from 'fs';
import * as path from 'path';

import { jointProbabilities, pca, symmetricEigen, tsne } from '../../src/viz/projection';

// Produced by reference/eval_viz.py with scikit-learn.
const fixture = JSON.parse(fs.readFileSync(path.join(__dirname, '../fixtures/tasks/viz.json'), 'utf8'));

/** Fraction of points whose nearest neighbour on the map has the same label. */
function neighbourAgreement(coordinates: number[][], labels: number[]): number {
  let agree = 0;
  coordinates.forEach((point, i) => {
    let best = -1;
    let bestDistance = Number.POSITIVE_INFINITY;
    coordinates.forEach((other, j) => {
      const distance = (point[0] - other[0]) ** 2 + (point[1] - other[1]) ** 2;
      if (j !== i && distance < bestDistance) {
        best = j;
        bestDistance = distance;
      }
    });
    if (labels[best] === labels[i]) agree++;
  });
  return agree / coordinates.length;
}

describe('viz/projection', () => {
  it('PCA coordinates equal scikit-learn', () => {
    const { coordinates } = pca(fixture.points, 2);
    coordinates.forEach((row, i) => row.forEach((value, j) => {
      assert.ok(Math.abs(value - fixture.pca[i][j]) < 1e-8, `[${i}][${j}] = ${value}, expected ${fixture.pca[i][j]}`);
    }));
  });

  it('eigen-decomposes a symmetric matrix', () => {
    const { values, vectors } = symmetricEigen(Float64Array.from([2, 1, 1, 2]), 2);
    assert.ok(Math.abs(values[0] - 3) < 1e-12, `largest eigenvalue ${values[0]}`);
    assert.ok(Math.abs(values[1] - 1) < 1e-12, `smallest eigenvalue ${values[1]}`);
    assert.ok(Math.abs(Math.abs(vectors[0][0]) - Math.SQRT1_2) < 1e-12, 'first eigenvector');
  });

  it('t-SNE joint probabilities equal scikit-learn', () => {
    const joint = jointProbabilities(fixture.points, fixture.perplexity);
    const n = fixture.points.length;
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < n; j++) {
        const expected = fixture.joint[i][j];
        assert.ok(Math.abs(joint[i * n + j] - expected) < 1e-9, `P[${i}][${j}] = ${joint[i * n + j]}, expected ${expected}`);
      }
    }
  });

  it('t-SNE reaches scikit-learn divergence and separates blobs', () => {
    const result = tsne(fixture.points, { perplexity: fixture.perplexity });
    assert.ok(result.klDivergence < fixture.tsneKl * 1.1, `KL ${result.klDivergence}, scikit-learn ${fixture.tsneKl}`);
    assert.equal(neighbourAgreement(result.coordinates, fixture.blob), 1);
  });

  it('t-SNE repeats with the same seed', () => {
    const first = tsne(fixture.points, { perplexity: 5, iterations: 300, init: 'random', seed: 4 });
    const second = tsne(fixture.points, { perplexity: 5, iterations: 300, init: 'random', seed: 4 });
    assert.deepEqual(second.coordinates, first.coordinates);
  });

  it('rejects a perplexity above the point count', () => {
    assert.throws(() => jointProbabilities([[0], [1], [2]], 5), /perplexity 5; expected a value above 0 and below the 3 points/);
  });
});
