import { describe, expect, it } from 'vitest';
import { ApiError, client, errorFrom } from './api';

describe('errorFrom', () => {
  it('takes the message from berth envelope', () => {
    const e = errorFrom(429, 'Too Many Requests', '{"error":{"status":429,"code":"too_many_requests","message":"too many failed logins; try again in 2 s"}}');
    expect(e).toBeInstanceOf(ApiError);
    expect(e.status).toBe(429);
    expect(e.code).toBe('too_many_requests');
    expect(e.message).toBe('too many failed logins; try again in 2 s');
  });
  it('never shows raw bodies that are not the envelope', () => {
    const e = errorFrom(502, 'Bad Gateway', '<html>nginx</html>');
    expect(e.message).toBe('502 Bad Gateway');
  });
  it('explains a network failure', () => {
    expect(errorFrom(0, '', '').message).toMatch(/cannot be reached/);
  });
});

describe('client', () => {
  it('sends JSON and returns the body', async () => {
    const seen: { url: string; init: RequestInit }[] = [];
    const api = client(async (url, init) => {
      seen.push({ url: String(url), init: init ?? {} });
      return new Response('{"user":{"id":1,"username":"a","role":"admin","disabled":false,"created_at":"t"},"expires_at":"x"}', {
        status: 200,
        headers: { 'content-type': 'application/json' },
      });
    });
    const r = await api.login('a', 'pw');
    expect(r.user.role).toBe('admin');
    expect(seen[0]?.url).toBe('/api/auth/login');
    expect(seen[0]?.init.method).toBe('POST');
    expect(JSON.parse(String(seen[0]?.init.body))).toEqual({ username: 'a', password: 'pw' });
    expect((seen[0]?.init.headers as Record<string, string>)['content-type']).toBe('application/json');
  });
  it('throws the envelope message on errors and handles 204', async () => {
    const api = client(async (url) =>
      String(url).endsWith('logout')
        ? new Response(null, { status: 204 })
        : new Response('{"error":{"status":401,"code":"unauthorized","message":"authentication required"}}', { status: 401 }),
    );
    await expect(api.me()).rejects.toThrow('authentication required');
    await expect(api.logout()).resolves.toBeUndefined();
  });
  it('turns a failed fetch into a readable error', async () => {
    const api = client(async () => {
      throw new TypeError('Failed to fetch');
    });
    await expect(api.health()).rejects.toThrow(/cannot be reached/);
  });
});
