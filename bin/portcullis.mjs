#!/usr/bin/env node
// The `portcullis` command: runs the TypeScript CLI through tsx's loader (no build step).
import { register } from 'tsx/esm/api';

register();
const { main } = await import('@portcullis/cli');
process.exitCode = await main(process.argv.slice(2));
