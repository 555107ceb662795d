/**
 * Evaluation benchmark: our metrics, retrieval and t-SNE against scikit-learn
 * and numpy, in the same run on the same machine.
 *
 * Figures: binary AUROC over 1,000,000 tied scores, in samples per second.
 * Recall@1/5/10 of 2,000 queries against 10,000 gallery items of width 128,
 * in queries per second with cosine scoring included. One exact t-SNE map of
 * 300 points in 50 dimensions over 1,000 iterations, in maps per second. Each side
 * draws its own data of the same sizes and distributions. Each line ends in
 * `ratio=X`, our throughput over the reference's. Run with `npm run bench:eval`.
 */
import { spawnSync } from 'child_process';
import * as path from 'path';

import { initBackend } from '../src/backend';
import { rocAuc } from '../src/tasks/metrics';
import { RetrievalIndex } from '../src/tasks/retrieval';
import { Rng } from '../src/util/rng';
import { tsne } from '../src/viz/projection';

const CONFIG = {
  auroc_samples: 1_000_000,
  gallery: 10_000,
  queries: 2_000,
  dim: 128,
  tsne_points: 300,
  tsne_dim: 50,
  tsne_iterations: 1000,
  min_seconds: 3,
  min_iterations: 2,
};

/** Returns units per second of `step` after one warm-up call. */
function rate(step: () => void, units: number): number {
  step();
  const start = process.hrtime.bigint();
  const elapsed = () => Number(process.hrtime.bigint() - start) / 1e9;
  let iterations = 0;
  while (iterations < CONFIG.min_iterations || elapsed() < CONFIG.min_seconds) {
    step();
    iterations += 1;
  }
  return (units * iterations) / elapsed();
}

function normalRows(rng: Rng, rows: number, dim: number): number[][] {
  return Array.from({ length: rows }, () => Array.from({ length: dim }, () => rng.normal()));
}

function measureOurs(): { auroc: number; retrieval: number; tsne: number } {
  const rng = new Rng(0);
  const n = CONFIG.auroc_samples;
  const labels = new Float64Array(n);
  const scores = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    labels[i] = rng.uniform() < 0.3 ? 1 : 0;
    scores[i] = Math.round((rng.uniform() * 0.7 + 0.3 * labels[i]) * 1000) / 1000;
  }
  const auroc = rate(() => rocAuc(labels, scores), n);

  const gallery = normalRows(rng, CONFIG.gallery, CONFIG.dim);
  const ids = gallery.map((_, i) => `item${i}`);
  const queries = gallery.slice(0, CONFIG.queries).map((row) => row.map((x) => x + 0.5 * rng.normal()));
  const index = RetrievalIndex.fromEmbeddings(ids, gallery, 'xray');
  const relevant = ids.slice(0, CONFIG.queries);
  const retrieval = rate(() => index.evaluate(queries, relevant, [1, 5, 10]), CONFIG.queries);

  const points = normalRows(rng, CONFIG.tsne_points, CONFIG.tsne_dim);
  const start = process.hrtime.bigint();
  tsne(points, { perplexity: 30, iterations: CONFIG.tsne_iterations });
  const tsneRate = 1 / (Number(process.hrtime.bigint() - start) / 1e9);
  return { auroc, retrieval, tsne: tsneRate };
}

function measureReference(): { auroc_samples_per_second: number; retrieval_queries_per_second: number; tsne_maps_per_second: number } {
  const python = path.resolve(__dirname, '..', '.venv', 'bin', 'python');
  const result = spawnSync(python, [path.join(__dirname, 'eval.py'), JSON.stringify(CONFIG)], { encoding: 'utf8' });
  if (result.status !== 0) {
    throw new Error(`bench/eval.py failed (exit ${result.status}): ${result.stderr.trim().split('\n').slice(-3).join(' ')}. ` +
      'Install the reference tools with `node scripts/setup/python-env.js --reference`.');
  }
  return JSON.parse(result.stdout.trim().split('\n').pop() as string);
}

async function main(): Promise<void> {
  const info = await initBackend();
  const ours = measureOurs();
  const reference = measureReference();
  const line = (label: string, unit: string, mine: number, theirs: number) =>
    console.log(`${label}: ours=${mine.toPrecision(4)} ${unit} reference=${theirs.toPrecision(4)} ${unit} ratio=${(mine / theirs).toFixed(3)}`);
  console.log(`# backend ${info.name} on ${info.device}; reference scikit-learn / numpy`);
  line(`AUROC ${CONFIG.auroc_samples} samples`, 'samples/s', ours.auroc, reference.auroc_samples_per_second);
  line(`Recall@1/5/10 ${CONFIG.queries} x ${CONFIG.gallery} x ${CONFIG.dim}`, 'queries/s', ours.retrieval, reference.retrieval_queries_per_second);
  line(`exact t-SNE ${CONFIG.tsne_points} points, ${CONFIG.tsne_iterations} iterations`, 'maps/s', ours.tsne, reference.tsne_maps_per_second);
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
