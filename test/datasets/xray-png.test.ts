// The JavaScript PNG decoder against Pillow 13: hand-written files with every filter type
// (reference/datasets_xray_png.py) and the real radiographs (reference/datasets_xray.py).
import { strict as assert } from 'assert';
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as zlib from 'zlib';
import { decodeImageBuffer, decodeSimplePng, readPngHeader, rgbToGray8, XrayDecodeError } from '../../src/datasets/xray';

const FIXTURES = path.join(__dirname, '..', 'fixtures', 'datasets', 'xray');

interface FilterCase { file: string; width: number; height: number; channels: number; samples: number[]; gray: number[] }
const pngFixtures = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'png', 'png.json'), 'utf8')) as {
  filterCases: FilterCase[];
  palette: { file: string; width: number; height: number; gray: number[] };
};
const realImages = (JSON.parse(fs.readFileSync(path.join(FIXTURES, 'expected.json'), 'utf8')) as {
  eightBit: { file: string; width: number; height: number; decodedSha256: string }[];
}).eightBit.filter((entry) => entry.file.endsWith('.png'));

function read(relative: string): Buffer {
  return fs.readFileSync(path.join(FIXTURES, relative));
}

function sha256(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Returns a copy of a PNG with the 4-byte big-endian value at `offset` replaced. */
function withUint32(bytes: Buffer, offset: number, value: number): Buffer {
  const copy = Buffer.from(bytes);
  copy.writeUInt32BE(value >>> 0, offset);
  return copy;
}

/** Returns the byte offset of the first chunk of `type`. */
function chunkOffset(bytes: Buffer, type: string): number {
  let offset = 8;
  while (offset < bytes.length) {
    if (bytes.toString('latin1', offset + 4, offset + 8) === type) return offset;
    offset += 12 + bytes.readUInt32BE(offset);
  }
  throw new Error(`no ${type} chunk`);
}

describe('datasets/xray PNG decoder', () => {
  for (const entry of pngFixtures.filterCases) {
    it(`decodes ${path.basename(entry.file)} like Pillow`, () => {
      const decoded = decodeSimplePng(read(entry.file), entry.file);
      assert.ok(decoded !== undefined, 'layout not handled');
      assert.equal(decoded.width, entry.width);
      assert.equal(decoded.height, entry.height);
      assert.equal(decoded.channels, entry.channels);
      assert.deepEqual(Array.from(decoded.data), entry.samples);
    });
  }

  it('converts every colour type to Pillow grey', async () => {
    for (const entry of pngFixtures.filterCases) {
      const image = await decodeImageBuffer(read(entry.file), entry.file);
      assert.deepEqual(Array.from(image.data), entry.gray, entry.file);
    }
  });

  for (const entry of realImages) {
    it(`decodes ${path.basename(entry.file)} like Pillow`, () => {
      const decoded = decodeSimplePng(read(entry.file), entry.file);
      assert.ok(decoded !== undefined, 'layout not handled');
      const gray = decoded.channels === 1 ? decoded.data : rgbToGray8(decoded.data, decoded.width, decoded.height, decoded.channels);
      assert.equal(decoded.width, entry.width);
      assert.equal(sha256(gray), entry.decodedSha256, 'decoded pixels differ from Pillow');
    });
  }

  it('leaves palette and 16-bit files to sharp', async () => {
    assert.equal(decodeSimplePng(read(pngFixtures.palette.file), 'palette.png'), undefined);
    assert.equal(decodeSimplePng(read('generated/tiny16.png'), 'tiny16.png'), undefined);
    const image = await decodeImageBuffer(read(pngFixtures.palette.file), 'palette.png');
    assert.equal(image.width, pngFixtures.palette.width);
    assert.deepEqual(Array.from(image.data), pngFixtures.palette.gray);
  });

  it('reads the IHDR fields', () => {
    assert.deepEqual(readPngHeader(read('generated/tiny16.png')), { width: 2, height: 2, bitDepth: 16, colorType: 0, interlace: 0 });
    assert.equal(readPngHeader(Buffer.from('not a png at all, no signature here')), undefined);
  });

  it('rejects an IDAT CRC mismatch', () => {
    const bytes = read('real/nih_00000001_002.png');
    const idat = chunkOffset(bytes, 'IDAT');
    const crcOffset = idat + 8 + bytes.readUInt32BE(idat);
    const broken = withUint32(bytes, crcOffset, bytes.readUInt32BE(crcOffset) ^ 1);
    assert.throws(() => decodeSimplePng(broken, 'crc.png'), (error: Error) => {
      assert.ok(error instanceof XrayDecodeError, error.name);
      assert.match(error.message, /crc\.png: CRC mismatch in the IDAT chunk/);
      return true;
    });
  });

  it('rejects a truncated file', () => {
    const bytes = read('real/hannover_4d98e1de.png');
    assert.throws(() => decodeSimplePng(bytes.subarray(0, Math.floor(bytes.length / 2)), 'half.png'), /half\.png: IDAT chunk .* \(truncated\)/);
    const withoutEnd = bytes.subarray(0, chunkOffset(bytes, 'IEND'));
    assert.throws(() => decodeSimplePng(withoutEnd, 'noend.png'), /noend\.png: no IEND chunk/);
  });

  it('rejects an unknown filter type', () => {
    assert.throws(() => decodeSimplePng(read('png/bad_filter.png'), 'bad_filter.png'), /bad_filter\.png: unknown filter type 5 on row 1/);
  });

  it('rejects image data of the wrong size', () => {
    // Two of the nine rows (12 bytes each with the filter byte) are missing.
    assert.throws(() => decodeSimplePng(read('png/short_data.png'), 'short_data.png'), /short_data\.png: image data inflates to 84 bytes, expected 108 for 11 x 9 x 1/);
  });

  it('rejects more image data than IHDR declares', () => {
    // IHDR declares 3 rows where the data contains 6 (8 bytes per row with the filter byte). The IHDR CRC is updated to match.
    const bytes = withUint32(read('png/filters_type0_first0.png'), 20, 3);
    bytes.writeUInt32BE(zlib.crc32(bytes.subarray(12, 29)), 29);
    assert.throws(() => decodeSimplePng(bytes, 'tall.png'), /tall\.png: image data inflates to more than the 24 bytes IHDR implies/);
  });

  it('rejects a missing IDAT chunk', () => {
    const bytes = read('png/filters_type0_first0.png');
    const first = chunkOffset(bytes, 'IDAT');
    const end = chunkOffset(bytes, 'IEND');
    const noData = Buffer.concat([bytes.subarray(0, first), bytes.subarray(end)]);
    assert.throws(() => decodeSimplePng(noData, 'nodata.png'), /nodata\.png: no IDAT chunk/);
  });

  it('names the file through decodeImageBuffer', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'more-png-'));
    const file = path.join(dir, 'cut.png');
    const bytes = read('real/nih_00000001_002.png');
    fs.writeFileSync(file, bytes.subarray(0, bytes.length - 40));
    await assert.rejects(decodeImageBuffer(fs.readFileSync(file), file), /cut\.png/);
  });
});
