/**
 * Backend benchmark: TensorFlow.js on the native TensorFlow backend against
 * PyTorch on the CPU, in the same run on the same machine.
 *
 * Figures: fp32 matmul 2048 x 2048 (GFLOP/s) and one ViT-Base block (width
 * 768, 12 heads, MLP 3072, 197 tokens, batch 8) forward and backward
 * (steps per second). Each line ends in `ratio=X`, ours over PyTorch's
 * throughput. Run with `npm run bench:backend`.
 */
import { spawnSync } from 'child_process';
import * as path from 'path';

import { initBackend, tf } from '../src/backend';
import { callsPerSecond } from './timing';

const CONFIG = {
  matmul_size: 2048,
  width: 768,
  heads: 12,
  mlp: 3072,
  tokens: 197,
  batch: 8,
  min_seconds: 5,
  min_iterations: 3,
};

interface BlockWeights {
  norm1Gamma: tf.Variable; norm1Beta: tf.Variable;
  qkv: tf.Variable;
  projW: tf.Variable; projB: tf.Variable;
  norm2Gamma: tf.Variable; norm2Beta: tf.Variable;
  fc1W: tf.Variable; fc1B: tf.Variable;
  fc2W: tf.Variable; fc2B: tf.Variable;
}

function createBlock(width: number, mlp: number): BlockWeights {
  const normal = (shape: number[]) => tf.variable(tf.randomNormal(shape, 0, 0.02));
  return {
    norm1Gamma: tf.variable(tf.ones([width])), norm1Beta: tf.variable(tf.zeros([width])),
    qkv: normal([width, 3 * width]),
    projW: normal([width, width]), projB: tf.variable(tf.zeros([width])),
    norm2Gamma: tf.variable(tf.ones([width])), norm2Beta: tf.variable(tf.zeros([width])),
    fc1W: normal([width, mlp]), fc1B: tf.variable(tf.zeros([mlp])),
    fc2W: normal([mlp, width]), fc2B: tf.variable(tf.zeros([width])),
  };
}

function layerNorm(x: tf.Tensor3D, gamma: tf.Tensor, beta: tf.Tensor): tf.Tensor3D {
  const { mean, variance } = tf.moments(x, -1, true);
  return x.sub(mean).div(variance.add(1e-6).sqrt()).mul(gamma).add(beta) as tf.Tensor3D;
}

function dense(x: tf.Tensor3D, weight: tf.Tensor, bias?: tf.Tensor): tf.Tensor3D {
  const [B, T, C] = x.shape;
  const flat = x.reshape([B * T, C]).matMul(weight as tf.Tensor2D); // (B*T, out)
  const out = bias === undefined ? flat : flat.add(bias);
  return out.reshape([B, T, -1]);
}

function gelu(x: tf.Tensor): tf.Tensor {
  return x.mul(0.5).mul(tf.erf(x.div(Math.SQRT2)).add(1));
}

/** The same pre-norm block as bench/backend.py: attention without qkv bias, exact GELU MLP. */
function blockForward(w: BlockWeights, x: tf.Tensor3D, heads: number): tf.Tensor3D {
  const [B, T, C] = x.shape;
  const headDim = C / heads;
  const qkv = dense(layerNorm(x, w.norm1Gamma, w.norm1Beta), w.qkv)
    .reshape([B, T, 3, heads, headDim])
    .transpose([2, 0, 3, 1, 4]); // (3, B, heads, T, headDim)
  const [q, k, v] = tf.unstack(qkv) as tf.Tensor4D[];
  const attention = tf.softmax(tf.matMul(q, k, false, true).mul(headDim ** -0.5)); // (B, heads, T, T)
  const mixed = tf.matMul(attention, v).transpose([0, 2, 1, 3]).reshape([B, T, C]) as tf.Tensor3D;
  const h = x.add(dense(mixed, w.projW, w.projB)) as tf.Tensor3D;
  const mlpOut = dense(gelu(dense(layerNorm(h, w.norm2Gamma, w.norm2Beta), w.fc1W, w.fc1B)) as tf.Tensor3D, w.fc2W, w.fc2B);
  return h.add(mlpOut);
}

function measureOurs(): { matmulGflops: number; blockStepsPerSecond: number } {
  const n = CONFIG.matmul_size;
  const a = tf.randomNormal([n, n]) as tf.Tensor2D;
  const b = tf.randomNormal([n, n]) as tf.Tensor2D;
  // Reading one element back forces the work to finish without copying the whole result.
  const matmulRate = callsPerSecond(() => {
    const product = tf.matMul(a, b);
    product.slice([0, 0], [1, 1]).dataSync();
    product.dispose();
  }, CONFIG.min_seconds, CONFIG.min_iterations);
  tf.dispose([a, b]);

  const weights = createBlock(CONFIG.width, CONFIG.mlp);
  const x = tf.randomNormal([CONFIG.batch, CONFIG.tokens, CONFIG.width]) as tf.Tensor3D;
  const blockRate = callsPerSecond(() => {
    const { value, grads } = tf.variableGrads(() => blockForward(weights, x, CONFIG.heads).square().mean() as tf.Scalar);
    value.dataSync();
    Object.values(grads).forEach((grad) => grad.dataSync());
    tf.dispose([value, ...Object.values(grads)]);
  }, CONFIG.min_seconds, CONFIG.min_iterations);
  tf.dispose([x, ...Object.values(weights)]);
  return { matmulGflops: (2 * n ** 3 * matmulRate) / 1e9, blockStepsPerSecond: blockRate };
}

function measureReference(): { torch: string; threads: number; matmul_gflops: number; block_steps_per_second: number } {
  const python = path.resolve(__dirname, '..', '.venv', 'bin', 'python');
  const result = spawnSync(python, [path.join(__dirname, 'backend.py'), JSON.stringify(CONFIG)], { encoding: 'utf8' });
  if (result.status !== 0) {
    throw new Error(`bench/backend.py failed (exit ${result.status}): ${result.stderr.trim()}\n` +
      'Install the reference tools with `node scripts/setup/python-env.js --reference`.');
  }
  return JSON.parse(result.stdout.trim().split('\n').pop() as string);
}

async function main(): Promise<void> {
  const info = await initBackend();
  const ours = measureOurs();
  const reference = measureReference();
  const label = `tfjs ${tf.version_core} ${info.name} (${info.device}) vs PyTorch ${reference.torch} CPU (${reference.threads} threads)`;
  console.log(`# ${label}`);
  console.log(`matmul fp32 ${CONFIG.matmul_size}x${CONFIG.matmul_size}: ours=${ours.matmulGflops.toFixed(1)} GFLOP/s ` +
    `reference=${reference.matmul_gflops.toFixed(1)} GFLOP/s ratio=${(ours.matmulGflops / reference.matmul_gflops).toFixed(3)}`);
  console.log(`ViT-Base block fwd+bwd (batch ${CONFIG.batch}, ${CONFIG.tokens} tokens, width ${CONFIG.width}): ` +
    `ours=${ours.blockStepsPerSecond.toFixed(3)} steps/s reference=${reference.block_steps_per_second.toFixed(3)} steps/s ` +
    `ratio=${(ours.blockStepsPerSecond / reference.block_steps_per_second).toFixed(3)}`);
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
