// Every notebook in notebooks/ runs top to bottom on the more-ts kernel,
// headless through nbclient (test/notebooks/run_notebook.py) over the real
// Jupyter protocol, without an error and with the outputs it is meant to show.
import { strict as assert } from 'assert';
import { execFile } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { promisify } from 'util';

import { checkKernelInstalled, REPOSITORY_ROOT, VENV_PYTHON } from '../kernel/kernel-session';

const NOTEBOOKS_DIR = path.join(REPOSITORY_ROOT, 'notebooks');
const RUNNER = path.join(__dirname, 'run_notebook.py');
const VEGA_LITE_MIME = 'application/vnd.vegalite.v5+json';
const EXPLANATION_MIME = 'application/vnd.more-ts.explanation.v1+json';
const RETRIEVAL_MIME = 'application/vnd.more-ts.retrieval.v1+json';

interface OutputSummary {
  output_type: string;
  mime_types: string[];
  text: string;
  name?: string;
  png?: { width: number; height: number; mode: string };
}

interface NotebookRun {
  ok: boolean;
  error?: string;
  cells: { index: number; outputs: OutputSummary[] }[];
}

interface Expectation {
  /** MIME types that at least one output must carry. */
  mimeTypes: string[];
  /** Minimum number of Vega-Lite charts. */
  charts: number;
  /** Label of each progress bar, in order; each must end at its total. */
  progressLabels: string[];
  /** Pattern that every stderr line must match; without it the notebook must write nothing to stderr. */
  allowedStderr?: RegExp;
  /** Checks specific to the notebook. */
  check?(outputs: OutputSummary[]): void;
}

/** Reads "<a>: X, <b>: Y" style tensor counts printed by a notebook and checks X equals Y. */
function assertTensorCountFlat(outputs: OutputSummary[], pattern: RegExp): void {
  const stdout = outputs.filter((o) => o.output_type === 'stream' && o.name === 'stdout').map((o) => o.text).join('');
  const match = pattern.exec(stdout);
  assert.ok(match, `no line matching ${pattern} in the notebook's stdout`);
  assert.equal(Number(match[2]), Number(match[1]), 'the notebook leaked tensors');
}

/** Returns everything the notebook wrote to stdout, in order. */
function stdoutOf(outputs: OutputSummary[]): string {
  return outputs.filter((o) => o.output_type === 'stream' && o.name === 'stdout').map((o) => o.text).join('');
}

const EXPECTATIONS: Record<string, Expectation> = {
  'quickstart.ipynb': {
    mimeTypes: [VEGA_LITE_MIME, 'text/html', 'image/png', 'text/plain'],
    charts: 1,
    progressLabels: ['matrix products'],
    check(outputs) {
      assertTensorCountFlat(outputs, /tensors before: (\d+), after: (\d+)/);
      // Charts carry a PNG too, so the picture is the PNG output that is not a chart.
      const picture = outputs.find((o) => o.png !== undefined && !o.mime_types.includes(VEGA_LITE_MIME));
      assert.ok(picture);
      assert.deepEqual(picture.png, { width: 64, height: 64, mode: 'RGB' });
      assert.equal(picture.text, 'Relevance overlay: 64 x 64 pixels, 3 channels');
      const table = outputs.find((o) => o.text.startsWith('shape: (9, 3)'));
      assert.ok(table, 'the DataFrame output is missing');
      assert.deepEqual(table.mime_types, ['text/html', 'text/plain']);
    },
  },
  'pretraining.ipynb': {
    mimeTypes: [VEGA_LITE_MIME, RETRIEVAL_MIME, EXPLANATION_MIME, 'image/png', 'text/html', 'text/plain'],
    charts: 1,
    progressLabels: ['pre-training'],
    // The zero-shot step warns about prompt polarity when a class scores below chance, as an untrained model may.
    allowedStderr: /^\[more-ts\] WARN /,
    check(outputs) {
      const stdout = outputs.filter((o) => o.name === 'stdout').map((o) => o.text).join('');
      assert.match(stdout, /^training: completed after 2 epochs/m);
      assert.match(stdout, /^run folder deleted$/m);
      const table = outputs.find((o) => o.text.startsWith('shape: (12, 4)'));
      assert.ok(table, 'the retrieval table is missing');
      const explanation = outputs.find((o) => o.mime_types.includes(EXPLANATION_MIME));
      assert.ok(explanation);
      assert.deepEqual(explanation.png, { width: 224, height: 224, mode: 'RGB' });
      assert.match(explanation.text, /X-ray 224 x 224, relevance per patch/);
      const retrieval = outputs.find((o) => o.mime_types.includes(RETRIEVAL_MIME));
      assert.ok(retrieval);
      assert.match(retrieval.text, /^ {2}5\. \S+ \[xray\] cosine similarity /m);
    },
  },
  'zero-shot.ipynb': {
    mimeTypes: [VEGA_LITE_MIME, 'text/html', 'text/plain'],
    charts: 2,
    progressLabels: ['pre-training'],
    // Classes that rank below chance are reported as polarity warnings, which the notebook explains.
    allowedStderr: /^\[more-ts\] WARN /,
    check(outputs) {
      const stdout = stdoutOf(outputs);
      assertTensorCountFlat(outputs, /tensors at the start: (\d+), now: (\d+)/);
      for (const reduction of ['onePrompt', 'max', 'mean']) assert.match(stdout, new RegExp(`^${reduction}: macro AUROC 0\\.\\d{3}$`, 'm'));
      assert.match(stdout, /^NORM: "Normal ECG" vs "Abnormal ECG"$/m);
      assert.match(stdout, /^MI: "Myocardial Infarction" vs "no Myocardial Infarction"$/m);
      assert.match(stdout, /^NORM with "Abnormal ECG": AUROC 0\.\d{3}$/m);
      assert.match(stdout, /^Pleural Effusion:$/m);
      assert.ok(outputs.some((o) => o.text.startsWith('shape: (6, 7)')), 'the paired-prompt probability table is missing');
      const rocCharts = outputs.filter((o) => o.mime_types.includes(VEGA_LITE_MIME) && o.text.includes('Zero-shot PTB-XL superclasses'));
      assert.equal(rocCharts.length, 2);
    },
  },
  'retrieval.ipynb': {
    mimeTypes: [RETRIEVAL_MIME, 'text/html', 'text/plain'],
    charts: 0,
    progressLabels: ['pre-training'],
    allowedStderr: /^\[more-ts\] WARN /,
    check(outputs) {
      const stdout = stdoutOf(outputs);
      assertTensorCountFlat(outputs, /tensors at the start: (\d+), now: (\d+)/);
      const table = outputs.find((o) => o.text.startsWith('shape: (4, 11)'));
      assert.ok(table, 'the retrieval figures table is missing');
      assert.match(table.text, /report -> X-ray \+ ECG/);
      assert.match(stdout, /identical top-10 rankings for all 32 queries: true$/m);
      // The tie rule on the toy index: equal scores in gallery order, the repeated id once at its best entry.
      assert.match(stdout, /^1\. first score 1\.000 \(gallery entry 0\)\n+2\. third score 1\.000 \(gallery entry 2\)\n+3\. twice score 1\.000 \(gallery entry 3\)\n+4\. other score 0\.600 \(gallery entry 4\)$/m);
      const views = outputs.filter((o) => o.mime_types.includes(RETRIEVAL_MIME));
      assert.equal(views.length, 2);
      assert.match(views[0].text, /^ {2}5\. \S+ \[xray\] cosine similarity /m);
      assert.match(views[1].text, /Report -> X-ray \+ ECG over 32 held-out samples/);
    },
  },
  'explanations.ipynb': {
    mimeTypes: [EXPLANATION_MIME, VEGA_LITE_MIME, 'image/png', 'text/html', 'text/plain'],
    charts: 1,
    progressLabels: ['pre-training'],
    allowedStderr: /^\[more-ts\] WARN /,
    check(outputs) {
      assertTensorCountFlat(outputs, /tensors at the start: (\d+), now: (\d+)/);
      const explanations = outputs.filter((o) => o.mime_types.includes(EXPLANATION_MIME));
      assert.equal(explanations.length, 2);
      assert.deepEqual(explanations[0].png, { width: 224, height: 224, mode: 'RGB' });
      assert.match(explanations[0].text, /X-ray 224 x 224, relevance per patch \(grid 7 x 7\)/);
      assert.match(explanations[1].text, /ECG 12 leads at 100 Hz, 1000 samples/);
      const plot = outputs.find((o) => o.mime_types.includes(VEGA_LITE_MIME));
      assert.ok(plot);
      assert.match(plot.text, /12000 data rows: rule \(x=time, color=relevance\); line \(x=time, y=value\)/);
      const deletion = outputs.find((o) => o.text.startsWith('shape: (2, 6)'));
      assert.ok(deletion, 'the deletion test table is missing');
      assert.match(deletion.text, /5 of 49 patches/);
      assert.match(deletion.text, /100 of 1000 samples/);
    },
  },
  'paper-tables.ipynb': {
    mimeTypes: ['text/html', 'text/plain'],
    charts: 0,
    progressLabels: ['pre-training'],
    allowedStderr: /^\[more-ts\] WARN /,
    check(outputs) {
      const stdout = stdoutOf(outputs);
      assertTensorCountFlat(outputs, /tensors at the start: (\d+), now: (\d+)/);
      assert.match(stdout, /^sample data: true; written to paper-tables\.json$/m);
      assert.match(stdout, /^SAMPLE DATA: /m);
      assert.match(stdout, /^### ECG zero-shot AUROC \(%\)$/m);
      assert.match(stdout, /^\| more-ts \(this run\) \| \d+\.\d \| SAMPLE DATA, not comparable to published figures: /m);
      assert.match(stdout, /^\| MERL \| 75\.2 \| published; mean over six ECG datasets \|$/m);
      const figures = outputs.find((o) => /^shape: \(\d+, 4\)/.test(o.text) && o.text.includes('not run: no data given'));
      assert.ok(figures, 'the table of our figures is missing');
      assert.ok(outputs.some((o) => o.text.startsWith('shape: (15, 4)')), 'the peer figures table is missing');
    },
  },
  'contrastive-learning.ipynb': {
    mimeTypes: [VEGA_LITE_MIME, 'text/html', 'text/plain'],
    charts: 6,
    progressLabels: ['training at τ = 0.1', 'training at τ = 1'],
    check(outputs) {
      assertTensorCountFlat(outputs, /tensors at the start: (\d+), now: (\d+)/);
    },
  },
};

const run = promisify(execFile);

async function runNotebook(file: string): Promise<NotebookRun> {
  const { stdout } = await run(VENV_PYTHON, [RUNNER, file], { cwd: REPOSITORY_ROOT, maxBuffer: 64 * 1024 * 1024 });
  return JSON.parse(stdout) as NotebookRun;
}

const notebooks = fs.readdirSync(NOTEBOOKS_DIR).filter((name) => name.endsWith('.ipynb')).sort();

describe('notebooks', function () {
  this.timeout(600_000);

  before(function () {
    checkKernelInstalled();
  });

  it('every notebook has expectations', function () {
    assert.deepEqual(notebooks.filter((name) => !(name in EXPECTATIONS)), []);
    assert.ok(notebooks.length >= 2);
  });

  for (const name of notebooks) {
    it(`${name} runs without error`, async function () {
      const expectation = EXPECTATIONS[name];
      assert.ok(expectation, `add an entry for ${name} to EXPECTATIONS`);
      const result = await runNotebook(path.join(NOTEBOOKS_DIR, name));
      assert.equal(result.error, undefined);
      assert.equal(result.ok, true);
      const outputs = result.cells.flatMap((cell) => cell.outputs);

      const seen = new Set(outputs.flatMap((o) => o.mime_types));
      for (const mimeType of expectation.mimeTypes) assert.ok(seen.has(mimeType), `no output carries ${mimeType}`);
      for (const display of outputs.filter((o) => o.output_type === 'display_data')) {
        assert.ok(display.mime_types.includes('text/plain'), `a display lacks text/plain: ${display.mime_types.join(', ')}`);
      }
      const stderrLines = outputs.filter((o) => o.name === 'stderr').flatMap((o) => o.text.split('\n')).filter((line) => line !== '');
      const allowed = expectation.allowedStderr;
      assert.deepEqual(stderrLines.filter((line) => allowed === undefined || !allowed.test(line)), []);

      const charts = outputs.filter((o) => o.mime_types.includes(VEGA_LITE_MIME));
      assert.ok(charts.length >= expectation.charts, `${charts.length} Vega-Lite charts, expected at least ${expectation.charts}`);

      // A progress bar is one output replaced in place, so each label appears once, at its end.
      for (const label of expectation.progressLabels) {
        const bars = outputs.filter((o) => o.text.startsWith(`${label} `));
        assert.equal(bars.length, 1, `progress "${label}" has ${bars.length} outputs`);
        assert.match(bars[0].text, /^\S.* (\d+)\/\1 \w+ {2}100% /);
      }
      expectation.check?.(outputs);
    });
  }
});
