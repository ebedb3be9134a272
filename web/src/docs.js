// Renders the service's OpenAPI document with Swagger UI (swagger-ui-dist, served by the
// service itself from web/dist/: no CDN). Loaded after swagger-ui-bundle.js, which defines
// SwaggerUIBundle. The document's URL is the page's data-document attribute.
const root = document.getElementById('docs');
root.textContent = '';
globalThis.ui = globalThis.SwaggerUIBundle({
  url: root.dataset.document,
  domNode: root,
  deepLinking: true,
  // No request to an outside validator service; the document is checked by the tests.
  validatorUrl: null,
  // Operations show their security scheme (the lock) and their parameters; "Try it out"
  // stays one click away, so nothing is sent unasked.
  tryItOutEnabled: false,
  displayOperationId: false,
  defaultModelsExpandDepth: 0,
  presets: [globalThis.SwaggerUIBundle.presets.apis],
  layout: 'BaseLayout',
});
