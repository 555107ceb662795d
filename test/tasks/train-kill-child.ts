/**
 * Child process of the kill test in train-kill.test.ts: trains the tiny
 * towers in the run folder given as the first argument, resuming from its
 * latest checkpoint, and prints `loss <batchesSeen> <loss>` after every batch
 * and `weights <json>` at the end. The checkpoint writer pauses after every
 * file so the parent can kill it mid-write.
 */
import { initBackend } from '../../src/backend';
import { fit } from '../../src/tasks/train';
import { KILL_RUN_OPTIONS, killRunData, killRunModel } from './train-kill-setup';

async function main(): Promise<void> {
  const runDir = process.argv[2];
  if (runDir === undefined) throw new Error('usage: train-kill-child.ts RUN_DIR');
  await initBackend();
  const model = killRunModel();
  await fit(model, killRunData(), {
    ...KILL_RUN_OPTIONS,
    runDir,
    checkpointWriteDelayMs: 8,
    onBatchEnd: (record) => process.stdout.write(`loss ${record.batchesSeen} ${record.loss}\n`),
  });
  process.stdout.write(`weights ${JSON.stringify(model.weightValues())}\n`);
  model.dispose();
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? error.stack : String(error)}\n`);
  process.exit(1);
});
