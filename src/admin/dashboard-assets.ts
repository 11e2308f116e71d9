import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

/**
 * The dashboard's static files (`src/admin/dashboard/`, copied next to this module into
 * `dist/admin/dashboard/` by `npm run build`). They are the only routes besides the probes
 * and `/metrics` that need no token, so they hold no fleet data: the page reads everything
 * through the bearer-token API, like the CLI.
 */
export interface DashboardAsset {
  readonly contentType: string;
  readonly body: Buffer;
}

/** URL path → file in the dashboard folder. A fixed list: no path from a request ever reaches the file system. */
const ASSETS: ReadonlyArray<readonly [path: string, file: string, contentType: string]> = [
  ['/', 'index.html', 'text/html; charset=utf-8'],
  ['/dashboard/app.js', 'app.js', 'text/javascript; charset=utf-8'],
  ['/dashboard/style.css', 'style.css', 'text/css; charset=utf-8'],
  ['/dashboard/favicon.svg', 'favicon.svg', 'image/svg+xml'],
];

/**
 * Scripts, styles, images and API calls from the admin origin only; no inline script or style,
 * no framing, no form posts, no base-URI games. What `default-src 'self'` leaves open is closed.
 */
export const DASHBOARD_CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

/** Headers of every dashboard file. `no-referrer`: the page's URL never travels anywhere. */
export const DASHBOARD_HEADERS: Readonly<Record<string, string>> = {
  'content-security-policy': DASHBOARD_CSP,
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
  // Revalidated on each load, so a new server version's page is never mixed with an old script.
  'cache-control': 'no-cache',
};

/** Reads the dashboard files once. A file that is missing is left out (its path answers 404). */
export function loadDashboardAssets(dir: string = fileURLToPath(new URL('./dashboard/', import.meta.url))): ReadonlyMap<string, DashboardAsset> {
  const assets = new Map<string, DashboardAsset>();
  for (const [path, file, contentType] of ASSETS) {
    let body: Buffer;
    try {
      body = readFileSync(join(dir, file));
    } catch {
      continue;
    }
    assets.set(path, { contentType, body });
  }
  return assets;
}
