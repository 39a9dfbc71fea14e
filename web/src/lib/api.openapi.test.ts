// The client and the server cannot drift apart silently: every call the typed client makes
// must be an operation of the server's OpenAPI description (docs/openapi.json, which a Rust
// test keeps equal to the server's route table).
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { client } from './api';

const doc = JSON.parse(readFileSync(resolve(__dirname, '../../../docs/openapi.json'), 'utf8')) as {
  paths: Record<string, Record<string, unknown>>;
};

/** The OpenAPI path template a concrete path matches, if any. */
function templateFor(path: string): string | undefined {
  const parts = (path.split('?')[0] ?? '').split('/');
  return Object.keys(doc.paths).find((t) => {
    const tp = t.split('/');
    return tp.length === parts.length && tp.every((seg, i) => (seg.startsWith('{') && parts[i] !== '') || seg === parts[i]);
  });
}

describe('the API client against the OpenAPI description', () => {
  it('calls only operations the server describes', async () => {
    const calls: { method: string; path: string }[] = [];
    const raw = client(async (url, init) => {
      calls.push({ method: (init?.method ?? 'GET').toLowerCase(), path: String(url) });
      return new Response('{}', { status: 200, headers: { 'content-type': 'application/json' } });
    });
    // Every method of the client must be called below: a new one without a check fails.
    const used = new Set<string>();
    const api = Object.fromEntries(
      Object.entries(raw).map(([k, f]) => [k, (...a: unknown[]) => (used.add(k), (f as (...x: unknown[]) => unknown)(...a))]),
    ) as typeof raw;
    // Every method, with arguments that need escaping.
    await api.health();
    await api.login('a', 'b');
    await api.logout();
    await api.me();
    await api.changePassword('a', 'b');
    await api.containers();
    await api.projects();
    await api.settings();
    await api.project('my app');
    await api.deploys();
    await api.deploys('p');
    await api.deploy('0192');
    await api.deployLogs('0192');
    await api.stageTags('p', 'dev');
    await api.deployTag('p', 'dev', 'v1', false);
    await api.rollback('p', 'dev');
    await api.webhookUrl();
    await api.regenerateWebhook();
    await api.inspect('reg/app:v1');
    await api.quick('reg/app:v1');
    await api.overview();
    const project = { name: 'my app', image: 'r/a', port: 80, stages: {} };
    await api.createProject(project);
    await api.updateProject(project);
    await api.deleteProject('my app');
    await api.saveSettings({} as never);
    await api.registries();
    await api.createRegistry({ name: 'r', kind: 'generic', url: 'http://r', username: null });
    await api.updateRegistry('r', { kind: 'generic', url: 'http://r', username: null });
    await api.deleteRegistry('r');
    await api.testRegistry('r');
    await api.npm();
    await api.saveNpm({ url: 'http://n', email: 'a@b', upstream: 'host_port', certificate_id: null, websockets: false });
    await api.deleteNpm();
    await api.testNpm();
    await api.hookSources();
    await api.newHookSecret('github');
    await api.deliveries();
    await api.sessions();
    await api.revokeSession('0123456789abcdef');
    await api.logOutEverywhere();
    await api.createToken('ci', 'deployer', 30);
    await api.users();
    await api.endUserSessions(3);
    await api.createUser('dave', 'viewer');
    await api.createUser('erin', 'deployer', 'a long password');
    await api.updateUser(3, { role: 'admin' });
    await api.deleteUser(3);
    await api.providers();
    await api.oidc();
    await api.saveOidc({} as never);
    await api.deleteOidc();
    await api.testOidc();
    await api.createStageWebhook('my app', 'dev');
    await api.deleteStageWebhook('my app', 'dev');
    await api.audit();
    await api.audit({ actor: 'admin', action: 'login.' });
    for (const a of ['stop', 'start', 'restart', 'remove'] as const) await api.instanceAction('p', 'dev', 'i-1', a);
    expect([...used].sort()).toEqual(Object.keys(raw).sort());
    expect(calls.length).toBe(60);
    expect(calls.find((c) => c.path.startsWith('/api/audit?'))?.path).toBe('/api/audit?actor=admin&action=login.');
    for (const c of calls) {
      const t = templateFor(c.path);
      expect(t, `${c.method} ${c.path} is not in docs/openapi.json`).toBeDefined();
      expect(doc.paths[t ?? '']?.[c.method], `${c.method} ${t} is not described`).toBeDefined();
    }
    expect(calls.find((c) => c.path.startsWith('/api/projects/my'))?.path).toBe('/api/projects/my%20app');
    expect(calls.at(-1)).toEqual({ method: 'delete', path: '/api/projects/p/stages/dev/instances/i-1' });
  });
});
