// A runtime with neither condition (a worker, Deno): `tributary/client` gives the SDK's core
// names (client/index.ts) and no runtime's helpers. Type-checked, never run. JavaScript
// (checked) because the root tsconfig type-checks every .ts file under test/.
import { activateBackend, FederatedClient, preferredBackends, Trainer, TributaryError } from 'tributary/client';
// @ts-expect-error the browser's helpers need the browser condition
import { createBrowserClient } from 'tributary/client';
// @ts-expect-error Node's helpers need the node condition
import { runEdgeClient } from 'tributary/client';

/** @import { DataProvider } from 'tributary/client' */

/** @param {DataProvider} data */
export function participant(data) {
  const client = new FederatedClient({
    server: 'https://tributary.example',
    taskId: 1,
    enrollment: 'open',
    activateBackend: (task) => activateBackend(preferredBackends('browser', task.spec.model)),
    data,
  });
  client.on('error', (e) => console.log(e instanceof TributaryError ? e.status : 0));
  return { client, Trainer, createBrowserClient, runEdgeClient };
}
