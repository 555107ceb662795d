/**
 * X-ray figure of the dataset benchmark: images per second through decode,
 * resize to 224 x 224 and CLAHE (`claheXrayFile`, 8-bit output) against
 * Pillow + scikit-image `equalize_adapthist` in the same run, one image at a
 * time on each side, over the 8-bit radiographs in test/fixtures/datasets/xray/real
 * (256 x 256 to 2000 x 2000, PNG and JPEG). Printed by bench/datasets.ts, or
 * alone with `tsx bench/datasets_xray.ts`.
 *
 * Our side runs twice, once per resize path of `XrayPreprocessOptions.resize`,
 * with the native image addon when set-up built it (the first line names the
 * kernels in effect, see src/datasets/xray/native.ts):
 * - 'fast', the default: TensorFlow's DecodeJpeg decodes the two JPEGs to grey,
 *   the 2000 x 2000 one at 1/4 scale in the DCT domain; TensorFlow's DecodePng
 *   decodes the RGB PNG and our zlib decoder the two grey PNGs. Every image
 *   then takes the Pillow-exact resize and CLAHE in C++. The large JPEG's
 *   CLAHE output differs from the reference's by 1.2 grey levels on average,
 *   the colour JPEG's by 0.002, and the PNGs' not at all.
 * - 'pillow': every image is decoded at full size: the JPEGs (the colour one
 *   to RGB, then Pillow's grey formula) and the RGB PNG by TensorFlow, the
 *   grey PNGs by our zlib decoder. Each is resized exactly as Pillow does, so
 *   the output equals the reference's bit for bit.
 * Without the addon, 'fast' lets libvips decode and resize the JPEGs and the
 * RGB PNG (shrink-on-load, then its linear kernel), and the TypeScript
 * kernels run the rest.
 * The reference always decodes at full size and resizes with Pillow.
 *
 * Each side runs in five alternating rounds of at least a second each, and
 * each figure is the total images over the total time of its rounds.
 *
 * The last line runs the same images through `BatchPipeline` on the calling
 * thread (default 'fast' path). The native decoders run synchronously on
 * that thread, so prefetching overlaps little there.
 *
 * The target for the one-at-a-time 'fast' ratio is 2. With the addon, three
 * runs of `npm run bench:datasets` on the shared 2-core development machine
 * (load 2 to 3) gave 2.61 to 2.63 (docs/benchmarks.md). Without it
 * (`MORE_TS_NATIVE_IMAGE=0`), earlier runs gave 1.23 to 2.46.
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';

import { BatchPipeline, xrayDecoder } from '../src/datasets/pipeline';
import { claheXrayFile, nativeImage, XrayResizeMode } from '../src/datasets/xray';
import { setLogLevel } from '../src/util/log';

const IMAGES = path.resolve(__dirname, '..', 'test', 'fixtures', 'datasets', 'xray', 'real');
/** Alternating rounds per side, so that a change of load on a shared machine falls on both sides. */
const ROUNDS = 5;
const ROUND_SECONDS = 1;
const PIPELINE_SECONDS = 3;

/** Images processed and the seconds they took. */
interface Timing {
  images: number;
  seconds: number;
}

function imagesPerSecond(timings: Timing[]): number {
  const images = timings.reduce((sum, timing) => sum + timing.images, 0);
  const seconds = timings.reduce((sum, timing) => sum + timing.seconds, 0);
  return images / seconds;
}

/** Runs one round of the Python reference (`bench/datasets_xray.py`). */
function runReference(images: string[]): Timing {
  const python = path.resolve(__dirname, '..', '.venv', 'bin', 'python');
  const config = JSON.stringify({ images, min_seconds: ROUND_SECONDS });
  const result = spawnSync(python, [path.join(__dirname, 'datasets_xray.py'), config], { encoding: 'utf8' });
  if (result.status !== 0) {
    throw new Error(
      `The Python reference failed (${result.error?.message ?? `exit ${result.status}`}): ${result.stderr}\n` +
        'Install the reference tools with `node scripts/setup/python-env.js --reference`.',
    );
  }
  const output = JSON.parse(result.stdout.trim().split('\n').pop() as string) as { xray_images: number; seconds: number };
  return { images: output.xray_images, seconds: output.seconds };
}

/** Times one round of the preprocessing along one resize path, after one warm-up image. */
async function measureOurs(images: string[], resize: XrayResizeMode): Promise<Timing> {
  await claheXrayFile(images[0], { resize });
  let count = 0;
  const start = process.hrtime.bigint();
  for (;;) {
    for (const image of images) await claheXrayFile(image, { resize });
    count += images.length;
    const elapsed = Number(process.hrtime.bigint() - start) / 1e9;
    if (elapsed >= ROUND_SECONDS) return { images: count, seconds: elapsed };
  }
}

/**
 * Returns images per second through `BatchPipeline` on the calling thread
 * (no workers, prefetch 2). The output is also normalised to [224, 224, 3].
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
      if (elapsed >= PIPELINE_SECONDS) return count / elapsed;
    }
  } finally {
    await pipeline.close();
  }
}

/** Measures both sides and returns the figure lines: one image at a time per resize path, then through the pipeline. */
export async function xrayPreprocessFigure(): Promise<string> {
  setLogLevel('warn');
  const images = fs.readdirSync(IMAGES).filter((name) => /\.(png|jpe?g)$/i.test(name)).sort().map((name) => path.join(IMAGES, name));
  const referenceTimings: Timing[] = [];
  const fastTimings: Timing[] = [];
  const exactTimings: Timing[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    referenceTimings.push(runReference(images));
    fastTimings.push(await measureOurs(images, 'fast'));
    exactTimings.push(await measureOurs(images, 'pillow'));
  }
  const reference = imagesPerSecond(referenceTimings);
  const fast = imagesPerSecond(fastTimings);
  const exact = imagesPerSecond(exactTimings);
  const pipelined = await measurePipeline(images);
  const label = `decode, resize 224, CLAHE; ${images.length} images`;
  const theirs = `Pillow + equalize_adapthist ${reference.toFixed(1)} images/s`;
  const fastLabel = nativeImage() !== undefined
    ? "resize 'fast', native: TensorFlow DecodeJpeg with DCT scaling for JPEGs, Pillow-exact for PNGs"
    : "resize 'fast', TypeScript kernels: libvips for JPEGs and the RGB PNG, Pillow-exact for grey PNGs";
  return `xray preprocess (${label}, one at a time, ${fastLabel}): ` +
    `ours ${fast.toFixed(1)} images/s, ${theirs}, ratio=${(fast / reference).toFixed(2)}\n` +
    `xray preprocess (${label}, one at a time, resize 'pillow': Pillow-exact for every image): ` +
    `ours ${exact.toFixed(1)} images/s, ${theirs}, ratio=${(exact / reference).toFixed(2)}\n` +
    `xray preprocess (${label}, BatchPipeline without workers, prefetch 2, resize 'fast'): ` +
    `ours ${pipelined.toFixed(1)} images/s, ${theirs}, ratio=${(pipelined / reference).toFixed(2)}`;
}

if (require.main === module) {
  void xrayPreprocessFigure().then((line) => process.stdout.write(`${line}\n`));
}
