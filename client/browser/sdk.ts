import { FederatedClient, type DataInput, type FederatedClientOptions } from '../federated-client.ts';
import { chooseBrowserBackend, type BackendChoice } from './backend.ts';
import { demoShardData } from './data.ts';
import { browserIdentity, pinnedServerKey, pinServerKey } from './identity.ts';

/**
 * `tributary/client` in browsers (the `browser` condition; served as /sdk/tributary.js): the
 * SDK's names (client/index.ts) and what a page needs around them.
 */
export * from '../index.ts';
export { chooseBrowserBackend, relativeError, STEP_TOLERANCE, type BackendChoice } from './backend.ts';
export { demoShardData, imagesToSamples, readCsvFile, readImageFolder, readTextFile, type ImageReading, type LocalReading, type TableReading, type TextReading } from './data.ts';
export { concatSets } from '../../shared/data/dataset.ts';
export { browserIdentity } from './identity.ts';

export interface BrowserClientOptions extends Partial<Omit<FederatedClientOptions, 'server' | 'taskId'>> {
  server: string;
  taskId: number;
  /** Your own data (rows, images or text, by the task's schema); by default the task's demo shard (fetched once, kept in IndexedDB). */
  data?: DataInput;
  /** Force a backend ('webgpu', 'webgl', 'wasm', 'cpu') instead of the best that checks out. */
  backend?: string;
  /** Told which backend was chosen, how fast it trains, and why others were passed over. */
  onBackend?: (choice: BackendChoice) => void;
}

type BatteryManager = { level: number; charging: boolean };

async function battery(): Promise<BatteryManager | undefined> {
  const getBattery = (navigator as { getBattery?: () => Promise<BatteryManager> }).getBattery;
  if (!getBattery) return undefined;
  const b = await getBattery.call(navigator);
  return { level: b.level, charging: b.charging };
}

/**
 * A FederatedClient set up for a browser: an identity kept in IndexedDB (so enrollment
 * survives reloads), the server key pinned per origin, the session resumed after a
 * reload, the best backend that trains correctly, battery reported, and the task's demo
 * shard as data unless you bring your own. Call `start()` on it.
 */
export async function createBrowserClient(options: BrowserClientOptions): Promise<FederatedClient> {
  const { onBackend, backend, ...rest } = options;
  const resumeKey = `tributary:resume:${new URL(options.server).origin}:${options.taskId}`;
  const stored = sessionStorage.getItem(resumeKey);
  const resume = stored ? (JSON.parse(stored) as { clientId: string; token: number[] }) : undefined;
  const pinned = await pinnedServerKey(options.server);
  const client = new FederatedClient({
    kind: 'browser',
    identity: await browserIdentity(),
    ...(pinned ? { pinnedServerKey: pinned } : {}),
    ...(resume ? { resume: { clientId: resume.clientId, token: Uint8Array.from(resume.token) } } : {}),
    battery,
    activateBackend: async (task) => {
      const choice = await chooseBrowserBackend(task.spec, {
        wasmPath: new URL(/* @vite-ignore */ '../tfjs-wasm/', import.meta.url).href,
        ...(backend ? { force: backend } : {}),
      });
      onBackend?.(choice);
      // Chrome's approximate memory, GiB (absent elsewhere).
      const gib = (navigator as { deviceMemory?: number }).deviceMemory;
      return { ...choice, ...(gib ? { memoryMb: gib * 1024 } : {}) };
    },
    data: ({ task, shard }) => demoShardData(options.server, task.id, shard ?? 0),
    ...rest,
  });
  client.on('joined', (e) => {
    void pinServerKey(options.server, e.serverKey);
    const credentials = client.resumeCredentials;
    if (credentials) sessionStorage.setItem(resumeKey, JSON.stringify({ clientId: credentials.clientId, token: [...credentials.token] }));
  });
  return client;
}
