"""Oracle for training the tiny MoRE model with src/tasks/train.ts.

Loads the tiny model of reference/model_text.py (the reference MultiModal's
module names, LoRA on the text encoder) from
test/fixtures/model/text/more-tiny/reference.safetensors and turns every
dropout off. The TypeScript side turns DropKey, text dropout and LoRA dropout
off too. It then trains the model in training mode for 2 epochs of 4 batches
of 4 samples with the reference's update rule. That rule sums the gradients of
2 accumulated batches, steps AdamW over the trainable parameters and steps
CosineAnnealingWarmRestarts once per epoch. The loss is
InfoNCE(report, X-ray) + InfoNCE(report, ECG), each symmetric, at
temperature 0.1 (at MoRE's 0.02 the logits are 50 times the cosine
similarities, and float32 rounding alone moves the loss by about 1e-4). Inputs come from closed-form formulas that the test
repeats, so no input is stored.

It writes to test/fixtures/tasks/train/more_parity.json every batch loss and,
after optimiser steps 1 and 3, for each tensor of the state_dict its sum, sum
of absolute values and first 16 values.

Run: .venv/bin/python reference/train_more_parity.py
"""
import importlib.util
import json
import math
import os

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURE = os.path.join(ROOT, 'test', 'fixtures', 'model', 'text', 'more-tiny')
OUT = os.path.join(ROOT, 'test', 'fixtures', 'tasks', 'train', 'more_parity.json')

# model_text.py hides the broken torchvision wheel before torch loads; importing it first keeps that order.
spec = importlib.util.spec_from_file_location('model_text', os.path.join(ROOT, 'reference', 'model_text.py'))
model_text = importlib.util.module_from_spec(spec)
spec.loader.exec_module(model_text)

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from safetensors.torch import load_file  # noqa: E402
from transformers import RobertaConfig  # noqa: E402

BATCH, BATCHES, ACCUMULATION, EPOCHS = 4, 4, 2, 2
LR, WEIGHT_DECAY, T0, ETA_MIN, TEMPERATURE = 1e-4, 0.1, 2, 1e-5, 0.1
# Some gradients are zero in exact arithmetic and rounding noise in float32 (attention key biases,
# which the softmax cancels, and biases that the projection heads' BatchNorm cancels). Adam's first
# step moves such a weight by about lr in the direction of the noise's sign, which differs between
# frameworks, so this oracle uses eps 1e-6 to keep noise-sized gradients from taking full steps.
EPS = 1e-6
TOKENS = 10
SNAPSHOT_STEPS = (1, 3)


def xray_sample(n):
    """[3, 64, 64]: sin(0.001 * k * (n + 1) + n) at flat index k = (c * 64 + h) * 64 + w."""
    k = np.arange(3 * 64 * 64, dtype=np.float64)
    return np.sin(0.001 * k * (n + 1) + n).astype(np.float32).reshape(3, 64, 64)


def ecg_sample(n):
    """[12, 1000]: 0.8 * sin(0.05 * t * (lead + 1) / 3 + 0.7 * n)."""
    lead = np.arange(12, dtype=np.float64)[:, None]
    t = np.arange(1000, dtype=np.float64)[None, :]
    return (0.8 * np.sin(0.05 * t * (lead + 1) / 3 + 0.7 * n)).astype(np.float32)


def tokens_sample(n):
    """Token ids and mask: <s>, 4 + n % 5 words, </s>, then padding to 10 tokens."""
    words = 4 + n % 5
    ids = [0] + [3 + (7 * n + 13 * t) % 90 for t in range(words)] + [2]
    ids += [1] * (TOKENS - len(ids))
    return ids, [1 if i != 1 else 0 for i in ids]


def make_batch(b):
    samples = range(b * BATCH, (b + 1) * BATCH)
    tokens = [tokens_sample(n) for n in samples]
    return (
        torch.tensor(np.stack([xray_sample(n) for n in samples])),
        torch.tensor(np.stack([ecg_sample(n) for n in samples])),
        torch.tensor([ids for ids, _ in tokens]),
        torch.tensor([mask for _, mask in tokens]),
    )


def info_nce(query, positive):
    logits = F.normalize(query, dim=-1) @ F.normalize(positive, dim=-1).T / TEMPERATURE
    return F.cross_entropy(logits, torch.arange(len(query)))


def snapshot(model):
    out = {}
    for name, value in model.state_dict().items():
        flat = value.detach().double().flatten()
        out[name] = {'sum': flat.sum().item(), 'absSum': flat.abs().sum().item(), 'size': flat.numel(),
                     'head': flat[:16].tolist()}
    return out


def build_model():
    """Returns the tiny reference-layout model with the fixture's weights, dropout off, in training mode."""
    with open(os.path.join(FIXTURE, 'text-config.json')) as handle:
        text_config = RobertaConfig.from_dict(json.load(handle))
    model = model_text.TinyMultiModal(text_config)
    model.load_state_dict(load_file(os.path.join(FIXTURE, 'reference.safetensors')))
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    model.train()
    return model


def batch_loss(model, batch):
    xray, ecg, ids, mask = batch
    xray_p, ecg_p, text_p = model(xray, ecg, ids, mask)
    return (info_nce(text_p, xray_p) + info_nce(xray_p, text_p)) / 2 + (info_nce(text_p, ecg_p) + info_nce(ecg_p, text_p)) / 2


def main():
    model = build_model()

    parameters = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=LR, weight_decay=WEIGHT_DECAY, eps=EPS)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(optimizer, T_0=T0, eta_min=ETA_MIN)
    losses, snapshots, steps = [], {}, 0
    for _ in range(EPOCHS):
        for b in range(BATCHES):
            loss = batch_loss(model, make_batch(b))
            loss.backward()
            losses.append(loss.item())
            if (b + 1) % ACCUMULATION == 0 or b + 1 == BATCHES:
                optimizer.step()
                optimizer.zero_grad()
                steps += 1
                if steps in SNAPSHOT_STEPS:
                    snapshots[str(steps)] = snapshot(model)
        scheduler.step()

    fixture = {
        'torch': torch.__version__,
        'settings': {'batchSize': BATCH, 'batches': BATCHES, 'accumulationSteps': ACCUMULATION, 'epochs': EPOCHS,
                     'lr': LR, 'eps': EPS, 'weightDecay': WEIGHT_DECAY, 't0': T0, 'etaMin': ETA_MIN, 'temperature': TEMPERATURE},
        'trainable': sorted(name for name, p in model.named_parameters() if p.requires_grad),
        'losses': losses,
        'snapshots': snapshots,
    }
    with open(OUT, 'w') as handle:
        json.dump(fixture, handle)
    print(f'wrote {os.path.relpath(OUT)}: {len(losses)} batches, {steps} optimiser steps, '
          f'{len(fixture["trainable"])} trainable tensors, {math.fsum(losses):.6f} summed loss')


if __name__ == '__main__':
    main()
