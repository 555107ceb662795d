"""Produce the PyTorch / numpy fixtures for src/tasks/explain.ts.

Run from the repository root:
    .venv/bin/python reference/eval_explain.py
It writes test/fixtures/tasks/explain.json with three cases:

- stack: a tiny self-attention stack (3 layers, 2 heads, 5 tokens, batch 2).
  PyTorch autograd gives the gradient of a cosine target with respect to
  zero offsets added to every post-softmax attention map, and numpy applies
  the relevance rule of Chefer, Gur and Wolf (CVPR 2021): R = I, then for
  each layer R += mean over heads of relu(grad * A) @ R.
- receptive: the samples each ECG token covers, read from the gradient of
  an all-ones two-layer Conv1d stack, and a relevance spread over them.
- upsample: a 3 x 4 patch grid resized to a 48 x 64 image with
  torch.nn.functional.interpolate (bilinear, align_corners=False).
"""
import json
import os

import numpy as np
import torch
import torch.nn.functional as F

OUT = os.path.join('test', 'fixtures', 'tasks', 'explain.json')


def relevance_rule(attentions, gradients):
    """Apply R = I; R += mean_h(relu(G * A)) @ R layer by layer, per sample."""
    batch, _, tokens, _ = attentions[0].shape
    relevance = np.tile(np.eye(tokens), (batch, 1, 1))
    for attention, gradient in zip(attentions, gradients):
        weighted = np.maximum(attention * gradient, 0).mean(axis=1)
        relevance = relevance + weighted @ relevance
    return relevance


def stack_case(generator):
    batch, tokens, width, heads, layers = 2, 5, 8, 2, 3
    head_dim = width // heads
    x = torch.randn(batch, tokens, width, generator=generator, dtype=torch.float64)
    reference = torch.randn(width, generator=generator, dtype=torch.float64)
    qkv_weights = [torch.randn(width, 3 * width, generator=generator, dtype=torch.float64) * 0.5 for _ in range(layers)]
    out_weights = [torch.randn(width, width, generator=generator, dtype=torch.float64) * 0.5 for _ in range(layers)]
    offsets = [torch.zeros(batch, heads, tokens, tokens, dtype=torch.float64, requires_grad=True) for _ in range(layers)]

    hidden = x
    attentions = []
    for layer in range(layers):
        qkv = (hidden @ qkv_weights[layer]).reshape(batch, tokens, 3, heads, head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attention = torch.softmax(q @ k.transpose(-1, -2) / np.sqrt(head_dim), dim=-1)
        attentions.append(attention.detach().numpy())
        mixed = ((attention + offsets[layer]) @ v).permute(0, 2, 1, 3).reshape(batch, tokens, width)
        hidden = hidden + torch.tanh(mixed @ out_weights[layer])
    target = F.cosine_similarity(hidden[:, 0, :], reference.unsqueeze(0), dim=-1).sum()
    target.backward()
    gradients = [offset.grad.numpy() for offset in offsets]
    return {
        'heads': heads,
        'x': x.numpy().tolist(),
        'reference': reference.numpy().tolist(),
        'qkvWeights': [w.numpy().tolist() for w in qkv_weights],
        'outWeights': [w.numpy().tolist() for w in out_weights],
        'target': float(target.detach()),
        'attentions': [a.tolist() for a in attentions],
        'gradients': [g.tolist() for g in gradients],
        'relevance': relevance_rule(attentions, gradients).tolist(),
    }


def receptive_case(generator):
    samples, kernel1, stride1, kernel2 = 50, 5, 5, 5
    signal = torch.zeros(1, 1, samples, dtype=torch.float64, requires_grad=True)
    first = F.conv1d(signal, torch.ones(1, 1, kernel1, dtype=torch.float64), stride=stride1)
    tokens = F.conv1d(first, torch.ones(1, 1, kernel2, dtype=torch.float64)).shape[-1]
    coverage = np.zeros((tokens, samples))
    for token in range(tokens):
        if signal.grad is not None:
            signal.grad.zero_()
        first = F.conv1d(signal + 0, torch.ones(1, 1, kernel1, dtype=torch.float64), stride=stride1)
        second = F.conv1d(first, torch.ones(1, 1, kernel2, dtype=torch.float64))
        second[0, 0, token].backward()
        coverage[token] = (signal.grad[0, 0].numpy() != 0).astype(float)
    token_relevance = torch.rand(tokens, generator=generator, dtype=torch.float64).numpy()
    # Each token's relevance is spread evenly over the samples it covers.
    per_sample = (token_relevance[:, None] * coverage / coverage.sum(axis=1, keepdims=True)).sum(axis=0)
    return {
        'samples': samples,
        'layers': [{'kernel': kernel1, 'stride': stride1}, {'kernel': kernel2, 'stride': 1}],
        'tokens': tokens,
        'coverage': coverage.tolist(),
        'tokenRelevance': token_relevance.tolist(),
        'sampleRelevance': per_sample.tolist(),
    }


def upsample_case(generator):
    rows, cols, height, width = 3, 4, 48, 64
    grid = torch.rand(1, 1, rows, cols, generator=generator, dtype=torch.float64)
    image = F.interpolate(grid, size=(height, width), mode='bilinear', align_corners=False)
    return {
        'rows': rows,
        'cols': cols,
        'height': height,
        'width': width,
        'grid': grid[0, 0].numpy().ravel().tolist(),
        'image': image[0, 0].numpy().ravel().tolist(),
    }


def main():
    generator = torch.Generator().manual_seed(2021)
    fixture = {
        'generator': 'reference/eval_explain.py',
        'stack': stack_case(generator),
        'receptive': receptive_case(generator),
        'upsample': upsample_case(generator),
    }
    with open(OUT, 'w') as handle:
        json.dump(fixture, handle)
    print(f'wrote {OUT}')


if __name__ == '__main__':
    main()
