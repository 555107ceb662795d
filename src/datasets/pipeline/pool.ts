/**
 * A fixed pool of worker threads that run decode tasks one at a time each.
 * A worker that crashes or exceeds the task timeout is replaced, and its task
 * fails with an error naming the file, so one bad file cannot hang or stop a
 * training run.
 */

import * as path from 'path';
import { Worker } from 'worker_threads';
import { getLogger } from '../../util/log';
import type { DecodeReply, DecodeTask } from './worker';

const logger = getLogger('datasets.pipeline.pool');

interface PendingTask {
  task: DecodeTask;
  resolve: (data: Float32Array) => void;
  reject: (error: Error) => void;
}

interface PoolWorker {
  worker: Worker;
  /** Set once the worker script has loaded and posted its ready message. */
  ready: boolean;
  current?: PendingTask;
  timer?: NodeJS.Timeout;
}

/** Starts the worker script; under tsx (a `.ts` source) the worker registers tsx first. */
function startWorker(script: string): Worker {
  const extension = path.extname(script);
  if (extension === '.ts') {
    const source = `require('tsx/cjs'); require(${JSON.stringify(script)});`;
    return new Worker(source, { eval: true });
  }
  return new Worker(script);
}

export class WorkerPool {
  private readonly workers: PoolWorker[] = [];
  private readonly queue: PendingTask[] = [];
  private nextTaskId = 1;
  private closed = false;
  /** Workers in a row that died before loading; three mean the worker script cannot start. */
  private startupFailures = 0;
  private brokenReason?: string;

  /** `script` replaces the worker script, for tests; it defaults to worker.ts (worker.js when compiled). */
  constructor(
    size: number,
    private readonly timeoutMs: number,
    private readonly script = path.join(__dirname, `worker${path.extname(__filename)}`),
  ) {
    if (!Number.isInteger(size) || size < 1) throw new Error(`Invalid worker count ${size}: expected a positive integer`);
    for (let i = 0; i < size; i++) this.workers.push(this.spawn());
  }

  private spawn(): PoolWorker {
    const entry: PoolWorker = { worker: startWorker(this.script), ready: false };
    entry.worker.on('message', (reply: DecodeReply | { ready: true }) => {
      if ('ready' in reply) {
        entry.ready = true;
        this.startupFailures = 0;
      } else {
        this.finish(entry, reply);
      }
    });
    entry.worker.on('error', (error) => this.fail(entry, `worker error: ${error.message}`));
    entry.worker.on('exit', (code) => {
      if (!this.closed) this.fail(entry, `worker exited with code ${code}`);
    });
    // An idle worker must not keep the process alive; a busy one does (see dispatch and finish).
    entry.worker.unref();
    return entry;
  }

  /** Runs a task on the next free worker and resolves with its values. */
  run(task: Omit<DecodeTask, 'taskId'>): Promise<Float32Array> {
    if (this.closed) return Promise.reject(new Error('The worker pool is closed'));
    if (this.brokenReason !== undefined) {
      return Promise.reject(new Error(`The decoding workers cannot start (${this.brokenReason}) while decoding ${task.filePath}`));
    }
    return new Promise((resolve, reject) => {
      this.queue.push({ task: { ...task, taskId: this.nextTaskId++ }, resolve, reject });
      this.dispatch();
    });
  }

  private dispatch(): void {
    for (const entry of this.workers) {
      if (this.queue.length === 0) return;
      if (entry.current !== undefined) continue;
      const pending = this.queue.shift() as PendingTask;
      entry.current = pending;
      entry.timer = setTimeout(() => {
        this.fail(entry, `timed out after ${this.timeoutMs} ms`);
      }, this.timeoutMs);
      entry.worker.ref();
      entry.worker.postMessage(pending.task);
    }
  }

  private finish(entry: PoolWorker, reply: DecodeReply): void {
    const pending = entry.current;
    if (pending === undefined || pending.task.taskId !== reply.taskId) return;
    clearTimeout(entry.timer);
    entry.current = undefined;
    entry.worker.unref();
    if (reply.ok) pending.resolve(reply.data);
    else pending.reject(new Error(reply.message));
    this.dispatch();
  }

  /** Fails the worker's current task, replaces the worker and carries on with the queue. */
  private fail(entry: PoolWorker, reason: string): void {
    const index = this.workers.indexOf(entry);
    if (index < 0) return;
    clearTimeout(entry.timer);
    const pending = entry.current;
    entry.current = undefined;
    this.workers.splice(index, 1);
    entry.worker.removeAllListeners();
    entry.worker.on('error', () => undefined);
    void entry.worker.terminate();
    if (pending !== undefined) {
      logger.warn(`decoding ${pending.task.filePath} failed (${reason}); replacing the worker`);
      pending.reject(new Error(`${reason} while decoding ${pending.task.filePath}`));
    }
    if (!entry.ready) this.startupFailures++;
    if (this.startupFailures >= 3 && !this.closed) {
      // A worker script that cannot load (missing module, crash on start) is not restarted forever.
      this.brokenReason = reason;
      logger.error(`decoding workers failed to start ${this.startupFailures} times in a row (${reason}); giving up`);
      for (const queued of this.queue.splice(0)) {
        queued.reject(new Error(`The decoding workers cannot start (${reason}) while decoding ${queued.task.filePath}`));
      }
      return;
    }
    if (!this.closed) {
      this.workers.push(this.spawn());
      this.dispatch();
    }
  }

  /** Stops every worker; queued tasks fail. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const pending of this.queue.splice(0)) pending.reject(new Error('The worker pool was closed'));
    const workers = this.workers.splice(0);
    for (const entry of workers) {
      clearTimeout(entry.timer);
      entry.current?.reject(new Error('The worker pool was closed'));
      entry.current = undefined;
    }
    await Promise.all(workers.map((entry) => entry.worker.terminate()));
  }
}
