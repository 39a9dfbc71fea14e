import { describe, expect, it } from 'vitest';
import { engineLabel } from './health.svelte';
import { effective } from './theme.svelte';

describe('engineLabel', () => {
  it('describes each engine state', () => {
    const base = { status: 'ok' as const, version: '0.1.0', database: { status: 'ok' } };
    expect(engineLabel(null).tone).toBe('warn');
    const ok = engineLabel({ ...base, engine: { status: 'connected', engine_version: '20.10.24', api_version: '1.41', os: 'linux' } });
    expect(ok).toMatchObject({ tone: 'ok', text: 'Engine 20.10.24' });
    expect(ok.detail).toContain('API 1.41');
    const bad = engineLabel({ ...base, status: 'ok', engine: { status: 'unavailable', error: 'no Docker socket at /x' } });
    expect(bad).toMatchObject({ tone: 'bad', detail: 'no Docker socket at /x' });
  });
});

describe('theme', () => {
  it('follows the system unless chosen', () => {
    expect(effective('system', true)).toBe('dark');
    expect(effective('system', false)).toBe('light');
    expect(effective('light', true)).toBe('light');
    expect(effective('dark', false)).toBe('dark');
  });
});
