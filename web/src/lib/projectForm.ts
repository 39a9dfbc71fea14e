// The project editor's form model, and the conversions between it and the API's project
// shape (a seed.example.yaml project entry as JSON). Fields the form does not show (labels,
// health check timings…) are carried over from the loaded project untouched.
//
// Secret env values are write-only: the API sends {"secret": true} for a stored one, and the
// form sends that back to keep it, or {"value": "...", "secret": true} to replace it.

import type { ProjectConfig, StageConfig } from './api';

export interface EnvRow {
  key: string;
  value: string;
  secret: boolean;
  /** A secret the server holds: its value is not known here and is kept unless replaced. */
  stored: boolean;
}

export interface VolumeRow {
  source: string;
  target: string;
  mode: 'shared' | 'isolated';
  read_only: boolean;
}

export interface StageForm {
  name: string;
  /** The stage exists on the server: its name is fixed (history hangs on it). */
  existing: boolean;
  tag_pattern: string;
  auto_deploy: boolean;
  max_instances: number;
  promote_from: string;
  confirm: boolean;
  subdomain: string;
  env: EnvRow[];
}

export type HealthKind = 'image' | 'http' | 'tcp' | 'none';

export interface ProjectForm {
  name: string;
  existing: boolean;
  image: string;
  port: number;
  registry: string;
  health: HealthKind;
  healthPath: string;
  memory: string;
  cpus: string;
  poll: string;
  env: EnvRow[];
  volumes: VolumeRow[];
  stages: StageForm[];
}

type Json = Record<string, unknown>;

export function envToRows(env: unknown): EnvRow[] {
  if (!env || typeof env !== 'object') return [];
  return Object.entries(env as Json).map(([key, v]) => {
    if (v && typeof v === 'object') {
      const o = v as { value?: unknown; secret?: boolean };
      const secret = o.secret === true;
      return { key, value: o.value === undefined ? '' : String(o.value), secret, stored: secret && o.value === undefined };
    }
    return { key, value: v === null || v === undefined ? '' : String(v), secret: false, stored: false };
  });
}

/** The env object to send; throws an Error naming the row when a key is empty or repeated. */
export function rowsToEnv(rows: EnvRow[], where: string): Json | undefined {
  const out: Json = {};
  rows.forEach((r, i) => {
    const key = r.key.trim();
    if (!key) throw new Error(`${where}: variable ${i + 1} has no name`);
    if (key in out) throw new Error(`${where}: ${key} is set twice`);
    if (r.secret) out[key] = r.stored && r.value === '' ? { secret: true } : { value: r.value, secret: true };
    else out[key] = r.value;
  });
  return Object.keys(out).length ? out : undefined;
}

export function emptyStage(name = ''): StageForm {
  return { name, existing: false, tag_pattern: '*', auto_deploy: false, max_instances: 1, promote_from: '', confirm: false, subdomain: '', env: [] };
}

export function emptyProject(): ProjectForm {
  return {
    name: '',
    existing: false,
    image: '',
    port: 8080,
    registry: '',
    health: 'image',
    healthPath: '/health',
    memory: '',
    cpus: '',
    poll: '',
    env: [],
    volumes: [],
    stages: [{ ...emptyStage('dev'), tag_pattern: '*' }],
  };
}

export function toForm(p: ProjectConfig): ProjectForm {
  const h = p.healthcheck as unknown;
  let health: HealthKind = 'image';
  let healthPath = '/health';
  if (typeof h === 'string') {
    health = 'http';
    healthPath = h;
  } else if (h && typeof h === 'object') {
    const o = h as { type?: string; path?: string };
    health = (['image', 'http', 'tcp', 'none'] as const).find((k) => k === o.type) ?? 'image';
    if (o.path) healthPath = o.path;
  }
  const vols = Array.isArray(p.volumes) ? (p.volumes as Json[]) : [];
  return {
    name: p.name,
    existing: true,
    image: p.image,
    port: p.port,
    registry: typeof p.registry === 'string' ? p.registry : '',
    health,
    healthPath,
    memory: typeof p.memory === 'string' ? p.memory : '',
    cpus: typeof p.cpus === 'number' ? String(p.cpus) : '',
    poll: typeof p.poll_interval_secs === 'number' ? String(p.poll_interval_secs) : '',
    env: envToRows(p.env),
    volumes: vols.map((v) => ({
      source: String(v.source ?? ''),
      target: String(v.target ?? ''),
      mode: v.mode === 'isolated' ? 'isolated' : 'shared',
      read_only: v.read_only === true,
    })),
    stages: Object.entries(p.stages).map(([name, s]) => ({
      name,
      existing: true,
      tag_pattern: s.tag_pattern,
      auto_deploy: s.auto_deploy ?? false,
      max_instances: s.max_instances ?? 1,
      promote_from: s.promote_from ?? '',
      confirm: s.confirm ?? false,
      subdomain: s.subdomain ?? '',
      env: envToRows(s.env),
    })),
  };
}

function numberOrUndefined(v: string, field: string): number | undefined {
  if (v.trim() === '') return undefined;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new Error(`${field}: ${JSON.stringify(v)} is not a number`);
  return n;
}

/** The project to send, built on `original` (so fields the form does not show are kept). */
export function fromForm(f: ProjectForm, original?: ProjectConfig): ProjectConfig {
  const out: Json = original ? plain(original) : {};
  out.name = f.name.trim();
  out.image = f.image.trim();
  out.port = Number(f.port);
  const set = (k: string, v: unknown) => {
    if (v === undefined || v === '') delete out[k];
    else out[k] = v;
  };
  set('registry', f.registry || undefined);
  const before = (original?.healthcheck ?? null) as Json | string | null;
  const keep = before && typeof before === 'object' && before.type === f.health ? before : {};
  out.healthcheck = f.health === 'http' ? { ...keep, type: 'http', path: f.healthPath.trim() || '/' } : { ...keep, type: f.health };
  set('memory', f.memory.trim() || undefined);
  set('cpus', numberOrUndefined(f.cpus, 'cpus'));
  set('poll_interval_secs', numberOrUndefined(f.poll, 'poll_interval_secs'));
  set('env', rowsToEnv(f.env, 'env'));
  set(
    'volumes',
    f.volumes.length
      ? f.volumes.map((v) => ({ source: v.source.trim(), target: v.target.trim(), mode: v.mode, read_only: v.read_only }))
      : undefined,
  );
  const stages: Record<string, StageConfig> = {};
  for (const s of f.stages) {
    const name = s.name.trim();
    if (!name) throw new Error('stages: a stage has no name');
    if (name in stages) throw new Error(`stages: ${name} is there twice`);
    const base = (original?.stages[name] ?? {}) as Json;
    const st: Json = {
      ...plain(base),
      tag_pattern: s.tag_pattern.trim(),
      auto_deploy: s.auto_deploy,
      max_instances: Number(s.max_instances),
      confirm: s.confirm,
    };
    if (s.promote_from) st.promote_from = s.promote_from;
    else delete st.promote_from;
    if (s.subdomain.trim()) st.subdomain = s.subdomain.trim();
    else delete st.subdomain;
    const env = rowsToEnv(s.env, `stages.${name}.env`);
    if (env) st.env = env;
    else delete st.env;
    stages[name] = st as unknown as StageConfig;
  }
  out.stages = stages;
  return out as ProjectConfig;
}

// A deep copy as plain data (Svelte's state proxies cannot be structured-cloned).
function plain<T>(v: T): T {
  return JSON.parse(JSON.stringify(v)) as T;
}
