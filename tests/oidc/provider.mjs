// A real, certified OpenID Provider (npm `oidc-provider`) for the suites, on loopback.
// Usage: node provider.mjs PORT RUNTIME_CALLBACK_URI CLIENT_SECRET [ACCOUNTS_FILE]
// Users: alice (groups eng, admins) and bob (group triage), or those of ACCOUNTS_FILE
// (JSON {"name": ["group", ...]}), read again at every sign-in and refresh so that a test can
// change a user's groups or remove the user; any password (development interactions).
// Issues refresh tokens to the runtime. Prints "listening" when ready.
import { readFileSync } from 'node:fs';
import Provider from 'oidc-provider';

const [port, redirectUri, clientSecret, accountsFile] = process.argv.slice(2);
const builtIn = { alice: ['eng', 'admins'], bob: ['triage'] };
const accounts = () => (accountsFile ? JSON.parse(readFileSync(accountsFile, 'utf8')) : builtIn);

const provider = new Provider(`http://127.0.0.1:${port}`, {
  clients: [{
    client_id: 'mcp-edge-runtime',
    client_secret: clientSecret,
    redirect_uris: [redirectUri],
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  pkce: { required: () => true },
  claims: { openid: ['sub'], profile: ['preferred_username', 'groups'] },
  conformIdTokenClaims: false,
  issueRefreshToken: async (ctx, client) => client.grantTypeAllowed('refresh_token'),
  findAccount: async (ctx, sub) => {
    const groups = accounts()[sub];
    return groups ? {
      accountId: sub,
      claims: async () => ({ sub, preferred_username: sub, groups }),
    } : undefined;
  },
  features: { devInteractions: { enabled: true } },
  cookies: { keys: ['suite-cookie-key'] },
});

provider.listen(Number(port), '127.0.0.1', () => console.log('listening'));
