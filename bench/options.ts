/** What every benchmark is run with (`tributary bench <name> --rounds --clients --out`). */
export interface BenchOptions {
  rounds: number;
  clients: number;
  /** Where tables and plots are written. */
  out: string;
}
