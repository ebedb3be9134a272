// Bundles the checkout page into web/dist/: src/checkout.js (with viem) becomes one minified
// ES module, and checkout.html and checkout.css are copied beside it. The service serves
// GET /checkout -> dist/checkout.html and GET /checkout/assets/<file> -> dist/<file>. The
// account page likewise: src/account.js, account.html and account.css (GET /account).
// Also copies the API docs page: docs.html, docs.css and src/docs.js with Swagger UI's
// prebuilt bundle and stylesheet (the pinned swagger-ui-dist package) and its licence; the
// service serves GET /docs -> dist/docs.html and GET /docs/assets/<file> -> dist/<file>.
import { build } from 'esbuild';
import { copyFile, mkdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const dist = join(here, 'dist');

await mkdir(dist, { recursive: true });
// One minified ES module per page, each with viem bundled in.
for (const page of ['checkout', 'account']) {
  await build({
    entryPoints: [join(here, 'src', `${page}.js`)],
    outfile: join(dist, `${page}.js`),
    bundle: true,
    format: 'esm',
    minify: true,
    target: 'es2020',
    platform: 'browser',
    legalComments: 'none',
    logLevel: 'warning',
  });
}
await Promise.all(
  ['checkout.html', 'checkout.css', 'account.html', 'account.css'].map((file) => copyFile(join(here, file), join(dist, file))),
);

const swaggerUi = join(here, 'node_modules', 'swagger-ui-dist');
const docsFiles = [
  [join(here, 'docs.html'), 'docs.html'],
  [join(here, 'docs.css'), 'docs.css'],
  [join(here, 'src', 'docs.js'), 'docs.js'],
  [join(swaggerUi, 'swagger-ui-bundle.js'), 'swagger-ui-bundle.js'],
  [join(swaggerUi, 'swagger-ui.css'), 'swagger-ui.css'],
  [join(swaggerUi, 'LICENSE'), 'swagger-ui.LICENSE.txt'],
];
await Promise.all(docsFiles.map(([from, to]) => copyFile(from, join(dist, to))));
