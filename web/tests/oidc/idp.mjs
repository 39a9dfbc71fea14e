// A real OpenID Connect provider for berth's tests: panva's oidc-provider (OpenID-certified)
// with an in-memory store, one confidential client for berth, and four users:
//   alice  groups [berth-admins]       bob    groups [berth-deployers]
//   carol  no groups                   "bad name" (a username berth cannot use)
// Every password is "wonderland". The login page is ours (plain HTML, no external fonts),
// and consent is implied for the berth client, as for a first-party app.
//
// For refusal tests only, POST /__test/tamper {"claims": {...}, "foreign_key": bool} makes
// the NEXT token response carry an ID token with those claims changed (re-signed with the
// provider's own key, or with a key the provider never published when foreign_key is true).
//
// Environment: IDP_PORT (0 = any), IDP_REDIRECT_URIS (comma-separated), IDP_CLIENT_SECRET.
// Prints one JSON line {"issuer": ...} on stdout once it listens.
import http from 'node:http';
import crypto from 'node:crypto';
import Provider from 'oidc-provider';

const port = Number(process.env.IDP_PORT ?? 0);
const redirectUris = (process.env.IDP_REDIRECT_URIS ?? 'http://127.0.0.1/api/auth/oidc/callback').split(',');
const clientSecret = process.env.IDP_CLIENT_SECRET ?? 'berth-test-secret';
const PASSWORD = 'wonderland';

const USERS = {
  alice: { email: 'alice@example.test', groups: ['berth-admins'] },
  bob: { email: 'bob@example.test', groups: ['berth-deployers'] },
  carol: { email: 'carol@example.test' },
  'bad name': { email: 'bad@example.test' },
};

const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const foreign = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
const kid = 'test-key-1';
const jwk = { ...privateKey.export({ format: 'jwk' }), kid, use: 'sig', alg: 'RS256' };

let tamper = null;

const b64 = (buf) => Buffer.from(buf).toString('base64url');
function resign(idToken, change) {
  const [h, p] = idToken.split('.');
  const header = JSON.parse(Buffer.from(h, 'base64url'));
  const claims = { ...JSON.parse(Buffer.from(p, 'base64url')), ...change.claims };
  const head = b64(JSON.stringify({ ...header, alg: 'RS256', kid }));
  const body = b64(JSON.stringify(claims));
  const key = change.foreign_key ? foreign : privateKey;
  const sig = crypto.sign('RSA-SHA256', Buffer.from(`${head}.${body}`), key);
  return `${head}.${body}.${b64(sig)}`;
}

async function start() {
  const server = http.createServer();
  await new Promise((r) => server.listen(port, '127.0.0.1', r));
  const issuer = `http://127.0.0.1:${server.address().port}`;

  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: 'berth',
        client_secret: clientSecret,
        redirect_uris: redirectUris,
        grant_types: ['authorization_code'],
        response_types: ['code'],
        token_endpoint_auth_method: 'client_secret_basic',
      },
    ],
    jwks: { keys: [jwk] },
    cookies: { keys: [crypto.randomBytes(16).toString('hex')] },
    claims: {
      openid: ['sub'],
      profile: ['preferred_username', 'name'],
      email: ['email', 'email_verified'],
      groups: ['groups'],
    },
    scopes: ['openid', 'profile', 'email', 'groups'],
    conformIdTokenClaims: false,
    pkce: { required: () => true },
    features: { devInteractions: { enabled: false } },
    interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
    async findAccount(ctx, id) {
      const u = USERS[id];
      if (!u) return undefined;
      return {
        accountId: id,
        async claims() {
          const c = { sub: id, preferred_username: id, name: id, email: u.email, email_verified: true };
          if (u.groups) c.groups = u.groups;
          return c;
        },
      };
    },
    async loadExistingGrant(ctx) {
      const grantId = ctx.oidc.result?.consent?.grantId || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
      if (grantId) return ctx.oidc.provider.Grant.find(grantId);
      const grant = new ctx.oidc.provider.Grant({
        clientId: ctx.oidc.client.clientId,
        accountId: ctx.oidc.session.accountId,
      });
      grant.addOIDCScope('openid profile email groups');
      await grant.save();
      return grant;
    },
    renderError(ctx, out) {
      ctx.type = 'html';
      ctx.body = `<!doctype html><title>Error</title><h1>${out.error}</h1><p>${escape(out.error_description ?? '')}</p>`;
    },
  });
  provider.proxy = false;

  // Token responses pass through here so a test can ask for one tampered ID token.
  provider.use(async (ctx, next) => {
    await next();
    if (ctx.path === '/token' && tamper && ctx.body && typeof ctx.body === 'object' && ctx.body.id_token) {
      ctx.body = { ...ctx.body, id_token: resign(ctx.body.id_token, tamper) };
      tamper = null;
    }
  });

  const callback = provider.callback();
  server.on('request', async (req, res) => {
    try {
      const url = new URL(req.url, issuer);
      if (url.pathname === '/__test/tamper' && req.method === 'POST') {
        tamper = JSON.parse(await body(req));
        res.writeHead(204).end();
        return;
      }
      const m = url.pathname.match(/^\/interaction\/([\w-]+)$/);
      if (m) return await interaction(provider, req, res, m[1]);
      callback(req, res);
    } catch (e) {
      res.writeHead(500, { 'content-type': 'text/plain' }).end(String(e?.stack ?? e));
    }
  });

  process.stdout.write(JSON.stringify({ issuer }) + '\n');
  const stop = () => server.close(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

function escape(s) {
  return String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function body(req) {
  return new Promise((resolve, reject) => {
    let data = '';
    req.setEncoding('utf8');
    req.on('data', (c) => {
      data += c;
      if (data.length > 64 * 1024) reject(new Error('body too large'));
    });
    req.on('end', () => resolve(data));
    req.on('error', reject);
  });
}

function page(title, inner) {
  return `<!doctype html><html><head><meta charset="utf-8"><title>${title}</title>
<style>body{font-family:sans-serif;max-width:20rem;margin:3rem auto}input,button{display:block;width:100%;margin:.4rem 0;padding:.5rem}</style>
</head><body><h1>Test IdP</h1>${inner}</body></html>`;
}

async function interaction(provider, req, res, uid) {
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid) throw new Error('interaction mismatch');
  if (req.method === 'GET') {
    const html = page('Sign in', `
<form method="post" action="/interaction/${uid}">
  <label>Username <input name="login" autocomplete="off" autofocus></label>
  <label>Password <input name="password" type="password"></label>
  <button type="submit">Sign in</button>
</form>`);
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' }).end(html);
    return;
  }
  const form = new URLSearchParams(await body(req));
  const login = form.get('login') ?? '';
  if (details.prompt.name === 'login') {
    if (!USERS[login] || form.get('password') !== PASSWORD) {
      const html = page('Sign in', `<p role="alert">Wrong username or password.</p>
<form method="post" action="/interaction/${uid}">
  <label>Username <input name="login" value="${escape(login)}"></label>
  <label>Password <input name="password" type="password"></label>
  <button type="submit">Sign in</button>
</form>`);
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(html);
      return;
    }
    await provider.interactionFinished(req, res, { login: { accountId: login } }, { mergeWithLastSubmission: false });
    return;
  }
  // Consent (not expected: the grant is implied), accepted as asked.
  const grant = new provider.Grant({ accountId: details.session.accountId, clientId: details.params.client_id });
  if (details.prompt.details.missingOIDCScope) grant.addOIDCScope(details.prompt.details.missingOIDCScope.join(' '));
  if (details.prompt.details.missingOIDCClaims) grant.addOIDCClaims(details.prompt.details.missingOIDCClaims);
  const grantId = await grant.save();
  await provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
}

start().catch((e) => {
  console.error(e);
  process.exit(1);
});
