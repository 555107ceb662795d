"""Produce the scikit-learn fixtures for src/viz (projections and ROC plots).

Run from the repository root:
    .venv/bin/python reference/eval_viz.py
It writes test/fixtures/tasks/viz.json: three Gaussian blobs with their PCA
coordinates, the t-SNE joint probabilities P at perplexity 10, the final
Kullback-Leibler divergence of scikit-learn's exact t-SNE, and per-label ROC
curves for the ROC plot.
"""
import json
import os

import numpy as np
from scipy.spatial.distance import squareform
from sklearn.datasets import make_blobs
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE
from sklearn.manifold._t_sne import _joint_probabilities
from sklearn.metrics import pairwise_distances, roc_curve

OUT = os.path.join('test', 'fixtures', 'tasks', 'viz.json')


def main():
    points, blob = make_blobs(n_samples=45, n_features=6, centers=3, cluster_std=1.0, random_state=3)
    perplexity = 10.0
    distances = pairwise_distances(points, squared=True)
    joint = squareform(_joint_probabilities(distances, perplexity, 0))
    tsne = TSNE(n_components=2, perplexity=perplexity, init='pca', method='exact', random_state=0, max_iter=1000)
    tsne.fit(points)

    rng = np.random.default_rng(11)
    y_true = (rng.random((30, 2)) < 0.5).astype(int)
    y_score = np.round(rng.random((30, 2)) * 0.6 + 0.4 * y_true, 1)
    curves = []
    for label in range(2):
        fpr, tpr, _ = roc_curve(y_true[:, label], y_score[:, label])
        curves.append({'fpr': fpr.tolist(), 'tpr': tpr.tolist()})

    fixture = {
        'generator': 'reference/eval_viz.py',
        'points': points.tolist(),
        'blob': blob.tolist(),
        'pca': PCA(n_components=2).fit_transform(points).tolist(),
        'perplexity': perplexity,
        'joint': joint.tolist(),
        'tsneKl': float(tsne.kl_divergence_),
        'roc': {'yTrue': y_true.tolist(), 'yScore': y_score.tolist(), 'labels': ['Edema', 'Cardiomegaly'], 'curves': curves},
    }
    with open(OUT, 'w') as handle:
        json.dump(fixture, handle)
    print(f'wrote {OUT}')


if __name__ == '__main__':
    main()
