// The service's JSON API from the browser: the hub's OAuth cookie authenticates,
// and every request sends the XSRF token (POST/DELETE need it; GET ignores it).

export class ApiError extends Error {
  /**
   * status: HTTP status (0 for a network failure); message: the server's message;
   * field, suggestions: the error JSON's `field` (the request field it is about) and
   * `suggestions` (values that would work there, e.g. existing branches), if any.
   */
  constructor(status, message, { field = null, suggestions = [] } = {}) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.field = field;
    this.suggestions = suggestions;
  }
}

/** An ApiError from a failed response's status and parsed JSON body (or null). */
export function errorFrom(response, data) {
  const message =
    (data && typeof data.message === "string" && data.message) ||
    `${response.status} ${response.statusText || "error"}`;
  const field = data && typeof data.field === "string" ? data.field : null;
  const suggestions =
    data && Array.isArray(data.suggestions)
      ? data.suggestions.filter((s) => typeof s === "string")
      : [];
  return new ApiError(response.status, message, { field, suggestions });
}

export function createApi({ baseUrl, xsrf }) {
  async function request(method, path, body) {
    const headers = { Accept: "application/json", "X-XSRFToken": xsrf };
    const init = { method, headers, credentials: "same-origin", cache: "no-store" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(baseUrl + path, init);
    } catch {
      throw new ApiError(0, "The service cannot be reached: check your network connection.");
    }
    const text = await response.text();
    let data = null;
    if (text) {
      try {
        data = JSON.parse(text);
      } catch {
        data = null;
      }
    }
    if (!response.ok) throw errorFrom(response, data);
    return { status: response.status, data };
  }

  return {
    url: (path) => baseUrl + path,
    xsrf,
    get: async (path) => (await request("GET", path)).data,
    post: (path, body) => request("POST", path, body),
    del: (path) => request("DELETE", path),
  };
}
