import { TributaryError } from '../../shared/errors.ts';
import type { TaskRecord } from '../../shared/protocol/task.ts';
import { requireTask } from '../store/store.ts';
import { AsyncRunner } from './async-runner.ts';
import { GlobalModel } from './global-model.ts';
import type { CoordinatorOptions, TaskRunner } from './runner.ts';
import { SyncRunner } from './sync-runner.ts';

/** Starts and stops tasks; each running task has exactly one TaskRunner owning its rounds. */
export class Coordinator {
  private readonly runners = new Map<number, TaskRunner>();
  /** How a task being stopped ends: paused (resumable) or stopped. */
  private readonly ending = new Map<number, 'paused' | 'stopped'>();
  /** Status writes of runners that just ended, so `stop` returns the final record. */
  private readonly settled = new Map<number, Promise<void>>();
  /** Starts in progress (their global model is being opened): not running yet, not to be started twice, and waited for by stops. */
  private readonly opening = new Map<number, Promise<unknown>>();

  constructor(private readonly options: CoordinatorOptions) {}

  /**
   * Starts a created task, or resumes a paused one from its last completed round. Resolves
   * once the task can be served: its global model is open (checkpoint 0 written for a new
   * task) and its runner owns the rounds.
   */
  async start(taskId: number): Promise<TaskRecord> {
    const task = await requireTask(this.options.store, taskId);
    if (this.runners.has(taskId) || this.opening.has(taskId)) throw new TributaryError('TASK_ALREADY_RUNNING');
    if (task.status === 'stopped') throw new TributaryError('TASK_FINISHED', 'the task was stopped');
    if (task.completedRounds >= task.spec.rounds) throw new TributaryError('TASK_FINISHED');
    const opened = (async () => {
      // Loaded (and cached) before the task serves: missing data fails the start, not its first round.
      await this.options.testSet(task);
      return GlobalModel.open(task, { ...this.options, testSet: () => this.options.testSet(task) });
    })();
    this.opening.set(taskId, opened.catch(() => undefined));
    let global: GlobalModel;
    try {
      global = await opened;
    } finally {
      this.opening.delete(taskId);
    }
    if (global.budgetSpent) throw new TributaryError('PRIVACY_BUDGET_SPENT', `round ${global.version + 1} would spend ε = ${global.privacy!.epsilonAfter(global.version + 1).toPrecision(3)} > ${task.spec.privacy.epsilon}`);
    const runner: TaskRunner = task.spec.mode === 'async' ? new AsyncRunner(task, global, this.options) : new SyncRunner(task, global, this.options);
    this.runners.set(taskId, runner);
    await this.options.store.setTaskStatus(taskId, 'running');
    this.options.events.taskStatus({ taskId, status: 'running' });
    void runner.run().then(
      (status) => this.finished(taskId, status === 'completed' ? 'completed' : (this.ending.get(taskId) ?? 'paused')),
      (error: unknown) => {
        this.options.log.error({ err: error, taskId }, 'task runner failed');
        return this.finished(taskId, 'paused');
      },
    );
    return (await this.options.store.getTask(taskId))!;
  }

  /**
   * Ends the running round (the model keeps its last completed round) and pauses the task,
   * which `start` resumes; or stops it for good. A paused task can be stopped too.
   */
  async stop(taskId: number, outcome: 'paused' | 'stopped' = 'stopped'): Promise<TaskRecord> {
    await this.opening.get(taskId); // a start in progress gets its runner first, which is then stopped
    const task = await requireTask(this.options.store, taskId);
    const runner = this.runners.get(taskId);
    if (runner) {
      this.ending.set(taskId, outcome);
      await runner.stop();
      await this.settled.get(taskId);
    } else if (task.status === 'paused' && outcome === 'stopped') {
      await this.finished(taskId, 'stopped');
    } else {
      throw new TributaryError('TASK_NOT_RUNNING');
    }
    return (await this.options.store.getTask(taskId))!;
  }

  pause(taskId: number): Promise<TaskRecord> {
    return this.stop(taskId, 'paused');
  }

  runner(taskId: number): TaskRunner | undefined {
    return this.runners.get(taskId);
  }

  /** Server shutdown: runners end, and their tasks stay `running` in the store so a restart resumes them. */
  async stopAll(): Promise<void> {
    await Promise.all(this.opening.values());
    const running = [...this.runners.keys()];
    for (const id of running) this.ending.set(id, 'paused');
    await Promise.all([...this.runners.values()].map((r) => r.stop()));
    await Promise.all(running.map((id) => this.settled.get(id)));
    await Promise.all(running.map((id) => this.options.store.setTaskStatus(id, 'running')));
  }

  private finished(taskId: number, status: 'completed' | 'paused' | 'stopped'): Promise<void> {
    const done = (async () => {
      this.runners.delete(taskId);
      this.ending.delete(taskId);
      await this.options.store.setTaskStatus(taskId, status);
      this.options.events.taskStatus({ taskId, status });
    })();
    this.settled.set(taskId, done);
    return done;
  }
}
