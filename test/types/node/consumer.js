// A Node program using the SDK: `tributary/client` under the `node` condition
// (client/node/index.ts). Type-checked, never run. JavaScript (checked) because the root
// tsconfig type-checks every .ts file under test/ without this folder's conditions.
import {
  activateNodeBackend,
  FederatedClient,
  loadDemoShard,
  runEdgeClient,
  runGpuNode,
  Trainer,
  TributaryError,
} from 'tributary/client';
// @ts-expect-error the browser's helpers are not in Node's entry
import { createBrowserClient } from 'tributary/client';


/** @import { ErrorCode, FederatedClientOptions, KeyPair, TaskRecord } from 'tributary/client' */

/** @param {KeyPair} identity */
export async function contribute(identity) {
  /** @type {FederatedClientOptions} */
  const options = {
    server: 'http://127.0.0.1:8080',
    taskId: 1,
    identity,
    enrollment: { token: 'trb_enroll_example' },
    activateBackend: (/** @type {TaskRecord} */ task) => activateNodeBackend(task.spec.model),
    data: ({ task, shard }) => loadDemoShard(task.spec, shard ?? 0),
  };
  const client = new FederatedClient(options);
  client.on('error', (e) => {
    /** @type {ErrorCode | undefined} */
    const code = e instanceof TributaryError ? e.code : undefined;
    console.log(code);
  });
  // @ts-expect-error a client needs its data and a backend
  new FederatedClient({ server: 'http://127.0.0.1:8080', taskId: 1 });
  await client.start();
  /** @type {'completed' | 'stopped'} */
  // Raw samples of the task's schema go straight in: table rows here.
  new FederatedClient({ ...options, data: [{ 'Beak Length (mm)': 39.1, Sex: 'MALE', Species: 'Adelie' }] });
  const status = await runEdgeClient({ server: options.server, taskId: 1, data: './rows.csv' });
  return { status, gpu: runGpuNode, createBrowserClient, Trainer };
}
