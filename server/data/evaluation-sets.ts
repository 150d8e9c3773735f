import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { decodeShard, encodeShard } from '../../shared/codec/demo-shard.ts';
import type { LabelledSet } from '../../shared/data/dataset.ts';

/**
 * Evaluation sets operators upload for their tasks, encoded by the task's schema and kept
 * as files under the server's state folder (written to a temporary name and renamed, so a
 * crash never leaves half a set). Read once per task, then held.
 */
export class EvaluationSets {
  private readonly held = new Map<number, Promise<LabelledSet | undefined>>();

  constructor(private readonly root: string) {}

  async save(taskId: number, set: LabelledSet): Promise<void> {
    await mkdir(this.root, { recursive: true });
    const file = this.file(taskId);
    await writeFile(`${file}.tmp`, encodeShard(set), { mode: 0o600 });
    await rename(`${file}.tmp`, file);
    this.held.set(taskId, Promise.resolve(set));
  }

  get(taskId: number): Promise<LabelledSet | undefined> {
    let set = this.held.get(taskId);
    if (!set) {
      set = readFile(this.file(taskId)).then((bytes) => decodeShard(bytes), () => undefined);
      this.held.set(taskId, set);
    }
    return set;
  }

  private file(taskId: number): string {
    return join(this.root, `task-${taskId}.bin`);
  }
}
