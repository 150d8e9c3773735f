import { TributaryError } from '../../shared/errors.ts';
import type { TaskRecord } from '../../shared/protocol/task.ts';
import { requireTask } from '../store/store.ts';
import { AsyncRunner } from './async-runner.ts';
import { GlobalModel } from './global-model.ts';
import type { CoordinatorOptions, TaskRunner } from './runner.ts';
import { SyncRunner } from './sync-runner.ts';
import { checkClusterSupport, ClusterRunner, type ClusterContext } from '../cluster/cluster-runner.ts';

/** Cluster mode: how often each process compares the tasks it runs with the store's running ones. */
const RECONCILE_MS = 1_000;

/**
 * Starts and stops tasks; each running task has exactly one TaskRunner owning its rounds in
 * this process. In cluster mode every process runs each running task (cluster-runner.ts),
 * and follows the store: a task started or stopped through any process starts or stops
 * here within a second.
 */
export class Coordinator {
  private readonly runners = new Map<number, TaskRunner>();
  /** How a task being stopped ends: paused (resumable), stopped, or released (this process lets go; the store keeps its status). */
  private readonly ending = new Map<number, 'paused' | 'stopped' | 'released'>();
  private reconciling: ReturnType<typeof setInterval> | undefined;
  /** Status writes of runners that just ended, so `stop` returns the final record. */
  private readonly settled = new Map<number, Promise<void>>();
  /** Starts in progress (their global model is being opened): not running yet, not to be started twice, and waited for by stops. */
  private readonly opening = new Map<number, Promise<unknown>>();

  constructor(private readonly options: CoordinatorOptions & { cluster?: ClusterContext | undefined }) {}

  /**
   * At server start: resumes the tasks the store says are running (a restart carries on from
   * their last completed round). In cluster mode it keeps following the store from then on.
   */
  async resumeRunning(): Promise<void> {
    if (this.options.cluster) {
      await this.reconcile();
      this.reconciling = setInterval(() => void this.reconcile(), RECONCILE_MS);
      return;
    }
    for (const task of await this.options.store.listTasks()) {
      if (task.status === 'running') await this.start(task.id);
    }
  }

  /** Cluster mode: runs here every task the store has running, and lets go of the others. */
  private async reconcile(): Promise<void> {
    try {
      const tasks = await this.options.store.listTasks();
      for (const task of tasks) {
        const local = this.runners.has(task.id) || this.opening.has(task.id);
        if (task.status === 'running' && !local) await this.launch(task).catch((error: unknown) => this.options.log.error({ err: error, taskId: task.id }, 'could not run the task here'));
        if (task.status !== 'running' && this.runners.has(task.id) && !this.ending.has(task.id)) {
          this.ending.set(task.id, 'released');
          await this.runners.get(task.id)!.stop();
        }
      }
    } catch (error) {
      this.options.log.debug({ err: error }, 'could not read the running tasks');
    }
  }

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
    // In cluster mode another process may run it already: the store's status is the cluster's.
    if (this.options.cluster && task.status === 'running') throw new TributaryError('TASK_ALREADY_RUNNING');
    await this.launch(task);
    await this.options.store.setTaskStatus(taskId, 'running');
    this.options.events.taskStatus({ taskId, status: 'running' });
    return (await this.options.store.getTask(taskId))!;
  }

  /** Opens the task's global model and hands its rounds to a runner of this process. */
  private async launch(task: TaskRecord): Promise<void> {
    const taskId = task.id;
    const { cluster } = this.options;
    if (cluster) checkClusterSupport(task.spec);
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
    const runner: TaskRunner = cluster ? new ClusterRunner(task, global, this.options, cluster)
      : task.spec.mode === 'async' ? new AsyncRunner(task, global, this.options)
      : new SyncRunner(task, global, this.options);
    this.runners.set(taskId, runner);
    void runner.run().then(
      (status) => this.finished(taskId, status === 'completed' ? 'completed' : (this.ending.get(taskId) ?? 'paused')),
      (error: unknown) => {
        this.options.log.error({ err: error, taskId }, 'task runner failed');
        return this.finished(taskId, 'paused');
      },
    );
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

  /** Server shutdown: runners end, and their tasks stay `running` in the store so a restart (or the cluster's other processes) carries on. */
  async stopAll(): Promise<void> {
    clearInterval(this.reconciling);
    await Promise.all(this.opening.values());
    const running = [...this.runners.keys()];
    for (const id of running) this.ending.set(id, 'released');
    await Promise.all([...this.runners.values()].map((r) => r.stop()));
    await Promise.all(running.map((id) => this.settled.get(id)));
  }

  private finished(taskId: number, status: 'completed' | 'paused' | 'stopped' | 'released'): Promise<void> {
    const done = (async () => {
      this.runners.delete(taskId);
      this.ending.delete(taskId);
      if (status === 'released') return;
      await this.options.store.setTaskStatus(taskId, status);
      this.options.events.taskStatus({ taskId, status });
    })();
    this.settled.set(taskId, done);
    return done;
  }
}
