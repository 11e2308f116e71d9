#!/usr/bin/env node
// Thin launcher: the compiled CLI lives in dist/ (built by `npm ci` via the prepare script).
import { main } from '../dist/cli/main.js';

// grpc-js sets the TLS ServerName to the target host even when it is an IP address (an agent
// dialing 127.0.0.1:7443), and Node warns DEP0123 on every such connection. The server is
// still checked (pin, and the IP SAN of its certificate); only that notice is dropped.
process.removeAllListeners('warning');
process.on('warning', (warning) => {
  if (warning.code !== 'DEP0123') process.stderr.write(`${warning.name}: ${warning.message}\n`);
});

main(process.argv).then(
  (code) => { process.exitCode = code; },
  (err) => {
    process.stderr.write(`meshcfg: internal error: ${err instanceof Error ? err.stack : String(err)}\n`);
    process.exitCode = 70;
  },
);
