// How far along one layer of an image pull is, for a progress bar.

import type { LayerProgress } from './api';

/** 0–100: downloading is the first 80 %, extracting the rest; done is 100. */
export function layerPercent(p: LayerProgress): number {
  const s = p.status.toLowerCase();
  if (s === 'pull complete' || s === 'already exists') return 100;
  const frac = p.total && p.current !== null ? Math.min(1, p.current / p.total) : 0;
  if (s === 'downloading') return Math.round(frac * 80);
  if (s === 'verifying checksum' || s === 'download complete') return 80;
  if (s === 'extracting') return 80 + Math.round(frac * 20);
  return 0;
}
