// What both pages show the same way: the connection state and passing messages.

import { byId, setText } from './dom.js';

const CONNECTION_TEXT = {
  connecting: 'Connecting…',
  live: 'Live',
  reconnecting: 'Reconnecting…',
  closed: 'Session closed',
  failed: 'Not connected',
};

export function showConnection(status) {
  const element = byId('connection');
  element.dataset.state = status;
  setText(element, CONNECTION_TEXT[status] || status);
}

let toastTimer = null;

// A message for a few seconds in a fixed place over the page (it shifts nothing).
export function showToast(text, kind = 'error') {
  const toast = byId('toast');
  toast.dataset.kind = kind;
  setText(toast, text);
  toast.classList.add('shown');
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => toast.classList.remove('shown'), kind === 'error' ? 8000 : 3000);
}
