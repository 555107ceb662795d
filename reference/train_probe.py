"""Oracle for the probe heads in src/tasks/probe.ts.

Builds probe heads in PyTorch with the layout of src/tasks/probe.ts: per
branch a projection head (Linear without bias, BatchNorm1d, ReLU, Linear
without bias, BatchNorm1d), then concatenation and a Linear classifier. It
trains each for 3 epochs of one full batch with AdamW and
CosineAnnealingWarmRestarts stepped per epoch, and writes the weights, features, targets, losses and trained
weights to test/fixtures/tasks/train/probe.json. Dropout and the ECG-branch
drop are off so that the runs are deterministic.

Cases: a multi-label linear probe on X-ray features (frozen projector in
evaluation mode, BCE with logits) and a 4-class fine-tuned X-ray + ECG probe
(trainable projectors in training mode, softmax cross-entropy).

Run: .venv/bin/python reference/train_probe.py
"""
import json
import os

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import accuracy_score, roc_auc_score

OUT = os.path.join(os.path.dirname(__file__), '..', 'test', 'fixtures', 'tasks', 'train', 'probe.json')
EPOCHS, LR, WEIGHT_DECAY, T0 = 3, 1e-2, 0.02, 5


class LinearNorm(torch.nn.Module):
    def __init__(self, inputs, outputs):
        super().__init__()
        self.linear = torch.nn.Linear(inputs, outputs, bias=False)
        self.bn = torch.nn.BatchNorm1d(outputs)

    def forward(self, x):
        return self.bn(self.linear(x))


class Projector(torch.nn.Module):
    def __init__(self, inputs, hidden, outputs):
        super().__init__()
        self.layers = torch.nn.Sequential(LinearNorm(inputs, hidden), torch.nn.ReLU(), LinearNorm(hidden, outputs))

    def forward(self, x):
        return self.layers(x)


class Probe(torch.nn.Module):
    def __init__(self, dims, classes):
        super().__init__()
        self.branches = list(dims)
        for branch, (inputs, hidden, outputs) in dims.items():
            self.add_module(f'projector_{branch}', Projector(inputs, hidden, outputs))
        self.classifier = torch.nn.Linear(sum(d[2] for d in dims.values()), classes)

    def forward(self, features):
        parts = [getattr(self, f'projector_{branch}')(features[branch]) for branch in self.branches]
        return self.classifier(torch.cat(parts, dim=1))


def randomise_batch_norms(module, generator):
    # Fresh BatchNorm layers are the identity; give them pre-trained-looking statistics.
    for layer in module.modules():
        if isinstance(layer, torch.nn.BatchNorm1d):
            with torch.no_grad():
                layer.weight.copy_(1 + 0.1 * torch.randn(layer.num_features, generator=generator))
                layer.bias.copy_(0.1 * torch.randn(layer.num_features, generator=generator))
                layer.running_mean.copy_(0.2 * torch.randn(layer.num_features, generator=generator))
                layer.running_var.copy_(1 + 0.3 * torch.rand(layer.num_features, generator=generator))
                layer.num_batches_tracked.fill_(7)


def weights_of(module):
    return {name: {'shape': list(value.shape), 'values': value.detach().float().numpy().ravel().tolist()}
            for name, value in module.state_dict().items()}


def run_case(name, seed, dims, classes, kind, train_projector, samples, validation_samples):
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    probe = Probe(dims, classes)
    randomise_batch_norms(probe, generator)
    initial = weights_of(probe)

    def make_split(n):
        features = {branch: rng.standard_normal((n, d[0])).astype(np.float32) for branch, d in dims.items()}
        if kind == 'multilabel':
            targets = (rng.random((n, classes)) < 0.4).astype(np.float32)
        else:
            targets = rng.integers(0, classes, n)
        return features, targets

    train_features, train_targets = make_split(samples)
    validation_features, validation_targets = make_split(validation_samples)

    def loss_of(features, targets):
        logits = probe({b: torch.tensor(v) for b, v in features.items()})
        if kind == 'multilabel':
            return F.binary_cross_entropy_with_logits(logits, torch.tensor(targets))
        return F.cross_entropy(logits, torch.tensor(targets))

    if not train_projector:
        for branch in dims:
            getattr(probe, f'projector_{branch}').requires_grad_(False)
    parameters = [p for p in probe.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=LR, weight_decay=WEIGHT_DECAY)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(optimizer, T_0=T0)
    losses, validation_losses = [], []
    for _ in range(EPOCHS):
        probe.train()
        if not train_projector:
            for branch in dims:
                getattr(probe, f'projector_{branch}').eval()
        loss = loss_of(train_features, train_targets)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
        probe.eval()
        with torch.no_grad():
            # Mean over validation batches of the training batch size, as the reference's validate().
            batch_losses = [
                loss_of({b: v[start:start + samples] for b, v in validation_features.items()},
                        validation_targets[start:start + samples]).item()
                for start in range(0, validation_samples, samples)
            ]
            validation_losses.append(sum(batch_losses) / len(batch_losses))
        scheduler.step()

    probe.eval()
    with torch.no_grad():
        logits = probe({b: torch.tensor(v) for b, v in validation_features.items()})
        probabilities = torch.sigmoid(logits) if kind == 'multilabel' else torch.softmax(logits, dim=1)
    scores = probabilities.numpy()
    if kind == 'multilabel':
        metrics = {'auroc': roc_auc_score(validation_targets, scores, average=None).tolist(),
                   'macroAuroc': roc_auc_score(validation_targets, scores, average='macro'),
                   'microAuroc': roc_auc_score(validation_targets, scores, average='micro')}
    else:
        metrics = {'accuracy': accuracy_score(validation_targets, scores.argmax(axis=1)),
                   'macroAuroc': roc_auc_score(validation_targets, scores, multi_class='ovr', average='macro')}
    return {
        'metrics': metrics,
        'name': name, 'kind': kind, 'classes': classes, 'trainProjector': train_projector,
        'dims': {branch: list(d) for branch, d in dims.items()},
        'initial': initial,
        'train': {'features': {b: v.ravel().tolist() for b, v in train_features.items()}, 'targets': train_targets.tolist()},
        'validation': {'features': {b: v.ravel().tolist() for b, v in validation_features.items()},
                       'targets': validation_targets.tolist()},
        'losses': losses,
        'validationLosses': validation_losses,
        'trained': weights_of(probe),
        'probabilities': probabilities.numpy().tolist(),
    }


def main():
    cases = [
        run_case('multilabel linear probe', 3, {'image': (16, 16, 8)}, 4, 'multilabel', False, 12, 16),
        run_case('multiclass fine-tune', 4, {'image': (16, 16, 8), 'ecg': (12, 12, 6)}, 4, 'multiclass', True, 12, 16),
    ]
    fixture = {'torch': torch.__version__, 'settings': {'epochs': EPOCHS, 'lr': LR, 'weightDecay': WEIGHT_DECAY, 't0': T0},
               'cases': cases}
    with open(OUT, 'w') as handle:
        json.dump(fixture, handle)
    print(f'wrote {os.path.relpath(OUT)}')


if __name__ == '__main__':
    main()
