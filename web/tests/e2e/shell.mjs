// Browser test of the embedded UI: starts the real berth binary (BERTH_BIN) against the test
// engine (BERTH_TEST_DOCKER_HOST), drives Debian's Chromium with playwright-core, and saves a
// screenshot of each screen in light and dark into SCREENSHOT_DIR. Prints "N passed, M failed".
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const BIN = process.env.BERTH_BIN ?? fileURLToPath(new URL('../../../target/debug/berth', import.meta.url));
const CHROMIUM = process.env.BERTH_TEST_CHROMIUM ?? '/usr/bin/chromium';
const DOCKER_HOST = process.env.BERTH_TEST_DOCKER_HOST;
const SHOTS = process.env.SCREENSHOT_DIR ? resolve(process.env.SCREENSHOT_DIR) : fileURLToPath(new URL('../../../target/screenshots', import.meta.url));
const PASSWORD = 'browser-test-password';
const REGISTRY = process.env.BERTH_TEST_REGISTRY ?? '127.0.0.1:15000';
const NPM_BIN = process.env.NPM_DOUBLE_BIN ?? fileURLToPath(new URL('../../../target/debug/berth-npm-double', import.meta.url));
const NGINX_PREFIX = process.env.BERTH_TEST_NGINX_PREFIX;
const NGINX_PORT = process.env.BERTH_TEST_NGINX_PORT;
// Instances are served at <subdomain>.e2e.berth.test: Chromium resolves every such name to
// the test nginx, where the NPM double wrote the routes berth asked for.
const DOMAIN = 'e2e.berth.test';
const NPM_EMAIL = 'berth@e2e.test';
const NPM_PASSWORD = 'npm-double-password';

if (!DOCKER_HOST || !NGINX_PREFIX || !NGINX_PORT) {
  console.error('BERTH_TEST_DOCKER_HOST / BERTH_TEST_NGINX_* are not set: run scripts/testenv up first (scripts/test does)');
  process.exit(1);
}

/** Runs the Nginx Proxy Manager double against the test nginx; resolves to its URL. */
function startNpm() {
  const hosts = join(NGINX_PREFIX, 'proxy_host', `browser-${process.pid}`);
  const child = spawn(NPM_BIN, [], {
    env: {
      PATH: process.env.PATH,
      NPM_DOUBLE_LISTEN: '127.0.0.1:0',
      NPM_DOUBLE_NGINX_PREFIX: NGINX_PREFIX,
      NPM_DOUBLE_NGINX_CONF: process.env.BERTH_TEST_NGINX_CONF,
      NPM_DOUBLE_HOSTS_DIR: hosts,
      NPM_DOUBLE_LISTEN_ROUTES: `127.0.0.1:${NGINX_PORT}`,
      INITIAL_ADMIN_EMAIL: NPM_EMAIL,
      INITIAL_ADMIN_PASSWORD: NPM_PASSWORD,
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return new Promise((ok, fail) => {
    const timer = setTimeout(() => fail(new Error('the NPM double did not start')), 15000);
    let buf = '';
    child.stdout.on('data', (chunk) => {
      buf += chunk;
      const m = /listening on (\S+)/.exec(buf);
      if (m) {
        clearTimeout(timer);
        ok({ url: `http://${m[1]}`, child, hosts });
      }
    });
    child.on('exit', (code) => fail(new Error(`the NPM double exited with ${code}`)));
  });
}

function startBerth() {
  const data = mkdtempSync(join(tmpdir(), 'berth-browser-'));
  const child = spawn(BIN, ['serve'], {
    cwd: data,
    env: {
      PATH: process.env.PATH,
      BERTH_DATA_DIR: data,
      BERTH_LISTEN: '127.0.0.1:0',
      BERTH_LOG_FORMAT: 'json',
      BERTH_ADMIN_PASSWORD: PASSWORD,
      DOCKER_HOST,
    },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const log = [];
  return new Promise((ok, fail) => {
    const timer = setTimeout(() => fail(new Error(`berth did not start:\n${log.join('\n')}`)), 30000);
    let buf = '';
    child.stderr.on('data', (chunk) => {
      buf += chunk;
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        log.push(line);
        try {
          const v = JSON.parse(line);
          if (v.listen) {
            clearTimeout(timer);
            ok({ url: `http://${v.listen}`, child, data, log });
          }
        } catch {
          // not JSON (the first-start banner)
        }
      }
    });
    child.on('exit', (code) => fail(new Error(`berth exited with ${code}:\n${log.join('\n')}`)));
  });
}

const IDP_SECRET = 'browser-test-idp-secret';
let idp = null;

/** Starts the test OpenID provider (web/tests/oidc/idp.mjs) for berth's callback URL. */
function startIdp(redirect) {
  const child = spawn(process.execPath, [fileURLToPath(new URL('../oidc/idp.mjs', import.meta.url))], {
    env: { PATH: process.env.PATH, IDP_PORT: '0', IDP_REDIRECT_URIS: redirect, IDP_CLIENT_SECRET: IDP_SECRET },
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  return new Promise((ok, fail) => {
    const timer = setTimeout(() => fail(new Error('the test OpenID provider did not start')), 15000);
    let buf = '';
    child.stdout.on('data', (chunk) => {
      buf += chunk;
      const i = buf.indexOf('\n');
      if (i >= 0) {
        clearTimeout(timer);
        ok({ issuer: JSON.parse(buf.slice(0, i)).issuer, child });
      }
    });
    child.on('exit', (code) => fail(new Error(`the test OpenID provider exited with ${code}`)));
  });
}

const results = [];
async function step(name, fn) {
  const t0 = Date.now();
  try {
    await fn();
    results.push({ name, ok: true });
    console.log(`ok   ${name} (${Date.now() - t0} ms)`);
  } catch (e) {
    results.push({ name, ok: false });
    console.log(`FAIL ${name}: ${e.message}`);
  }
}

function assert(cond, msg) {
  if (!cond) throw new Error(msg);
}

const berth = await startBerth();
const npm = await startNpm();
rmSync(SHOTS, { recursive: true, force: true });
mkdirSync(SHOTS, { recursive: true });
const browser = await chromium.launch({
  executablePath: CHROMIUM,
  args: [`--host-resolver-rules=MAP *.${DOMAIN} 127.0.0.1:${NGINX_PORT}`, '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const consoleErrors = [];
try {
  for (const scheme of ['light', 'dark']) {
    const context = await browser.newContext({ colorScheme: scheme, viewport: { width: 1280, height: 800 } });
    const page = await context.newPage();
    page.on('console', (m) => m.type() === 'error' && consoleErrors.push(m.text()));
    page.on('pageerror', (e) => consoleErrors.push(e.message));
    const shot = (name) => page.screenshot({ path: join(SHOTS, `${name}-${scheme}.png`), fullPage: true });

    await step(`[${scheme}] a deep link shows the login page`, async () => {
      await page.goto(`${berth.url}/projects`);
      await page.getByRole('heading', { name: 'Sign in' }).waitFor({ timeout: 10000 });
      assert((await page.getAttribute('html', 'data-theme')) === scheme, 'theme does not follow the system');
      await page.getByTestId('login-engine').getByText(/Engine \d/).waitFor({ timeout: 10000 });
      await shot('login');
    });

    await step(`[${scheme}] a wrong password shows the server's message`, async () => {
      await page.getByLabel('Username').fill('admin');
      await page.getByLabel('Password').fill('not the password');
      await page.getByRole('button', { name: 'Sign in' }).click();
      const alert = page.getByRole('alert');
      await alert.waitFor();
      assert((await alert.textContent()).includes('invalid username or password'), await alert.textContent());
      await shot('login-error');
    });

    await step(`[${scheme}] logging in shows the shell with the engine status`, async () => {
      await page.getByLabel('Password').fill(PASSWORD);
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.getByRole('navigation', { name: 'Main' }).waitFor();
      for (const link of ['Dashboard', 'Projects', 'Deploys', 'Settings']) {
        await page.getByRole('link', { name: link, exact: true }).waitFor();
      }
      assert((await page.getByTestId('who').textContent()).includes('admin'), 'who is logged in is not shown');
      await page.getByTestId('engine-status').getByText(/Engine \d+\.\d+/).waitFor({ timeout: 10000 });
      // The deep link survived the login.
      await page.getByRole('heading', { name: 'Projects', level: 1 }).waitFor();
      await shot('projects');
    });

    await step(`[${scheme}] navigation and reload keep the page`, async () => {
      await page.getByRole('link', { name: 'Dashboard', exact: true }).click();
      await page.getByRole('heading', { name: 'Dashboard', level: 1 }).waitFor();
      assert(new URL(page.url()).pathname === '/', page.url());
      await page.getByTestId('project-count').getByText(/^\d+$/).waitFor();
      await page.getByRole('heading', { name: 'Quick deploy' }).waitFor();
      await shot('dashboard');
      await page.getByRole('link', { name: 'Settings', exact: true }).click();
      await page.getByRole('heading', { name: 'Global' }).waitFor();
      await page.reload();
      await page.getByRole('heading', { name: 'Settings', level: 1 }).waitFor();
      const pattern = page.getByLabel('Subdomain pattern');
      await pattern.waitFor();
      assert((await pattern.inputValue()) === 'stage-{stage}-{project}', await pattern.inputValue());
      await page.getByTestId('registries').getByText(/No registries|Add registry/).first().waitFor();
      await shot('settings');
      await page.getByRole('link', { name: 'Deploys', exact: true }).click();
      // (The light run's deploys are there when the dark one comes.)
      await page.getByText('No deploys yet').or(page.getByTestId('deploys')).waitFor();
      await shot('deploys');
    });

    if (scheme === 'light') {
      await step('[light] NPM and the domain are set in Settings, and the connection tested', async () => {
        await page.getByRole('link', { name: 'Settings', exact: true }).click();
        const global = page.getByTestId('global-form');
        await global.getByLabel(/^Domain/).fill(DOMAIN);
        await global.getByLabel(/^Poll registries every/).fill('0');
        await global.getByLabel(/^Drain/).fill('1');
        await global.getByLabel(/^Watch after going live/).fill('2');
        await global.getByRole('button', { name: 'Save settings' }).click();
        await global.getByRole('status').getByText('Saved.').waitFor();
        // A bad value is refused with the server's words and nothing changes.
        await global.getByLabel('Docker network').fill('no spaces allowed');
        await global.getByRole('button', { name: 'Save settings' }).click();
        await global.getByRole('alert').waitFor();
        const after = await (await page.request.get(`${berth.url}/api/settings`)).json();
        assert(after.domain === DOMAIN && after.network !== 'no spaces allowed', `settings: ${JSON.stringify(after)}`);
        await page.reload();
        const card = page.getByTestId('npm');
        await card.getByLabel('Admin API URL').fill(npm.url);
        await card.getByLabel('Email').fill(NPM_EMAIL);
        await card.getByLabel(/^Password/).fill(NPM_PASSWORD);
        await card.getByLabel('How NPM reaches containers').selectOption('host_port');
        await card.getByRole('button', { name: 'Save connection' }).click();
        await card.getByRole('status').getByText('Saved.').waitFor();
        await card.getByRole('button', { name: 'Test connection' }).click();
        await card.getByRole('status').getByText(/Connected: Nginx Proxy Manager/).waitFor({ timeout: 15000 });
        const shown = await (await page.request.get(`${berth.url}/api/npm`)).text();
        assert(!shown.includes(NPM_PASSWORD), 'the NPM password came back from the API');
        await shot('settings-npm');
      });

      await step('[light] quick deploy through NPM: live, opened, swapped to v2 and rolled back', async () => {
        const name = 'routed';
        const host = `stage-dev-${name}.${DOMAIN}`;
        await page.getByRole('link', { name: 'Dashboard', exact: true }).click();
        await page.getByLabel('Image to deploy').fill(`${REGISTRY}/berth-test/app:v1`);
        await page.getByRole('button', { name: 'Inspect' }).click();
        const form = page.getByTestId('quick-form');
        await form.getByText('exposes 8080').waitFor({ timeout: 15000 });
        await form.getByLabel('Project name').fill(name);
        await form.getByRole('button', { name: 'Create and deploy' }).click();
        // Follow its progress on the deploy's own page.
        await page.getByRole('link', { name: 'Follow its progress' }).click();
        assert(/\/deploys\/[0-9a-f-]{36}$/.test(page.url()), page.url());
        await page.getByTestId('deploy-state').getByText('succeeded').waitFor({ timeout: 90000 });
        await shot('deploy-progress');
        // The dashboard shows it healthy, live, and links to its URL.
        await page.getByRole('link', { name: 'Dashboard', exact: true }).click();
        const card = page.getByTestId(`overview-${name}-dev`);
        await card.locator('[data-health="healthy"]').waitFor({ timeout: 30000 });
        await shot('dashboard-live');
        const [tab] = await Promise.all([page.context().waitForEvent('page'), card.getByRole('link', { name: host }).click()]);
        await tab.waitForLoadState();
        assert((await tab.textContent('body')).trim() === 'v1', `the URL served: ${await tab.textContent('body')}`);
        // v2 from the project page: the swap shows without a reload, the URL serves v2.
        await page.getByRole('link', { name: 'Projects', exact: true }).click();
        const stage = page.getByTestId(`stage-${name}-dev`);
        await stage.getByRole('button', { name: 'Deploy…' }).click();
        const select = stage.getByRole('combobox', { name: 'Tag to deploy to dev' });
        await select.waitFor({ timeout: 15000 });
        await select.selectOption('v2');
        await stage.getByRole('button', { name: 'Deploy v2' }).click();
        await stage.locator('li', { hasText: 'v2' }).locator('.state.live').waitFor({ timeout: 90000 });
        await stage.locator('li', { hasText: 'v1' }).locator('.state.kept').waitFor({ timeout: 30000 });
        await tab.reload();
        assert((await tab.textContent('body')).trim() === 'v2', `after the swap: ${await tab.textContent('body')}`);
        await shot('project-swapped');
        // One click (and a confirmation) back to v1.
        page.once('dialog', (d) => void d.accept());
        await stage.getByRole('button', { name: 'Roll back to this' }).click();
        await stage.locator('li', { hasText: 'v1' }).locator('.state.live').waitFor({ timeout: 90000 });
        await tab.reload();
        assert((await tab.textContent('body')).trim() === 'v1', `after the rollback: ${await tab.textContent('body')}`);
        await tab.close();
        // Deleting the project (its name typed to confirm) removes its containers and route.
        await page.getByRole('button', { name: `Edit ${name}` }).click();
        page.once('dialog', (d) => void d.accept(name));
        await page.getByTestId('project-editor').getByRole('button', { name: 'Delete project…' }).click();
        await page.getByRole('status').getByText(`Deleted ${name}.`).waitFor({ timeout: 60000 });
        let status = 200;
        for (let i = 0; i < 50 && status === 200; i++) {
          status = (await page.request.get(`http://127.0.0.1:${NGINX_PORT}/version`, { headers: { host } })).status();
          if (status === 200) await page.waitForTimeout(100);
        }
        assert(status !== 200, 'the route still serves 5 s after the delete');
      });
    }

    await step(`[${scheme}] a tag deployed from the project page goes live, with its steps and log`, async () => {
      const name = `ui-${scheme}`;
      // Short drain and watch windows, so the deploy ends while we look.
      const settings = await (await page.request.get(`${berth.url}/api/settings`)).json();
      const put = await page.request.put(`${berth.url}/api/settings`, {
        headers: { origin: berth.url },
        // (Polling off: the registry's newest tags must not deploy behind the test's back.)
        data: { ...settings, drain_secs: 1, watch_secs: 2, poll_interval_secs: 0 },
      });
      assert(put.status() === 200, `settings: ${put.status()} ${await put.text()}`);
      // The project is made in the editor: image, port, health check, a plain and a secret
      // variable, one stage.
      await page.getByRole('link', { name: 'Projects', exact: true }).click();
      await page.getByRole('button', { name: 'New project' }).click();
      const editor = page.getByTestId('project-editor');
      await editor.getByLabel('Name', { exact: true }).first().fill(name);
      await editor.getByLabel(/^Image repository/).fill(`${REGISTRY}/berth-test/app`);
      await editor.getByLabel('Container port').fill('8080');
      await editor.getByRole('button', { name: 'Add variable' }).first().click();
      await editor.getByLabel('Environment: name of variable 1').fill('GREETING');
      await editor.getByLabel('Environment: value of GREETING').fill('hello');
      await editor.getByRole('button', { name: 'Add variable' }).first().click();
      await editor.getByLabel('Environment: name of variable 2').fill('API_TOKEN');
      await editor.getByLabel('API_TOKEN is a secret').check();
      await editor.getByLabel('Environment: value of API_TOKEN').fill('t0p-s3cret-value');
      await editor.getByLabel('Tag pattern').fill('v*');
      await shot('project-editor');
      await editor.getByRole('button', { name: 'Create project' }).click();
      await page.getByRole('status').getByText(`Created ${name}`).waitFor();
      // Bad input: a refused save says why and changes nothing.
      await page.getByRole('button', { name: `Edit ${name}` }).click();
      await editor.getByText('stored, not shown').waitFor();
      await editor.getByLabel(/^Image repository/).fill('Not An Image!');
      await editor.getByRole('button', { name: 'Save' }).click();
      const refusal = editor.getByRole('alert');
      await refusal.waitFor();
      assert(/^image: /.test(await refusal.textContent()), `refusal: ${await refusal.textContent()}`);
      await editor.getByRole('button', { name: 'Cancel' }).click();
      const stored = await (await page.request.get(`${berth.url}/api/projects/${name}`)).json();
      assert(stored.project.image === `${REGISTRY}/berth-test/app`, `the refused save changed the image: ${stored.project.image}`);
      assert(JSON.stringify(stored.project.env.API_TOKEN) === '{"secret":true}', `secret: ${JSON.stringify(stored.project.env)}`);
      assert(!JSON.stringify(stored).includes('t0p-s3cret-value'), 'the secret came back from the API');
      const stage = page.getByTestId(`stage-${name}-dev`);
      await stage.getByRole('button', { name: 'Deploy…' }).click();
      // The tag picker reads the registry: newest first.
      const select = stage.getByRole('combobox', { name: 'Tag to deploy to dev' });
      await select.waitFor({ timeout: 15000 });
      const options = await select.locator('option').allTextContents();
      assert(options[0] === 'v4' && options.includes('v1'), `tags: ${options}`);
      await select.selectOption('v1');
      await stage.getByRole('button', { name: 'Deploy v1' }).click();
      await page.getByRole('status').getByText('Deploying v1').waitFor();
      // Live over the event stream: no reload.
      await stage.locator('.state.live').waitFor({ timeout: 90000 });
      await shot('project-live');
      await page.getByRole('link', { name: 'Deploys', exact: true }).click();
      await page.getByRole('button', { name: `Show deploy ${name}/dev v1` }).click();
      await page.getByTestId('deploy-state').getByText('succeeded').waitFor({ timeout: 15000 });
      await shot('deploy-detail');
      await page.getByTestId('deploy-log').getByText(/Digest: sha256:/).waitFor({ timeout: 15000 });
      await shot('deploy-detail');
    });

    await step(`[${scheme}] an instance is stopped, started and removed from the page`, async () => {
      const name = `ui-${scheme}`;
      page.once('dialog', (d) => void d.accept());
      await page.getByRole('link', { name: 'Projects', exact: true }).click();
      const stage = page.getByTestId(`stage-${name}-dev`);
      await stage.getByRole('button', { name: 'Stop' }).click();
      await stage.locator('.state.stopped').waitFor({ timeout: 30000 });
      await stage.getByRole('button', { name: 'Start' }).click();
      await stage.locator('.state.live').waitFor({ timeout: 60000 });
      page.once('dialog', (d) => void d.accept());
      await stage.getByRole('button', { name: /^Remove / }).click();
      await stage.getByText('Nothing deployed here yet.').waitFor({ timeout: 30000 });
    });

    await step(`[${scheme}] quick deploy: an image inspected from its registry, created and deployed`, async () => {
      const name = `quick-${scheme}`;
      await page.getByRole('link', { name: 'Dashboard', exact: true }).click();
      await page.getByLabel('Image to deploy').fill(`${REGISTRY}/berth-test/app:v2`);
      await page.getByRole('button', { name: 'Inspect' }).click();
      const form = page.getByTestId('quick-form');
      await form.getByText('exposes 8080').waitFor({ timeout: 15000 });
      assert((await form.getByLabel('Container port').inputValue()) === '8080', 'port not pre-filled from EXPOSE');
      await form.getByLabel('Project name').fill(name);
      await shot('quick-deploy');
      await form.getByRole('button', { name: 'Create and deploy' }).click();
      await page.getByRole('status').getByText(`Created ${name}`).waitFor({ timeout: 15000 });
      await page.getByRole('link', { name: 'Projects', exact: true }).click();
      const stage = page.getByTestId(`stage-${name}-dev`);
      await stage.locator('.state.live').waitFor({ timeout: 90000 });
      page.once('dialog', (d) => void d.accept());
      await stage.getByRole('button', { name: /^Remove / }).click();
      await stage.getByText('Nothing deployed here yet.').waitFor({ timeout: 30000 });
      await page.getByRole('link', { name: 'Deploys', exact: true }).click();
      await page.getByRole('heading', { name: 'Deploys', level: 1 }).waitFor();
    });

    await step(`[${scheme}] the webhook URL is regenerated and the old one is refused`, async () => {
      await page.getByRole('link', { name: 'Settings', exact: true }).click();
      const field = page.getByTestId('webhook-url');
      await field.waitFor();
      const old = await field.inputValue();
      assert(/\/api\/webhook\/[0-9a-f]{48}$/.test(old), `webhook URL: ${old}`);
      await shot('settings-webhook');
      page.once('dialog', (d) => void d.accept());
      await page.getByRole('button', { name: 'Regenerate…' }).click();
      await page.getByRole('status').getByText('New URL made').waitFor();
      const fresh = await field.inputValue();
      assert(fresh !== old, 'the URL did not change');
      const body = { image: `${REGISTRY}/berth-test/nobody:v1` };
      const refused = await page.request.post(old, { data: body });
      assert(refused.status() === 404, `the old URL answered ${refused.status()}`);
      const known = await (await page.request.post(fresh, { data: body })).json();
      assert(known.error.message.includes('no project deploys'), `the new URL: ${JSON.stringify(known)}`);
      await page.getByRole('link', { name: 'Deploys', exact: true }).click();
      await page.getByRole('heading', { name: 'Deploys', level: 1 }).waitFor();
    });

    await step(`[${scheme}] an API token is made with a lower role, used, revoked, and audited`, async () => {
      const name = `e2e-ci-${scheme}`;
      await page.getByRole('link', { name: 'Settings', exact: true }).click();
      const card = page.getByTestId('account');
      await card.getByLabel('Token name').fill(name);
      await card.getByLabel('Role').selectOption('deployer');
      await card.getByRole('button', { name: 'Create token' }).click();
      const token = await card.getByTestId('new-token').inputValue();
      assert(/^bt_/.test(token), `token: ${token.slice(0, 3)}…`);
      const bearer = { authorization: `Bearer ${token}` };
      const read = await page.request.get(`${berth.url}/api/projects`, { headers: bearer });
      assert(read.status() === 200, `deployer token reading: ${read.status()}`);
      const settings = await (await page.request.get(`${berth.url}/api/settings`)).json();
      const write = await page.request.put(`${berth.url}/api/settings`, { headers: bearer, data: settings });
      assert(write.status() === 403, `deployer token changing settings: ${write.status()}`);
      await card.getByTestId('sessions').getByText(name).waitFor();
      await shot('account');
      page.once('dialog', (d) => void d.accept());
      await card.getByRole('button', { name: `Revoke ${name}` }).click();
      await card.getByRole('status').getByText('Ended.').waitFor();
      const after = await page.request.get(`${berth.url}/api/projects`, { headers: bearer });
      assert(after.status() === 401, `revoked token: ${after.status()}`);
      // The audit page shows it, filtered, without the secret.
      await page.getByRole('link', { name: 'Audit log', exact: true }).click();
      await page.getByLabel('Action').selectOption('token.');
      await page.getByRole('button', { name: 'Filter' }).click();
      const table = page.getByTestId('audit');
      await table.getByText('token.created').first().waitFor();
      assert((await table.textContent()).includes(name), 'the token is not in the audit log');
      assert(!(await table.textContent()).includes(token.slice(3)), 'the secret is in the audit log');
      await shot('audit');
      await page.getByRole('link', { name: 'Deploys', exact: true }).click();
      await page.getByRole('heading', { name: 'Deploys', level: 1 }).waitFor();
    });

    if (scheme === 'light') {
      await step('[light] a stage gets its own webhook, which refuses another project\'s image', async () => {
        await page.getByRole('link', { name: 'Projects', exact: true }).click();
        const card = page.getByTestId('project-quick-light');
        await card.getByText('Deploy from CI').click();
        const row = card.getByTestId('stage-hook-quick-light-dev');
        await row.getByRole('button', { name: 'Make a URL' }).click();
        const url = await card.getByTestId('stage-hook-url').inputValue();
        assert(/\/api\/webhook\/wh_/.test(url), `stage webhook URL: ${url}`);
        await row.getByText('has its own URL').waitFor();
        await shot('stage-webhook');
        const other = await page.request.post(url, { data: { image: `${REGISTRY}/berth-test/other:v1` } });
        assert(other.status() === 403, `another project's image: ${other.status()}`);
        assert((await other.json()).error.message.includes('only quick-light/dev'), 'refusal does not name the stage');
        page.once('dialog', (d) => void d.accept());
        await row.getByRole('button', { name: 'Remove' }).click();
        await row.getByText('uses the global URL only').waitFor();
        const gone = await page.request.post(url, { data: { image: `${REGISTRY}/berth-test/app:v1` } });
        assert(gone.status() === 404, `removed stage webhook: ${gone.status()}`);
      });

      await step('[light] users are added, given another role and disabled on the Users page', async () => {
        await page.getByRole('link', { name: 'Users', exact: true }).click();
        await page.getByLabel('Username').fill('erin');
        await page.getByLabel("New user's role").selectOption('deployer');
        await page.getByLabel('Password', { exact: true }).fill('erin-password-1');
        await page.getByRole('button', { name: 'Add user' }).click();
        await page.getByRole('status').getByText('erin added as deployer.').waitFor();
        const row = page.getByTestId('user-erin');
        await row.getByLabel('Role of erin').selectOption('viewer');
        await page.getByRole('status').getByText('erin is now viewer.').waitFor();
        page.once('dialog', (d) => void d.accept());
        await row.getByRole('button', { name: 'Disable' }).click();
        await page.getByRole('status').getByText('erin is disabled.').waitFor();
        await shot('users');
        const users = await (await page.request.get(`${berth.url}/api/users`)).json();
        const erin = users.find((u) => u.username === 'erin');
        assert(erin && erin.role === 'viewer' && erin.disabled, `erin: ${JSON.stringify(erin)}`);
        const login = await page.request.post(`${berth.url}/api/auth/token`, { data: { username: 'erin', password: 'erin-password-1' } });
        assert(login.status() === 401, `a disabled user logged in: ${login.status()}`);
      });

      await step('[light] single sign-on through a real OpenID provider: set up, signed in, refusal shown', async () => {
        idp = await startIdp(`${berth.url}/api/auth/oidc/callback`);
        await page.getByRole('link', { name: 'Settings', exact: true }).click();
        const card = page.getByTestId('oidc');
        await card.getByLabel('Name on the login button').fill('Test IdP');
        await card.getByLabel('Issuer URL').fill(idp.issuer);
        await card.getByLabel('Client id').fill('berth');
        await card.getByLabel(/^Client secret/).fill(IDP_SECRET);
        await card.getByLabel(/^Scopes/).fill('profile email groups');
        await card.getByRole('button', { name: 'Add a rule' }).click();
        await card.getByLabel('Claim value 1').fill('berth-admins');
        await card.getByLabel('Role 1').selectOption('admin');
        await card.getByRole('button', { name: 'Save single sign-on' }).click();
        await card.getByRole('status').getByText('Saved.').waitFor();
        await card.getByRole('button', { name: 'Test discovery' }).click();
        await card.getByRole('status').getByText(`Found ${idp.issuer} with 1 signing key(s)`).waitFor();
        const shown = await (await page.request.get(`${berth.url}/api/settings/oidc`)).text();
        assert(!shown.includes(IDP_SECRET), 'the client secret came back from the API');
        await shot('oidc-settings');

        await page.getByRole('button', { name: 'Log out', exact: true }).click();
        await page.getByRole('heading', { name: 'Sign in' }).waitFor();
        await shot('login-sso');
        await page.getByRole('link', { name: 'Sign in with Test IdP' }).click();
        await page.getByRole('heading', { name: 'Test IdP' }).waitFor();
        await page.getByLabel('Username').fill('alice');
        await page.getByLabel('Password').fill('wonderland');
        await page.getByRole('button', { name: 'Sign in' }).click();
        await page.getByTestId('who').getByText('alice').waitFor({ timeout: 15000 });
        assert((await page.getByTestId('who').textContent()).includes('admin'), 'alice is not admin by her group');
        assert(new URL(page.url()).origin === berth.url, `not back on berth: ${page.url()}`);

        // Another browser, a user berth cannot name: back on the login page with the reason.
        const other = await browser.newContext({ colorScheme: scheme });
        const p2 = await other.newPage();
        await p2.goto(berth.url);
        await p2.getByRole('link', { name: 'Sign in with Test IdP' }).click();
        await p2.getByLabel('Username').fill('bad name');
        await p2.getByLabel('Password').fill('wonderland');
        await p2.getByRole('button', { name: 'Sign in' }).click();
        await p2.getByRole('alert').getByText('preferred_username').waitFor({ timeout: 15000 });
        await p2.reload();
        await p2.getByRole('heading', { name: 'Sign in' }).waitFor();
        assert((await p2.getByRole('alert').count()) === 0, 'the refusal is shown again after a reload');
        await p2.screenshot({ path: join(SHOTS, `login-sso-refused-${scheme}.png`), fullPage: true });
        await other.close();

        // Back to the admin with a password (it stays on), where the next steps expect it.
        await page.getByRole('button', { name: 'Log out', exact: true }).click();
        await page.getByLabel('Username').fill('admin');
        await page.getByLabel('Password').fill(PASSWORD);
        await page.getByRole('button', { name: 'Sign in', exact: true }).click();
        await page.getByRole('link', { name: 'Deploys', exact: true }).click();
        await page.getByRole('heading', { name: 'Deploys', level: 1 }).waitFor();
      });
    }

    await step(`[${scheme}] the theme toggle switches and is remembered`, async () => {
      const other = scheme === 'light' ? 'dark' : 'light';
      await page.getByRole('button', { name: `Switch to ${other} theme` }).click();
      assert((await page.getAttribute('html', 'data-theme')) === other, 'theme did not switch');
      await page.reload();
      await page.getByRole('heading', { name: 'Deploys', level: 1 }).waitFor();
      assert((await page.getAttribute('html', 'data-theme')) === other, 'theme not remembered');
      await page.evaluate(() => localStorage.removeItem('berth.theme'));
    });

    await step(`[${scheme}] a phone-sized screen keeps every control reachable`, async () => {
      await page.setViewportSize({ width: 390, height: 844 });
      await page.reload();
      await page.getByRole('button', { name: 'Log out', exact: true }).waitFor();
      const box = await page.getByRole('button', { name: 'Log out', exact: true }).boundingBox();
      assert(box && box.x + box.width <= 390, `log out is off screen: ${JSON.stringify(box)}`);
      await shot('phone');
      await page.setViewportSize({ width: 1280, height: 800 });
    });

    await step(`[${scheme}] logging out returns to the login page and ends the session`, async () => {
      await page.getByRole('button', { name: 'Log out', exact: true }).click();
      await page.getByRole('heading', { name: 'Sign in' }).waitFor();
      const res = await page.request.get(`${berth.url}/api/auth/me`);
      assert(res.status() === 401, `session still alive: ${res.status()}`);
    });
    await context.close();
  }
  await step('no errors in the browser console', async () => {
    // 4xx answers are the server's expected words (401 before login, 404 for NPM not set up,
    // the 400s the test provokes), logged by Chromium as network errors; the steps assert
    // what the page shows for them. Script errors and 5xx answers fail here.
    const real = consoleErrors.filter((e) => !/status of 4\d\d/.test(e));
    assert(real.length === 0, real.join('\n'));
  });
} finally {
  await browser.close();
  // A step that failed half-way may have left containers of this run behind: remove them.
  for (const project of ['ui-light', 'ui-dark', 'quick-light', 'quick-dark', 'routed']) {
    const ids = spawnSync('docker', ['ps', '-aq', '--filter', `label=berth.project=${project}`], {
      env: { ...process.env, DOCKER_HOST },
      encoding: 'utf8',
    }).stdout?.trim();
    if (ids) spawnSync('docker', ['rm', '-f', ...ids.split('\n')], { env: { ...process.env, DOCKER_HOST } });
  }
  berth.child.kill('SIGTERM');
  npm.child.kill('SIGTERM');
  idp?.child.kill('SIGTERM');
  rmSync(npm.hosts, { recursive: true, force: true });
  rmSync(berth.data, { recursive: true, force: true });
}

const failed = results.filter((r) => !r.ok).length;
console.log(`screenshots: ${SHOTS}`);
console.log(`${results.length - failed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
