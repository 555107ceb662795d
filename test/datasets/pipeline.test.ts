// Batch pipeline: order, masks, skip summaries, worker threads, failures and tensor hygiene.
import { strict as assert } from 'assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs';
import { loadPreprocessedEcg } from '../../src/datasets/ecg/load';
import {
  Batch, BatchPipeline, batchToTensors, DecoderSpec, ecgDecoder, PipelineOptions, SampleRecord, xrayDecoder,
} from '../../src/datasets/pipeline';
import { WorkerPool } from '../../src/datasets/pipeline/pool';
import { preprocessXrayFile } from '../../src/datasets/xray';
import { getLogLevel, setLogLevel } from '../../src/util/log';

const PROBE: DecoderSpec = { module: path.join(__dirname, 'pipeline.decoders.ts'), exportName: 'decodeProbe', shape: [4] };
const XRAY_FILE = path.join(__dirname, '..', 'fixtures', 'datasets', 'xray', 'real', 'nih_00000001_002.png');
const ECG_RECORD = path.join(__dirname, '..', 'fixtures', 'datasets', 'ecg', 'records', 'ptbxl', 'records100', '00000', '00001_lr');

let dir: string;
const pipelines: BatchPipeline[] = [];

function probeFile(name: string, content: string): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, content);
  return file;
}

function numbered(count: number): SampleRecord[] {
  return Array.from({ length: count }, (_, i) => ({ id: `s${i}`, xrayPath: probeFile(`x${i}.txt`, String(i)), text: `report ${i}` }));
}

function open(records: SampleRecord[], options: Partial<PipelineOptions>): BatchPipeline {
  const pipeline = new BatchPipeline(records, { batchSize: 4, workers: 1, xray: PROBE, ...options });
  pipelines.push(pipeline);
  return pipeline;
}

async function collect(pipeline: BatchPipeline, epoch = 0): Promise<Batch[]> {
  const batches: Batch[] = [];
  for await (const batch of pipeline.batches(epoch)) batches.push(batch);
  return batches;
}

// The log level changes stay inside this file's tests: a root-level hook
// would change it for every file of the run.
describe('datasets/pipeline', () => {
  let savedLevel: ReturnType<typeof getLogLevel>;
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'more-pipeline-'));
    savedLevel = getLogLevel();
    setLogLevel('silent');
  });
  after(async () => {
    setLogLevel(savedLevel);
    await Promise.all(pipelines.map((p) => p.close()));
  });

  describe('datasets/pipeline order', () => {
    it('repeats the order for a seed', async () => {
      const records = numbered(10);
      const first = (await collect(open(records, { seed: 5 }))).flatMap((b) => b.ids);
      const again = (await collect(open(records, { seed: 5 }))).flatMap((b) => b.ids);
      const other = (await collect(open(records, { seed: 6 }))).flatMap((b) => b.ids);
      assert.deepEqual(again, first);
      assert.notDeepEqual(other, first);
      assert.deepEqual([...first].sort(), records.map((r) => r.id).sort());
    });

    it('changes the order between epochs', () => {
      const pipeline = open(numbered(10), { seed: 5, workers: 0 });
      assert.notDeepEqual(pipeline.order(1), pipeline.order(0));
      assert.deepEqual(pipeline.order(1), open(numbered(10), { seed: 5, workers: 0 }).order(1));
    });

    it('keeps input order without shuffling', async () => {
      const batches = await collect(open(numbered(6), { shuffle: false }));
      assert.deepEqual(batches.map((b) => b.ids), [['s0', 's1', 's2', 's3'], ['s4', 's5']]);
      assert.deepEqual(batches[0].texts, ['report 0', 'report 1', 'report 2', 'report 3']);
      assert.deepEqual(Array.from(batches[1].xray.subarray(0, 1)), [4]);
    });

    it('drops the last partial batch on request', async () => {
      const pipeline = open(numbered(6), { shuffle: false, dropLast: true });
      const batches = await collect(pipeline);
      assert.equal(batches.length, 1);
      assert.equal(pipeline.summary.skipped['dropped with the last partial batch'], 2);
    });
  });

  describe('datasets/pipeline masks and skips', () => {
    it('masks a missing modality', async () => {
      const records: SampleRecord[] = [
        { id: 'both', xrayPath: probeFile('b.txt', '1'), ecgPath: probeFile('be.txt', '2'), text: 'a' },
        { id: 'xray', xrayPath: probeFile('x.txt', '3'), text: 'b' },
        { id: 'ecg', ecgPath: probeFile('e.txt', '4'), text: 'c' },
      ];
      const [batch] = await collect(open(records, { shuffle: false, ecg: PROBE }));
      assert.deepEqual(batch.ids, ['both', 'xray', 'ecg']);
      assert.deepEqual(Array.from(batch.xrayMask), [1, 1, 0]);
      assert.deepEqual(Array.from(batch.ecgMask), [1, 0, 1]);
      assert.deepEqual(batch.xrayShape, [3, 4]);
      assert.deepEqual(Array.from(batch.xray.subarray(8, 12)), [0, 0, 0, 0]);
      assert.deepEqual(Array.from(batch.ecg.subarray(4, 8)), [0, 0, 0, 0]);
      assert.equal(batch.ecg[8], 4);
    });

    it('summarises skipped samples with reasons', async () => {
      const corrupt = probeFile('broken.jpg', 'not a jpeg');
      const records: SampleRecord[] = [
        { id: 'good', xrayPath: XRAY_FILE, text: 'a' },
        { id: 'none', text: 'b' },
        { id: 'corrupt', xrayPath: corrupt, text: 'c' },
        { id: 'missing', xrayPath: path.join(dir, 'nowhere.png'), text: 'd' },
      ];
      const pipeline = open(records, { shuffle: false, xray: xrayDecoder() });
      const batches = await collect(pipeline);
      assert.deepEqual(batches.flatMap((b) => b.ids), ['good']);
      assert.deepEqual(pipeline.summary.skipped, { 'no X-ray or ECG path': 1, 'X-ray decoding failed': 2 });
      const examples = pipeline.summary.examples['X-ray decoding failed'];
      assert.deepEqual(examples.map((e) => e.id), ['corrupt', 'missing']);
      assert.match(examples[0].message ?? '', /broken\.jpg/);
      assert.match(examples[1].message ?? '', /nowhere\.png: file not found/);
      assert.equal(pipeline.summary.samplesRead, 4);
      assert.equal(pipeline.summary.samplesYielded, 1);
    });

    it('masks a failed modality on request', async () => {
      const records: SampleRecord[] = [
        { id: 'half', xrayPath: probeFile('bad.txt', 'oops'), ecgPath: probeFile('ok.txt', '9'), text: 'a' },
      ];
      const pipeline = open(records, { ecg: PROBE, onDecodeError: 'mask' });
      const [batch] = await collect(pipeline);
      assert.deepEqual(Array.from(batch.xrayMask), [0]);
      assert.deepEqual(Array.from(batch.ecgMask), [1]);
      assert.deepEqual(pipeline.summary.masked, { 'X-ray decoding failed': 1 });
    });

    it('rejects a path without a decoder', () => {
      assert.throws(() => new BatchPipeline([{ id: 'a', ecgPath: 'x', text: '' }], { batchSize: 1, workers: 0, xray: PROBE }),
        /Sample a has an ECG path but the pipeline has no ECG decoder/);
    });
  });

  describe('datasets/pipeline workers', () => {
    it('decodes off the main thread', async () => {
      const batches = await collect(open(numbered(6), { workers: 2 }));
      for (const batch of batches) {
        for (let i = 0; i < batch.ids.length; i++) assert.notEqual(batch.xray[i * 4 + 1], 0, `${batch.ids[i]} decoded on the main thread`);
      }
    });

    it('gives each sample the same seed on any thread count', async () => {
      const records = numbered(5);
      const seeds = async (workers: number): Promise<Record<string, number>> => {
        const out: Record<string, number> = {};
        for (const batch of await collect(open(records, { workers, augment: true, seed: 3 }), 2)) {
          batch.ids.forEach((id, i) => (out[id] = batch.xray[i * 4 + 2]));
        }
        return out;
      };
      const threaded = await seeds(2);
      assert.deepEqual(await seeds(0), threaded);
      assert.equal(new Set(Object.values(threaded)).size, 5, 'expected distinct per-sample seeds');
    });

    it('survives a crashing and a hanging decoder', async function () {
      this.timeout(20000);
      const records: SampleRecord[] = [
        { id: 'crash', xrayPath: probeFile('crash.txt', 'crash'), text: '' },
        { id: 'hang', xrayPath: probeFile('hang.txt', 'hang'), text: '' },
        ...numbered(3),
      ];
      const pipeline = open(records, { shuffle: false, taskTimeoutMs: 1500, workers: 1 });
      const ids = (await collect(pipeline)).flatMap((b) => b.ids);
      assert.deepEqual(ids, ['s0', 's1', 's2']);
      const messages = pipeline.summary.examples['X-ray decoding failed'].map((e) => e.message ?? '');
      assert.match(messages[0], /worker exited with code 3 while decoding .*crash\.txt/);
      assert.match(messages[1], /timed out after 1500 ms while decoding .*hang\.txt/);
    });

    it('gives up on a worker that cannot start', async () => {
      const pool = new WorkerPool(1, 5000, path.join(__dirname, 'pipeline.broken-worker.js'));
      try {
        const task = { module: PROBE.module, exportName: PROBE.exportName, filePath: 'a.txt', options: undefined };
        await assert.rejects(pool.run(task), /a\.txt/);
        await assert.rejects(pool.run(task), /a\.txt/);
        await assert.rejects(pool.run(task), /this worker cannot start/);
        await assert.rejects(pool.run({ ...task, filePath: 'b.txt' }), /The decoding workers cannot start .* while decoding b\.txt/);
      } finally {
        await pool.close();
      }
    });

    it('matches the main-thread X-ray and ECG preprocessing', async () => {
      const records: SampleRecord[] = [{ id: 'real', xrayPath: XRAY_FILE, ecgPath: ECG_RECORD, text: 'x' }];
      const [batch] = await collect(open(records, { xray: xrayDecoder(), ecg: ecgDecoder() }));
      assert.deepEqual(batch.xrayShape, [1, 224, 224, 3]);
      assert.deepEqual(batch.ecgShape, [1, 12, 1000]);
      assert.deepEqual(batch.xray, await preprocessXrayFile(XRAY_FILE));
      assert.deepEqual(batch.ecg, (await loadPreprocessedEcg(ECG_RECORD, { dtype: 'float32' })).data);
    });
  });

  describe('datasets/pipeline tensors', () => {
    it('leaves no tensors behind', async () => {
      const before = tf.memory().numTensors;
      const records: SampleRecord[] = numbered(5).map((r, i) => ({
        id: r.id, text: r.text, ecgPath: r.xrayPath, xrayPath: i % 2 === 0 ? XRAY_FILE : undefined,
      }));
      const ecg: DecoderSpec = { ...PROBE, shape: [2, 2] };
      let batches = 0;
      for await (const batch of open(records, { xray: xrayDecoder(), ecg, batchSize: 2 }).batches()) {
        const tensors = batchToTensors(batch);
        assert.deepEqual(tensors.xrayMask.shape, [batch.ids.length]);
        assert.deepEqual(tensors.ecg?.shape, [batch.ids.length, 2, 2]);
        tf.dispose([tensors.xray as tf.Tensor, tensors.xrayMask, tensors.ecg as tf.Tensor, tensors.ecgMask]);
        batches++;
      }
      assert.equal(batches, 3);
      assert.equal(tf.memory().numTensors, before);
    });

    it('builds NHWC X-ray tensors', async () => {
      const records: SampleRecord[] = [{ id: 'real', xrayPath: XRAY_FILE, text: 'x' }];
      const [batch] = await collect(open(records, { xray: xrayDecoder() }));
      const tensors = batchToTensors(batch);
      try {
        assert.deepEqual(tensors.xray?.shape, [1, 224, 224, 3]);
        assert.equal(tensors.ecg, null);
      } finally {
        tf.dispose([tensors.xray as tf.Tensor, tensors.xrayMask, tensors.ecgMask]);
      }
    });
  });
});
