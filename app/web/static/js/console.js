// The staff console: the sessions list, and one live session with everything the host needs
// (inventory, cart, session prices, highlight, credit, holds, presence, checkout, end,
// sales sheet, timeline). State comes from the session's stream: every event carries the
// whole session and cart, so each one simply replaces what the page shows.

import { makeRpc } from './api.js';
import { claimsOf, takeToken } from './auth.js';
import { byId, h, markDirtyOnInput, setInputValue, setText, syncList } from './dom.js';
import { describeError } from './errors.js';
import {
  decimalInput, formatClock, formatCountdown, formatDateTime, formatMoney, formatPercent,
  formatQuantity, plainDecimal, secondsUntil,
} from './format.js';
import { showConnection, showToast } from './page.js';
import { LiveStream } from './stream.js';
import { describeEntry } from './timeline.js';

const TOKEN_KEY = 'liveshop.console.token';
const PAGE_SIZE = 25;
const OPEN = new Set(['SCHEDULED', 'ACTIVE', 'PAUSED']);
const FINAL = new Set(['CONVERTED', 'CANCELLED']);
// Events after which the credit status may have moved.
const CREDIT_EVENTS = new Set([
  'SESSION_SNAPSHOT', 'CART_UPDATED', 'PRICE_CHANGED', 'SESSION_STATUS', 'SESSION_CONVERTED',
  'SESSION_TIMEOUT',
]);

const token = takeToken(TOKEN_KEY);
const me = token ? claimsOf(token) : null;
let call = null;

function problem(text) {
  byId('list-view').hidden = true;
  byId('session-view').hidden = true;
  byId('problem').hidden = false;
  setText(byId('problem-text'), text);
}

// Credit failures are for staff eyes only, so their words live here, not in errors.js.
function staffError(error) {
  const data = error.data || {};
  if (error.code === 'PRECONDITION_FAILED' && data.creditLevel) {
    return me && me.role === 'ADMIN'
      ? 'The client\'s credit limit would be exceeded. Tick "Bypass the credit check" to convert anyway.'
      : 'The client\'s credit limit would be exceeded. Only an admin can convert this cart.';
  }
  if (error.code === 'CONFLICT' && data.orderId) {
    return `This session was already converted into order #${data.orderId}.`;
  }
  if (error.code === 'PRECONDITION_FAILED' && data.fromStatus && data.toStatus) {
    return `A ${data.fromStatus.toLowerCase()} session cannot become ${data.toStatus.toLowerCase()}.`;
  }
  return null;
}

function act(promise) {
  return promise.catch((error) => showToast(describeError(error, staffError)));
}

function actorName(actor) {
  if (!actor) return 'System';
  if (me && actor.userId === me.userId) return 'You';
  if (actor.role === 'CLIENT') return 'Client';
  return `${actor.role === 'ADMIN' ? 'Admin' : 'Staff'} ${actor.userId}`;
}

// ======================= sessions list =======================================================

const list = { offset: 0, clients: [] };

async function loadClients() {
  try {
    list.clients = await call('clients.list', { limit: 100 });
  } catch (error) {
    showToast(describeError(error, staffError));
    return;
  }
  for (const select of [byId('filter-client'), byId('create-client')]) {
    select.append(...list.clients.map((c) => h('option', { value: String(c.id) }, c.name)));
  }
}

function dayStart(value, endOfDay = false) {
  if (!value) return undefined;
  const date = new Date(`${value}T00:00:00`);
  if (endOfDay) date.setDate(date.getDate() + 1);
  return date.toISOString();
}

async function loadSessions() {
  const params = { limit: PAGE_SIZE + 1, offset: list.offset };
  const status = byId('filter-status').value;
  const clientId = byId('filter-client').value;
  if (status) params.status = status;
  if (clientId) params.clientId = Number(clientId);
  if (byId('filter-mine').checked && me) params.hostUserId = me.userId;
  const from = dayStart(byId('filter-from').value);
  const to = dayStart(byId('filter-to').value, true);
  if (from) params.createdFrom = from;
  if (to) params.createdTo = to;
  let rows;
  try {
    rows = await call('liveShopping.listSessions', params);
  } catch (error) {
    showToast(describeError(error, staffError));
    return;
  }
  const more = rows.length > PAGE_SIZE;
  rows = rows.slice(0, PAGE_SIZE);
  byId('sessions-body').replaceChildren(...rows.map(sessionRow));
  byId('sessions-empty').hidden = rows.length > 0;
  byId('page-prev').disabled = list.offset === 0;
  byId('page-next').disabled = !more;
  setText(byId('page-info'), rows.length ? `${list.offset + 1}–${list.offset + rows.length}` : '');
}

function sessionRow(s) {
  const link = h('a', { href: `/console/session/${s.id}` }, s.title || `Session ${s.id}`);
  return h('tr', {},
    h('td', { class: 'num' }, String(s.id)),
    h('td', {}, link),
    h('td', {}, s.clientName),
    h('td', {}, h('span', { class: 'status-badge', dataset: { status: s.status } }, s.status)),
    h('td', {}, me && s.hostUserId === me.userId ? 'you' : `user ${s.hostUserId}`),
    h('td', { class: 'num' }, formatDateTime(s.createdAt)),
    h('td', { class: 'n num' }, OPEN.has(s.status) ? formatClock(s.holdsExpireAt) : ''),
  );
}

async function createSession(event) {
  event.preventDefault();
  const params = { clientId: Number(byId('create-client').value) };
  const title = byId('create-title').value.trim();
  const scheduled = byId('create-scheduled').value;
  const notes = byId('create-notes').value.trim();
  if (title) params.title = title;
  if (scheduled) params.scheduledAt = new Date(scheduled).toISOString();
  if (notes) params.internalNotes = notes;
  try {
    const created = await call('liveShopping.createSession', params);
    location.assign(`/console/session/${created.sessionId}`);
  } catch (error) {
    showToast(describeError(error, staffError));
  }
}

function showList() {
  byId('list-view').hidden = false;
  byId('connection').hidden = true; // the list follows no stream
  byId('filters').addEventListener('change', () => { list.offset = 0; loadSessions(); });
  byId('filters').addEventListener('submit', (e) => e.preventDefault());
  byId('page-prev').addEventListener('click', () => { list.offset = Math.max(0, list.offset - PAGE_SIZE); loadSessions(); });
  byId('page-next').addEventListener('click', () => { list.offset += PAGE_SIZE; loadSessions(); });
  byId('create-form').addEventListener('submit', createSession);
  loadClients().then(loadSessions);
}

// ======================= one session =========================================================

const live = {
  id: null,
  session: null,
  cart: null,
  orderId: null,
  shareUrl: null,
  credit: null,
  timeline: new Map(), // seq -> entry
  names: new Map(), // batchId -> "Product (code)", for the timeline and highlight
};

function canEdit() {
  const s = live.session;
  return Boolean(s && me && (me.role === 'ADMIN' || s.hostUserId === me.userId));
}

function renderSession() {
  const { session: s, cart } = live;
  if (!s || !cart) return;
  byId('session-view').hidden = false;
  const title = s.title || `Session ${s.id}`;
  setText(byId('session-heading'), `· ${title}`);
  document.title = `${title} · console`;
  const status = byId('status');
  setText(status, s.status);
  status.dataset.status = s.status;
  setText(byId('client-name'), `for ${s.clientName}`);
  const room = byId('room-link');
  room.href = `/room/${encodeURIComponent(s.roomCode)}`;
  setText(room, `${location.origin}/room/${s.roomCode}`);
  byId('start').hidden = s.status !== 'SCHEDULED';
  byId('pause').hidden = s.status !== 'ACTIVE';
  byId('resume').hidden = s.status !== 'PAUSED';
  const presence = s.presence || { host: false, client: false };
  byId('presence-host').classList.toggle('on', presence.host);
  byId('presence-client').classList.toggle('on', presence.client);
  byId('presence-client').setAttribute('aria-label', `Client ${presence.client ? 'here' : 'away'}`);
  byId('presence-host').setAttribute('aria-label', `Host ${presence.host ? 'here' : 'away'}`);
  setInputValue(byId('notes'), s.internalNotes || '');
  for (const item of cart.items) live.names.set(item.batchId, `${item.productName} (${item.batchCode})`);
  if (s.highlight) live.names.set(s.highlight.batchId, `${s.highlight.productName} (${s.highlight.batchCode})`);
  setText(byId('showing'), s.highlight ? `${s.highlight.productName} · ${s.highlight.batchCode}` : 'nothing');
  byId('clear-highlight').disabled = !s.highlight || !OPEN.has(s.status);
  renderHold();
  renderCart();
  renderPrices();
  renderCheckout();
  renderEnd();
}

function renderHold() {
  const s = live.session;
  if (!s) return;
  const open = OPEN.has(s.status);
  const countdown = byId('hold-countdown');
  setText(countdown, open && s.holdsExpireAt ? formatCountdown(s.holdsExpireAt) : '–');
  countdown.classList.toggle('soon', open && secondsUntil(s.holdsExpireAt) < 600);
  setText(byId('hold-until'), open && s.holdsExpireAt ? `until ${formatClock(s.holdsExpireAt)}` : 'no holds');
  byId('extend-form').querySelector('button').disabled = !open;
}

function cartRow(item) {
  const qtyId = `qty-${item.id}`;
  const qty = h('input', { id: qtyId, class: 'qty', type: 'text', inputmode: 'decimal', size: 6 });
  markDirtyOnInput(qty);
  const qtyForm = h('form', { class: 'inline-form' },
    h('label', { for: qtyId, class: 'visually-hidden' }, `Quantity of ${item.productName}`),
    qty,
    h('button', { type: 'submit', class: 'set-qty' }, 'Set'),
  );
  qtyForm.addEventListener('submit', (event) => {
    event.preventDefault();
    act(call('liveShopping.updateCartQuantity', {
      sessionId: live.id, cartItemId: item.id, quantity: decimalInput(qty.value),
    }).then(() => { delete qty.dataset.dirty; }));
  });
  const sample = h('input', { type: 'checkbox', class: 'sample' });
  sample.addEventListener('change', () => act(call('liveShopping.toggleCartItemSample', {
    sessionId: live.id, cartItemId: item.id, isSample: sample.checked,
  })));
  const show = h('button', { type: 'button', class: 'show' }, 'Show');
  show.addEventListener('click', () => act(call('liveShopping.highlightProduct', {
    sessionId: live.id, batchId: Number(show.dataset.batchId),
  })));
  const remove = h('button', { type: 'button', class: 'remove danger' }, 'Remove');
  remove.addEventListener('click', () => act(call('liveShopping.removeFromCart', {
    sessionId: live.id, cartItemId: item.id,
  })));
  return h('tr', {},
    h('td', {}, h('span', { class: 'product-name' }), h('br'),
      h('span', { class: 'muted small code' }),
      h('span', { class: 'tag by' }), h('span', { class: 'tag sample-tag' }, 'Sample'),
      h('span', { class: 'tag star' }, 'Showing')),
    h('td', {}, qtyForm),
    h('td', { class: 'c' }, h('label', { class: 'check' }, sample, h('span', { class: 'visually-hidden' }, `Sample: ${item.productName}`))),
    h('td', { class: 'n num' }, h('span', { class: 'price' }), h('br'), h('span', { class: 'list muted small' })),
    h('td', { class: 'n num subtotal' }),
    h('td', { class: 'actions' }, show, remove),
  );
}

function updateCartRow(row, item) {
  const editable = OPEN.has(live.session.status);
  setText(row.querySelector('.product-name'), item.productName);
  setText(row.querySelector('.code'), item.batchCode);
  const by = row.querySelector('.tag.by');
  setText(by, item.addedByRole === 'CLIENT' ? 'Client' : 'Host');
  by.dataset.by = item.addedByRole;
  row.querySelector('.sample-tag').hidden = !item.isSample;
  row.querySelector('.tag.star').hidden = !item.isHighlighted;
  const qty = row.querySelector('input.qty');
  setInputValue(qty, plainDecimal(item.quantity));
  qty.disabled = !editable;
  row.querySelector('button.set-qty').disabled = !editable;
  const sample = row.querySelector('input.sample');
  sample.checked = item.isSample;
  sample.disabled = !editable;
  setText(row.querySelector('.list'), `list ${formatMoney(item.listPrice)}`);
  setText(row.querySelector('.price'), formatMoney(item.unitPrice));
  setText(row.querySelector('.subtotal'), formatMoney(item.subtotal));
  const show = row.querySelector('button.show');
  show.dataset.batchId = item.batchId;
  show.disabled = !editable || item.isHighlighted;
  show.setAttribute('aria-label', `Show ${item.productName} to the client`);
  const remove = row.querySelector('button.remove');
  remove.disabled = !editable;
  remove.setAttribute('aria-label', `Remove ${item.productName} (${item.addedByRole === 'CLIENT' ? 'client' : 'host'} line)`);
}

function renderCart() {
  const items = live.cart.items;
  syncList(byId('cart-body'), items, (item) => item.id, cartRow, updateCartRow);
  byId('cart-empty').hidden = items.length > 0;
  setText(byId('cart-count'), `${items.length} ${items.length === 1 ? 'line' : 'lines'}`);
  setText(byId('cart-subtotal'), formatMoney(live.cart.subtotal));
}

function productsInCart() {
  const products = new Map();
  for (const item of live.cart.items) {
    const known = products.get(item.productId);
    // Every line of a product has the session's price for it; a sample line shows it too.
    if (!known || (known.isSample && !item.isSample)) products.set(item.productId, item);
  }
  return Array.from(products.values());
}

function priceRow(item) {
  const id = `price-${item.productId}`;
  const input = h('input', { id, type: 'text', inputmode: 'decimal', size: 8, class: 'price-input' });
  markDirtyOnInput(input);
  const form = h('form', { class: 'inline-form' },
    h('label', { for: id, class: 'visually-hidden' }, `Session price of ${item.productName}`),
    input,
    h('button', { type: 'submit', class: 'set-price' }, 'Set'),
    h('button', { type: 'button', class: 'clear-price' }, 'List'),
  );
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    act(call('liveShopping.setOverridePrice', {
      sessionId: live.id, productId: item.productId, overridePrice: decimalInput(input.value),
    }).then(() => { delete input.dataset.dirty; }));
  });
  form.querySelector('.clear-price').addEventListener('click', () => act(call('liveShopping.setOverridePrice', {
    sessionId: live.id, productId: item.productId, overridePrice: null,
  })));
  return h('tr', {},
    h('td', { class: 'product-name' }),
    h('td', { class: 'n num list' }),
    h('td', { class: 'n num now' }),
    h('td', {}, form),
  );
}

function updatePriceRow(row, item) {
  const editable = OPEN.has(live.session.status);
  setText(row.querySelector('.product-name'), item.productName);
  setText(row.querySelector('.list'), formatMoney(item.listPrice));
  setText(row.querySelector('.now'), formatMoney(item.unitPrice));
  setInputValue(row.querySelector('input'), item.unitPrice);
  for (const control of row.querySelectorAll('input, button')) control.disabled = !editable;
  row.querySelector('.clear-price').setAttribute('aria-label', `Back to the client's list-based price for ${item.productName}`);
}

function renderPrices() {
  syncList(byId('prices-body'), productsInCart(), (item) => item.productId, priceRow, updatePriceRow);
}

function renderCheckout() {
  const s = live.session;
  const checkout = s.checkout;
  const pending = Boolean(checkout && !checkout.answeredAt);
  let text = 'No request.';
  if (pending) text = `The client asked to check out at ${formatClock(checkout.requestedAt)}.`;
  else if (checkout) {
    text = `${checkout.accepted ? 'Accepted' : 'Declined'} at ${formatClock(checkout.answeredAt)}`
      + (checkout.message ? `: “${checkout.message}”` : '.');
  }
  const state = byId('checkout-state');
  setText(state, text);
  state.classList.toggle('pending', pending);
  // Hidden but still taking its room, so a request arriving moves nothing below it.
  byId('checkout-form').classList.toggle('invisible', !pending);
  for (const control of byId('checkout-form').querySelectorAll('input, button')) control.disabled = !pending;
}

function renderCredit() {
  const c = live.credit;
  const meter = byId('credit-meter');
  if (!c) return;
  const level = byId('credit-level');
  setText(level, c.level);
  level.dataset.level = c.level;
  if (c.creditLimit === null) {
    meter.value = 0;
    setText(byId('credit-text'), `no limit · exposure ${formatMoney(c.exposure)}`);
  } else {
    meter.value = Math.min(1, Number(c.utilization ?? 1));
    setText(byId('credit-text'),
      `${formatPercent(c.utilization ?? 1)} used · ${formatMoney(c.exposure)} of ${formatMoney(c.creditLimit)}`
      + ` · ${formatMoney(c.available)} available`);
  }
  meter.setAttribute('aria-label', `Credit used: ${c.utilization === null ? 'no limit' : formatPercent(c.utilization)}`);
  renderEnd();
}

function renderEnd() {
  const s = live.session;
  if (!s) return;
  const admin = me && me.role === 'ADMIN';
  const exceeded = live.credit && live.credit.level === 'EXCEEDED';
  const bypass = byId('bypass');
  byId('bypass-label').hidden = !admin;
  const open = s.status === 'ACTIVE' || s.status === 'PAUSED';
  const convertible = open || s.status === 'ENDED';
  const empty = live.cart.items.length === 0;
  byId('save-draft').disabled = !open;
  byId('convert').disabled = !convertible || empty || (exceeded && !(admin && bypass.checked));
  let note = '\u00a0';
  if (s.status === 'SCHEDULED') note = 'Start the session before ending it.';
  else if (FINAL.has(s.status)) note = `This session is ${s.status.toLowerCase()}.`;
  else if (empty) note = 'The cart is empty: nothing to convert.';
  else if (exceeded && admin) note = 'Credit limit exceeded: converting needs the bypass.';
  else if (exceeded) note = 'Credit limit exceeded: only an admin can convert.';
  else if (s.status === 'ENDED') note = 'Saved as a draft: converting re-checks the inventory.';
  setText(byId('end-note'), note);
  let outcome = '\u00a0';
  const orderId = live.orderId || s.orderId;
  if (orderId) outcome = `Order #${orderId} created.`;
  else if (s.status === 'ENDED') outcome = 'Saved as a draft.';
  else if (s.status === 'CANCELLED') outcome = 'Cancelled.';
  setText(byId('outcome'), outcome);
  const shareUrl = live.shareUrl || s.shareUrl;
  const sheet = byId('sheet-link');
  sheet.hidden = !shareUrl;
  if (shareUrl) sheet.href = shareUrl;
  byId('make-sheet').disabled = empty || s.status === 'CANCELLED';
  byId('cancel-session').disabled = FINAL.has(s.status);
  byId('end-form').querySelector('#payment-terms').disabled = !convertible;
}

// --- the timeline ----------------------------------------------------------------------------

let timelineLoading = null;

async function loadTimeline() {
  const entries = [];
  let cursor = 0;
  for (let page = 0; page < 20; page += 1) {
    const result = await call('liveShopping.getTimeline', { sessionId: live.id, cursor, limit: 100 });
    entries.push(...result.entries);
    if (result.nextCursor === null) break;
    cursor = result.nextCursor;
  }
  live.timeline = new Map(entries.map((entry) => [entry.seq, entry]));
  renderTimeline();
}

function reloadTimeline() {
  if (!timelineLoading) {
    timelineLoading = loadTimeline()
      .catch((error) => showToast(describeError(error, staffError)))
      .finally(() => { timelineLoading = null; });
  }
}

function addToTimeline(type, data, seq) {
  if (!seq || type === 'SESSION_SNAPSHOT' || data.staffOnly) return;
  const change = data.change || {};
  live.timeline.set(Number(seq), {
    seq: Number(seq), type, actor: data.actor, occurredAt: data.occurredAt,
    subject: change.subject, before: change.before, after: change.after,
  });
  renderTimeline();
}

// Oldest first: a new entry is appended, so nothing already shown moves; the list follows the
// newest entry unless the reader has scrolled up.
function renderTimeline() {
  const list = byId('timeline');
  const atEnd = list.scrollTop + list.clientHeight >= list.scrollHeight - 8;
  const entries = Array.from(live.timeline.values()).sort((a, b) => a.seq - b.seq);
  syncList(list, entries, (e) => e.seq, () => h('li', {},
    h('span', { class: 'when num muted' }), ' ', h('span', { class: 'who' }), ' ', h('span', { class: 'what' })),
  (li, entry) => {
    setText(li.querySelector('.when'), formatClock(entry.occurredAt));
    setText(li.querySelector('.who'), actorName(entry.actor));
    setText(li.querySelector('.what'), describeEntry(entry, live.names));
  });
  if (atEnd) list.scrollTop = list.scrollHeight;
}

// --- credit ----------------------------------------------------------------------------------

let creditTimer = null;

function refreshCredit() {
  clearTimeout(creditTimer);
  creditTimer = setTimeout(async () => {
    try {
      live.credit = await call('liveShopping.checkCreditStatus', { sessionId: live.id });
      renderCredit();
    } catch (error) {
      if (error.code !== 'NETWORK') showToast(describeError(error, staffError));
    }
  }, 150);
}

// --- inventory -------------------------------------------------------------------------------

// The inventory list follows the cart: after any cart change elsewhere (this session or the
// client's), what is free is read again. Rows are kept by batch, so a quantity being typed stays.
let stockQuery = '';
let stockTimer = null;

async function searchStock(query = stockQuery) {
  stockQuery = query;
  let found;
  try {
    found = await call('liveShopping.searchInventory', query ? { query, limit: 50 } : { limit: 50 });
  } catch (error) {
    if (error.code !== 'NETWORK') showToast(describeError(error, staffError));
    return;
  }
  for (const s of found) live.names.set(s.batchId, `${s.productName} (${s.code})`);
  syncList(byId('stock-list'), found, (s) => s.batchId, stockRow, updateStockRow);
  byId('stock-empty').hidden = found.length > 0;
}

function refreshStockSoon() {
  clearTimeout(stockTimer);
  stockTimer = setTimeout(() => searchStock(), 300);
}

function stockRow(stock) {
  const id = `stock-${stock.batchId}`;
  const qty = h('input', { id, type: 'text', inputmode: 'decimal', size: 4, value: '1' });
  const name = `${stock.productName} ${stock.code}`;
  const add = (isSample) => act(call('liveShopping.addToCart', {
    sessionId: live.id, batchId: stock.batchId, quantity: decimalInput(qty.value), isSample,
  }));
  const show = () => act(call('liveShopping.highlightProduct', { sessionId: live.id, batchId: stock.batchId }));
  return h('li', { class: 'stock' },
    h('p', {}, h('span', { class: 'product-name' }, stock.productName),
      h('span', { class: 'muted small' }, ` ${stock.code} · ${stock.sku}`)),
    h('p', { class: 'small figures' },
      h('span', {}, 'Free ', h('strong', { class: 'num free' })),
      h('span', {}, 'List ', h('strong', { class: 'num list' })),
      h('span', { class: 'muted' }, 'Cost ', h('span', { class: 'num cost' }))),
    h('div', { class: 'inline-form' },
      h('label', { for: id, class: 'small' }, 'Qty'),
      qty,
      h('button', { type: 'button', onclick: () => add(false), 'aria-label': `Add ${name}` }, 'Add'),
      h('button', { type: 'button', onclick: () => add(true), 'aria-label': `Add ${name} as a sample` }, 'Sample'),
      h('button', { type: 'button', onclick: show, 'aria-label': `Show ${name} to the client` }, 'Show')),
  );
}

function updateStockRow(li, stock) {
  setText(li.querySelector('.free'), formatQuantity(stock.available));
  setText(li.querySelector('.list'), formatMoney(stock.listPrice));
  setText(li.querySelector('.cost'), formatMoney(stock.unitCogs));
}

// --- wiring ----------------------------------------------------------------------------------

function apply(type, data, seq) {
  live.session = data.session;
  live.cart = data.cart;
  if (data.orderId) live.orderId = data.orderId;
  if (data.shareUrl) live.shareUrl = data.shareUrl;
  renderSession();
  if (type === 'SESSION_SNAPSHOT') reloadTimeline();
  else addToTimeline(type, data, seq);
  if (CREDIT_EVENTS.has(type)) refreshCredit();
  if (type === 'CART_UPDATED' || type === 'SESSION_STATUS') refreshStockSoon();
}

function status(target) {
  return act(call('liveShopping.updateSessionStatus', { sessionId: live.id, status: target }));
}

function end(convertToOrder) {
  const params = {
    sessionId: live.id,
    convertToOrder,
    generateSalesSheet: byId('with-sheet').checked,
  };
  const terms = byId('payment-terms').value.trim();
  if (convertToOrder && terms) params.paymentTerms = terms;
  if (convertToOrder && byId('bypass').checked && me.role === 'ADMIN') params.bypassCreditCheck = true;
  return act(call('liveShopping.endSession', params).then((done) => {
    if (done.orderId) live.orderId = done.orderId;
    if (done.shareUrl) live.shareUrl = done.shareUrl;
    renderEnd();
    showToast(done.orderId ? `Order #${done.orderId} created.` : 'Saved as a draft.', 'info');
  }));
}

function respond(accept) {
  const message = byId('checkout-message').value.trim();
  return act(call('liveShopping.respondToCheckout', {
    sessionId: live.id, accept, ...(message ? { message } : {}),
  }).then(() => { byId('checkout-message').value = ''; }));
}

function wireSession() {
  byId('stock-search').addEventListener('submit', (event) => {
    event.preventDefault();
    searchStock(byId('stock-query').value.trim());
  });
  byId('clear-highlight').addEventListener('click', () => act(call('liveShopping.highlightProduct', { sessionId: live.id, batchId: null })));
  byId('start').addEventListener('click', () => status('ACTIVE'));
  byId('pause').addEventListener('click', () => status('PAUSED'));
  byId('resume').addEventListener('click', () => status('ACTIVE'));
  byId('notes-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const notes = byId('notes');
    act(call('liveShopping.updateSession', { sessionId: live.id, internalNotes: notes.value.trim() || null })
      .then(() => { delete notes.dataset.dirty; showToast('Notes saved.', 'info'); }));
  });
  markDirtyOnInput(byId('notes'));
  byId('extend-form').addEventListener('submit', (event) => {
    event.preventDefault();
    act(call('liveShopping.extendHolds', { sessionId: live.id, minutes: Number(byId('extend-minutes').value) }));
  });
  byId('accept').addEventListener('click', () => respond(true));
  byId('decline').addEventListener('click', () => respond(false));
  byId('bypass').addEventListener('change', renderEnd);
  byId('save-draft').addEventListener('click', () => end(false));
  byId('convert').addEventListener('click', () => end(true));
  byId('make-sheet').addEventListener('click', () => act(call('liveShopping.generateSalesSheet', { sessionId: live.id })
    .then((sheet) => { live.shareUrl = sheet.shareUrl; renderEnd(); })));
  byId('cancel-session').addEventListener('click', () => act(call('liveShopping.cancelSession', { sessionId: live.id })));
  setInterval(renderHold, 1000);
}

function showSession(sessionId) {
  live.id = sessionId;
  wireSession();
  const stream = new LiveStream({
    path: `/api/sse/live-shopping/${sessionId}`,
    ticket: async () => (await call('liveShopping.createStreamTicket', { sessionId })).ticket,
    onEvent: apply,
    onStatus: (state, error) => {
      showConnection(state);
      if (state === 'failed') problem(describeError(error, staffError));
    },
  });
  stream.start();
  searchStock('');
}

function main() {
  if (!token) {
    return problem('Sign in from the ERP (or a link printed by `python -m app token --link`): '
      + 'this page takes its sign-in from the link.');
  }
  if (!me || (me.role !== 'STAFF' && me.role !== 'ADMIN')) {
    return problem('The console is for staff. A client opens the room link of the session.');
  }
  call = makeRpc(token);
  setText(byId('who'), `${me.role === 'ADMIN' ? 'Admin' : 'Staff'} · user ${me.userId}`);
  const match = location.pathname.match(/^\/console\/session\/(\d+)\/?$/);
  if (match) showSession(Number(match[1]));
  else showList();
}

main();
