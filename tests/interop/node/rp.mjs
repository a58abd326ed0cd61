// A relying party built on openid-client v6 (panva, OpenID certified). It signs a user in
// through the provider (a tiny cookie-keeping HTTP follower plays the browser and posts the
// sign-in form), validates the tokens, calls userinfo, refreshes, introspects, revokes and
// builds the logout URL, then prints one JSON object with what it saw for the Python test.
//
// Input (environment): ISSUER CLIENT_ID CLIENT_SECRET REDIRECT_URI POST_LOGOUT_REDIRECT_URI
// USERNAME PASSWORD, optionally AUTH_METHOD and ID_TOKEN_ALG.
import * as client from 'openid-client'
import * as oauth from 'oauth4webapi'

const env = process.env
const issuer = new URL(env.ISSUER)

// The browser: a cookie jar per origin and manual redirects.
const jar = new Map()
function cookieHeader(url) {
  const cookies = jar.get(new URL(url).host) || new Map()
  return [...cookies].map(([k, v]) => `${k}=${v}`).join('; ')
}
function keepCookies(url, response) {
  const host = new URL(url).host
  const cookies = jar.get(host) || new Map()
  for (const line of response.headers.getSetCookie()) {
    const [pair] = line.split(';')
    const at = pair.indexOf('=')
    cookies.set(pair.slice(0, at).trim(), pair.slice(at + 1).trim())
  }
  jar.set(host, cookies)
}
async function browse(url, init = {}) {
  const response = await fetch(url, {
    ...init, redirect: 'manual', headers: { ...(init.headers || {}), cookie: cookieHeader(url) },
  })
  keepCookies(url, response)
  return response
}
function loginForm(html) {
  const form = html.match(/<form[^>]*id="password"[^>]*>([\s\S]*?)<\/form>/) ||
    html.match(/<form[^>]*class="choices"[^>]*>([\s\S]*?)<\/form>/)
  if (!form) throw new Error('no sign-in form on the page')
  const action = (form[0].match(/action="([^"]*)"/) || [])[1] || ''
  const fields = new URLSearchParams()
  for (const input of form[1].matchAll(/<input[^>]*type="hidden"[^>]*>/g)) {
    const name = (input[0].match(/name="([^"]*)"/) || [])[1]
    const value = (input[0].match(/value="([^"]*)"/) || [])[1] || ''
    if (name) fields.set(name, value.replaceAll('&amp;', '&'))
  }
  return { action, fields }
}
async function followToRedirectUri(start) {
  let url = start
  let response = await browse(url)
  for (let step = 0; step < 10; step++) {
    if (response.status >= 300 && response.status < 400) {
      url = new URL(response.headers.get('location'), url).href
      if (url.startsWith(env.REDIRECT_URI)) return new URL(url)
      response = await browse(url)
      continue
    }
    if (response.status !== 200) throw new Error(`HTTP ${response.status} at ${url}`)
    const html = await response.text()
    const { action, fields } = loginForm(html)
    if (html.includes('name="decision"')) {
      fields.set('decision', 'allow') // the consent page (prompt=consent)
    } else {
      fields.set('username', env.USERNAME)
      fields.set('password', env.PASSWORD)
    }
    url = new URL(action || url, url).href
    response = await browse(url, {
      method: 'POST', body: fields,
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    })
  }
  throw new Error('the provider did not send the browser back to the app')
}

// AUTH_METHOD: client_secret_basic (default), client_secret_post or none (a public client).
const authMethod = env.AUTH_METHOD || 'client_secret_basic'
const authentication = {
  client_secret_basic: () => client.ClientSecretBasic(env.CLIENT_SECRET),
  client_secret_post: () => client.ClientSecretPost(env.CLIENT_SECRET),
  none: () => client.None(),
}[authMethod]()
const config = await client.discovery(
  issuer, env.CLIENT_ID, { id_token_signed_response_alg: env.ID_TOKEN_ALG || 'RS256' },
  authentication, { execute: [client.allowInsecureRequests] },
)
// Verify the ID token's JWS signature against the JWKS as well (not only TLS trust).
client.enableNonRepudiationChecks(config)

const codeVerifier = client.randomPKCECodeVerifier()
const state = client.randomState()
const nonce = client.randomNonce()
const authorizationUrl = client.buildAuthorizationUrl(config, {
  redirect_uri: env.REDIRECT_URI,
  scope: 'openid profile email roles offline_access',
  code_challenge: await client.calculatePKCECodeChallenge(codeVerifier),
  code_challenge_method: 'S256',
  state,
  nonce,
  prompt: 'consent',
})
const callback = await followToRedirectUri(authorizationUrl.href)
const tokens = await client.authorizationCodeGrant(config, callback, {
  pkceCodeVerifier: codeVerifier, expectedState: state, expectedNonce: nonce,
  idTokenExpected: true,
})
const idClaims = tokens.claims()
const userinfo = await client.fetchUserInfo(config, tokens.access_token, idClaims.sub)

// The access token as a resource server sees it (RFC 9068), validated with oauth4webapi.
const as = config.serverMetadata()
const apiRequest = new Request('http://api.example/', {
  headers: { authorization: `Bearer ${tokens.access_token}` },
})
const accessClaims = await oauth.validateJwtAccessToken(as, apiRequest, env.CLIENT_ID,
  { [oauth.allowInsecureRequests]: true })

const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token)
// Introspection is for confidential clients only; a public one checks userinfo instead.
const confidential = authMethod !== 'none'
async function active(token) {
  if (confidential) return (await client.tokenIntrospection(config, token)).active
  try {
    await client.fetchUserInfo(config, token, client.skipSubjectCheck)
    return true
  } catch (error) {
    return false
  }
}
const activeBefore = await active(refreshed.access_token)
await client.tokenRevocation(config, refreshed.access_token)
const activeAfter = await active(refreshed.access_token)
await client.tokenRevocation(config, refreshed.refresh_token)
let refreshAfterRevocation = 'accepted'
try {
  await client.refreshTokenGrant(config, refreshed.refresh_token)
} catch (error) {
  refreshAfterRevocation = error.error || error.code || String(error)
}

const logoutUrl = client.buildEndSessionUrl(config, {
  id_token_hint: tokens.id_token,
  post_logout_redirect_uri: env.POST_LOGOUT_REDIRECT_URI,
  state: 'bye-state',
})
const logout = await browse(logoutUrl.href)

console.log(JSON.stringify({
  id_token_alg: JSON.parse(Buffer.from(tokens.id_token.split('.')[0], 'base64url')).alg,
  iss_in_callback: callback.searchParams.get('iss'),
  id_token: idClaims,
  userinfo,
  access_token: accessClaims,
  refresh_rotated: refreshed.refresh_token !== tokens.refresh_token,
  refreshed_id_token_sub: refreshed.claims()?.sub ?? null,
  introspection_active_before: activeBefore,
  introspection_active_after: activeAfter,
  refresh_after_revocation: refreshAfterRevocation,
  logout_status: logout.status,
  logout_location: logout.headers.get('location'),
}))
