// Turns an API failure into a sentence for the person at the screen, never raw JSON.
// Page modules pass `extra` for the failures only their side can meet.

import { formatDecimal } from './format.js';

const FIELD_NAMES = {
  quantity: 'the quantity',
  overridePrice: 'the price',
  minutes: 'the minutes',
  message: 'the message',
  title: 'the title',
  scheduledAt: 'the start time',
  paymentTerms: 'the payment terms',
  query: 'the search',
};

function fieldOf(path) {
  const name = String(path || '').split('.').pop();
  return FIELD_NAMES[name] || 'a value';
}

export function describeError(error, extra = () => null) {
  if (!error || typeof error !== 'object' || !('code' in error)) {
    return 'Something went wrong. Please try again.';
  }
  const special = extra(error);
  if (special) return special;
  const data = error.data || {};
  switch (error.code) {
    case 'NETWORK':
      return 'The service cannot be reached. Check the connection and try again.';
    case 'UNAUTHORIZED':
      return 'Your sign-in has expired or is not valid. Open the page again from your link.';
    case 'FORBIDDEN':
      return error.message || 'You are not allowed to do that.';
    case 'NOT_FOUND':
      return error.message ? `${error.message}.` : 'That no longer exists.';
    case 'METHOD_NOT_FOUND':
      return 'Live shopping is not available on this service.';
    case 'BAD_REQUEST': {
      const issue = (data.issues || [])[0];
      if (issue) return `Please check ${fieldOf(issue.path)}: ${issue.message}.`;
      return error.message || 'That request was not valid.';
    }
    case 'PRECONDITION_FAILED':
      if (data.available !== undefined) {
        const left = String(data.available).startsWith('-') ? '0' : data.available;
        return `Only ${formatDecimal(left)} left - other sessions hold the rest`;
      }
      if (data.limit !== undefined) {
        return `The cart can hold at most ${data.limit} lines.`;
      }
      return error.message || 'That cannot be done right now.';
    case 'CONFLICT':
      return error.message || 'Someone else changed this first. The page shows the latest state.';
    case 'TOO_MANY_REQUESTS':
      return 'Too many requests at once. Wait a moment and try again.';
    case 'PAYLOAD_TOO_LARGE':
      return 'That is too much to send at once.';
    case 'UNPROCESSABLE_CONTENT':
      return error.message || 'That amount cannot be recorded.';
    default:
      return 'Something went wrong on our side. Please try again.';
  }
}
