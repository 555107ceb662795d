/** The run that the kill test trains, shared by the test and its child process. */
import { TrainOptions } from '../../src/tasks/train';
import { readParityFixture, RowSource, TinyTowers } from './tiny-towers';

const fixture = readParityFixture();

// 32 samples in batches of 4 make 8 batches per epoch and 4 optimiser steps. A checkpoint every
// 2 steps writes 2 per epoch, so a kill at a random moment often lands inside a write.
export const KILL_RUN_OPTIONS: TrainOptions = {
  maxEpochs: 14, batchSize: 4, accumulationSteps: 2, lr: 1e-2, weightDecay: 0.1, t0: 3, etaMin: 1e-3,
  seed: 21, shuffle: true, checkpointEverySteps: 2, checkpointEveryEpochs: 5,
};

export function killRunModel(): TinyTowers {
  return TinyTowers.random(fixture, 5);
}

export function killRunData(): { train: RowSource; validation: RowSource } {
  return { train: RowSource.synthetic(fixture.settings.inputWidths, 32, 3), validation: new RowSource(fixture.validation) };
}
