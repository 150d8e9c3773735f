import pino from 'pino';
import { buildApp, type App } from './app.ts';
import { withTaskDefaults } from '../shared/task.ts';

export interface ServeOptions {
  port: number;
  host: string;
  dataDir: string;
  data: string;
  chunkKb: number;
  logLevel: string;
  /** Create (if there is none) and start a Fashion-MNIST demo task. */
  demoTask: boolean;
  /** Let any address scrape /metrics (default: loopback only). */
  metricsPublic: boolean;
}

export async function serve(options: ServeOptions): Promise<{ app: App; url: string; demoTaskId?: number }> {
  const logger = pino({ level: options.logLevel });
  const app = await buildApp({
    dataDir: options.dataDir,
    fashionMnistDir: options.data,
    chunkBytes: options.chunkKb * 1024,
    logger,
    metricsPublic: options.metricsPublic,
  });
  const url = await app.http.listen({ port: options.port, host: options.host });
  logger.info({ url, dataDir: options.dataDir }, 'tributary server listening');
  // Tasks that were running when the server last stopped carry on from their last completed round.
  for (const task of await app.store.listTasks()) {
    if (task.status === 'running') await app.coordinator.start(task.id);
  }
  let demoTaskId: number | undefined;
  if (options.demoTask) {
    const tasks = await app.store.listTasks();
    const task = tasks[0] ?? (await app.store.createTask(withTaskDefaults({
      name: 'Fashion-MNIST demo',
      partition: { kind: 'dirichlet', alpha: 0.5 },
      clientsPerRound: 3,
      shards: 3,
    })));
    if (!app.coordinator.runner(task.id) && task.completedRounds < task.spec.rounds) await app.coordinator.start(task.id);
    console.log(`demo task ${task.id} (${task.spec.name}) is running: open ${url}/ or join with\n  npx tributary client --server ${url} --task ${task.id}`);
    demoTaskId = task.id;
  }
  const shutdown = async () => {
    await app.close();
    process.exit(0);
  };
  process.once('SIGINT', shutdown);
  process.once('SIGTERM', shutdown);
  return { app, url, ...(demoTaskId === undefined ? {} : { demoTaskId }) };
}
