// Sign-in for the pages: the bearer token arrives in the URL fragment (#token=...), which the
// browser never sends to a server. It is moved into this tab's sessionStorage and taken out of
// the address bar at once, so it is not bookmarked, shared or left in the history.

export function takeToken(storageKey) {
  const fragment = new URLSearchParams(location.hash.slice(1));
  const given = fragment.get('token');
  if (given) {
    sessionStorage.setItem(storageKey, given);
    fragment.delete('token');
    const rest = fragment.toString();
    history.replaceState(history.state, '', location.pathname + location.search + (rest ? '#' + rest : ''));
  }
  return sessionStorage.getItem(storageKey);
}

export function forgetToken(storageKey) {
  sessionStorage.removeItem(storageKey);
}

// What the token says about its holder (role, user id), for showing the right controls only.
// The server checks every call; nothing here is trusted for access.
export function claimsOf(token) {
  try {
    const part = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    const json = atob(part.padEnd(part.length + ((4 - (part.length % 4)) % 4), '='));
    const claims = JSON.parse(json);
    return { userId: Number(claims.sub), role: String(claims.role), expiresAt: Number(claims.exp) * 1000 };
  } catch {
    return null;
  }
}
