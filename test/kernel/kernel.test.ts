// The more-ts kernel over the real Jupyter protocol: jupyter_client starts it
// from the kernel spec in .venv and talks to it over loopback ZeroMQ.
import { strict as assert } from 'assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

import { displayBundles, ExecuteResult, KernelSession, streamText } from './kernel-session';

const EXPLANATION_MIME = 'application/vnd.more-ts.explanation.v1+json';
const RETRIEVAL_MIME = 'application/vnd.more-ts.retrieval.v1+json';
const VEGA_LITE_MIME = 'application/vnd.vegalite.v5+json';

// A real tfjs training loop (dense network, Adam) that polls for interrupts at
// each step boundary and writes an atomic JSON checkpoint every 5 steps.
const TRAINING_DEFINITION = `
import * as more from 'more-ts';
import { tf } from 'more-ts';
import * as nb from 'more-ts/kernel';
import * as fs from 'fs';

async function trainToy(steps: number, checkpointPath: string): Promise<number> {
  const model = tf.sequential({
    layers: [tf.layers.dense({ inputShape: [4], units: 8, activation: 'relu' }), tf.layers.dense({ units: 1 })],
  });
  const optimizer = tf.train.adam(0.01);
  const xs = tf.randomNormal([32, 4], 0, 1, 'float32', 7);
  const ys = tf.sum(xs, 1, true);
  let step = 0;
  try {
    while (step < steps) {
      if (await nb.pollInterrupt()) break;
      const loss = optimizer.minimize(() => tf.losses.meanSquaredError(ys, model.predict(xs) as tf.Tensor), true);
      const value = (await loss!.data())[0];
      loss!.dispose();
      step += 1;
      console.log(\`step \${step} loss \${value.toFixed(4)}\`);
      if (step % 5 === 0) {
        const weights = model.getWeights().map((w) => ({ shape: w.shape, values: Array.from(w.dataSync()) }));
        more.writeFileAtomic(checkpointPath, JSON.stringify({ step, weights }));
      }
    }
  } finally {
    model.dispose();
    optimizer.dispose();
    xs.dispose();
    ys.dispose();
  }
  console.log(\`stopped at step \${step}\`);
  return step;
}

function readCheckpoint(checkpointPath: string): { step: number; shapes: number[][]; finite: boolean } {
  const saved = JSON.parse(fs.readFileSync(checkpointPath, 'utf8')) as { step: number; weights: { shape: number[]; values: number[] }[] };
  return {
    step: saved.step,
    shapes: saved.weights.map((w) => w.shape),
    finite: saved.weights.every((w) => w.values.length === w.shape.reduce((a, b) => a * b, 1) && w.values.every(Number.isFinite)),
  };
}
`;

// A linear probe trained by the library's trainer (`fit`), which polls for
// interrupts at each batch boundary and checkpoints after every epoch.
const FIT_DEFINITION = `
import { tf } from 'more-ts';
import * as tasks from 'more-ts/dist/src/tasks';

type ProbeBatch = { x: tf.Tensor2D; y: tf.Tensor2D };

async function fitProbe(runDir: string, maxEpochs: number): Promise<tasks.TrainResult> {
  const zeros = tf.zeros([4, 1]);
  const w = tf.variable(zeros, true, 'probe_w');
  zeros.dispose();
  const xs = tf.randomNormal([64, 4], 0, 1, 'float32', 3) as tf.Tensor2D;
  const ys = tf.sum(xs, 1, true) as tf.Tensor2D;
  const model: tasks.TrainableModel<ProbeBatch> = {
    namedWeights: () => new Map([['w', w]]),
    trainableVariables: () => [w],
    batchLoss: (batch) => tf.losses.meanSquaredError(batch.y, tf.matMul(batch.x, w)) as tf.Scalar,
  };
  const source: tasks.BatchSource<ProbeBatch> = {
    size: 64,
    loadBatch: (indices) => tf.tidy(() => {
      const rows = tf.tensor1d(indices, 'int32');
      return { x: tf.gather(xs, rows) as tf.Tensor2D, y: tf.gather(ys, rows) as tf.Tensor2D };
    }),
  };
  try {
    return await tasks.fit(model, { train: source }, {
      runDir, maxEpochs, batchSize: 8, accumulationSteps: 1, lr: 0.01, checkpointEveryEpochs: 1,
      onBatchEnd: (record) => console.log(\`batch \${record.batchesSeen} loss \${record.loss.toFixed(4)}\`),
    });
  } finally {
    tf.dispose([w, xs, ys]);
  }
}

function latestCheckpoint(runDir: string): { epoch: number; names: string[]; shape: number[]; finite: boolean } {
  const folder = tasks.resolveTrainingCheckpoint(runDir, 'latest');
  if (folder === null) throw new Error(\`no latest checkpoint in \${runDir}\`);
  const loaded = tasks.loadTrainingCheckpoint<{ epoch: number }>(folder);
  try {
    const w = loaded.weights.get('w');
    return {
      epoch: loaded.trainer.epoch,
      names: [...loaded.weights.keys()],
      shape: w?.shape ?? [],
      finite: w !== undefined && Array.from(w.dataSync()).every(Number.isFinite),
    };
  } finally {
    tasks.disposeTrainingCheckpoint(loaded);
  }
}
`;

function stoppedStep(result: ExecuteResult): number {
  const match = /stopped at step (\d+)/.exec(streamText(result, 'stdout'));
  assert.ok(match, `no "stopped at step" line in: ${streamText(result, 'stdout').slice(-500)}`);
  return Number(match[1]);
}

function jsonLine(result: ExecuteResult): Record<string, unknown> {
  const stdout = streamText(result, 'stdout').trim();
  const last = stdout.split('\n').pop() ?? '';
  return JSON.parse(last) as Record<string, unknown>;
}

describe('kernel over the Jupyter protocol', function () {
  let session: KernelSession;
  let kernelInfo: Record<string, unknown>;
  let workDir: string;

  before(async function () {
    workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'more-ts-kernel-'));
    // A short grace period keeps the test of abandoning a non-polling cell fast.
    ({ session, kernelInfo } = await KernelSession.start(workDir, { MORE_TS_INTERRUPT_GRACE_MS: '1500' }));
  });

  after(async function () {
    if (session !== undefined) await session.shutdown();
    fs.rmSync(workDir, { recursive: true, force: true });
  });

  it('kernel_info names the kernel and backend', function () {
    assert.equal(kernelInfo.implementation, 'more-ts');
    const manifest = JSON.parse(fs.readFileSync(path.join(__dirname, '..', '..', 'package.json'), 'utf8')) as { version: string };
    assert.equal(kernelInfo.implementation_version, manifest.version);
    assert.match(String((kernelInfo.language_info as { version: string }).version), /^5\.\d+\.\d+$/);
    assert.match(String(kernelInfo.banner), /TensorFlow\.js backend: \w+/);
  });

  it('first cell shows the backend once', async function () {
    const first = await session.execute('const answer: number = 6 * 7;\nanswer');
    assert.equal(first.reply.status, 'ok');
    const texts = displayBundles(first).map((bundle) => String(bundle['text/plain']));
    assert.equal(texts.length, 1);
    assert.match(texts[0], /^TensorFlow\.js backend: \w+ \(\S+\) on /);
    assert.equal(streamText(first, 'stdout').trim(), '42');

    const second = await session.execute('answer + 1');
    assert.equal(displayBundles(second).length, 0);
    assert.equal(streamText(second, 'stdout').trim(), '43');
  });

  it('type error names the line', async function () {
    const result = await session.execute('const a = 1;\nconst b = 2;\nconst label: number = "three";\n');
    assert.equal(result.reply.status, 'error');
    assert.equal(result.reply.ename, 'CompileError');
    const stderr = streamText(result, 'stderr');
    assert.match(stderr, /^Line 3, column 7: Type 'string' is not assignable to type 'number'\./m);
    assert.match(String(result.reply.evalue), /^Line 3, column 7: /);

    // The failed cell declared nothing, and the kernel takes the next cell.
    const after = await session.execute("const fine: string = 'usable';\nfine");
    assert.equal(after.reply.status, 'ok', streamText(after, 'stderr'));
    assert.equal(streamText(after, 'stdout').trim(), 'usable');
  });

  it('runtime error fails the cell', async function () {
    const result = await session.execute('throw new RangeError("bad range");');
    assert.equal(result.reply.status, 'error');
    assert.equal(result.reply.ename, 'RangeError');
    assert.equal(result.reply.evalue, 'bad range');
    assert.match(streamText(result, 'stderr'), /RangeError: bad range/);
  });

  it('failed cell aborts queued cells', async function () {
    const replies = await session.executeMany([
      "await new Promise((resolve) => setTimeout(resolve, 300));\nthrow new Error('first fails');",
      "console.log('second');",
      "console.log('third');",
    ]);
    assert.deepEqual(replies.map((reply) => reply.status), ['error', 'abort', 'abort']);

    const next = await session.execute("console.log('after');");
    assert.equal(next.reply.status, 'ok');
    assert.equal(streamText(next, 'stdout').trim(), 'after');
  });

  it('interrupts a synchronous loop', async function () {
    const result = await session.execute("console.log('spinning');\nlet spins = 0;\nwhile (true) { spins++; }", {
      interruptOn: 'spinning', timeoutSeconds: 60,
    });
    assert.equal(result.interrupted, true, 'the driver did not interrupt');
    assert.equal(result.reply.status, 'error');
    assert.match(String(result.reply.evalue), /interrupted by `SIGINT`/);

    const next = await session.execute('2 * 21');
    assert.equal(next.reply.status, 'ok');
    assert.equal(streamText(next, 'stdout').trim(), '42');
  });

  it('more-ts imports from a folder outside the repository', async function () {
    const result = await session.execute(
      "import * as more from 'more-ts';\nconst info = await more.initBackend();\nconsole.log(JSON.stringify({ name: info.name, same: more.backendInfo() === info }));",
    );
    assert.equal(result.reply.status, 'ok', streamText(result, 'stderr'));
    const printed = jsonLine(result);
    assert.equal(printed.same, true);
    assert.equal(typeof printed.name, 'string');
  });

  it('display helpers send their MIME types', async function () {
    const result = await session.execute(`
import * as nb from 'more-ts/kernel';
nb.showVegaLite({ title: 'line', data: { values: [{ x: 1, y: 2 }, { x: 2, y: 3 }] }, mark: 'line',
  encoding: { x: { field: 'x', type: 'quantitative' }, y: { field: 'y', type: 'quantitative' } } });
await nb.showImage({ width: 3, height: 2, channels: 1, data: Uint8Array.from([0, 50, 100, 150, 200, 250]) }, 'ramp');
await nb.showExplanation({ version: 1, title: 'toy', similarity: 0.5,
  xray: { image: { encoding: 'raw', width: 4, height: 4, data: Array.from({ length: 16 }, (_, i) => i * 16) },
          patchGrid: { rows: 2, cols: 2 }, relevanceLayout: 'patch', relevance: [0, 1, 2, 3] },
  report: { tokens: [' no', ' effusion'], relevance: [0.2, 0.9] } });
nb.showRetrieval({ version: 1, query: { modality: 'report', text: 'pleural effusion' }, tieRule: 'equal scores keep the collection order',
  results: [{ id: 'a', rank: 1, score: 0.9, modality: 'report', reportExcerpt: 'small effusion' },
            { id: 'b', rank: 2, score: 0.4, modality: 'report', reportExcerpt: 'clear lungs' }] });
`);
    assert.equal(result.reply.status, 'ok', streamText(result, 'stderr'));
    const bundles = displayBundles(result);
    assert.equal(bundles.length, 4);
    const [chart, image, explanation, retrieval] = bundles;

    assert.ok(VEGA_LITE_MIME in chart);
    assert.equal(chart['text/plain'], 'Vega-Lite chart "line", 2 data rows: line (x=x, y=y)');
    // The chart's PNG form: a real PNG whose size fits the default 200 x 200 view at scale 2.
    const chartPng = Buffer.from(String(chart['image/png']), 'base64');
    assert.deepEqual([...chartPng.subarray(1, 4)].map((b) => String.fromCharCode(b)).join(''), 'PNG');
    assert.ok(chartPng.readUInt32BE(16) > 400 && chartPng.readUInt32BE(20) > 400, `PNG ${chartPng.readUInt32BE(16)} x ${chartPng.readUInt32BE(20)}`);

    const png = Buffer.from(String(image['image/png']), 'base64');
    assert.equal(png.subarray(1, 4).toString('latin1'), 'PNG');
    assert.equal(png.readUInt32BE(16), 3, 'PNG width');
    assert.equal(png.readUInt32BE(20), 2, 'PNG height');
    assert.equal(image['text/plain'], 'ramp: 3 x 2 pixels, 1 channel');

    assert.ok(EXPLANATION_MIME in explanation);
    assert.ok(typeof explanation['image/png'] === 'string');
    assert.match(String(explanation['text/plain']), /most relevant: effusion \(0\.900\), no \(0\.200\)/);

    assert.ok(RETRIEVAL_MIME in retrieval);
    assert.match(String(retrieval['text/plain']), /1\. a \[report\] score 0\.9000 small effusion/);
  });

  it('invalid explanation names the field', async function () {
    const result = await session.execute(`
import * as nb from 'more-ts/kernel';
await nb.showExplanation({ version: 1, report: { tokens: [' a'], relevance: [0.1, 0.2] } });
`);
    assert.equal(result.reply.status, 'error');
    assert.match(streamText(result, 'stderr'), /report\.relevance/);
  });

  it('progress updates one output in place', async function () {
    const result = await session.execute(`
import * as nb from 'more-ts/kernel';
const progress = new nb.NotebookProgress({ minIntervalMs: 0 });
progress.start('embed', 4, 'records');
for (let done = 1; done <= 4; done++) {
  await new Promise((resolve) => setTimeout(resolve, 20));
  progress.update({ done, metrics: { loss: 1 / done } });
}
progress.end('all records embedded');
`);
    assert.equal(result.reply.status, 'ok', streamText(result, 'stderr'));
    const shown = result.messages.filter((m) => m.msg_type === 'display_data');
    const updates = result.messages.filter((m) => m.msg_type === 'update_display_data');
    assert.equal(shown.length, 1);
    assert.equal(updates.length, 5);
    const id = shown[0].content.transient?.display_id;
    assert.ok(id);
    for (const update of updates) assert.equal(update.content.transient?.display_id, id);
    const last = String(updates[4].content.data?.['text/plain']);
    assert.match(last, /^embed 4\/4 records {2}100% {2}.* left 0s {2}loss=0\.2500\nembed: all records embedded \(took /);
    assert.match(String(updates[0].content.data?.['text/plain']), /embed 1\/4 records {2}25% .* left \d+s/);
  });

  describe('interrupt', function () {
    let baseline: number;
    const checkpoint = (name: string): string => path.join(workDir, name);

    before(async function () {
      const defined = await session.execute(TRAINING_DEFINITION);
      assert.equal(defined.reply.status, 'ok', streamText(defined, 'stderr'));
      const counted = await session.execute('console.log(JSON.stringify({ tensors: tf.memory().numTensors }));');
      baseline = Number(jsonLine(counted).tensors);
    });

    it('full training run leaks no tensors', async function () {
      const result = await session.execute(`await trainToy(10, ${JSON.stringify(checkpoint('full.json'))});`);
      assert.equal(result.reply.status, 'ok', streamText(result, 'stderr'));
      assert.equal(stoppedStep(result), 10);
      const counted = await session.execute('console.log(JSON.stringify({ tensors: tf.memory().numTensors }));');
      assert.equal(jsonLine(counted).tensors, baseline);
    });

    it('stops training at a step boundary', async function () {
      const file = checkpoint('interrupted.json');
      const result = await session.execute(`await trainToy(1000000, ${JSON.stringify(file)});`, {
        interruptOn: 'step 12 loss', timeoutSeconds: 120,
      });
      assert.equal(result.interrupted, true, 'the driver did not interrupt');
      assert.equal(result.reply.status, 'error');
      assert.equal(result.reply.ename, 'Interrupted');
      const stopped = stoppedStep(result);
      assert.ok(stopped >= 12 && stopped < 1000000, `stopped at step ${stopped}`);
      assert.match(streamText(result, 'stderr'), /Interrupt requested/);
      assert.doesNotMatch(streamText(result, 'stderr'), /Abandoning/);

      // The kernel is usable, no tensor leaked, and the last checkpoint is whole.
      const next = await session.execute(
        `console.log(JSON.stringify({ tensors: tf.memory().numTensors, checkpoint: readCheckpoint(${JSON.stringify(file)}) }));`,
      );
      assert.equal(next.reply.status, 'ok', streamText(next, 'stderr'));
      const state = jsonLine(next) as { tensors: number; checkpoint: { step: number; shapes: number[][]; finite: boolean } };
      assert.equal(state.tensors, baseline);
      assert.equal(state.checkpoint.step, stopped - (stopped % 5));
      assert.deepEqual(state.checkpoint.shapes, [[4, 8], [8], [8, 1], [1]]);
      assert.equal(state.checkpoint.finite, true);
      assert.deepEqual(fs.readdirSync(workDir).filter((name) => name.endsWith('.tmp')), []);
    });

    it('rerun after interrupt leaks no tensors', async function () {
      const result = await session.execute(`await trainToy(10, ${JSON.stringify(checkpoint('rerun.json'))});`);
      assert.equal(result.reply.status, 'ok', streamText(result, 'stderr'));
      assert.equal(stoppedStep(result), 10);
      const counted = await session.execute('console.log(JSON.stringify({ tensors: tf.memory().numTensors }));');
      assert.equal(jsonLine(counted).tensors, baseline);
    });

    it('stops library fit at a batch boundary', async function () {
      const defined = await session.execute(FIT_DEFINITION);
      assert.equal(defined.reply.status, 'ok', streamText(defined, 'stderr'));
      const runDir = checkpoint('fit-run');

      const result = await session.execute(
        `const fitResult = await fitProbe(${JSON.stringify(runDir)}, 1000000);\n` +
          'console.log(JSON.stringify({ stop: fitResult.stopReason, epochs: fitResult.epochsCompleted }));',
        { interruptOn: 'batch 20 loss', timeoutSeconds: 120 },
      );
      assert.equal(result.interrupted, true, 'the driver did not interrupt');
      assert.equal(result.reply.status, 'error');
      assert.equal(result.reply.ename, 'Interrupted');
      const summary = JSON.parse(/\{"stop".*\}/.exec(streamText(result, 'stdout'))?.[0] ?? '{}') as { stop?: string; epochs?: number };
      assert.equal(summary.stop, 'interrupted');
      assert.ok((summary.epochs ?? 0) >= 2, `only ${summary.epochs} epochs before the interrupt`);
      assert.ok((summary.epochs ?? Infinity) < 1000000);

      const next = await session.execute(
        `console.log(JSON.stringify({ tensors: tf.memory().numTensors, latest: latestCheckpoint(${JSON.stringify(runDir)}) }));`,
      );
      assert.equal(next.reply.status, 'ok', streamText(next, 'stderr'));
      const state = jsonLine(next) as { tensors: number; latest: { epoch: number; names: string[]; shape: number[]; finite: boolean } };
      assert.equal(state.tensors, baseline);
      assert.equal(state.latest.epoch, summary.epochs);
      assert.deepEqual(state.latest.names, ['w']);
      assert.deepEqual(state.latest.shape, [4, 1]);
      assert.equal(state.latest.finite, true);

      const rerun = await session.execute(`await fitProbe(${JSON.stringify(checkpoint('fit-rerun'))}, 2);`);
      assert.equal(rerun.reply.status, 'ok', streamText(rerun, 'stderr'));
      const counted = await session.execute('console.log(JSON.stringify({ tensors: tf.memory().numTensors }));');
      assert.equal(jsonLine(counted).tensors, baseline);
    });

    it('abandons a cell that never polls', async function () {
      // The cell prints only after its first await, because a SIGINT that lands while tslab still runs the
      // synchronous start of a cell goes to tslab's breakOnSigint watchdog rather than to the kernel.
      const result = await session.execute(
        "await new Promise((resolve) => setTimeout(resolve, 10));\nconsole.log('waiting');\n" +
          "await new Promise((resolve) => setTimeout(resolve, 60000));\nconsole.log('finished');",
        { interruptOn: 'waiting', timeoutSeconds: 60 },
      );
      assert.equal(result.reply.status, 'error');
      const stderr = streamText(result, 'stderr');
      assert.match(stderr, /Interrupt requested/);
      assert.match(stderr, /Abandoning the cell because the cell did not stop within the grace period/);
      assert.doesNotMatch(streamText(result, 'stdout'), /finished/);

      const next = await session.execute('1 + 2');
      assert.equal(next.reply.status, 'ok');
      assert.equal(streamText(next, 'stdout').trim(), '3');
    });
  });
});
