import { describe, expect, it } from 'vitest';
import { layerPercent } from './progress';

const at = (status: string, current: number | null = null, total: number | null = null) =>
  layerPercent({ layer: 'a1b2c3', status, current, total });

describe('layerPercent', () => {
  it('moves forward through a pull', () => {
    const seq = [
      at('Pulling fs layer'),
      at('Waiting'),
      at('Downloading', 100, 1000),
      at('Downloading', 1000, 1000),
      at('Verifying Checksum'),
      at('Download complete'),
      at('Extracting', 500, 1000),
      at('Pull complete'),
    ];
    expect(seq).toEqual([0, 0, 8, 80, 80, 80, 90, 100]);
    for (let i = 1; i < seq.length; i++) expect(seq[i]).toBeGreaterThanOrEqual(seq[i - 1]!);
  });
  it('is full for a layer already there, and never over 100', () => {
    expect(at('Already exists')).toBe(100);
    expect(at('Extracting', 2000, 1000)).toBe(100);
    expect(at('Downloading', 5, null)).toBe(0);
  });
});
