"""Oracle for the fine-tuning heads in src/tasks/finetune.ts.

Builds tiny MoRE encoders with timm's `VisionTransformer` (32 x 32 images,
8-pixel patches, width 32, depth 4, 4 heads, qkv without bias, class-token
pooling). The ECG encoder is the same trunk with the MoRE reference's
convolutional patch embedding (Conv1d + ReLU + BatchNorm1d, twice) in place
of timm's. A 12 x 100 ECG then gives the same 16 tokens as a 32 x 32 image.
Every weight and BatchNorm statistic is random, so a weight in the wrong
place changes the numbers.

Each head follows src/tasks/probe.ts: per branch a projection head (Linear
without bias, BatchNorm1d, ReLU, Linear without bias, BatchNorm1d), then
concatenation, dropout and a Linear classifier. Fine-tuning freezes each
encoder except the qkv weights of its last three blocks
(`requires_grad` on those alone), which train together with the projection
heads and the classifier. The encoders run in evaluation mode, so the ECG
patch embedding normalises with its running statistics and leaves them
unchanged, while the projection heads run in training mode. Dropout, DropKey
and the ECG-branch drop are off so that the runs are deterministic.

Each case takes three AdamW steps (lr 1e-2, weight decay 0.02) on one batch
of 4 samples, with CosineAnnealingWarmRestarts (T_0 = 5) stepped after each
step, as the trainer steps it once per epoch of one batch. The loss is BCE
with logits (multi-label) or softmax cross-entropy (multi-class).

Cases: X-ray multi-label (4 labels), ECG multi-label (5 labels) and
X-ray + ECG 4-class.

Writes test/fixtures/tasks/finetune/finetune.safetensors (initial weights,
inputs, targets, and the trainable parameters after steps 1 and 3) and
finetune.json (settings, losses, the trainable names and torch's count of
trainable parameters). After step 3 it also stores each case's probabilities
in evaluation mode.

Run: .venv/bin/python reference/train_finetune.py
"""
import json
import os

import timm
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from timm.models.vision_transformer import VisionTransformer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, 'test', 'fixtures', 'tasks', 'finetune')

TRUNK = dict(embed_dim=32, depth=4, num_heads=4, mlp_ratio=2.0)
IMAGE = dict(img_size=32, patch_size=8, in_chans=3)
ECG = dict(leads=12, samples=100, conv_channels=16, kernel=5, stride=5)
HEAD = dict(hidden=32, output=16)
TRAINABLE_BLOCKS = 3
BATCH, STEPS, SNAPSHOT_STEPS = 4, 3, (1, 3)
LR, WEIGHT_DECAY, T0 = 1e-2, 0.02, 5


class EcgPatchEmbed(torch.nn.Module):
    """The MoRE reference's ECG patch embedding, sized down."""

    def __init__(self):
        super().__init__()
        channels, width = ECG['conv_channels'], TRUNK['embed_dim']
        self.conv1 = torch.nn.Sequential(
            torch.nn.Conv1d(ECG['leads'], channels, ECG['kernel'], stride=ECG['stride']),
            torch.nn.ReLU(),
            torch.nn.BatchNorm1d(channels))
        self.conv2 = torch.nn.Sequential(
            torch.nn.Conv1d(channels, width, ECG['kernel'], stride=1),
            torch.nn.ReLU(),
            torch.nn.BatchNorm1d(width))

    def forward(self, signals):
        return self.conv2(self.conv1(signals)).permute(0, 2, 1)


class LinearNorm(torch.nn.Module):
    def __init__(self, inputs, outputs):
        super().__init__()
        self.linear = torch.nn.Linear(inputs, outputs, bias=False)
        self.bn = torch.nn.BatchNorm1d(outputs)

    def forward(self, x):
        return self.bn(self.linear(x))


class Projector(torch.nn.Module):
    def __init__(self, inputs):
        super().__init__()
        self.layers = torch.nn.Sequential(LinearNorm(inputs, HEAD['hidden']), torch.nn.ReLU(),
                                          LinearNorm(HEAD['hidden'], HEAD['output']))

    def forward(self, x):
        return self.layers(x)


class Head(torch.nn.Module):
    """Projection heads, concatenation and a linear classifier, under the names of src/tasks/probe.ts."""

    def __init__(self, branches, classes):
        super().__init__()
        self.branches = branches
        for branch in branches:
            self.add_module(f'projector_{branch}', Projector(TRUNK['embed_dim']))
        self.classifier = torch.nn.Linear(HEAD['output'] * len(branches), classes)

    def forward(self, features):
        parts = [getattr(self, f'projector_{branch}')(features[branch]) for branch in self.branches]
        return self.classifier(torch.cat(parts, dim=1))


def build_encoder(kind):
    encoder = VisionTransformer(**IMAGE, **TRUNK, qkv_bias=False, num_classes=0, class_token=True, global_pool='token')
    if kind == 'ecg':
        encoder.patch_embed = EcgPatchEmbed()
    return encoder


def randomise(module, generator):
    """Overwrites every weight and BatchNorm statistic with random values scaled by fan-in."""
    with torch.no_grad():
        for name, tensor in module.state_dict().items():
            if name.endswith('num_batches_tracked'):
                tensor.fill_(7)
                continue
            noise = torch.randn(tensor.shape, generator=generator)
            if name.endswith('running_var'):
                tensor.copy_(0.5 + torch.rand(tensor.shape, generator=generator))
            elif tensor.dim() == 1 and (name.endswith('.weight')):
                tensor.copy_(1 + 0.2 * noise)
            elif tensor.dim() == 1 or name in ('cls_token', 'pos_embed'):
                tensor.copy_(0.1 * noise)
            else:
                tensor.copy_(noise / tensor[0].numel() ** 0.5)


def trainable_qkv_names(encoder):
    depth = len(encoder.blocks)
    return [f'blocks.{index}.attn.qkv.weight' for index in range(depth - TRAINABLE_BLOCKS, depth)]


def run_case(name, branches, kind, classes, encoders, inputs, targets, seed):
    generator = torch.Generator().manual_seed(seed)
    head = Head(branches, classes)
    randomise(head, generator)
    initial_head = {key: value.clone() for key, value in head.state_dict().items()}
    initial_encoders = {branch: {key: value.clone() for key, value in encoders[branch].state_dict().items()}
                        for branch in branches}

    prefixes = {'image': 'xray_model.vit_model.', 'ecg': 'ecg_model.vit_model.'}
    trainable = {}
    for branch in branches:
        encoder = encoders[branch]
        encoder.requires_grad_(False)
        encoder.eval()
        for qkv in trainable_qkv_names(encoder):
            parameter = encoder.get_parameter(qkv)
            parameter.requires_grad_(True)
            trainable[prefixes[branch] + qkv] = parameter
    for key, parameter in head.named_parameters():
        trainable[key] = parameter
    head.train()

    # Every parameter that requires a gradient, counted over the encoders and the head.
    modules = [encoders[branch] for branch in branches] + [head]
    count = sum(p.numel() for module in modules for p in module.parameters() if p.requires_grad)
    optimizer = torch.optim.AdamW(list(trainable.values()), lr=LR, weight_decay=WEIGHT_DECAY)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(optimizer, T_0=T0)

    losses, snapshots = [], {}
    for step in range(1, STEPS + 1):
        features = {branch: encoders[branch](inputs[branch]) for branch in branches}
        logits = head(features)
        if kind == 'multilabel':
            loss = F.binary_cross_entropy_with_logits(logits, targets)
        else:
            loss = F.cross_entropy(logits, targets)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        scheduler.step()
        losses.append(loss.item())
        if step in SNAPSHOT_STEPS:
            snapshots[step] = {key: value.detach().clone() for key, value in trainable.items()}

    # Probabilities of the fine-tuned model in evaluation mode (BatchNorm on running statistics).
    head.eval()
    with torch.no_grad():
        logits = head({branch: encoders[branch](inputs[branch]) for branch in branches})
        probabilities = torch.sigmoid(logits) if kind == 'multilabel' else torch.softmax(logits, dim=1)

    # The frozen parts must not have moved in PyTorch either.
    for branch in branches:
        for key, value in encoders[branch].state_dict().items():
            if prefixes[branch] + key not in trainable and not torch.equal(value, initial_encoders[branch][key]):
                raise SystemExit(f'{name}: frozen weight {key} changed')
        encoders[branch].load_state_dict(initial_encoders[branch])
        encoders[branch].requires_grad_(False)

    tensors = {f'{name}.head.{key}': value for key, value in initial_head.items()}
    tensors[f'{name}.targets'] = targets.float()
    tensors[f'{name}.probabilities'] = probabilities
    for step, values in snapshots.items():
        for key, value in values.items():
            tensors[f'{name}.step{step}.{key}'] = value
    record = {
        'name': name, 'branches': branches, 'kind': kind, 'classes': classes, 'losses': losses,
        'trainable': list(trainable), 'trainableParameters': count,
    }
    return tensors, record


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(20241205)
    encoders = {'image': build_encoder('image'), 'ecg': build_encoder('ecg')}
    for encoder in encoders.values():
        randomise(encoder, generator)
    images = torch.randn(BATCH, IMAGE['in_chans'], IMAGE['img_size'], IMAGE['img_size'], generator=generator)
    ecgs = torch.randn(BATCH, ECG['leads'], ECG['samples'], generator=generator)
    inputs = {'image': images, 'ecg': ecgs}

    tensors = {f'xray.{key}': value for key, value in encoders['image'].state_dict().items()}
    tensors.update({f'ecg.{key}': value for key, value in encoders['ecg'].state_dict().items()})
    tensors['images'] = images.permute(0, 2, 3, 1)  # stored NHWC, as our encoder takes images
    tensors['ecgs'] = ecgs

    multilabel_xray = (torch.rand(BATCH, 4, generator=generator) < 0.5).float()
    multilabel_ecg = (torch.rand(BATCH, 5, generator=generator) < 0.5).float()
    classes = torch.tensor([0, 3, 1, 3])
    cases = [
        run_case('xray_multilabel', ['image'], 'multilabel', 4, encoders, inputs, multilabel_xray, 1),
        run_case('ecg_multilabel', ['ecg'], 'multilabel', 5, encoders, inputs, multilabel_ecg, 2),
        run_case('xray_ecg_multiclass', ['image', 'ecg'], 'multiclass', 4, encoders, inputs, classes, 3),
    ]
    records = []
    for case_tensors, record in cases:
        tensors.update(case_tensors)
        records.append(record)

    oracle = f'timm {timm.__version__}, torch {torch.__version__}'
    weights_file = os.path.join(OUT, 'finetune.safetensors')
    save_file({key: value.detach().float().contiguous() for key, value in tensors.items()}, weights_file,
              metadata={'oracle': oracle})
    settings = {
        'trunk': {'width': TRUNK['embed_dim'], 'depth': TRUNK['depth'], 'heads': TRUNK['num_heads'],
                  'mlpDim': int(TRUNK['embed_dim'] * TRUNK['mlp_ratio'])},
        'image': {'imageSize': IMAGE['img_size'], 'patchSize': IMAGE['patch_size'], 'channels': IMAGE['in_chans']},
        'ecg': {'leads': ECG['leads'], 'samples': ECG['samples'], 'convChannels': ECG['conv_channels'],
                'conv1Kernel': ECG['kernel'], 'conv1Stride': ECG['stride'], 'conv2Kernel': ECG['kernel']},
        'head': {'hiddenDim': HEAD['hidden'], 'outputDim': HEAD['output']},
        'trainableBlocks': TRAINABLE_BLOCKS, 'batch': BATCH, 'steps': STEPS, 'snapshotSteps': list(SNAPSHOT_STEPS),
        'lr': LR, 'weightDecay': WEIGHT_DECAY, 't0': T0,
    }
    with open(os.path.join(OUT, 'finetune.json'), 'w') as handle:
        json.dump({'oracle': oracle, 'settings': settings, 'cases': records}, handle, indent=1)
        handle.write('\n')
    print(f'wrote {os.path.relpath(weights_file)} ({os.path.getsize(weights_file)} bytes) and finetune.json')


if __name__ == '__main__':
    main()
