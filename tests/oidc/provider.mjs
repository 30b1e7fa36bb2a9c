// A real, certified OpenID Provider (npm `oidc-provider`) for the suites, on loopback.
// Usage: node provider.mjs PORT RUNTIME_CALLBACK_URI CLIENT_SECRET
// Users: alice (groups eng, admins) and bob (group triage); any password (development
// interactions). Prints "listening" when ready.
import Provider from 'oidc-provider';

const [port, redirectUri, clientSecret] = process.argv.slice(2);
const accounts = { alice: ['eng', 'admins'], bob: ['triage'] };

const provider = new Provider(`http://127.0.0.1:${port}`, {
  clients: [{
    client_id: 'mcp-edge-runtime',
    client_secret: clientSecret,
    redirect_uris: [redirectUri],
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  pkce: { required: () => true },
  claims: { openid: ['sub'], profile: ['preferred_username', 'groups'] },
  conformIdTokenClaims: false,
  findAccount: async (ctx, sub) => (accounts[sub] ? {
    accountId: sub,
    claims: async () => ({ sub, preferred_username: sub, groups: accounts[sub] }),
  } : undefined),
  features: { devInteractions: { enabled: true } },
  cookies: { keys: ['suite-cookie-key'] },
});

provider.listen(Number(port), '127.0.0.1', () => console.log('listening'));
