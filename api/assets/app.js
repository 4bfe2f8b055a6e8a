// gridcase dashboard. Plain script, no framework: it fetches the JSON the
// server computes from its projections (/api/v1/dashboard/...) and draws it
// with ECharts. It computes no figure itself; percentages are printed from
// the numerator and denominator the server sends.
"use strict";

const S = {
  me: null, csrf: null, meta: null, msgs: {}, lang: localStorage.getItem("gc_lang") || "zh",
  asOf: null, // null: live ("now"); else ms since the epoch
  view: "map", data: {}, drill: [], charts: {}, period: null, refreshTimer: null, feed: null,
};
const $ = (id) => document.getElementById(id);
const t = (k) => (S.msgs[S.lang] && S.msgs[S.lang][k]) || k;
const esc = (s) => String(s == null ? "" : s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);

// Times in the district's zone: shift by its offset and read the UTC fields.
function fmtTime(ms) {
  if (ms == null) return "–";
  const off = S.meta ? S.meta.offset_minutes : 480;
  return new Date(ms + off * 60000).toISOString().slice(0, 16).replace("T", " ");
}
function localInput(ms) {
  const off = S.meta ? S.meta.offset_minutes : 480;
  return new Date(ms + off * 60000).toISOString().slice(0, 16);
}
function pct(r) {
  return r && r.denominator > 0 ? (100 * r.numerator / r.denominator).toFixed(1) + "%" : "–";
}
function pctNum(r) {
  return r && r.denominator > 0 ? 100 * r.numerator / r.denominator : null;
}
function duration(ms) {
  const h = ms / 3600000;
  return h >= 48 ? (h / 24).toFixed(1) + t("days") : h.toFixed(1) + t("hours");
}
function unitName(code) {
  const u = S.meta && S.meta.unitsBy[code];
  return u ? u.name : code;
}

async function api(path, opts = {}) {
  const method = opts.method || "GET";
  const headers = { Accept: "application/json" };
  if (method !== "GET") { headers["Content-Type"] = "application/json"; if (S.csrf) headers["X-CSRF-Token"] = S.csrf; }
  const res = await fetch(path, { method, headers, body: opts.body, credentials: "same-origin" });
  if (res.status === 401 && !opts.quiet) { document.body.dataset.signedOut = path; showLogin(); throw new Error("signed out"); }
  if (res.status === 204) return null;
  const body = await res.json().catch(() => null);
  if (!res.ok) { const e = new Error((body && body.error && body.error.message) || res.statusText); e.status = res.status; throw e; }
  return body;
}
function withAsOf(path) {
  if (S.asOf == null) return path;
  const iso = new Date(S.asOf).toISOString().replace(/\.\d{3}Z$/, "Z");
  return path + (path.includes("?") ? "&" : "?") + "as_of=" + encodeURIComponent(iso);
}

// ---- language
function applyLang() {
  document.documentElement.lang = S.lang === "zh" ? "zh-CN" : "en";
  document.querySelectorAll("[data-t]").forEach((el) => { el.textContent = t(el.dataset.t); });
  $("lang").textContent = S.lang === "zh" ? "EN" : "中文";
}

// ---- sign-in
function showLogin() {
  $("app").hidden = true; $("login").hidden = false; stopFeed(); $("key").focus();
}
async function signIn(ev) {
  ev.preventDefault();
  $("login-error").textContent = "";
  try {
    const me = await api("/api/v1/dashboard/session", { method: "POST", body: JSON.stringify({ key: $("key").value }), quiet: true });
    $("key").value = "";
    await start(me);
  } catch (e) { $("login-error").textContent = t("bad_key") + " " + e.message; }
}
async function signOut() {
  try { await api("/api/v1/dashboard/session/end", { method: "POST", body: "{}" }); } catch (_) { /* already ended */ }
  S.me = null; S.csrf = null; showLogin();
}

async function start(me) {
  S.me = me; S.csrf = me.csrf;
  $("login").hidden = true; $("app").hidden = false;
  $("user").textContent = me.name + " · " + me.role;
  await loadMeta();
  route();
  startFeed();
}

async function loadMeta() {
  const m = await api(withAsOf("/api/v1/dashboard/meta"));
  const r = m.report;
  r.offset_minutes = m.offset_minutes; r.zone = m.zone;
  r.unitsBy = {}; r.units.forEach((u) => { r.unitsBy[u.code] = u; });
  S.meta = r;
  $("district").textContent = r.district ? r.district.name : "";
  const sl = $("slider");
  sl.min = r.first_recorded_at || m.as_of; sl.max = S.asOf == null ? m.as_of : Math.max(m.as_of, Number(sl.max) || 0);
  if (S.asOf == null) sl.value = sl.max;
  setAudit(m);
  fillPeriods();
}

function setAudit(m) {
  $("position").textContent = m.position;
  $("digest").textContent = m.digest;
  $("digest").title = m.digest;
  $("asof-text").textContent = m.as_of_text;
  const b = $("live");
  b.textContent = m.live ? t("live") : t("past");
  b.className = "badge " + (m.live ? "live" : "past");
  if (document.activeElement !== $("asof-input")) $("asof-input").value = localInput(m.as_of);
}

// ---- time travel
function setAsOf(ms) {
  const max = Number($("slider").max);
  S.asOf = ms == null || ms >= max ? null : ms;
  if (S.asOf == null) $("slider").value = max;
  refresh();
}

// ---- views
function route() {
  const h = location.hash.replace(/^#/, "") || "map";
  const [view, arg] = h.split("/");
  S.view = ["map", "rates", "chains", "overdue", "case"].includes(view) ? view : "map";
  S.caseId = arg || null;
  document.querySelectorAll(".view").forEach((v) => { v.hidden = v.id !== "view-" + S.view; });
  document.querySelectorAll("#tabs a").forEach((a) => a.classList.toggle("active", a.dataset.view === S.view));
  refresh();
}

async function refresh() {
  if (!S.me) return;
  try {
    await loadMeta();
    const v = S.view;
    if (v === "map") await drawMap();
    else if (v === "rates") await drawRates();
    else if (v === "chains") await drawChains();
    else if (v === "overdue") await drawOverdue();
    else if (v === "case") await drawCase();
    document.body.dataset.position = S.meta ? $("position").textContent : "";
    document.body.dataset.ready = v;
    if (!document.body.dataset.readyAt) document.body.dataset.readyAt = String(Math.round(performance.now()));
    delete document.body.dataset.error;
  } catch (e) {
    // Kept on the page for the browser tests' failure messages.
    if (e.message !== "signed out") { console.error(e); document.body.dataset.error = String(e) + " " + (e.stack || ""); }
  }
}

function chart(id) {
  if (!S.charts[id]) S.charts[id] = echarts.init($(id));
  // A chart resized while its view was hidden measured zero: measure again
  // now that it is shown.
  S.charts[id].resize();
  return S.charts[id];
}

// Map: one shape per grid, coloured by the chosen figure, drill-down street → community.
async function drawMap() {
  const [geo, backlog, rates] = await Promise.all([
    api(withAsOf("/api/v1/dashboard/map")),
    api(withAsOf("/api/v1/dashboard/backlog")),
    api(withAsOf("/api/v1/dashboard/rates" + (S.period ? "?period=" + encodeURIComponent(S.period) : ""))),
  ]);
  setAudit(backlog);
  const rows = {}; backlog.report.grids.forEach((g) => { rows[g.code] = g; });
  const res = {}; rates.report.rates.units.forEach((u) => { if (u.kind === "grid") res[u.code] = u; });
  const [street, community] = S.drill;
  const feats = geo.report.features.filter((f) => (!street || f.properties.street === street) && (!community || f.properties.community === community));
  const name = "grids:" + (community || street || "all");
  echarts.registerMap(name, { type: "FeatureCollection", features: feats });
  S.mapName = name; S.mapFeatures = feats.length;
  const metric = $("map-metric").value;
  const value = (code) => {
    if (metric === "resolution") return pctNum(res[code] && res[code].resolution);
    const r = rows[code]; return r ? r[metric] : 0;
  };
  const data = feats.map((f) => ({ name: f.properties.name, value: value(f.properties.code) }));
  const vals = data.map((d) => d.value).filter((x) => x != null);
  const c = chart("map-chart");
  c.setOption({
    tooltip: { trigger: "item", formatter: (p) => gridTip(p.name, rows[p.name], res[p.name]) },
    visualMap: {
      min: metric === "resolution" ? 80 : 0, max: metric === "resolution" ? 100 : Math.max(1, ...vals),
      inRange: { color: metric === "resolution" ? ["#d7301f", "#fdcc8a", "#1a9850"] : ["#1a9850", "#fdcc8a", "#d7301f"] },
      text: [t("metric_" + metric), ""], textStyle: { color: "#e8eef7" }, calculable: true, left: 10, bottom: 20,
    },
    series: [{ type: "map", map: name, roam: true, data, nameProperty: "name", emphasis: { label: { show: false } },
      itemStyle: { borderColor: "#0f1b2d", borderWidth: 0.5 }, select: { disabled: true } }],
  }, true);
  c.off("click");
  c.on("click", (p) => {
    const f = feats.find((x) => x.properties.name === p.name);
    if (!f) return;
    if (!street) S.drill = [f.properties.street];
    else if (!community) S.drill = [street, f.properties.community];
    else { location.hash = "#overdue"; return; }
    drawMap();
  });
  const crumbs = ['<a data-d="0">' + esc(t("district_all")) + "</a>"];
  if (street) crumbs.push('<a data-d="1">' + esc(unitName(street)) + "</a>");
  if (community) crumbs.push("<span>" + esc(unitName(community)) + "</span>");
  $("crumbs").innerHTML = crumbs.join(" › ");
  $("crumbs").querySelectorAll("a").forEach((a) => { a.onclick = () => { S.drill = S.drill.slice(0, Number(a.dataset.d)); drawMap(); }; });
  const d = backlog.report.district;
  $("map-summary").textContent = d ? `${t("open")} ${d.open} · ${t("overdue")} ${d.overdue}` : "";
  $("map-note").textContent = geo.report.schematic ? t("schematic") : "";
}

function gridTip(code, r, rr) {
  const a = r ? r.aging : null;
  const cell = (k, v) => `<tr><td>${esc(t(k))}</td><td data-k="${k}">${esc(v)}</td></tr>`;
  return `<div class="tip" data-grid="${esc(code)}"><b>${esc(unitName(code))} (${esc(code)})</b><table>` +
    cell("open", r ? r.open : 0) + cell("overdue", r ? r.overdue : 0) +
    cell("aging", a ? [a.under_1_day, a.days_1_to_3, a.days_3_to_7, a.days_7_to_15, a.over_15_days].join("/") : "0/0/0/0/0") +
    cell("solved_in_grid", r && r.solved_in_grid_percent != null ? r.solved_in_grid_percent.toFixed(1) + "% (" + r.solved_in_grid + "/" + r.resolved + ")" : "–") +
    cell("resolution", rr ? pct(rr.resolution) : "–") + "</table></div>";
}

function fillPeriods() {
  const p = S.meta.periods; const sel = $("period");
  const all = [...p.month.slice().reverse(), ...p.week.slice().reverse(), ...p.day.slice().reverse()];
  // The month the moment falls in when it has figures (what the CLI shows by
  // default), else the latest month that has.
  if (!S.period || !all.includes(S.period)) S.period = p.month.includes(S.meta.default_period) ? S.meta.default_period : (p.month[p.month.length - 1] || S.meta.default_period);
  const want = all.includes(S.period) ? all : [S.period, ...all];
  if (sel.dataset.list !== want.join(",")) {
    sel.innerHTML = want.map((x) => `<option>${esc(x)}</option>`).join("");
    sel.dataset.list = want.join(",");
  }
  sel.value = S.period;
}

const RATE_FIELDS = ["resolution", "response", "satisfaction", "on_time", "return_rate", "redo"];

async function drawRates() {
  const r = await api(withAsOf("/api/v1/dashboard/rates?period=" + encodeURIComponent(S.period)));
  setAudit(r);
  const rep = r.report.rates; const kind = $("rates-kind").value;
  const shown = rep.units.filter((u) => (kind === "main" ? ["district", "street", "department"].includes(u.kind) : u.kind === kind));
  const head = `<tr><th class="l">${t("unit")}</th><th class="l">${t("kind")}</th><th>${t("cases")}</th>` + RATE_FIELDS.map((f) => `<th>${t(f)}</th>`).join("") + "</tr>";
  const rows = shown.map((u) => `<tr data-code="${esc(u.code)}" class="${u.below_target ? "below" : ""}"><td class="l">${esc(u.name)}</td><td class="l">${esc(t(u.kind))}</td><td data-f="cases">${u.counts.cases}</td>` +
    RATE_FIELDS.map((f) => `<td data-f="${f}" data-num="${u[f].numerator}" data-den="${u[f].denominator}">${pct(u[f])}</td>`).join("") + "</tr>").join("");
  $("rates-table").innerHTML = "<thead>" + head + "</thead><tbody>" + rows + "</tbody>";
  const below = shown.filter((u) => u.below_target).length;
  $("rates-summary").textContent = `${t("target")} ${rep.target_percent}% · ${below} ${t("units_below")}`;
  const bars = shown.filter((u) => u.kind !== "district" && u.resolution.denominator > 0);
  chart("rates-chart").setOption({
    grid: { left: 50, right: 20, top: 30, bottom: 90 },
    tooltip: { trigger: "axis" },
    xAxis: { type: "category", data: bars.map((u) => u.name), axisLabel: { rotate: 50, color: "#e8eef7" } },
    yAxis: { type: "value", min: (v) => Math.max(0, Math.floor(v.min - 2)), max: 100, axisLabel: { color: "#e8eef7" } },
    series: [{ type: "bar", name: t("resolution"), data: bars.map((u) => ({ value: +pctNum(u.resolution).toFixed(2), itemStyle: { color: u.below_target ? "#ff6b6b" : "#4cd08a" } })),
      markLine: { symbol: "none", data: [{ yAxis: rep.target_percent, name: t("target") }], lineStyle: { color: "#f5b342", type: "dashed", width: 2 }, label: { formatter: rep.target_percent + "%", color: "#f5b342" } } }],
  }, true);
  const rk = r.report.ranking;
  $("ranking").innerHTML = `<h3>${t("ranking")} ${esc(rk.month)}${rk.previous_month ? " (vs " + esc(rk.previous_month) + ")" : ""}</h3>` + rk.kinds.filter((k) => k.ranked.length && k.kind !== "grid" && k.kind !== "community").map((k) =>
    `<table class="ranking" data-kind="${k.kind}"><tr><th>${t("rank")}</th><th class="l">${t(k.kind)}</th><th>${t("resolution")}</th><th>${t("change")}</th></tr>` +
    k.ranked.map((x) => `<tr class="${x.unit.below_target ? "below" : ""}"><td>${x.rank}</td><td class="l">${esc(x.unit.name)}</td><td>${pct(x.unit.resolution)}</td><td class="${x.change > 0 ? "up" : x.change < 0 ? "down" : ""}">${x.change == null ? "–" : x.change > 0 ? "▲" + x.change : x.change < 0 ? "▼" + -x.change : "="}</td></tr>`).join("") + "</table>").join("");
}

async function drawChains() {
  const r = await api(withAsOf("/api/v1/dashboard/chains"));
  setAudit(r);
  const rep = r.report;
  // A shape's step is a level or departments joined by "&", with "+return"
  // or "+reopen" when the case came back that way.
  const label = (tok) => {
    const [base, how] = tok.split("+");
    const name = ["community", "street", "department"].includes(base) ? t("level_" + base) : base.split("&").map(unitName).join("、");
    return how ? name + " (" + t(how) + ")" : name;
  };
  const nodes = new Map(); const links = new Map();
  const node = (id, name) => { if (!nodes.has(id)) nodes.set(id, { name: id, label: name }); return id; };
  const link = (a, b, v) => { const k = a + "\u0000" + b; links.set(k, (links.get(k) || 0) + v); };
  if (rep.shapes.length) {
    // Each shape is a path: community, street, then departments joined by
    // "&" (with "+return" or "+reopen" when the case came back). The flow
    // shows the first pass: community → street → each department it went to.
    rep.shapes.forEach((s) => {
      const toks = s.shape.split("→").map((x) => x.split("+")[0]);
      const si = toks.indexOf("street");
      if (si < 0) return;
      link(node("community", t("level_community")), node("street", t("level_street")), s.cases);
      const next = toks[si + 1];
      if (next && next !== "community" && next !== "street") {
        next.split("&").forEach((d) => link("street", node("d:" + d, unitName(d)), s.cases));
      }
    });
  } else {
    rep.communities.forEach((c) => {
      const st = (S.meta.unitsBy[c.code] || {}).parent;
      if (c.counts.to_street) link(node("c:" + c.code, c.name), node("s:" + st, unitName(st)), c.counts.to_street);
    });
    rep.streets.forEach((s) => { if (s.counts.to_department) link(node("s:" + s.code, s.name), node("d", t("departments")), s.counts.to_department); });
  }
  chart("sankey-chart").setOption({
    tooltip: { trigger: "item" },
    series: [{ type: "sankey", left: 10, right: 160, top: 20, bottom: 20, emphasis: { focus: "adjacency" }, nodeAlign: "left", layoutIterations: 32,
      label: { color: "#e8eef7", formatter: (p) => (nodes.get(p.name) || {}).label || p.name },
      lineStyle: { color: "gradient", opacity: 0.4 },
      data: [...nodes.values()].map((n) => ({ name: n.name })),
      links: [...links.entries()].map(([k, v]) => { const [a, b] = k.split("\u0000"); return { source: a, target: b, value: v }; }) }],
  }, true);
  $("levels-table").innerHTML = `<tr><th class="l">${t("level")}</th><th>${t("holds")}</th><th>${t("median")}</th><th>${t("p90")}</th></tr>` +
    rep.levels.map((l) => `<tr><td class="l">${t("level_" + l.level)}</td><td>${l.holds}</td><td>${l.median_minutes ?? "–"}</td><td>${l.p90_minutes ?? "–"}</td></tr>`).join("");
  const sts = rep.streets.slice().sort((a, b) => b.counts.to_street - a.counts.to_street);
  $("streets-table").innerHTML = sts.length ? `<tr><th class="l">${t("street")}</th><th>${t("cases")}</th><th>${t("to_street")}</th><th>${t("to_department")}</th></tr>` +
    sts.map((c) => `<tr><td class="l">${esc(c.name)}</td><td>${c.counts.cases}</td><td>${c.counts.to_street}</td><td>${c.counts.to_department}</td></tr>`).join("") : "";
  const cats = rep.categories.slice(0, 10);
  $("categories-table").innerHTML = cats.length ? `<tr><th class="l">${t("category")}</th><th>${t("cases")}</th><th>${t("to_street")}</th><th>${t("to_department")}</th><th>${t("escalation_rate")}</th></tr>` +
    cats.map((c) => `<tr><td class="l">${esc(c.name)}</td><td>${c.counts.cases}</td><td>${c.counts.to_street}</td><td>${c.counts.to_department}</td><td>${pct(c.rate)}</td></tr>`).join("") : "";
}

async function drawOverdue() {
  const r = await api(withAsOf("/api/v1/dashboard/overdue"));
  setAudit(r);
  const rep = r.report;
  $("overdue-summary").textContent = `${t("overdue")} ${rep.overdue} · ${t("near_due")} ${rep.near_due}`;
  const cats = S.meta.categories;
  let html = "";
  rep.holders.forEach((h) => {
    html += `<tr class="holder"><th class="l" colspan="3">${esc(h.name)} (${esc(t("level_" + h.level))})</th><th>${t("open")} ${h.open}</th><th>${t("overdue")} ${h.overdue}</th><th>${t("near_due")} ${h.near_due}</th></tr>`;
    h.cases.slice(0, 50).forEach((c) => {
      html += `<tr data-case="${esc(c.case_id)}"><td class="l"><a href="#case/${encodeURIComponent(c.case_id)}">${esc(c.case_id)}</a></td><td class="l">${esc(t(c.state))}</td><td class="l">${esc(cats[c.category] || c.category)}</td><td class="l">${esc(unitName(c.grid))}</td><td>${fmtTime(c.resolution_due)}</td><td>${c.overdue_by_ms > 0 ? duration(c.overdue_by_ms) : "–"}</td></tr>`;
    });
  });
  $("overdue-table").innerHTML = `<thead><tr><th class="l">${t("case")}</th><th class="l">${t("state")}</th><th class="l">${t("category")}</th><th class="l">${t("grid")}</th><th>${t("due")}</th><th>${t("overdue_by")}</th></tr></thead><tbody>${html}</tbody>`;
}

async function drawCase() {
  let r;
  try { r = await api(withAsOf("/api/v1/dashboard/cases/" + encodeURIComponent(S.caseId))); } catch (e) {
    $("case-body").innerHTML = `<p class="error" id="case-error">${esc(t("not_found"))}</p>`; return;
  }
  const c = r.case;
  const contact = c.contact ? esc([c.contact.name, c.contact.phone].filter(Boolean).join(" ")) : esc(t("hidden"));
  const dl = [["status", c.status], ["category", c.category_name], ["grid", unitName(c.grid) + " " + c.grid],
    ["holder", r.holders.map((h) => h.name + " (" + fmtTime(h.since) + ")").join(", ")],
    ["response_due", r.deadlines.response_due_text], ["resolution_due", r.deadlines.resolution_due_text], ["contact", null]];
  $("case-body").innerHTML = `<p><a href="#overdue">‹ ${t("back")}</a></p><h2 id="case-id">${esc(c.id)}</h2><p>${esc(c.description)}</p><dl>` +
    dl.map(([k, v]) => `<dt>${t(k)}</dt><dd data-k="${k}">${k === "contact" ? contact : esc(v)}</dd>`).join("") + "</dl>" +
    `<h3>${t("chain")}</h3><p>${r.chain ? esc(r.chain.shape.split("→").map((x) => (["community", "street", "department"].includes(x) ? t("level_" + x) : unitName(x))).join(" → ")) : "–"}</p>` +
    `<h3>${t("timeline")}</h3><table><tr><th class="l">${t("when")}</th><th class="l">${t("who")}</th><th class="l">${t("what")}</th><th class="l">${t("why")}</th></tr>` +
    r.timeline.map((e) => `<tr><td class="l">${fmtTime(e.at)}</td><td class="l">${esc(e.who)}</td><td class="l">${esc(e.what)}</td><td class="l">${esc(e.why || "")}</td></tr>`).join("") + "</table>";
}

// ---- live: follow the event feed while at "now"
function stopFeed() { if (S.feed) { S.feed.abort(); S.feed = null; } }
async function startFeed() {
  stopFeed();
  const ctl = new AbortController(); S.feed = ctl;
  try {
    const res = await fetch("/api/v1/events", { signal: ctl.signal, credentials: "same-origin", headers: { Accept: "text/event-stream" } });
    if (!res.ok || !res.body) throw new Error("feed " + res.status);
    const reader = res.body.getReader(); const dec = new TextDecoder();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      // Any record (not a keep-alive comment) changes the projections.
      if (/^data:/m.test(dec.decode(value, { stream: true })) && S.asOf == null) scheduleRefresh();
    }
  } catch (e) { if (ctl.signal.aborted) return; }
  if (S.feed === ctl && S.me) setTimeout(startFeed, 2000);
}
function scheduleRefresh() {
  clearTimeout(S.refreshTimer);
  S.refreshTimer = setTimeout(() => { if (S.asOf == null) refresh(); }, 200);
}

// ---- wiring
async function main() {
  S.msgs = await (await fetch("/assets/messages.json")).json();
  applyLang();
  $("login-form").addEventListener("submit", signIn);
  $("signout").onclick = signOut;
  $("lang").onclick = () => { S.lang = S.lang === "zh" ? "en" : "zh"; localStorage.setItem("gc_lang", S.lang); applyLang(); refresh(); };
  $("slider").addEventListener("input", () => { $("asof-text").textContent = fmtTime(Number($("slider").value)); });
  $("slider").addEventListener("change", () => setAsOf(Number($("slider").value)));
  $("asof-input").addEventListener("change", () => {
    const v = $("asof-input").value; if (!v) return;
    // The field is in the district's zone: undo its offset.
    const ms = Date.parse(v + ":00Z") - S.meta.offset_minutes * 60000;
    $("slider").value = ms; setAsOf(ms);
  });
  $("now-btn").onclick = () => setAsOf(null);
  $("map-metric").onchange = drawMap;
  $("period").onchange = () => { S.period = $("period").value; refresh(); };
  $("rates-kind").onchange = drawRates;
  window.addEventListener("hashchange", route);
  window.addEventListener("resize", () => Object.values(S.charts).forEach((c) => c.resize()));
  try { await start(await api("/api/v1/dashboard/session", { quiet: true })); } catch (_) { showLogin(); }
}
document.addEventListener("DOMContentLoaded", main);
