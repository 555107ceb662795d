"""Oracle for the training loop in src/tasks/train.ts.

Builds a tiny three-tower contrastive model in PyTorch (an X-ray, an ECG and a
report tower, each Linear -> ReLU -> Linear into a 4-d shared space), trains
it with the update rule of the MoRE reference's `train_one_epoch` (summed
gradients of 3 accumulated batches, an optimiser step after the last batch of
an epoch even when fewer were accumulated, AdamW, CosineAnnealingWarmRestarts
stepped once per epoch) and the loss InfoNCE(report, X-ray) + InfoNCE(report,
ECG), each symmetric, and writes the initial weights, the data and every loss,
learning rate and parameter update to
test/fixtures/tasks/train/parity.json.

Run: .venv/bin/python reference/train_parity.py
"""
import json
import os

import numpy as np
import torch
import torch.nn.functional as F

OUT = os.path.join(os.path.dirname(__file__), '..', 'test', 'fixtures', 'tasks', 'train', 'parity.json')

SAMPLES, VALIDATION_SAMPLES = 16, 8
INPUT_WIDTHS = {'xray': 6, 'ecg': 5, 'text': 7}
HIDDEN, DIM = 8, 4
BATCH, ACCUMULATION, EPOCHS = 4, 3, 3
LR, WEIGHT_DECAY, T0, ETA_MIN, TEMPERATURE = 1e-2, 0.1, 2, 1e-3, 0.1


class Tower(torch.nn.Module):
    def __init__(self, width):
        super().__init__()
        self.fc1 = torch.nn.Linear(width, HIDDEN)
        self.fc2 = torch.nn.Linear(HIDDEN, DIM)

    def forward(self, x):
        return self.fc2(F.relu(self.fc1(x)))


def info_nce(query, positive):
    query, positive = F.normalize(query, dim=-1), F.normalize(positive, dim=-1)
    logits = query @ positive.T / TEMPERATURE
    return F.cross_entropy(logits, torch.arange(len(query)))


def batch_loss(towers, batch):
    xray, ecg, text = (towers[name](batch[name]) for name in ('xray', 'ecg', 'text'))
    report_xray = (info_nce(text, xray) + info_nce(xray, text)) / 2
    report_ecg = (info_nce(text, ecg) + info_nce(ecg, text)) / 2
    return report_xray + report_ecg


def main():
    torch.manual_seed(7)
    rng = np.random.default_rng(7)
    towers = torch.nn.ModuleDict({name: Tower(width) for name, width in INPUT_WIDTHS.items()})
    initial = {name: value.detach().numpy().copy() for name, value in towers.state_dict().items()}
    train = {name: rng.standard_normal((SAMPLES, width)).astype(np.float32) for name, width in INPUT_WIDTHS.items()}
    validation = {name: rng.standard_normal((VALIDATION_SAMPLES, width)).astype(np.float32) for name, width in INPUT_WIDTHS.items()}

    optimizer = torch.optim.AdamW(towers.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(optimizer, T_0=T0, eta_min=ETA_MIN)
    batches_per_epoch = SAMPLES // BATCH
    losses, step_weights, epochs = [], [], []
    for epoch in range(EPOCHS):
        towers.train()
        total = 0.0
        for step in range(batches_per_epoch):
            rows = slice(step * BATCH, (step + 1) * BATCH)
            batch = {name: torch.tensor(values[rows]) for name, values in train.items()}
            loss = batch_loss(towers, batch)
            loss.backward()
            if (step + 1) % ACCUMULATION == 0 or step + 1 == batches_per_epoch:
                optimizer.step()
                optimizer.zero_grad()
                step_weights.append({name: value.detach().numpy().ravel().tolist() for name, value in towers.state_dict().items()})
            losses.append(loss.item())
            total += loss.item()
        towers.eval()
        with torch.no_grad():
            validation_batches = [
                {name: torch.tensor(values[start:start + BATCH]) for name, values in validation.items()}
                for start in range(0, VALIDATION_SAMPLES, BATCH)
            ]
            validation_loss = sum(batch_loss(towers, batch).item() for batch in validation_batches) / len(validation_batches)
        scheduler.step()
        epochs.append({'trainLoss': total / batches_per_epoch, 'validationLoss': validation_loss, 'lr': scheduler.get_last_lr()[0]})

    fixture = {
        'torch': torch.__version__,
        'settings': {
            'batchSize': BATCH, 'accumulationSteps': ACCUMULATION, 'epochs': EPOCHS, 'lr': LR, 'weightDecay': WEIGHT_DECAY,
            't0': T0, 'etaMin': ETA_MIN, 'temperature': TEMPERATURE, 'hidden': HIDDEN, 'dim': DIM, 'inputWidths': INPUT_WIDTHS,
        },
        'initial': {name: {'shape': list(value.shape), 'values': value.ravel().tolist()} for name, value in initial.items()},
        'train': {name: values.tolist() for name, values in train.items()},
        'validation': {name: values.tolist() for name, values in validation.items()},
        'losses': losses,
        'stepWeights': step_weights,
        'epochs': epochs,
    }
    with open(OUT, 'w') as handle:
        json.dump(fixture, handle)
    print(f'wrote {os.path.relpath(OUT)}: {len(losses)} batches, {len(step_weights)} optimiser steps')


if __name__ == '__main__':
    main()
