// Volley's dashboard: a client of the /v1 API, signed in with an API key kept in sessionStorage.
// Every piece of server data is put into the page as text, never as HTML.

const KEY = 'volley.key';
const ENDED = new Set(['completed', 'failed', 'expired', 'cancelled']);
const POLL_MS = 2000;

// ---------- DOM helpers ----------

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function toast(msg) {
  const t = document.getElementById('toast');
  t.textContent = msg;
}

function fmtTime(s) {
  if (s === null || s === undefined) return '—';
  return new Date(s * 1000).toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'medium' });
}

function fmtDuration(sec) {
  if (!isFinite(sec) || sec < 0) return '—';
  sec = Math.round(sec);
  if (sec < 60) return `${sec}s`;
  if (sec < 3600) return `${Math.floor(sec / 60)}m ${sec % 60}s`;
  return `${Math.floor(sec / 3600)}h ${Math.floor((sec % 3600) / 60)}m`;
}

function fmtBytes(n) {
  if (n < 1000) return `${n} B`;
  if (n < 1e6) return `${(n / 1e3).toFixed(1)} kB`;
  if (n < 1e9) return `${(n / 1e6).toFixed(1)} MB`;
  return `${(n / 1e9).toFixed(2)} GB`;
}

function badge(status) {
  return h('span', { class: `badge s-${status}` }, status);
}

// progressBar draws completed and failed over total, as a labelled progressbar.
function progressBar(counts, label) {
  const total = counts.total || 0;
  const done = (counts.completed || 0) + (counts.failed || 0);
  const pct = total ? Math.floor((done * 100) / total) : 0;
  const ok = h('span', { class: 'seg ok' });
  const bad = h('span', { class: 'seg bad' });
  if (total) {
    ok.style.width = `${(counts.completed * 100) / total}%`;
    bad.style.width = `${(counts.failed * 100) / total}%`;
  }
  return h('div', { class: 'progress-wrap' },
    h('div', {
      class: 'progress', role: 'progressbar', 'aria-label': label,
      'aria-valuemin': 0, 'aria-valuemax': 100, 'aria-valuenow': pct,
      'aria-valuetext': `${pct}%: ${counts.completed} completed, ${counts.failed} failed of ${total}`,
    }, ok, bad),
    h('span', { class: 'progress-text' }, `${counts.completed} ok · ${counts.failed} failed · ${total} total (${pct}%)`));
}

// ---------- API ----------

class ApiError extends Error {
  constructor(status, body) {
    const e = (body && body.error) || {};
    super(e.message || `HTTP ${status}`);
    this.status = status;
    this.code = e.code || null;
    this.param = e.param || null;
  }
}

const api = {
  get key() { return sessionStorage.getItem(KEY); },
  async call(method, path, { body, form, query, raw } = {}) {
    let url = '/v1' + path;
    if (query) {
      const q = new URLSearchParams();
      for (const [k, v] of Object.entries(query)) {
        if (v === undefined || v === null || v === '') continue;
        if (Array.isArray(v)) v.forEach((x) => q.append(k, x)); else q.set(k, v);
      }
      const s = q.toString();
      if (s) url += '?' + s;
    }
    const headers = { Authorization: `Bearer ${this.key}` };
    let payload;
    if (form) payload = form;
    else if (body !== undefined) { headers['Content-Type'] = 'application/json'; payload = JSON.stringify(body); }
    const res = await fetch(url, { method, headers, body: payload });
    if (raw && res.ok) return res;
    const text = await res.text();
    let json = null;
    try { json = text ? JSON.parse(text) : null; } catch { json = null; }
    if (!res.ok) {
      if (res.status === 401 && path !== '/batches') signOut('Your key was refused; sign in again.');
      throw new ApiError(res.status, json);
    }
    return json;
  },
  get(path, query) { return this.call('GET', path, { query }); },
  post(path, body) { return this.call('POST', path, { body: body || {} }); },
};

// caps records which of Volley's optional routes and parameters this server offers, so that the
// controls of a missing one are not shown.
let caps = null;

async function probeCaps() {
  const c = { batchFilters: false, daemons: false };
  try {
    await api.get('/batches', { limit: 1, status: 'volley-probe' });
  } catch (e) {
    // A server that knows the status filter refuses an unknown status; one that ignores it answers 200.
    c.batchFilters = e.status === 400;
  }
  try {
    await api.get('/daemons');
    c.daemons = true;
  } catch { c.daemons = false; }
  return c;
}

async function download(fileId, fallbackName) {
  try {
    let name = fallbackName;
    try { name = (await api.get(`/files/${encodeURIComponent(fileId)}`)).filename || name; } catch { /* keep fallback */ }
    const res = await api.call('GET', `/files/${encodeURIComponent(fileId)}/content`, { raw: true });
    const blob = await res.blob();
    const url = URL.createObjectURL(blob);
    const a = h('a', { href: url, download: name });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
    toast(`Downloaded ${name}`);
  } catch (e) { toast(`Download failed: ${e.message}`); }
}

// ---------- pages ----------

let stopPage = () => {};

function mount(title, ...content) {
  const main = document.getElementById('main');
  main.replaceChildren(h('h1', { tabindex: '-1', id: 'page-title' }, title), ...content);
  document.title = `${title} · Volley`;
}

function errorBox(e) {
  return h('p', { class: 'error', role: 'alert' }, e instanceof Error ? e.message : String(e));
}

// poll runs fn now and every POLL_MS until the page changes or fn returns false.
function poll(fn) {
  let timer = null;
  let stopped = false;
  const tick = async () => {
    let again = true;
    try { again = (await fn()) !== false; } catch (e) { toast(e.message); }
    if (!stopped && again) timer = setTimeout(tick, POLL_MS);
  };
  tick();
  return () => { stopped = true; clearTimeout(timer); };
}

// rate tracks completed+failed over time per batch, for requests/s and an ETA.
const samples = new Map();
function rateOf(b) {
  const rc = b.request_counts;
  const done = rc.completed + rc.failed;
  const now = Date.now() / 1000;
  let s = samples.get(b.id);
  if (!s || done < s.done) { s = { t: now, done, first: { t: now, done } }; samples.set(b.id, s); }
  let rate = null;
  const start = b.in_progress_at || b.created_at;
  if (now - s.first.t >= 1 && done > s.first.done) rate = (done - s.first.done) / (now - s.first.t);
  else if (done > 0 && now > start) rate = done / (now - start);
  s.t = now; s.done = done;
  const remaining = rc.total - done;
  return { rate, eta: rate ? remaining / rate : null };
}

function rateCell(b) {
  if (ENDED.has(b.status) || !b.request_counts.total) return '';
  const { rate, eta } = rateOf(b);
  if (!rate) return 'starting…';
  return `${rate.toFixed(1)} req/s · ETA ${fmtDuration(eta)}`;
}

// Batches list

function pageBatches() {
  const state = { cursors: [null], status: '', search: '', activeFirst: false };
  const err = h('div');
  const tbody = h('tbody');
  const pager = h('nav', { class: 'pager', 'aria-label': 'Pages' });
  const filters = h('form', { class: 'filters', role: 'search', 'aria-label': 'Filter batches' });
  if (caps.batchFilters) {
    const status = h('select', { id: 'f-status', name: 'status' },
      ['', 'in_progress', 'completed', 'failed', 'cancelled', 'expired'].map((s) => h('option', { value: s }, s || 'any')));
    const search = h('input', { id: 'f-search', name: 'search', type: 'search', placeholder: 'id, file name or metadata' });
    const active = h('input', { id: 'f-active', name: 'active_first', type: 'checkbox' });
    filters.append(
      h('label', { for: 'f-status' }, 'Status'), status,
      h('label', { for: 'f-search' }, 'Search'), search,
      h('label', { class: 'check' }, active, ' Running first'),
      h('button', { type: 'submit' }, 'Apply'));
    filters.addEventListener('submit', (ev) => {
      ev.preventDefault();
      Object.assign(state, { status: status.value, search: search.value.trim(), activeFirst: active.checked, cursors: [null] });
      refresh();
    });
  }
  const table = h('table', { class: 'list' },
    h('caption', { class: 'sr-only' }, 'Your batches, newest first'),
    h('thead', {}, h('tr', {}, ['Batch', 'Status', 'Progress', 'Rate / ETA', 'Endpoint', 'Created'].map((c) => h('th', { scope: 'col' }, c)))),
    tbody);
  mount('Batches', h('p', {}, h('a', { href: '#/upload', class: 'button' }, 'New batch')), filters, err, table, pager);

  async function refresh() {
    const after = state.cursors[state.cursors.length - 1];
    const q = { limit: 20, after };
    if (caps.batchFilters) Object.assign(q, { status: state.status, search: state.search, active_first: state.activeFirst ? 'true' : '' });
    let page;
    try { page = await api.get('/batches', q); err.replaceChildren(); } catch (e) { err.replaceChildren(errorBox(e)); return; }
    tbody.replaceChildren(...(page.data.length ? page.data.map((b) => h('tr', { 'data-id': b.id },
      h('td', {}, h('a', { href: `#/batches/${b.id}` }, b.id), b.metadata && b.metadata.volley_retry_of ? h('div', { class: 'muted' }, `retry of ${b.metadata.volley_retry_of}`) : ''),
      h('td', {}, badge(b.status)),
      h('td', {}, progressBar(b.request_counts, `Progress of ${b.id}`)),
      h('td', { class: 'rate' }, rateCell(b)),
      h('td', {}, b.endpoint),
      h('td', {}, fmtTime(b.created_at)))) : [h('tr', {}, h('td', { colspan: 6 }, state.status || state.search ? 'No batches match.' : 'No batches yet.'))]));
    pager.replaceChildren(
      h('button', { type: 'button', disabled: state.cursors.length === 1, onclick: () => { state.cursors.pop(); refresh(); } }, '← Newer'),
      h('span', {}, `Page ${state.cursors.length}`),
      h('button', { type: 'button', disabled: !page.has_more, onclick: () => { state.cursors.push(page.last_id); refresh(); } }, 'Older →'));
  }
  return poll(refresh);
}

// One batch

function pageBatch(id) {
  const state = { status: '', search: '', cursors: [null], selected: new Set(), open: new Set(), batch: null };
  const head = h('div', { class: 'actions' });
  const summary = h('div', { class: 'summary' });
  const err = h('div');
  const reqErr = h('div');
  const tbody = h('tbody');
  const pager = h('nav', { class: 'pager', 'aria-label': 'Request pages' });
  const statusSel = h('select', { id: 'r-status' },
    ['', 'pending', 'running', 'completed', 'failed', 'cancelled', 'expired'].map((s) => h('option', { value: s }, s || 'any')));
  const search = h('input', { id: 'r-search', type: 'search', placeholder: 'custom_id contains…' });
  const cancelSel = h('button', { type: 'button', disabled: true, onclick: cancelSelected }, 'Cancel selected');
  const filters = h('form', { class: 'filters', role: 'search', 'aria-label': 'Filter requests' },
    h('label', { for: 'r-status' }, 'Status'), statusSel,
    h('label', { for: 'r-search' }, 'custom_id'), search,
    h('button', { type: 'submit' }, 'Apply'), cancelSel);
  filters.addEventListener('submit', (ev) => {
    ev.preventDefault();
    Object.assign(state, { status: statusSel.value, search: search.value.trim(), cursors: [null] });
    refreshRequests();
  });
  const table = h('table', { class: 'list requests' },
    h('caption', { class: 'sr-only' }, 'Requests of the batch, in input order'),
    h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, h('span', { class: 'sr-only' }, 'Select')),
      ['Line', 'custom_id', 'Status', 'Attempts', 'Model', 'Finished', ''].map((c) => h('th', { scope: 'col' }, c)))),
    tbody);
  mount(id, head, err, summary, h('h2', {}, 'Requests'), filters, reqErr, table, pager);

  async function act(fn, ok) {
    try { const r = await fn(); toast(ok(r)); } catch (e) { toast(e.message); }
    refreshBatch();
    refreshRequests();
  }

  function cancelSelected() {
    const ids = [...state.selected];
    act(() => api.post(`/batches/${id}/requests/cancel`, { custom_ids: ids }), (r) => {
      state.selected.clear();
      const items = (r && r.data) || [];
      const n = items.filter((x) => x.result === 'cancelled' || x.result === 'cancelling').length;
      return `Cancelled ${n} of ${ids.length} requests.`;
    });
  }

  async function refreshBatch() {
    let b;
    try { b = await api.get(`/batches/${id}`); err.replaceChildren(); } catch (e) { err.replaceChildren(errorBox(e)); return false; }
    state.batch = b;
    const rc = b.request_counts;
    const buttons = [];
    if (b.status === 'in_progress' || b.status === 'validating') {
      buttons.push(h('button', { type: 'button', class: 'danger', onclick: () => { if (confirm(`Cancel batch ${id}?`)) act(() => api.post(`/batches/${id}/cancel`), () => 'Cancelling the batch.'); } }, 'Cancel batch'));
    }
    if (ENDED.has(b.status) && rc.failed > 0) {
      buttons.push(h('button', { type: 'button', onclick: async () => {
        try {
          const nb = await api.post(`/batches/${id}/retry`, {});
          toast(`Created ${nb.id} retrying ${nb.request_counts.total} requests.`);
          location.hash = `#/batches/${nb.id}`;
        } catch (e) { toast(e.message); }
      } }, `Retry ${rc.failed} failed`));
    }
    if (b.output_file_id) buttons.push(h('button', { type: 'button', onclick: () => download(b.output_file_id, `${id}_output.jsonl`) }, 'Download output'));
    if (b.error_file_id) buttons.push(h('button', { type: 'button', onclick: () => download(b.error_file_id, `${id}_error.jsonl`) }, 'Download errors'));
    head.replaceChildren(badge(b.status), ...buttons);
    cancelSel.hidden = ENDED.has(b.status) || b.status === 'cancelling';

    const fields = [
      ['Endpoint', b.endpoint], ['Model', b.model || 'several'], ['Input file', b.input_file_id],
      ['Completion window', b.completion_window], ['Expires', fmtTime(b.expires_at)],
      ['Output file', b.output_file_id || '—'], ['Error file', b.error_file_id || '—'],
    ];
    for (const [k, v] of Object.entries(b.metadata || {})) fields.push([`metadata.${k}`, v]);
    const u = b.usage || {};
    const timeline = ['created_at', 'in_progress_at', 'finalizing_at', 'completed_at', 'failed_at', 'expired_at', 'cancelling_at', 'cancelled_at']
      .filter((k) => b[k]).map((k) => [k, b[k]]).sort((x, y) => x[1] - y[1]);
    const errs = (b.errors && b.errors.data) || [];
    summary.replaceChildren(
      h('section', { 'aria-labelledby': 'h-progress' }, h('h2', { id: 'h-progress' }, 'Progress'),
        progressBar(rc, 'Batch progress'),
        h('p', { class: 'rate' }, rateCell(b)),
        h('dl', { class: 'counters' }, ...[['Total', rc.total], ['Completed', rc.completed], ['Failed', rc.failed]].flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]))),
      h('section', { 'aria-labelledby': 'h-fields' }, h('h2', { id: 'h-fields' }, 'Details'),
        h('dl', { class: 'fields' }, ...fields.flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]))),
      h('section', { 'aria-labelledby': 'h-usage' }, h('h2', { id: 'h-usage' }, 'Usage'),
        h('dl', { class: 'counters' }, ...[['Input tokens', u.input_tokens ?? 0], ['Output tokens', u.output_tokens ?? 0], ['Total tokens', u.total_tokens ?? 0]].flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]))),
      h('section', { 'aria-labelledby': 'h-timeline' }, h('h2', { id: 'h-timeline' }, 'Timeline'),
        h('ol', { class: 'timeline' }, timeline.map(([k, t]) => h('li', {}, h('span', { class: 'muted' }, k.replace(/_at$/, '')), ' ', fmtTime(t)))),
        errs.length ? h('ul', { class: 'error' }, errs.map((e) => h('li', {}, e.line ? `Line ${e.line}: ` : '', e.message))) : ''));
    return !ENDED.has(b.status);
  }

  async function refreshRequests() {
    const after = state.cursors[state.cursors.length - 1];
    let page;
    try {
      page = await api.get(`/batches/${id}/requests`, { limit: 50, after, status: state.status, search: state.search, include: 'body' });
      reqErr.replaceChildren();
    } catch (e) {
      reqErr.replaceChildren(errorBox(e));
      return;
    }
    const rows = [];
    for (const r of page.data) {
      const box = h('input', { type: 'checkbox', 'aria-label': `Select ${r.custom_id}`, checked: state.selected.has(r.custom_id), disabled: ENDED.has(r.status) });
      box.addEventListener('change', () => {
        if (box.checked) state.selected.add(r.custom_id); else state.selected.delete(r.custom_id);
        cancelSel.disabled = state.selected.size === 0;
      });
      const open = state.open.has(r.custom_id);
      const toggle = h('button', { type: 'button', class: 'link', 'aria-expanded': open ? 'true' : 'false', onclick: () => {
        if (state.open.has(r.custom_id)) state.open.delete(r.custom_id); else state.open.add(r.custom_id);
        refreshRequests();
      } }, open ? 'Hide' : 'Show');
      rows.push(h('tr', { 'data-custom-id': r.custom_id },
        h('td', {}, box), h('td', {}, r.line), h('td', { class: 'mono' }, r.custom_id), h('td', {}, badge(r.status)),
        h('td', {}, r.attempts), h('td', {}, r.model), h('td', {}, fmtTime(r.finished_at)), h('td', {}, toggle)));
      if (open) {
        const result = r.response || r.error;
        rows.push(h('tr', { class: 'detail' }, h('td', { colspan: 8 }, h('div', { class: 'side' },
          h('figure', {}, h('figcaption', {}, 'Input'), h('pre', { tabindex: 0 }, JSON.stringify(r.body, null, 2))),
          h('figure', {}, h('figcaption', {}, r.error ? 'Error' : r.response ? `Result (HTTP ${r.response.status_code})` : 'Result'), h('pre', { tabindex: 0 }, result ? JSON.stringify(result, null, 2) : 'Not finished yet.'))))));
      }
    }
    tbody.replaceChildren(...(rows.length ? rows : [h('tr', {}, h('td', { colspan: 8 }, 'No requests match.'))]));
    cancelSel.disabled = state.selected.size === 0;
    pager.replaceChildren(
      h('button', { type: 'button', disabled: state.cursors.length === 1, onclick: () => { state.cursors.pop(); refreshRequests(); } }, '← Previous'),
      h('span', {}, `Page ${state.cursors.length}`),
      h('button', { type: 'button', disabled: !page.has_more, onclick: () => { state.cursors.push(page.last_id); refreshRequests(); } }, 'Next →'));
  }

  // Refreshed while the batch runs, and once more after it ends; then the page rests.
  let wasRunning = true;
  return poll(async () => {
    const running = await refreshBatch();
    const again = running || wasRunning;
    if (again) await refreshRequests();
    wasRunning = running;
    return again;
  });
}

// Upload and create

function pageUpload() {
  const out = h('div', { 'aria-live': 'polite' });
  const file = h('input', { id: 'u-file', type: 'file', accept: '.jsonl,application/jsonl,text/plain', required: true });
  const form = h('form', { class: 'stack', 'aria-label': 'Upload a JSONL file' },
    h('label', { for: 'u-file' }, 'JSONL file of requests (one JSON object per line)'), file,
    h('button', { type: 'submit' }, 'Upload'));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const f = file.files[0];
    if (!f) return;
    out.replaceChildren(h('p', {}, `Uploading ${f.name} (${fmtBytes(f.size)})…`));
    const fd = new FormData();
    fd.append('purpose', 'batch');
    fd.append('file', f, f.name);
    try {
      const obj = await api.call('POST', '/files', { form: fd });
      out.replaceChildren(createForm(obj, await firstURL(f)));
    } catch (e) {
      out.replaceChildren(await uploadError(e, f));
    }
  });
  mount('New batch', form, out);
  return () => {};
}

async function firstURL(f) {
  try {
    const head = await f.slice(0, 65536).text();
    return JSON.parse(head.split('\n')[0]).url || null;
  } catch { return null; }
}

async function uploadError(e, f) {
  const m = /Line (\d+)/.exec(e.message);
  const box = h('div', { class: 'error', role: 'alert' },
    h('p', {}, m ? h('strong', { class: 'line-no' }, `Line ${m[1]}`) : h('strong', {}, 'Upload refused'), ': ',
      m && m.index === 0 ? e.message.replace(/^Line \d+:\s*/, '') : e.message));
  if (m && f.size < 8 << 20) {
    const lines = (await f.text()).split('\n');
    const n = Number(m[1]);
    if (lines[n - 1] !== undefined) box.append(h('pre', { class: 'bad-line', 'aria-label': `Content of line ${n}` }, `${n}: ${lines[n - 1].slice(0, 500)}`));
  }
  box.append(h('p', {}, 'Nothing was stored. Fix the file and upload it again.'));
  return box;
}

function createForm(fileObj, url) {
  const endpoints = ['/v1/chat/completions', '/v1/completions', '/v1/embeddings', '/v1/responses', '/v1/moderations'];
  const ep = h('select', { id: 'c-endpoint' }, endpoints.map((e) => h('option', { value: e, selected: e === url }, e)));
  const win = h('input', { id: 'c-window', value: '24h', pattern: '[0-9]+[mh]', required: true, 'aria-describedby': 'c-window-help' });
  const meta = h('textarea', { id: 'c-meta', rows: 2, placeholder: 'team=search' });
  const err = h('div');
  const form = h('form', { class: 'stack', 'aria-label': 'Create a batch' },
    h('p', { class: 'ok' }, `Uploaded ${fileObj.filename}: ${fmtBytes(fileObj.bytes)}, id `, h('code', {}, fileObj.id)),
    h('label', { for: 'c-endpoint' }, 'Endpoint'), ep,
    h('label', { for: 'c-window' }, 'Completion window'), win,
    h('small', { id: 'c-window-help' }, 'Minutes or hours, from 1m to 168h: 90m, 2h, 24h.'),
    h('label', { for: 'c-meta' }, 'Metadata (key=value, one a line)'), meta,
    err,
    h('button', { type: 'submit' }, 'Create batch'));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const metadata = {};
    for (const line of meta.value.split('\n')) {
      const i = line.indexOf('=');
      if (i > 0) metadata[line.slice(0, i).trim()] = line.slice(i + 1).trim();
    }
    try {
      const b = await api.post('/batches', {
        input_file_id: fileObj.id, endpoint: ep.value, completion_window: win.value.trim(),
        metadata: Object.keys(metadata).length ? metadata : undefined,
      });
      location.hash = `#/batches/${b.id}`;
    } catch (e) { err.replaceChildren(errorBox(e)); }
  });
  return form;
}

// Queue

function pageQueue() {
  const err = h('div');
  const models = h('div');
  const replicas = h('div');
  mount('Queue', err, models, replicas);
  return poll(async () => {
    let q;
    try { q = await api.get('/queue'); err.replaceChildren(); } catch (e) { err.replaceChildren(errorBox(e)); return; }
    const rows = q.data || [];
    // Deadline windows (overdue, within_1h, …, later) where the server reports them.
    const windows = (rows.find((r) => Array.isArray(r.deadline_windows)) || {}).deadline_windows?.map((w) => w.window) || [];
    const hasLimit = rows.some((r) => r.limit !== undefined && r.limit !== null);
    const cols = ['Model', 'Pending (all)', 'Running (all)', 'Pending (yours)', 'Running (yours)'];
    if (hasLimit) cols.push('Running / limit');
    const scope = q.windows_scope === 'all' ? 'everyone' : 'yours';
    cols.push(...windows.map((w) => `Pending ${w.replace('_', ' ')} (${scope})`));
    models.replaceChildren(h('table', { class: 'list' },
      h('caption', {}, 'Requests waiting and running per model: batch requests and background responses together'),
      h('thead', {}, h('tr', {}, cols.map((c) => h('th', { scope: 'col' }, c)))),
      h('tbody', {}, rows.length ? rows.map((r) => {
        const cells = [r.pending, r.running, r.own_pending, r.own_running];
        if (hasLimit) cells.push(r.limit ? progressBar({ completed: r.running, failed: 0, total: r.limit }, `${r.model} running against its limit`) : '—');
        const byWindow = new Map((r.deadline_windows || []).map((w) => [w.window, w.pending]));
        cells.push(...windows.map((w) => byWindow.get(w) ?? 0));
        return h('tr', {}, h('th', { scope: 'row' }, r.model), cells.map((c) => h('td', {}, c)));
      }) : [h('tr', {}, h('td', { colspan: cols.length }, 'Nothing is waiting or running.'))])));
    if (caps.daemons) {
      let d;
      try { d = await api.get('/daemons'); } catch { replicas.replaceChildren(); return; }
      replicas.replaceChildren(h('h2', {}, 'Replicas'), h('table', { class: 'list' },
        h('thead', {}, h('tr', {}, ['Replica', 'Host', 'PID', 'Status', 'Started', 'Heartbeat', 'In flight', 'Completed', 'Failed'].map((c) => h('th', { scope: 'col' }, c)))),
        h('tbody', {}, (d.data || []).map((r) => h('tr', {},
          [r.id, r.host, r.pid, badge(r.status), fmtTime(r.started_at), fmtTime(r.heartbeat_at), r.in_flight ?? r.requests_in_flight ?? '—', r.completed ?? '—', r.failed ?? '—'].map((c) => h('td', {}, c)))))));
    }
  });
}

// Responses

function responseText(r) {
  const parts = [];
  for (const item of r.output || []) {
    for (const c of item.content || []) if (typeof c.text === 'string') parts.push(c.text);
  }
  return parts.join('\n');
}

function pageResponses() {
  const state = { cursors: [null], background: true };
  const err = h('div');
  const tbody = h('tbody');
  const pager = h('nav', { class: 'pager', 'aria-label': 'Pages' });
  const bg = h('input', { id: 'rs-bg', type: 'checkbox', checked: true });
  bg.addEventListener('change', () => { state.background = bg.checked; state.cursors = [null]; refresh(); });
  mount('Responses',
    h('form', { class: 'filters', 'aria-label': 'Filter responses' }, h('label', { class: 'check' }, bg, ' Background only')),
    err,
    h('table', { class: 'list' },
      h('caption', { class: 'sr-only' }, 'Your stored responses, newest first'),
      h('thead', {}, h('tr', {}, ['Response', 'Status', 'Model', 'Created'].map((c) => h('th', { scope: 'col' }, c)))), tbody),
    pager);
  async function refresh() {
    let page;
    try {
      page = await api.get('/responses', { limit: 20, after: state.cursors[state.cursors.length - 1], background: state.background ? 'true' : '' });
      err.replaceChildren();
    } catch (e) {
      err.replaceChildren(errorBox(e.status === 404 ? new Error('This server does not list responses.') : e));
      return false;
    }
    tbody.replaceChildren(...(page.data.length ? page.data.map((r) => h('tr', {},
      h('td', {}, h('a', { href: `#/responses/${r.id}` }, r.id)), h('td', {}, badge(r.status)), h('td', {}, r.model), h('td', {}, fmtTime(r.created_at)))) :
      [h('tr', {}, h('td', { colspan: 4 }, 'No responses.'))]));
    pager.replaceChildren(
      h('button', { type: 'button', disabled: state.cursors.length === 1, onclick: () => { state.cursors.pop(); refresh(); } }, '← Newer'),
      h('span', {}, `Page ${state.cursors.length}`),
      h('button', { type: 'button', disabled: !page.has_more, onclick: () => { state.cursors.push(page.last_id); refresh(); } }, 'Older →'));
  }
  return poll(refresh);
}

function pageResponse(id) {
  const err = h('div');
  const body = h('div');
  mount(id, err, body);
  return poll(async () => {
    let r;
    try { r = await api.get(`/responses/${encodeURIComponent(id)}`); err.replaceChildren(); } catch (e) { err.replaceChildren(errorBox(e)); return false; }
    const running = r.status === 'queued' || r.status === 'in_progress';
    const u = r.usage || {};
    body.replaceChildren(
      h('div', { class: 'actions' }, badge(r.status),
        running ? h('button', { type: 'button', class: 'danger', onclick: async () => {
          try { await api.post(`/responses/${encodeURIComponent(id)}/cancel`); toast('Cancelled.'); } catch (e) { toast(e.message); }
        } }, 'Cancel response') : ''),
      h('dl', { class: 'fields' }, ...[['Model', r.model], ['Created', fmtTime(r.created_at)], ['Background', String(!!r.background)],
        ['Input tokens', u.input_tokens ?? '—'], ['Output tokens', u.output_tokens ?? '—']].flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, v)])),
      r.error ? h('p', { class: 'error' }, `${r.error.code || 'error'}: ${r.error.message}`) : '',
      h('h2', {}, 'Output'), h('pre', { class: 'output', tabindex: 0 }, responseText(r) || (running ? 'Not finished yet.' : '—')),
      h('details', {}, h('summary', {}, 'Raw object'), h('pre', { tabindex: 0 }, JSON.stringify(r, null, 2))));
    return running;
  });
}

// Sign-in

function pageSignIn(message) {
  const key = h('input', { id: 'key', type: 'password', autocomplete: 'off', required: true, placeholder: 'sk-volley-…', 'aria-describedby': 'key-help' });
  const err = h('div');
  const form = h('form', { class: 'stack signin', 'aria-label': 'Sign in' },
    message ? h('p', { class: 'error', role: 'alert' }, message) : '',
    h('label', { for: 'key' }, 'API key'), key,
    h('small', { id: 'key-help' }, 'Kept in this browser tab only (sessionStorage) and sent to this server alone. `volley keys create --owner NAME` makes one.'),
    err, h('button', { type: 'submit' }, 'Sign in'));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    sessionStorage.setItem(KEY, key.value.trim());
    try {
      await api.get('/batches', { limit: 1 });
    } catch (e) {
      sessionStorage.removeItem(KEY);
      err.replaceChildren(errorBox(e.status === 401 ? new Error('This key was refused.') : e));
      return;
    }
    caps = null;
    if (!location.hash || location.hash === '#/signin') location.hash = '#/batches'; else route();
  });
  mount('Sign in', form);
  key.focus();
  return () => {};
}

function signOut(message) {
  sessionStorage.removeItem(KEY);
  caps = null;
  stopPage();
  stopPage = pageSignIn(message);
  document.getElementById('nav').hidden = true;
}

// ---------- routing ----------

async function route() {
  stopPage();
  toast('');
  stopPage = () => {};
  const nav = document.getElementById('nav');
  if (!api.key) {
    nav.hidden = true;
    stopPage = pageSignIn();
    return;
  }
  nav.hidden = false;
  if (!caps) caps = await probeCaps();
  const parts = location.hash.replace(/^#\/?/, '').split('/').map(decodeURIComponent);
  for (const a of nav.querySelectorAll('a')) {
    if (a.getAttribute('href') === `#/${parts[0] || 'batches'}`) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
  }
  switch (parts[0]) {
    case 'batches': stopPage = parts[1] ? pageBatch(parts[1]) : pageBatches(); break;
    case 'upload': stopPage = pageUpload(); break;
    case 'queue': stopPage = pageQueue(); break;
    case 'responses': stopPage = parts[1] ? pageResponse(parts[1]) : pageResponses(); break;
    default: location.hash = '#/batches'; return;
  }
  document.getElementById('page-title')?.focus();
}

document.getElementById('signout').addEventListener('click', () => { signOut(); location.hash = '#/signin'; });
window.addEventListener('hashchange', route);
route();
