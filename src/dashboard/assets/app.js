// maglevd-frontend's page: one column per maglevd, live from the event
// stream. No framework, no build step: the state from /view/api/state is
// rendered once as HTML, then events patch the cells they concern.
'use strict';

const ADMIN = document.body.dataset.admin === '1';
const routers = document.getElementById('routers');
const list = document.getElementById('event-list');
const live = document.getElementById('live');
const notice = document.getElementById('notice');
const filterText = document.getElementById('filter-text');
const filterKind = document.getElementById('filter-kind');
const MAX_EVENTS = 500;

// name -> maglevd state (the JSON of /view/api/state/{name})
const state = new Map();
let renderMs = 0;
let events = 0;

const esc = (s) => String(s ?? '').replace(/[&<>"']/g, (c) =>
  ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));
const key = (...parts) => parts.map((p) => encodeURIComponent(p)).join('|');

// Recent probe latencies as text: one block per probe, its height the
// latency relative to the slowest shown (cheap to draw by the thousand).
const BLOCKS = '▁▂▃▄▅▆▇█';
function spark(lat) {
  if (!lat || lat.length === 0) return '';
  const recent = lat.slice(-12);
  const max = Math.max(...recent, 0.001);
  return recent.map((v) => BLOCKS[Math.min(7, Math.floor((v / max) * 7.99))]).join('');
}

function badge(st) {
  return `<span class="st st-${esc(st)}">${esc(st)}</span>`;
}

function bgpBadge(announced, reason) {
  return announced
    ? '<span class="st st-announced">BGP announced</span>'
    : `<span class="st st-withdrawn" title="${esc(reason ?? '')}">BGP withdrawn${reason ? ': ' + esc(reason) : ''}</span>`;
}

function lastText(b) {
  if (!b || !b.last) return '';
  return `${esc(b.last.code)} ${Number(b.last.duration_ms).toFixed(1)}ms`;
}

function bucketsCell(m) {
  const share = m.bucket_share ?? 0;
  const n = m.buckets ?? '';
  return `<span class="bar" aria-hidden="true"><i style="width:${Math.min(100, share).toFixed(1)}%"></i></span> <span class="num">${esc(n)}</span>`;
}

function memberRow(mg, fe, pool, m) {
  const b = mg.backends[m.name] || {};
  const st = b.state || m.state;
  const k = key(mg.name, fe.name, m.name);
  let actions = '';
  if (ADMIN) {
    const who = `${m.name} on ${mg.name}`;
    actions = `<td>` +
      ['pause', 'resume', 'enable', 'disable'].map((a) =>
        `<button type="button" data-act="${a}" data-m="${esc(mg.name)}" data-b="${esc(m.name)}" aria-label="${a} ${esc(who)}">${a}</button>`).join(' ') +
      ` <label class="sr" for="w-${esc(k)}">weight of ${esc(m.name)} in pool ${esc(pool.name)} of ${esc(fe.name)}</label>` +
      `<input id="w-${esc(k)}" type="number" min="0" max="100" value="${m.weight}">` +
      `<label><input type="checkbox" data-flush="${esc(k)}"> flush</label> ` +
      `<button type="button" data-act="weight" data-m="${esc(mg.name)}" data-f="${esc(fe.name)}" data-p="${esc(pool.name)}" data-b="${esc(m.name)}" data-k="${esc(k)}" aria-label="set weight of ${esc(who)}">set</button></td>`;
  }
  return `<tr data-m="${esc(mg.name)}" data-b="${esc(m.name)}" data-k="${esc(k)}">` +
    `<th scope="row">${esc(m.name)} <span class="meta">${esc(m.address)}</span></th>` +
    `<td class="c-state">${badge(st)}</td>` +
    `<td class="num c-weight">${m.weight} / ${m.effective_weight}</td>` +
    `<td class="c-buckets">${bucketsCell(m)}</td>` +
    `<td class="c-spark spark" aria-hidden="true">${spark(b.latency)}</td>` +
    `<td class="c-last">${lastText(b)}</td>${actions}</tr>`;
}

function frontendHtml(mg, fe) {
  const id = `fe-${esc(key(mg.name, fe.name))}`;
  const cols = ADMIN ? 7 : 6;
  const pools = fe.pools.map((p) =>
    `<tbody><tr><th class="pool" colspan="${cols}" scope="rowgroup">pool ${esc(p.name)}${p.active ? ' (active)' : ''}</th></tr>` +
    p.backends.map((m) => memberRow(mg, fe, p, m)).join('') + '</tbody>').join('');
  const proto = fe.protocol === 'any' ? 'all ports' : `${esc(fe.protocol)}/${fe.port}`;
  return `<section class="fe" id="${id}" data-m="${esc(mg.name)}" data-f="${esc(fe.name)}" aria-labelledby="${id}-h">` +
    `<h3 id="${id}-h">${esc(fe.name)} <span class="meta">${esc(fe.address)} ${proto}</span> ` +
    `<span class="c-fe-state">${badge(fe.state)}</span> <span class="meta">active pool: ${esc(fe.active_pool ?? 'none')}</span> ` +
    `<span class="c-fe-vpp" title="${esc(fe.vpp_refusal ? `${fe.vpp_refusal.op}: ${fe.vpp_refusal.error} (${fe.vpp_refusal.at})` : 'what VPP holds')}">VPP ${badge(fe.vpp ?? 'pending')}</span>` +
    (fe.announced == null ? '' : ` <span class="c-fe-bgp">${bgpBadge(fe.announced, fe.announce_reason)}</span>`) + '</h3>' +
    (fe.vpp === 'refused' && fe.vpp_refusal ? `<p class="refusal">VPP refused ${esc(fe.vpp_refusal.op)}: ${esc(fe.vpp_refusal.error)}</p>` : '') +
    `<table><caption class="sr">backends of ${esc(fe.name)} on ${esc(mg.name)}</caption>` +
    `<thead><tr><th scope="col">backend</th><th scope="col">state</th><th scope="col">weight / effective</th>` +
    `<th scope="col">VPP buckets</th><th scope="col">latency</th><th scope="col">last probe</th>${ADMIN ? '<th scope="col">actions</th>' : ''}</tr></thead>` +
    `${pools}</table></section>`;
}

function routerHtml(mg) {
  const vpp = mg.vpp ? `VPP ${esc(mg.vpp.version)}` : `VPP: ${esc(mg.vpp_error ?? 'unknown')}`;
  const ver = mg.version ? `maglevd ${esc(mg.version.version)}` : '';
  const admin = ADMIN
    ? `<button type="button" data-act="sync" data-m="${esc(mg.name)}">sync VPP</button> <button type="button" data-act="reload" data-m="${esc(mg.name)}">reload config</button>`
    : '';
  return `<h2>${esc(mg.name)}</h2>` +
    `<p class="meta">${[ver, vpp, esc(mg.socket)].filter(Boolean).join(' · ')}</p>` +
    `<p class="err c-reach">${mg.reachable ? '' : 'unreachable: ' + esc(mg.error ?? '')}</p>` +
    (ADMIN ? `<p>${admin}</p>` : '') +
    (mg.frontends || []).map((fe) => frontendHtml(mg, fe)).join('');
}

function renderRouter(mg) {
  let el = document.getElementById(`r-${key(mg.name)}`);
  if (!el) {
    el = document.createElement('article');
    el.id = `r-${key(mg.name)}`;
    el.className = 'router';
    el.setAttribute('aria-label', `maglevd ${mg.name}`);
    routers.appendChild(el);
  }
  el.classList.toggle('unreachable', !mg.reachable);
  el.dataset.reachable = mg.reachable ? '1' : '0';
  el.innerHTML = routerHtml(mg);
}

// Renders everything; returns the time it took, layout included (ms).
function renderAll() {
  const t0 = performance.now();
  for (const mg of state.values()) renderRouter(mg);
  void routers.offsetHeight;
  renderMs = performance.now() - t0;
  return renderMs;
}

function rows(mg, backend) {
  return routers.querySelectorAll(`tr[data-m="${CSS.escape(mg)}"][data-b="${CSS.escape(backend)}"]`);
}

function addEvent(kind, d, text) {
  events++;
  const li = document.createElement('li');
  li.className = `k-${kind}` + (d.level ? ` lvl-${d.level}` : '');
  li.dataset.kind = kind;
  const at = (d.at || '').replace('T', ' ').replace(/\.\d+Z$|Z$/, '');
  li.textContent = `${at} ${d.maglevd} ${text}`;
  li.hidden = !matches(li);
  list.prepend(li);
  while (list.childElementCount > MAX_EVENTS) list.lastElementChild.remove();
}

function matches(li) {
  const k = filterKind.value;
  const t = filterText.value.trim().toLowerCase();
  return (!k || li.dataset.kind === k) && (!t || li.textContent.toLowerCase().includes(t));
}

function refilter() {
  for (const li of list.children) li.hidden = !matches(li);
}

const handlers = {
  backend(d) {
    const mg = state.get(d.maglevd);
    if (mg && mg.backends[d.backend]) {
      const b = mg.backends[d.backend];
      b.state = d.to;
      (b.transitions = b.transitions || []).push(d);
    }
    for (const r of rows(d.maglevd, d.backend)) r.querySelector('.c-state').innerHTML = badge(d.to);
    addEvent('backend', d, `backend ${d.backend} ${d.from} → ${d.to}${d.code ? ' (' + d.code + ')' : ''} ${d.detail || ''}`);
  },
  frontend(d) {
    const el = document.getElementById(`fe-${key(d.maglevd, d.frontend)}`);
    if (el) el.querySelector('.c-fe-state').innerHTML = badge(d.to);
    addEvent('frontend', d, `frontend ${d.frontend} ${d.from} → ${d.to}`);
  },
  vpp(d) {
    const el = document.getElementById(`fe-${key(d.maglevd, d.frontend)}`);
    if (el) el.querySelector('.c-fe-vpp').innerHTML = `VPP ${badge(d.to)}`;
    addEvent('vpp', d, `frontend ${d.frontend} VPP ${d.from} → ${d.to}${d.error ? ': ' + d.error : ''}`);
  },
  announce(d) {
    for (const f of d.frontends || []) {
      const el = document.getElementById(`fe-${key(d.maglevd, f)}`);
      const slot = el && el.querySelector('.c-fe-bgp');
      if (slot) slot.innerHTML = bgpBadge(d.announced, d.reason);
    }
    addEvent('announce', d, `${d.address} ${d.announced ? 'announced' : 'withdrawn: ' + (d.reason || '')} (${(d.frontends || []).join(', ')})`);
  },
  log(d) {
    addEvent('log', d, `${d.level} ${d.message}`);
  },
  maglevd(d) {
    const mg = state.get(d.maglevd);
    if (mg) {
      mg.reachable = d.reachable;
      mg.error = d.error;
      const el = document.getElementById(`r-${key(d.maglevd)}`);
      if (el) {
        el.classList.toggle('unreachable', !d.reachable);
        el.dataset.reachable = d.reachable ? '1' : '0';
        el.querySelector('.c-reach').textContent = d.reachable ? '' : `unreachable: ${d.error ?? ''}`;
      }
    }
    addEvent('maglevd', d, d.reachable ? 'reachable' : `unreachable: ${d.error ?? ''}`);
    if (d.reachable) reload(d.maglevd);
  },
  probes(d) {
    const mg = state.get(d.maglevd);
    if (!mg) return;
    const touched = new Set();
    for (const [backend, code, ms] of d.probes) {
      const b = mg.backends[backend];
      if (!b) continue;
      (b.latency = b.latency || []).push(ms);
      if (b.latency.length > 40) b.latency.shift();
      b.last = { ...b.last, code, duration_ms: ms };
      touched.add(backend);
    }
    for (const backend of touched) {
      const b = mg.backends[backend];
      for (const r of rows(d.maglevd, backend)) {
        r.querySelector('.c-spark').textContent = spark(b.latency);
        r.querySelector('.c-last').textContent = `${b.last.code} ${Number(b.last.duration_ms).toFixed(1)}ms`;
      }
    }
  },
  frontends(d) {
    const mg = state.get(d.maglevd);
    if (!mg) return;
    Object.assign(mg.backends, d.backends);
    for (const fe of d.frontends) {
      const i = mg.frontends.findIndex((f) => f.name === fe.name);
      if (i >= 0) mg.frontends[i] = fe; else mg.frontends.push(fe);
      const el = document.getElementById(`fe-${key(mg.name, fe.name)}`);
      if (el) el.outerHTML = frontendHtml(mg, fe);
    }
  },
  lb(d) {
    const mg = state.get(d.maglevd);
    if (!mg) return;
    for (const f of d.frontends) {
      const fe = mg.frontends.find((x) => x.name === f.name);
      if (!fe) continue;
      for (const p of fe.pools) {
        for (const m of p.backends) {
          m.buckets = f.buckets[m.address] ?? null;
          m.bucket_share = m.buckets == null ? null : (m.buckets * 100) / (fe.new_flows_table_length || 1024);
          const r = routers.querySelector(`tr[data-k="${CSS.escape(key(mg.name, fe.name, m.name))}"]`);
          if (r) r.querySelector('.c-buckets').innerHTML = bucketsCell(m);
        }
      }
    }
  },
  state(d) {
    state.set(d.maglevd, d.state);
    renderRouter(d.state);
  },
  resync() {
    load();
  },
};

async function reload(name) {
  const r = await fetch(`/view/api/state/${encodeURIComponent(name)}`);
  if (!r.ok) return;
  const mg = await r.json();
  state.set(mg.name, mg);
  renderRouter(mg);
}

async function load() {
  const r = await fetch('/view/api/state');
  const j = await r.json();
  state.clear();
  for (const mg of j.maglevds) state.set(mg.name, mg);
  routers.replaceChildren();
  renderAll();
  window.maglev.ready = true;
}

function connect() {
  const es = new EventSource(`/view/api/events?recent=${MAX_EVENTS}`);
  let opened = false;
  es.onopen = () => {
    live.textContent = 'live';
    // After a reconnect the missed events are replayed; the frequent
    // updates that are not kept come back with a fresh read.
    if (opened) load();
    opened = true;
  };
  es.onerror = () => { live.textContent = 'reconnecting…'; };
  for (const [kind, fn] of Object.entries(handlers)) {
    es.addEventListener(kind, (e) => {
      try { fn(JSON.parse(e.data)); } catch (err) { console.error(kind, err); }
    });
  }
}

async function act(btn) {
  const d = btn.dataset;
  const body = { maglevd: d.m, action: d.act };
  if (d.b) body.backend = d.b;
  if (d.act === 'weight') {
    body.frontend = d.f;
    body.pool = d.p;
    body.weight = Number(document.getElementById(`w-${d.k}`).value);
    body.flush = document.querySelector(`input[data-flush="${CSS.escape(d.k)}"]`).checked;
  }
  btn.disabled = true;
  try {
    const r = await fetch('/admin/api/action', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
    });
    const j = await r.json().catch(() => ({ ok: false, error: `HTTP ${r.status}` }));
    notice.textContent = j.ok ? `done: ${j.command} on ${d.m}` : `refused: ${j.command ?? d.act} on ${d.m}: ${j.error}`;
    notice.dataset.ok = j.ok ? '1' : '0';
  } finally {
    btn.disabled = false;
  }
}

document.getElementById('mode').textContent = ADMIN ? 'admin' : '';
document.getElementById('filter').addEventListener('submit', (e) => e.preventDefault());
filterText.addEventListener('input', refilter);
filterKind.addEventListener('change', refilter);
if (ADMIN) {
  routers.addEventListener('click', (e) => {
    const b = e.target.closest('button[data-act]');
    if (b) act(b);
  });
}
window.maglev = { ready: false, renderMs: () => renderMs, events: () => events, rerender: renderAll, state };
load().then(connect);
