"""Write the fixture for the kernel's heatmap overlay test: test/fixtures/kernel/heatmap-overlay.json.

The expected pixels are computed independently of the TypeScript code. numpy.interp evaluates the
five-stop colour ramp, and Pillow's nearest-neighbour resize spreads the relevance grid over the image.
The blend is (1 - alpha) * gray + alpha * colour, rounded to the nearest integer.

Run from the repository root: .venv/bin/python reference/kernel/heatmap_overlay.py
"""

import json
import pathlib

import numpy as np
from PIL import Image

# Colour ramp stops (blue, light blue, cyan, yellow, red) at 0, 0.25, 0.5, 0.75 and 1.
STOPS = np.array([[0, 0, 143], [0, 128, 255], [0, 255, 255], [255, 255, 0], [255, 0, 0]], dtype=np.float64)
POSITIONS = np.linspace(0.0, 1.0, len(STOPS))


def ramp(t):
    return np.stack([np.interp(t, POSITIONS, STOPS[:, k]) for k in range(3)], axis=-1)


def overlay(gray, relevance, alpha):
    height, width = gray.shape
    span = relevance.max() - relevance.min()
    scaled = (relevance - relevance.min()) / span if span > 0 else np.zeros_like(relevance)
    # Pillow's NEAREST resize picks the source cell floor((x + 0.5) * cols / width) for output pixel x. That equals
    # the overlay's floor(x * cols / width) when width is a multiple of cols (and height of rows), as in every case.
    spread = np.asarray(Image.fromarray(scaled.astype(np.float32), mode='F').resize((width, height), Image.NEAREST))
    colour = np.round(ramp(spread.astype(np.float64)))
    blended = (1 - alpha) * gray[..., None].astype(np.float64) + alpha * colour
    return np.floor(blended + 0.5).astype(np.uint8)


def main():
    rng = np.random.default_rng(20261204)
    cases = []
    for height, width, rows, cols, alpha in [(6, 8, 2, 4, 0.45), (12, 9, 4, 3, 0.3), (5, 5, 1, 1, 0.5)]:
        gray = rng.integers(0, 256, size=(height, width), dtype=np.uint8)
        relevance = rng.normal(size=(rows, cols))
        expected = overlay(gray, relevance, alpha)
        cases.append({
            'width': width, 'height': height, 'rows': rows, 'cols': cols, 'alpha': alpha,
            'gray': gray.reshape(-1).tolist(),
            'relevance': relevance.reshape(-1).tolist(),
            'expected': expected.reshape(-1).tolist(),
        })
    target = pathlib.Path('test/fixtures/kernel/heatmap-overlay.json')
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps({'cases': cases}) + '\n')
    print(f'wrote {target} with {len(cases)} cases')


if __name__ == '__main__':
    main()
