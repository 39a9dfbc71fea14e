// Light, dark, or as the system says; remembered in localStorage.

export type Theme = 'light' | 'dark' | 'system';
const KEY = 'berth.theme';

function stored(): Theme {
  try {
    const v = localStorage.getItem(KEY);
    return v === 'light' || v === 'dark' ? v : 'system';
  } catch {
    return 'system';
  }
}

export const theme = $state<{ choice: Theme }>({ choice: typeof localStorage === 'undefined' ? 'system' : stored() });

/** The theme in effect for a choice and the system preference. */
export function effective(choice: Theme, systemDark: boolean): 'light' | 'dark' {
  return choice === 'system' ? (systemDark ? 'dark' : 'light') : choice;
}

export function applyTheme() {
  const dark = window.matchMedia?.('(prefers-color-scheme: dark)').matches ?? false;
  document.documentElement.dataset.theme = effective(theme.choice, dark);
}

export function toggleTheme() {
  const dark = window.matchMedia?.('(prefers-color-scheme: dark)').matches ?? false;
  theme.choice = effective(theme.choice, dark) === 'dark' ? 'light' : 'dark';
  try {
    localStorage.setItem(KEY, theme.choice);
  } catch {
    // private mode: the choice lasts for this page only
  }
  applyTheme();
}
