#!/usr/bin/env node
// The `tributary` command. Sources are TypeScript, run through tsx's loader.
import { register } from 'tsx/esm/api';

register();
await import('../cli/main.ts');
