// One timeline entry ({type, subject, before, after}) told as a short sentence.

import { formatClock, formatMoney, formatQuantity } from './format.js';

function productOf(entry, names) {
  const subject = entry.subject || {};
  if (subject.productName) return subject.productName;
  if (subject.batchId && names.has(subject.batchId)) return names.get(subject.batchId);
  return subject.productId ? `product ${subject.productId}` : 'an item';
}

function batchName(batchId, names) {
  return names.get(batchId) || `batch ${batchId}`;
}

function side(subject) {
  return subject && subject.addedByRole === 'CLIENT' ? ' (client line)' : '';
}

export function describeEntry(entry, names = new Map()) {
  const before = entry.before || {};
  const after = entry.after || {};
  const subject = entry.subject || {};
  switch (entry.type) {
    case 'CART_UPDATED': {
      const what = productOf(entry, names) + side(subject);
      if ('isSample' in after) return `${after.isSample ? 'made' : 'unmade'} ${what} a sample`;
      if (!entry.before) {
        return `added ${formatQuantity(after.quantity)} × ${what}${subject.isSample ? ' as a sample' : ''}`;
      }
      if (!entry.after) return `removed ${what} (${formatQuantity(before.quantity)})`;
      return `changed ${what}: ${formatQuantity(before.quantity)} → ${formatQuantity(after.quantity)}`;
    }
    case 'PRICE_CHANGED':
      return `priced ${productOf(entry, names)}: ${formatMoney(before.unitPrice)} → ${formatMoney(after.unitPrice)}`
        + (after.overridePrice === null ? ' (back to list)' : '');
    case 'HIGHLIGHTED':
      return after.batchId ? `showed ${batchName(after.batchId, names)}` : 'stopped showing a product';
    case 'SESSION_STATUS':
      return before.status ? `moved the session ${before.status} → ${after.status}` : `opened the session as ${after.status}`;
    case 'CHECKOUT_REQUESTED':
      return 'asked to check out';
    case 'CHECKOUT_ANSWERED':
      return `${after.accepted ? 'accepted' : 'declined'} the checkout${after.message ? `: “${after.message}”` : ''}`;
    case 'SESSION_CONVERTED':
      return `converted the cart into order #${subject.orderId}${after.total ? ` (${formatMoney(after.total)})` : ''}`;
    case 'SALES_SHEET_READY':
      return 'made the sales sheet';
    case 'SESSION_TIMEOUT':
      return 'ended the session: the holds ran out';
    case 'SESSION_UPDATED':
      return `edited ${Object.keys(after).join(', ') || 'the session'}`;
    case 'HOLDS_EXTENDED':
      return `held the cart until ${formatClock(after.holdsExpireAt)}${after.minutes ? ` (+${after.minutes} min)` : ''}`;
    case 'HOLDS_EXPIRING':
      return `warned that the holds end at ${formatClock(after.holdsExpireAt)}`;
    case 'PRESENCE': {
      const changes = [];
      for (const who of ['host', 'client']) {
        const side = who === 'host' ? 'staff' : 'the client';
        if (before[who] !== after[who]) changes.push(`${side} ${after[who] ? 'joined' : 'left'}`);
      }
      return changes.join(', ') || 'presence unchanged';
    }
    default:
      return entry.type.toLowerCase().replace(/_/g, ' ');
  }
}
