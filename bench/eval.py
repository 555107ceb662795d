"""Reference side of bench/eval.ts: scikit-learn and numpy on the same workloads.

Prints one JSON object with the throughput of each figure. The data are drawn
here with numpy in the same sizes and distributions as the TypeScript side.
"""
import json
import sys
import time

import numpy as np
from sklearn.manifold import TSNE
from sklearn.metrics import roc_auc_score


def rate(step, units, min_seconds, min_iterations):
    step()
    start = time.perf_counter()
    iterations = 0
    while iterations < min_iterations or time.perf_counter() - start < min_seconds:
        step()
        iterations += 1
    return units * iterations / (time.perf_counter() - start)


def recall_step(queries, gallery, ks):
    scores = queries @ gallery.T
    own = scores[np.arange(len(queries)), np.arange(len(queries))]
    # Rank of each query's own item under the tie rule: higher scores, then equal scores at lower indexes.
    index = np.arange(gallery.shape[0])
    before = (scores > own[:, None]).sum(axis=1) + ((scores == own[:, None]) & (index[None, :] < np.arange(len(queries))[:, None])).sum(axis=1)
    return {k: float((before < k).mean()) for k in ks}


def main():
    config = json.loads(sys.argv[1])
    rng = np.random.default_rng(0)
    n = config['auroc_samples']
    labels = (rng.random(n) < 0.3).astype(int)
    scores = np.round(rng.random(n) * 0.7 + 0.3 * labels, 3)
    auroc = rate(lambda: roc_auc_score(labels, scores), n, config['min_seconds'], config['min_iterations'])

    dim = config['dim']
    gallery = rng.normal(size=(config['gallery'], dim)).astype(np.float32)
    gallery /= np.linalg.norm(gallery, axis=1, keepdims=True)
    queries = gallery[: config['queries']] + 0.5 * rng.normal(size=(config['queries'], dim)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    retrieval = rate(lambda: recall_step(queries, gallery, [1, 5, 10]), config['queries'], config['min_seconds'], config['min_iterations'])

    points = rng.normal(size=(config['tsne_points'], config['tsne_dim']))
    tsne = TSNE(n_components=2, perplexity=30, init='pca', method='exact', max_iter=config['tsne_iterations'], random_state=0)
    start = time.perf_counter()
    tsne.fit(points)
    tsne_rate = 1 / (time.perf_counter() - start)

    print(json.dumps({'auroc_samples_per_second': auroc, 'retrieval_queries_per_second': retrieval,
                      'tsne_maps_per_second': tsne_rate}))


if __name__ == '__main__':
    main()
