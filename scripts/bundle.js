// `node scripts/bundle.js` (part of `npm run build`): dist/bundle/, the files every
// home runs — the npm command, the image, the systemd unit, the single-file
// executable and the benchmarks:
//
//   dist/bundle/cli.js            the entry: turns on Node's compile cache, then loads main.js
//   dist/bundle/main.js           the CLI and the production dependencies, one file
//   dist/bundle/pkcs11-worker.js  the PKCS#11 worker thread's entry (pkcs11-worker.ts)
//   dist/bundle/package.json      {"type": "commonjs"}: both are CommonJS
//
// Why one file: Node's ES module loader resolves, reads and links the ~200 modules
// of `serve` one by one, and the dependencies go through a second (CommonJS)
// loader; one CommonJS script skips both. Measured: idle RSS 8.5 MB lower and
// spawn-to-ready ~65 ms faster than dist/cli.js, the same instructions per request
// (docs/benchmarks.md, "One bundle for every home").
// The lazy `import()`s of optional parts (yaml, https-proxy-agent, node-forge,
// pino-pretty, each command) stay lazy: esbuild makes them module initialisers
// that run on first use.
//
// Not minified: a stack trace from a user's daemon names our functions and lines
// as written. The native addon pkcs11js stays outside and is found in
// node_modules as before (createRequire from the bundle's own path).
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { build } from 'esbuild';

const root = fileURLToPath(new URL('..', import.meta.url));
export const BUNDLE_DIR = join(root, 'dist', 'bundle');
export const BUNDLE_CLI = join(BUNDLE_DIR, 'cli.js');
export const BUNDLE_MAIN = join(BUNDLE_DIR, 'main.js');

/**
 * esbuild escapes non-ASCII characters in code but keeps the doc comments it
 * preserves as they are; one "—" in a comment makes V8 hold the whole 2.9 MB
 * source as a two-byte string (5.7 MB, measured). \uXXXX means the same
 * character in a string, template or regular expression, and nothing in a comment.
 */
export function asciiOnly(text) {
  return text.replace(/[^\x00-\x7f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** Builds dist/bundle/ from dist/ (run `tsc` first). */
export async function bundle() {
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
  const [major] = process.versions.node.split('.').map(Number);
  // dist/version.js reads ../package.json at run time; the bundle (and the executable) carry the version.
  const inlineVersion = {
    name: 'inline-version',
    setup(b) {
      b.onLoad({ filter: /[\\/]dist[\\/]version\.js$/ }, () => ({ contents: `export const VERSION = ${JSON.stringify(pkg.version)};`, loader: 'js' }));
    },
  };
  // The oldest Node of package.json "engines" runs it too.
  const target = `node${Math.min(major, Number(/\d+/.exec(pkg.engines.node)[0]))}`;
  rmSync(BUNDLE_DIR, { recursive: true, force: true });
  mkdirSync(BUNDLE_DIR, { recursive: true });
  writeFileSync(join(BUNDLE_DIR, 'package.json'), JSON.stringify({ type: 'commonjs' }) + '\n');
  const common = { bundle: true, platform: 'node', format: 'cjs', target, logLevel: 'warning', write: false };
  // The entry: Node's compile cache (src/cli/compile-cache.ts) on before main.js is
  // compiled, so that the big file's code comes from the cache at the next start; and for
  // `serve`, a SIGHUP held (src/cli/early-sighup.ts) while main.js compiles.
  const entry = await build({
    ...common,
    stdin: {
      contents: `import { enableCompileCache } from './dist/cli/compile-cache.js';\nimport { holdSighup } from './dist/cli/early-sighup.js';\nif (process.argv[2] === 'serve') holdSighup();\nenableCompileCache();\nrequire('./main.js');\n`,
      resolveDir: root,
      sourcefile: 'bundle-entry.js',
    },
    outfile: BUNDLE_CLI,
    external: ['./main.js'],
    banner: { js: '#!/usr/bin/env node' },
  });
  const result = await build({
    ...common,
    entryPoints: {
      main: join(root, 'dist', 'cli.js'),
      'pkcs11-worker': join(root, 'dist', 'identity', 'signers', 'pkcs11', 'pkcs11-worker.js'),
    },
    outdir: BUNDLE_DIR,
    minifySyntax: true,
    minifyWhitespace: false,
    minifyIdentifiers: false,
    legalComments: 'none',
    // import.meta.url is the bundle file's own URL (pkcs11/worker-host.ts finds its worker and pkcs11/binding.ts
    // pkcs11js from it). In the single-file executable __filename is the executable.
    define: { 'import.meta.url': '__bundleUrl' },
    banner: { js: `var __bundleUrl = require('node:url').pathToFileURL(__filename).href;` },
    external: ['pkcs11js'],
    plugins: [inlineVersion],
  });
  if (entry.errors.length || result.errors.length) throw new Error('bundle failed');
  for (const file of [...entry.outputFiles, ...result.outputFiles]) writeFileSync(file.path, asciiOnly(file.text), { mode: 0o755 });
  return BUNDLE_CLI;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) await bundle();
