import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { rest } from '../client/rest.ts';
import { TributaryError } from '../shared/errors.ts';
import { MODEL_LIMITS, weightPathsOf, type ModelUpload } from '../shared/protocol/model-upload.ts';
import type { LocalOptimizer, TaskRecord, TaskSpecInput } from '../shared/protocol/task.ts';

/** `tributary task create`: a task from an uploaded TF.js Layers model, over REST with an operator's API token. */

export interface CreateTaskOptions {
  server: string;
  /** model.json, as tensorflowjs_converter or model.save() write it. */
  model: string;
  /** The weights file; default: the files model.json's manifest lists, beside it, if they are there. */
  weights?: string;
  /** The devices' data schema (JSON), for their own data; or `dataset`, a built-in one. */
  schema?: string;
  dataset?: string;
  name: string;
  /** More task settings as a JSON object (REST body fields); the options below override them. */
  settings?: string;
  rounds?: number;
  clientsPerRound?: number;
  minUpdates?: number;
  localEpochs?: number;
  batchSize?: number;
  lr?: number;
  optimizer?: LocalOptimizer;
  seed?: number;
  tokenFile?: string;
  json?: boolean;
}

const MiB = 1024 * 1024;

/** A problem found here, before anything is sent: said plainly (the server's refusals come with their code). */
function fail(message: string): never {
  throw new Error(message);
}

/** The operator's API token: `--token-file`, else TRIBUTARY_API_TOKEN (kept out of argv, which `ps` shows every user). */
export function apiTokenOf(tokenFile: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  const token = tokenFile ? readFileSync(tokenFile, 'utf8').trim() : env.TRIBUTARY_API_TOKEN?.trim();
  if (!token) fail(`no operator API token: set TRIBUTARY_API_TOKEN or pass --token-file (make one with \`tributary admin token --username <you>\`)${tokenFile ? `; ${tokenFile} is empty` : ''}`);
  return token;
}

function readJson(file: string, what: string, maxBytes = Infinity): unknown {
  if (!existsSync(file)) fail(`${what} ${file} does not exist`);
  const size = statSync(file).size;
  if (size > maxBytes) fail(`${file} is ${size} bytes; the server takes at most ${maxBytes / MiB} MiB`);
  try {
    return JSON.parse(readFileSync(file, 'utf8'));
  } catch (error) {
    return fail(`${file} is not JSON: ${(error as Error).message}`);
  }
}

/** The weight bytes: `--weights`, else every file the manifest lists (converter shards, in order), or none if none is there. */
function readWeights(modelFile: string, modelJson: unknown, weightsFile: string | undefined): { bytes?: Buffer; note?: string } {
  const files = weightsFile ? [weightsFile] : weightPathsOf(modelJson).map((p) => resolve(dirname(modelFile), p));
  const present = files.filter((f) => existsSync(f));
  if (weightsFile && present.length === 0) fail(`weights file ${weightsFile} does not exist`);
  if (present.length === 0) return files.length === 0 ? {} : { note: `no weights at ${files.join(', ')}: the model starts from its initializers` };
  if (present.length < files.length) fail(`model.json lists ${files.join(', ')}, but ${files.filter((f) => !present.includes(f)).join(', ')} is missing`);
  const size = files.reduce((n, f) => n + statSync(f).size, 0);
  if (size > MODEL_LIMITS.weightsBytes) fail(`the weights are ${size} bytes; the server takes at most ${MODEL_LIMITS.weightsBytes / MiB} MiB`);
  return { bytes: Buffer.concat(files.map((f) => readFileSync(f))) };
}

/** The create-task request: settings file, then data, model and the options given, each over the last. */
export function createTaskBody(options: CreateTaskOptions): { body: TaskSpecInput; note?: string } {
  const settings = options.settings ? readJson(options.settings, 'settings') : {};
  if (!settings || typeof settings !== 'object' || Array.isArray(settings)) fail(`${options.settings} is not a JSON object of task settings`);
  if (!options.schema && !options.dataset) fail('say what the data looks like: --schema <file> (devices bring their own data) or --dataset <built-in name>');
  const modelJson = readJson(options.model, 'model', MODEL_LIMITS.modelJsonBytes);
  if (!modelJson || typeof modelJson !== 'object' || Array.isArray(modelJson)) fail(`${options.model} is not a model.json object`);
  const { bytes, note } = readWeights(options.model, modelJson, options.weights);
  const model: ModelUpload = { kind: 'layers', modelJson: modelJson as Record<string, unknown>, ...(bytes ? { weights: bytes.toString('base64') } : {}) };
  const given = settings as TaskSpecInput;
  const defined = <T extends object>(o: T) => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
  const hyper = defined({ localEpochs: options.localEpochs, batchSize: options.batchSize, learningRate: options.lr, optimizer: options.optimizer });
  const body: TaskSpecInput = {
    ...given,
    ...(options.schema ? { data: readJson(options.schema, 'schema') as TaskSpecInput['data'] } : { dataset: options.dataset! }),
    ...defined({ name: options.name, rounds: options.rounds, clientsPerRound: options.clientsPerRound, minUpdates: options.minUpdates, seed: options.seed }),
    ...(Object.keys(hyper).length > 0 ? { hyper: { ...given.hyper, ...hyper } } : {}),
    model,
  };
  return note ? { body, note } : { body };
}

/** Runs `task create`: prints the new task's id (or the task as JSON); a problem, or the server's refusal with its code, goes to stderr with exit code 1. */
export async function runCreateTask(options: CreateTaskOptions): Promise<void> {
  try {
    const token = apiTokenOf(options.tokenFile);
    const { body, note } = createTaskBody(options);
    if (note) console.error(note);
    const task = await rest<TaskRecord>('POST', new URL('/api/tasks', options.server), { body, bearer: token });
    console.log(options.json ? JSON.stringify(task) : String(task.id));
  } catch (error) {
    // fetch names the network failure only in its cause (ECONNREFUSED, ENOTFOUND…).
    const { cause } = error as { cause?: { code?: string; message?: string } };
    const why = cause?.code ?? cause?.message;
    const reason = error instanceof TributaryError ? `${error.code}: ${error.message}` : `${(error as Error).message}${why ? ` (${why})` : ''}`;
    console.error(`tributary task create: ${reason}`);
    process.exitCode = 1;
  }
}
