// Calls the service's procedures over JSON-RPC 2.0 at POST /rpc, with the bearer token.

export class ApiError extends Error {
  constructor(code, message, data = {}) {
    super(message);
    this.name = 'ApiError';
    this.code = code; // the wire name: NOT_FOUND, PRECONDITION_FAILED, ... or NETWORK
    this.data = data;
  }
}

export function makeRpc(token) {
  let nextId = 0;
  return async function call(method, params = {}) {
    nextId += 1;
    let response;
    try {
      response = await fetch('/rpc', {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
        body: JSON.stringify({ jsonrpc: '2.0', id: nextId, method, params }),
        credentials: 'omit',
        cache: 'no-store',
      });
    } catch {
      throw new ApiError('NETWORK', 'The service cannot be reached');
    }
    let body;
    try {
      body = await response.json();
    } catch {
      throw new ApiError(response.status >= 500 ? 'INTERNAL_SERVER_ERROR' : 'NETWORK',
        `Unexpected answer (HTTP ${response.status})`, { httpStatus: response.status });
    }
    if (body && body.error) {
      const data = body.error.data || {};
      throw new ApiError(data.code || 'INTERNAL_SERVER_ERROR', body.error.message || '', data);
    }
    return body.result;
  };
}
