import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileCheckpointStore } from '../../server/rounds/checkpoint-store.ts';
import { openDatabase } from '../../server/store/database.ts';
import { SqliteStore } from '../../server/store/sqlite-store.ts';
import { describeCheckpointStoreConformance } from '../support/conformance/checkpoint-store.ts';

describeCheckpointStoreConformance('FileCheckpointStore', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tributary-checkpoints-'));
  const tasks = new SqliteStore(openDatabase(join(dir, 'tributary.db')));
  return {
    checkpoints: new FileCheckpointStore(join(dir, 'checkpoints')),
    tasks,
    fenced: false,
    close: async () => {
      await tasks.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
});
