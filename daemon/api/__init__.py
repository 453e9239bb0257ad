"""The control API's parts, apart from the server that listens (daemon.control):

- `views`: the JSON shapes of orders, positions, margin, fills (Decimals as strings);
- `collector`: the scrape-time metrics (`GET /metrics`) and the counts they need;
- `routes`: the operator endpoints (health, status, positions, orders, halt, ...);
- `auth`: who may read what: the bearer token, the dashboard's session cookie, CSRF;
- `stream`: the dashboard's live feed (server-sent events) and its equity history;
- `dashboard`: the web page itself (`static/`, shipped in the package, no build step).
"""
