// Pixels of the kernel's relevance overlay against numpy and Pillow
// (fixture written by reference/kernel/heatmap_overlay.py).
import { strict as assert } from 'assert';
import * as fs from 'fs';
import * as path from 'path';
import sharp from 'sharp';

import { encodePng, heatmapOverlay } from '../../kernel/src/images';

interface OverlayCase {
  width: number;
  height: number;
  rows: number;
  cols: number;
  alpha: number;
  gray: number[];
  relevance: number[];
  expected: number[];
}

const FIXTURE = path.join(__dirname, '..', 'fixtures', 'kernel', 'heatmap-overlay.json');
const { cases } = JSON.parse(fs.readFileSync(FIXTURE, 'utf8')) as { cases: OverlayCase[] };

describe('kernel heatmap overlay', function () {
  for (const example of cases) {
    it(`matches numpy for ${example.width}x${example.height} over ${example.rows}x${example.cols}`, function () {
      const gray = { width: example.width, height: example.height, channels: 1 as const, data: Uint8Array.from(example.gray) };
      const overlay = heatmapOverlay(gray, example.relevance, { rows: example.rows, cols: example.cols }, { alpha: example.alpha });
      assert.equal(overlay.channels, 3);
      assert.equal(overlay.width, example.width);
      assert.equal(overlay.height, example.height);
      assert.equal(overlay.data.length, example.expected.length);
      const worst = Math.max(...Array.from(overlay.data, (value, i) => Math.abs(value - example.expected[i])));
      // Rounding of exact halves may differ by one level between the two implementations.
      assert.ok(worst <= 1, `largest pixel difference ${worst}`);
    });
  }

  it('PNG round trip keeps pixels', async function () {
    const example = cases[0];
    const gray = { width: example.width, height: example.height, channels: 1 as const, data: Uint8Array.from(example.gray) };
    const overlay = heatmapOverlay(gray, example.relevance, { rows: example.rows, cols: example.cols }, { alpha: example.alpha });
    const png = await encodePng(overlay);
    const { data, info } = await sharp(png).raw().toBuffer({ resolveWithObject: true });
    assert.equal(info.width, example.width);
    assert.equal(info.height, example.height);
    assert.equal(info.channels, 3);
    assert.deepEqual(Array.from(data), Array.from(overlay.data));
  });

  it('rejects a relevance map of the wrong size', function () {
    const gray = { width: 4, height: 4, channels: 1 as const, data: new Uint8Array(16) };
    assert.throws(
      () => heatmapOverlay(gray, [1, 2, 3], { rows: 2, cols: 2 }),
      /expected 4 relevance values \(2 x 2\); got 3/,
    );
  });

  it('rejects non-finite relevance', function () {
    const gray = { width: 2, height: 2, channels: 1 as const, data: new Uint8Array(4) };
    assert.throws(() => heatmapOverlay(gray, [0, Number.NaN, 1, 2], { rows: 2, cols: 2 }), /relevance\[1\] is NaN/);
  });

  it('rejects a pixel count mismatch', async function () {
    await assert.rejects(encodePng({ width: 3, height: 2, channels: 3, data: new Uint8Array(17) }), /expected 18 values \(3 x 2 x 3\); got 17/);
  });
});
