// Verifies a membership token the way a merchant's app would: with an independent JWT
// library (npm `jose`, pinned in tools/package.json) against the service's published
// JWKS, and nothing else from the service.
//
//   node tests/jwt/verify.mjs <jwks-url> <token> <issuer> [audience]
//
// Prints the verified payload as JSON on success; exits 1 with the library's error text
// otherwise.
import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";

const require = createRequire(new URL("../../tools/package.json", import.meta.url));
const { createRemoteJWKSet, jwtVerify } = await import(pathToFileURL(require.resolve("jose")).href);

const [jwksUrl, token, issuer, audience] = process.argv.slice(2);
try {
  const keys = createRemoteJWKSet(new URL(jwksUrl));
  const options = { issuer, algorithms: ["ES256"] };
  if (audience) options.audience = audience;
  const { payload, protectedHeader } = await jwtVerify(token, keys, options);
  console.log(JSON.stringify({ payload, header: protectedHeader }));
} catch (error) {
  console.error(`${error.code ?? "error"}: ${error.message}`);
  process.exit(1);
}
