// Live updates over server-sent events, for every page that shows something that changes.
//
// EventSource reconnects by itself after a dropped connection, but gives up for good when
// the server answers with an error (berth restarting, a proxy's 502): then this reopens it
// with a doubling back-off. Events missed during a gap cannot be replayed, so whenever the
// stream opens again after a failure (and when the server says the subscriber fell behind:
// `resync`) the page's `resync` callback reloads what it shows.

export type LiveState = 'connecting' | 'live' | 'reconnecting';

/** The state of the newest subscription, for the shell's indicator. */
export const liveStatus = $state<{ state: LiveState }>({ state: 'connecting' });

export interface LiveOptions {
  /** Called for each named event with its data. */
  on: Record<string, (data: string) => void>;
  /** Reload everything shown: after a gap or when the server says events were dropped. */
  resync: () => void;
  /** The first back-off, in ms (doubles up to `maxDelay`). */
  delay?: number;
  maxDelay?: number;
  /** For tests: the EventSource constructor. */
  source?: new (url: string) => EventSource;
  /** Report state changes (defaults to the shared `liveStatus`). */
  report?: (s: LiveState) => void;
}

/** Subscribes to `url` until the returned function is called. */
export function subscribe(url: string, opts: LiveOptions): () => void {
  const Source = opts.source ?? EventSource;
  const first = opts.delay ?? 1000;
  const max = opts.maxDelay ?? 30000;
  const report = opts.report ?? ((s: LiveState) => (liveStatus.state = s));
  let es: EventSource | null = null;
  let wait = first;
  let hadGap = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let closed = false;

  const open = () => {
    if (closed) return;
    report(hadGap ? 'reconnecting' : 'connecting');
    es = new Source(url);
    es.onopen = () => {
      report('live');
      wait = first;
      if (hadGap) opts.resync();
      hadGap = false;
    };
    es.onerror = () => {
      hadGap = true;
      report('reconnecting');
      // CLOSED (2): the browser gave up; OPEN/CONNECTING: it retries by itself.
      if (es && es.readyState === 2) {
        es.close();
        clearTimeout(timer);
        timer = setTimeout(open, wait);
        wait = Math.min(wait * 2, max);
      }
    };
    for (const [name, fn] of Object.entries(opts.on)) {
      es.addEventListener(name, (e) => fn((e as MessageEvent).data as string));
    }
    es.addEventListener('resync', () => opts.resync());
  };
  open();
  return () => {
    closed = true;
    clearTimeout(timer);
    es?.close();
  };
}

/** Calls `fn` once, `ms` after the last of a burst of calls. */
export function debounce(fn: () => void, ms: number): { (): void; cancel(): void } {
  let t: ReturnType<typeof setTimeout> | undefined;
  const d = () => {
    clearTimeout(t);
    t = setTimeout(fn, ms);
  };
  d.cancel = () => clearTimeout(t);
  return d;
}

/**
 * Reloads a page's data on every deploy event (a burst reloads once, after `ms`) and after
 * any gap in the stream; returns the function that stops it.
 */
export function reloadOnEvents(reload: () => void, opts: { ms?: number; resync?: () => void } = {}): () => void {
  const soon = debounce(reload, opts.ms ?? 300);
  const stop = subscribe('/api/events', { on: { deploy: soon }, resync: opts.resync ?? reload });
  return () => {
    stop();
    soon.cancel();
  };
}
