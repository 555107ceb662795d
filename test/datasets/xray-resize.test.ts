// The two resize paths of the X-ray preprocessing against the reference chain of
// reference/datasets_xray.py: Pillow 13 decode and bilinear resize, then scikit-image 0.26
// equalize_adapthist and img_as_ubyte, on the real radiographs (expected/*.clahe.u8).
import { strict as assert } from 'assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as zlib from 'zlib';
import { decodeXray } from '../../src/datasets/pipeline/decoders';
import {
  claheUint8, claheXrayFile, decodeResizedWithLibvips, decodeXrayFile, decodeXrayFileResized, equalizeAdapthist,
  equalizeAdapthistUint8, nativeImage, normaliseToRgb, preprocessXrayFile, readJpegFrame, resizeBilinear8Js, resizeBilinearFloatJs,
  resizesWithLibvips, roundHalfEven, scaleToUnit, XrayDecodeError,
} from '../../src/datasets/xray';

const FIXTURES = path.join(__dirname, '..', 'fixtures', 'datasets', 'xray');

interface EightBitCase { file: string; width: number; height: number; clahe: string }
const expected = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'expected.json'), 'utf8')) as {
  eightBit: EightBitCase[];
  sixteenBit: { file: string };
  dicomReal: { file: string };
};

function fixture(relative: string): string {
  return path.join(FIXTURES, relative);
}

/** Mean and max absolute difference, and the share of pixels within 2 grey levels. */
function compare(ours: Uint8Array, reference: Uint8Array): { mean: number; max: number; withinTwo: number } {
  assert.equal(ours.length, reference.length, 'length mismatch');
  let sum = 0;
  let max = 0;
  let close = 0;
  for (let i = 0; i < ours.length; i++) {
    const difference = Math.abs(ours[i] - reference[i]);
    sum += difference;
    max = Math.max(max, difference);
    if (difference <= 2) close++;
  }
  return { mean: sum / ours.length, max, withinTwo: close / ours.length };
}

// The 'fast' path runs the native addon's TensorFlow decoders when the addon is loaded (limits and
// measurements in xray-native.test.ts), and libvips otherwise. The bounds below hold for both.
// Measured differences of the libvips 'fast' path from the reference after CLAHE (sharp 0.35.5, libvips 8.18.7):
//   nih_00000001_002.png, hannover_4d98e1de.png (grey PNGs, exact path): mean 0, max 0
//   covid_41182_2020_203_Fig5_HTML.jpg (685 x 754 colour JPEG): mean 1.28, max 38, 89% within 2 levels
//   covid_40779_2020_233_Fig2_HTML-a.png (479 x 481 RGB PNG): mean 1.06, max 18, 93% within 2 levels
//   covid_7afaaccc.jpg (2000 x 2000 grey JPEG, shrink-on-load 1/4): mean 0.98, max 11, 94% within 2 levels
// CLAHE magnifies resize differences: a resized image that is off by one level on 8% of its
// pixels ends 0.49 levels off on average. Pillow's own 1/2-scale JPEG decode (Image.draft) of
// the 2000 x 2000 image is 0.95 levels off. The largest differences sit at the image edges, where
// libvips extends the edge pixels and Pillow renormalises its filter. The bounds below leave
// room for other libvips versions. They fail for a wrong kernel (libvips Lanczos 3: 1.5 to 8.2
// levels on these images) or a 1/8-scale JPEG decode (Pillow's: 4.1 levels).
const FAST_MEAN_LIMIT = 1.5;
const FAST_WITHIN_TWO_MIN = 0.85;

describe('datasets/xray resize paths', () => {
  for (const entry of expected.eightBit) {
    const name = path.basename(entry.file);

    it(`keeps ${name} bit-exact on the pillow path`, async () => {
      const ours = await claheXrayFile(fixture(entry.file), { resize: 'pillow' });
      const reference = new Uint8Array(fs.readFileSync(fixture(entry.clahe)));
      assert.equal(compare(ours, reference).max, 0, 'the pillow path differs from Pillow + scikit-image');
    });

    it(`keeps ${name} close on the fast path`, async () => {
      const ours = await claheXrayFile(fixture(entry.file));
      const reference = new Uint8Array(fs.readFileSync(fixture(entry.clahe)));
      const { mean, withinTwo } = compare(ours, reference);
      assert.ok(mean <= FAST_MEAN_LIMIT, `mean difference ${mean.toFixed(3)} grey levels, limit ${FAST_MEAN_LIMIT}`);
      assert.ok(withinTwo >= FAST_WITHIN_TWO_MIN, `${(withinTwo * 100).toFixed(1)}% of pixels within 2 grey levels`);
    });
  }

  it('takes the exact path for grey PNGs', async () => {
    for (const entry of expected.eightBit.filter((item) => /nih|hannover/.test(item.file))) {
      const fast = await claheXrayFile(fixture(entry.file), { resize: 'fast' });
      const exact = await claheXrayFile(fixture(entry.file), { resize: 'pillow' });
      assert.deepEqual(fast, exact, entry.file);
    }
  });

  for (const file of [expected.sixteenBit.file, expected.dicomReal.file, 'generated/mono1_12bit_implicit.dcm']) {
    it(`takes the exact path for ${path.basename(file)}`, async () => {
      const fast = await claheXrayFile(fixture(file), { resize: 'fast' });
      const exact = await claheXrayFile(fixture(file), { resize: 'pillow' });
      assert.deepEqual(fast, exact);
      assert.deepEqual(fast, claheUint8(await decodeXrayFile(fixture(file))));
    });
  }

  it('returns the output size on both paths', async () => {
    for (const resize of ['fast', 'pillow'] as const) {
      const image = await decodeXrayFileResized(fixture('real/covid_7afaaccc.jpg'), { resize, size: 96 });
      assert.equal(image.width, 96, resize);
      assert.equal(image.height, 96, resize);
      assert.ok(image.data instanceof Uint8Array, resize);
      assert.equal(image.data.length, 96 * 96, resize);
    }
  });

  it('normalises the fast path output', async () => {
    const file = fixture('real/covid_7afaaccc.jpg');
    const gray = await claheXrayFile(file);
    const out = await preprocessXrayFile(file);
    assert.equal(out.length, 224 * 224 * 3);
    assert.ok(Math.abs(out[3 * 1000] - (gray[1000] / 255 - 0.499) / 0.293) < 1e-6);
  });

  it('passes the mode through the pipeline decoder', async () => {
    const entry = expected.eightBit.find((item) => item.file.endsWith('covid_7afaaccc.jpg')) as EightBitCase;
    const reference = normaliseToRgb(new Uint8Array(fs.readFileSync(fixture(entry.clahe))));
    assert.deepEqual(await decodeXray(fixture(entry.file), { resize: 'pillow' }), reference);
    assert.notDeepEqual(await decodeXray(fixture(entry.file)), reference);
  });

  it('rejects an unknown resize mode', async () => {
    const file = fixture(expected.eightBit[0].file);
    await assert.rejects(
      claheXrayFile(file, { resize: 'lanczos' as never }),
      /Invalid X-ray resize mode "lanczos": expected one of fast, pillow/,
    );
  });

  it('rejects a corrupt JPEG on the fast path', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'more-xray-fast-'));
    const file = path.join(dir, 'half.jpg');
    const bytes = fs.readFileSync(fixture('real/covid_7afaaccc.jpg'));
    fs.writeFileSync(file, bytes.subarray(0, Math.floor(bytes.length / 2)));
    await assert.rejects(claheXrayFile(file), (error: Error) => {
      assert.ok(error instanceof XrayDecodeError, error.name);
      assert.match(error.message, /half\.jpg/);
      return true;
    });
  });

  it('routes files to libvips by header', () => {
    const routes = (relative: string, size = 224): boolean => resizesWithLibvips(fs.readFileSync(fixture(relative)), size, size);
    assert.equal(routes('real/covid_7afaaccc.jpg'), true);
    assert.equal(routes('real/covid_40779_2020_233_Fig2_HTML-a.png'), true);
    assert.equal(routes('real/nih_00000001_002.png'), false);
    assert.equal(routes('generated/tiny16.png', 1), false);
    assert.equal(routes('png/filters_type6_first0.png', 1), false);
    assert.equal(routes('png/filters_type2_first0.png', 6), true);
    // An RGB PNG with a transparent colour (tRNS chunk before IDAT) stays on the exact path.
    const rgb = fs.readFileSync(fixture('png/filters_type2_first0.png'));
    const transparency = Buffer.from([0, 0, 0, 6, 0x74, 0x52, 0x4e, 0x53, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    transparency.writeUInt32BE(zlib.crc32(transparency.subarray(4, 14)), 14);
    const withTransparency = Buffer.concat([rgb.subarray(0, 33), transparency, rgb.subarray(33)]);
    assert.equal(resizesWithLibvips(withTransparency, 6, 6), false);
    // Enlarging stays on the exact path: the 685 x 754 JPEG for a 700 x 700 output.
    assert.equal(routes('real/covid_41182_2020_203_Fig5_HTML.jpg', 700), false);
  });

  it('enlarges small images on the exact path', async () => {
    const file = fixture('png/filters_type2_first0.png');
    const fast = await decodeXrayFileResized(file, { size: 16 });
    const exact = await decodeXrayFileResized(file, { size: 16, resize: 'pillow' });
    assert.deepEqual(fast, exact);
  });

  it('rejects other files in decodeResizedWithLibvips', async () => {
    const bytes = fs.readFileSync(fixture('generated/tiny16.png'));
    await assert.rejects(decodeResizedWithLibvips(bytes, 'tiny16.png', 4, 4), /tiny16\.png with libvips: expected an 8-bit JPEG or an 8-bit RGB PNG/);
  });
});

describe('datasets/xray resize pass order', () => {
  // reference/datasets_xray_resize_order.py: Pillow's bilinear resize on both sides of its pass order rule.
  const dir = fixture('resize-order');
  const { cases } = JSON.parse(fs.readFileSync(path.join(dir, 'resize.json'), 'utf8')) as {
    cases: { name: string; width: number; height: number; outWidth: number; outHeight: number }[];
  };
  const readFloat32 = (file: string): Float32Array => {
    const bytes = fs.readFileSync(path.join(dir, file));
    return new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length));
  };
  const addon = nativeImage();

  for (const { name, width, height, outWidth, outHeight } of cases) {
    it(`resizes ${name} as Pillow`, () => {
      const gray = new Uint8Array(fs.readFileSync(path.join(dir, `${name}.in.u8`)));
      const values = readFloat32(`${name}.in.f32`);
      const expected8 = new Uint8Array(fs.readFileSync(path.join(dir, `${name}.out.u8`)));
      const expectedFloat = readFloat32(`${name}.out.f32`);
      assert.deepEqual(resizeBilinear8Js(gray, width, height, outWidth, outHeight), expected8, 'mode L, TypeScript');
      assert.deepEqual(resizeBilinearFloatJs(values, width, height, outWidth, outHeight), expectedFloat, 'mode F, TypeScript');
      if (addon !== undefined) {
        assert.deepEqual(addon.resize8(gray, width, height, outWidth, outHeight), expected8, 'mode L, native');
        assert.deepEqual(addon.resizeFloat(values, width, height, outWidth, outHeight), expectedFloat, 'mode F, native');
      }
    });
  }
});

describe('datasets/xray JPEG frame header', () => {
  for (const entry of expected.eightBit.filter((item) => item.file.endsWith('.jpg'))) {
    it(`reads the size of ${path.basename(entry.file)}`, () => {
      const frame = readJpegFrame(fs.readFileSync(fixture(entry.file)));
      assert.ok(frame !== undefined, 'no frame header found');
      assert.equal(frame.width, entry.width);
      assert.equal(frame.height, entry.height);
      assert.equal(frame.precision, 8);
    });
  }

  it('counts grey and colour components', () => {
    assert.equal(readJpegFrame(fs.readFileSync(fixture('real/covid_7afaaccc.jpg')))?.components, 1);
    assert.equal(readJpegFrame(fs.readFileSync(fixture('real/covid_41182_2020_203_Fig5_HTML.jpg')))?.components, 3);
  });

  it('returns undefined without a frame header', () => {
    assert.equal(readJpegFrame(Buffer.from([0xff, 0xd8, 0xff, 0xd9])), undefined);
    assert.equal(readJpegFrame(fs.readFileSync(fixture('real/nih_00000001_002.png'))), undefined);
  });
});

describe('datasets/xray 8-bit CLAHE', () => {
  it('matches the float path on the real radiographs', async () => {
    for (const entry of expected.eightBit) {
      const resized = await decodeXrayFileResized(fixture(entry.file), { resize: 'pillow' });
      assert.ok(resized.data instanceof Uint8Array);
      const viaFloat = Array.from(equalizeAdapthist(scaleToUnit(resized), 224, 224), (v) => roundHalfEven(v * 255));
      assert.deepEqual(Array.from(equalizeAdapthistUint8(resized.data, 224, 224)), viaFloat, entry.file);
    }
  });

  it('keeps flat and all-zero images finite', () => {
    for (const value of [0, 7, 255]) {
      const flat = new Uint8Array(40 * 30).fill(value);
      const viaFloat = Array.from(equalizeAdapthist(scaleToUnit({ width: 40, height: 30, data: flat }), 40, 30), (v) => roundHalfEven(v * 255));
      assert.deepEqual(Array.from(equalizeAdapthistUint8(flat, 40, 30)), viaFloat, `value ${value}`);
    }
  });

  it('rejects a size mismatch', () => {
    assert.throws(() => equalizeAdapthistUint8(new Uint8Array(10), 4, 4), /Invalid CLAHE input: 10 values for a 4 x 4 image/);
  });
});
