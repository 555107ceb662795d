import * as assert from 'assert';
import * as fs from 'fs';
import * as path from 'path';

import { CosineAnnealingWarmRestarts } from '../../src/tasks/schedule';

interface ScheduleCase {
  baseLr: number;
  t0: number;
  tMult: number;
  etaMin: number;
  calls: (number | null)[];
  lrs: number[];
}

// Produced by reference/train_optim_schedule.py with torch.optim.lr_scheduler.CosineAnnealingWarmRestarts.
const fixture = JSON.parse(fs.readFileSync(path.join(__dirname, '../fixtures/tasks/train/optim_schedule.json'), 'utf8')) as {
  schedules: ScheduleCase[];
};

describe('tasks/schedule CosineAnnealingWarmRestarts', () => {
  for (const [caseIndex, expected] of fixture.schedules.entries()) {
    const label = `T_0=${expected.t0} T_mult=${expected.tMult} eta_min=${expected.etaMin}`;
    it(`matches torch for ${label} (case ${caseIndex})`, () => {
      const schedule = new CosineAnnealingWarmRestarts(expected);
      const lrs = [schedule.lr];
      for (const call of expected.calls) lrs.push(schedule.step(call ?? undefined));
      assert.strictEqual(lrs.length, expected.lrs.length);
      for (const [i, lr] of lrs.entries()) {
        assert.ok(Math.abs(lr - expected.lrs[i]) <= 1e-12,
          `lr after call ${i} (${JSON.stringify(expected.calls[i - 1])}): ${lr} vs torch ${expected.lrs[i]}`);
      }
    });
  }

  it('resumes from a saved state', () => {
    const reference = fixture.schedules[1];
    const first = new CosineAnnealingWarmRestarts(reference);
    for (let i = 0; i < 17; i++) first.step();
    const resumed = new CosineAnnealingWarmRestarts(reference);
    resumed.setState(first.getState());
    assert.strictEqual(resumed.lr, first.lr);
    for (let i = 17; i < reference.calls.length; i++) {
      assert.ok(Math.abs(resumed.step() - reference.lrs[i + 1]) <= 1e-12, `lr after step ${i + 1}`);
    }
  });

  it('rejects invalid settings', () => {
    assert.throws(() => new CosineAnnealingWarmRestarts({ baseLr: 1, t0: 0 }), /Invalid t0 0/);
    assert.throws(() => new CosineAnnealingWarmRestarts({ baseLr: 1, t0: 2.5 }), /Invalid t0 2.5/);
    assert.throws(() => new CosineAnnealingWarmRestarts({ baseLr: 1, t0: 2, tMult: 0 }), /Invalid tMult 0/);
    assert.throws(() => new CosineAnnealingWarmRestarts({ baseLr: 1, t0: 2 }).step(-1), /Invalid epoch -1/);
  });
});
