import type { StrategyName } from '../../shared/task.ts';
import { fedAvg } from './fedavg.ts';
import type { Strategy } from './strategy.ts';

const factories: Record<StrategyName, () => Strategy> = {
  fedavg: fedAvg,
};

export function createStrategy(name: StrategyName): Strategy {
  return factories[name]();
}
