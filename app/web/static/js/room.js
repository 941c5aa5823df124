// The client's room: what the host shows, the shared cart (list vs session price), the
// client's own adds and edits, the hold countdown, checkout, then the order and sales sheet.
// This page sees only the client projection of the session: its procedures and its stream
// never carry anything meant for staff.

import { makeRpc } from './api.js';
import { claimsOf, takeToken } from './auth.js';
import { byId, h, markDirtyOnInput, setInputValue, setText, syncList } from './dom.js';
import { describeError } from './errors.js';
import {
  centsToDecimal, decimalInput, formatClock, formatCountdown, formatMoney, formatPercent, formatQuantity,
  plainDecimal, secondsUntil, toCents,
} from './format.js';
import { LiveStream } from './stream.js';
import { showToast, showConnection } from './page.js';

const TOKEN_KEY = 'liveshop.room.token';
const roomCode = decodeURIComponent(location.pathname.replace(/^\/room\//, ''));
const token = takeToken(TOKEN_KEY);
const state = { session: null, cart: null, orderId: null, shareUrl: null };
let call = null;

const STATUS_LINES = {
  SCHEDULED: 'The session has not started yet. Your host will open it soon.',
  ACTIVE: 'Live now: add items, change your own, and ask to check out when ready.',
  PAUSED: 'Your host paused the session. Your cart is kept.',
  ENDED: 'The session has ended. Your host kept the cart as a draft.',
  CONVERTED: 'Thank you: your cart became an order.',
  CANCELLED: 'This session was cancelled.',
};

function problem(text) {
  byId('room').hidden = true;
  byId('problem').hidden = false;
  setText(byId('problem-text'), text);
}

function act(promise) {
  return promise.catch((error) => showToast(describeError(error)));
}

// --- rendering ---------------------------------------------------------------------------

function isOpenForClient() {
  return state.session && state.session.status === 'ACTIVE';
}

function render() {
  const { session, cart } = state;
  if (!session || !cart) return;
  byId('room').hidden = false;
  setText(byId('room-title'), session.title || 'Live shopping');
  document.title = `${session.title || 'Live shopping'} · your room`;
  setText(byId('status-line'), STATUS_LINES[session.status] || '');
  renderPresence();
  renderCountdown();
  renderHighlight();
  renderCart();
  renderCheckout();
  renderOrder();
  for (const button of byId('search-results').querySelectorAll('button')) {
    button.disabled = !isOpenForClient();
  }
}

function renderPresence() {
  const presence = state.session.presence;
  setText(byId('host-presence'), presence && presence.host ? '· your host is here' : '· your host is away');
}

function renderCountdown() {
  const session = state.session;
  if (!session) return;
  const open = ['ACTIVE', 'PAUSED', 'SCHEDULED'].includes(session.status);
  const element = byId('hold-countdown');
  setText(element, open && session.holdsExpireAt ? formatCountdown(session.holdsExpireAt) : '–');
  element.title = open && session.holdsExpireAt ? `until ${formatClock(session.holdsExpireAt)}` : '';
  element.classList.toggle('soon', open && secondsUntil(session.holdsExpireAt) < 600);
}

function renderHighlight() {
  const highlight = state.session.highlight;
  byId('highlight-empty').hidden = Boolean(highlight);
  byId('highlight-product').hidden = !highlight;
  if (!highlight) return;
  setText(byId('highlight-name'), highlight.productName);
  setText(byId('highlight-code'), highlight.batchCode);
  setText(byId('highlight-price'), formatMoney(highlight.listPrice));
  const form = byId('highlight-add');
  form.dataset.batchId = highlight.batchId;
  form.querySelector('button').disabled = !isOpenForClient();
}

function lineSaving(item) {
  const perUnit = toCents(item.listPrice) - toCents(item.unitPrice);
  const share = toCents(item.listPrice) > 0 ? perUnit / toCents(item.listPrice) : 0;
  return { perUnit, share };
}

function createLine(item) {
  const own = item.addedByRole === 'CLIENT';
  const li = h('li', { class: 'line' });
  li.append(
    h('div', { class: 'line-head' },
      h('span', { class: 'product-name' }),
      h('span', { class: 'tag sample', hidden: true }, 'Sample'),
      h('span', { class: 'tag star', hidden: true }, 'Showing'),
    ),
    h('p', { class: 'muted line-meta' }),
    h('p', { class: 'prices' },
      h('s', { class: 'list num', 'aria-label': 'list price' }),
      ' ',
      h('strong', { class: 'price num' }),
      ' ',
      h('span', { class: 'saving num' }),
    ),
  );
  const row = h('div', { class: 'line-foot' });
  if (own) {
    const input = h('input', {
      type: 'text', inputmode: 'decimal', size: 6, class: 'qty', name: 'quantity',
      id: `qty-${item.id}`,
    });
    markDirtyOnInput(input);
    const form = h('form', { class: 'inline-form qty-form' },
      h('label', { for: `qty-${item.id}` }, 'Quantity'),
      input,
      h('button', { type: 'submit', class: 'update' }, 'Update'),
    );
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      act(call('vipPortalLiveShopping.updateCartQuantity', {
        roomCode, cartItemId: item.id, quantity: decimalInput(input.value),
      }).then(() => { delete input.dataset.dirty; }));
    });
    const remove = h('button', { type: 'button', class: 'remove' }, 'Remove');
    remove.addEventListener('click', () => act(call('vipPortalLiveShopping.removeFromCart', {
      roomCode, cartItemId: item.id,
    })));
    row.append(form, remove);
  } else {
    row.append(h('span', { class: 'qty-text num' }));
  }
  row.append(h('span', { class: 'subtotal num' }));
  li.append(row);
  return li;
}

function updateLine(li, item) {
  const own = item.addedByRole === 'CLIENT';
  li.classList.toggle('own', own);
  setText(li.querySelector('.product-name'), item.productName);
  li.querySelector('.tag.sample').hidden = !item.isSample;
  li.querySelector('.tag.star').hidden = !item.isHighlighted;
  setText(li.querySelector('.line-meta'),
    `${item.batchCode} · ${own ? 'added by you' : 'added by your host'}`);
  const { perUnit, share } = lineSaving(item);
  setText(li.querySelector('.list'), perUnit > 0 ? formatMoney(item.listPrice) : '');
  setText(li.querySelector('.price'), formatMoney(item.unitPrice));
  setText(li.querySelector('.saving'),
    perUnit > 0 ? `save ${formatMoney(centsToDecimal(perUnit))} (${formatPercent(share)})` : '');
  if (own) {
    const input = li.querySelector('input.qty');
    setInputValue(input, plainDecimal(item.quantity));
    input.setAttribute('aria-label', `Quantity of ${item.productName}`);
    const enabled = isOpenForClient();
    input.disabled = !enabled;
    li.querySelector('button.update').disabled = !enabled;
    li.querySelector('button.remove').disabled = !enabled;
    li.querySelector('button.remove').setAttribute('aria-label', `Remove ${item.productName}`);
  } else {
    setText(li.querySelector('.qty-text'), `Qty ${formatQuantity(item.quantity)}`);
  }
  setText(li.querySelector('.subtotal'), item.isSample ? 'free sample' : formatMoney(item.subtotal));
}

function renderCart() {
  const items = state.cart.items;
  syncList(byId('cart-lines'), items, (item) => `${item.id}:${item.addedByRole}`, createLine, updateLine);
  byId('cart-empty').hidden = items.length > 0;
  setText(byId('cart-count'), items.length ? `(${items.length} ${items.length === 1 ? 'line' : 'lines'})` : '');
  let listCents = 0;
  for (const item of items) {
    if (!item.isSample) listCents += Math.round(toCents(item.listPrice) * Number(item.quantity));
  }
  const totalCents = toCents(state.cart.subtotal);
  setText(byId('total-list'), formatMoney(centsToDecimal(listCents)));
  const saving = Math.max(0, listCents - totalCents);
  const share = listCents > 0 ? saving / listCents : 0;
  setText(byId('total-saving'), saving > 0 ? `${formatMoney(centsToDecimal(saving))} (${formatPercent(share)})` : formatMoney('0'));
  setText(byId('total'), formatMoney(state.cart.subtotal));
}

function renderCheckout() {
  const { session, cart } = state;
  const button = byId('request-checkout');
  const checkout = session.checkout;
  const pending = checkout && !checkout.answeredAt;
  button.disabled = !isOpenForClient() || cart.items.length === 0 || Boolean(pending);
  let text = '\u00a0';
  if (session.status === 'CONVERTED') text = 'Your host converted the cart into an order.';
  else if (pending) text = `Checkout requested at ${formatClock(checkout.requestedAt)}: waiting for your host…`;
  else if (checkout && checkout.accepted) text = `Your host accepted${checkout.message ? `: “${checkout.message}”` : '.'}`;
  else if (checkout && checkout.accepted === false) text = `Your host declined${checkout.message ? `: “${checkout.message}”` : '.'} You can ask again.`;
  else if (cart.items.length === 0) text = 'Add something to the cart to check out.';
  const element = byId('checkout-state');
  setText(element, text);
  element.dataset.answer = checkout && checkout.answeredAt ? (checkout.accepted ? 'accepted' : 'declined') : '';
}

function renderOrder() {
  const orderId = state.orderId;
  byId('order').hidden = !orderId;
  byId('checkout-controls').hidden = Boolean(orderId);
  if (!orderId) return;
  setText(byId('order-id'), `#${orderId}`);
  const link = byId('sheet-link');
  link.hidden = !state.shareUrl;
  if (state.shareUrl) link.href = sameOriginOnly(state.shareUrl);
}

// A share link is built by the service from this page's own host; anything else is dropped.
function sameOriginOnly(url) {
  try {
    const parsed = new URL(url, location.href);
    return parsed.origin === location.origin ? parsed.href : '#';
  } catch {
    return '#';
  }
}

function apply(data) {
  state.session = data.session;
  state.cart = data.cart;
  state.orderId = data.orderId || data.session.orderId || state.orderId;
  state.shareUrl = data.shareUrl || data.session.shareUrl || state.shareUrl;
  render();
}

// --- actions -----------------------------------------------------------------------------

function add(batchId, quantity) {
  return act(call('vipPortalLiveShopping.addToCart', { roomCode, batchId: Number(batchId), quantity }));
}

// What is free to buy follows the cart (other sessions' holds too, read on each cart change);
// rows are kept by batch, so a quantity being typed stays.
let lastQuery = '';
let searchTimer = null;

async function search(query = lastQuery) {
  lastQuery = query;
  let found;
  try {
    found = await call('vipPortalLiveShopping.searchInventory', query ? { query, limit: 20 } : { limit: 20 });
  } catch (error) {
    if (error.code !== 'NETWORK') showToast(describeError(error));
    return;
  }
  syncList(byId('search-results'), found, (stock) => stock.batchId, resultRow, updateResult);
  byId('search-empty').hidden = found.length > 0;
}

function searchSoon() {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(() => search(), 300);
}

function resultRow(stock) {
  const id = `add-${stock.batchId}`;
  const input = h('input', { id, type: 'text', inputmode: 'decimal', size: 5, value: '1', name: 'quantity' });
  const form = h('form', { class: 'inline-form' },
    h('label', { for: id, class: 'visually-hidden' }, `Quantity of ${stock.productName} ${stock.code}`),
    input,
    h('button', { type: 'submit', 'aria-label': `Add ${stock.productName} ${stock.code}` }, 'Add'),
  );
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    add(stock.batchId, decimalInput(input.value));
  });
  return h('li', { class: 'result' },
    h('div', {},
      h('span', { class: 'product-name' }, stock.productName),
      h('p', { class: 'muted' }, `${stock.code} · list `, h('span', { class: 'num list' })),
      // Last on its line: a new figure arriving moves nothing after it.
      h('p', { class: 'muted' }, 'Available: ', h('span', { class: 'num free' }))),
    form,
  );
}

function updateResult(li, stock) {
  setText(li.querySelector('.free'), formatQuantity(stock.available));
  setText(li.querySelector('.list'), formatMoney(stock.listPrice));
  li.querySelector('button').disabled = !isOpenForClient();
}

function wire() {
  byId('highlight-add').addEventListener('submit', (event) => {
    event.preventDefault();
    add(event.currentTarget.dataset.batchId, decimalInput(byId('highlight-qty').value));
  });
  byId('request-checkout').addEventListener('click', () => act(
    call('vipPortalLiveShopping.requestCheckout', { roomCode }),
  ));
  byId('search-form').addEventListener('submit', (event) => {
    event.preventDefault();
    search(byId('search-query').value.trim());
  });
  setInterval(renderCountdown, 1000);
}

function main() {
  if (!roomCode) return problem('This link does not name a room.');
  if (!token) return problem('Open this room from the link you were sent: it signs you in.');
  const claims = claimsOf(token);
  if (!claims || claims.role !== 'CLIENT') {
    return problem('This link is for the client of the session. Staff use the console.');
  }
  call = makeRpc(token);
  wire();
  const stream = new LiveStream({
    path: `/api/sse/vip/live-shopping/${encodeURIComponent(roomCode)}`,
    ticket: async () => (await call('vipPortalLiveShopping.createStreamTicket', { roomCode })).ticket,
    onEvent: (type, data) => {
      apply(data);
      if (type === 'CART_UPDATED' || type === 'SESSION_STATUS') searchSoon();
    },
    onStatus: (status, error) => {
      showConnection(status);
      if (status === 'failed') {
        problem(error.code === 'NOT_FOUND'
          ? 'This room link is not valid, or the session is not yours.'
          : describeError(error));
      }
    },
  });
  stream.start();
  search('');
}

main();
