"""PyTorch side of bench/train.ts: pre-training throughput of the tiny MoRE model.

Trains the tiny reference-layout model of reference/train_more_parity.py on
its closed-form batches (4 samples, 2 accumulated batches per AdamW step) for
at least `min_seconds` and prints one JSON object with samples per second.
"""
import importlib.util
import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
spec = importlib.util.spec_from_file_location('train_more_parity', os.path.join(ROOT, 'reference', 'train_more_parity.py'))
parity = importlib.util.module_from_spec(spec)
spec.loader.exec_module(parity)

import torch  # noqa: E402


def main():
    config = json.loads(sys.argv[1])
    torch.set_num_threads(os.cpu_count() or 1)
    model = parity.build_model()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4, weight_decay=0.1)
    batches = [parity.make_batch(b) for b in range(parity.BATCHES)]

    def run_batch(index):
        loss = parity.batch_loss(model, batches[index % len(batches)])
        loss.backward()
        if index % 2 == 1:
            optimizer.step()
            optimizer.zero_grad()
        return loss.item()

    run_batch(0)
    run_batch(1)
    start, count = time.perf_counter(), 0
    while count < config['min_batches'] or time.perf_counter() - start < config['min_seconds']:
        run_batch(count)
        count += 1
    seconds = time.perf_counter() - start
    print(json.dumps({'samples_per_second': count * parity.BATCH / seconds, 'batches': count}))


if __name__ == '__main__':
    main()
