import { copyFileSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Plugin } from 'vite';
import { defineConfig } from 'vitest/config';

const here = fileURLToPath(new URL('.', import.meta.url));
const wasmDist = join(here, 'node_modules/@tensorflow/tfjs-backend-wasm/dist');

/** TF.js's WASM backend fetches its .wasm files at run time: they are served from /tfjs-wasm/. */
function tfjsWasm(): Plugin {
  return {
    name: 'tributary:tfjs-wasm',
    apply: 'build',
    writeBundle(options) {
      const out = join(options.dir!, 'tfjs-wasm');
      mkdirSync(out, { recursive: true });
      for (const file of readdirSync(wasmDist).filter((f) => f.endsWith('.wasm'))) copyFileSync(join(wasmDist, file), join(out, file));
    },
  };
}

/**
 * `vite build`: the web app (landing page, /contribute, /admin, the SDK embed example) and
 * the SDK as one ESM module at /sdk/tributary.js, into dist/web, which the server serves.
 * The same file configures Vitest (which runs from the project root).
 */
export default defineConfig({
  root: process.env.VITEST ? here : join(here, 'web'),
  base: '/',
  build: {
    outDir: join(here, 'dist/web'),
    emptyOutDir: true,
    target: 'es2022',
    chunkSizeWarningLimit: 4096,
    rollupOptions: {
      input: {
        main: join(here, 'web/index.html'),
        contribute: join(here, 'web/contribute/index.html'),
        admin: join(here, 'web/admin/index.html'),
        embed: join(here, 'web/examples/embed.html'),
        bench: join(here, 'web/bench/index.html'),
        sdk: join(here, 'client/browser/sdk.ts'),
      },
      // The SDK keeps its exports and a stable address: pages embed it by URL (the embed example does).
      preserveEntrySignatures: 'exports-only',
      external: ['/sdk/tributary.js'],
      output: { entryFileNames: (chunk) => (chunk.name === 'sdk' ? 'sdk/tributary.js' : 'assets/[name]-[hash].js') },
    },
  },
  plugins: [tfjsWasm()],
  test: {
    testTimeout: 120_000,
    hookTimeout: 60_000,
    projects: [
      // Unit tests are single modules in memory: two files at a time use both cores.
      { extends: true, test: { name: 'unit', include: ['test/unit/**/*.test.ts'], sequence: { groupOrder: 0 } } },
      // Integration and browser tests start real servers and client processes on a 2-core machine: one file at a time, after the unit tests.
      { extends: true, test: { name: 'integration', include: ['test/integration/**/*.test.ts', 'test/e2e/**/*.test.ts'], fileParallelism: false, sequence: { groupOrder: 1 } } },
    ],
  },
});
