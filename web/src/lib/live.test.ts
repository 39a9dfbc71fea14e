import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { debounce, subscribe, type LiveState } from './live.svelte';

// A stand-in for the browser's EventSource that the test drives.
class FakeSource {
  static all: FakeSource[] = [];
  readyState = 0;
  onopen: (() => void) | null = null;
  onerror: (() => void) | null = null;
  listeners: Record<string, ((e: { data: string }) => void)[]> = {};
  closed = false;
  constructor(readonly url: string) {
    FakeSource.all.push(this);
  }
  addEventListener(name: string, fn: (e: { data: string }) => void) {
    (this.listeners[name] ??= []).push(fn);
  }
  close() {
    this.closed = true;
    this.readyState = 2;
  }
  emit(name: string, data: string) {
    for (const fn of this.listeners[name] ?? []) fn({ data });
  }
  open() {
    this.readyState = 1;
    this.onopen?.();
  }
  fail(gaveUp: boolean) {
    this.readyState = gaveUp ? 2 : 0;
    this.onerror?.();
  }
}

describe('subscribe', () => {
  beforeEach(() => {
    FakeSource.all = [];
    vi.useFakeTimers();
  });
  afterEach(() => vi.useRealTimers());

  function start() {
    const seen: string[] = [];
    const states: LiveState[] = [];
    let resyncs = 0;
    const stop = subscribe('/api/events', {
      on: { deploy: (d) => seen.push(d) },
      resync: () => resyncs++,
      delay: 100,
      maxDelay: 400,
      source: FakeSource as unknown as new (url: string) => EventSource,
      report: (s) => states.push(s),
    });
    return { seen, states, stop, resyncs: () => resyncs };
  }

  it('delivers events and resyncs after the browser reconnected by itself', () => {
    const t = start();
    const es = FakeSource.all[0]!;
    es.open();
    es.emit('deploy', '{"state":"pulling"}');
    expect(t.seen).toEqual(['{"state":"pulling"}']);
    expect(t.resyncs()).toBe(0);
    es.fail(false);
    expect(t.states.at(-1)).toBe('reconnecting');
    es.open();
    expect(t.resyncs()).toBe(1);
    expect(t.states.at(-1)).toBe('live');
    expect(FakeSource.all.length).toBe(1);
  });

  it('reopens with a doubling back-off when the browser gave up, then resyncs', () => {
    const t = start();
    FakeSource.all[0]!.open();
    FakeSource.all[0]!.fail(true);
    vi.advanceTimersByTime(99);
    expect(FakeSource.all.length).toBe(1);
    vi.advanceTimersByTime(1);
    expect(FakeSource.all.length).toBe(2);
    FakeSource.all[1]!.fail(true);
    vi.advanceTimersByTime(199);
    expect(FakeSource.all.length).toBe(2);
    vi.advanceTimersByTime(1);
    expect(FakeSource.all.length).toBe(3);
    FakeSource.all[2]!.open();
    expect(t.resyncs()).toBe(1);
    // Connected again: the back-off starts over.
    FakeSource.all[2]!.fail(true);
    vi.advanceTimersByTime(100);
    expect(FakeSource.all.length).toBe(4);
  });

  it('passes the server\'s resync on and stops for good when closed', () => {
    const t = start();
    const es = FakeSource.all[0]!;
    es.open();
    es.emit('resync', '3 events were dropped; reload');
    expect(t.resyncs()).toBe(1);
    t.stop();
    expect(es.closed).toBe(true);
    es.fail(true);
    vi.advanceTimersByTime(10000);
    expect(FakeSource.all.length).toBe(1);
  });
});

describe('debounce', () => {
  it('runs once after a burst', () => {
    vi.useFakeTimers();
    let n = 0;
    const d = debounce(() => n++, 50);
    d();
    d();
    vi.advanceTimersByTime(40);
    d();
    vi.advanceTimersByTime(49);
    expect(n).toBe(0);
    vi.advanceTimersByTime(1);
    expect(n).toBe(1);
    vi.useRealTimers();
  });
});
