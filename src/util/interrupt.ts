/**
 * The process-wide interrupt request. The notebook kernel sets it when the
 * user interrupts a cell (Jupyter sends SIGINT), and long-running library work
 * such as a training loop polls it at step boundaries, finishes the step it is
 * in and returns early. The kernel clears it before each cell runs.
 *
 * Node.js handles a signal only when the event loop turns, and awaiting an
 * already resolved promise (for example `tensor.data()` on the native
 * backend) does not turn it. A loop that should be interruptible therefore
 * polls with {@link pollInterrupt}, which yields one event-loop turn first.
 */

let requested = false;

/** Records that the current work should stop at its next step boundary. */
export function requestInterrupt(): void {
  requested = true;
}

/** Returns true once {@link requestInterrupt} has been called and until {@link clearInterrupt}. */
export function interruptRequested(): boolean {
  return requested;
}

/** Withdraws a pending interrupt request. */
export function clearInterrupt(): void {
  requested = false;
}

/** Yields one event-loop turn, so a pending SIGINT reaches its handler, then returns {@link interruptRequested}. */
export async function pollInterrupt(): Promise<boolean> {
  await new Promise<void>((resolve) => setImmediate(resolve));
  return requested;
}
