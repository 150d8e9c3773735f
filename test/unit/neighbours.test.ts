import { describe, expect, it } from 'vitest';
import { defaultNeighbourCount, neighbourGraph } from '../../shared/secagg/neighbours.ts';
import { expectCode } from '../support/expect-code.ts';

const seedA = new Uint8Array(32).fill(1);
const seedB = new Uint8Array(32).fill(2);

function edges(graph: number[][]): Set<string> {
  const out = new Set<string>();
  graph.forEach((list, u) => list.forEach((v) => out.add(`${u}-${v}`)));
  return out;
}

describe('defaultNeighbourCount', () => {
  it('is about 2·⌈log2 n⌉, even unless it is the complete graph, at least 2 and at most n − 1', () => {
    expect(defaultNeighbourCount(1)).toBe(0);
    expect(defaultNeighbourCount(2)).toBe(1);
    expect(defaultNeighbourCount(3)).toBe(2);
    expect(defaultNeighbourCount(4)).toBe(3);
    expect(defaultNeighbourCount(5)).toBe(4);
    expect(defaultNeighbourCount(10)).toBe(8);
    expect(defaultNeighbourCount(100)).toBe(14);
    expect(defaultNeighbourCount(500)).toBe(18);
    expect(defaultNeighbourCount(1000)).toBe(20);
    for (let n = 4; n < 300; n++) {
      const k = defaultNeighbourCount(n);
      expect(k % 2 === 0 || k === n - 1).toBe(true);
      expect(k).toBeGreaterThanOrEqual(2);
      expect(k).toBeLessThanOrEqual(n - 1);
    }
  });
});

describe('neighbourGraph', () => {
  const cases: Array<[number, number]> = [];
  for (const n of [2, 3, 4, 5, 7, 8, 10, 33, 64, 100, 257]) {
    for (const k of [1, 2, 3, 4, 5, 6, 9, 14, n - 2, n - 1]) if (k >= 1) cases.push([n, k]);
  }

  it('gives every node exactly k distinct neighbours (k + 1 for odd k with odd n), no self loops, symmetric', () => {
    const problems: string[] = [];
    for (const [n, k] of cases) {
      const graph = neighbourGraph(n, k, seedA);
      const expected = k >= n - 1 ? n - 1 : k % 2 === 1 && n % 2 === 1 ? k + 1 : k;
      const all = edges(graph);
      graph.forEach((list, u) => {
        const where = `n=${n} k=${k} node ${u}`;
        if (list.length !== expected) problems.push(`${where}: degree ${list.length}`);
        if (new Set(list).size !== list.length) problems.push(`${where}: repeated neighbour`);
        for (const v of list) {
          if (v === u) problems.push(`${where}: self loop`);
          if (!Number.isInteger(v) || v < 0 || v >= n) problems.push(`${where}: neighbour ${v} out of range`);
          if (!all.has(`${v}-${u}`)) problems.push(`${where}: edge to ${v} is one-way`);
        }
      });
    }
    expect(problems).toEqual([]);
  });

  it('is the complete graph when k ≥ n − 1', () => {
    for (const n of [1, 2, 5, 12]) {
      for (const k of [n - 1, n, n + 10]) {
        if (k < 1) continue;
        const graph = neighbourGraph(n, k, seedA);
        graph.forEach((list, u) => expect(list).toEqual(Array.from({ length: n }, (_, i) => i).filter((i) => i !== u)));
      }
    }
  });

  it('is deterministic in (n, k, seed)', () => {
    expect(neighbourGraph(100, 14, seedA)).toEqual(neighbourGraph(100, 14, seedA.slice()));
  });

  it('differs between seeds', () => {
    expect(edges(neighbourGraph(100, 14, seedA))).not.toEqual(edges(neighbourGraph(100, 14, seedB)));
    expect(edges(neighbourGraph(100, 14, seedA))).not.toEqual(edges(neighbourGraph(100, 14, Uint8Array.of(1))));
  });

  it('is connected (a Harary graph is k-connected)', () => {
    const graph = neighbourGraph(200, 4, seedA);
    const seen = new Set([0]);
    const queue = [0];
    while (queue.length > 0) for (const v of graph[queue.pop()!]!) if (!seen.has(v)) (seen.add(v), queue.push(v));
    expect(seen.size).toBe(200);
  });

  it('refuses non-positive sizes', () => {
    expectCode(() => neighbourGraph(0, 2, seedA), 'BAD_REQUEST');
    expectCode(() => neighbourGraph(10, 0, seedA), 'BAD_REQUEST');
    expectCode(() => neighbourGraph(10, 2.5, seedA), 'BAD_REQUEST');
  });
});
