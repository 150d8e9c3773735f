import type { LabelledSet } from '../../shared/data/dataset.ts';
import { isBuiltin } from '../../shared/data/builtin.ts';
import type { TaskRecord } from '../../shared/protocol/task.ts';
import type { EvaluationSets } from './evaluation-sets.ts';
import type { BuiltinSplits } from './splits.ts';

/** Where a task's server-side evaluation set comes from; undefined when it has none. */
export type TestSets = (task: TaskRecord) => Promise<LabelledSet | undefined>;

/**
 * The held-out set the server scores a task's global models on: one the operator uploaded
 * for it, else the first `testLimit` samples of its built-in data set's test split (views
 * of one copy shared by every task: evaluation only reads them). A task on the devices' own
 * data without an uploaded set has none: federated evaluation scores it.
 */
export function heldOutTestSets(splits: BuiltinSplits, uploaded: EvaluationSets): TestSets {
  return async ({ id, spec }) => (await uploaded.get(id)) ?? (isBuiltin(spec.dataset) ? splits.get(spec.dataset, 'test', spec.testLimit) : undefined);
}
