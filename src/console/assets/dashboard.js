// The dashboard's live part: every two seconds, the org's sockets, the outbox's depth over the
// last minutes (drawn as a line) and the latest notifications with their outcome.

const $ = (id) => document.getElementById(id);
const EVERY_MS = 2000;

function rows(list, items, render, empty) {
  const el = $(list);
  el.replaceChildren(...(items.length ? items.map(render) : [render(null, empty)]));
}

function li(text, cls) {
  const x = document.createElement("li");
  x.textContent = text;
  if (cls) x.className = cls;
  return x;
}

function socketLine(s, empty) {
  return s ? li(`${s.app_id} · ${s.peer} · ${s.connection_id}`) : li(empty, "muted");
}

function chart(points) {
  const svg = $("outbox-chart");
  const ns = "http://www.w3.org/2000/svg";
  svg.replaceChildren();
  if (points.length === 0) return;
  const [w, h, pad] = [600, 120, 4];
  const t0 = points[0][0], t1 = Math.max(points[points.length - 1][0], t0 + 1);
  const top = Math.max(1, ...points.map((p) => p[1]));
  const x = (t) => pad + ((t - t0) / (t1 - t0)) * (w - 2 * pad);
  const y = (d) => h - pad - (d / top) * (h - 2 * pad);
  const line = document.createElementNS(ns, "polyline");
  line.setAttribute("points", points.map(([t, d]) => `${x(t).toFixed(1)},${y(d).toFixed(1)}`).join(" "));
  line.setAttribute("class", "depth");
  const label = document.createElementNS(ns, "text");
  label.setAttribute("x", "8");
  label.setAttribute("y", "14");
  label.textContent = `max ${top}`;
  svg.append(line, label);
}

function recentRow(n, empty) {
  const tr = document.createElement("tr");
  if (!n) {
    const td = document.createElement("td");
    td.colSpan = 6;
    td.className = "muted";
    td.textContent = empty;
    tr.append(td);
    return tr;
  }
  const when = new Date(n.at).toISOString().replace("T", " ").slice(0, 19);
  for (const text of [when, n.app_id, n.customer_id, n.kind, String(n.attempt), n.outcome]) {
    const td = document.createElement("td");
    if (text === n.customer_id && !n.kind.startsWith("purse")) {
      const a = document.createElement("a");
      a.href = `/console/customers?q=${encodeURIComponent(text)}`;
      a.textContent = text;
      td.append(a);
    } else {
      td.textContent = text;
    }
    tr.append(td);
  }
  tr.className = n.outcome === "answered" ? "ok" : "bad";
  return tr;
}

async function refresh() {
  const res = await fetch("/console/api/overview", { redirect: "manual" });
  if (res.type === "opaqueredirect" || res.status === 401) {
    location.href = "/console/login";
    return;
  }
  const o = await res.json();
  rows("apps", o.apps, socketLine, "no app socket connected");
  rows("simulators", o.simulators, socketLine, "no simulator socket connected");
  chart(o.outbox);
  const now = o.outbox.length ? o.outbox[o.outbox.length - 1][1] : 0;
  $("outbox-now").textContent = `${now} waiting now`;
  const body = document.querySelector("#recent tbody");
  body.replaceChildren(...(o.recent.length ? o.recent.map((n) => recentRow(n)) : [recentRow(null, "none yet")]));
  document.body.dataset.refreshed = String(Date.now());
}

async function loop() {
  try { await refresh(); } catch (err) { $("outbox-now").textContent = `cannot refresh: ${err.message}`; }
  setTimeout(loop, EVERY_MS);
}
loop();
