"""Produce the numpy / scipy / scikit-learn fixtures for src/tasks/zeroshot.ts.

Run from the repository root:
    .venv/bin/python reference/eval_zeroshot.py
It writes test/fixtures/tasks/zeroshot.json. The third class's labels are
inverted on purpose, so its AUROC falls below 0.5 and must be flagged.
"""
import json
import os

import numpy as np
from scipy.special import softmax
from sklearn.metrics import roc_auc_score

OUT = os.path.join('test', 'fixtures', 'tasks', 'zeroshot.json')


def unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def ecg_case(rng):
    """Build PTB-XL-style multi-hot labels, reduce them by the priority NORM > STTC > MI > HYP > CD, and score both ways."""
    classes = ['NORM', 'MI', 'STTC', 'CD', 'HYP']
    priority = ['NORM', 'STTC', 'MI', 'HYP', 'CD']
    labels = (rng.random((60, 5)) < [0.35, 0.25, 0.25, 0.2, 0.15]).astype(int)
    labels[:3] = 0  # records without a superclass are left out of the single-label figures
    scores = np.round(rng.normal(size=(60, 5)) + 0.8 * labels, 2)
    single = []
    for row in labels:
        chosen = next((classes.index(name) for name in priority if row[classes.index(name)] == 1), -1)
        single.append(chosen)
    single = np.array(single)
    kept = single >= 0
    one_hot = np.eye(5, dtype=int)[single[kept]]
    return {
        'classes': classes,
        'labels': labels.tolist(),
        'scores': scores.tolist(),
        'singleLabel': single.tolist(),
        'multiLabelAuroc': [float(roc_auc_score(labels[:, c], scores[:, c])) for c in range(5)],
        'singleLabelAuroc': [float(roc_auc_score(one_hot[:, c], scores[kept, c])) for c in range(5)],
        'singleLabelAccuracy': float((scores[kept].argmax(axis=1) == single[kept]).mean()),
    }


def main():
    rng = np.random.default_rng(5)
    samples_count, dim = 40, 12
    classes = ['Atelectasis', 'Edema', 'Inverted']
    prompts = {name: rng.normal(size=(count, dim)) for name, count in zip(classes, [3, 2, 4])}
    samples = rng.normal(size=(samples_count, dim))
    centre = np.stack([unit(prompts[name]).mean(axis=0) for name in classes])
    affinity = unit(samples) @ centre.T + 0.3 * rng.normal(size=(samples_count, len(classes)))
    labels = (affinity > np.median(affinity, axis=0)).astype(int)
    labels[:, 2] = 1 - labels[:, 2]

    cosines = {name: unit(samples) @ unit(prompts[name]).T for name in classes}
    cases = {}
    for reduction in ['max', 'mean']:
        reduce = np.max if reduction == 'max' else np.mean
        similarity = np.stack([reduce(cosines[name], axis=1) for name in classes], axis=1)
        scores = (similarity - similarity.mean(axis=0)) / similarity.std(axis=0)
        cases[reduction] = {
            'similarity': similarity.tolist(),
            'scores': scores.tolist(),
            'aurocPerClass': [float(roc_auc_score(labels[:, c], scores[:, c])) for c in range(len(classes))],
            'aurocMicro': float(roc_auc_score(labels.ravel(), scores.ravel())),
        }

    temperature = 0.1
    positives = rng.normal(size=(len(classes), dim))
    negatives = rng.normal(size=(len(classes), dim))
    pair_logits = np.stack([unit(samples) @ unit(positives).T, unit(samples) @ unit(negatives).T], axis=-1) / temperature
    pair_probability = softmax(pair_logits, axis=-1)[..., 0]

    fixture = {
        'generator': 'reference/eval_zeroshot.py',
        'ecg': ecg_case(rng),
        'classes': classes,
        'samples': samples.tolist(),
        'prompts': {name: value.tolist() for name, value in prompts.items()},
        'labels': labels.tolist(),
        'cases': cases,
        'pairs': {
            'temperature': temperature,
            'positives': positives.tolist(),
            'negatives': negatives.tolist(),
            'probabilities': pair_probability.tolist(),
        },
    }
    with open(OUT, 'w') as handle:
        json.dump(fixture, handle)
    print(f'wrote {OUT}')


if __name__ == '__main__':
    main()
