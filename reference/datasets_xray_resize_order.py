"""Writes the resize pass order fixtures under test/fixtures/datasets/xray/resize-order/.

Pillow 13 resizes in two passes and runs the vertical pass first when the
height shrinks by more than twice as many pixels as the width
(`ImagingResampleInner` in `src/libImaging/Resample.c`). Mode 'L' rounds to
8 bits between the passes and mode 'F' to float32, so the order changes the
output. The cases sit on both sides of that rule, ties included. Each case
stores a random 8-bit image and a random float32 image, and the oracle is
Pillow's bilinear resize of each (`resize.json` lists the files).

Run from the repository root: .venv/bin/python reference/datasets_xray_resize_order.py
"""

import json
import os

import numpy as np
from PIL import Image

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..')
OUT = os.path.join(ROOT, 'test', 'fixtures', 'datasets', 'xray', 'resize-order')

# (width, height, output width, output height)
CASES = [
    (40, 70, 32, 32),  # height shrinks by 38, width by 8: vertical first
    (70, 40, 32, 32),  # horizontal first
    (60, 60, 50, 20),  # square input, 40 > 2 * 10: vertical first
    (60, 60, 20, 50),  # horizontal first
    (50, 90, 25, 40),  # 50 = 2 * 25, a tie: horizontal first
    (50, 91, 25, 40),  # 51 > 2 * 25: vertical first
    (3, 120, 16, 16),  # width grows, height shrinks: vertical first
    (30, 20, 60, 10),  # width grows, height shrinks: vertical first
    (30, 20, 60, 40),  # both grow: horizontal first
]


def main() -> None:
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(20261205)
    entries = []
    for width, height, out_width, out_height in CASES:
        name = f'{width}x{height}-to-{out_width}x{out_height}'
        gray = rng.integers(0, 256, (height, width)).astype(np.uint8)
        values = (rng.random((height, width)) * 4095).astype(np.float32)
        gray.tofile(os.path.join(OUT, f'{name}.in.u8'))
        values.astype('<f4').tofile(os.path.join(OUT, f'{name}.in.f32'))
        resized = np.asarray(Image.fromarray(gray).resize((out_width, out_height), Image.BILINEAR))
        resized_values = np.asarray(Image.fromarray(values, 'F').resize((out_width, out_height), Image.BILINEAR))
        resized.tofile(os.path.join(OUT, f'{name}.out.u8'))
        resized_values.astype('<f4').tofile(os.path.join(OUT, f'{name}.out.f32'))
        entries.append({'name': name, 'width': width, 'height': height, 'outWidth': out_width, 'outHeight': out_height})
    with open(os.path.join(OUT, 'resize.json'), 'w') as file:
        json.dump({'pillow': Image.__version__, 'cases': entries}, file, indent=1)
        file.write('\n')


if __name__ == '__main__':
    main()
