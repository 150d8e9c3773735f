/** The tests' nginx is the product's local one (cli/local-servers/nginx.ts): deploy/nginx.conf on a free loopback port. */
export * from '../../cli/local-servers/nginx.ts';
export type { LocalNginx as TestNginx } from '../../cli/local-servers/nginx.ts';
