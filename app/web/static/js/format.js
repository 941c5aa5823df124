// Numbers and times in the reader's locale. Amounts arrive as decimal strings and are passed
// to Intl as strings, so no digit is lost to floating point on the way to the screen.

const locale = navigator.language || undefined;

const money = new Intl.NumberFormat(locale, { minimumFractionDigits: 2, maximumFractionDigits: 2 });
const quantity = new Intl.NumberFormat(locale, { maximumFractionDigits: 4 });
const percent = new Intl.NumberFormat(locale, { style: 'percent', maximumFractionDigits: 1 });
const clock = new Intl.DateTimeFormat(locale, { hour: '2-digit', minute: '2-digit' });
const dateTime = new Intl.DateTimeFormat(locale, { dateStyle: 'medium', timeStyle: 'short' });
const exactCache = new Map();

export function formatMoney(value) {
  return value === null || value === undefined ? '' : money.format(String(value));
}

export function formatQuantity(value) {
  return value === null || value === undefined ? '' : quantity.format(String(value));
}

// A decimal with exactly the places it was given ("2.0000" stays four places), localised.
export function formatDecimal(value) {
  const text = String(value);
  const places = text.includes('.') ? text.split('.')[1].length : 0;
  if (!exactCache.has(places)) {
    exactCache.set(places, new Intl.NumberFormat(locale, {
      minimumFractionDigits: places, maximumFractionDigits: places,
    }));
  }
  return exactCache.get(places).format(text);
}

// A fraction (0.25) as a percentage (25 %).
export function formatPercent(fraction) {
  return fraction === null || fraction === undefined ? '' : percent.format(Number(fraction));
}

export function formatClock(iso) {
  return iso ? clock.format(new Date(iso)) : '';
}

export function formatDateTime(iso) {
  return iso ? dateTime.format(new Date(iso)) : '';
}

// Time left until `iso` as h:mm:ss (or m:ss under an hour); "0:00" once it has passed.
export function formatCountdown(iso, now = Date.now()) {
  if (!iso) return '';
  const left = Math.max(0, Math.floor((Date.parse(iso) - now) / 1000));
  const h = Math.floor(left / 3600);
  const m = Math.floor((left % 3600) / 60);
  const s = String(left % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${s}` : `${m}:${s}`;
}

export function secondsUntil(iso, now = Date.now()) {
  return iso ? Math.floor((Date.parse(iso) - now) / 1000) : Infinity;
}

// Money arithmetic for display, in integer cents: the discount between list and session price.
export function toCents(value) {
  const [whole, frac = ''] = String(value).split('.');
  const sign = whole.startsWith('-') ? -1 : 1;
  const cents = Math.abs(Number(whole)) * 100 + Number((frac + '00').slice(0, 2));
  return sign * cents;
}

export function centsToDecimal(cents) {
  const sign = cents < 0 ? '-' : '';
  const abs = Math.abs(Math.round(cents));
  return `${sign}${Math.floor(abs / 100)}.${String(abs % 100).padStart(2, '0')}`;
}

// A decimal string as a person would type it: "2.5000" -> "2.5", "3.0000" -> "3".
export function plainDecimal(value) {
  const text = String(value);
  return text.includes('.') ? text.replace(/0+$/, '').replace(/\.$/, '') : text;
}

// What a person typed, as the service reads decimals: a decimal comma becomes a dot
// ("1,5" -> "1.5"); anything else is sent as typed and the service says what is wrong.
export function decimalInput(typed) {
  const text = String(typed).trim().replace(/\s/g, '');
  return text.includes(',') && !text.includes('.') ? text.replace(',', '.') : text;
}
