import { Worker } from 'node:worker_threads';
import { TributaryError, toErrorBody } from '../shared/errors.ts';

/**
 * A worker thread running a TypeScript module, and a promise-per-call channel to it.
 * Workers do not inherit the main thread's loader, so each registers tsx itself before
 * importing its module. The module answers `{ id, task }` messages through `serveTasks`.
 */
export interface TsWorker<Task, Result> {
  call(task: Task, transfer?: ArrayBuffer[]): Promise<Result>;
  close(): Promise<void>;
}

interface Reply {
  id: number;
  ok: boolean;
  result?: unknown;
  error?: { code: string; message: string };
}

export function startTsWorker<Task, Result>(moduleUrl: URL): TsWorker<Task, Result> {
  const api = import.meta.resolve('tsx/esm/api');
  const source = `import(${JSON.stringify(api)}).then((m) => { m.register(); return import(${JSON.stringify(moduleUrl.href)}); });`;
  const worker = new Worker(source, { eval: true });
  // An idle worker must not keep the process alive.
  worker.unref();
  const pending = new Map<number, { resolve: (value: Result) => void; reject: (error: Error) => void }>();
  let next = 0;
  const failAll = (error: Error) => {
    for (const p of pending.values()) p.reject(error);
    pending.clear();
  };
  worker.on('message', (reply: Reply) => {
    const p = pending.get(reply.id);
    pending.delete(reply.id);
    if (pending.size === 0) worker.unref();
    if (!p) return;
    if (reply.ok) p.resolve(reply.result as Result);
    else p.reject(TributaryError.fromBody(reply.error ?? { code: 'INTERNAL', message: 'worker failed' }));
  });
  worker.on('error', failAll);
  worker.on('exit', (code) => failAll(new Error(`worker exited with code ${code}`)));
  return {
    call(task, transfer) {
      const id = next++;
      return new Promise<Result>((resolve, reject) => {
        pending.set(id, { resolve, reject });
        worker.ref(); // a call in flight keeps the process alive until it answers
        worker.postMessage({ id, task }, transfer ?? []);
      });
    },
    async close() {
      await worker.terminate();
    },
  };
}

/** The worker side: answers each task with `handle`'s result, or its error with the code kept. */
export function serveTasks<Task>(port: import('node:worker_threads').MessagePort | null, handle: (task: Task) => Promise<unknown>): void {
  port?.on('message', (message: { id: number; task: Task }) => {
    handle(message.task).then(
      (result) => port.postMessage({ id: message.id, ok: true, result }),
      (error: unknown) => {
        // A coded error is the caller's to handle; anything else is a bug, shown here since its reply hides it.
        if (!(error instanceof TributaryError)) console.error(error);
        port.postMessage({ id: message.id, ok: false, error: toErrorBody(error) });
      },
    );
  });
}
