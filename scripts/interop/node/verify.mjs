// Node's jose against authd, starting from the issuer URL alone: fetch the OpenID configuration,
// build createRemoteJWKSet from its jwks_uri, and verify an access token (an alg that discovery
// names, typ at+jwt, iss, aud). Prints the verified header and claims as one JSON line; exits 1
// with the reason (the error's name first) on any failure.
// Run by scripts/interop/check.py:  node verify.mjs ISSUER AUDIENCE TOKEN
import { createRemoteJWKSet, jwtVerify } from "jose";

const [issuer, audience, token] = process.argv.slice(2);
try {
  const res = await fetch(`${issuer.replace(/\/$/, "")}/.well-known/openid-configuration`);
  if (res.status !== 200) throw new Error(`openid-configuration: HTTP ${res.status}`);
  const config = await res.json();
  if (config.issuer !== issuer) throw new Error(`issuer ${config.issuer} != ${issuer}`);
  const jwks = createRemoteJWKSet(new URL(config.jwks_uri));
  const { payload, protectedHeader } = await jwtVerify(token, jwks, {
    issuer: config.issuer,
    audience,
    typ: "at+jwt",
    algorithms: config.id_token_signing_alg_values_supported,
  });
  console.log(JSON.stringify({ header: protectedHeader, claims: payload }));
} catch (err) {
  console.error(`${err.name}: ${err.message}`);
  process.exit(1);
}
