import type { Namespace } from 'socket.io';
import type { AdminClientToServerEvents, AdminServerToClientEvents } from '../../shared/protocol/events.ts';
import type { ClientRegistry } from './clients.ts';

/** How often watchers get the connected-clients table. */
const EVERY_MS = 2_000;

/**
 * The dashboard's client table, pushed to `/admin` watchers every two seconds while any
 * watch: per task, every joined client with its kind, backend, speed and state. A task
 * whose last client left gets one empty list, then nothing.
 */
export function startClientFeed(admin: Namespace<AdminClientToServerEvents, AdminServerToClientEvents>, clients: ClientRegistry): () => void {
  let shown = new Set<number>();
  const timer = setInterval(() => {
    if (admin.sockets.size === 0) return;
    const byTask = new Map<number, ReturnType<ClientRegistry['all']>>();
    for (const c of clients.all()) {
      if (!byTask.has(c.taskId)) byTask.set(c.taskId, []);
      byTask.get(c.taskId)!.push(c);
    }
    for (const taskId of shown) if (!byTask.has(taskId)) admin.emit('clients:update', { taskId, clients: [] });
    for (const [taskId, list] of byTask) admin.emit('clients:update', { taskId, clients: list.map((c) => c.view()) });
    shown = new Set(byTask.keys());
  }, EVERY_MS);
  timer.unref();
  return () => clearInterval(timer);
}
