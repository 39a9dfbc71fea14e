// Who is logged in. The session itself is an HttpOnly cookie the page cannot read: berth is
// asked (GET /api/auth/me), and a 401 anywhere means "show the login page".

import { api, ApiError, type User } from './api';

export const session = $state<{ user: User | null; checked: boolean }>({ user: null, checked: false });

export async function refreshSession() {
  try {
    session.user = (await api.me()).user;
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) session.user = null;
    else throw e;
  } finally {
    session.checked = true;
  }
}

export async function logIn(username: string, password: string) {
  session.user = (await api.login(username, password)).user;
}

export async function logOut() {
  try {
    await api.logout();
  } finally {
    session.user = null;
  }
}

/** The session already ended on the server (revoked): show the login page. */
export function forgetSession() {
  session.user = null;
}
