/**
 * Cosine annealing with warm restarts (SGDR, Loshchilov and Hutter, 2017),
 * computed the way `torch.optim.lr_scheduler.CosineAnnealingWarmRestarts`
 * (PyTorch 2.x) computes it, so a run here follows the same learning-rate
 * curve as the PyTorch reference: within a cycle of `tI` epochs the rate falls
 * from the base rate to `etaMin` along half a cosine, then restarts, and each
 * new cycle is `tMult` times longer than the one before.
 */

export interface CosineWarmRestartsOptions {
  /** Learning rate at the start of every cycle. */
  baseLr: number;
  /** Length of the first cycle in epochs (a positive integer). */
  t0: number;
  /** Factor by which each cycle is longer than the previous one (an integer >= 1). Default 1. */
  tMult?: number;
  /** Learning rate at the end of every cycle. Default 0. */
  etaMin?: number;
}

/** Position in the schedule, enough to resume it exactly. */
export interface CosineWarmRestartsState {
  /** Epochs since the last restart (fractional when stepped with fractional epochs). */
  tCur: number;
  /** Length of the current cycle in epochs. */
  tI: number;
  /** Whole epoch of the latest step (`floor` of a fractional epoch). */
  lastEpoch: number;
}

export class CosineAnnealingWarmRestarts {
  readonly baseLr: number;
  readonly t0: number;
  readonly tMult: number;
  readonly etaMin: number;
  private tCur = 0;
  private tI: number;
  private lastEpoch = -1;
  private currentLr: number;

  /** Builds the schedule at epoch 0, so `lr` is the base rate, as PyTorch's constructor leaves it. */
  constructor(options: CosineWarmRestartsOptions) {
    const { baseLr, t0, tMult = 1, etaMin = 0 } = options;
    if (!Number.isInteger(t0) || t0 <= 0) {
      throw new Error(`Invalid t0 ${t0}: expected a positive integer number of epochs`);
    }
    if (!Number.isInteger(tMult) || tMult < 1) {
      throw new Error(`Invalid tMult ${tMult}: expected an integer >= 1`);
    }
    if (!Number.isFinite(baseLr) || baseLr < 0) {
      throw new Error(`Invalid baseLr ${baseLr}: expected a finite non-negative number`);
    }
    if (!Number.isFinite(etaMin) || etaMin < 0) {
      throw new Error(`Invalid etaMin ${etaMin}: expected a finite non-negative number`);
    }
    this.baseLr = baseLr;
    this.t0 = t0;
    this.tMult = tMult;
    this.etaMin = etaMin;
    this.tI = t0;
    this.currentLr = baseLr;
    this.step();
  }

  /** Learning rate after the latest step. */
  get lr(): number {
    return this.currentLr;
  }

  /**
   * Advances the schedule and returns the new learning rate. Without an
   * argument it moves one epoch on; with `epoch` (which may be fractional, for
   * example `epoch + batch / batchesPerEpoch`) it jumps to that point.
   */
  step(epoch?: number): number {
    if (epoch === undefined && this.lastEpoch < 0) epoch = 0;

    if (epoch === undefined) {
      this.lastEpoch += 1;
      this.tCur += 1;
      if (this.tCur >= this.tI) {
        this.tCur = this.tCur % this.tI;
        this.tI = this.tI * this.tMult;
      }
    } else {
      if (!Number.isFinite(epoch) || epoch < 0) {
        throw new Error(`Invalid epoch ${epoch}: expected a finite non-negative number`);
      }
      if (epoch >= this.t0) {
        if (this.tMult === 1) {
          this.tCur = epoch % this.t0;
        } else {
          // Number of completed cycles: cycle lengths t0 * tMult^k sum to t0 * (tMult^n - 1) / (tMult - 1).
          const n = Math.trunc(Math.log(epoch / this.t0 * (this.tMult - 1) + 1) / Math.log(this.tMult));
          this.tCur = epoch - this.t0 * (this.tMult ** n - 1) / (this.tMult - 1);
          this.tI = this.t0 * this.tMult ** n;
        }
      } else {
        this.tI = this.t0;
        this.tCur = epoch;
      }
      this.lastEpoch = Math.floor(epoch);
    }

    this.currentLr = this.etaMin + (this.baseLr - this.etaMin) * (1 + Math.cos(Math.PI * this.tCur / this.tI)) / 2;
    return this.currentLr;
  }

  getState(): CosineWarmRestartsState {
    return { tCur: this.tCur, tI: this.tI, lastEpoch: this.lastEpoch };
  }

  /** Restores a position saved by {@link getState} with the same options. */
  setState(state: CosineWarmRestartsState): void {
    const { tCur, tI, lastEpoch } = state;
    if (!Number.isFinite(tCur) || tCur < 0 || !Number.isFinite(tI) || tI <= 0 || !Number.isInteger(lastEpoch)) {
      throw new Error(`Invalid schedule state ${JSON.stringify(state)}: expected tCur >= 0, tI > 0 and an integer lastEpoch`);
    }
    this.tCur = tCur;
    this.tI = tI;
    this.lastEpoch = lastEpoch;
    this.currentLr = this.etaMin + (this.baseLr - this.etaMin) * (1 + Math.cos(Math.PI * this.tCur / this.tI)) / 2;
  }
}
