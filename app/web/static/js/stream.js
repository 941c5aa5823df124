// One live stream per page: EventSource on the session's SSE route, with ticket auth.
//
// EventSource reconnects by itself to the URL it was given, but that URL holds a ticket that
// expires after 60 s, so the page takes over: on any error it closes the source, fetches a
// fresh ticket and reopens with `lastEventId` of the last event seen; the service then replays
// every event after it (or sends a snapshot with `reset: true`), and nothing is lost.

export const EVENT_TYPES = [
  'SESSION_SNAPSHOT', 'SESSION_STATUS', 'CART_UPDATED', 'HIGHLIGHTED', 'PRICE_CHANGED',
  'CHECKOUT_REQUESTED', 'CHECKOUT_ANSWERED', 'SESSION_CONVERTED', 'SALES_SHEET_READY',
  'SESSION_TIMEOUT', 'SESSION_UPDATED', 'HOLDS_EXTENDED', 'HOLDS_EXPIRING', 'PRESENCE',
];
const FINAL_STATUSES = new Set(['CONVERTED', 'CANCELLED']);
// Failures worth another try: the service is away or busy. Anything else (no access, no such
// session, feature off) will not change by retrying.
const TRANSIENT = new Set(['NETWORK', 'INTERNAL_SERVER_ERROR', 'TOO_MANY_REQUESTS']);
const RETRY_DELAYS_MS = [250, 1000, 2000, 3000, 5000];

export class LiveStream {
  // path: the stream route; ticket(): a promise of a fresh ticket; onEvent(type, data, id);
  // onStatus('connecting' | 'live' | 'reconnecting' | 'closed' | 'failed', error?).
  constructor({ path, ticket, onEvent, onStatus }) {
    this.path = path;
    this.ticket = ticket;
    this.onEvent = onEvent;
    this.onStatus = onStatus;
    this.source = null;
    this.lastEventId = null;
    this.final = false;
    this.heardSinceOpen = false;
    this.attempt = 0;
    this.timer = null;
    this.stopped = false;
    this.status = null;
    window.addEventListener('online', () => {
      if (this.status === 'reconnecting') this.retryNow();
    });
  }

  start() {
    this.setStatus('connecting');
    this.open();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    if (this.source) this.source.close();
    this.source = null;
  }

  setStatus(status, error) {
    this.status = status;
    this.onStatus(status, error);
  }

  retryNow() {
    clearTimeout(this.timer);
    this.open();
  }

  async open() {
    if (this.stopped || this.source) return;
    let ticket;
    try {
      ticket = await this.ticket();
    } catch (error) {
      if (TRANSIENT.has(error.code)) this.retryLater();
      else this.setStatus('failed', error);
      return;
    }
    if (this.stopped || this.source) return;
    const query = new URLSearchParams({ ticket });
    if (this.lastEventId !== null) query.set('lastEventId', this.lastEventId);
    const source = new EventSource(`${this.path}?${query}`);
    this.source = source;
    this.heardSinceOpen = false;
    source.onopen = () => {
      this.attempt = 0;
      this.setStatus('live');
    };
    source.onerror = () => this.dropped(source);
    const receive = (event) => this.receive(source, event);
    for (const type of EVENT_TYPES) source.addEventListener(type, receive);
    source.onmessage = receive;
  }

  receive(source, event) {
    if (source !== this.source) return;
    this.heardSinceOpen = true;
    if (event.lastEventId) this.lastEventId = event.lastEventId;
    let data;
    try {
      data = JSON.parse(event.data);
    } catch {
      return;
    }
    this.final = FINAL_STATUSES.has(data && data.session && data.session.status);
    this.onEvent(event.type, data, event.lastEventId);
  }

  dropped(source) {
    if (source !== this.source) return;
    source.close();
    this.source = null;
    if (this.stopped) return;
    // After the session's final event the service ends the stream; one more open fetches
    // anything committed with it, and the service answers 204 once there is nothing left.
    if (this.final && !this.heardSinceOpen) {
      this.setStatus('closed');
      return;
    }
    this.retryLater();
  }

  retryLater() {
    this.setStatus('reconnecting');
    const delay = RETRY_DELAYS_MS[Math.min(this.attempt, RETRY_DELAYS_MS.length - 1)];
    this.attempt += 1;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.open(), delay);
  }
}
