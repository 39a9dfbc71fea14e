// A small history-API router: the server sends index.html for any non-/api path, and this
// picks the page.

export const PAGES = ['dashboard', 'projects', 'deploys', 'settings'] as const;
export type Page = (typeof PAGES)[number];

/** The page for a path; unknown paths fall back to the dashboard. */
export function pageFor(path: string): Page {
  const first = path.replace(/^\/+/, '').split('/')[0] ?? '';
  return (PAGES as readonly string[]).includes(first) ? (first as Page) : 'dashboard';
}

export function pathFor(page: Page): string {
  return page === 'dashboard' ? '/' : `/${page}`;
}

export const route = $state({ page: pageFor(typeof location === 'undefined' ? '/' : location.pathname) });

export function navigate(page: Page) {
  if (route.page === page) return;
  history.pushState({}, '', pathFor(page));
  route.page = page;
}

if (typeof window !== 'undefined') {
  window.addEventListener('popstate', () => {
    route.page = pageFor(location.pathname);
  });
}
