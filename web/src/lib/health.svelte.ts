// berth's and the engine's health, polled while the app is open.

import { api, type Health, messageOf } from './api';

export const health = $state<{ value: Health | null; error: string | null }>({ value: null, error: null });

export async function pollHealth() {
  try {
    health.value = await api.health();
    health.error = null;
  } catch (e) {
    health.error = messageOf(e);
  }
}

/** Polls every `ms` until the returned function is called. */
export function startHealthPolling(ms = 5000): () => void {
  void pollHealth();
  const id = setInterval(() => void pollHealth(), ms);
  return () => clearInterval(id);
}

/** A short line about the engine for the status pill. */
export function engineLabel(h: Health | null): { tone: 'ok' | 'warn' | 'bad'; text: string; detail: string } {
  if (!h) return { tone: 'warn', text: 'Checking engine…', detail: '' };
  const e = h.engine;
  switch (e.status) {
    case 'connected':
      return { tone: 'ok', text: `Engine ${e.engine_version}`, detail: `Docker ${e.engine_version}, API ${e.api_version}, ${e.os}` };
    case 'unavailable':
      return { tone: 'bad', text: 'Engine unreachable', detail: e.error };
    default:
      return { tone: 'warn', text: 'Connecting to engine…', detail: '' };
  }
}
