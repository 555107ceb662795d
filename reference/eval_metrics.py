"""Produce the scikit-learn fixtures for src/tasks/metrics.ts.

Run from the repository root:
    .venv/bin/python reference/eval_metrics.py
It writes test/fixtures/tasks/metrics.json. Scores are rounded to one or two
decimals on purpose, so many samples tie and the tie handling is exercised.
"""
import json
import math
import os

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    f1_score,
    roc_auc_score,
    roc_curve,
)

OUT = os.path.join('test', 'fixtures', 'tasks', 'metrics.json')


def nan_to_none(value):
    value = float(value)
    return None if math.isnan(value) else value


def binary_case(name, y_true, y_score):
    y_true = np.asarray(y_true, dtype=np.int64)
    y_score = np.asarray(y_score, dtype=np.float64)
    fpr, tpr, thresholds = roc_curve(y_true, y_score)
    return {
        'name': name,
        'yTrue': y_true.tolist(),
        'yScore': y_score.tolist(),
        'auroc': float(roc_auc_score(y_true, y_score)),
        'averagePrecision': float(average_precision_score(y_true, y_score)),
        'rocCurve': {
            'fpr': fpr.tolist(),
            'tpr': tpr.tolist(),
            # The first threshold is +inf, which JSON cannot hold.
            'thresholdsAfterFirst': thresholds[1:].tolist(),
        },
    }


def multilabel_case(rng):
    n, k = 60, 5
    y_true = (rng.random((n, k)) < np.array([0.3, 0.5, 0.2, 0.0, 0.6])).astype(np.int64)
    # Label 3 has no positives at all; label 4 gets no negatives once masked.
    y_score = np.round(rng.random((n, k)) * 0.6 + 0.4 * y_true, 1)
    mask = rng.random((n, k)) > 0.15
    mask[:, 4] = mask[:, 4] & (y_true[:, 4] == 1)
    labels = ['Atelectasis', 'Cardiomegaly', 'Edema', 'Absent', 'AllPositive']

    per_label_auroc, per_label_ap, per_label_f1 = [], [], []
    threshold = 0.5
    for j in range(k):
        t = y_true[mask[:, j], j]
        s = y_score[mask[:, j], j]
        defined = 0 < t.sum() < len(t)
        per_label_auroc.append(float(roc_auc_score(t, s)) if defined else None)
        per_label_ap.append(float(average_precision_score(t, s)) if t.sum() > 0 else None)
        per_label_f1.append(nan_to_none(f1_score(t, (s >= threshold).astype(int), zero_division=np.nan)))

    defined_auroc = [v for v in per_label_auroc if v is not None]
    defined_ap = [v for v in per_label_ap if v is not None]
    flat_true = y_true[mask]
    flat_score = y_score[mask]
    # Micro F1 pools the counts of every kept entry.
    flat_pred = (flat_score >= threshold).astype(int)
    return {
        'labels': labels,
        'yTrue': y_true.tolist(),
        'yScore': y_score.tolist(),
        'mask': mask.tolist(),
        'threshold': threshold,
        'auroc': {
            'perLabel': per_label_auroc,
            'macro': float(np.mean(defined_auroc)),
            'micro': float(roc_auc_score(flat_true, flat_score)),
        },
        'averagePrecision': {
            'perLabel': per_label_ap,
            'macro': float(np.mean(defined_ap)),
            'micro': float(average_precision_score(flat_true, flat_score)),
        },
        'f1': {
            'perLabel': per_label_f1,
            'macro': float(np.mean([v for v in per_label_f1 if v is not None])),
            'micro': float(f1_score(flat_true, flat_pred)),
        },
    }


def unmasked_multilabel_case(rng):
    """Build a case with every label defined and no mask, so scikit-learn averages by itself."""
    n, k = 40, 4
    y_true = (rng.random((n, k)) < 0.4).astype(np.int64)
    y_true[0] = 1
    y_true[1] = 0
    y_score = np.round(rng.random((n, k)) * 0.7 + 0.3 * y_true, 2)
    y_pred = (y_score >= 0.5).astype(int)
    return {
        'yTrue': y_true.tolist(),
        'yScore': y_score.tolist(),
        'threshold': 0.5,
        'aurocMacro': float(roc_auc_score(y_true, y_score, average='macro')),
        'aurocMicro': float(roc_auc_score(y_true, y_score, average='micro')),
        'apMacro': float(average_precision_score(y_true, y_score, average='macro')),
        'apMicro': float(average_precision_score(y_true, y_score, average='micro')),
        'f1Macro': float(f1_score(y_true, y_pred, average='macro')),
        'f1Micro': float(f1_score(y_true, y_pred, average='micro')),
    }


def multiclass_case(rng):
    n, c = 80, 4
    y = rng.integers(0, c, n)
    logits = rng.normal(size=(n, c))
    logits[np.arange(n), y] += 1.0
    logits = np.round(logits, 1)
    prob = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return {
        'yTrue': y.tolist(),
        'probabilities': prob.tolist(),
        'accuracy': float(accuracy_score(y, prob.argmax(axis=1))),
        'aurocOvrMacro': float(roc_auc_score(y, prob, multi_class='ovr', average='macro')),
    }


def main():
    rng = np.random.default_rng(20241021)
    y = (rng.random(50) < 0.4).astype(int)
    binary = [
        binary_case('ties one decimal', y, np.round(rng.random(50) * 0.7 + 0.3 * y, 1)),
        binary_case('no ties', y, rng.random(50) + 0.2 * y),
        binary_case('all scores equal', [0, 1, 0, 1, 1], [0.5] * 5),
        binary_case('perfect ranking', [0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]),
        binary_case('inverted ranking', [1, 1, 0, 0], [0.1, 0.2, 0.8, 0.9]),
        binary_case('ties across classes', [0, 1, 1, 0, 1, 0, 0], [0.3, 0.3, 0.7, 0.7, 0.7, 0.1, 0.9]),
    ]
    fixture = {
        'generator': 'reference/eval_metrics.py',
        'binary': binary,
        'multilabel': multilabel_case(rng),
        'multilabelUnmasked': unmasked_multilabel_case(rng),
        'multiclass': multiclass_case(rng),
    }
    with open(OUT, 'w') as handle:
        json.dump(fixture, handle)
    print(f'wrote {OUT}')


if __name__ == '__main__':
    main()
