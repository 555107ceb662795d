import * as assert from 'assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

import {
  SafetensorsFile,
  type TensorToWrite,
  encodeSafetensors,
  float16BitsToNumber,
  numberToBfloat16Bits,
  numberToFloat16Bits,
  readSafetensors,
  roundToDtype,
  writeSafetensors,
} from '../../src/model/safetensors';

// dtypes.safetensors was written by the Python safetensors package 0.8 through
// reference/model_text.py, with torch's own float16 and bfloat16 rounding.
const DTYPES_FILE = path.join(__dirname, '..', 'fixtures', 'model', 'text', 'dtypes.safetensors');
// ts-written.safetensors is this writer's output for the tensors of tsWrittenTensors(),
// checked by `reference/model_text.py --check-ts-file` with the Python package.
// Set MORE_TS_UPDATE_FIXTURES=1 to rewrite it after a deliberate format change.
const TS_WRITTEN_FILE = path.join(__dirname, '..', 'fixtures', 'model', 'text', 'ts-written.safetensors');

/** Builds a file from a header object and data bytes, padding the header with spaces to `headerLength`. */
function rawFile(header: string, data: number[], headerLength = header.length): Uint8Array {
  const padded = header + ' '.repeat(headerLength - header.length);
  const bytes = new Uint8Array(8 + padded.length + data.length);
  new DataView(bytes.buffer).setBigUint64(0, BigInt(padded.length), true);
  bytes.set(Buffer.from(padded, 'utf8'), 8);
  bytes.set(data, 8 + padded.length);
  return bytes;
}

function tsWrittenTensors(): Map<string, TensorToWrite> {
  const exact = values('values.f32');
  return new Map<string, TensorToWrite>([
    ['w.f32', { dtype: 'F32', shape: [8, 8], data: exact }],
    ['w.f16', { dtype: 'F16', shape: [8, 8], data: exact }],
    ['w.bf16', { dtype: 'BF16', shape: [4, 16], data: exact }],
    ['scalar', { dtype: 'F32', shape: [], data: new Float32Array([2.5]) }],
  ]);
}

function values(name: string, file = DTYPES_FILE): Float32Array {
  const { tensors } = readSafetensors(file);
  const tensor = tensors.get(name);
  assert.ok(tensor !== undefined, `${name} missing from ${file}`);
  return tensor.data;
}

describe('safetensors', () => {
  it('reads the BF16 example byte for byte', () => {
    const header = '{"w":{"dtype":"BF16","shape":[3],"data_offsets":[0,6]}}';
    assert.strictEqual(header.length, 55);
    const bytes = rawFile(header, [0x80, 0x3f, 0x00, 0x3f, 0x00, 0xc0], 56);
    assert.strictEqual(new DataView(bytes.buffer).getBigUint64(0, true), 56n);
    const file = SafetensorsFile.fromBytes(bytes, 'example.safetensors');
    const tensor = file.read('w');
    assert.strictEqual(tensor.dtype, 'BF16');
    assert.deepStrictEqual(tensor.shape, [3]);
    assert.deepStrictEqual(Array.from(tensor.data), [1.0, 0.5, -2.0]);
  });

  it('rejects a span that disagrees with the shape', () => {
    const header = '{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,6]}}';
    assert.throws(
      () => SafetensorsFile.fromBytes(rawFile(header, [0, 0, 0, 0, 0, 0]), 'span.safetensors'),
      /span\.safetensors: tensor "w": data_offsets \[0, 6\] span 6 bytes, but shape \[2\] of F32 needs 8 bytes/,
    );
  });

  it('rejects data offsets outside the data area', () => {
    const header = '{"w":{"dtype":"F16","shape":[4],"data_offsets":[0,8]}}';
    assert.throws(
      () => SafetensorsFile.fromBytes(rawFile(header, [0, 0, 0, 0]), 'short.safetensors'),
      /short\.safetensors: tensor "w": data_offsets \[0, 8\] lie outside the data area of 4 bytes/,
    );
  });

  it('rejects overlapping tensors', () => {
    const header = '{"a":{"dtype":"F16","shape":[2],"data_offsets":[0,4]},"b":{"dtype":"F16","shape":[2],"data_offsets":[2,6]}}';
    assert.throws(
      () => SafetensorsFile.fromBytes(rawFile(header, [0, 0, 0, 0, 0, 0]), 'overlap.safetensors'),
      /overlap\.safetensors: tensor "b" starts at byte 2, inside tensor "a" \(which ends at 4\)/,
    );
  });

  it('rejects gaps and trailing bytes', () => {
    const gap = '{"a":{"dtype":"F16","shape":[1],"data_offsets":[0,2]},"b":{"dtype":"F16","shape":[1],"data_offsets":[4,6]}}';
    assert.throws(
      () => SafetensorsFile.fromBytes(rawFile(gap, [0, 0, 0, 0, 0, 0]), 'gap.safetensors'),
      /gap\.safetensors: tensor "b" starts at byte 4, leaving a gap after byte 2/,
    );
    const trailing = '{"a":{"dtype":"F16","shape":[1],"data_offsets":[0,2]}}';
    assert.throws(
      () => SafetensorsFile.fromBytes(rawFile(trailing, [0, 0, 9]), 'trailing.safetensors'),
      /trailing\.safetensors: tensors cover 2 bytes of the 3-byte data area/,
    );
  });

  it('rejects a header length beyond the file', () => {
    const bytes = rawFile('{}', []);
    new DataView(bytes.buffer).setBigUint64(0, 1000n, true);
    assert.throws(
      () => SafetensorsFile.fromBytes(bytes, 'long.safetensors'),
      /long\.safetensors: header length 1000 runs past the end of the file \(10 bytes\)/,
    );
  });

  it('rejects an unknown dtype naming the tensor', () => {
    const header = '{"weird":{"dtype":"F8_E4M3","shape":[2],"data_offsets":[0,2]}}';
    assert.throws(
      () => SafetensorsFile.fromBytes(rawFile(header, [0, 0]), 'dtype.safetensors'),
      /dtype\.safetensors: tensor "weird": unsupported dtype "F8_E4M3"/,
    );
  });

  it('rejects a header that is not JSON', () => {
    assert.throws(() => SafetensorsFile.fromBytes(rawFile('{"w":', []), 'json.safetensors'), /json\.safetensors: header is not valid JSON/);
  });

  it('rejects a file shorter than the length field', () => {
    assert.throws(() => SafetensorsFile.fromBytes(new Uint8Array(3), 'tiny.safetensors'), /tiny\.safetensors: file of 3 bytes is too short/);
  });

  it('reads metadata and tensors written by Python', () => {
    const file = SafetensorsFile.open(DTYPES_FILE);
    assert.deepStrictEqual(file.metadata, { format: 'pt', source: 'model_text.py' });
    assert.strictEqual(file.entry('values.f16').dtype, 'F16');
    assert.strictEqual(file.entry('values.bf16').dtype, 'BF16');
    assert.deepStrictEqual(file.read('scalar.f32').shape, []);
    assert.deepStrictEqual(Array.from(file.read('scalar.f32').data), [2.5]);
    assert.deepStrictEqual(file.read('empty.f32').shape, [0, 3]);
    assert.deepStrictEqual(Array.from(file.read('ids.i64').data), [0, 5, 2, 0, 7, 1]);
    assert.throws(() => file.read('absent'), /tensor "absent" not found/);
    file.close();
  });

  it('widens F16 and BF16 as torch does', () => {
    for (const dtype of ['f16', 'bf16']) {
      const ours = values(`values.${dtype}`);
      const torch = values(`widened.${dtype}`);
      assert.strictEqual(ours.length, torch.length);
      for (let i = 0; i < ours.length; i++) assert.ok(Object.is(ours[i], torch[i]), `${dtype}[${i}]: ${ours[i]} vs ${torch[i]}`);
    }
  });

  it('rounds to F16 and BF16 as torch does', () => {
    const exact = values('values.f32');
    for (const [dtype, ours] of [['f16', roundToDtype(exact, 'F16')], ['bf16', roundToDtype(exact, 'BF16')]] as const) {
      const torch = values(`widened.${dtype}`);
      for (let i = 0; i < exact.length; i++) {
        assert.ok(Object.is(ours[i], torch[i]), `${dtype} rounding of ${exact[i]}: ${ours[i]} vs torch ${torch[i]}`);
      }
    }
  });

  it('converts half-precision bit patterns', () => {
    assert.strictEqual(numberToFloat16Bits(1), 0x3c00);
    assert.strictEqual(numberToFloat16Bits(-2), 0xc000);
    assert.strictEqual(numberToFloat16Bits(65504), 0x7bff);
    assert.strictEqual(numberToFloat16Bits(1e6), 0x7c00);
    assert.strictEqual(float16BitsToNumber(0x0001), 2 ** -24);
    assert.ok(Number.isNaN(float16BitsToNumber(numberToFloat16Bits(Number.NaN))));
    assert.strictEqual(numberToBfloat16Bits(1), 0x3f80);
    assert.strictEqual(numberToBfloat16Bits(-2), 0xc000);
  });

  it('round-trips F32, F16 and BF16 through a file', () => {
    const directory = fs.mkdtempSync(path.join(os.tmpdir(), 'more-safetensors-'));
    try {
      const exact = values('values.f32');
      const tensors: Record<string, TensorToWrite> = {
        a: { dtype: 'F32', shape: [8, 8], data: exact },
        b: { dtype: 'F16', shape: [64], data: exact },
        c: { dtype: 'BF16', shape: [2, 32], data: exact },
      };
      const file = path.join(directory, 'out.safetensors');
      writeSafetensors(file, tensors, { note: 'written by the test' });
      const { tensors: read, metadata } = readSafetensors(file);
      assert.deepStrictEqual(metadata, { note: 'written by the test' });
      assert.deepStrictEqual(read.get('a')?.data, exact);
      assert.deepStrictEqual(read.get('b')?.data, values('widened.f16'));
      assert.deepStrictEqual(read.get('c')?.data, values('widened.bf16'));
      assert.deepStrictEqual(read.get('c')?.shape, [2, 32]);
      assert.deepStrictEqual(fs.readdirSync(directory), ['out.safetensors'], 'no temporary file is left behind');
      // The header is padded to a multiple of 8 bytes, as the Python writer does.
      const bytes = fs.readFileSync(file);
      assert.strictEqual(Number(bytes.readBigUInt64LE(0)) % 8, 0);
    } finally {
      fs.rmSync(directory, { recursive: true, force: true });
    }
  });

  it('writes the bytes Python verified', () => {
    const bytes = encodeSafetensors(tsWrittenTensors(), { writer: 'more-ts' });
    if (process.env.MORE_TS_UPDATE_FIXTURES === '1') writeSafetensors(TS_WRITTEN_FILE, tsWrittenTensors(), { writer: 'more-ts' });
    const committed = fs.readFileSync(TS_WRITTEN_FILE);
    assert.strictEqual(Buffer.compare(Buffer.from(bytes), committed), 0, 'writer output changed; see TS_WRITTEN_FILE');
  });

  it('rejects values that do not fill the shape', () => {
    assert.throws(
      () => encodeSafetensors({ w: { dtype: 'F32', shape: [2, 2], data: new Float32Array(3) } }),
      /tensor "w": shape \[2, 2\] needs 4 values, got 3/,
    );
  });
});
