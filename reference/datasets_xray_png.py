"""Writes the PNG decoder fixtures under test/fixtures/datasets/xray/png/.

The files are written byte by byte here (zlib, struct), so that every
scanline filter type appears on every colour type the JavaScript decoder
supports, on the first row too, with the image data split over several IDAT
chunks. The oracle is Pillow 13: `png.json` lists each file's samples as
Pillow decodes them, and its grey conversion (`convert('L')`).

Also written: a palette PNG (decoded by sharp in the library, so its grey
values are checked against Pillow's), and two damaged files with valid CRCs
(an unknown filter type, and image data shorter than IHDR implies).

Run from the repository root: .venv/bin/python reference/datasets_xray_png.py
"""

import json
import os
import struct
import zlib

import numpy as np
from PIL import Image

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..')
OUT = os.path.join(ROOT, 'test', 'fixtures', 'datasets', 'xray', 'png')

# PNG colour type -> (channels, Pillow mode)
COLOUR_TYPES = {0: (1, 'L'), 2: (3, 'RGB'), 4: (2, 'LA'), 6: (4, 'RGBA')}


def chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack('>I', len(data)) + kind + data + struct.pack('>I', zlib.crc32(kind + data) & 0xFFFFFFFF)


def paeth(left: int, up: int, upper_left: int) -> int:
    estimate = left + up - upper_left
    to_left, to_up, to_upper_left = abs(estimate - left), abs(estimate - up), abs(estimate - upper_left)
    if to_left <= to_up and to_left <= to_upper_left:
        return left
    return up if to_up <= to_upper_left else upper_left


def filter_row(kind: int, row: np.ndarray, above: np.ndarray, channels: int) -> bytes:
    """Applies PNG filter `kind` to one row of 8-bit samples (`above` is zeros for the first row)."""
    out = bytearray([kind])
    for i, value in enumerate(row.tolist()):
        left = int(row[i - channels]) if i >= channels else 0
        up = int(above[i])
        upper_left = int(above[i - channels]) if i >= channels else 0
        predictor = [0, left, up, (left + up) // 2, paeth(left, up, upper_left)][kind]
        out.append((value - predictor) % 256)
    return bytes(out)


def write_png(path: str, samples: np.ndarray, colour_type: int, filters, *, idat_parts=3, bad_filter=False, drop_rows=0):
    height, width = samples.shape[:2]
    channels = COLOUR_TYPES[colour_type][0]
    rows = samples.reshape(height, width * channels)
    raw = b''
    for y in range(height):
        above = rows[y - 1] if y > 0 else np.zeros(width * channels, dtype=np.uint8)
        line = filter_row(filters[y % len(filters)], rows[y], above, channels)
        if bad_filter and y == 1:
            line = bytes([5]) + line[1:]
        raw += line
    if drop_rows:
        raw = raw[:-drop_rows * (width * channels + 1)]
    compressed = zlib.compress(raw, 9)
    step = -(-len(compressed) // idat_parts)
    body = b''.join(chunk(b'IDAT', compressed[i:i + step]) for i in range(0, len(compressed), step))
    header = struct.pack('>IIBBBBB', width, height, 8, colour_type, 0, 0, 0)
    with open(path, 'wb') as handle:
        handle.write(b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', header) + body + chunk(b'IEND', b''))


def main() -> None:
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(20261204)
    # Few distinct values, so that the Paeth distances often tie and the tie-breaking order matters.
    palette = np.array([0, 1, 2, 127, 128, 254, 255], dtype=np.uint8)
    cases = []
    for colour_type, (channels, mode) in COLOUR_TYPES.items():
        for first in range(5):
            name = f'filters_type{colour_type}_first{first}.png'
            shape = (6, 7, channels) if channels > 1 else (6, 7)
            samples = palette[rng.integers(0, len(palette), size=shape)]
            # Every filter type, starting with `first` on row 0.
            write_png(os.path.join(OUT, name), samples, colour_type, [(first + k) % 5 for k in range(5)])
            image = Image.open(os.path.join(OUT, name))
            assert image.mode == mode, (name, image.mode)
            decoded = np.asarray(image)
            assert np.array_equal(decoded, samples), name
            cases.append({'file': 'png/' + name, 'width': 7, 'height': 6, 'channels': channels,
                          'samples': decoded.ravel().tolist(),
                          'gray': np.asarray(image.convert('L')).ravel().tolist()})

    grey = rng.integers(0, 256, size=(9, 11), dtype=np.uint8)
    lut = rng.integers(0, 256, size=(16, 3), dtype=np.uint8)
    indexed = Image.fromarray((grey % 16).astype(np.uint8), 'P')
    indexed.putpalette(lut.ravel().tolist())
    indexed.save(os.path.join(OUT, 'palette.png'))
    palette_gray = np.asarray(Image.open(os.path.join(OUT, 'palette.png')).convert('L'))

    write_png(os.path.join(OUT, 'bad_filter.png'), grey, 0, [1], bad_filter=True)
    write_png(os.path.join(OUT, 'short_data.png'), grey, 0, [1], drop_rows=2)

    with open(os.path.join(OUT, 'png.json'), 'w') as handle:
        json.dump({'filterCases': cases,
                   'palette': {'file': 'png/palette.png', 'width': 11, 'height': 9, 'gray': palette_gray.ravel().tolist()},
                   'versions': {'pillow': Image.__version__, 'numpy': np.__version__}}, handle)
        handle.write('\n')


if __name__ == '__main__':
    main()
