import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { PNG } from 'pngjs';

/** Path of a Chromium binary on PATH (`apt-get install chromium`), or undefined. */
export function findChromium(): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(':')) {
    for (const name of ['chromium', 'chromium-browser', 'google-chrome']) {
      try {
        if (statSync(`${dir}/${name}`).isFile()) return `${dir}/${name}`;
      } catch {
        /* not in this folder */
      }
    }
  }
  return undefined;
}

/**
 * Screenshots a page (file:// or http://) with headless Chromium and decodes the PNG. Chromium gets 180 s (about 4 s on
 * the idle 2-core machine; CI runs other packages' tests beside it) and is killed with SIGKILL after that; a
 * screenshot it wrote before a slow shutdown is still used.
 */
export function screenshot(chromium: string, url: string, png: string, size = [1200, 1600] as const, extraArgs: readonly string[] = []): PNG {
  try {
    execFileSync(
      chromium,
      ['--headless', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run', '--hide-scrollbars', `--window-size=${size[0]},${size[1]}`, ...extraArgs, `--screenshot=${png}`, url],
      { stdio: 'ignore', timeout: 180_000, killSignal: 'SIGKILL' },
    );
  } catch (error) {
    if (!existsSync(png)) throw error;
  }
  return PNG.sync.read(readFileSync(png));
}

/** Number of pixels within `tolerance` (per channel) of the colour `#rrggbb`. */
export function countColor(png: PNG, hex: string, tolerance = 8): number {
  const [r, g, b] = [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16)) as [number, number, number];
  let n = 0;
  for (let o = 0; o < png.data.length; o += 4) {
    if (Math.abs(png.data[o]! - r) <= tolerance && Math.abs(png.data[o + 1]! - g) <= tolerance && Math.abs(png.data[o + 2]! - b) <= tolerance) n++;
  }
  return n;
}
