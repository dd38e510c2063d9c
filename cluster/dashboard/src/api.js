// api.js — plain JSON requests to the HTTP API (GET /v1/queries, /v1/risks/{ip}, …),
// with the API's {"error": {code, message}} turned into an Error carrying code and status.

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message || code);
    this.status = status;
    this.code = code;
  }
}

/** GETs url and returns its JSON body; throws ApiError on an HTTP error or bad body. */
export async function getJson(url, options) {
  let response;
  try {
    response = await fetch(url, { headers: { accept: 'application/json' }, ...options });
  } catch (error) {
    if (error && error.name === 'AbortError') throw error;
    throw new ApiError(0, 'unreachable', 'the server cannot be reached');
  }
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  if (!response.ok) {
    const error = (body && body.error) || {};
    throw new ApiError(response.status, error.code || 'http_' + response.status, error.message || response.statusText);
  }
  if (body === null || typeof body !== 'object') {
    throw new ApiError(response.status, 'bad_body', 'the answer is not a JSON object');
  }
  return body;
}
