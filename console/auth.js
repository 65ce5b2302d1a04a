// Sign-in. The token lives in this module's memory only: never in localStorage, a cookie or
// the URL; reloading the page signs out. Two ways in, as config.json says:
// - oidc: authorization code with PKCE at the issuer the API trusts. Only the PKCE verifier and
//   state wait in sessionStorage across the redirect (useless without the code, and removed on
//   return); the code leaves the address bar before it is exchanged.
// - devSignIn (make dev only): a token for a chosen role and subject from the local platform's
//   POST /console/dev-token, minted as `make token` mints it.

let session = null; // { token, sub, expires (ms) }
const PKCE_KEY = "funcmart.console.pkce";

export function current() {
  if (session && session.expires && Date.now() > session.expires) session = null;
  return session;
}

export function signOut() {
  session = null;
}

export function claims(token) {
  // For display only (who is signed in): the API verifies the token, the page never trusts it.
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(part.padEnd(part.length + ((4 - (part.length % 4)) % 4), "=")));
  } catch {
    return {};
  }
}

function begin(token) {
  const c = claims(token);
  session = { token, sub: c.sub || c.username || "unknown", expires: c.exp ? c.exp * 1000 : 0 };
  return session;
}

export async function devSignIn(role, sub) {
  const answer = await fetch("dev-token", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ role, sub }),
  });
  const body = await answer.json().catch(() => ({}));
  if (!answer.ok) throw new Error(`${answer.status}: ${body.detail || answer.statusText}`);
  return begin(body.token);
}

function b64url(bytes) {
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

async function discover(issuer) {
  const url = issuer.replace(/\/$/, "") + "/.well-known/openid-configuration";
  const answer = await fetch(url);
  if (!answer.ok) throw new Error(`the issuer's discovery document answered ${answer.status}`);
  return answer.json();
}

function redirectUri() {
  return location.origin + location.pathname;
}

export async function oidcStart(oidc) {
  const meta = await discover(oidc.issuer);
  const verifier = b64url(crypto.getRandomValues(new Uint8Array(32)));
  const state = b64url(crypto.getRandomValues(new Uint8Array(16)));
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier));
  sessionStorage.setItem(PKCE_KEY, JSON.stringify({ verifier, state }));
  const url = new URL(meta.authorization_endpoint);
  url.search = new URLSearchParams({
    response_type: "code",
    client_id: oidc.clientId,
    redirect_uri: redirectUri(),
    scope: oidc.scope || "openid",
    state,
    code_challenge: b64url(new Uint8Array(digest)),
    code_challenge_method: "S256",
  }).toString();
  location.assign(url.toString());
}

// On the way back from the issuer: exchange the code for a token, or null when the address
// carries no code.
export async function oidcFinish(oidc) {
  const params = new URLSearchParams(location.search);
  const code = params.get("code");
  const error = params.get("error");
  if (!code && !error) return null;
  history.replaceState(null, "", location.pathname + location.hash);
  const saved = JSON.parse(sessionStorage.getItem(PKCE_KEY) || "null");
  sessionStorage.removeItem(PKCE_KEY);
  if (error) throw new Error(`the issuer refused the sign-in: ${error}`);
  if (!saved || saved.state !== params.get("state")) {
    throw new Error("the sign-in answer does not match the request made here; sign in again");
  }
  const meta = await discover(oidc.issuer);
  const answer = await fetch(meta.token_endpoint, {
    method: "POST",
    headers: { "Content-Type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({
      grant_type: "authorization_code",
      code,
      redirect_uri: redirectUri(),
      client_id: oidc.clientId,
      code_verifier: saved.verifier,
    }),
  });
  const body = await answer.json().catch(() => ({}));
  if (!answer.ok || !body.access_token) {
    throw new Error(`the token endpoint answered ${answer.status}: ${body.error || "no access token"}`);
  }
  return begin(body.access_token);
}
