"""Produce the numpy / scikit-learn fixtures for src/tasks/retrieval.ts.

Run from the repository root:
    .venv/bin/python reference/eval_retrieval.py
It writes test/fixtures/tasks/retrieval.json.

The ranking rule mirrored here: cosine scores are rounded to float32 and
ordered by descending score, then by ascending gallery index. Each id is kept
once, at its best entry. Recall@K counts a query as a hit when any relevant id is
among the first K distinct ids. Average precision is taken over the whole
ranking; where no scores tie it equals scikit-learn's average_precision_score,
which the script asserts.
"""
import json
import os

import numpy as np
from sklearn.metrics import average_precision_score

OUT = os.path.join('test', 'fixtures', 'tasks', 'retrieval.json')
KS = [1, 5, 10]


def normalise(x):
    x = np.asarray(x, dtype=np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def rank_distinct(scores, keys):
    """Return gallery indexes of each key's best entry, ranked by the tie rule."""
    order = np.lexsort((np.arange(len(scores)), -scores.astype(np.float64)))
    seen, ranked = set(), []
    for index in order:
        if keys[index] in seen:
            continue
        seen.add(keys[index])
        ranked.append(int(index))
    return ranked


def evaluate(queries, gallery, keys, ids, relevant):
    scores = (normalise(queries) @ normalise(gallery).T).astype(np.float32)
    top, recall_hits, ap_sum, first_ranks = [], {k: 0 for k in KS}, 0.0, []
    for q in range(len(queries)):
        ranked = rank_distinct(scores[q], keys)
        top.append([[ids[i], keys[i].split(':')[0], float(scores[q, i]), i] for i in ranked[:10]])
        hit_ranks = [r + 1 for r, i in enumerate(ranked) if ids[i] in relevant[q]]
        first_ranks.append(hit_ranks[0])
        for k in KS:
            recall_hits[k] += hit_ranks[0] <= k
        ap = np.mean([(n + 1) / rank for n, rank in enumerate(hit_ranks)])
        ap_sum += ap
        if len(np.unique(scores[q])) == len(scores[q]) and len(set(keys)) == len(keys):
            truth = np.array([ids[i] in relevant[q] for i in range(len(ids))], dtype=int)
            assert abs(ap - average_precision_score(truth, scores[q])) < 1e-12
    return {
        'scores': scores.astype(np.float64).tolist(),
        'top10': top,
        'recallAtK': {str(k): recall_hits[k] / len(queries) for k in KS},
        'meanAveragePrecision': ap_sum / len(queries),
        'firstRelevantRank': first_ranks,
    }


def main():
    rng = np.random.default_rng(7)
    dim = 16
    # Single-modality gallery with a repeated id (study s3 listed twice).
    gallery_ids = [f's{i}' for i in range(30)]
    gallery_ids[17] = 's3'
    gallery = rng.normal(size=(30, dim))
    queries = gallery[[0, 3, 5, 9, 12, 20, 25, 29]] + 2.5 * rng.normal(size=(8, dim))
    relevant = [['s0'], ['s3'], ['s5', 's6'], ['s9'], ['s12'], ['s20'], ['s25'], ['s29']]
    single = evaluate(queries, gallery, [f'xray:{i}' for i in gallery_ids], gallery_ids, relevant)
    single.update({'galleryIds': gallery_ids, 'gallery': gallery.tolist(), 'queries': queries.tolist(),
                   'relevant': relevant})

    # Merged gallery: X-rays then ECGs of the same ten studies, text queries.
    study_ids = [f'p{i}' for i in range(10)]
    reports = rng.normal(size=(10, dim))
    xrays = reports + 2.0 * rng.normal(size=(10, dim))
    ecgs = reports + 2.5 * rng.normal(size=(10, dim))
    merged_gallery = np.concatenate([xrays, ecgs])
    keys = [f'xray:{i}' for i in study_ids] + [f'ecg:{i}' for i in study_ids]
    merged = evaluate(reports, merged_gallery, keys, study_ids + study_ids, [[i] for i in study_ids])
    merged.update({'studyIds': study_ids, 'reports': reports.tolist(), 'xrays': xrays.tolist(),
                   'ecgs': ecgs.tolist()})

    with open(OUT, 'w') as handle:
        json.dump({'generator': 'reference/eval_retrieval.py', 'single': single, 'merged': merged}, handle)
    print(f'wrote {OUT}')


if __name__ == '__main__':
    main()
