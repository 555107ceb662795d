"""Python side of the X-ray figure in bench/datasets.ts.

Reads a JSON config (image paths, minimum seconds) from argv[1] and prints one
JSON object: the images processed, the seconds they took and images per
second through Pillow (open, grey conversion, bilinear resize to 224 x 224)
and scikit-image (equalize_adapthist with its defaults, img_as_ubyte), one
image at a time. The TypeScript side calls it once per round.
"""
import json
import sys
import time

import numpy as np
from PIL import Image
from skimage.exposure import equalize_adapthist
from skimage.util import img_as_ubyte


def preprocess(path):
    image = Image.open(path)
    if image.mode != 'L':
        image = image.convert('L')
    resized = np.asarray(image.resize((224, 224), Image.BILINEAR)).astype(np.float64)
    return img_as_ubyte(equalize_adapthist(resized / resized.max()))


def main():
    config = json.loads(sys.argv[1])
    paths = config['images']
    preprocess(paths[0])  # warm-up
    count = 0
    start = time.perf_counter()
    while True:
        for path in paths:
            preprocess(path)
        count += len(paths)
        elapsed = time.perf_counter() - start
        if elapsed >= config['min_seconds']:
            break
    print(json.dumps({'xray_images': count, 'seconds': elapsed, 'xray_images_per_second': count / elapsed}))


if __name__ == '__main__':
    main()
