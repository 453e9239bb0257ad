// The tapeloop dashboard: renders the server-sent events of /stream; its buttons
// POST to the control API with the session's CSRF token. Every value is written
// with textContent (never as HTML): a strategy or symbol name cannot inject markup.
"use strict";

const csrf = document.querySelector('meta[name="csrf-token"]').content;
const $ = (id) => document.getElementById(id);
const equity = [];          // [unix ms, "decimal string"]
const seenFills = new Set();
let fillCount = 0;

function cell(row, text, cls) {
  const td = row.insertCell();
  td.textContent = text === null || text === undefined ? "" : String(text);
  if (cls) td.className = cls;
  return td;
}

function fillTable(id, rows, columns) {
  const body = $(id);
  body.replaceChildren();
  for (const r of rows) {
    const tr = body.insertRow();
    for (const c of columns) cell(tr, typeof c === "function" ? c(r) : r[c]);
  }
}

function badge(el, text) {
  el.textContent = text || "-";
  el.className = "badge " + String(text || "").toLowerCase();
  return el;
}

function badgeCell(row, text) {
  const span = document.createElement("span");
  row.insertCell().appendChild(badge(span, text));
}

function drawCurve() {
  const line = $("curve-line");
  if (equity.length === 0) { line.setAttribute("points", ""); return; }
  const xs = equity.map((p) => p[0]);
  const ys = equity.map((p) => parseFloat(p[1]));  // for drawing only: figures stay strings
  const x0 = xs[0], x1 = Math.max(xs[xs.length - 1], x0 + 1);
  let lo = Math.min(...ys), hi = Math.max(...ys);
  if (hi === lo) { hi += 1; lo -= 1; }
  const pts = xs.map((x, i) => {
    const px = ((x - x0) / (x1 - x0)) * 800;
    const py = 200 - ((ys[i] - lo) / (hi - lo)) * 190 - 5;
    return px.toFixed(1) + "," + py.toFixed(1);
  });
  line.setAttribute("points", pts.join(" "));
  $("curve-min").textContent = "min " + equity.reduce((a, p) => (parseFloat(p[1]) < parseFloat(a[1]) ? p : a))[1];
  $("curve-max").textContent = "max " + equity.reduce((a, p) => (parseFloat(p[1]) > parseFloat(a[1]) ? p : a))[1];
}

function addEquity(points) {
  for (const p of points) {
    if (equity.length && equity[equity.length - 1][0] >= p[0]) continue;
    equity.push(p);
  }
  while (equity.length > 3600) equity.shift();
  drawCurve();
}

function strategyButton(tr, sid, status) {
  const td = tr.insertCell();
  const button = document.createElement("button");
  const action = status === "running" ? "stop" : "start";
  button.textContent = action;
  button.className = "small plain";
  button.dataset.strategy = sid;
  button.addEventListener("click", () =>
    post("/strategies/" + encodeURIComponent(sid) + "/" + action, {}));
  td.appendChild(button);
}

function renderSnapshot(s) {
  const st = s.status || {};
  badge($("trading"), st.trading_state);
  $("reason").textContent = st.trading_reason || "";
  if (st.equity !== undefined) $("equity").textContent = st.equity;
  $("currency").textContent = st.account_currency || "";
  $("events").textContent = st.events_total;
  $("rate").textContent = st.events_per_second;
  const j = st.journal;
  $("lag").textContent = j ? (j.written_seq - j.synced_seq) + " events, " + j.backlog_bytes + " B" : "-";
  const venues = $("venues");
  venues.replaceChildren();
  for (const [name, v] of Object.entries(st.venues || {})) {
    const tr = venues.insertRow();
    cell(tr, name);
    badgeCell(tr, v.status);
    cell(tr, v.reconnects);
  }
  const strategies = $("strategies");
  strategies.replaceChildren();
  for (const [sid, status] of Object.entries(st.strategies || {})) {
    const tr = strategies.insertRow();
    tr.dataset.strategy = sid;
    cell(tr, sid);
    badgeCell(tr, status);
    cell(tr, ((st.pnl || {})[sid] || {}).pnl);
    strategyButton(tr, sid, status);
  }
  if (s.positions) {
    fillTable("positions", s.positions, ["venue", "symbol", "strategy_id", "qty", "avg_price",
                                         "mark", "unrealized_pnl"]);
  }
  if (s.orders) {
    fillTable("orders", s.orders, ["client_order_id", "symbol", "side", "order_type", "qty",
                                   "price", "filled_qty", "state"]);
  }
}

function addFill(f, fresh) {
  const key = f.client_order_id + "/" + f.trade_id;
  if (seenFills.has(key)) return;
  seenFills.add(key);
  const tr = $("fills").insertRow(0);
  tr.dataset.order = f.client_order_id;
  if (fresh) tr.className = "new";
  cell(tr, new Date(f.ts_event / 1e6).toISOString().replace("T", " ").slice(0, 23));
  cell(tr, f.strategy_id);
  cell(tr, f.symbol);
  cell(tr, f.side, f.side);
  cell(tr, f.qty);
  cell(tr, f.price);
  cell(tr, f.fee + " " + f.fee_currency);
  cell(tr, f.client_order_id);
  while ($("fills").rows.length > 200) $("fills").deleteRow(-1);
  fillCount += 1;
  $("fill-count").textContent = String(fillCount);
}

async function post(path, body) {
  const r = await fetch(path, {
    method: "POST", credentials: "same-origin",
    headers: {"Content-Type": "application/json", "X-CSRF-Token": csrf},
    body: JSON.stringify(body),
  });
  const data = await r.json().catch(() => ({}));
  $("message").textContent = r.ok ? "" : path + ": " + (data.error || r.status);
  if (r.status === 401) window.location.assign("/login");
  return data;
}

function connect() {
  const source = new EventSource("/stream");
  source.addEventListener("open", () => badge($("connection"), "on"));
  source.addEventListener("hello", (e) => {
    const d = JSON.parse(e.data);
    equity.length = 0;
    addEquity(d.equity || []);
    for (const f of d.fills || []) addFill(f, false);
    renderSnapshot(d);
  });
  source.addEventListener("snapshot", (e) => {
    const d = JSON.parse(e.data);
    addEquity(d.equity_point || []);
    renderSnapshot(d);
  });
  source.addEventListener("fill", (e) => addFill(JSON.parse(e.data), true));
  source.addEventListener("error", async () => {
    badge($("connection"), "off");
    $("connection").textContent = "reconnecting";
    if (source.readyState === EventSource.CLOSED) {
      // refused (the session expired, or the daemon restarted and forgot it)?
      const r = await fetch("/status", {credentials: "same-origin"}).catch(() => null);
      if (r && r.status === 401) { window.location.assign("/login"); return; }
      setTimeout(connect, 2000);
    }
  });
}

$("halt").addEventListener("click", () => post("/halt", {reason: "halted from the dashboard"}));
$("resume").addEventListener("click", () => post("/resume", {reason: "resumed from the dashboard"}));
$("logout").addEventListener("click", async () => {
  await post("/logout", {});
  window.location.assign("/login");
});
connect();
