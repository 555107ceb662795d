import * as assert from 'assert';
import { ChildProcess, spawn } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

import { tf } from '../../src/backend';
import { fit, loadTrainingCheckpoint, readCheckpointIndex, TrainerState } from '../../src/tasks/train';
import { Rng } from '../../src/util/rng';
import { KILL_RUN_OPTIONS, killRunData, killRunModel } from './train-kill-setup';

const CHILD = path.join(__dirname, 'train-kill-child.ts');
const REPOSITORY = path.join(__dirname, '..', '..');

interface ChildRun {
  losses: Map<number, number>;
  weights?: Record<string, number[]>;
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
  /** True when a temporary checkpoint folder existed at the moment of the kill. */
  killedDuringWrite: boolean;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function writeInProgress(runDir: string): boolean {
  return fs.existsSync(runDir) && fs.readdirSync(runDir).some((name) => name.startsWith('.tmp-'));
}

/**
 * Runs the child on `runDir`. With `kill` set, SIGKILLs it once it has
 * trained its first batch: after a random delay, or (mode `write`) a random
 * moment after a checkpoint write has begun.
 */
async function runChild(runDir: string, kill?: { mode: 'time' | 'write'; delayMs: number }): Promise<ChildRun> {
  const child: ChildProcess = spawn(process.execPath, ['--require', 'tsx/cjs', CHILD, runDir], {
    cwd: REPOSITORY, env: { ...process.env, MORE_TS_LOG_LEVEL: 'warn' }, stdio: ['ignore', 'pipe', 'pipe'],
  });
  const run: ChildRun = { losses: new Map(), exitCode: null, signal: null, stderr: '', killedDuringWrite: false };
  let buffered = '';
  let trainingStarted: () => void = () => undefined;
  const started = new Promise<void>((resolve) => { trainingStarted = resolve; });
  child.stdout?.on('data', (chunk: Buffer) => {
    buffered += chunk.toString('utf8');
    const lines = buffered.split('\n');
    buffered = lines.pop() ?? '';
    for (const line of lines) {
      const [kind, first, second] = line.split(' ');
      if (kind === 'loss') {
        run.losses.set(Number(first), Number(second));
        trainingStarted();
      } else if (kind === 'weights') {
        run.weights = JSON.parse(line.slice('weights '.length)) as Record<string, number[]>;
      }
    }
  });
  child.stderr?.on('data', (chunk: Buffer) => { run.stderr += chunk.toString('utf8'); });
  const exited = new Promise<void>((resolve) => {
    child.on('exit', (code, signal) => {
      run.exitCode = code;
      run.signal = signal;
      trainingStarted();
      resolve();
    });
  });

  if (kill !== undefined) {
    await started;
    if (kill.mode === 'write') {
      const deadline = Date.now() + 5000;
      while (!writeInProgress(runDir) && Date.now() < deadline && run.exitCode === null) await sleep(1);
    }
    await sleep(kill.delayMs);
    if (run.exitCode === null && run.signal === null) {
      child.kill('SIGKILL');
      run.killedDuringWrite = writeInProgress(runDir);
    }
  }
  await exited;
  return run;
}

/** Checks that the latest checkpoint, if any, is complete and consistent, and returns its optimiser step. */
function checkLatestCheckpoint(runDir: string, attempt: number): number {
  const index = readCheckpointIndex(runDir);
  if (index.latest === null) return 0;
  const checkpoint = loadTrainingCheckpoint<TrainerState>(path.join(runDir, index.latest));
  const steps = checkpoint.trainer.optimizerSteps;
  assert.strictEqual(index.latest, `step-${String(steps).padStart(8, '0')}`, `kill ${attempt}: folder name and trainer state`);
  assert.strictEqual(checkpoint.optimizer.step, steps, `kill ${attempt}: optimiser step count`);
  assert.strictEqual(checkpoint.weights.size, 12, `kill ${attempt}: weight count`);
  tf.dispose([...checkpoint.weights.values(), ...Object.values(checkpoint.optimizer.tensors)]);
  return steps;
}

describe('tasks/train kill and resume', () => {
  it('resumes to the same losses after SIGKILLs', async () => {
    const runDir = fs.mkdtempSync(path.join(os.tmpdir(), 'more-ts-kill-'));
    try {
      // The uninterrupted run, in this process.
      const model = killRunModel();
      const expectedLosses = new Map<number, number>();
      await fit(model, killRunData(), {
        ...KILL_RUN_OPTIONS, onBatchEnd: (record) => expectedLosses.set(record.batchesSeen, record.loss),
      });
      const expectedWeights = model.weightValues();
      model.dispose();

      const rng = new Rng(2024);
      let writeKills = 0;
      let lastSteps = 0;
      const runs: ChildRun[] = [];
      for (let attempt = 0; attempt < 10; attempt++) {
        const mode = attempt % 2 === 0 ? 'time' : 'write';
        const run = await runChild(runDir, { mode, delayMs: mode === 'time' ? rng.int(400) : rng.int(35) });
        assert.ok(run.weights === undefined, `kill ${attempt}: the run finished before the kill; lengthen the run`);
        assert.strictEqual(run.signal, 'SIGKILL', `kill ${attempt}: child ended with ${run.exitCode}: ${run.stderr}`);
        if (run.killedDuringWrite) writeKills += 1;
        const steps = checkLatestCheckpoint(runDir, attempt);
        assert.ok(steps >= lastSteps, `kill ${attempt}: latest checkpoint went back from step ${lastSteps} to ${steps}`);
        lastSteps = steps;
        runs.push(run);
      }
      const last = await runChild(runDir);
      assert.strictEqual(last.exitCode, 0, `final run failed: ${last.stderr}`);
      runs.push(last);

      assert.ok(writeKills >= 1, `no kill landed inside a checkpoint write (${writeKills})`);
      for (const [attempt, run] of runs.entries()) {
        for (const [batch, loss] of run.losses) {
          const expected = expectedLosses.get(batch) as number;
          assert.ok(Math.abs(loss - expected) <= 1e-6, `run ${attempt}, batch ${batch}: loss ${loss} vs uninterrupted ${expected}`);
        }
      }
      const lastBatch = Math.max(...expectedLosses.keys());
      assert.ok(last.losses.has(lastBatch), 'the final run reached the last batch');
      const finalWeights = last.weights as Record<string, number[]>;
      for (const [name, values] of Object.entries(expectedWeights)) {
        values.forEach((value, i) => assert.ok(Math.abs(finalWeights[name][i] - value) <= 1e-6, `final ${name}[${i}]`));
      }
    } finally {
      fs.rmSync(runDir, { recursive: true, force: true });
    }
  });
});
