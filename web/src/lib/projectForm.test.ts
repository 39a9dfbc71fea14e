import { describe, expect, it } from 'vitest';
import type { ProjectConfig } from './api';
import { emptyProject, fromForm, rowsToEnv, toForm } from './projectForm';

// A project as GET /api/projects/{name} returns it (the seed example, secrets redacted).
const loaded: ProjectConfig = {
  name: 'web-app-launcher',
  registry: 'gitea',
  image: 'git.example.com/alexei/web-app-launcher',
  port: 3000,
  healthcheck: { type: 'http', path: '/api/health', expected_status: 200, interval_secs: 2, timeout_secs: 5, retries: 15, start_period_secs: 0 },
  env: { NODE_ENV: 'production', SECRET_KEY: { secret: true } },
  volumes: [{ source: '/data/u', target: '/app/u', mode: 'shared', read_only: false }],
  memory: '512m',
  cpus: 1.5,
  labels: { 'com.example.team': 'web' },
  stages: {
    dev: { tag_pattern: 'dev-*', auto_deploy: true, max_instances: 5, confirm: false, env: { NODE_ENV: 'development' } },
    prod: { tag_pattern: 'v*', auto_deploy: false, max_instances: 1, promote_from: 'rel', confirm: true, subdomain: 'launcher' },
  },
};

describe('the project form', () => {
  it('round-trips a loaded project without losing what it does not show', () => {
    const back = fromForm(toForm(loaded), loaded);
    expect(back).toEqual(loaded);
  });

  it('keeps a stored secret unless it is replaced, and never invents its value', () => {
    const f = toForm(loaded);
    const secret = f.env.find((r) => r.key === 'SECRET_KEY')!;
    expect(secret).toEqual({ key: 'SECRET_KEY', value: '', secret: true, stored: true });
    expect(fromForm(f, loaded).env).toEqual({ NODE_ENV: 'production', SECRET_KEY: { secret: true } });
    secret.value = 'n3w-value';
    expect((fromForm(f, loaded).env as Record<string, unknown>).SECRET_KEY).toEqual({ value: 'n3w-value', secret: true });
  });

  it('changes what was edited: health type, volumes, stage overrides, removed fields', () => {
    const f = toForm(loaded);
    f.health = 'tcp';
    f.memory = '';
    f.volumes.push({ source: '/data/x', target: '/x', mode: 'isolated', read_only: true });
    f.stages[1]!.promote_from = '';
    f.stages.push({ ...f.stages[0]!, name: 'qa', existing: false, env: [] });
    const p = fromForm(f, loaded);
    expect(p.healthcheck).toEqual({ type: 'tcp' });
    expect(p.memory).toBeUndefined();
    expect((p.volumes as unknown[]).length).toBe(2);
    expect(p.stages.prod!.promote_from).toBeUndefined();
    expect(p.stages.qa).toMatchObject({ tag_pattern: 'dev-*', max_instances: 5 });
    expect(p.stages.qa!.env).toBeUndefined();
    expect(p.labels).toEqual({ 'com.example.team': 'web' });
  });

  it('refuses empty or repeated names with the place named', () => {
    expect(() => rowsToEnv([{ key: ' ', value: 'x', secret: false, stored: false }], 'env')).toThrow('env: variable 1 has no name');
    expect(() =>
      rowsToEnv(
        [
          { key: 'A', value: '1', secret: false, stored: false },
          { key: 'A', value: '2', secret: false, stored: false },
        ],
        'stages.dev.env',
      ),
    ).toThrow('stages.dev.env: A is set twice');
    const f = emptyProject();
    f.stages.push({ ...f.stages[0]! });
    expect(() => fromForm(f)).toThrow('stages: dev is there twice');
    f.cpus = 'two';
    f.stages.pop();
    expect(() => fromForm(f)).toThrow('cpus: "two" is not a number');
  });

  it('makes a new project the server accepts in the seed shape', () => {
    const f = emptyProject();
    f.name = 'shop';
    f.image = '127.0.0.1:5000/team/shop';
    f.env.push({ key: 'TOKEN', value: 't0k', secret: true, stored: false });
    expect(fromForm(f)).toEqual({
      name: 'shop',
      image: '127.0.0.1:5000/team/shop',
      port: 8080,
      healthcheck: { type: 'image' },
      env: { TOKEN: { value: 't0k', secret: true } },
      stages: { dev: { tag_pattern: '*', auto_deploy: false, max_instances: 1, confirm: false } },
    });
  });
});
