/**
 * X-ray figure of the dataset benchmark: images per second through decode,
 * resize to 224 x 224 and CLAHE (`decodeXrayFile` + `claheUint8`) against
 * Pillow + scikit-image `equalize_adapthist` in the same run, one image at a
 * time on each side, over the 8-bit radiographs in test/fixtures/datasets/xray/real
 * (256 x 256 to 2000 x 2000, PNG and JPEG). Printed by bench/datasets.ts, or
 * alone with `tsx bench/datasets_xray.ts`.
 *
 * The second line runs the same images through `BatchPipeline` on the calling
 * thread, where decoding overlaps the JavaScript resize and CLAHE.
 *
 * NOTE: one image at a time, the JavaScript resize and CLAHE are slower than
 * Pillow's C resize and scikit-image's NumPy CLAHE, so that ratio has stayed
 * below 1 (about 0.4 to 0.8 on a loaded 2-core machine).
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';

import { BatchPipeline, xrayDecoder } from '../src/datasets/pipeline';
import { claheUint8, decodeXrayFile } from '../src/datasets/xray';
import { setLogLevel } from '../src/util/log';

const IMAGES = path.resolve(__dirname, '..', 'test', 'fixtures', 'datasets', 'xray', 'real');
const MIN_SECONDS = 3;

function runReference(images: string[]): number {
  const python = path.resolve(__dirname, '..', '.venv', 'bin', 'python');
  const config = JSON.stringify({ images, min_seconds: MIN_SECONDS });
  const result = spawnSync(python, [path.join(__dirname, 'datasets_xray.py'), config], { encoding: 'utf8' });
  if (result.status !== 0) {
    throw new Error(
      `The Python reference failed (${result.error?.message ?? `exit ${result.status}`}): ${result.stderr}\n` +
        'Install the reference tools with `node scripts/setup/python-env.js --reference`.',
    );
  }
  return (JSON.parse(result.stdout.trim().split('\n').pop() as string) as { xray_images_per_second: number }).xray_images_per_second;
}

/** Returns images per second of the preprocessing, after one warm-up image. */
async function measureOurs(images: string[]): Promise<number> {
  claheUint8(await decodeXrayFile(images[0]));
  let count = 0;
  const start = process.hrtime.bigint();
  for (;;) {
    for (const image of images) claheUint8(await decodeXrayFile(image));
    count += images.length;
    const elapsed = Number(process.hrtime.bigint() - start) / 1e9;
    if (elapsed >= MIN_SECONDS) return count / elapsed;
  }
}

/**
 * Returns images per second through `BatchPipeline` on the calling thread
 * (no workers, prefetch 2), where sharp decodes upcoming images on its own
 * threads while JavaScript equalises the current one. The output is also
 * normalised to [224, 224, 3].
 */
async function measurePipeline(images: string[]): Promise<number> {
  const records = Array.from({ length: images.length * 4 }, (_, i) => ({ id: String(i), xrayPath: images[i % images.length], text: '' }));
  const pipeline = new BatchPipeline(records, { batchSize: images.length, workers: 0, prefetch: 2, shuffle: false, xray: xrayDecoder() });
  try {
    for await (const batch of pipeline.batches()) void batch;
    let count = 0;
    const start = process.hrtime.bigint();
    for (;;) {
      for await (const batch of pipeline.batches()) count += batch.ids.length;
      const elapsed = Number(process.hrtime.bigint() - start) / 1e9;
      if (elapsed >= MIN_SECONDS) return count / elapsed;
    }
  } finally {
    await pipeline.close();
  }
}

/** Measures both sides and returns the figure lines: one image at a time, then through the pipeline. */
export async function xrayPreprocessFigure(): Promise<string> {
  setLogLevel('warn');
  const images = fs.readdirSync(IMAGES).filter((name) => /\.(png|jpe?g)$/i.test(name)).sort().map((name) => path.join(IMAGES, name));
  const reference = runReference(images);
  const ours = await measureOurs(images);
  const pipelined = await measurePipeline(images);
  const label = `decode, resize 224, CLAHE; ${images.length} images`;
  return `xray preprocess (${label}, one at a time): ours ${ours.toFixed(1)} images/s, ` +
    `Pillow + equalize_adapthist ${reference.toFixed(1)} images/s, ratio=${(ours / reference).toFixed(2)}\n` +
    `xray preprocess (${label}, BatchPipeline without workers, prefetch 2): ours ${pipelined.toFixed(1)} images/s, ` +
    `Pillow + equalize_adapthist ${reference.toFixed(1)} images/s, ratio=${(pipelined / reference).toFixed(2)}`;
}

if (require.main === module) {
  void xrayPreprocessFigure().then((line) => process.stdout.write(`${line}\n`));
}
