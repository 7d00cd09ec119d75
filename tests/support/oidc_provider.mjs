// A real OpenID provider for keygate's console single sign-on tests (keygate
// is the relying party): panva's oidc-provider, run as a process.
//
//   KEYGATE_TEST_OIDC_PROVIDER=.../node_modules/oidc-provider \
//     node tests/support/oidc_provider.mjs '{"clients": [...], "accounts": {...}}'
//
// The JSON (argv[2], else env KEYGATE_TEST_OIDC_CONFIG):
//   clients   oidc-provider client metadata, e.g. {"client_id": "keygate",
//             "client_secret": "...", "redirect_uris": ["http://127.0.0.1:PORT/cb"]}
//             (token_endpoint_auth_method defaults to client_secret_basic; a
//             client registered with client_secret_post must use that one)
//   accounts  login name -> claims, e.g. {"alice": {"email": "alice@example.com",
//             "email_verified": true, "name": "Alice"}}; the login is the `sub`
//
// Listens on 127.0.0.1 on a free port and prints one line on stdout,
// "listening http://127.0.0.1:PORT" (the issuer); everything else goes to
// stderr. Authorization code flow only, PKCE (S256) required of every client,
// ID tokens RS256 with email, email_verified and name in the ID token itself.
// The sign-in page is a plain form (one `login` field, no password, no
// script); consent is granted automatically. It exits when stdin closes (so
// spawn it with a pipe for stdin and keep it open), on SIGTERM or SIGINT. A
// line "rotate" on stdin starts a new provider with a new signing key on the
// same issuer, and prints "rotated".

import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

// oidc-provider prints notices with console.info: stdout is for the one line.
console.log = console.info = console.error;

const exit = () => process.exit(0);
process.stdin.on('end', exit).on('close', exit).on('error', exit).resume();
process.on('SIGTERM', exit).on('SIGINT', exit);

const dir = process.env.KEYGATE_TEST_OIDC_PROVIDER;
if (!dir) throw new Error('set KEYGATE_TEST_OIDC_PROVIDER to the oidc-provider package directory');
const config = JSON.parse(process.argv[2] ?? process.env.KEYGATE_TEST_OIDC_CONFIG ?? '{}');
const accounts = config.accounts ?? {};

// The package's ESM entry, from its package.json (exports['.'] or main).
const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
const exported = pkg.exports?.['.'];
const entry = (typeof exported === 'string' ? exported : exported?.import ?? exported?.default) ?? pkg.main;
const { default: Provider } = await import(pathToFileURL(join(dir, entry)).href);

// Listen first: the issuer holds the port.
let handler = (req, res) => { res.statusCode = 503; res.end(); };
const server = createServer((req, res) => handler(req, res));
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const issuer = `http://127.0.0.1:${server.address().port}`;

const escape = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const page = (title, body) => `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>${title}: test OpenID provider</title></head>
<body><h1>${title}</h1>
${body}
</body></html>
`;
const loginPage = (uid, error) => page('Sign in', `${error ? `<p role="alert">${escape(error)}</p>\n` : ''}\
<form method="post" action="${issuer}/interaction/${uid}">
<label>Login <input type="text" name="login" required autofocus></label>
<button type="submit">Sign in</button>
</form>
<form method="post" action="${issuer}/interaction/${uid}/abort"><button type="submit">Cancel</button></form>`);

// A provider with a fresh signing key; "rotate" on stdin replaces it with
// another (a new key, as a provider that rotated its keys; state in memory
// starts over), so keygate's cache of the provider's keys can be tested.
function makeProvider() {
  const signingKey = { ...generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' }), use: 'sig', alg: 'RS256' };

  const made = new Provider(issuer, {
    clients: (config.clients ?? []).map((client) => ({
      grant_types: ['authorization_code'], response_types: ['code'], ...client,
    })),
    jwks: { keys: [signingKey] },
    // Cookies: signed; never `secure` on a plain http issuer (oidc-provider
    // sets `secure` only for https requests), SameSite=Lax.
    cookies: { keys: [randomBytes(32).toString('base64url')] },
    // xms_edov: Entra ID's word for a verified email (it sends no email_verified).
    claims: { openid: ['sub'], email: ['email', 'email_verified', 'xms_edov'], profile: ['name'] },
    // Scope-requested claims in the ID token too, not only at userinfo.
    conformIdTokenClaims: false,
    responseTypes: ['code'],
    // Lifetimes in seconds (given, so oidc-provider prints no notice of defaults).
    ttl: { AuthorizationCode: 60, AccessToken: 3600, IdToken: 3600, Interaction: 3600, Session: 86400, Grant: 86400 },
    pkce: { required: () => true }, // the default requires it of public clients only
    features: { devInteractions: { enabled: false } },
    interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
    findAccount: (ctx, id) => (Object.hasOwn(accounts, id)
      ? { accountId: id, claims: () => ({ ...accounts[id], sub: id }) }
      : undefined),
    // Errors shown rather than redirected (unknown client, bad redirect_uri):
    // a plain page, with no external stylesheet unlike the default one.
    renderError(ctx, out) {
      ctx.type = 'html';
      ctx.body = page('Error', Object.entries(out).map(([k, v]) => `<p>${escape(k)}: ${escape(v)}</p>`).join('\n'));
    },
    // Auto-consent: every sign-in gets a grant of what it asks for.
    async loadExistingGrant(ctx) {
      const grant = new ctx.oidc.provider.Grant({
        clientId: ctx.oidc.client.clientId, accountId: ctx.oidc.session.accountId,
      });
      grant.addOIDCScope([...ctx.oidc.requestParamOIDCScopes].join(' '));
      grant.addOIDCClaims([...ctx.oidc.requestParamClaims]);
      await grant.save();
      return grant;
    },
  });
  for (const event of ['server_error', 'authorization.error', 'grant.error', 'userinfo.error']) {
    made.on(event, (ctx, err) => console.error(`oidc-provider ${event}: ${err.name}: ${err.message}${err.error_detail ? ` (${err.error_detail})` : ''}`));
  }
  return made;
}
let provider = makeProvider();

const html = (res, status, body) => {
  res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
  res.end(body);
};

// GET /interaction/:uid: the form; POST it: sign in as `login` (a key of
// `accounts`); POST /interaction/:uid/abort: back to the client with access_denied.
async function interaction(req, res, path) {
  const [, , uid, abort] = path.split('/');
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid) return html(res, 400, 'unexpected interaction\n');
  // Native clients (keygate's test client is one, for its loopback redirect
  // URI on any port, RFC 8252 §7.3) are always asked for consent after the
  // login: granted here, without a page, as for every other client.
  if (details.prompt.name === 'consent' && !abort) {
    const { missingOIDCScope, missingOIDCClaims } = details.prompt.details;
    const grant = details.grantId
      ? await provider.Grant.find(details.grantId)
      : new provider.Grant({ accountId: details.session.accountId, clientId: details.params.client_id });
    if (missingOIDCScope) grant.addOIDCScope(missingOIDCScope.join(' '));
    if (missingOIDCClaims) grant.addOIDCClaims(missingOIDCClaims);
    const grantId = await grant.save();
    return provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
  }
  if (details.prompt.name !== 'login') return html(res, 400, `unexpected interaction: ${details.prompt.name}\n`);
  if (req.method === 'GET' && !abort) return html(res, 200, loginPage(uid));
  if (req.method !== 'POST') return html(res, 405, 'method not allowed\n');
  if (abort) {
    return provider.interactionFinished(req, res, { error: 'access_denied', error_description: 'End-User aborted interaction' }, { mergeWithLastSubmission: false });
  }
  let body = '';
  for await (const chunk of req) body += chunk;
  const login = new URLSearchParams(body).get('login') ?? '';
  if (!Object.hasOwn(accounts, login)) return html(res, 200, loginPage(uid, `unknown login: ${login}`));
  return provider.interactionFinished(req, res, { login: { accountId: login } }, { mergeWithLastSubmission: false });
}

let callback = provider.callback();
process.stdin.on('data', (chunk) => {
  if (!chunk.toString().includes('rotate')) return;
  provider = makeProvider();
  callback = provider.callback();
  process.stdout.write('rotated\n');
});
handler = (req, res) => {
  const path = new URL(req.url, issuer).pathname;
  if (!path.startsWith('/interaction/')) return callback(req, res);
  return interaction(req, res, path).catch((err) => {
    console.error(`interaction: ${err.name}: ${err.message}`);
    if (!res.headersSent) html(res, 400, `${escape(err.message)}\n`);
    else res.end();
  });
};
process.stdout.write(`listening ${issuer}\n`);
