// The native image addon (native/image) against the reference chain of reference/datasets_xray.py
// (Pillow 13 decode and bilinear resize, scikit-image 0.26 equalize_adapthist and img_as_ubyte, in
// expected.json and expected/*), and against the TypeScript kernels it ports on random images.
import { strict as assert } from 'assert';
import { spawnSync } from 'child_process';
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as zlib from 'zlib';
import { BatchPipeline, xrayDecoder } from '../../src/datasets/pipeline';
import {
  claheXrayFile, decodeResizedNatively, decodeXrayFile, decodeXrayFileResized, equalizeAdapthistUint8Js, jpegScaleDenominator,
  DECOMPRESSION_BOMB_PIXELS, NativeImageAddon, nativeImage, preprocessXrayFile, resizeBilinear8Js, resizeBilinearFloatJs, rgbToGray8, XrayDecodeError,
} from '../../src/datasets/xray';
import { Rng } from '../../src/util/rng';

const ROOT = path.join(__dirname, '..', '..');
const FIXTURES = path.join(__dirname, '..', 'fixtures', 'datasets', 'xray');
const ADDON = path.join(ROOT, 'native', 'image', 'build', 'more_image.node');

interface EightBitCase { file: string; width: number; height: number; resizedSha256: string; clahe: string }
interface FloatCase { file: string; resized: string }
const expected = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'expected.json'), 'utf8')) as {
  eightBit: EightBitCase[];
  sixteenBit: FloatCase;
  dicomReal: FloatCase;
};

function fixture(relative: string): string {
  return path.join(FIXTURES, relative);
}

function sha256(bytes: Uint8Array): string {
  return crypto.createHash('sha256').update(bytes).digest('hex');
}

function readFloat32(relative: string): Float32Array {
  const bytes = fs.readFileSync(fixture(relative));
  return new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
}

/** Mean absolute difference and the share of pixels within 2 grey levels. */
function compare(ours: Uint8Array, reference: Uint8Array): { mean: number; withinTwo: number } {
  assert.equal(ours.length, reference.length, 'length mismatch');
  let sum = 0;
  let close = 0;
  for (let i = 0; i < ours.length; i++) {
    const difference = Math.abs(ours[i] - reference[i]);
    sum += difference;
    if (difference <= 2) close++;
  }
  return { mean: sum / ours.length, withinTwo: close / ours.length };
}

function randomBytes(rng: Rng, count: number): Uint8Array {
  return Uint8Array.from({ length: count }, () => rng.int(256));
}

/** Returns a gradient with noise, whose histogram is closer to a radiograph's than uniform noise. */
function randomImage(rng: Rng, width: number, height: number): Uint8Array {
  const out = new Uint8Array(width * height);
  const slope = rng.uniform() * 2;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      out[y * width + x] = Math.min(255, Math.floor((x * slope + y) % 200 + rng.uniform() * 56));
    }
  }
  return out;
}

// Limits of the 'fast' JPEG path after CLAHE, the same as in xray-resize.test.ts. Measured with
// TensorFlow 2.21's DecodeJpeg: covid_7afaaccc.jpg (2000 x 2000, decoded at 1/4) mean 1.22 and
// 88.1% within 2 levels; covid_41182_2020_203_Fig5_HTML.jpg (colour, full scale) mean 0.002.
const FAST_MEAN_LIMIT = 1.5;
const FAST_WITHIN_TWO_MIN = 0.85;

describe('datasets/xray native addon', function () {
  let addon: NativeImageAddon;

  before(function () {
    // The TypeScript kernels are tested against the same fixtures in xray-resize.test.ts and xray.test.ts.
    if (process.env.MORE_TS_NATIVE_IMAGE === '0' || !fs.existsSync(ADDON)) {
      console.warn(`  skipped: MORE_TS_NATIVE_IMAGE=0, or set-up could not build ${ADDON} (see its warning)`);
      this.skip();
    }
    addon = require(ADDON) as NativeImageAddon;
    assert.equal(nativeImage(), addon, 'the library did not load the built addon');
  });

  describe('Pillow and scikit-image fixtures', () => {
    for (const entry of expected.eightBit) {
      const name = path.basename(entry.file);

      it(`resizes ${name} as Pillow on both paths`, async () => {
        const full = await decodeXrayFile(fixture(entry.file));
        assert.ok(full.data instanceof Uint8Array);
        assert.equal(sha256(addon.resize8(full.data, full.width, full.height, 224, 224)), entry.resizedSha256, 'native');
        assert.equal(sha256(resizeBilinear8Js(full.data, full.width, full.height, 224, 224)), entry.resizedSha256, 'TypeScript');
      });

      it(`equalises ${name} as scikit-image on both paths`, async () => {
        const resized = await decodeXrayFileResized(fixture(entry.file), { resize: 'pillow' });
        assert.ok(resized.data instanceof Uint8Array);
        const reference = new Uint8Array(fs.readFileSync(fixture(entry.clahe)));
        assert.deepEqual(addon.clahe8(resized.data, 224, 224, 28, 28, 256, 0.01), reference, 'native');
        assert.deepEqual(equalizeAdapthistUint8Js(resized.data, 224, 224), reference, 'TypeScript');
      });
    }

    for (const entry of [expected.sixteenBit, expected.dicomReal]) {
      it(`resizes ${path.basename(entry.file)} as Pillow mode F on both paths`, async () => {
        const full = await decodeXrayFile(fixture(entry.file));
        assert.ok(full.data instanceof Uint16Array || full.data instanceof Float32Array);
        const reference = readFloat32(entry.resized);
        assert.deepEqual(addon.resizeFloat(full.data, full.width, full.height, 224, 224), reference, 'native');
        assert.deepEqual(resizeBilinearFloatJs(full.data, full.width, full.height, 224, 224), reference, 'TypeScript');
      });
    }

    it('decodes the grey JPEG as Pillow at full scale', async () => {
      const entry = expected.eightBit.find((item) => item.file.endsWith('covid_7afaaccc.jpg')) as EightBitCase;
      const decoded = addon.decodeJpegGray(fs.readFileSync(fixture(entry.file)), 1, 1, 224, 224);
      assert.equal(sha256(decoded.data), entry.resizedSha256);
    });

    it('decodes the colour JPEG as Pillow through RGB', async () => {
      const entry = expected.eightBit.find((item) => item.file.endsWith('covid_41182_2020_203_Fig5_HTML.jpg')) as EightBitCase;
      const bytes = fs.readFileSync(fixture(entry.file));
      assert.equal(sha256(addon.decodeJpegGray(bytes, 1, 3, 224, 224).data), entry.resizedSha256, 'RGB, then Pillow grey');
      // libjpeg's own luma is not Pillow's grey conversion, which is why the pillow path decodes RGB.
      assert.notEqual(sha256(addon.decodeJpegGray(bytes, 1, 1, 224, 224).data), entry.resizedSha256, 'luma');
    });

    it('decodes the RGB PNG as Pillow', async () => {
      const entry = expected.eightBit.find((item) => item.file.endsWith('.png') && item.file.includes('covid')) as EightBitCase;
      const decoded = addon.decodePngGray(fs.readFileSync(fixture(entry.file)), 224, 224);
      assert.equal(sha256(decoded.data), entry.resizedSha256);
    });
  });

  describe('TypeScript kernels on random images', () => {
    const rng = new Rng(20261205);

    it('CLAHE equals with odd sizes and options', () => {
      const cases: [number, number, { kernelSize?: [number, number]; clipLimit?: number; nbins?: number }][] = [
        [37, 53, {}],
        [8, 8, {}],
        [300, 17, { kernelSize: [9, 3] }],
        [61, 97, { clipLimit: 0.05, nbins: 100 }],
        [128, 45, { clipLimit: 0, kernelSize: [20, 7] }],
        [45, 33, { clipLimit: 0.5, nbins: 17000 }],
        [29, 31, { clipLimit: 3, nbins: 7 }],
        [1, 1, {}],
        [224, 224, { kernelSize: [224, 224], clipLimit: 1e-4 }],
      ];
      for (const [height, width, options] of cases) {
        const gray = randomImage(rng, width, height);
        const kernel = options.kernelSize ?? [Math.max(Math.floor(height / 8), 1), Math.max(Math.floor(width / 8), 1)];
        const native = addon.clahe8(gray, width, height, kernel[0], kernel[1], options.nbins ?? 256, options.clipLimit ?? 0.01);
        assert.deepEqual(native, equalizeAdapthistUint8Js(gray, width, height, options), `${height} x ${width} ${JSON.stringify(options)}`);
      }
    });

    it('CLAHE equals on flat and narrow images', () => {
      for (const value of [0, 1, 254, 255]) {
        const flat = new Uint8Array(23 * 19).fill(value);
        assert.deepEqual(addon.clahe8(flat, 23, 19, 2, 2, 256, 0.01), equalizeAdapthistUint8Js(flat, 23, 19), `value ${value}`);
      }
      const twoLevels = Uint8Array.from({ length: 40 * 40 }, (_, i) => (i % 3 === 0 ? 200 : 3));
      assert.deepEqual(addon.clahe8(twoLevels, 40, 40, 5, 5, 256, 0.01), equalizeAdapthistUint8Js(twoLevels, 40, 40));
    });

    it('8-bit resize equals when shrinking and enlarging', () => {
      const sizes: [number, number, number, number][] = [
        [513, 389, 224, 224], [97, 31, 224, 7], [224, 224, 224, 100], [10, 640, 10, 224], [3, 5, 17, 11], [1, 1, 4, 9], [300, 301, 1, 1],
      ];
      for (const [width, height, outWidth, outHeight] of sizes) {
        const src = randomBytes(rng, width * height);
        assert.deepEqual(
          addon.resize8(src, width, height, outWidth, outHeight),
          resizeBilinear8Js(src, width, height, outWidth, outHeight),
          `${width} x ${height} to ${outWidth} x ${outHeight}`,
        );
      }
    });

    it('float resize equals for float32 and 16-bit samples', () => {
      for (const [width, height, outWidth, outHeight] of [[131, 77, 40, 50], [20, 30, 45, 31], [64, 64, 64, 17]]) {
        const floats = Float32Array.from({ length: width * height }, () => rng.uniform() * 1000 - 100);
        const words = Uint16Array.from({ length: width * height }, () => rng.int(65536));
        const label = `${width} x ${height} to ${outWidth} x ${outHeight}`;
        assert.deepEqual(addon.resizeFloat(floats, width, height, outWidth, outHeight), resizeBilinearFloatJs(floats, width, height, outWidth, outHeight), label);
        assert.deepEqual(addon.resizeFloat(words, width, height, outWidth, outHeight), resizeBilinearFloatJs(words, width, height, outWidth, outHeight), label);
      }
    });

    it('grey conversion equals for RGB and RGBA', () => {
      for (const channels of [3, 4]) {
        const samples = randomBytes(rng, 37 * 11 * channels);
        assert.deepEqual(addon.rgbToGray8(samples, 37, 11, channels), rgbToGray8(samples, 37, 11, channels), `${channels} channels`);
      }
    });

    it('rejects wrong lengths and types', () => {
      assert.throws(() => addon.clahe8(new Uint8Array(10), 4, 4, 1, 1, 256, 0.01), /gray has 10 values, expected 16 for 4 x 4/);
      assert.throws(() => addon.resize8(new Uint8Array(6), 2, 2, 4, 4), /src has 6 values, expected 4 for 2 x 2/);
      assert.throws(() => addon.resizeFloat(new Float64Array(4) as never, 2, 2, 4, 4), /src must be a Float32Array, Uint16Array or Uint8Array/);
      assert.throws(() => addon.decodeJpegGray(new Uint8Array(4), 3 as never, 1), /ratio must be 1, 2, 4 or 8, got 3/);
      assert.throws(() => addon.decodeJpegGray(new Uint8Array(4), 1, 4 as never), /channels must be 1 or 3, got 4/);
    });

    it('rejects oversized outputs and bin counts', () => {
      // Before the limits, resize8 to 1e9 x 1e9 allocated until the process was killed.
      const tooLarge = /output size 1000000000 x 1000000000 is too large: expected sides up to 65536 and up to 268435456 pixels/;
      assert.throws(() => addon.resize8(new Uint8Array(4), 2, 2, 1e9, 1e9), tooLarge);
      assert.throws(() => addon.resizeFloat(new Float32Array(4), 2, 2, 1e9, 1e9), tooLarge);
      assert.throws(() => addon.resize8(new Uint8Array(4), 2, 2, 65537, 1), /output size 65537 x 1 is too large/);
      assert.throws(() => addon.resize8(new Uint8Array(4), 2, 2, 20000, 20000), /output size 20000 x 20000 is too large/);
      assert.throws(() => addon.clahe8(new Uint8Array(4), 2, 2, 1, 1, 1e9, 0.01), /nbins must be at most 65536, got 1000000000/);
      assert.throws(() => addon.resize8(new Uint8Array(4), 2, 2, NaN, 2), /outWidth must be an integer >= 1, got nan/);
      assert.throws(() => addon.resize8(new Uint8Array(4), -2, -2, 2, 2), /width must be an integer >= 1, got -2/);
    });

    it('names the argument type it got', () => {
      assert.throws(() => addon.resize8(new Float32Array(4) as never, 2, 2, 1, 1), /src must be a Uint8Array or Buffer, got Float32Array/);
      assert.throws(() => addon.resize8('pixels' as never, 2, 2, 1, 1), /src must be a typed array, got a string/);
      assert.throws(() => addon.resizeFloat(new Int32Array(4) as never, 2, 2, 1, 1), /src must be a Float32Array, Uint16Array or Uint8Array, got Int32Array/);
      assert.throws(() => addon.clahe8(new Uint8Array(4), 2, 2, 1, 1, 256, 'high' as never), /clipLimit must be a finite number, got a string/);
    });
  });

  describe('fast path', () => {
    it('picks the DCT scale that keeps twice the output', () => {
      assert.equal(jpegScaleDenominator(2000, 2000, 224, 224), 4);
      assert.equal(jpegScaleDenominator(4000, 3600, 224, 224), 8);
      assert.equal(jpegScaleDenominator(1000, 1000, 224, 224), 2);
      assert.equal(jpegScaleDenominator(900, 2000, 224, 224), 2);
      assert.equal(jpegScaleDenominator(685, 754, 224, 224), 1);
      assert.equal(jpegScaleDenominator(100, 100, 224, 224), 1);
    });

    for (const entry of expected.eightBit.filter((item) => item.file.endsWith('.jpg'))) {
      it(`keeps ${path.basename(entry.file)} close after CLAHE`, async () => {
        const bytes = fs.readFileSync(fixture(entry.file));
        const resized = decodeResizedNatively(bytes, entry.file, 224, 224);
        assert.ok(resized !== undefined, 'the JPEG did not take the native path');
        assert.ok(resized.data instanceof Uint8Array, 'the native path returned no 8-bit image');
        const ours = addon.clahe8(resized.data, 224, 224, 28, 28, 256, 0.01);
        const { mean, withinTwo } = compare(ours, new Uint8Array(fs.readFileSync(fixture(entry.clahe))));
        assert.ok(mean <= FAST_MEAN_LIMIT, `mean difference ${mean.toFixed(3)} grey levels, limit ${FAST_MEAN_LIMIT}`);
        assert.ok(withinTwo >= FAST_WITHIN_TWO_MIN, `${(withinTwo * 100).toFixed(1)}% of pixels within 2 grey levels`);
        assert.deepEqual(await claheXrayFile(fixture(entry.file)), ours, 'claheXrayFile does not take the native fast path');
      });
    }

    it('keeps PNGs exact', async () => {
      for (const entry of expected.eightBit.filter((item) => item.file.endsWith('.png'))) {
        assert.deepEqual(await claheXrayFile(fixture(entry.file)), new Uint8Array(fs.readFileSync(fixture(entry.clahe))), entry.file);
      }
    });

    it('leaves grey PNGs to the TypeScript decoder', () => {
      assert.equal(decodeResizedNatively(fs.readFileSync(fixture('real/nih_00000001_002.png')), 'nih', 224, 224), undefined);
      assert.equal(decodeResizedNatively(fs.readFileSync(fixture('generated/nih16.png')), 'nih16', 224, 224), undefined);
    });
  });

  describe('errors', () => {
    let dir: string;
    before(() => {
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'more-xray-native-'));
    });
    after(() => fs.rmSync(dir, { recursive: true, force: true }));

    /** Builds a PNG whose header declares `width` x `height` 8-bit pixels, with far too little image data. */
    function declaredPng(width: number, height: number, colorType: number): Buffer {
      const chunk = (type: string, data: Buffer): Buffer => {
        const body = Buffer.concat([Buffer.from(type, 'latin1'), data]);
        const out = Buffer.alloc(body.length + 8);
        out.writeUInt32BE(data.length, 0);
        body.copy(out, 4);
        out.writeUInt32BE(zlib.crc32(body), body.length + 4);
        return out;
      };
      const header = Buffer.alloc(13);
      header.writeUInt32BE(width, 0);
      header.writeUInt32BE(height, 4);
      header[8] = 8;
      header[9] = colorType;
      const signature = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
      return Buffer.concat([signature, chunk('IHDR', header), chunk('IDAT', zlib.deflateSync(Buffer.alloc(1000))), chunk('IEND', Buffer.alloc(0))]);
    }

    function truncated(relative: string, name: string): string {
      const bytes = fs.readFileSync(fixture(relative));
      const file = path.join(dir, name);
      fs.writeFileSync(file, bytes.subarray(0, Math.floor(bytes.length / 3)));
      return file;
    }

    for (const resize of ['fast', 'pillow'] as const) {
      it(`names a corrupt JPEG on the ${resize} path`, async () => {
        const file = truncated('real/covid_7afaaccc.jpg', `cut-${resize}.jpg`);
        await assert.rejects(claheXrayFile(file, { resize }), (error: Error) => {
          assert.ok(error instanceof XrayDecodeError, error.name);
          assert.match(error.message, new RegExp(`Cannot decode X-ray image .*cut-${resize}\\.jpg: .*JPEG`));
          return true;
        });
      });

      it(`names a truncated RGB PNG on the ${resize} path`, async () => {
        const file = truncated('real/covid_40779_2020_233_Fig2_HTML-a.png', `cut-${resize}.png`);
        await assert.rejects(claheXrayFile(file, { resize }), (error: Error) => {
          assert.ok(error instanceof XrayDecodeError, error.name);
          assert.match(error.message, new RegExp(`Cannot decode X-ray image .*cut-${resize}\\.png: .*PNG`));
          return true;
        });
      });

      it(`rejects a decompression bomb on the ${resize} path`, async () => {
        // 20000 x 20000 in the header and a few bytes of image data. Before the header check, the real
        // 20000 x 20000 RGB file (1.2 MB of zeros) decoded to 1.2 GB on the fast path.
        const files = [];
        for (const [name, colorType] of [['grey', 0], ['rgb', 2]] as const) {
          const file = path.join(dir, `bomb-${name}-${resize}.png`);
          fs.writeFileSync(file, declaredPng(20000, 20000, colorType));
          files.push(file);
        }
        const jpeg = Buffer.from(fs.readFileSync(fixture('real/covid_7afaaccc.jpg')));
        const frame = jpeg.indexOf(Buffer.from([0xff, 0xc0]));
        jpeg.writeUInt16BE(60000, frame + 5);
        jpeg.writeUInt16BE(60000, frame + 7);
        files.push(path.join(dir, `bomb-${resize}.jpg`));
        fs.writeFileSync(files[2], jpeg);
        for (const file of files) {
          await assert.rejects(claheXrayFile(file, { resize }), (error: Error) => {
            assert.ok(error instanceof XrayDecodeError, error.name);
            const escaped = file.replace(/[.\\]/g, '\\$&');
            assert.match(error.message, new RegExp(`^Cannot decode X-ray image ${escaped}: its header declares \\d+ x \\d+ pixels, expected at most ${DECOMPRESSION_BOMB_PIXELS} `));
            return true;
          });
        }
      });
    }
  });

  it('loads in a pipeline worker thread', async () => {
    const files = ['real/covid_7afaaccc.jpg', 'real/covid_40779_2020_233_Fig2_HTML-a.png'].map(fixture);
    const records = files.map((file, i) => ({ id: `x${i}`, xrayPath: file, text: '' }));
    const pipeline = new BatchPipeline(records, { batchSize: 2, workers: 1, shuffle: false, xray: xrayDecoder() });
    try {
      const batches = [];
      for await (const batch of pipeline.batches()) batches.push(batch);
      assert.equal(batches.length, 1);
      assert.deepEqual(batches[0].ids, ['x0', 'x1']);
      const xray = batches[0].xray as Float32Array;
      const size = 224 * 224 * 3;
      for (let i = 0; i < files.length; i++) {
        assert.deepEqual(xray.subarray(i * size, (i + 1) * size), await preprocessXrayFile(files[i]), files[i]);
      }
    } finally {
      await pipeline.close();
    }
  });
});

describe('datasets/xray MORE_TS_NATIVE_IMAGE', () => {
  /** Runs a snippet with tsx in a child process and returns its stdout and stderr. */
  function runWith(setting: string, code: string): { status: number | null; stdout: string; stderr: string } {
    const result = spawnSync(process.execPath, ['--require', 'tsx/cjs', '-e', code], {
      cwd: ROOT, encoding: 'utf8', env: { ...process.env, MORE_TS_NATIVE_IMAGE: setting, MORE_TS_LOG_LEVEL: 'info' },
    });
    return { status: result.status, stdout: result.stdout, stderr: result.stderr };
  }

  it('0 runs the TypeScript kernels exactly', () => {
    const entry = expected.eightBit.find((item) => item.file.endsWith('hannover_4d98e1de.png')) as EightBitCase;
    const code = `
      const { claheXrayFile, nativeImage } = require('./src/datasets/xray');
      claheXrayFile(${JSON.stringify(fixture(entry.file))}, { resize: 'pillow' }).then((out) => {
        process.stdout.write(JSON.stringify({ native: nativeImage() !== undefined, clahe: Buffer.from(out).toString('base64') }));
      });`;
    const result = runWith('0', code);
    assert.equal(result.status, 0, result.stderr);
    const output = JSON.parse(result.stdout) as { native: boolean; clahe: string };
    assert.equal(output.native, false);
    assert.match(result.stderr, /X-ray kernels: TypeScript \(MORE_TS_NATIVE_IMAGE=0\)/);
    assert.deepEqual(new Uint8Array(Buffer.from(output.clahe, 'base64')), new Uint8Array(fs.readFileSync(fixture(entry.clahe))));
  });

  it('rejects an unknown setting', () => {
    const result = runWith('yes', `require('./src/datasets/xray').nativeImage();`);
    assert.notEqual(result.status, 0);
    assert.match(result.stderr, /Invalid MORE_TS_NATIVE_IMAGE "yes": expected one of auto, 0, 1/);
  });
});
