import { runEdgeClient, type EdgeClientOptions } from '../client/node/edge.ts';

/**
 * A process hosting several edge clients for the cluster-chaos bench (child_process.fork
 * of this module, the clients' options as JSON in argv[2], the enrollment token in
 * TRIBUTARY_TOKEN). Each client is what `tributary client` runs — runEdgeClient: its own
 * identity, socket, session and trainer — only the Node process, and so TF.js, is shared.
 */

const clients = JSON.parse(process.argv[2] ?? '[]') as EdgeClientOptions[];
// The bench went away without stopping us: neither do the clients outlive it.
process.on('disconnect', () => process.exit(1));

const outcomes = await Promise.all(clients.map((options) => runEdgeClient(options).catch((error: Error) => {
  // Not started again here: a failed client may still hold its socket, and a second one would take its session over.
  console.log(JSON.stringify({ event: 'client-lost', shard: options.shard, reason: error.message }));
  return 'lost' as const;
})));
process.exit(outcomes.includes('lost') ? 1 : 0);
