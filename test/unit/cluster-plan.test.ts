import { describe, expect, it } from 'vitest';
import { allocateQuotas, checkClusterSupport, partialsSettled } from '../../server/cluster/cluster-runner.ts';
import { decodePartial, encodePartial } from '../../server/cluster/partial.ts';
import { RunningSum } from '../../shared/ml/running-sum.ts';
import { withTaskDefaults } from '../../shared/protocol/task.ts';
import { expectCode } from '../support/expect-code.ts';

const member = (processId: string, ready: number) => ({ processId, ready, samples: 100 * ready, at: 0 });

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

  it('with a minimum group, asks a process for none rather than fewer, and the others make up its part', () => {
    // Proportionally c would get 1 of 6: below a group of 3 it gets none, a and b share 6.
    expect(allocateQuotas(6, [member('a', 5), member('b', 5), member('c', 2)], 3)).toEqual({ a: 3, b: 3, c: 0 });
    expect(allocateQuotas(9, [member('a', 3), member('b', 3), member('c', 3)], 3)).toEqual({ a: 3, b: 3, c: 3 });
    expect(allocateQuotas(4, [member('a', 2), member('b', 2)], 3)).toEqual({ a: 0, b: 0 });
    const quotas = allocateQuotas(500, [member('a', 170), member('b', 160), member('c', 170)], 3);
    expect(Object.values(quotas)).toEqual([170, 160, 170]);
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
    const back = decodePartial(encodePartial(partial), { lengths: [3, 2] });
    expect({ ...back, sum: undefined }).toEqual({ ...partial, sum: undefined });
    expect((back.sum as RunningSum).toBytes()).toEqual(sum.toBytes());
  });

  it('carry a secure group’s ring sum word for word, and only in the ring the round sums in', () => {
    const words = Uint16Array.from({ length: 37 }, (_, i) => (i * 997) % 1024);
    const partial = {
      planId: '3.2.0', processId: 'host:2:def', sum: { ringBits: 10, words, survivors: 4 }, dropped: 0, late: 0, rejected: 1, samples: 4.5, uploadBytes: 99,
      participants: [], evaluators: 0, metricSums: [],
    };
    const bytes = encodePartial(partial);
    const back = decodePartial(bytes, { lengths: [37], ring: { ringBits: 10, length: 37 } });
    expect(back.sum).toEqual({ ringBits: 10, words, survivors: 4 });
    expectCode(() => decodePartial(bytes, { lengths: [37], ring: { ringBits: 11, length: 37 } }), 'UPDATE_MALFORMED');
    expectCode(() => decodePartial(bytes, { lengths: [37] }), 'UPDATE_MALFORMED');
  });

  it('refuse bytes that are not a partial with UPDATE_MALFORMED', () => {
    expectCode(() => decodePartial(Uint8Array.of(1, 2), { lengths: [1] }), 'UPDATE_MALFORMED');
    expectCode(() => decodePartial(Uint8Array.of(200, 0, 0, 0, 1), { lengths: [1] }), 'UPDATE_MALFORMED');
    expectCode(() => decodePartial(Uint8Array.of(1, 0, 0, 0, 0x7b), { lengths: [1] }), 'UPDATE_MALFORMED');
  });
});

describe('checkClusterSupport', () => {
  it('runs sync mean tasks, plain and secure, and names what it cannot run yet', () => {
    expect(() => checkClusterSupport(withTaskDefaults({ name: 'plain' }))).not.toThrow();
    expect(() => checkClusterSupport(withTaskDefaults({ name: 's', secure: true }))).not.toThrow();
    expectCode(() => checkClusterSupport(withTaskDefaults({ name: 'd', secure: true, privacy: { mode: 'distributed' } })), 'CLUSTER_UNSUPPORTED');
    expectCode(() => checkClusterSupport(withTaskDefaults({ name: 'a', mode: 'async' })), 'CLUSTER_UNSUPPORTED');
  });
});

describe('partialsSettled', () => {
  const got = new Map([['a', {}]]);
  it('waits for each asked member that is alive, not for one that is gone', () => {
    expect(partialsSettled(['a', 'b'], got, new Set(['a', 'b']))).toBe(false);
    expect(partialsSettled(['a', 'b'], got, new Set(['a']))).toBe(true);
    expect(partialsSettled(['a'], got, new Set(['a', 'b']))).toBe(true);
  });

  it('keeps waiting for a missing partial when the members could not be looked up', () => {
    expect(partialsSettled(['a', 'b'], got, undefined)).toBe(false);
    expect(partialsSettled(['a'], got, undefined)).toBe(true);
  });
});
