// A web app that bundles the SDK: `tributary/client` under the `browser` condition, whose
// code is the bundle built from client/browser/sdk.ts. Type-checked, never run.
// JavaScript (checked) because the root tsconfig type-checks every .ts file under test/
// without this folder's conditions.
import { chooseBrowserBackend, createBrowserClient, FederatedClient, preferredBackends, Trainer, TributaryError } from 'tributary/client';
// @ts-expect-error Node's helpers are not in the browser bundle
import { runEdgeClient } from 'tributary/client';

/** @import { BackendChoice, BrowserClientOptions, ClientEvents, LabelledSet, TrainResult } from 'tributary/client' */

/** @param {LabelledSet} data */
export async function contribute(data) {
  /** @type {BrowserClientOptions} */
  const options = { server: 'https://tributary.example', taskId: 1, enrollment: 'open', data: async () => data };
  /** @type {FederatedClient} */
  const client = await createBrowserClient({ ...options, onBackend: (/** @type {BackendChoice} */ choice) => console.log(choice.name) });
  client.on('uploaded', (e) => console.log(e.round, e.bytes, e.train.loss));
  client.on('error', (e) => console.log(e instanceof TributaryError ? e.code : e.message));
  // @ts-expect-error the task id is a number
  await createBrowserClient({ server: 'https://tributary.example', taskId: '1' });
  /** @type {ClientEvents['joined']} */
  const onJoined = (e) => console.log(e.serverFingerprint);
  client.on('joined', onJoined);
  await client.start();
  return { client, runEdgeClient, chooseBrowserBackend, preferredBackends: preferredBackends('browser', { kind: 'mlp', hidden: [200, 200] }), Trainer };
}

/** @param {TrainResult} result */
export const samples = (result) => result.samples;
