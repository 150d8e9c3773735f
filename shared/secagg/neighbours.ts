import { TributaryError } from '../errors.ts';
import { createRng, deriveSeed, shuffleInPlace } from '../random.ts';

/**
 * SecAgg+'s communication graph (Bell et al. 2020): instead of every pair of clients
 * sharing a mask (classic SecAgg, k = n − 1), each client masks with and shares its
 * secrets among only k neighbours in a random Harary graph.
 */

/** ≈ 2·⌈log2 n⌉, even (so every n allows a k-regular graph), at least 2, at most n − 1. */
export function defaultNeighbourCount(n: number): number {
  if (!Number.isInteger(n) || n < 1) throw new TributaryError('BAD_REQUEST', `client count must be a positive integer, got ${n}`);
  const log = 32 - Math.clz32(n - 1); // ⌈log2 n⌉
  return Math.min(Math.max(2 * log, 2), n - 1);
}

/**
 * A random Harary graph H(k, n) over client indices 0..n−1: the clients are placed on a
 * ring in a permutation drawn from `seed`, and each is joined to its k/2 nearest on either
 * side. Every node has degree exactly k. An odd k with an even n adds the diametric edge
 * (as Harary does); an odd k with an odd n is impossible (n·k would be odd), so k is bumped
 * to k + 1. k ≥ n − 1 gives the complete graph. Lists are sorted; the graph depends only on
 * (n, k, seed), so every party derives the same one from the round config. The seed needs
 * no secrecy: the server chooses the graph anyway.
 */
export function neighbourGraph(n: number, k: number, seed: Uint8Array): number[][] {
  if (!Number.isInteger(n) || n < 1) throw new TributaryError('BAD_REQUEST', `client count must be a positive integer, got ${n}`);
  if (!Number.isInteger(k) || k < 1) throw new TributaryError('BAD_REQUEST', `neighbour count must be a positive integer, got ${k}`);
  if (k >= n - 1) {
    return Array.from({ length: n }, (_, i) => {
      const list: number[] = [];
      for (let j = 0; j < n; j++) if (j !== i) list.push(j);
      return list;
    });
  }
  const degree = k % 2 === 1 && n % 2 === 1 ? k + 1 : k;
  let hex = '';
  for (const b of seed) hex += b.toString(16).padStart(2, '0');
  const order = shuffleInPlace(
    Array.from({ length: n }, (_, i) => i),
    createRng(deriveSeed('neighbours', hex, n, degree)),
  );
  const half = Math.floor(degree / 2);
  const adjacency: number[][] = Array.from({ length: n }, () => []);
  for (let p = 0; p < n; p++) {
    const self = order[p]!;
    const list = adjacency[self]!;
    for (let d = 1; d <= half; d++) {
      list.push(order[(p + d) % n]!, order[(p - d + n) % n]!);
    }
    // half < n/2 (degree ≤ n − 1, and an odd degree is ≤ n − 3), so +d and −d never meet
    // and never reach the diameter: every list has `degree` distinct entries.
    if (degree % 2 === 1) list.push(order[(p + n / 2) % n]!);
  }
  for (const list of adjacency) list.sort((a, b) => a - b);
  return adjacency;
}
