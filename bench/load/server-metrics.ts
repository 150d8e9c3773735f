/**
 * The server's own view of itself, scraped from its Prometheus endpoint (/metrics, which
 * answers loopback by default). prom-client resets its event-loop-delay histogram at each
 * collection, so every sample's lag percentiles cover the time since the scrape before.
 */

export interface MetricsSample {
  at: number;
  /** nodejs_eventloop_lag_p99_seconds and _max_seconds of the window since the last scrape, in ms. */
  lagP99Ms: number;
  lagMaxMs: number;
  rssBytes: number;
  heapUsedBytes: number;
  /** nodejs_external_memory_bytes: memory outside the JS heap that JS objects hold (ArrayBuffers, Buffers). */
  externalBytes: number;
  /** tributary_upload_bytes_total, summed over tasks: bytes read from participants of completed rounds. */
  uploadBytes: number;
  connectedClients: number;
  /** The scrape's own round trip: a busy event loop answers late. */
  scrapeMs: number;
}

/** The sum of a metric's series (every label set), or NaN when the text has none. */
export function metricValue(text: string, name: string): number {
  let sum = Number.NaN;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name) || (line[name.length] !== ' ' && line[name.length] !== '{')) continue;
    const value = Number(line.slice(line.lastIndexOf(' ') + 1));
    if (Number.isFinite(value)) sum = (Number.isNaN(sum) ? 0 : sum) + value;
  }
  return sum;
}

export async function scrape(url: string): Promise<MetricsSample> {
  const started = performance.now();
  const response = await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(30_000) });
  if (!response.ok) throw new Error(`GET /metrics: HTTP ${response.status}`);
  const text = await response.text();
  const value = (name: string) => metricValue(text, name);
  return {
    at: Date.now(),
    lagP99Ms: value('nodejs_eventloop_lag_p99_seconds') * 1000,
    lagMaxMs: value('nodejs_eventloop_lag_max_seconds') * 1000,
    rssBytes: value('process_resident_memory_bytes'),
    heapUsedBytes: value('nodejs_heap_size_used_bytes'),
    externalBytes: value('nodejs_external_memory_bytes'),
    uploadBytes: value('tributary_upload_bytes_total') || 0,
    connectedClients: value('tributary_connected_clients') || 0,
    scrapeMs: performance.now() - started,
  };
}

/** Scrapes every `everyMs` (one at a time, a slow answer delays the next) until stopped; failed scrapes are counted, not fatal. */
export function scrapeEvery(url: string, everyMs: number): { samples: MetricsSample[]; failures: () => number; stop(): void } {
  const samples: MetricsSample[] = [];
  let failures = 0;
  let stopped = false;
  const loop = async () => {
    while (!stopped) {
      const due = Date.now() + everyMs;
      await scrape(url).then((s) => samples.push(s), () => failures++);
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, due - Date.now())));
    }
  };
  void loop();
  return { samples, failures: () => failures, stop: () => (stopped = true) };
}
