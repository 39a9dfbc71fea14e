import { describe, expect, it } from 'vitest';
import { ago, shortDigest, took } from './time';

describe('time', () => {
  const now = Date.parse('2026-11-23T10:00:00Z');
  it('says how long ago', () => {
    expect(ago('2026-11-23T09:59:48Z', now)).toBe('12 s ago');
    expect(ago('2026-11-23T09:57:00Z', now)).toBe('3 min ago');
    expect(ago('2026-11-23T07:00:00Z', now)).toBe('3 h ago');
    expect(ago(null, now)).toBe('–');
  });
  it('measures steps and shortens digests', () => {
    expect(took('2026-11-23T10:00:00.000Z', '2026-11-23T10:00:00.250Z')).toBe('250 ms');
    expect(took('2026-11-23T10:00:00Z', '2026-11-23T10:00:02.5Z')).toBe('2.5 s');
    expect(took('2026-11-23T10:00:00Z', null)).toBe('');
    expect(shortDigest('sha256:0123456789abcdef0123')).toBe('0123456789ab');
  });
});
