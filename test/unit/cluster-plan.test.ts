import { describe, expect, it } from 'vitest';
import { allocateQuotas, checkClusterSupport } from '../../server/cluster/cluster-runner.ts';
import { decodePartial, encodePartial } from '../../server/cluster/partial.ts';
import { RunningSum } from '../../shared/ml/running-sum.ts';
import { withTaskDefaults } from '../../shared/protocol/task.ts';
import { expectCode } from '../support/expect-code.ts';

const member = (processId: string, ready: number) => ({ processId, ready, at: 0 });

describe('allocateQuotas', () => {
  it('asks each process in proportion to its ready clients, the remainder to the largest fractions', () => {
    expect(allocateQuotas(10, [member('a', 10), member('b', 5), member('c', 5)])).toEqual({ a: 5, b: 3, c: 2 });
    expect(allocateQuotas(6, [member('a', 2), member('b', 2), member('c', 2)])).toEqual({ a: 2, b: 2, c: 2 });
  });

  it('never asks a process for more clients than it has ready, nor for more than there are', () => {
    expect(allocateQuotas(10, [member('a', 3), member('b', 1)])).toEqual({ a: 3, b: 1 });
    expect(allocateQuotas(4, [member('a', 0), member('b', 0)])).toEqual({ a: 0, b: 0 });
    const quotas = allocateQuotas(7, [member('a', 1), member('b', 9), member('c', 4)]);
    expect(Object.values(quotas).reduce((x, y) => x + y, 0)).toBe(7);
    expect(quotas.a).toBeLessThanOrEqual(1);
  });
});

describe('partials', () => {
  it('travel exactly: the running sum bit for bit and every tally', () => {
    const sum = new RunningSum([3, 2]);
    sum.add([Float32Array.of(0.1, -2, 3.5), Float32Array.of(1e-7, 4)], 7);
    const partial = {
      planId: '9.1.0', processId: 'host:1:abc', sum, dropped: 1, late: 2, rejected: 0, samples: 7, uploadBytes: 1234,
      participants: [], evaluators: 1, metricSums: [0.1 + 0.2, 1 / 3],
    };
    const back = decodePartial(encodePartial(partial), [3, 2]);
    expect({ ...back, sum: undefined }).toEqual({ ...partial, sum: undefined });
    expect(back.sum.toBytes()).toEqual(sum.toBytes());
  });

  it('refuse bytes that are not a partial with UPDATE_MALFORMED', () => {
    expectCode(() => decodePartial(Uint8Array.of(1, 2), [1]), 'UPDATE_MALFORMED');
    expectCode(() => decodePartial(Uint8Array.of(200, 0, 0, 0, 1), [1]), 'UPDATE_MALFORMED');
    expectCode(() => decodePartial(Uint8Array.of(1, 0, 0, 0, 0x7b), [1]), 'UPDATE_MALFORMED');
  });
});

describe('checkClusterSupport', () => {
  it('runs sync plain mean tasks, and names what it cannot run yet', () => {
    expect(() => checkClusterSupport(withTaskDefaults({ name: 'plain' }))).not.toThrow();
    expectCode(() => checkClusterSupport(withTaskDefaults({ name: 's', secure: true })), 'CLUSTER_UNSUPPORTED');
    expectCode(() => checkClusterSupport(withTaskDefaults({ name: 'a', mode: 'async' })), 'CLUSTER_UNSUPPORTED');
  });
});
