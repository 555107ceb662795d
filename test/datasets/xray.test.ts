// X-ray decoding and preprocessing against fixtures from reference/datasets_xray.py
// (Pillow 13, scikit-image 0.26 equalize_adapthist, pydicom 3).
import { strict as assert } from 'assert';
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import {
  augmentXray, claheUint8, decodeDicom, gaussianBlur, decodeXrayFile, equalizeAdapthist, normaliseToRgb, preprocessXrayFile,
  resizeGray, roundHalfEven, scaleToUnit, XRAY_MEAN, XRAY_STD, XrayDecodeError,
} from '../../src/datasets/xray';
import { Rng } from '../../src/util/rng';

const FIXTURES = path.join(__dirname, '..', 'fixtures', 'datasets', 'xray');

interface EightBitCase {
  file: string; width: number; height: number; decodedSha256: string; decodedSum: number; resizedSha256: string; clahe: string;
}
interface FloatCase { file: string; width: number; height: number; clahe: string; resized: string; decodedSha256?: string }
interface DicomCase { file: string; rows: number; columns: number; display: number[] }
interface ClaheCase {
  height: number; width: number; input: string; output: string;
  options: { kernelSize?: [number, number]; clipLimit?: number; nbins?: number };
}
const expected = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'expected.json'), 'utf8')) as {
  claheCases: ClaheCase[];
  eightBit: EightBitCase[];
  sixteenBit: FloatCase;
  dicomReal: FloatCase & { gridStep: number; displayGrid: number[]; displayMean: number };
  dicomCases: DicomCase[];
};

function fixture(relative: string): string {
  return path.join(FIXTURES, relative);
}

function sha256(data: ArrayBufferView): string {
  return createHash('sha256').update(new Uint8Array(data.buffer, data.byteOffset, data.byteLength)).digest('hex');
}

function readU8(relative: string): Uint8Array {
  return new Uint8Array(fs.readFileSync(fixture(relative)));
}

function readF32(relative: string): Float32Array {
  const bytes = fs.readFileSync(fixture(relative));
  return new Float32Array(new Uint8Array(bytes).buffer);
}

function meanAbsDifference(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length, 'length mismatch');
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += Math.abs(a[i] - b[i]);
  return sum / a.length;
}

function withTempDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'more-xray-'));
}

describe('datasets/xray decoding', () => {
  for (const entry of expected.eightBit) {
    it(`decodes ${path.basename(entry.file)} like Pillow`, async () => {
      const image = await decodeXrayFile(fixture(entry.file));
      assert.equal(image.width, entry.width);
      assert.equal(image.height, entry.height);
      assert.ok(image.data instanceof Uint8Array, 'expected 8-bit grey samples');
      assert.equal(sha256(image.data), entry.decodedSha256, 'decoded pixels differ from Pillow');
    });
  }

  it('decodes a 16-bit PNG in sample order', async () => {
    const image = await decodeXrayFile(fixture('generated/tiny16.png'));
    assert.ok(image.data instanceof Uint16Array, 'expected 16-bit samples');
    assert.deepEqual(Array.from(image.data), [0, 65535, 40000, 20000]);
    const unit = Array.from(scaleToUnit(image));
    const want = [0, 1, 0.61036, 0.30518];
    unit.forEach((value, i) => assert.ok(Math.abs(value - want[i]) < 1e-5, `pixel ${i}: ${value} != ${want[i]}`));
  });

  it('decodes a larger 16-bit PNG like Pillow', async () => {
    const image = await decodeXrayFile(fixture(expected.sixteenBit.file));
    assert.equal(image.width, expected.sixteenBit.width);
    assert.ok(image.data instanceof Uint16Array);
    // The fixture hash is of little-endian samples; Uint16Array uses native order (little endian on x86 and ARM).
    assert.equal(os.endianness(), 'LE');
    assert.equal(sha256(image.data), expected.sixteenBit.decodedSha256);
  });

  it('rejects a corrupt JPEG naming the file', async () => {
    const dir = withTempDir();
    const good = fs.readFileSync(fixture(expected.eightBit[2].file));
    const broken = path.join(dir, 'truncated.jpg');
    fs.writeFileSync(broken, good.subarray(0, Math.floor(good.length / 3)));
    await assert.rejects(decodeXrayFile(broken), (error: Error) => {
      assert.ok(error instanceof XrayDecodeError, error.name);
      assert.match(error.message, /truncated\.jpg/);
      return true;
    });
    const garbage = path.join(dir, 'garbage.png');
    fs.writeFileSync(garbage, Buffer.from('this is not an image at all'));
    await assert.rejects(decodeXrayFile(garbage), /garbage\.png/);
  });

  it('rejects a missing file naming it', async () => {
    await assert.rejects(decodeXrayFile('/nonexistent/dir/x.png'), /x\.png: file not found/);
  });
});

describe('datasets/xray DICOM', () => {
  for (const entry of expected.dicomCases) {
    it(`maps ${path.basename(entry.file)} like pydicom`, () => {
      const image = decodeDicom(fs.readFileSync(fixture(entry.file)), entry.file);
      assert.equal(image.height, entry.rows);
      assert.equal(image.width, entry.columns);
      entry.display.forEach((want, i) => {
        assert.ok(Math.abs(image.data[i] - want) < 1e-6, `pixel ${i}: ${image.data[i]} != ${want}`);
      });
    });
  }

  it('inverts MONOCHROME1 12-bit without a window', () => {
    const image = decodeDicom(fs.readFileSync(fixture('generated/mono1_12bit_implicit.dcm')), 'case');
    const unit = Array.from(scaleToUnit(image));
    const want = [1, 0, 0.7558, 0.2674];
    unit.forEach((value, i) => assert.ok(Math.abs(value - want[i]) < 1e-4, `pixel ${i}: ${value}`));
  });

  it('reads the real MONOCHROME1 file without preamble', () => {
    const entry = expected.dicomReal;
    const image = decodeDicom(fs.readFileSync(fixture(entry.file)), entry.file);
    assert.equal(image.info.transferSyntaxUid, '1.2.840.10008.1.2');
    assert.equal(image.info.photometricInterpretation, 'MONOCHROME1');
    assert.equal(image.info.bitsStored, 10);
    assert.equal(image.width, entry.width);
    let k = 0;
    for (let y = 0; y < entry.height; y += entry.gridStep) {
      for (let x = 0; x < entry.width; x += entry.gridStep) {
        const got = image.data[y * entry.width + x];
        assert.ok(Math.abs(got - entry.displayGrid[k]) < 1e-6, `(${y}, ${x}): ${got} != ${entry.displayGrid[k]}`);
        k++;
      }
    }
  });

  it('rejects DICOM without pixel data', () => {
    assert.throws(() => decodeDicom(fs.readFileSync(fixture('generated/no_pixel_data.dcm')), 'no_pixel_data.dcm'),
      /no_pixel_data\.dcm has no pixel data \(7FE0,0010\)/);
  });

  it('rejects a JPEG transfer syntax by UID and name', () => {
    assert.throws(() => decodeDicom(fs.readFileSync(fixture('generated/jpeg_baseline.dcm')), 'jpeg_baseline.dcm'),
      /1\.2\.840\.10008\.1\.2\.4\.50 \(JPEG Baseline \(Process 1\)\) in jpeg_baseline\.dcm/);
  });

  it('rejects mutated DICOM bytes cleanly', () => {
    // Seeded truncations and byte flips: each must decode or raise XrayDecodeError, never another error.
    const rng = new Rng(11);
    const sources = expected.dicomCases.map((entry) => new Uint8Array(fs.readFileSync(fixture(entry.file))));
    for (let trial = 0; trial < 300; trial++) {
      const original = sources[trial % sources.length];
      const bytes = Uint8Array.from(original.subarray(0, 1 + rng.int(original.length)));
      for (let flips = rng.int(4); flips > 0; flips--) bytes[rng.int(bytes.length)] = rng.int(256);
      try {
        decodeDicom(bytes, `trial${trial}.dcm`);
      } catch (error) {
        assert.ok(error instanceof XrayDecodeError, `trial ${trial}: ${(error as Error).name}: ${(error as Error).message}`);
        assert.match((error as Error).message, new RegExp(`trial${trial}\\.dcm`));
      }
    }
  });

  it('rejects a truncated DICOM naming the file', () => {
    const bytes = fs.readFileSync(fixture(expected.dicomReal.file));
    assert.throws(() => decodeDicom(bytes.subarray(0, 500), 'cut.dcm'), /Invalid DICOM file cut\.dcm/);
    assert.throws(() => decodeDicom(bytes.subarray(0, 3), 'tiny.dcm'), /tiny\.dcm/);
  });
});

describe('datasets/xray preprocessing', () => {
  for (const entry of expected.eightBit) {
    it(`resizes and equalises ${path.basename(entry.file)} like Pillow and scikit-image`, async () => {
      const image = await decodeXrayFile(fixture(entry.file));
      const resized = resizeGray(image, 224, 224);
      assert.equal(sha256(resized.data), entry.resizedSha256, 'bilinear resize differs from Pillow');
      const clahe = claheUint8(image);
      const want = readU8(entry.clahe);
      const difference = meanAbsDifference(clahe, want);
      assert.ok(difference <= 1, `mean CLAHE difference ${difference} grey levels`);
      assert.equal(difference, 0, `CLAHE differs from scikit-image by ${difference} grey levels on average`);
    });
  }

  for (const entry of [expected.sixteenBit, expected.dicomReal]) {
    it(`equalises ${path.basename(entry.file)} through the float path`, async () => {
      const image = await decodeXrayFile(fixture(entry.file));
      const resized = resizeGray(image, 224, 224);
      const wantResized = readF32(entry.resized);
      const resizeError = meanAbsDifference(resized.data, wantResized);
      assert.ok(resizeError < 1e-6 * Math.max(...Array.from(wantResized)), `resize error ${resizeError}`);
      const difference = meanAbsDifference(claheUint8(image), readU8(entry.clahe));
      assert.ok(difference <= 1, `mean CLAHE difference ${difference} grey levels`);
    });
  }

  for (const entry of expected.claheCases) {
    it(`equalises ${entry.height}x${entry.width} ${JSON.stringify(entry.options)} like scikit-image`, () => {
      const input = new Float64Array(new Uint8Array(fs.readFileSync(fixture(entry.input))).buffer);
      const out = equalizeAdapthist(input, entry.width, entry.height, entry.options);
      const bytes = Array.from(out, (v) => roundHalfEven(v * 255));
      assert.deepEqual(bytes, Array.from(readU8(entry.output)));
    });
  }

  it('equalises a flat image without dividing by zero', () => {
    const flat = new Float64Array(64 * 48).fill(0.5);
    const out = equalizeAdapthist(flat, 64, 48);
    assert.ok(out.every((v) => Number.isFinite(v)), 'non-finite output');
  });

  it('produces normalised 224x224x3 output', async () => {
    const entry = expected.eightBit[0];
    const out = await preprocessXrayFile(fixture(entry.file));
    assert.equal(out.length, 224 * 224 * 3);
    const want = readU8(entry.clahe);
    for (const i of [0, 1000, 30000, 50175]) {
      const value = (want[i] / 255 - XRAY_MEAN) / XRAY_STD;
      assert.ok(Math.abs(out[i * 3] - value) < 1e-6, `pixel ${i}`);
      assert.equal(out[i * 3 + 1], out[i * 3]);
      assert.equal(out[i * 3 + 2], out[i * 3]);
    }
  });

  it('normalises grey 0 and 255 to the stated bounds', () => {
    const out = normaliseToRgb(new Uint8Array([0, 255]));
    assert.ok(Math.abs(out[0] - (0 - 0.499) / 0.293) < 1e-6);
    assert.ok(Math.abs(out[3] - (1 - 0.499) / 0.293) < 1e-6);
  });

  it('augments reproducibly from the seed', async () => {
    const file = fixture(expected.eightBit[0].file);
    const first = await preprocessXrayFile(file, { augment: { rng: new Rng(7) } });
    const again = await preprocessXrayFile(file, { augment: { rng: new Rng(7) } });
    const other = await preprocessXrayFile(file, { augment: { rng: new Rng(8) } });
    const plain = await preprocessXrayFile(file);
    assert.deepEqual(first, again);
    assert.notDeepEqual(first, other);
    assert.notDeepEqual(first, plain);
    const low = (0 - XRAY_MEAN) / XRAY_STD - 1e-6;
    const high = (1 - XRAY_MEAN) / XRAY_STD + 1e-6;
    assert.ok(first.every((v) => v >= low && v <= high), 'augmented value outside the normalised range');
  });
});

describe('datasets/xray augmentation', () => {
  const width = 6;
  const height = 4;
  const image = Float32Array.from({ length: width * height }, (_, i) => (i % 7) / 7);
  const off = { cropProbability: 0, jitterProbability: 0, blurProbability: 0, flipProbability: 0 };

  it('leaves the image alone when every probability is 0', () => {
    assert.deepEqual(augmentXray(image, width, height, new Rng(1), off), image);
  });

  it('mirrors each row on a flip', () => {
    const out = augmentXray(image, width, height, new Rng(1), { ...off, flipProbability: 1 });
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) assert.equal(out[y * width + x], image[y * width + (width - 1 - x)]);
    }
  });

  it('keeps jittered values in [0, 1]', () => {
    for (let seed = 0; seed < 20; seed++) {
      const out = augmentXray(image, width, height, new Rng(seed), { ...off, jitterProbability: 1 });
      assert.ok(out.every((v) => v >= 0 && v <= 1), `seed ${seed}`);
    }
  });

  it('keeps a constant image constant under blur and crop', () => {
    const flat = new Float32Array(32 * 32).fill(0.25);
    const out = augmentXray(flat, 32, 32, new Rng(3), { ...off, blurProbability: 1, cropProbability: 1 });
    assert.ok(out.every((v) => Math.abs(v - 0.25) < 1e-6));
  });

  it('blurs with a normalised kernel', () => {
    const impulse = new Float32Array(15 * 15);
    impulse[7 * 15 + 7] = 1;
    const out = gaussianBlur(impulse, 15, 15, 1.0);
    const total = out.reduce((a, b) => a + b, 0);
    assert.ok(Math.abs(total - 1) < 1e-5, `sum ${total}`);
    assert.ok(out[7 * 15 + 7] > out[7 * 15 + 8], 'centre should be the peak');
    assert.ok(Math.abs(out[7 * 15 + 6] - out[7 * 15 + 8]) < 1e-7, 'kernel should be symmetric');
  });
});
