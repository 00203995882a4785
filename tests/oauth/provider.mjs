// A real OAuth 2.1 authorization server for the interop tests: the npm
// package oidc-provider (installed by scripts/test.sh), on loopback, with
// dynamic client registration, PKCE required and resource indicators
// (RFC 8707) that make JWT access tokens for the MCP endpoint.
//
//   node provider.mjs PREFIX PORT RESOURCE "SCOPE SCOPE…" [opaque]
//
// PREFIX is the npm prefix oidc-provider is installed under. With
// `opaque`, access tokens are opaque and the resource server checks them
// by introspection, as the client `toolmesh` (secret `introspection-secret`).
// Signs in any user name at its development login page; users whose name
// starts with `admin` are in the group `admins` (a `groups` claim).
// Prints `issuer <url>` once it listens.
import { generateKeyPairSync } from "node:crypto";
import { createRequire } from "node:module";
import path from "node:path";
import { pathToFileURL } from "node:url";

const [prefix, port, resource, scopes, format] = process.argv.slice(2);
const opaque = format === "opaque";
const entry = createRequire(path.join(prefix, "noop.js")).resolve("oidc-provider");
const { default: Provider, errors } = await import(pathToFileURL(entry).href);
const issuer = `http://127.0.0.1:${port}`;
const { privateKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
const key = { ...privateKey.export({ format: "jwk" }), kid: "test-es256", alg: "ES256", use: "sig" };

const provider = new Provider(issuer, {
  jwks: { keys: [key] },
  features: {
    devInteractions: { enabled: true },
    registration: { enabled: true },
    introspection: { enabled: opaque },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => resource,
      useGrantedResource: () => true,
      getResourceServerInfo(_ctx, indicator) {
        if (indicator !== resource) throw new errors.InvalidTarget(`unknown resource ${indicator}`);
        if (opaque) return { scope: scopes, audience: resource, accessTokenFormat: "opaque", accessTokenTTL: 600 };
        return { scope: scopes, audience: resource, accessTokenFormat: "jwt", accessTokenTTL: 600, jwt: { sign: { alg: "ES256" } } };
      },
    },
  },
  pkce: { required: () => true },
  // The resource server, which introspects opaque tokens.
  clients: opaque
    ? [{ client_id: "toolmesh", client_secret: "introspection-secret", redirect_uris: [], response_types: [], grant_types: [] }]
    : [],
  // The resource's scopes, which registering clients may name.
  scopes: ["openid", "offline_access", ...scopes.split(" ")],
  // The provider's one key is an ES256 key.
  clientDefaults: { id_token_signed_response_alg: "ES256", grant_types: ["authorization_code"], response_types: ["code"] },
  async findAccount(_ctx, id) {
    return { accountId: id, async claims() { return { sub: id }; } };
  },
  async extraTokenClaims(_ctx, token) {
    return token.accountId?.startsWith("admin") ? { groups: ["admins"] } : undefined;
  },
});
provider.proxy = false;
provider.listen(Number(port), "127.0.0.1", () => console.log(`issuer ${issuer}`));
