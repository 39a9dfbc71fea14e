// Times for people: "12 s ago", "3 min ago", and durations between two RFC 3339 times.

export function ago(iso: string | null | undefined, now: number = Date.now()): string {
  if (!iso) return '–';
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} d ago`;
}

export function took(start: string | null | undefined, end: string | null | undefined): string {
  if (!start || !end) return '';
  const ms = Date.parse(end) - Date.parse(start);
  return ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(1)} s`;
}

export function shortDigest(d: string | null | undefined): string {
  return d ? d.replace('sha256:', '').slice(0, 12) : '–';
}
