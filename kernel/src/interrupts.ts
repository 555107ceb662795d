/**
 * Turns Jupyter's interrupt (SIGINT to the kernel process, the kernel spec's
 * `interrupt_mode` being `signal`) into a cooperative stop.
 *
 * The first interrupt during a cell calls `requestInterrupt()`: library loops
 * that poll `interruptRequested()` finish their current step and return, so
 * checkpoints and tensors stay consistent. If the cell has not finished after
 * the grace period, or a second interrupt arrives, the cell is abandoned
 * through tslab's own interrupt (the cell's promise stops being awaited and
 * the kernel takes the next request). JavaScript cannot stop an abandoned
 * async function, so work that never polls keeps running in the background.
 *
 * A cell that runs synchronously (no top-level await) is stopped by tslab's
 * `breakOnSigint` instead, and never reaches this controller.
 *
 * NOTE: The synchronous start of an async cell also runs under
 * `breakOnSigint`. A SIGINT that arrives there just as that start finishes is
 * taken by Node's watchdog and reaches no handler, so the user has to
 * interrupt again.
 */
import { clearInterrupt, requestInterrupt } from '../../src/util/interrupt';
import { formatDuration } from '../../src/util/progress';

export interface InterruptControllerOptions {
  /** Abandons the running cell (tslab's `executor.interrupt`). */
  abandonCell: () => void;
  /** Writes a notice to the running cell's stderr. */
  notify: (text: string) => void;
  /** Milliseconds between the first interrupt and abandoning a cell that did not stop. */
  graceMs: number;
}

export class InterruptController {
  private running = false;
  private interruptsThisCell = 0;
  private graceTimer: NodeJS.Timeout | undefined;

  constructor(private readonly options: InterruptControllerOptions) {}

  /** Marks the start of a cell: clears a stale request. */
  cellStarted(): void {
    clearInterrupt();
    this.running = true;
    this.interruptsThisCell = 0;
  }

  /** Marks the end of a cell and returns whether it was interrupted. */
  cellFinished(): boolean {
    const interrupted = this.interruptsThisCell > 0;
    this.running = false;
    this.interruptsThisCell = 0;
    this.stopGraceTimer();
    clearInterrupt();
    return interrupted;
  }

  /** Handles one interrupt signal. Signals between cells are ignored. */
  handleInterrupt(): void {
    if (!this.running) return;
    this.interruptsThisCell += 1;
    if (this.interruptsThisCell === 1) {
      requestInterrupt();
      const grace = formatDuration(this.options.graceMs / 1000);
      this.options.notify(
        `Interrupt requested: work that checks interruptRequested() stops at its next step boundary. ` +
          `Otherwise the cell is abandoned in ${grace}, or at once on a second interrupt.\n`,
      );
      this.graceTimer = setTimeout(() => this.abandon('the cell did not stop within the grace period'), this.options.graceMs);
      return;
    }
    this.abandon('a second interrupt arrived');
  }

  private abandon(reason: string): void {
    this.stopGraceTimer();
    if (!this.running) return;
    this.options.notify(
      `Abandoning the cell because ${reason}. Its asynchronous work may still be running in the background.\n`,
    );
    this.options.abandonCell();
  }

  private stopGraceTimer(): void {
    if (this.graceTimer !== undefined) clearTimeout(this.graceTimer);
    this.graceTimer = undefined;
  }
}
