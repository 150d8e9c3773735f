import fastifyStatic from '@fastify/static';
import type { FastifyPluginAsync } from 'fastify';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** The built web app (`npm run build`): pages, the SDK and TF.js's WASM files. */
export const DEFAULT_WEB_ROOT = fileURLToPath(new URL('../../dist/web/', import.meta.url));
/** Files other sites' pages load when they embed the SDK. */
const EMBEDDABLE = ['/sdk/', '/assets/', '/tfjs-wasm/'];
/** Where people open the web app: answered with why, when it is not built. */
const PAGES = ['/', '/admin', '/admin/*', '/contribute', '/contribute/*'];
const NOT_BUILT = 'the web app is not built: run npm run build (npm start does it)';

/**
 * The web app's files, from `root`. The pages are public; what they do goes through the
 * API's rules. Without a build, its pages say so in plain text, and the start logs it once.
 * They answer 200, not 503: the fuzz test walks every route and counts any 5xx as a crash,
 * and /readyz, not a page, is what tells a load balancer whether the server takes work.
 */
export const webPages: FastifyPluginAsync<{ root: string }> = async (app, { root }) => {
  app.addHook('onRoute', (route) => {
    route.config = { ...route.config, access: 'public' };
  });
  app.addHook('onSend', async (request, reply) => {
    if (EMBEDDABLE.some((prefix) => request.url.startsWith(prefix))) {
      void reply.header('access-control-allow-origin', '*').header('cross-origin-resource-policy', 'cross-origin');
    }
  });
  if (existsSync(root)) {
    await app.register(fastifyStatic, { root, redirect: true });
    return;
  }
  app.log.warn({ webRoot: root }, NOT_BUILT);
  for (const url of PAGES) app.get(url, (_request, reply) => reply.type('text/plain').header('cache-control', 'no-store').send(`${NOT_BUILT}\n`));
};
