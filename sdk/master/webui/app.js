// corral's web UI: one page, no dependencies. It subscribes to the master's event
// stream (/events): the first event (SUBSCRIBED) carries the whole state, the others
// change it (tasks added and updated, agents and frameworks added, updated, removed),
// and the page re-renders what is on screen at most a few times a second. Sandboxes
// and logs are read through the master (/files/browse, /files/read), so the browser
// needs the master's address only.
"use strict";

const PAGE_SIZE = 50;
const RENDER_DELAY_MS = 150;
const LOG_POLL_MS = 1000;
const LOG_TAIL_BYTES = 64 * 1024;
const ROLES_POLL_MS = 2000;
const SCALARS = ["cpus", "mem", "disk", "gpus"];
const TASK_STATES = ["TASK_STAGING", "TASK_STARTING", "TASK_RUNNING", "TASK_KILLING", "TASK_FINISHED",
  "TASK_FAILED", "TASK_KILLED", "TASK_ERROR", "TASK_LOST", "TASK_DROPPED", "TASK_UNREACHABLE", "TASK_GONE",
  "TASK_GONE_BY_OPERATOR", "TASK_UNKNOWN"];
const TERMINAL = new Set(["TASK_FINISHED", "TASK_FAILED", "TASK_KILLED", "TASK_ERROR", "TASK_LOST",
  "TASK_DROPPED", "TASK_GONE", "TASK_GONE_BY_OPERATOR"]);

// ------------------------------------------------------------------ the model
const model = {
  ready: false,
  master: {},            // id, version, start_time, leader, hostname, ...
  clockSkew: 0,          // server time - browser time, seconds
  counters: {},
  agents: new Map(),     // id -> agent
  frameworks: new Map(), // id -> framework (active)
  completed: new Map(),  // id -> framework (completed)
  tasks: new Map(),      // framework id + "\u0000" + task id -> task
};

const taskKey = (fid, tid) => fid + "\u0000" + tid;

function frameworkHead(fw) {
  const copy = Object.assign({}, fw);
  delete copy.tasks;
  delete copy.completed_tasks;
  return copy;
}

function addTasksOf(fw) {
  for (const t of (fw.tasks || [])) model.tasks.set(taskKey(t.framework_id, t.id), t);
  for (const t of (fw.completed_tasks || [])) model.tasks.set(taskKey(t.framework_id, t.id), t);
}

function loadState(state) {
  model.master = state;
  model.clockSkew = (state.now || Date.now() / 1000) - Date.now() / 1000;
  model.counters = state.counters || {};
  model.agents = new Map(state.agents.map(a => [a.id, a]));
  model.frameworks = new Map();
  model.completed = new Map();
  model.tasks = new Map();
  for (const fw of state.frameworks) { model.frameworks.set(fw.id, frameworkHead(fw)); addTasksOf(fw); }
  for (const fw of (state.completed_frameworks || [])) { model.completed.set(fw.id, frameworkHead(fw)); addTasksOf(fw); }
  model.ready = true;
}

const handlers = {
  SUBSCRIBED(data) { loadState(data.state); },
  TASK_ADDED(data) { for (const t of data.tasks) model.tasks.set(taskKey(t.framework_id, t.id), t); },
  TASK_UPDATED(data) {
    for (const [id, state, healthy] of data.tasks) {
      const task = model.tasks.get(taskKey(data.framework_id, id));
      if (task === undefined) continue;  // (a late update of a task this master forgot)
      task.state = state;
      task.healthy = healthy;
      task.rev = (task.rev || 0) + 1;  // the task page reads the rest (history, sandbox) from /task
    }
  },
  AGENT_ADDED(data) { model.agents.set(data.agent.id, data.agent); },
  AGENT_UPDATED(data) { model.agents.set(data.agent.id, data.agent); },
  AGENT_REMOVED(data) { model.agents.delete(data.agent_id); },
  FRAMEWORK_ADDED(data) { model.frameworks.set(data.framework.id, frameworkHead(data.framework)); },
  FRAMEWORK_UPDATED(data) { model.frameworks.set(data.framework.id, frameworkHead(data.framework)); },
  FRAMEWORK_REMOVED(data) {
    model.frameworks.delete(data.framework.id);
    model.completed.set(data.framework.id, frameworkHead(data.framework));
  },
  HEARTBEAT(data) {
    model.counters = data.counters;
    model.clockSkew = data.now - Date.now() / 1000;
  },
};

// ------------------------------------------------------------------ the stream
let source = null;

function connect() {
  source = new EventSource("/events");
  for (const name of Object.keys(handlers)) {
    source.addEventListener(name, ev => {
      handlers[name](JSON.parse(ev.data));
      if (name === "SUBSCRIBED") setLive(true);
      scheduleRender();
    });
  }
  source.onerror = () => setLive(false);  // EventSource reconnects by itself; SUBSCRIBED reloads the state
}

function setLive(on) {
  const el = document.getElementById("live");
  el.className = "live " + (on ? "on" : "off");
  el.textContent = on ? "live" : "reconnecting";
}

// ------------------------------------------------------------------ helpers
function esc(value) {
  return String(value === undefined || value === null ? "" : value)
    .replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}
const enc = encodeURIComponent;
const stateBadge = s => `<span class="state ${esc(s)}">${esc(s)}</span>`;
const num = (v, digits = 2) => (v === undefined || v === null) ? "" :
  (Number.isInteger(v) ? String(v) : Number(v).toFixed(digits).replace(/\.?0+$/, ""));
const now = () => Date.now() / 1000 + model.clockSkew;

function fmtTime(t) {
  if (!t) return "";
  const d = new Date(t * 1000);
  return d.toLocaleString(undefined, { hour12: false }) + "." + String(d.getMilliseconds()).padStart(3, "0");
}

function fmtDuration(seconds) {
  seconds = Math.max(0, Math.floor(seconds));
  const d = Math.floor(seconds / 86400), h = Math.floor(seconds % 86400 / 3600),
    m = Math.floor(seconds % 3600 / 60), s = seconds % 60;
  return (d ? d + "d " : "") + (d || h ? h + "h " : "") + (d || h || m ? m + "m " : "") + s + "s";
}

function fmtResources(r) {
  if (!r) return "";
  return Object.keys(r).sort().map(k => `${k}: ${typeof r[k] === "number" ? num(r[k]) : esc(JSON.stringify(r[k]))}`)
    .join(", ");
}

function sumScalars(list) {
  const total = {};
  for (const r of list) for (const k of SCALARS) if (typeof (r || {})[k] === "number") total[k] = (total[k] || 0) + r[k];
  return total;
}

function countBy(items, key) {
  const out = {};
  for (const item of items) out[key(item)] = (out[key(item)] || 0) + 1;
  return out;
}

// an agent by host and the end of its id (agents of `corral local` share one host)
const agentName = id => { const a = model.agents.get(id); return a ? `${a.hostname} (${id.slice(id.lastIndexOf("-") + 1)})` : id; };
const frameworkOf = id => model.frameworks.get(id) || model.completed.get(id);
const frameworkName = id => { const f = frameworkOf(id); return f && f.name ? f.name : id; };
const agentLink = id => `<a href="#/agents/${enc(id)}">${esc(agentName(id))}</a>`;
const frameworkLink = id => `<a href="#/frameworks/${enc(id)}">${esc(frameworkName(id))}</a>`;
const taskLink = t => `<a href="#/tasks/${enc(t.framework_id)}/${enc(t.id)}">${esc(t.id)}</a>`;

function table(headers, rows, empty = "none") {
  if (!rows.length) return `<p class="muted">${esc(empty)}</p>`;
  const head = headers.map(h => h.startsWith("#") ? `<th class="num">${esc(h.slice(1))}</th>` : `<th>${esc(h)}</th>`);
  return `<table><thead><tr>${head.join("")}</tr></thead><tbody>${rows.map(r => `<tr>${r.join("")}</tr>`).join("")}</tbody></table>`;
}
const td = v => `<td>${v}</td>`;
const tdn = v => `<td class="num">${v}</td>`;

function kv(pairs) {
  return `<dl class="kv">${pairs.map(([k, v]) => `<dt>${esc(k)}</dt><dd>${v}</dd>`).join("")}</dl>`;
}

async function getJSON(url) {
  const response = await fetch(url);
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
}

// ------------------------------------------------------------------ views
// Each view: mount(params) builds the page's fixed parts once; update() refreshes the
// parts that live data changes (called after events, at most every RENDER_DELAY_MS).
const views = {};

views.overview = {
  mount() {
    main().innerHTML = `<h1>Overview</h1><div id="cards" class="cards"></div>
      <div class="grid2"><div><h2>Tasks by state</h2><div id="by-state"></div></div>
      <div><h2>Agents</h2><div id="agent-states"></div><h2>Frameworks</h2><div id="fw-summary"></div></div></div>`;
  },
  update() {
    const agents = [...model.agents.values()];
    const total = sumScalars(agents.map(a => a.resources));
    const used = sumScalars(agents.map(a => a.used_resources));
    const offered = sumScalars(agents.map(a => a.offered_resources));
    const cards = SCALARS.filter(k => total[k]).map(k => {
      const t = total[k], u = used[k] || 0, o = offered[k] || 0;
      return `<div class="card" data-resource="${k}"><div class="label">${k}</div>
        <div class="value">${num(u)} <span class="sub">/ ${num(t)} used</span></div>
        <div class="sub">${num(o)} offered, ${num(Math.max(0, t - u - o))} idle</div>
        <div class="bar"><span class="used" style="width:${100 * u / t}%"></span><span class="offered" style="width:${100 * o / t}%"></span></div></div>`;
    });
    const byState = countBy(model.tasks.values(), t => t.state);
    const active = [...model.tasks.values()].filter(t => !TERMINAL.has(t.state)).length;
    cards.push(`<div class="card"><div class="label">Tasks</div><div class="value" id="active-tasks">${active}</div>
      <div class="sub">active, ${model.tasks.size - active} completed</div></div>`);
    cards.push(`<div class="card"><div class="label">Agents</div><div class="value" id="agent-count">${agents.length}</div>
      <div class="sub">${agents.filter(a => a.state === "registered").length} registered</div></div>`);
    cards.push(`<div class="card"><div class="label">Frameworks</div><div class="value" id="framework-count">${model.frameworks.size}</div>
      <div class="sub">${[...model.frameworks.values()].filter(f => f.active).length} active, ${model.completed.size} completed</div></div>`);
    const m = model.master;
    cards.push(`<div class="card"><div class="label">Leader</div><div class="value mono" style="font-size:15px">${esc(m.leader || m.address)}</div>
      <div class="sub">version ${esc(m.version)}, up <span id="uptime">${fmtDuration(now() - m.start_time)}</span></div></div>`);
    document.getElementById("cards").innerHTML = cards.join("");
    document.getElementById("by-state").innerHTML = table(["State", "#Tasks"],
      TASK_STATES.filter(s => byState[s]).map(s => [td(`<a href="#/tasks?state=${s}">${stateBadge(s)}</a>`),
        `<td class="num" data-state-count="${s}">${byState[s]}</td>`]), "no tasks yet");
    const agentStates = countBy(agents, a => a.state);
    document.getElementById("agent-states").innerHTML = table(["State", "#Agents"],
      Object.keys(agentStates).sort().map(s => [td(stateBadge(s)), `<td class="num" data-agent-state="${s}">${agentStates[s]}</td>`]),
      "no agents");
    const fws = [...model.frameworks.values()];
    document.getElementById("fw-summary").innerHTML = table(["Framework", "State", "#Tasks"],
      fws.map(f => [td(frameworkLink(f.id)), td(stateBadge(f.active ? "active" : "inactive")),
        tdn([...model.tasks.values()].filter(t => t.framework_id === f.id && !TERMINAL.has(t.state)).length)]),
      "no frameworks");
  },
};

views.agents = {
  mount() { main().innerHTML = `<h1>Agents</h1><div id="agents"></div>`; },
  update() {
    const rows = [...model.agents.values()].sort((a, b) => a.hostname.localeCompare(b.hostname) || a.id.localeCompare(b.id))
      .map(a => [td(`<a href="#/agents/${enc(a.id)}">${esc(a.id)}</a>`), td(esc(a.hostname)), td(stateBadge(a.state)),
        td(fmtResources(scalarsOf(a.resources))), td(fmtResources(scalarsOf(a.used_resources))),
        td(fmtResources(scalarsOf(a.offered_resources))), tdn(a.task_count)]);
    document.getElementById("agents").innerHTML = table(["ID", "Host", "State", "Resources", "Used", "Offered", "#Tasks"],
      rows, "no agents");
  },
};

function scalarsOf(r) {
  const out = {};
  for (const k of Object.keys(r || {})) if (typeof r[k] === "number") out[k] = r[k];
  return out;
}

views.agent = {
  mount(id) { this.id = id; main().innerHTML = `<div id="agent"></div><h2>Tasks</h2><div id="agent-tasks"></div>`; },
  update() {
    const a = model.agents.get(this.id);
    if (!a) { document.getElementById("agent").innerHTML = `<h1>Agent ${esc(this.id)}</h1><p class="muted">not registered with this master</p>`; return; }
    document.getElementById("agent").innerHTML = `<h1>Agent ${esc(a.hostname)}</h1>` + kv([
      ["ID", `<span class="mono">${esc(a.id)}</span>`], ["State", stateBadge(a.state)],
      ["Transport", `<span class="mono">${esc(a.transport)}</span>`],
      ["Registered", fmtTime(a.registered_time)],
      ["Resources", esc(fmtResources(a.resources))], ["Used", esc(fmtResources(a.used_resources))],
      ["Offered", esc(fmtResources(a.offered_resources))],
      ["Attributes", esc(Object.entries(a.attributes || {}).map(([k, v]) => `${k}:${v}`).join("; ")) || "<span class=muted>none</span>"],
      ["Reservations", reservations(a.reservations)],
      ["Volumes", (a.volumes || []).map(v => `<span class="mono">${esc(v.role)}/${esc(v.persistence_id)}</span> (${esc(v.container_path)}, ${num(v.disk)} MB)`).join("<br>") || "<span class=muted>none</span>"],
      ["Sandboxes", `<a href="#/browse/${enc(a.id)}?path=">browse</a>`],
    ]);
    const tasks = [...model.tasks.values()].filter(t => t.agent_id === this.id && !TERMINAL.has(t.state));
    document.getElementById("agent-tasks").innerHTML = taskTable(tasks, "no active tasks");
  },
};

function reservations(byRole) {
  const roles = Object.keys(byRole || {}).sort();
  if (!roles.length) return "<span class=muted>none</span>";
  return roles.map(r => `${esc(r)}: ${esc(fmtResources(byRole[r]))}`).join("<br>");
}

function taskTable(tasks, empty) {
  return table(["Task", "Name", "State", "Framework", "Agent", "Started"], tasks.map(t => [td(taskLink(t)), td(esc(t.name)),
    td(stateBadge(t.state)), td(frameworkLink(t.framework_id)), td(agentLink(t.agent_id)),
    td(fmtTime((t.statuses && t.statuses.length) ? t.statuses[0].timestamp : null))]), empty);
}

views.frameworks = {
  mount() { main().innerHTML = `<h1>Frameworks</h1><div id="active"></div><h2>Completed frameworks</h2><div id="completed"></div>`; },
  update() {
    const row = f => [td(`<a href="#/frameworks/${enc(f.id)}">${esc(f.id)}</a>`), td(esc(f.name)),
      td(esc((f.roles || []).join(", "))), td(esc(f.principal)), td(stateBadge(f.active ? "active" : "inactive")),
      tdn(countTasks(f.id, false)), tdn(countTasks(f.id, true)), tdn(f.offers), td(fmtTime(f.registered_time))];
    const headers = ["ID", "Name", "Roles", "Principal", "State", "#Active", "#Completed", "#Offers", "Registered"];
    document.getElementById("active").innerHTML = table(headers, [...model.frameworks.values()].map(row), "no frameworks");
    document.getElementById("completed").innerHTML = table(["ID", "Name", "Roles", "Principal", "#Tasks", "Registered", "Removed"],
      [...model.completed.values()].map(f => [td(`<a href="#/frameworks/${enc(f.id)}">${esc(f.id)}</a>`), td(esc(f.name)),
        td(esc((f.roles || []).join(", "))), td(esc(f.principal)), tdn(countTasks(f.id, true)), td(fmtTime(f.registered_time)),
        td(fmtTime(f.unregistered_time))]), "none");
  },
};

function countState(fid, state) {
  let n = 0;
  for (const t of model.tasks.values()) if (t.framework_id === fid && t.state === state) n++;
  return n;
}

function countTasks(fid, terminal) {
  let n = 0;
  for (const t of model.tasks.values()) if (t.framework_id === fid && TERMINAL.has(t.state) === terminal) n++;
  return n;
}

views.framework = {
  mount(id) {
    this.id = id;
    main().innerHTML = `<div id="framework"></div><h2>Tasks</h2><div id="fw-tasks"></div>`;
    this.tasks = new TaskList(document.getElementById("fw-tasks"), { framework: id }, ["framework"]);
  },
  update() {
    const f = frameworkOf(this.id);
    if (!f) { document.getElementById("framework").innerHTML = `<h1>Framework ${esc(this.id)}</h1><p class="muted">unknown to this master</p>`; return; }
    const c = f.counters || {};
    const rec = f.reconciliation || {};
    document.getElementById("framework").innerHTML = `<h1>Framework ${esc(f.name || f.id)}</h1>` + kv([
      ["ID", `<span class="mono">${esc(f.id)}</span>`],
      ["State", model.completed.has(f.id) ? stateBadge("completed") : stateBadge(f.active ? "active" : "inactive")],
      ["Roles", esc((f.roles || []).join(", "))], ["Principal", esc(f.principal) || "<span class=muted>none</span>"],
      ["User", esc(f.user)], ["Checkpoint", f.checkpoint ? "yes" : "no"],
      ["Failover timeout", num(f.failover_timeout) + " s"], ["Registered", fmtTime(f.registered_time)],
      ["Outstanding offers", esc(f.offers)], ["Used", esc(fmtResources(f.used_resources))],
      ["Status updates", `${c.status_updates || 0} relayed, ${c.acknowledgements || 0} acknowledged`],
      ["Reconciliation", `${rec.calls || 0} call(s)` + (rec.last ? `, last ${fmtTime(rec.last)}` : "") +
        `, ${countState(f.id, "TASK_STAGING")} task(s) still staging`],
    ]);
    this.tasks.update();
  },
};

// A filtered, paged table of tasks (10 000 tasks: only one page is in the DOM).
class TaskList {
  constructor(root, fixed = {}, hidden = []) {
    this.root = root;
    this.fixed = fixed;
    this.page = 0;
    const params = routeParams();
    this.filters = { state: params.state || "", framework: fixed.framework || params.framework || "",
      agent: params.agent || "", text: "" };
    root.innerHTML = `<div class="filters">
      <label>State <select data-filter="state"></select></label>
      ${hidden.includes("framework") ? "" : `<label>Framework <select data-filter="framework"></select></label>`}
      <label>Agent <select data-filter="agent"></select></label>
      <label>ID or name <input data-filter="text" type="search" placeholder="filter"></label>
      <span class="muted" data-role="count"></span></div>
      <div data-role="table"></div>
      <div class="pager"><button data-role="prev">‹ prev</button><span data-role="page"></span><button data-role="next">next ›</button></div>`;
    for (const el of root.querySelectorAll("[data-filter]")) {
      el.addEventListener(el.tagName === "INPUT" ? "input" : "change", () => {
        this.filters[el.dataset.filter] = el.value;
        this.page = 0;
        this.update();
      });
    }
    root.querySelector("[data-role=prev]").addEventListener("click", () => { this.page--; this.update(); });
    root.querySelector("[data-role=next]").addEventListener("click", () => { this.page++; this.update(); });
  }

  options(name, values, label) {
    const select = this.root.querySelector(`select[data-filter=${name}]`);
    if (!select) return;
    const current = this.filters[name];
    const html = [`<option value="">all</option>`, ...values.map(v => `<option value="${esc(v)}"${v === current ? " selected" : ""}>${esc(label(v))}</option>`)].join("");
    if (select.dataset.html !== html) { select.innerHTML = html; select.dataset.html = html; }
  }

  update() {
    const f = this.filters;
    const text = f.text.toLowerCase();
    const all = [...model.tasks.values()];
    const matching = all.filter(t => (!f.state || t.state === f.state) && (!f.framework || t.framework_id === f.framework) &&
      (!f.agent || t.agent_id === f.agent) && (!text || t.id.toLowerCase().includes(text) || (t.name || "").toLowerCase().includes(text)));
    matching.sort((a, b) => startOf(b) - startOf(a) || a.id.localeCompare(b.id));
    this.options("state", TASK_STATES.filter(s => all.some(t => t.state === s) || s === f.state), s => s);
    this.options("framework", [...new Set([...model.frameworks.keys(), ...model.completed.keys()])], frameworkName);
    this.options("agent", [...model.agents.keys()], agentName);
    const pages = Math.max(1, Math.ceil(matching.length / PAGE_SIZE));
    this.page = Math.min(Math.max(0, this.page), pages - 1);
    const shown = matching.slice(this.page * PAGE_SIZE, (this.page + 1) * PAGE_SIZE);
    this.root.querySelector("[data-role=count]").textContent = `${matching.length} of ${all.length} task(s)`;
    this.root.querySelector("[data-role=table]").innerHTML = taskTable(shown, "no matching tasks");
    this.root.querySelector("[data-role=page]").textContent = `page ${this.page + 1} of ${pages}`;
    this.root.querySelector("[data-role=prev]").disabled = this.page === 0;
    this.root.querySelector("[data-role=next]").disabled = this.page >= pages - 1;
  }
}

const startOf = t => (t.statuses && t.statuses.length) ? t.statuses[0].timestamp : 0;

views.tasks = {
  mount() {
    main().innerHTML = `<h1>Tasks</h1><div id="task-list"></div>`;
    this.list = new TaskList(document.getElementById("task-list"));
  },
  update() { this.list.update(); },
};

views.task = {
  mount(fid, tid) {
    this.fid = fid; this.tid = tid;
    this.detail = null; this.rev = undefined; this.loading = false;
    main().innerHTML = `<div id="task"></div><h2>State history</h2><div id="history"></div>
      <h2>Output</h2><div class="tabs"><button data-file="stdout" class="active">stdout</button><button data-file="stderr">stderr</button>
      <span class="muted" id="log-note"></span></div><pre class="log" id="log"></pre>`;
    this.log = null;
    this.file = "stdout";
    for (const b of document.querySelectorAll(".tabs button")) b.addEventListener("click", () => {
      for (const other of document.querySelectorAll(".tabs button")) other.classList.toggle("active", other === b);
      this.follow(b.dataset.file);
    });
  },
  update() {
    const t = model.tasks.get(taskKey(this.fid, this.tid));
    if (t && (this.detail === null || this.rev !== t.rev)) { this.rev = t.rev; this.load(); }
    this.render(this.detail || t);
  },
  async load() {
    if (this.loading) { this.again = true; return; }
    this.loading = true;
    try {
      this.detail = await getJSON(`/task?framework_id=${enc(this.fid)}&task_id=${enc(this.tid)}`);
      if (current === this) this.render(this.detail);
    } catch (err) {
      document.getElementById("log-note").textContent = err.message;
    } finally {
      this.loading = false;
      if (this.again) { this.again = false; this.load(); }
    }
  },
  render(t) {
    if (!t) { document.getElementById("task").innerHTML = `<h1>Task ${esc(this.tid)}</h1><p class="muted">unknown to this master</p>`; return; }
    const health = t.healthy === null || t.healthy === undefined ? "<span class=muted>not reported</span>" : (t.healthy ? "healthy" : "unhealthy");
    document.getElementById("task").innerHTML = `<h1>Task ${esc(t.id)}</h1>` + kv([
      ["Name", esc(t.name)], ["State", stateBadge(t.state)], ["Health", health],
      ["Framework", frameworkLink(t.framework_id)], ["Agent", agentLink(t.agent_id)],
      ["Executor", `<span class="mono">${esc(t.executor_id) || "<span class=muted>unknown</span>"}</span>`],
      ["Role", esc(t.role)], ["Resources", esc(fmtResources(t.resources))],
      ["Sandbox", t.sandbox ? `<a class="mono" id="sandbox-link" href="#/browse/${enc(t.agent_id)}?path=${enc(t.sandbox)}">${esc(t.sandbox)}</a>` : "<span class=muted>not known yet</span>"],
    ]);
    document.getElementById("history").innerHTML = table(["Time", "State", "Source", "Reason", "Message", "Healthy"],
      (t.statuses || []).map(s => [td(fmtTime(s.timestamp)), td(stateBadge(s.state)), td(esc(s.source)), td(esc(s.reason)),
        td(esc(s.message)), td(s.healthy === null || s.healthy === undefined ? "" : String(s.healthy))]), "no status updates yet");
    if (t.sandbox && !this.log) this.follow(this.file, t);
    if (!t.sandbox) document.getElementById("log-note").textContent = "waiting for the task's sandbox";
  },
  follow(file, task) {
    this.file = file;
    const t = task || this.detail || model.tasks.get(taskKey(this.fid, this.tid));
    if (this.log) this.log.stop();
    this.log = null;
    if (!t || !t.sandbox) return;
    this.log = new LogTail(t.agent_id, t.sandbox + "/" + file, document.getElementById("log"), document.getElementById("log-note"));
  },
  unmount() { if (this.log) this.log.stop(); },
};

// Follows a file in a sandbox: the last LOG_TAIL_BYTES first, then what is appended.
class LogTail {
  constructor(agent, path, pre, note) {
    Object.assign(this, { agent, path, pre, note, offset: -1, stopped: false });
    pre.textContent = "";
    this.poll();
  }
  url(offset, length) {
    return `/files/read?agent_id=${enc(this.agent)}&path=${enc(this.path)}&offset=${offset}&length=${length}`;
  }
  async poll() {
    while (!this.stopped) {
      try {
        if (this.offset < 0) {
          const size = (await getJSON(this.url(-1, 0))).offset;
          this.offset = Math.max(0, size - LOG_TAIL_BYTES);
        }
        for (;;) {
          const chunk = await getJSON(this.url(this.offset, LOG_TAIL_BYTES));
          if (this.stopped) return;
          if (!chunk.length) break;
          const atBottom = this.pre.scrollTop + this.pre.clientHeight >= this.pre.scrollHeight - 4;
          this.pre.textContent += chunk.data;
          this.offset = chunk.offset + chunk.length;
          if (atBottom) this.pre.scrollTop = this.pre.scrollHeight;
        }
        this.note.textContent = `${this.path} (following)`;
      } catch (err) {
        this.note.textContent = `${this.path}: ${err.message}`;
      }
      await new Promise(resolve => setTimeout(resolve, LOG_POLL_MS));
    }
  }
  stop() { this.stopped = true; }
}

views.browse = {
  async mount(agent) {
    this.agent = agent;
    const path = routeParams().path || "";
    main().innerHTML = `<h1>Sandbox on ${esc(agentName(agent))}</h1><p class="mono" id="crumbs"></p><div id="listing"></div><pre class="log" id="file" hidden></pre><span class="muted" id="file-note"></span>`;
    document.getElementById("crumbs").innerHTML = crumbs(agent, path);
    try {
      const entries = await getJSON(`/files/browse?agent_id=${enc(agent)}&path=${enc(path)}`);
      document.getElementById("listing").innerHTML = table(["Name", "Mode", "#Size", "Modified"], entries.map(e => {
        const rel = (path ? path + "/" : "") + e.name;
        const isDir = e.mode.startsWith("d");
        return [td(isDir ? `<a href="#/browse/${enc(agent)}?path=${enc(rel)}">${esc(e.name)}/</a>` :
          `<a href="#/browse/${enc(agent)}?path=${enc(path)}&file=${enc(e.name)}">${esc(e.name)}</a>`),
        td(`<span class="mono">${esc(e.mode)}</span>`), tdn(e.size), td(fmtTime(e.mtime))];
      }), "empty directory");
      const file = routeParams().file;
      if (file) {
        const pre = document.getElementById("file");
        pre.hidden = false;
        this.log = new LogTail(agent, (path ? path + "/" : "") + file, pre, document.getElementById("file-note"));
      }
    } catch (err) {
      document.getElementById("listing").innerHTML = `<p class="error">${esc(err.message)}</p>`;
    }
  },
  update() {},
  unmount() { if (this.log) this.log.stop(); },
};

function crumbs(agent, path) {
  const parts = path ? path.split("/") : [];
  let acc = "";
  const links = [`<a href="#/browse/${enc(agent)}?path=">sandboxes</a>`];
  for (const p of parts) {
    acc = acc ? acc + "/" + p : p;
    links.push(`<a href="#/browse/${enc(agent)}?path=${enc(acc)}">${esc(p)}</a>`);
  }
  return links.join(" / ");
}

views.roles = {
  mount() {
    main().innerHTML = `<h1>Roles</h1><div id="roles"></div>`;
    this.timer = setInterval(() => this.load(), ROLES_POLL_MS);
    this.load();
  },
  async load() {
    try {
      const view = await getJSON("/roles");
      document.getElementById("roles").innerHTML = table(["Role", "#Weight", "Quota", "Allocated", "#Share", "#Weighted share", "Frameworks"],
        view.roles.map(r => [td(esc(r.name)), tdn(num(r.weight)), td(r.quota ? esc(fmtResources(r.quota)) : "<span class=muted>none</span>"),
          td(esc(fmtResources(r.allocated))), tdn(num(r.share, 3)), tdn(num(r.weighted_share, 3)),
          td(r.frameworks.map(frameworkLink).join(", "))]), "no roles");
    } catch (err) {
      document.getElementById("roles").innerHTML = `<p class="error">${esc(err.message)}</p>`;
    }
  },
  update() {},
  unmount() { clearInterval(this.timer); },
};

// ------------------------------------------------------------------ routing
const main = () => document.getElementById("main");
let current = null;

function routeParams() {
  const hash = location.hash.slice(1);
  const q = hash.indexOf("?");
  return q < 0 ? {} : Object.fromEntries(new URLSearchParams(hash.slice(q + 1)));
}

function route() {
  const hash = location.hash.slice(1) || "/";
  const path = hash.split("?")[0].split("/").filter(Boolean).map(decodeURIComponent);
  const table = {
    "": () => ["overview", []],
    agents: () => path[1] ? ["agent", [path[1]]] : ["agents", []],
    frameworks: () => path[1] ? ["framework", [path[1]]] : ["frameworks", []],
    tasks: () => path[2] ? ["task", [path[1], path[2]]] : ["tasks", []],
    roles: () => ["roles", []],
    browse: () => ["browse", [path[1]]],
  };
  const [name, args] = (table[path[0] || ""] || table[""])();
  if (current && current.unmount) current.unmount();
  current = views[name];
  for (const a of document.querySelectorAll("header nav a")) {
    a.classList.toggle("active", name.startsWith(a.dataset.view.replace(/s$/, "")) || a.dataset.view === name);
  }
  if (!model.ready && name !== "browse" && name !== "roles") {
    main().innerHTML = `<p class="muted">Loading…</p>`;
    current = { pending: [name, args] };
    return;
  }
  current.mount(...args);
  current.update();
  window.corralRendered = performance.now();
}

let renderPending = false;
let firstRender = true;

function scheduleRender() {
  if (renderPending) return;
  renderPending = true;
  setTimeout(() => {
    renderPending = false;
    if (current && current.pending) { route(); }
    else if (current) { current.update(); window.corralRendered = performance.now(); }
    if (firstRender && model.ready) {
      firstRender = false;
      window.corralFirstRender = performance.now();  // read by the UI test
    }
  }, firstRender ? 0 : RENDER_DELAY_MS);
}

function tickFooter() {
  const m = model.master;
  document.getElementById("footer").textContent = model.ready ?
    `master ${m.id} at ${m.address}, corral ${m.version}, up ${fmtDuration(now() - m.start_time)}` : "";
  const up = document.getElementById("uptime");
  if (up && model.ready) up.textContent = fmtDuration(now() - m.start_time);
}

// A master that asks for credentials answers the page itself with 401, and the browser
// asks for them (its basic-auth prompt) and then sends them with every request of the
// page, the event stream's included. Opened as https://NAME:SECRET@HOST/, the page has
// them in its address, where fetch() refuses to send from: it is opened again without
// them (the browser keeps them, as after its prompt).
if (location.username || location.password) {
  location.replace(`${location.protocol}//${location.host}${location.pathname}${location.search}${location.hash}`);
} else {
  window.addEventListener("hashchange", route);
  setInterval(tickFooter, 1000);
  route();
  connect();
}
