"""Oracle for src/tasks/optim.ts and src/tasks/schedule.ts.

Runs torch.optim.AdamW and torch.optim.lr_scheduler.CosineAnnealingWarmRestarts
on small fixed inputs and writes what they produce to
test/fixtures/tasks/train/optim_schedule.json:

- schedules: the learning rate after construction and after each call of
  step() (null) or step(epoch), for several (T_0, T_mult, eta_min) settings;
- adamw: parameters after every step of a few AdamW runs whose gradients and
  learning rates are given, plus the final moments.

Run: .venv/bin/python reference/train_optim_schedule.py
"""
import json
import os
import warnings

import numpy as np
import torch

OUT = os.path.join(os.path.dirname(__file__), '..', 'test', 'fixtures', 'tasks', 'train', 'optim_schedule.json')


def run_schedule(base_lr, t0, t_mult, eta_min, calls):
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=base_lr)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(optimizer, T_0=t0, T_mult=t_mult, eta_min=eta_min)
    lrs = [scheduler.get_last_lr()[0]]
    with warnings.catch_warnings():
        # step(epoch) is deprecated in PyTorch but still the documented way to step fractionally.
        warnings.simplefilter('ignore')
        for call in calls:
            optimizer.step()
            if call is None:
                scheduler.step()
            else:
                scheduler.step(call)
            lrs.append(scheduler.get_last_lr()[0])
    return {'baseLr': base_lr, 't0': t0, 'tMult': t_mult, 'etaMin': eta_min, 'calls': calls, 'lrs': lrs}


def schedules():
    return [
        run_schedule(3e-5, 10, 1, 3e-6, [None] * 35),
        run_schedule(0.1, 3, 2, 1e-4, [None] * 40),
        run_schedule(1e-2, 5, 2, 0.0, [0, 0.25, 0.5, 1.3, 4.99, 5, 7.5, 14.9, 15, 15.0001, 40.7, 2.2, 100, 1234.5]),
        run_schedule(1.0, 4, 1, 0.1, [0.5, None, 3.9, None, 4, 9.25, None, None, 13, None]),
        run_schedule(5e-4, 2, 3, 1e-5, [None, None, 7.75, None, None, 26, 80.5, None]),
    ]


def run_adamw(seed, shapes, steps, lr_values, weight_decay, betas, eps, amsgrad, missing_grad):
    rng = np.random.default_rng(seed)
    initial = [rng.standard_normal(shape).astype(np.float32) for shape in shapes]
    grads = [[(rng.standard_normal(shape) * 0.5).astype(np.float32) for shape in shapes] for _ in range(steps)]
    params = [torch.nn.Parameter(torch.tensor(value)) for value in initial]
    optimizer = torch.optim.AdamW(params, lr=lr_values[0], betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad)
    after = []
    for step in range(steps):
        for group in optimizer.param_groups:
            group['lr'] = lr_values[step]
        for index, param in enumerate(params):
            # A parameter without a gradient at a step is skipped by AdamW, moments included.
            param.grad = None if (step, index) in missing_grad else torch.tensor(grads[step][index])
        optimizer.step()
        after.append([param.detach().numpy().ravel().tolist() for param in params])
    states = [optimizer.state[param] for param in params]
    return {
        'shapes': shapes,
        'initial': [value.ravel().tolist() for value in initial],
        'grads': [[g.ravel().tolist() for g in step] for step in grads],
        'missing': [list(pair) for pair in sorted(missing_grad)],
        'lrs': lr_values,
        'weightDecay': weight_decay,
        'betas': list(betas),
        'eps': eps,
        'amsgrad': amsgrad,
        'after': after,
        'expAvg': [state['exp_avg'].numpy().ravel().tolist() for state in states],
        'expAvgSq': [state['exp_avg_sq'].numpy().ravel().tolist() for state in states],
        'steps': [int(state['step'].item()) for state in states],
    }


def adamw_runs():
    return [
        run_adamw(1, [[3, 4], [5]], 6, [1e-2, 9e-3, 7e-3, 5e-3, 2e-3, 1e-3], 0.1, (0.9, 0.999), 1e-8, False, set()),
        run_adamw(2, [[2, 3], [4]], 5, [3e-2] * 5, 0.05, (0.8, 0.99), 1e-6, True, set()),
        run_adamw(3, [[4], [2, 2]], 4, [1e-1, 5e-2, 5e-2, 1e-2], 0.0, (0.9, 0.999), 1e-8, False, {(1, 1), (2, 1)}),
    ]


def main():
    torch.manual_seed(0)
    data = {'torch': torch.__version__, 'schedules': schedules(), 'adamw': adamw_runs()}
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, 'w') as handle:
        json.dump(data, handle)
    print(f'wrote {os.path.relpath(OUT)}')


if __name__ == '__main__':
    main()
