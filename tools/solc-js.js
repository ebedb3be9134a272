#!/usr/bin/env node
// A `solc`-compatible command backed by solc-js (the official compiler built to
// WebAssembly), for machines where no native solc can be installed. It answers the
// two calls that forge and foundry-compilers make: `--version` and `--standard-json`
// (input on stdin, output on stdout). Other flags they pass (`--allow-paths`,
// `--base-path`, `--include-path`) only widen where imports may be read from.
'use strict';
const fs = require('fs');
const path = require('path');
const solc = require('solc');

const args = process.argv.slice(2);

// Exits only after stdout has drained: node truncates piped output at 64 KiB
// when the process exits right after a large write.
function writeAndExit(text, code) {
  process.stdout.write(text, () => process.exit(code));
}

if (args.includes('--version') || args.includes('-v')) {
  const v = solc.version().replace('.Emscripten.clang', '.Linux.g++');
  writeAndExit(`solc, the solidity compiler commandline interface\nVersion: ${v}\n`, 0);
} else if (args.includes('--standard-json')) {
  const roots = [process.cwd()];
  for (let i = 0; i < args.length; i++) {
    if (['--base-path', '--include-path', '--allow-paths'].includes(args[i]) && args[i + 1]) {
      for (const p of args[i + 1].split(',')) roots.push(path.resolve(p));
    }
  }
  const findImports = (p) => {
    for (const root of [''].concat(roots)) {
      const full = root ? path.resolve(root, p) : p;
      try {
        return { contents: fs.readFileSync(full, 'utf8') };
      } catch (_) { /* try the next root */ }
    }
    return { error: `File not found: ${p}` };
  };
  const input = fs.readFileSync(0, 'utf8');
  writeAndExit(solc.compile(input, { import: findImports }), 0);
} else {
  process.stderr.write('usage: solc --version | solc --standard-json < input.json\n');
  process.exit(1);
}
