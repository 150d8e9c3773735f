import type { LabelledSet } from '../../shared/data/dataset.ts';
import { selectRows } from '../../shared/data/dataset.ts';
import { alieUpdate, craftUpdates, flipLabels, type AttackName } from '../../shared/ml/attacks.ts';
import { createRng, deriveSeed } from '../../shared/random.ts';
import type { UpdateTransform } from '../types.ts';

/** ALIE: benign updates an attacker trains on parts of its own data to estimate μ and σ. */
const ALIE_PARTS = 4;

export interface Attack {
  /** The labels this client trains on (label-flip relabels them). */
  data(set: LabelledSet): LabelledSet;
  /** What it sends instead of its update. */
  transform: UpdateTransform;
}

/**
 * A malicious edge client for robustness experiments (`tributary client --attack`). ALIE
 * (Baruch et al. 2019) needs the benign updates' spread; with no one to collude with, this
 * client trains ALIE_PARTS updates on disjoint parts of its own data and sends μ − z·σ of
 * those, with the z_max the demo computes for the task's n and f.
 */
export function clientAttack(attack: AttackName, options: { classes: number; alieZ: number; seed: number }): Attack {
  const rng = createRng(deriveSeed(options.seed, 'attack'));
  return {
    data: (set) => (attack === 'label-flip' ? flipLabels(set, options.classes) : set),
    transform: async ({ delta, data, retrain }) => {
      if (attack !== 'alie') return craftUpdates(attack, [delta], { clients: 1, rng })[0]!;
      const parts = Array.from({ length: ALIE_PARTS }, (_, k) => Array.from({ length: Math.ceil((data.n - k) / ALIE_PARTS) }, (_, j) => k + j * ALIE_PARTS));
      const benign = [];
      for (const rows of parts) benign.push(await retrain(selectRows(data, rows)));
      return alieUpdate(benign, options.alieZ);
    },
  };
}
