import { describe, expect, it } from 'vitest';
import { pageFor, pathFor, PAGES, subFor } from './router.svelte';

describe('router', () => {
  it('maps paths to pages and back', () => {
    for (const p of PAGES) expect(pageFor(pathFor(p))).toBe(p);
  });
  it('falls back to the dashboard and ignores deeper segments', () => {
    expect(pageFor('/nope')).toBe('dashboard');
    expect(pageFor('/projects/web/dev')).toBe('projects');
    expect(pageFor('')).toBe('dashboard');
  });
  it('reads a deep link\'s second segment', () => {
    expect(subFor('/deploys/0193a%2Fb')).toBe('0193a/b');
    expect(subFor('/deploys')).toBeNull();
    expect(subFor('/')).toBeNull();
  });
});
