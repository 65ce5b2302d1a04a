// The operator console: views over the public API, nothing else. See docs/operations.md.
import * as auth from "./auth.js";

const STATES = ["NEEDS_ATTENTION", "PENDING", "PAID"];
const LOW_STOCK = 5;
const SUMMARY_EVERY_MS = 30000;
const SUMMARY_PAGES = 2; // per state, of 100 orders: counts show "200+" beyond
const ACTIONS = {
  retry: { label: "Retry", says: "sends it back to the step that failed and publishes its event again" },
  cancel: { label: "Cancel", says: "releases its stock and refunds a captured charge" },
  resolve: { label: "Resolve", says: "closes a paid order as FULFILLED (handled outside the pipeline)" },
};

let config = { api: "" };
const known = new Map(); // order id -> the operations view of it (flaggedFrom, operatorActions)
const flagged = new Map(); // order id -> why it was flagged (an operator's note replaces it)
let summaryTimer = 0;

// -- small helpers ------------------------------------------------------------------------
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined) el.append(c);
  return el;
}
const $ = (sel) => document.querySelector(sel);
const main = () => $("#main");

function say(text) {
  $("#status").textContent = text;
}

function money(m) {
  if (!m) return "";
  const f = new Intl.NumberFormat(undefined, { style: "currency", currency: m.currency });
  return f.format(m.amount / 10 ** f.resolvedOptions().maximumFractionDigits);
}

function age(iso) {
  const s = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
  if (s < 60) return `${Math.round(s)} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  return `${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h`;
}

function when(iso) {
  return h("time", { datetime: iso }, `${new Date(iso).toLocaleString()} (${age(iso)} ago)`);
}

function badge(text, cls = text) {
  return h("span", { class: `badge ${cls}` }, text.replace("_", " "));
}

// -- the API ------------------------------------------------------------------------------
class ApiError extends Error {
  constructor(status, title, detail) {
    super(`${status} ${title}${detail ? `: ${detail}` : ""}`);
    this.status = status;
  }
}

async function api(method, path, body) {
  const session = auth.current();
  if (!session) throw new ApiError(401, "Unauthorized", "sign in first (the session ended)");
  const headers = { Authorization: `Bearer ${session.token}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let answer;
  try {
    answer = await fetch(config.api + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    throw new ApiError(0, "No answer", `the API could not be reached (${e.message})`);
  }
  const text = await answer.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!answer.ok) {
    throw new ApiError(answer.status, (data && data.title) || answer.statusText, (data && data.detail) || text.slice(0, 300));
  }
  return { status: answer.status, data };
}

function failure(e) {
  return h("div", { class: "notice bad", role: "alert" }, e.message);
}

// -- sign-in ------------------------------------------------------------------------------
function renderWho() {
  const who = $("#who");
  const session = auth.current();
  who.replaceChildren();
  if (!session) return;
  who.append(
    h("span", {}, "Signed in as ", h("b", {}, session.sub)),
    h("button", { type: "button", onclick: () => { auth.signOut(); signedOut(); } }, "Sign out"),
  );
}

function signedOut(message) {
  clearInterval(summaryTimer);
  $("#nav").hidden = true;
  renderWho();
  const box = h("section", { "aria-labelledby": "signin-title" }, h("h2", { id: "signin-title" }, "Sign in"));
  if (message) box.append(h("div", { class: "notice bad", role: "alert" }, message));
  if (config.oidc) {
    box.append(
      h("p", {}, "Operators sign in at ", h("b", {}, config.oidc.issuer), ", the issuer the API trusts."),
      h("button", { type: "button", class: "primary", onclick: () => auth.oidcStart(config.oidc).catch((e) => signedOut(e.message)) }, "Sign in"),
    );
  } else if (config.devSignIn) {
    const form = h("form", { id: "dev-signin" },
      h("p", { class: "muted" }, "Local platform: a dev token, as ", h("code", {}, "make token"), " mints it."),
      h("div", { class: "row" },
        h("div", {}, h("label", { for: "role" }, "Role"),
          h("select", { id: "role", name: "role" }, h("option", { value: "admin" }, "admin"), h("option", { value: "customer" }, "customer"))),
        h("div", {}, h("label", { for: "sub" }, "Subject"),
          h("input", { id: "sub", name: "sub", autocomplete: "username", placeholder: "dev-admin", maxlength: "64" })),
        h("button", { type: "submit", class: "primary" }, "Sign in"),
      ),
    );
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      try {
        await auth.devSignIn(form.role.value, form.sub.value.trim());
        await signedIn();
      } catch (e) {
        signedOut(`Sign-in failed: ${e.message}`);
      }
    });
    box.append(form);
  } else {
    box.append(h("div", { class: "notice bad" }, "config.json names no way to sign in."));
  }
  main().replaceChildren(box);
  const first = box.querySelector("select, button.primary");
  if (first) first.focus();
}

async function signedIn() {
  renderWho();
  // The API decides who operates: an operations call answers 403 to anyone but an admin.
  try {
    await api("GET", "/operations/orders?limit=1");
  } catch (e) {
    $("#nav").hidden = true;
    const refusal = e.status === 403
      ? `${auth.current().sub} is not an operator: the API refuses operations to this account (${e.message}). Sign out and sign in with an account in the admin group.`
      : `The API did not accept this sign-in: ${e.message}`;
    main().replaceChildren(h("section", {}, h("h2", {}, "No access"), h("div", { class: "notice bad", role: "alert", id: "refusal" }, refusal)));
    return;
  }
  $("#nav").hidden = false;
  if (!location.hash || location.hash === "#") location.hash = "#/orders";
  else route();
}

// -- routing ------------------------------------------------------------------------------
function route() {
  if (!auth.current()) return signedOut();
  if ($("#nav").hidden) return;
  const [path, query] = location.hash.slice(1).split("?");
  const params = new URLSearchParams(query || "");
  for (const a of document.querySelectorAll("#nav a")) {
    if (path.startsWith(a.getAttribute("href").slice(1))) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  clearInterval(summaryTimer);
  say("");
  const parts = path.split("/").filter(Boolean);
  if (parts[0] === "orders" && parts[1]) return orderView(decodeURIComponent(parts[1]));
  if (parts[0] === "dead-letters") return deadLettersView();
  if (parts[0] === "products") return productsView(params);
  return ordersView(params);
}

function show(...nodes) {
  main().replaceChildren(...nodes);
  main().focus();
}

// -- orders -------------------------------------------------------------------------------
async function countState(state) {
  let count = 0;
  let cursor = null;
  let recent = 0;
  for (let page = 0; page < SUMMARY_PAGES; page += 1) {
    const q = new URLSearchParams({ state, limit: "100" });
    if (cursor) q.set("cursor", cursor);
    const { data } = await api("GET", `/operations/orders?${q}`);
    count += data.items.length;
    recent += data.items.filter((o) => Date.now() - Date.parse(o.updatedAt) < 600000).length;
    cursor = data.nextCursor;
    if (!cursor) return { count: String(count), recent };
  }
  return { count: `${count}+`, recent };
}

async function refreshSummary(list) {
  try {
    const counts = await Promise.all(STATES.map(countState));
    const items = STATES.map((s, i) =>
      h("li", { class: s === "NEEDS_ATTENTION" && counts[i].count !== "0" ? "alert" : "" },
        h("span", {}, s === "NEEDS_ATTENTION" ? "Failures waiting (NEEDS ATTENTION)" : `In ${s}`),
        h("b", { "data-state": s }, counts[i].count),
        h("span", { class: "muted" }, `${counts[i].recent} moved here in the last 10 min`)));
    list.replaceChildren(...items);
    list.setAttribute("aria-busy", "false");
    list.nextElementSibling.textContent = `Updated ${new Date().toLocaleTimeString()}; every ${SUMMARY_EVERY_MS / 1000} s.`;
  } catch (e) {
    list.replaceChildren(h("li", {}, failure(e)));
  }
}

async function ordersView(params) {
  const state = STATES.includes(params.get("state")) ? params.get("state") : "NEEDS_ATTENTION";
  const cursor = params.get("cursor");
  const summary = h("ul", { class: "summary", "aria-busy": "true", "aria-label": "Orders in each state" }, h("li", {}, "Counting…"));
  const select = h("select", { id: "state-filter", name: "state" },
    STATES.map((s) => h("option", { value: s, selected: s === state }, s.replace("_", " "))));
  select.addEventListener("change", () => { location.hash = `#/orders?state=${select.value}`; });
  const table = h("div", {}, h("p", {}, "Loading orders…"));
  show(
    h("h2", {}, "Summary"), summary, h("p", { class: "muted" }),
    h("h2", { id: "orders-title" }, "Orders waiting"),
    h("div", { class: "row" }, h("div", {}, h("label", { for: "state-filter" }, "Filter by state"), select)),
    table,
  );
  refreshSummary(summary);
  summaryTimer = setInterval(() => { if (!document.hidden) refreshSummary(summary); }, SUMMARY_EVERY_MS);
  const q = new URLSearchParams({ state, limit: "25" });
  if (cursor) q.set("cursor", cursor);
  try {
    const { data } = await api("GET", `/operations/orders?${q}`);
    for (const o of data.items) {
      known.set(o.id, o);
      if (o.status === "NEEDS_ATTENTION" && o.failureReason) flagged.set(o.id, o.failureReason);
    }
    const rows = data.items.map((o) => h("tr", {},
      h("td", { "data-label": "Order" }, h("a", { href: `#/orders/${encodeURIComponent(o.id)}` }, o.id)),
      h("td", { "data-label": "State" }, badge(o.status), o.flaggedFrom ? h("div", { class: "muted" }, `from ${o.flaggedFrom}`) : null),
      h("td", { "data-label": "Waiting" }, age(o.updatedAt)),
      h("td", { "data-label": "Failure reason" }, o.failureReason || "—"),
      h("td", { "data-label": "Amount", class: "num" }, money(o.total)),
      h("td", { "data-label": "Customer" }, o.customer)));
    const pager = h("div", { class: "buttons" });
    if (cursor) pager.append(h("a", { href: `#/orders?state=${state}` }, "First page"));
    if (data.nextCursor) {
      pager.append(h("a", { href: `#/orders?state=${state}&cursor=${encodeURIComponent(data.nextCursor)}`, id: "next-page" }, "Next page"));
    }
    table.replaceChildren(
      rows.length
        ? h("table", { class: "cards", "aria-labelledby": "orders-title" },
          h("thead", {}, h("tr", {}, ["Order", "State", "Waiting", "Failure reason", "Amount", "Customer"].map((c) => h("th", { scope: "col", class: c === "Amount" ? "num" : "" }, c)))),
          h("tbody", {}, rows))
        : h("p", { class: "notice ok" }, `No order is ${state.replace("_", " ")}.`),
      h("p", { class: "muted" }, "The longest waiting first."),
      pager,
    );
  } catch (e) {
    table.replaceChildren(failure(e));
  }
}

// -- one order ----------------------------------------------------------------------------
function timeline(o) {
  const events = [{ at: o.createdAt, what: "Placed", detail: `PENDING, ${money(o.total)}` }];
  if (o.flaggedFrom) {
    const waiting = o.status === "NEEDS_ATTENTION";
    const flagAt = waiting && !(o.operatorActions || []).length ? o.updatedAt : null;
    const why = flagged.get(o.id) || (waiting ? o.failureReason : "");
    events.push({ at: flagAt, what: `Flagged NEEDS ATTENTION from ${o.flaggedFrom}`, detail: why || "" });
  }
  for (const a of o.operatorActions || []) {
    events.push({ at: a.at, what: `${a.action} by ${a.actor}: now ${a.to}`, detail: `Note: ${a.reason}` });
  }
  const last = (o.operatorActions || []).slice(-1)[0];
  if (!last || last.to !== o.status) {
    const failed = o.status === "NEEDS_ATTENTION" && o.flaggedFrom ? "" : o.failureReason;
    events.push({ at: o.updatedAt, what: `Now ${o.status}`, detail: failed || "" });
  }
  return h("ol", { class: "timeline", "aria-label": "Timeline" }, events.map((e) =>
    h("li", {}, e.at ? when(e.at) : h("time", {}, "time not recorded"), h("b", {}, e.what), e.detail ? h("div", {}, e.detail) : null)));
}

async function stockOf(lines) {
  const out = {};
  await Promise.all(lines.map(async (l) => {
    try {
      out[l.productId] = (await api("GET", `/products/${encodeURIComponent(l.productId)}`)).data.stock;
    } catch {
      out[l.productId] = "?";
    }
  }));
  return out;
}

async function orderView(id) {
  const box = h("section", { "aria-labelledby": "order-title" }, h("h2", { id: "order-title" }, `Order ${id}`), h("p", {}, "Loading…"));
  show(h("p", {}, h("a", { href: "#/orders" }, "← Orders waiting")), box);
  let order;
  try {
    order = { ...(known.get(id) || {}), ...(await api("GET", `/orders/${encodeURIComponent(id)}`)).data };
  } catch (e) {
    box.replaceChildren(box.firstChild, failure(e));
    return;
  }
  const stock = await stockOf(order.lines);
  const result = h("div", { id: "action-result", "aria-live": "polite" });
  const note = h("textarea", { id: "note", name: "note", required: true, maxlength: "500", "aria-describedby": "note-help" });
  const form = h("form", { id: "actions", "aria-labelledby": "actions-title", novalidate: true },
    h("h3", { id: "actions-title" }, "Act on it"),
    h("label", { for: "note" }, "Note (required, recorded on the order with your name)"), note,
    h("p", { id: "note-help", class: "muted" }, "Only an order that needs attention can be retried, cancelled or resolved; the API answers 409 otherwise."),
    h("div", { class: "buttons" }, Object.entries(ACTIONS).map(([name, a]) =>
      h("button", { type: "submit", value: name, class: name === "cancel" ? "danger" : "" }, a.label))),
    result);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const action = ev.submitter ? ev.submitter.value : "retry";
    if (!note.value.trim()) {
      result.replaceChildren(h("div", { class: "notice bad", role: "alert" }, "Write a note first: it is required."));
      note.focus();
      return;
    }
    if (!(await confirmDialog(`${ACTIONS[action].label} order ${id}? This ${ACTIONS[action].says}. Note: “${note.value.trim()}”`))) return;
    try {
      const { status, data } = await api("POST", `/operations/orders/${encodeURIComponent(id)}/${action}`, { reason: note.value.trim() });
      known.set(id, data);
      say(`${ACTIONS[action].label}: ${status}, order now ${data.status}`);
      await orderView(id);
      $("#action-result").replaceChildren(h("div", { class: "notice ok", role: "status" }, `${status} OK: ${ACTIONS[action].label.toLowerCase()} done; the order is now ${data.status}.`));
    } catch (e) {
      result.replaceChildren(failure(e));
    }
  });
  box.replaceChildren(
    box.firstChild,
    h("dl", { class: "facts" },
      h("dt", {}, "State"), h("dd", { id: "order-state" }, badge(order.status)),
      h("dt", {}, "Amount"), h("dd", {}, money(order.total)),
      h("dt", {}, "Customer"), h("dd", {}, order.customer),
      h("dt", {}, "Placed"), h("dd", {}, when(order.createdAt)),
      h("dt", {}, "Last change"), h("dd", {}, when(order.updatedAt)),
      order.failureReason ? [h("dt", {}, order.status === "NEEDS_ATTENTION" ? "Failure reason" : "Reason recorded"), h("dd", {}, order.failureReason)] : null),
    h("h3", {}, "Lines"),
    h("table", { class: "cards", id: "lines" },
      h("thead", {}, h("tr", {}, ["Product", "Quantity", "Subtotal", "In stock now"].map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, order.lines.map((l) => h("tr", {},
        h("td", { "data-label": "Product" }, l.name, h("div", { class: "muted" }, l.productId)),
        h("td", { "data-label": "Quantity" }, String(l.quantity)),
        h("td", { "data-label": "Subtotal" }, money(l.subtotal)),
        h("td", { "data-label": "In stock now", "data-product": l.productId }, String(stock[l.productId])))))),
    h("h3", {}, "Timeline"),
    timeline(order),
    h("p", { class: "muted", id: "timeline-note" },
      "The API's order document records its state, failure and operators' actions; it carries no payment, refund or shipment record, so none is shown here."),
    form,
  );
}

function confirmDialog(text) {
  const dialog = $("#confirm");
  $("#confirm-text").textContent = text;
  dialog.returnValue = "";
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
    dialog.showModal();
    $("#confirm-ok").focus();
  });
}

// -- dead letters -------------------------------------------------------------------------
function deadLettersView() {
  const result = h("div", { id: "redrive-result", "aria-live": "polite" });
  const button = h("button", { type: "button", class: "primary", id: "redrive" }, "Redrive dead letters");
  button.addEventListener("click", async () => {
    if (!(await confirmDialog("Send every dead letter back to its source queue? Fix the cause first: they are processed again."))) return;
    button.disabled = true;
    try {
      const { status, data } = await api("POST", "/operations/dead-letters/redrive");
      const total = data.queues.reduce((n, q) => n + (q.moved || 0), 0);
      result.replaceChildren(
        h("div", { class: "notice ok", role: "status" }, `${status} Accepted: ${data.queues.length} dead-letter queues${data.queues.some((q) => q.moved !== null) ? `, ${total} messages moved` : ""}.`),
        data.queues.length
          ? h("table", { class: "cards" },
            h("thead", {}, h("tr", {}, ["Dead-letter queue", "Back to", "Messages moved"].map((c) => h("th", { scope: "col" }, c)))),
            h("tbody", {}, data.queues.map((q) => h("tr", {},
              h("td", { "data-label": "Dead-letter queue" }, q.deadLetterQueue),
              h("td", { "data-label": "Back to" }, q.sourceQueue),
              h("td", { "data-label": "Messages moved", "data-queue": q.deadLetterQueue }, q.moved !== null && q.moved !== undefined ? String(q.moved) : `move task ${q.task || "started"}`)))))
          : h("p", {}, "No dead-letter queue to redrive here (on Knative dead letters go straight to HandleDeadLetters)."),
      );
    } catch (e) {
      result.replaceChildren(failure(e));
    } finally {
      button.disabled = false;
    }
  });
  show(h("section", { "aria-labelledby": "dl-title" },
    h("h2", { id: "dl-title" }, "Dead letters"),
    h("p", {}, "HandleDeadLetters flags each dead letter's order NEEDS ATTENTION, so the queues are normally empty. Messages stay when it could not handle them, or while its event sources are disabled during an incident."),
    h("p", { class: "muted" }, "The API lists no queue depths; the redrive answers, per queue, how many messages it moved (on AWS, the move task it started)."),
    button, result));
}

// -- products -----------------------------------------------------------------------------
async function productsView(params) {
  const cursor = params.get("cursor");
  const box = h("section", { "aria-labelledby": "products-title" }, h("h2", { id: "products-title" }, "Products and stock"), h("p", {}, "Loading…"));
  show(box);
  const q = new URLSearchParams({ limit: "50" });
  if (cursor) q.set("cursor", cursor);
  let data;
  try {
    data = (await api("GET", `/products?${q}`)).data;
  } catch (e) {
    box.append(failure(e));
    return;
  }
  const rows = data.items.map((p) => {
    const input = h("input", { type: "number", min: "0", step: "1", id: `stock-${p.id}`, value: String(p.stock), inputmode: "numeric" });
    const out = h("span", { class: "muted", "aria-live": "polite" });
    const form = h("form", { class: "stock-form" },
      h("label", { for: `stock-${p.id}`, class: "sr-only" }, `New stock for ${p.name}`), input,
      h("button", { type: "submit" }, "Set"), out);
    const low = p.stock <= LOW_STOCK;
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const target = Number(input.value);
      if (!Number.isInteger(target) || target < 0) {
        out.textContent = "a whole number, 0 or more";
        return;
      }
      // Relative to the stock shown: orders placed meanwhile are not overwritten, and the
      // API refuses (409) a change that would take the stock below zero.
      try {
        const { data: now } = await api("PUT", `/products/${encodeURIComponent(p.id)}/stock`, { adjust: target - p.stock });
        const moved = now.stock !== target ? ` (orders changed it by ${now.stock - target} since this page was loaded)` : "";
        say(`${p.name}: stock now ${now.stock}${moved}`);
        await productsView(params);
      } catch (e) {
        out.textContent = e.message;
        out.className = "notice bad";
      }
    });
    return h("tr", { class: low ? "low" : "", "data-product": p.id },
      h("td", { "data-label": "Product" }, p.name, h("div", { class: "muted" }, p.id)),
      h("td", { "data-label": "Category" }, p.category),
      h("td", { "data-label": "Price", class: "num" }, money(p.price)),
      h("td", { "data-label": "Stock", class: "num stock" }, String(p.stock), low ? [" ", badge("low", "low")] : null),
      h("td", { "data-label": "Set stock" }, form));
  });
  const pager = h("div", { class: "buttons" });
  if (cursor) pager.append(h("a", { href: "#/products" }, "First page"));
  if (data.nextCursor) pager.append(h("a", { href: `#/products?cursor=${encodeURIComponent(data.nextCursor)}` }, "Next page"));
  box.replaceChildren(box.firstChild,
    h("p", { class: "muted" }, `Stock at ${LOW_STOCK} or less is marked low. Setting stock applies the difference to the stock shown, so orders placed meanwhile still count.`),
    rows.length
      ? h("table", { class: "cards", "aria-labelledby": "products-title" },
        h("thead", {}, h("tr", {}, ["Product", "Category", "Price", "Stock", "Set stock"].map((c) => h("th", { scope: "col" }, c)))),
        h("tbody", {}, rows))
      : h("p", {}, "No products."),
    pager);
}

// -- start --------------------------------------------------------------------------------
async function start() {
  try {
    const answer = await fetch("config.json", { cache: "no-store" });
    if (!answer.ok) throw new Error(`config.json answered ${answer.status}`);
    config = { api: "", ...(await answer.json()) };
    config.api = (config.api || "").replace(/\/$/, "");
  } catch (e) {
    main().replaceChildren(h("div", { class: "notice bad", role: "alert" }, `The console could not load its configuration: ${e.message}`));
    return;
  }
  window.addEventListener("hashchange", route);
  if (config.oidc) {
    try {
      if (await auth.oidcFinish(config.oidc)) return signedIn();
    } catch (e) {
      return signedOut(e.message);
    }
  }
  signedOut();
}

start();
