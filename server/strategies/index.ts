import type { StrategyName } from '../../shared/protocol/task.ts';
import { fedAdam } from './fedadam.ts';
import { fedAvg } from './fedavg.ts';
import { fedAvgM } from './fedavgm.ts';
import { fedYogi } from './fedyogi.ts';
import type { Strategy } from './strategy.ts';

const factories: Record<StrategyName, () => Strategy> = {
  fedavg: fedAvg,
  fedavgm: () => fedAvgM(),
  fedadam: () => fedAdam(),
  fedyogi: () => fedYogi(),
};

export function createStrategy(name: StrategyName): Strategy {
  return factories[name]();
}
