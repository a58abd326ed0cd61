// The reference provider for bench/run.py: panva's oidc-provider, configured like ours.
//
// One confidential client (client_secret_basic, PKCE S256 required, code + refresh +
// client_credentials), refresh tokens rotated on every use, the in-memory adapter, a single
// node process. The login page is replaced by a route that signs the bench user in at once
// (the benchmark measures a user who is already signed in), and a first-party client gets
// its grant without a consent page, as ours does; each authorization gets a grant of its own,
// as each of our codes starts a token family of its own. Tokens are not bound to the
// session's one current grant (expiresWithSession), or the next authorization of the same
// session would invalidate them; and a grant shared by every flow would make the in-memory
// adapter walk an ever-growing member list on each token it saves.
//
// With ADAPTER=redis (and REDIS_URL) it keeps everything in Redis through redis-adapter.mjs,
// the durable reference the issue compares the code flow and refresh against.
//
// Environment: PORT, CLIENT_ID, CLIENT_SECRET, REDIRECT_URI, ADAPTER, REDIS_URL.
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import http from 'node:http';

import Provider from 'oidc-provider';

const adapter = process.env.ADAPTER === 'redis'
  ? (await import('./redis-adapter.mjs')).default : undefined;

const port = Number(process.env.PORT);
const issuer = `http://127.0.0.1:${port}`;
const accountId = 'bench-user';

function signingKey(type, options, alg) {
  const { privateKey } = generateKeyPairSync(type, options);
  return { ...privateKey.export({ format: 'jwk' }), alg, use: 'sig' };
}

const provider = new Provider(issuer, {
  ...(adapter ? { adapter } : {}),
  clients: [{
    client_id: process.env.CLIENT_ID,
    client_secret: process.env.CLIENT_SECRET,
    redirect_uris: [process.env.REDIRECT_URI],
    grant_types: ['authorization_code', 'refresh_token', 'client_credentials'],
    response_types: ['code'],
    scope: 'openid profile email offline_access api',
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  jwks: {
    keys: [
      signingKey('rsa', { modulusLength: 2048 }, 'RS256'),
      signingKey('ec', { namedCurve: 'P-256' }, 'ES256'),
    ],
  },
  cookies: { keys: [randomBytes(32).toString('hex')] },
  scopes: ['openid', 'offline_access', 'profile', 'email', 'api'],
  claims: { email: ['email', 'email_verified'], profile: ['name'] },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    revocation: { enabled: true },
  },
  pkce: { required: () => true },
  ttl: {
    AccessToken: 600, AuthorizationCode: 60, ClientCredentials: 600, IdToken: 600,
    RefreshToken: 24 * 3600, Interaction: 600, Session: 12 * 3600, Grant: 24 * 3600,
  },
  rotateRefreshToken: () => true,
  expiresWithSession: async () => false,
  issueRefreshToken: async (ctx, client) => client.grantTypeAllowed('refresh_token'),
  async loadExistingGrant(ctx) {
    const grant = new ctx.oidc.provider.Grant({
      clientId: ctx.oidc.client.clientId,
      accountId: ctx.oidc.session.accountId,
    });
    grant.addOIDCScope('openid profile email offline_access');
    grant.addOIDCClaims(['email', 'email_verified', 'name']);
    await grant.save();
    return grant;
  },
  async findAccount(ctx, sub) {
    return {
      accountId: sub,
      async claims() {
        return { sub, name: 'Bench User', email: 'bench-user@example.com', email_verified: false };
      },
    };
  },
});
provider.on('server_error', (ctx, error) => { console.error(error); });

const handler = provider.callback();
const server = http.createServer(async (req, res) => {
  if (req.url.startsWith('/interaction/')) {
    try {
      await provider.interactionFinished(req, res, { login: { accountId } },
        { mergeWithLastSubmission: false });
    } catch (error) {
      res.statusCode = 400;
      res.end(String(error));
    }
    return;
  }
  handler(req, res);
});
server.keepAliveTimeout = 65000;
server.listen(port, '127.0.0.1', () => { console.log(`reference listening on ${issuer}`); });
