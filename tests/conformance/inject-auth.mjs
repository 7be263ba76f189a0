// Preloaded into the conformance suite (`node --import`): adds deneva's API key to every
// HTTP request the suite sends to the server under test.
//
// The suite (0.1.x) takes the server only as `--url` and has no option for request
// headers (upstream issue modelcontextprotocol/conformance#453), while deneva's /mcp
// needs `Authorization: Bearer <api key>`. Both ways the suite talks HTTP -- the
// global `fetch` (the SDK's Streamable HTTP client) and undici's `request` (raw
// scenarios such as dns-rebinding-protection) -- go through undici's global
// dispatcher, so one interceptor there covers them all. The key comes from the
// environment, never from the command line; an Authorization header the suite sets
// itself is left alone.
//
//   CONFORMANCE_NODE_ROOT      the directory whose node_modules hold the suite (and undici)
//   CONFORMANCE_AUTH_ORIGIN    e.g. http://127.0.0.1:8787 (only requests to it get the header)
//   CONFORMANCE_AUTHORIZATION  the header's value, e.g. "Bearer dnv_..."
import { createRequire } from 'node:module';
import path from 'node:path';

const root = process.env.CONFORMANCE_NODE_ROOT;
const origin = process.env.CONFORMANCE_AUTH_ORIGIN;
const authorization = process.env.CONFORMANCE_AUTHORIZATION;

if (root && origin && authorization) {
  const require = createRequire(path.join(root, 'package.json'));
  const { Agent, getGlobalDispatcher, setGlobalDispatcher } = require('undici');
  const target = new URL(origin).origin;

  const isAuthorization = (name) => String(name).toLowerCase() === 'authorization';

  const withAuthorization = (headers) => {
    if (headers == null) return { authorization };
    if (Array.isArray(headers)) {
      if (headers.length > 0 && Array.isArray(headers[0])) {
        // [[name, value], ...]
        return headers.some(([name]) => isAuthorization(name))
          ? headers
          : [...headers, ['authorization', authorization]];
      }
      // [name, value, name, value, ...]
      for (let i = 0; i < headers.length; i += 2) if (isAuthorization(headers[i])) return headers;
      return [...headers, 'authorization', authorization];
    }
    if (typeof headers[Symbol.iterator] === 'function') {
      const pairs = [...headers];
      return pairs.some(([name]) => isAuthorization(name))
        ? pairs
        : [...pairs, ['authorization', authorization]];
    }
    return Object.keys(headers).some(isAuthorization) ? headers : { ...headers, authorization };
  };

  const addAuthorization = (dispatch) => (options, handler) => {
    let requestOrigin;
    try {
      requestOrigin = new URL(String(options.origin)).origin;
    } catch {
      requestOrigin = undefined;
    }
    if (requestOrigin !== target) return dispatch(options, handler);
    return dispatch({ ...options, headers: withAuthorization(options.headers) }, handler);
  };

  setGlobalDispatcher((getGlobalDispatcher() ?? new Agent()).compose(addAuthorization));
}
