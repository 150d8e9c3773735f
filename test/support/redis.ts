/** The tests' Redis is the product's local one (cli/local-servers/redis.ts), in a temporary folder. */
export * from '../../cli/local-servers/redis.ts';
export type { LocalRedis as TestRedis } from '../../cli/local-servers/redis.ts';
export { freePort } from '../../cli/processes.ts';
