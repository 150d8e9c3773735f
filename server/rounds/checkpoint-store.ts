import { mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/** A round's checkpoint as named files (model.json, weights.bin, the server state beside them). */
export type CheckpointFiles = Readonly<Record<string, Uint8Array>>;

/**
 * Where checkpoints live: files under the data folder (one server, or processes sharing a
 * folder), or PostgreSQL (processes on any machine). Checkpoints.ts turns models into files.
 */
export interface CheckpointStore {
  /**
   * Writes a round's files, all of them or none, replacing what the round had. With a
   * fencing token (a cluster leader's), a store that fences refuses the write (false) when
   * the round is recorded already or a writer with a higher token wrote it; one that does
   * not (FileCheckpointStore: one writer) takes every write.
   */
  put(taskId: number, round: number, files: CheckpointFiles, fence?: number): Promise<boolean>;
  get(taskId: number, round: number, name: string): Promise<Uint8Array | undefined>;
  has(taskId: number, round: number): Promise<boolean>;
  /** A file of the task's own, outside any round (an uploaded model's initial weights). */
  putTaskFile(taskId: number, name: string, bytes: Uint8Array): Promise<void>;
  getTaskFile(taskId: number, name: string): Promise<Uint8Array | undefined>;
}

/**
 * Checkpoints as folders, `task-<id>/round-<n>/`, each a TF.js layers-model folder
 * (`tf.loadLayersModel` reads it) with the server state beside it. Written to a temporary
 * folder and renamed into place, so a crash never leaves a half-written checkpoint.
 */
export class FileCheckpointStore implements CheckpointStore {
  constructor(private readonly root: string) {}

  folder(taskId: number, round: number): string {
    return join(this.taskFolder(taskId), `round-${round}`);
  }

  async put(taskId: number, round: number, files: CheckpointFiles): Promise<boolean> {
    const final = this.folder(taskId, round);
    // One name per round: a temporary folder left by a crash is cleared when the round is retried.
    const temporary = `${final}.tmp`;
    await rm(temporary, { recursive: true, force: true });
    await mkdir(temporary, { recursive: true });
    for (const [name, bytes] of Object.entries(files)) await writeFile(join(temporary, name), bytes);
    await rm(final, { recursive: true, force: true });
    await rename(temporary, final);
    return true;
  }

  get(taskId: number, round: number, name: string): Promise<Uint8Array | undefined> {
    return readBytes(join(this.folder(taskId, round), name));
  }

  has(taskId: number, round: number): Promise<boolean> {
    return stat(this.folder(taskId, round)).then((s) => s.isDirectory(), () => false);
  }

  async putTaskFile(taskId: number, name: string, bytes: Uint8Array): Promise<void> {
    await mkdir(this.taskFolder(taskId), { recursive: true });
    await writeFile(join(this.taskFolder(taskId), name), bytes);
  }

  getTaskFile(taskId: number, name: string): Promise<Uint8Array | undefined> {
    return readBytes(join(this.taskFolder(taskId), name));
  }

  private taskFolder(taskId: number): string {
    return join(this.root, `task-${taskId}`);
  }
}

/** A file's bytes as a plain Uint8Array (not a Buffer, as every CheckpointStore answers), or undefined if it is not there. */
function readBytes(path: string): Promise<Uint8Array | undefined> {
  return readFile(path).then((b) => new Uint8Array(b.buffer, b.byteOffset, b.byteLength), () => undefined);
}
