// The typed client for berth's API. Every error arrives as berth's envelope
// ({"error": {"status", "code", "message"}}) and is thrown as an ApiError whose message is
// the server's own words, ready to show.

export type Role = 'viewer' | 'deployer' | 'admin';

export interface User {
  id: number;
  username: string;
  role: Role;
  disabled: boolean;
  created_at: string;
}

export type EngineStatus =
  | { status: 'connecting' }
  | { status: 'connected'; engine_version: string; api_version: string; os: string }
  | { status: 'unavailable'; error: string };

export interface Health {
  status: 'ok' | 'degraded' | 'unavailable';
  version: string;
  database: { status: string; error?: string };
  engine: EngineStatus;
}

export interface ContainerSummary {
  id: string;
  name: string;
  image: string;
  state: string;
  status: string;
  created: number;
  labels: Record<string, string>;
}

export interface StageSummary {
  name: string;
  tag_pattern: string;
  auto_deploy: boolean;
  max_instances: number;
  promote_from: string | null;
  confirm: boolean;
}

export interface ProjectSummary {
  id: number;
  name: string;
  image: string;
  port: number;
  stages: StageSummary[];
}

export interface GlobalSettings {
  domain: string | null;
  server_ip: string | null;
  network: string;
  subdomain_pattern: string;
  notification_url: string | null;
  poll_interval_secs: number;
  image_allowlist: string[];
  keep_releases: number;
  drain_secs: number;
  watch_secs: number;
  prune_images: boolean;
}

export type Health3 = 'healthy' | 'starting' | 'failing';

export interface HealthCounts {
  healthy: number;
  starting: number;
  failing: number;
  stopped: number;
  kept: number;
}

export interface LiveInstance {
  id: string;
  tag: string;
  digest: string | null;
  subdomain: string;
  host: string;
  health: Health3;
  engine_status: string | null;
  since: string;
}

export interface StageOverview {
  name: string;
  tag_pattern: string;
  counts: HealthCounts;
  live: LiveInstance[];
  latest_deploy: DeployRecord | null;
}

export interface Overview {
  projects: { name: string; image: string; stages: StageOverview[] }[];
  engine_error: string | null;
}

/** One layer of an image pull, from a deploy's stream. */
export interface LayerProgress {
  layer: string;
  status: string;
  current: number | null;
  total: number | null;
}

export type RegistryKind = 'generic' | 'dockerhub' | 'ghcr' | 'gitea' | 'forgejo' | 'gitlab' | 'harbor' | 'quay';

export interface Registry {
  name: string;
  kind: RegistryKind;
  url: string;
  username: string | null;
  has_secret: boolean;
  projects: string[];
}

/** A registry as sent: `password` left out keeps the stored one, null clears it. */
export interface RegistryInput {
  name?: string;
  kind: RegistryKind;
  url: string;
  username: string | null;
  password?: string | null;
}

export interface NpmConnection {
  url: string;
  email: string;
  /** "********" when a password is stored; never the password. */
  password: string | null;
  upstream: 'container_name' | 'host_port';
  certificate_id: number | null;
  websockets: boolean;
}

export type NpmInput = Omit<NpmConnection, 'password'> & { password?: string | null };

export interface HookSource {
  source: string;
  auth: 'url_secret' | 'hmac' | 'token';
  header: string | null;
  path: string;
  configured: boolean;
  updated_at: string | null;
}

export interface Delivery {
  id: number;
  source: string;
  delivery_id: string | null;
  received_at: string;
  outcome: string;
  reason: string | null;
  image: string | null;
  digest: string | null;
  deploys: string;
  ip: string | null;
}

export interface DeployRecord {
  id: string;
  project: string;
  stage: string;
  trigger: string;
  actor: string;
  image: string;
  tag: string;
  digest: string | null;
  state: string;
  error: string | null;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
}

export interface StepRecord {
  step: string;
  state: string;
  started_at: string;
  finished_at: string | null;
  message: string | null;
}

export type DeployDetail = DeployRecord & { steps: StepRecord[] };

export interface LogLine {
  id: number;
  at: string;
  level: string;
  line: string;
}

export interface InstanceRecord {
  id: string;
  deploy_id: string | null;
  container_id: string | null;
  container_name: string;
  tag: string;
  digest: string | null;
  subdomain: string;
  status: string;
  route_id: number | null;
  created_at: string;
  updated_at: string;
}

export interface StageConfig {
  tag_pattern: string;
  auto_deploy?: boolean;
  max_instances?: number;
  promote_from?: string;
  confirm?: boolean;
  subdomain?: string;
  /** Overrides of the project's env (secrets read back as {"secret": true}). */
  env?: Record<string, unknown>;
}

/** A project in the API's shape (the seed's `projects.<name>` entry, plus `name`). */
export interface ProjectConfig {
  name: string;
  image: string;
  port: number;
  stages: Record<string, StageConfig>;
  [field: string]: unknown;
}

export interface PollStatus {
  last_checked: string | null;
  last_error: string | null;
  failures: number;
  next_check: string;
}

export interface ProjectDetail {
  project: ProjectConfig;
  instances: Record<string, InstanceRecord[]>;
  /** The host each instance is (or would be) served at, by instance id. */
  hosts: Record<string, string>;
  source: PollStatus | null;
  /** Stages with a webhook of their own (its secret is never shown again). */
  stage_webhooks: string[];
}

export interface StageTags {
  tags: string[];
  source: 'registry' | 'promotion';
  live: string | null;
}

export type InstanceAction = 'stop' | 'start' | 'restart' | 'remove';

export interface Suggestion {
  image: string;
  digest: string;
  created: string | null;
  exposed_ports: number[];
  healthcheck: boolean;
  labels: Record<string, string>;
  existing_project: string | null;
  project: ProjectConfig | null;
  domain: string | null;
  note?: string;
}

export interface SessionRow {
  id: string;
  kind: 'browser' | 'script';
  name: string | null;
  role: Role | null;
  created_at: string;
  expires_at: string;
  last_seen_at: string;
  ip: string | null;
  user_agent: string | null;
  current: boolean;
}

/** A user as an admin's list shows one. */
export interface UserAdmin extends User {
  has_password: boolean;
  sso: boolean;
  sessions: number;
  last_seen_at: string | null;
}

export interface UserChange {
  role?: Role;
  disabled?: boolean;
  password?: string;
}

export interface RoleRule {
  value: string;
  role: Role;
}

export interface OidcSettings {
  display_name: string;
  issuer: string;
  client_id: string;
  scopes: string[];
  public_url: string;
  username_claim: string;
  role_claim: string;
  role_rules: RoleRule[];
  default_role: Role;
  allow_new_users: boolean;
  local_login: boolean;
}

export interface OidcAnswer extends OidcSettings {
  /** "********" when a client secret is stored. */
  client_secret: string | null;
  redirect_url: string;
}

/** Left out: keep the stored secret; null: remove it; a string: replace it. */
export type OidcInput = OidcSettings & { client_secret?: string | null };

export interface Providers {
  local: boolean;
  oidc: { name: string; login_url: string } | null;
}

export interface AuditEntry {
  id: number;
  at: string;
  actor: string;
  action: string;
  target: string | null;
  ip: string | null;
  detail: string | null;
}

export interface AuditQuery {
  actor?: string;
  action?: string;
  since?: string;
  until?: string;
  before?: number;
}

/** A deploy that has not ended yet. */
export function isRunning(state: string): boolean {
  return !['succeeded', 'failed', 'rolled_back', 'cancelled', 'superseded'].includes(state);
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

/** The words to show for anything thrown (an ApiError carries the server's own). */
export function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** Turns a failed response's status and body into an ApiError with a readable message. */
export function errorFrom(status: number, statusText: string, body: string): ApiError {
  try {
    const v = JSON.parse(body) as { error?: { status?: number; code?: string; message?: string } };
    if (v.error && typeof v.error.message === 'string') {
      return new ApiError(status, v.error.code ?? 'error', v.error.message);
    }
  } catch {
    // not JSON: fall through
  }
  if (status === 0) return new ApiError(0, 'network', 'berth cannot be reached; check that it is running');
  return new ApiError(status, 'error', `${status} ${statusText || 'error'}`.trim());
}

type Fetch = typeof fetch;

const enc = encodeURIComponent;

export function client(f: Fetch = (...a) => fetch(...a)) {
  async function request<T>(method: string, path: string, body?: unknown): Promise<T> {
    let res: Response;
    try {
      res = await f(path, {
        method,
        credentials: 'same-origin',
        headers: body === undefined ? {} : { 'content-type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch {
      throw errorFrom(0, '', '');
    }
    if (!res.ok) throw errorFrom(res.status, res.statusText, await res.text());
    if (res.status === 204) return undefined as T;
    return (await res.json()) as T;
  }
  return {
    health: () => request<Health>('GET', '/api/health'),
    login: (username: string, password: string) =>
      request<{ user: User; expires_at: string }>('POST', '/api/auth/login', { username, password }),
    logout: () => request<void>('POST', '/api/auth/logout'),
    me: () => request<{ user: User; via: string }>('GET', '/api/auth/me'),
    changePassword: (current_password: string, new_password: string) =>
      request<void>('PUT', '/api/auth/password', { current_password, new_password }),
    containers: () => request<ContainerSummary[]>('GET', '/api/containers'),
    projects: () => request<ProjectSummary[]>('GET', '/api/projects'),
    settings: () => request<GlobalSettings>('GET', '/api/settings'),
    project: (name: string) => request<ProjectDetail>('GET', `/api/projects/${enc(name)}`),
    deploys: (project?: string) =>
      request<DeployRecord[]>('GET', `/api/deploys${project ? `?project=${enc(project)}` : ''}`),
    deploy: (id: string) => request<DeployDetail>('GET', `/api/deploys/${enc(id)}`),
    deployLogs: (id: string) => request<LogLine[]>('GET', `/api/deploys/${enc(id)}/logs`),
    stageTags: (project: string, stage: string) =>
      request<StageTags>('GET', `/api/projects/${enc(project)}/stages/${enc(stage)}/tags`),
    deployTag: (project: string, stage: string, tag: string, confirm: boolean) =>
      request<{ deploy: string }>('POST', `/api/projects/${enc(project)}/stages/${enc(stage)}/deploys`, { tag, confirm }),
    rollback: (project: string, stage: string, instance?: string) =>
      request<{ deploy: string }>(
        'POST',
        `/api/projects/${enc(project)}/stages/${enc(stage)}/rollback`,
        instance ? { instance } : {},
      ),
    webhookUrl: () => request<{ path: string }>('GET', '/api/settings/webhook'),
    regenerateWebhook: () => request<{ path: string }>('POST', '/api/settings/webhook/regenerate'),
    inspect: (image: string) => request<Suggestion>('POST', '/api/deploy/inspect', { image }),
    quick: (image: string, project?: ProjectConfig) =>
      request<{ project: ProjectConfig; stage: string; deploy: string }>('POST', '/api/deploy/quick', {
        image,
        ...(project ? { project } : {}),
      }),
    overview: () => request<Overview>('GET', '/api/overview'),
    createProject: (p: ProjectConfig) => request<ProjectDetail>('POST', '/api/projects', p),
    updateProject: (p: ProjectConfig) => request<ProjectDetail>('PUT', `/api/projects/${enc(p.name)}`, p),
    deleteProject: (name: string) => request<void>('DELETE', `/api/projects/${enc(name)}`),
    saveSettings: (g: GlobalSettings) => request<GlobalSettings>('PUT', '/api/settings', g),
    registries: () => request<Registry[]>('GET', '/api/registries'),
    createRegistry: (r: RegistryInput) => request<Registry[]>('POST', '/api/registries', r),
    updateRegistry: (name: string, r: RegistryInput) => request<Registry[]>('PUT', `/api/registries/${enc(name)}`, r),
    deleteRegistry: (name: string) => request<void>('DELETE', `/api/registries/${enc(name)}`),
    testRegistry: (name: string) => request<{ ok: boolean; registry: string }>('POST', `/api/registries/${enc(name)}/test`),
    npm: () => request<NpmConnection>('GET', '/api/npm'),
    saveNpm: (n: NpmInput) => request<NpmConnection>('PUT', '/api/npm', n),
    deleteNpm: () => request<void>('DELETE', '/api/npm'),
    testNpm: () => request<{ version: string; user: string }>('POST', '/api/npm/test'),
    hookSources: () => request<HookSource[]>('GET', '/api/settings/hooks'),
    newHookSecret: (source: string) =>
      request<{ source: string; secret: string; path: string }>('POST', `/api/settings/hooks/${enc(source)}/secret`),
    deliveries: () => request<Delivery[]>('GET', '/api/deliveries'),
    sessions: () => request<SessionRow[]>('GET', '/api/auth/sessions'),
    revokeSession: (id: string) => request<void>('DELETE', `/api/auth/sessions/${enc(id)}`),
    logOutEverywhere: () => request<{ ended: number }>('POST', '/api/auth/sessions/revoke-all'),
    createToken: (name: string, role: Role, expires_in_days: number) =>
      request<{ token: string; id: string; name: string; role: Role; expires_at: string }>('POST', '/api/auth/tokens', {
        name,
        role,
        expires_in_days,
      }),
    users: () => request<UserAdmin[]>('GET', '/api/users'),
    createUser: (username: string, role: Role, password?: string) =>
      request<User>('POST', '/api/users', { username, role, ...(password ? { password } : {}) }),
    updateUser: (id: number, change: UserChange) => request<User>('PATCH', `/api/users/${id}`, change),
    deleteUser: (id: number) => request<void>('DELETE', `/api/users/${id}`),
    providers: () => request<Providers>('GET', '/api/auth/providers'),
    oidc: () => request<OidcAnswer>('GET', '/api/settings/oidc'),
    saveOidc: (o: OidcInput) => request<OidcAnswer>('PUT', '/api/settings/oidc', o),
    deleteOidc: () => request<void>('DELETE', '/api/settings/oidc'),
    testOidc: () => request<{ issuer: string; signing_keys: number; redirect_url: string }>('POST', '/api/settings/oidc/test'),
    createStageWebhook: (project: string, stage: string) =>
      request<{ path: string }>('POST', `/api/projects/${enc(project)}/stages/${enc(stage)}/webhook`),
    deleteStageWebhook: (project: string, stage: string) =>
      request<void>('DELETE', `/api/projects/${enc(project)}/stages/${enc(stage)}/webhook`),
    endUserSessions: (id: number) => request<{ ended: number }>('POST', `/api/users/${id}/sessions/revoke`),
    audit: (q: AuditQuery = {}) => {
      const params = new URLSearchParams();
      for (const [k, v] of Object.entries(q)) if (v !== undefined && v !== '') params.set(k, String(v));
      const qs = params.toString();
      return request<AuditEntry[]>('GET', `/api/audit${qs ? `?${qs}` : ''}`);
    },
    instanceAction: (project: string, stage: string, id: string, action: InstanceAction) =>
      action === 'remove'
        ? request<InstanceRecord>('DELETE', `/api/projects/${enc(project)}/stages/${enc(stage)}/instances/${enc(id)}`)
        : request<InstanceRecord>(
            'POST',
            `/api/projects/${enc(project)}/stages/${enc(stage)}/instances/${enc(id)}/${action}`,
          ),
  };
}

export const api = client();
