// A small history-API router: the server sends index.html for any non-/api path, and this
// picks the page.

export const PAGES = ['dashboard', 'projects', 'deploys', 'settings', 'users', 'audit'] as const;
export type Page = (typeof PAGES)[number];

/** The page for a path; unknown paths fall back to the dashboard. */
export function pageFor(path: string): Page {
  const first = path.replace(/^\/+/, '').split('/')[0] ?? '';
  return (PAGES as readonly string[]).includes(first) ? (first as Page) : 'dashboard';
}

export function pathFor(page: Page): string {
  return page === 'dashboard' ? '/' : `/${page}`;
}

const initial = typeof location === 'undefined' ? '/' : location.pathname;
export const route = $state<{ page: Page; sub: string | null }>({ page: pageFor(initial), sub: subFor(initial) });

/** Goes to a page; `sub` is the rest of its path (e.g. a deploy's id under /deploys). */
export function navigate(page: Page, sub?: string) {
  const path = sub ? `${pathFor(page)}/${encodeURIComponent(sub)}` : pathFor(page);
  if (location.pathname === path) return;
  history.pushState({}, '', path);
  route.page = page;
  route.sub = subFor(path);
}

/** The second segment of a path: /deploys/<id> → id. */
export function subFor(path: string): string | null {
  const seg = path.replace(/^\/+/, '').split('/')[1];
  return seg ? decodeURIComponent(seg) : null;
}

if (typeof window !== 'undefined') {
  window.addEventListener('popstate', () => {
    route.page = pageFor(location.pathname);
    route.sub = subFor(location.pathname);
  });
}
