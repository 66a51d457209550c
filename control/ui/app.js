'use strict';
// The admin UI: one page per hash (#overview, #models, ...), one draft of config.json that the
// forms and the raw JSON editor both edit, saved with If-Match through control's API.

(() => {
  const BASE = location.pathname.endsWith('/') ? location.pathname : location.pathname.replace(/[^/]*$/, '');
  const MASK = '********';
  const ROUTES = ['chat/completions', 'responses', 'images/generations', 'embeddings'];

  const S = {
    session: null,
    server: null,      // GET /api/config: { etag, config, issues, ... }
    draft: null,       // what the forms and the JSON editor edit
    json: null,        // { text, base, syntaxError }
    issues: [],
    page: null,
    timers: {},
    keys: [],
    tester: null,
    pool: null,        // the proxy's deployments, from GET /api/stats
    poolError: null,
    usage: null,       // key id → the proxy's windows and budget of that key, from GET /api/limits
    usageError: null,
    keyMonth: null,    // this month's use of every key, a point a day, from GET /api/usage
    keyMonthError: null,
    keyMonthOff: false, // the proxy keeps no usage history (USAGE_HISTORY=off)
    keyMonthAt: 0,     // when it was last read
    usageSeq: 0,       // the statistics page's latest read of the usage history; older answers are dropped
    usageShownAt: 0,   // when it was last answered
    clockOffset: 0,    // ms to add to the browser's clock to get control's
    configMissing: false,
    loginRefused: false,
  };

  // ---------- i18n ----------
  const DICT = window.GATEWAY_I18N || { en: {} };
  function lang() {
    const stored = localStorage.getItem('gateway.lang');
    if (stored && DICT[stored]) return stored;
    return (navigator.language || '').toLowerCase().startsWith('zh') ? 'zh' : 'en';
  }
  function t(key, params) {
    let s = (DICT[lang()] || {})[key];
    if (s === undefined) s = DICT.en[key];
    if (s === undefined) s = key;
    if (params) for (const [k, v] of Object.entries(params)) s = s.split('{' + k + '}').join(String(v));
    return s;
  }
  function applyI18n(root = document) {
    root.querySelectorAll('[data-i18n]').forEach((el) => { el.textContent = t(el.dataset.i18n); });
    root.querySelectorAll('[data-i18n-placeholder]').forEach((el) => { el.placeholder = t(el.dataset.i18nPlaceholder); });
    document.documentElement.lang = lang() === 'zh' ? 'zh-CN' : 'en';
    document.title = t('brand');
  }

  // ---------- DOM ----------
  const $ = (sel, root = document) => root.querySelector(sel);
  const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') el.className = v;
      else if (k === 'text') el.textContent = v;
      else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
      else if (k === 'dataset') Object.assign(el.dataset, v);
      else if (k === 'value') el.value = v;
      else if (k === 'checked') el.checked = v;
      else el.setAttribute(k, v === true ? '' : v);
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined || c === false) continue;
      el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }
  function clear(el) { while (el.firstChild) el.removeChild(el.firstChild); return el; }
  // Labels each body cell with its column's heading, shown beside it when a narrow screen
  // stacks the table's rows (`.table.stack`). Rows of one spanning cell keep none.
  function stackLabels(table) {
    const heads = $$('thead th', table).map((th) => th.textContent);
    $$('tbody tr', table).forEach((tr) => {
      if (tr.cells.length === 1 && tr.cells[0].colSpan > 1) return;
      Array.from(tr.cells).forEach((td, i) => { if (heads[i] !== undefined && !td.hasAttribute('data-label')) td.dataset.label = heads[i]; });
    });
  }
  function badge(text, kind) { return h('span', { class: 'badge ' + (kind || '') }, text); }
  function fact(dl, label, value) {
    dl.append(h('dt', {}, label), h('dd', {}, value instanceof Node ? value : (value ?? '—')));
  }

  let toastTimer = null;
  function toast(message, kind) {
    const el = $('#toast');
    el.textContent = message;
    el.className = 'toast ' + (kind || '');
    el.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { el.hidden = true; }, kind === 'bad' ? 8000 : 4000);
  }

  function dialog(title, body, buttons) {
    const d = $('#dialog');
    $('#dialog-title').textContent = title;
    clear($('#dialog-body')).append(...[].concat(body));
    const actions = clear($('#dialog-actions'));
    return new Promise((resolve) => {
      for (const b of buttons) {
        actions.append(h('button', {
          class: 'button ' + (b.kind || ''), value: b.value, type: 'submit',
          onclick: () => resolve(b.value),
        }, b.label));
      }
      d.addEventListener('cancel', () => resolve(null), { once: true });
      d.showModal();
    });
  }

  // ---------- formatting ----------
  const nf = () => new Intl.NumberFormat(lang() === 'zh' ? 'zh-CN' : 'en');
  const num = (n) => (n === undefined || n === null ? '—' : nf().format(n));
  function when(ms) {
    if (!ms) return '—';
    return new Date(ms).toLocaleString(lang() === 'zh' ? 'zh-CN' : 'en');
  }
  function ago(ms) {
    if (!ms) return '—';
    const s = Math.round((Date.now() - ms) / 1000);
    if (s < 60) return t('time.secondsAgo', { n: Math.max(0, s) });
    if (s < 3600) return t('time.minutesAgo', { n: Math.round(s / 60) });
    if (s < 86400) return t('time.hoursAgo', { n: Math.round(s / 3600) });
    return when(ms);
  }
  function duration(ms) {
    if (ms === undefined || ms === null || ms === '' || Number.isNaN(Number(ms))) return '';
    ms = Number(ms);
    if (ms < 1000) return ms + ' ' + t('unit.ms');
    if (ms < 60000) return (ms / 1000).toFixed(ms % 1000 ? 1 : 0) + ' ' + t('unit.s');
    if (ms < 3600000) return (ms / 60000).toFixed(ms % 60000 ? 1 : 0) + ' ' + t('unit.min');
    return (ms / 3600000).toFixed(ms % 3600000 ? 1 : 0) + ' ' + t('unit.h');
  }
  function uptime(s) {
    const [sec, min, hour, day] = ['unit.s', 'unit.min', 'unit.h', 'unit.d'].map((u) => ' ' + t(u));
    if (s < 60) return s + sec;
    if (s < 3600) return Math.floor(s / 60) + min;
    if (s < 86400) return Math.floor(s / 3600) + hour + ' ' + Math.floor((s % 3600) / 60) + min;
    return Math.floor(s / 86400) + day + ' ' + Math.floor((s % 86400) / 3600) + hour;
  }
  const clone = (v) => JSON.parse(JSON.stringify(v));

  // ---------- messages from the server ----------
  // The server sends a stable code with the values of its English message (`params`); the
  // page words the message from the code in its own language. The English message stays the
  // fallback: for English, for a code the page does not know, and when a value the wording
  // needs is missing. Text from Azure or Caddy is one of the values, shown as it came.
  function translated(key, params, english) {
    const template = lang() !== 'en' ? DICT[lang()][key] : undefined;
    if (template === undefined) return english;
    const values = localParams(params);
    const names = (template.match(/\{[a-z_A-Z]+\}/g) || []).map((n) => n.slice(1, -1));
    if (!names.every((n) => values[n] !== undefined && values[n] !== null)) return english;
    return t(key, values);
  }
  // The values of a message, with the cause of an unreachable process (`cause_code` and the
  // transport's own `cause_detail`) worded in the page's language.
  function localParams(params) {
    const values = Object.assign({}, params || {});
    if (values.cause_code && DICT[lang()]['cause.' + values.cause_code] !== undefined) {
      const detail = values.cause_detail || '';
      const template = DICT[lang()]['cause.' + values.cause_code];
      const cause = t('cause.' + values.cause_code, { detail });
      values.cause = detail && !template.includes('{detail}') ? t('cause.withDetail', { cause, detail }) : cause;
    }
    return values;
  }

  // ---------- API ----------
  class ApiError extends Error {
    constructor(status, body) {
      const err = body && body.error;
      const english = (err && err.message) || (typeof body === 'string' && body) || ('HTTP ' + status);
      super(english);
      this.status = status;
      this.code = err && err.code;
      this.param = err && err.param;
      this.issues = (err && err.issues) || [];
      this.etag = err && err.etag;
      this.params = Object.assign({ message: english }, (err && err.params) || {});
      if (this.code) this.message = translated('error.' + this.code, this.params, english);
    }
  }
  function apiUrl(path) { return new URL(BASE + 'api/' + path, location.origin); }
  async function api(method, path, body, headers) {
    const init = { method, credentials: 'same-origin', headers: Object.assign({ 'X-Requested-With': 'gateway-admin' }, headers || {}) };
    if (body !== undefined) {
      init.body = typeof body === 'string' ? body : JSON.stringify(body);
      init.headers['Content-Type'] = 'application/json';
    }
    const res = await fetch(apiUrl(path), init);
    const type = res.headers.get('content-type') || '';
    const data = type.includes('json') ? await res.json().catch(() => null) : await res.text();
    if (!res.ok) throw new ApiError(res.status, data);
    return { data, res };
  }

  // ---------- config paths ----------
  function parsePath(path) {
    const out = [];
    const re = /([^.[\]]+)|\[(\d+)\]|\["((?:[^"\\]|\\.)*)"\]/g;
    let m;
    while ((m = re.exec(path))) {
      if (m[1] !== undefined) out.push(m[1]);
      else if (m[2] !== undefined) out.push(Number(m[2]));
      else out.push(JSON.parse('"' + m[3] + '"'));
    }
    return out;
  }
  function childPath(parent, key) {
    if (typeof key === 'number') return parent + '[' + key + ']';
    const plain = /^[A-Za-z_][A-Za-z0-9_]*$/.test(key);
    if (!parent) return plain ? key : '["' + key + '"]';
    return plain ? parent + '.' + key : parent + '["' + key.replace(/"/g, '\\"') + '"]';
  }
  function getPath(obj, path) {
    let cur = obj;
    for (const seg of parsePath(path)) {
      if (cur === null || cur === undefined) return undefined;
      cur = cur[seg];
    }
    return cur;
  }
  function setPath(obj, path, value, removeWhenEmpty) {
    const segs = parsePath(path);
    let cur = obj;
    for (let i = 0; i < segs.length - 1; i++) {
      if (cur[segs[i]] === undefined || cur[segs[i]] === null) cur[segs[i]] = typeof segs[i + 1] === 'number' ? [] : {};
      cur = cur[segs[i]];
    }
    const last = segs[segs.length - 1];
    if (removeWhenEmpty && (value === '' || value === undefined)) delete cur[last];
    else cur[last] = value;
  }

  // ---------- the draft ----------
  function dirty() {
    if (!S.server || !S.draft) return false;
    if (S.json && S.json.syntaxError) return true;
    return JSON.stringify(S.draft) !== JSON.stringify(S.server.config);
  }
  function updateSavebar() { $('#savebar').hidden = !dirty(); }

  async function loadConfig() {
    const { data } = await api('GET', 'config');
    S.server = data;
    S.draft = data.config ? clone(data.config) : null;
    S.json = null;
    renderDraft();
  }

  function renderDraft() {
    if (!S.draft) return;
    fillStaticFields();
    renderUpstreams();
    renderModels();
    renderKeys();
    fillTesterChoices();
    fillRequestFilters();
    fillUsageFilters();
    if (S.page === 'json') enterJson();
    updateSavebar();
  }

  function fieldValue(el) {
    const type = el.dataset.type;
    if (el.type === 'checkbox') return el.checked;
    const raw = el.value;
    if (type === 'int' || type === 'float') {
      if (raw.trim() === '') return null;
      const n = Number(raw);
      return Number.isFinite(n) && (type === 'float' || Number.isInteger(n)) ? n : raw;
    }
    if (type === 'int-list') {
      const parts = raw.split(/[\s,]+/).filter(Boolean);
      const nums = parts.map(Number);
      return nums.every((n) => Number.isInteger(n)) ? nums : raw;
    }
    return raw;
  }
  function showFieldValue(el, value) {
    if (el.type === 'checkbox') { el.checked = !!value; return; }
    if (el.dataset.type === 'int-list' && Array.isArray(value)) { el.value = value.join(', '); return; }
    el.value = value === undefined || value === null ? '' : String(value);
    if (el.tagName === 'SELECT' && value && !Array.from(el.options).some((o) => o.value === String(value))) {
      el.append(h('option', { value: String(value) }, String(value)));
      el.value = String(value);
    }
  }
  function durationHint(el) {
    if (!('duration' in el.dataset)) return;
    let hint = el.parentElement.querySelector('.duration-hint');
    if (!hint) { hint = h('span', { class: 'duration-hint' }); el.after(hint); }
    const v = Number(el.value);
    hint.textContent = el.value !== '' && v >= 1000 ? '= ' + duration(v) : '';
  }
  function onFieldInput(ev) {
    const el = ev.target;
    if (!el.dataset.path || !S.draft) return;
    setPath(S.draft, el.dataset.path, fieldValue(el), 'optional' in el.dataset);
    durationHint(el);
    clearFieldError(el);
    if (el.dataset.path === 'auth.mode') showAuthFields();
    updateSavebar();
  }
  function fillStaticFields() {
    $$('main [data-path]').forEach((el) => {
      if (el.closest('.rows')) return;
      const value = getPath(S.draft, el.dataset.path);
      showFieldValue(el, value === undefined && 'default' in el.dataset ? el.dataset.default : value);
      durationHint(el);
    });
    showAuthFields();
  }
  function showAuthFields() {
    const mode = S.draft && S.draft.auth ? S.draft.auth.mode : 'servicePrincipal';
    $$('#page-auth [data-modes]').forEach((el) => { el.hidden = !el.dataset.modes.split(' ').includes(mode); });
  }

  // ---------- saving ----------
  // PUT config with the ETag it was read with. When the file changed since, the operator
  // reloads it (dropping the draft), overwrites it or cancels; null unless it was saved.
  async function putConfig(body) {
    try {
      const { data } = await api('PUT', 'config', body, { 'If-Match': S.server.etag });
      return data;
    } catch (err) {
      if (err.code !== 'config_changed') throw err;
      const choice = await dialog(t('conflict.title'), h('p', {}, t('conflict.body')), [
        { label: t('conflict.reload'), value: 'reload' },
        { label: t('conflict.overwrite'), value: 'overwrite', kind: 'danger' },
        { label: t('common.cancel'), value: 'cancel' },
      ]);
      if (choice === 'reload') { await loadConfig(); toast(t('conflict.reloaded')); }
      if (choice === 'overwrite') { S.server.etag = err.etag; return putConfig(body); }
      return null;
    }
  }
  function adoptSaved(data) {
    S.server = Object.assign({}, S.server, { etag: data.etag, sha256: data.sha256, config: data.config, valid: true, issues: [] });
  }
  async function save() {
    const button = $('#save');
    button.disabled = true;
    const fromJson = S.page === 'json' && S.json;
    const body = fromJson ? S.json.text : JSON.stringify(S.draft, null, 2);
    const started = performance.now();
    const before = S.server && S.server.config;
    try {
      const data = await putConfig(body);
      if (!data) return;
      // A change of the HTTPS site alone is Caddy's to apply; the proxy does not use it.
      const caddyOnly = data.changed && before && sameOutside(before, data.config, 'caddy');
      adoptSaved(data);
      S.draft = clone(data.config);
      S.json = null;
      clearIssues();
      renderDraft();
      if (caddyOnly) {
        const render = data.caddyfile || {};
        toast(render.ok ? t('save.caddyOnly') : t('save.caddyFailed', { error: render.error || '' }), render.ok ? 'ok' : 'bad');
      } else {
        toast(data.changed ? t('save.saved') : t('save.unchanged'), 'ok');
        if (data.changed) waitForProxy(data.sha256, started);
      }
      refreshSession();
      const admin = S.draft.server && S.draft.server.adminPath;
      if (admin && !BASE.startsWith(admin + '/')) location.assign(admin + '/' + location.hash);
    } catch (err) {
      if (err.issues && err.issues.length) {
        showIssues(err.issues);
        toast(t('save.invalid', { n: err.issues.length }), 'bad');
      } else {
        toast(err.message, 'bad');
      }
    } finally {
      button.disabled = false;
    }
  }

  // Whether two configs differ only in `server[section]`.
  function sameOutside(a, b, section) {
    const strip = (c) => Object.assign({}, c, { server: Object.assign({}, c.server, { [section]: null }) });
    return JSON.stringify(strip(a)) === JSON.stringify(strip(b));
  }

  // After a save, the proxy's watcher applies the file; show when it has.
  async function waitForProxy(sha256, started) {
    const deadline = Date.now() + 15000;
    while (Date.now() < deadline) {
      try {
        const { data } = await api('GET', 'status');
        const served = data.proxy && data.proxy.status && data.proxy.status.config && data.proxy.status.config.sha256;
        if (served === sha256) {
          toast(t('save.applied', { ms: Math.round(performance.now() - started) }), 'ok');
          if (S.page === 'overview') renderOverview(data);
          return;
        }
        if (data.proxy && !data.proxy.reachable) return;
      } catch (_) { return; }
      await new Promise((r) => setTimeout(r, 250));
    }
    toast(t('save.notApplied'), 'bad');
  }

  function discard() {
    if (!S.server) return;
    S.draft = clone(S.server.config);
    S.json = null;
    clearIssues();
    renderDraft();
  }

  // ---------- validation issues ----------
  const PAGE_OF = [
    [/^server\.(adminAuth|adminPath|host|port|ops)/, 'server'],
    [/^limits/, 'server'],
    [/^server\.caddy/, 'tls'],
    [/^server\.imageCompression/, 'images'],
    [/^server\.upstream/, 'timeouts'],
    [/^auth/, 'auth'],
    [/^apiKeys/, 'keys'],
    [/^(upstreams|models)\[\d+\]\.auth/, 'json'],
    [/^(upstreams|models)/, 'models'],
  ];
  function pageOf(path) {
    for (const [re, page] of PAGE_OF) if (re.test(path)) return page;
    return 'json';
  }
  function clearFieldError(el) {
    const field = el.closest('.field, .check, .pair') || el.parentElement;
    el.classList.remove('invalid');
    if (field) { field.classList.remove('invalid'); $$('.field-error', field).forEach((e) => e.remove()); }
    const host = el.closest('[data-field-errors]');
    if (host) $$('.field-error', host).filter((e) => e.dataset.for === el.dataset.path).forEach((e) => e.remove());
  }
  function clearIssues() {
    S.issues = [];
    $('#issues-panel').hidden = true;
    $$('.field-error').forEach((e) => e.remove());
    $$('.invalid').forEach((e) => e.classList.remove('invalid'));
    renderJsonIssues();
  }
  function markIssues() {
    $$('.field-error').forEach((e) => e.remove());
    $$('.invalid').forEach((e) => e.classList.remove('invalid'));
    for (const issue of S.issues) {
      const el = $$('[data-path]').find((e) => e.dataset.path === issue.path);
      if (el) {
        const field = el.closest('.field, .check, .pair') || el.parentElement;
        el.classList.add('invalid');
        field.classList.add('invalid');
        // Small fields in a line (a window) have their message on a line of its own below.
        const host = field.closest('[data-field-errors]') || field;
        host.append(h('span', { class: 'field-error', dataset: { for: issue.path } }, issue.message));
        continue;
      }
      // A path that names a group of fields (a pool, one of its rows) rather than one field.
      const group = issueGroup(issue.path);
      if (group) {
        group.classList.add('invalid');
        group.append(h('span', { class: 'field-error' }, issue.message));
      }
    }
  }
  // The group of fields (a pool, one of its rows, a key's windows) that holds `path`: the one
  // named by the path itself or by its nearest parent.
  function issueGroup(path) {
    const groups = $$('[data-issue-path]');
    for (let p = path; p; p = p.slice(0, Math.max(p.lastIndexOf('.'), p.lastIndexOf('[')))) {
      const group = groups.find((e) => e.dataset.issuePath === p);
      if (group) return group;
      if (p.lastIndexOf('.') <= 0 && p.lastIndexOf('[') <= 0) break;
    }
    return null;
  }
  // `onDisk`: the issues are those of config.json as it is on disk (nothing was saved), not
  // those of a refused save.
  function showIssues(issues, onDisk) {
    S.issues = issues;
    const title = $('#issues-panel h3');
    title.dataset.i18n = onDisk ? 'issues.onDisk' : 'issues.title';
    title.textContent = t(title.dataset.i18n);
    const list = clear($('#issues-list'));
    for (const issue of issues) {
      list.append(h('li', { onclick: () => { location.hash = pageOf(issue.path); setTimeout(() => focusPath(issue.path), 50); } },
        h('code', {}, issue.path), ': ', issue.message));
    }
    $('#issues-panel').hidden = false;
    markIssues();
    renderJsonIssues();
    if (S.page === 'json' && issues.length) jumpToLine(issueLine(issues[0]));
  }
  function focusPath(path) {
    const el = $$('[data-path]').find((e) => e.dataset.path === path) || issueGroup(path);
    if (el && !el.closest('[hidden]')) { el.scrollIntoView({ block: 'center' }); el.focus(); }
    else if (S.page === 'json') jumpToLine(lineOfPath(path));
  }

  // ---------- banners and session ----------
  async function refreshSession() {
    try {
      const { data } = await api('GET', 'session');
      S.session = data;
      $('#user-badge').textContent = data.user ? t('session.user', { user: data.user }) : '';
      const banners = clear($('#banners'));
      if (data.default_password) {
        banners.append(h('div', { class: 'banner', id: 'default-password-banner' }, t('banner.defaultPassword') + ' ',
          h('a', { href: '#server' }, t('banner.changeIt'))));
      }
      if (!data.login_enabled) banners.append(h('div', { class: 'banner' }, t('banner.loginDisabled')));
    } catch (err) {
      if (err.code === 'config_missing') showConfigMissing();
      else if (err.code === 'default_password_remote') showLoginRefused(err);
      else toast(err.message, 'bad');
    }
  }

  // The default password from a public address: the API refuses everything, so the page says
  // why instead of showing the pages.
  function showLoginRefused(err) {
    S.loginRefused = true;
    document.body.classList.add('login-refused');
    $('#login-refused').hidden = false;
    $('#login-refused-text').textContent = err.message;
  }

  // Without config.json nobody can log in: the page says how to create the file instead of
  // showing the pages, and reloads once control has read one (the browser then asks for the
  // login).
  function showConfigMissing() {
    if (S.configMissing) return;
    S.configMissing = true;
    document.body.classList.add('config-missing');
    $('#config-missing').hidden = false;
    S.timers.missing = setInterval(async () => {
      try {
        await api('GET', 'session');
      } catch (err) {
        if (err.code === 'config_missing') return;
      }
      clearInterval(S.timers.missing);
      location.reload();
    }, 2000);
  }

  // ---------- overview ----------
  async function enterOverview() {
    try {
      const [{ data: status }, stats] = await Promise.all([
        api('GET', 'status'),
        api('GET', 'stats').then((r) => r.data).catch(() => null),
        refreshSparks(),
      ]);
      renderOverview(status, stats);
    } catch (err) { toast(err.message, 'bad'); }
  }
  function renderOverview(status, stats) {
    const warnings = clear($('#warnings'));
    for (const w of status.warnings) {
      const text = translated('warn.' + w.code, w.params, w.message);
      warnings.append(h('li', { dataset: { code: w.code } }, text, w.detail ? h('span', { class: 'detail' }, w.detail) : null));
    }
    if (!status.warnings.length) warnings.append(h('li', { class: 'ok' }, t('overview.allGood')));

    const p = clear($('#facts-proxy'));
    if (status.proxy.reachable) {
      const s = status.proxy.status;
      fact(p, t('overview.state'), badge(t('overview.running'), 'ok'));
      fact(p, t('overview.version'), s.version);
      fact(p, t('overview.uptime'), uptime(s.uptime_s));
      fact(p, t('overview.generation'), String(s.config.generation));
      const applied = s.config.rejected ? badge(t('overview.rejected'), 'bad')
        : status.proxy.applied ? badge(t('overview.applied'), 'ok') : badge(t('overview.pending'), 'warn');
      fact(p, t('overview.fileApplied'), applied);
      if (s.config.blob) {
        const from = s.config.blob.serving_from;
        fact(p, t('overview.servingFrom'), badge(t('overview.serving.' + from), from === 'blob' ? 'ok' : 'warn'));
      }
      fact(p, t('overview.counts'), t('overview.countsValue', { models: s.models, upstreams: s.upstreams, keys: s.client_keys }));
    } else {
      fact(p, t('overview.state'), badge(t('overview.unreachable'), 'bad'));
      fact(p, t('overview.opsUrl'), status.proxy.ops_url);
    }

    const c = clear($('#facts-config'));
    fact(c, t('overview.path'), h('span', { class: 'mono' }, status.config.path));
    const blob = status.config.blob;
    if (blob) {
      const state = blob.reachable === false ? badge(t('overview.unreachable'), 'bad')
        : blob.reachable ? badge(t('overview.reachable'), 'ok') : badge(t('overview.unknown'), '');
      fact(c, t('overview.blobState'), h('span', {}, state, blob.pending_local_change ? h('span', {}, ' ', badge(t('overview.pendingPush'), 'warn')) : null));
    }
    fact(c, t('overview.state'), status.config.valid ? badge(t('overview.valid'), 'ok') : badge(t('overview.invalid'), 'bad'));
    fact(c, t('overview.modified'), when(status.config.modified_ms));
    fact(c, t('overview.counts'), t('overview.countsValue', { models: status.config.models, upstreams: status.config.upstreams, keys: status.config.client_keys }));

    const k = clear($('#facts-caddy'));
    const caddy = status.caddy;
    if (!caddy.managed) {
      fact(k, t('overview.state'), badge(t('overview.notManaged'), ''));
    } else {
      fact(k, t('overview.adminApi'), caddy.loader.reachable === false ? badge(t('overview.unreachable'), 'bad')
        : caddy.loader.reachable ? badge(t('overview.reachable'), 'ok') : badge(t('overview.unknown'), ''));
      const last = caddy.loader.last_load;
      fact(k, t('overview.lastLoad'), last ? h('span', {}, badge(last.ok ? t('overview.loaded') : t('overview.refused'), last.ok ? 'ok' : 'bad'), ' ', ago(last.at_ms)) : '—');
      if (caddy.pending) fact(k, t('overview.caddyPending'), badge(t('overview.pending'), 'warn'));
    }
    fact(k, 'HTTPS', caddy.tls_enabled ? caddy.domain : t('overview.off'));

    renderLimitsStore(status.proxy.reachable ? status.proxy.status.limits : null);

    const tr = clear($('#facts-traffic'));
    if (stats && stats.total) {
      const tot = stats.total;
      const errors = Object.values(tot.errors || {}).reduce((a, b) => a + b, 0);
      fact(tr, t('stats.requests'), h('span', { class: 'stat-big' }, num(tot.requests)));
      fact(tr, t('stats.errors'), num(errors));
      fact(tr, t('stats.totalTokens'), num(tot.total_tokens));
      fact(tr, t('stats.since'), when(stats.since_ms));
      if (Array.isArray(stats.replicas) && stats.replicas.length) {
        fact(tr, t('stats.replicas'), h('span', {}, ...stats.replicas.map((r, i) =>
          h('span', { class: 'mono' }, (i ? ', ' : '') + r.name + ' (' + num(r.requests) + ')'))));
      }
    } else {
      fact(tr, t('overview.state'), '—');
    }
    if (stats !== undefined) {
      renderPoolAlerts(stats);
      renderImageFacts(stats);
    }
  }

  // Where the proxy counts the key limits, and while that is Redis, whether it answers.
  function renderLimitsStore(limits) {
    const l = clear($('#facts-limits'));
    if (!limits) { fact(l, t('overview.state'), '—'); return; }
    const redis = limits.store === 'redis';
    fact(l, t('limits.counted'), redis ? t('limits.inRedis') : t('limits.inProcess'));
    if (redis) {
      const reachable = limits.redis_reachable;
      fact(l, 'Redis', reachable === true ? badge(t('overview.reachable'), 'ok')
        : reachable === false ? badge(t('overview.unreachable'), 'bad') : badge(t('overview.unknown'), ''));
    }
    fact(l, t('limits.since'), when(limits.since_ms));
    if (redis) fact(l, t('limits.failMode'), t('limits.failMode.' + limits.fail_mode));
  }

  // ---------- models and upstreams ----------
  function input(path, value, attrs) {
    const { optional, ...rest } = attrs || {};
    const el = h('input', Object.assign({ dataset: { path }, value: value ?? '', autocomplete: 'off', oninput: onFieldInput }, rest));
    if (optional) el.dataset.optional = '';
    return el;
  }
  function labelled(label, control, wide) {
    return h('label', { class: 'field' + (wide ? ' wide' : '') }, h('span', {}, label), control);
  }
  function renderUpstreams() {
    const list = clear($('#upstream-list'));
    const ups = S.draft.upstreams || [];
    if (!ups.length) list.append(h('p', { class: 'empty' }, t('models.noUpstreams')));
    ups.forEach((u, i) => {
      const p = 'upstreams[' + i + ']';
      const name = input(p + '.name', u.name);
      name.addEventListener('focus', () => { name.dataset.before = name.value; });
      name.addEventListener('change', () => {
        const before = name.dataset.before;
        if (before !== undefined && before !== name.value) {
          (S.draft.models || []).forEach((m) => {
            if (m.upstream === before) m.upstream = name.value;
            (Array.isArray(m.deployments) ? m.deployments : []).forEach((d) => { if (d.upstream === before) d.upstream = name.value; });
          });
          renderModels();
        }
      });
      const routes = ROUTES.map((r) => labelled(t('models.route', { route: r }),
        input(p + '.routes["' + r + '"]', (u.routes || {})[r], { placeholder: '/openai/v1/' + r, optional: true })));
      const row = h('div', { class: 'row' },
        h('div', { class: 'row-head' }, h('strong', {}, u.name || t('models.newUpstream')),
          u.auth ? badge(t('models.ownAuth', { mode: u.auth.mode || '' }), 'warn') : null,
          h('button', { type: 'button', class: 'button small danger', onclick: () => removeAt('upstreams', i) }, t('common.remove'))),
        h('div', { class: 'form-grid' },
          labelled(t('models.name'), name),
          labelled(t('models.baseUrl'), input(p + '.baseUrl', u.baseUrl, { placeholder: 'https://my-resource.openai.azure.com' }), true),
          ...routes));
      list.append(row);
    });
    markIssues();
  }
  function renderModels() {
    const list = clear($('#model-list'));
    const models = S.draft.models || [];
    if (!models.length) list.append(h('p', { class: 'empty' }, t('models.noModels')));
    models.forEach((m, i) => {
      const p = 'models[' + i + ']';
      const pairs = h('div', { class: 'pairs' });
      const routes = m.routes || {};
      Object.entries(routes).forEach(([key, value]) => pairs.append(routePair(i, key, value)));
      const pooled = Array.isArray(m.deployments);
      const row = h('div', { class: 'row' },
        h('div', { class: 'row-head' }, h('strong', {}, m.id || t('models.newModel')),
          pooled ? badge(t('pool.badge', { n: m.deployments.length }), '') : null,
          h('button', { type: 'button', class: 'button small danger', onclick: () => removeAt('models', i) }, t('common.remove'))),
        h('div', { class: 'form-grid' },
          labelled(t('models.id'), input(p + '.id', m.id)),
          ...(pooled ? [poolEditor(m, i)] : singleDeployment(m, i)),
          h('div', { class: 'field wide' }, h('span', {}, t('models.routeOverrides')), pairs,
            h('div', {}, h('button', {
              type: 'button', class: 'button small', onclick: () => {
                const used = Object.keys((S.draft.models[i].routes) || {});
                const key = [...ROUTES, '*'].find((k) => !used.includes(k));
                if (!key) return;
                S.draft.models[i].routes = Object.assign({}, S.draft.models[i].routes, { [key]: key === 'chat/completions' ? 'responses' : 'chat/completions' });
                renderModels(); updateSavebar();
              },
            }, t('models.addOverride'))))));
      list.append(row);
    });
    markIssues();
    showLiveStates();
  }
  function upstreamSelect(path, value) {
    const select = h('select', { dataset: { path }, onchange: onFieldInput },
      ...(S.draft.upstreams || []).map((u) => h('option', { value: u.name }, u.name)));
    showFieldValue(select, value);
    return select;
  }
  // A model served by one deployment: today's `upstream` + `targetModel` fields.
  function singleDeployment(m, i) {
    const p = 'models[' + i + ']';
    return [
      labelled(t('models.upstream'), upstreamSelect(p + '.upstream', m.upstream)),
      labelled(t('models.targetModel'), input(p + '.targetModel', m.targetModel, { placeholder: m.id || '' })),
      h('div', { class: 'field wide pool-start' },
        h('div', { class: 'button-row' },
          h('span', { class: 'deployment-state', dataset: { live: liveKey(m.upstream, m.targetModel, m.id) } }),
          h('button', { type: 'button', class: 'button small', dataset: { action: 'add-deployment' }, onclick: () => addDeployment(i) }, t('pool.add'))),
        h('span', { class: 'hint' }, t('pool.startHint'))),
    ];
  }
  // A model served by a pool: one row per deployment, in the order of `deployments`.
  function poolEditor(m, i) {
    const p = 'models[' + i + '].deployments';
    const head = h('div', { class: 'deployment deployment-head', 'aria-hidden': 'true' },
      h('span', { class: 'd-index' }), h('span', { class: 'd-upstream' }, t('models.upstream')),
      h('span', { class: 'd-name' }, t('pool.deployment')), h('span', { class: 'd-priority' }, t('pool.priority')),
      h('span', { class: 'd-weight' }, t('pool.weight')), h('span', { class: 'd-state' }, t('pool.state')), h('span', { class: 'd-actions' }));
    const last = m.deployments.length - 1;
    const rows = m.deployments.map((d, j) => {
      const dp = p + '[' + j + ']';
      const cell = (cls, label, control) => h('label', { class: 'field ' + cls }, h('span', { class: 'cell-label' }, label), control);
      const move = (delta, text, label, disabled) => h('button', {
        type: 'button', class: 'button small', title: label, 'aria-label': label, disabled,
        dataset: { action: delta < 0 ? 'up' : 'down' }, onclick: () => moveDeployment(i, j, delta),
      }, text);
      return h('div', { class: 'deployment', dataset: { issuePath: dp, index: String(j) } },
        h('span', { class: 'd-index' }, '#' + (j + 1)),
        cell('d-upstream', t('models.upstream'), upstreamSelect(dp + '.upstream', d.upstream)),
        cell('d-name', t('pool.deployment'), input(dp + '.targetModel', d.targetModel, { placeholder: m.id || '' })),
        cell('d-priority', t('pool.priority'), input(dp + '.priority', d.priority ?? 0, { type: 'number', min: 0, max: 1000, step: 1, 'data-type': 'int' })),
        cell('d-weight', t('pool.weight'), input(dp + '.weight', d.weight ?? 1, { type: 'number', min: 0, max: 1000000, step: 1, 'data-type': 'int' })),
        h('span', { class: 'd-state deployment-state', dataset: { live: liveKey(d.upstream, d.targetModel, m.id) } }),
        h('div', { class: 'd-actions button-row' },
          move(-1, '↑', t('pool.moveUp'), j === 0),
          move(1, '↓', t('pool.moveDown'), j === last),
          h('button', {
            type: 'button', class: 'button small danger', title: t('common.remove'), 'aria-label': t('common.remove'),
            disabled: last === 0, dataset: { action: 'remove' }, onclick: () => removeDeployment(i, j),
          }, '×')));
    });
    return h('div', { class: 'field wide' },
      h('span', {}, t('pool.title')),
      h('p', { class: 'hint' }, t('pool.hint')),
      h('div', { class: 'deployments', dataset: { issuePath: p } }, head, ...rows),
      h('div', {}, h('button', { type: 'button', class: 'button small', dataset: { action: 'add-deployment' }, onclick: () => addDeployment(i) }, t('pool.add'))));
  }
  // A model object with its keys in the order control writes them.
  function modelShape(m, shape) {
    const { id, upstream, targetModel, deployments, routes, ...rest } = m;
    return Object.assign({ id }, shape, { routes: routes || {} }, rest);
  }
  // The first upstream the pool does not use yet, so a new row is rarely a duplicate.
  function freshDeployment(pool) {
    const names = (S.draft.upstreams || []).map((u) => u.name);
    const unused = names.find((n) => !pool.some((d) => d.upstream === n));
    return { upstream: unused || names[0] || '', targetModel: '', priority: 0, weight: 1 };
  }
  function changedPools() {
    clearIssues();
    renderModels();
    updateSavebar();
  }
  function addDeployment(i) {
    const m = S.draft.models[i];
    if (Array.isArray(m.deployments)) {
      m.deployments.push(freshDeployment(m.deployments));
    } else {
      const first = { upstream: m.upstream || '', targetModel: m.targetModel || '', priority: 0, weight: 1 };
      S.draft.models[i] = modelShape(m, { deployments: [first, freshDeployment([first])] });
    }
    changedPools();
    const added = 'models[' + i + '].deployments[' + (S.draft.models[i].deployments.length - 1) + '].targetModel';
    const name = $$('#model-list [data-path]').find((e) => e.dataset.path === added);
    if (name) name.focus();
  }
  function moveDeployment(i, j, delta) {
    const pool = S.draft.models[i].deployments;
    const k = j + delta;
    if (k < 0 || k >= pool.length) return;
    [pool[j], pool[k]] = [pool[k], pool[j]];
    changedPools();
  }
  // A pool left with one deployment of default priority and weight goes back to
  // `upstream` + `targetModel`, the shape a file has without pools.
  function removeDeployment(i, j) {
    const m = S.draft.models[i];
    m.deployments.splice(j, 1);
    if (m.deployments.length === 1) {
      const { upstream, targetModel, priority, weight, ...extra } = m.deployments[0];
      if ((priority ?? 0) === 0 && (weight ?? 1) === 1 && !Object.keys(extra).length) {
        S.draft.models[i] = modelShape(m, { upstream: upstream || '', targetModel: targetModel || '' });
      }
    }
    changedPools();
  }
  function routePair(i, key, value) {
    const keySelect = h('select', {}, ...[...ROUTES, '*'].map((k) => h('option', { value: k }, k === '*' ? t('models.anyRoute') : k)));
    keySelect.value = key;
    const valueInput = h('input', { value, dataset: { path: 'models[' + i + '].routes["' + key + '"]' }, list: 'route-targets', autocomplete: 'off' });
    const rebuild = () => {
      const routes = {};
      $$('.pair', keySelect.closest('.pairs')).forEach((pair) => {
        const [k, v] = [$('select', pair).value, $('input', pair).value];
        routes[k] = v;
        $('input', pair).dataset.path = 'models[' + i + '].routes["' + k + '"]';
      });
      S.draft.models[i].routes = routes;
      updateSavebar();
    };
    keySelect.addEventListener('change', rebuild);
    valueInput.addEventListener('input', rebuild);
    const pair = h('div', { class: 'pair' }, keySelect, valueInput,
      h('button', { type: 'button', class: 'button small danger', onclick: () => { pair.remove(); rebuild(); } }, '×'));
    return pair;
  }
  function removeAt(list, i) {
    S.draft[list].splice(i, 1);
    clearIssues();
    renderUpstreams();
    renderModels();
    updateSavebar();
  }

  // ---------- live pool view ----------
  // `<upstream>/<deployment>`: how the proxy names a deployment in its statistics and attempts.
  function liveKey(upstream, targetModel, modelId) {
    return (upstream || '') + '/' + ((targetModel || '').trim() || modelId || '');
  }
  function clockTime(ms) {
    return new Date(ms).toLocaleTimeString(lang() === 'zh' ? 'zh-CN' : 'en-GB', { hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23' });
  }
  function stateBadge(d) {
    const until = d.until_ms ? clockTime(d.until_ms) : '';
    const [text, kind] = {
      available: [t('pool.available'), 'ok'],
      cooling: [until ? t('pool.coolingUntil', { time: until }) : t('pool.cooling'), 'warn'],
      circuit_open: [until ? t('pool.openUntil', { time: until }) : t('pool.open'), 'bad'],
      half_open: [t('pool.halfOpen'), 'warn'],
    }[d.state] || [d.state, ''];
    const el = badge(text, kind);
    el.title = text;
    return el;
  }
  // An attempt's outcome or a failure class in words; an unknown one as it came.
  function outcomeText(outcome) {
    const key = 'outcome.' + outcome;
    const text = t(key);
    return text === key ? outcome : text;
  }
  const failureTotal = (d) => Object.values(d.failures || {}).reduce((a, b) => a + b, 0);
  // Time to first byte is measured on the attempts that got an answer head: passed on or 429.
  function avgFirstByte(d) {
    const answered = d.succeeded + d.throttled;
    return answered ? duration(Math.round(d.ttfb_ms_sum / answered)) : '—';
  }
  async function enterPoolLive() {
    try {
      const { data } = await api('GET', 'stats');
      S.pool = data.deployments || [];
      S.poolError = null;
    } catch (err) {
      S.pool = null;
      S.poolError = err.message;
    }
    renderPoolLive();
    showLiveStates();
  }
  function renderPoolLive() {
    const body = clear($('#pool-live tbody'));
    const note = $('#pool-live-error');
    note.hidden = !S.poolError;
    note.textContent = S.poolError ? t('pool.unreachable', { error: S.poolError }) : '';
    const rows = S.pool || [];
    if (!rows.length && !S.poolError) body.append(h('tr', {}, h('td', { colspan: 7, class: 'empty' }, t('pool.none'))));
    const cell = (label, attrs, ...content) => h('td', Object.assign({ dataset: { label: t(label) } }, attrs), ...content);
    for (const d of rows) {
      const key = d.upstream + '/' + d.deployment;
      const failures = Object.entries(d.failures || {}).map(([k, v]) => outcomeText(k) + ': ' + v).join(', ');
      body.append(h('tr', { dataset: { deployment: key, state: d.state } },
        cell('pool.deployment', {}, h('span', {},
          h('span', { class: 'mono' }, key),
          h('span', { class: 'models' }, ...d.models.flatMap((m, i) => [i ? ', ' : null, h('span', {}, m)])))),
        cell('pool.state', { class: 'state' }, stateBadge(d)),
        cell('stats.requests', { class: 'num' }, num(d.requests)),
        cell('pool.throttled', { class: 'num' }, num(d.throttled)),
        cell('pool.failures', { class: 'num', title: failures || null }, num(failureTotal(d))),
        cell('pool.failoversOut', { class: 'num' }, num(d.failovers_out)),
        cell('pool.avgFirstByte', { class: 'num' }, avgFirstByte(d))));
    }
  }
  // The state of each deployment next to its row in the model editor.
  function showLiveStates() {
    const byKey = new Map((S.pool || []).map((d) => [d.upstream + '/' + d.deployment, d]));
    $$('#model-list [data-live]').forEach((el) => {
      const d = byKey.get(el.dataset.live);
      clear(el);
      if (d) el.append(stateBadge(d));
    });
  }
  function renderPoolAlerts(stats) {
    const list = clear($('#pool-alerts'));
    if (!stats || !Array.isArray(stats.deployments)) { list.append(h('li', { class: 'muted' }, '—')); return; }
    const out = stats.deployments.filter((d) => d.state !== 'available');
    if (!stats.deployments.length) list.append(h('li', { class: 'muted' }, t('pool.none')));
    else if (!out.length) list.append(h('li', { class: 'ok' }, t('pool.allAvailable', { n: stats.deployments.length })));
    for (const d of out) {
      list.append(h('li', { dataset: { deployment: d.upstream + '/' + d.deployment } },
        h('span', { class: 'mono' }, d.upstream + '/' + d.deployment), ' ', stateBadge(d),
        h('span', { class: 'muted detail' }, d.models.join(', '))));
    }
  }

  // ---------- client keys ----------
  // Each key is a row of the draft's `apiKeys`: its models, windows, budget and expiry are edited
  // there and saved with the bar. Creating, renaming, enabling, disabling and deleting a key save
  // at once through /api/keys. The use of each window and budget comes from /api/limits.

  // The choice of the add-model list that adds an empty entry to type an id or pattern in.
  const ADD_PATTERN = '*';
  async function enterKeys() {
    renderKeys();
    try {
      const { data } = await api('GET', 'keys');
      S.keys = data.keys;
      showKeyHints();
    } catch (err) { toast(err.message, 'bad'); }
    await Promise.all([refreshKeyUsage(), refreshKeyMonth()]);
  }
  // Auto-refresh: the windows and budgets every time, the month's use every 30 s.
  function tickKeys() {
    refreshKeyUsage();
    if (Date.now() - S.keyMonthAt >= 30000) refreshKeyMonth();
  }
  // The last characters of each key's value (from GET keys), in place.
  function showKeyHints() {
    const hints = new Map((S.keys || []).map((k) => [k.id, k.hint]));
    $$('#key-list .row.key').forEach((row) => { $('.key-hint', row).textContent = hints.get(row.dataset.keyId) || '••••'; });
  }
  async function refreshKeyUsage() {
    try {
      const { data, res } = await api('GET', 'limits');
      S.usage = new Map(data.keys.map((k) => [k.key_id, k]));
      S.usageError = null;
      noteServerClock(res);
    } catch (err) {
      S.usage = null;
      S.usageError = err.message;
    }
    showKeyUsage();
  }
  // The key as saved in config.json (what the proxy serves once it has applied the file).
  function savedKey(id) {
    return ((S.server && S.server.config && S.server.config.apiKeys) || []).find((k) => k.id === id);
  }
  function renderKeys() {
    if (!S.draft) return;
    const list = clear($('#key-list'));
    const keys = Array.isArray(S.draft.apiKeys) ? S.draft.apiKeys : [];
    if (!keys.length) list.append(h('p', { class: 'empty' }, t('keys.none')));
    keys.forEach((key, i) => { if (key && typeof key === 'object') list.append(keyRow(key, i)); });
    const ids = clear($('#key-model-ids'));
    for (const m of S.draft.models || []) if (m.id) ids.append(h('option', { value: m.id }));
    showKeyHints();
    markIssues();
    showKeyUsage();
    showKeyMonth();
  }
  function keyRow(key, i) {
    const p = 'apiKeys[' + i + ']';
    const active = key.status !== 'disabled';
    return h('div', { class: 'row key', dataset: { keyId: key.id, index: String(i) } },
      h('div', { class: 'row-head key-head', dataset: { issuePath: p } },
        h('strong', {}, key.id),
        badge(active ? t('keys.active') : t('keys.disabled'), active ? 'ok' : ''),
        expiryBadge(key.expiresAt),
        h('span', { class: 'mono muted key-hint', title: t('keys.hint') }),
        h('div', { class: 'button-row' },
          h('button', { type: 'button', class: 'button small', dataset: { action: 'rename' }, onclick: () => renameKey(key.id) }, t('keys.rename')),
          h('button', { type: 'button', class: 'button small', dataset: { action: 'toggle' }, onclick: () => keyChange(key.id, { status: active ? 'disabled' : 'active' }) }, active ? t('keys.disable') : t('keys.enable')),
          h('button', { type: 'button', class: 'button small danger', dataset: { action: 'delete' }, onclick: () => deleteKey(key.id) }, t('common.delete')))),
      h('div', { class: 'form-grid key-policy' },
        modelsEditor(key, i),
        windowsEditor(key, i),
        budgetEditor(key, i),
        expiryEditor(key, i)),
      h('div', { class: 'key-month', dataset: { keyMonth: key.id } },
        h('div', { class: 'key-month-head' }, h('span', { class: 'key-month-title' }, t('keys.month')), h('span', { class: 'key-month-summary' })),
        h('div', { class: 'chart', hidden: true })));
  }
  function changedKeys() {
    clearIssues();
    renderKeys();
    updateSavebar();
  }
  function focusField(path) {
    const el = $$('#key-list [data-path]').find((e) => e.dataset.path === path);
    if (el) el.focus();
  }
  const removeButton = (action, onclick) => h('button', {
    type: 'button', class: 'button small danger', title: t('common.remove'), 'aria-label': t('common.remove'), dataset: { action }, onclick,
  }, '×');

  // Allowed models: absent is every model; entries are ids or `*` patterns.
  function modelsEditor(key, i) {
    const p = 'apiKeys[' + i + '].models';
    const models = Array.isArray(key.models) ? key.models : null;
    const entries = (models || []).map((m, j) => h('div', { class: 'field entry' },
      h('div', { class: 'entry-line' },
        input(p + '[' + j + ']', m, { list: 'key-model-ids', placeholder: t('keys.modelPlaceholder'), 'aria-label': t('keys.models') }),
        removeButton('remove-model', () => removeKeyModel(i, j)))));
    const offered = (S.draft.models || []).map((m) => m.id).filter((id) => id && id !== ADD_PATTERN && !(models || []).includes(id));
    const add = h('select', { class: 'add-model', 'aria-label': t('keys.addModel'), onchange: (ev) => addKeyModel(i, ev.target.value) },
      h('option', { value: '' }, t('keys.addModel')),
      ...offered.map((id) => h('option', { value: id }, id)),
      h('option', { value: ADD_PATTERN }, t('keys.addPattern')));
    const state = !models ? t('keys.modelsAll') : models.length ? null : t('keys.modelsNone');
    return h('div', { class: 'field wide', dataset: { issuePath: p } },
      h('span', {}, t('keys.models')),
      h('div', { class: 'entries' }, ...entries, state ? h('span', { class: 'entries-state' }, state) : null, add),
      h('span', { class: 'hint' }, t('keys.modelsHint')));
  }
  function addKeyModel(i, value) {
    if (!value) return;
    const key = S.draft.apiKeys[i];
    if (!Array.isArray(key.models)) key.models = [];
    key.models.push(value === ADD_PATTERN ? '' : value);
    changedKeys();
    if (value === ADD_PATTERN) focusField('apiKeys[' + i + '].models[' + (key.models.length - 1) + ']');
  }
  // Without entries the field goes, and the key may use every model again.
  function removeKeyModel(i, j) {
    const key = S.draft.apiKeys[i];
    key.models.splice(j, 1);
    if (!key.models.length) delete key.models;
    changedKeys();
  }

  // Request and token windows: `{"requests": N, "per": "1m"}` or `{"tokens": N, "per": "1h"}`.
  function windowKind(w) {
    if (!w || typeof w !== 'object') return '';
    if ('requests' in w) return 'requests';
    if ('tokens' in w) return 'tokens';
    return '';
  }
  function windowsEditor(key, i) {
    const p = 'apiKeys[' + i + '].limits';
    const windows = Array.isArray(key.limits) ? key.limits : [];
    return h('div', { class: 'field wide', dataset: { issuePath: p } },
      h('span', {}, t('keys.windows')),
      h('div', { class: 'windows' },
        ...windows.map((w, j) => windowRow(w, i, j)),
        windows.length ? null : h('span', { class: 'entries-state' }, t('keys.windowsNone'))),
      h('div', {}, h('button', { type: 'button', class: 'button small', dataset: { action: 'add-window' }, onclick: () => addWindow(i) }, t('keys.addWindow'))),
      h('span', { class: 'hint' }, t('keys.windowsHint')));
  }
  function windowRow(w, i, j) {
    const p = 'apiKeys[' + i + '].limits[' + j + ']';
    const kind = windowKind(w);
    const kindSelect = h('select', { 'aria-label': t('keys.kind'), dataset: { role: 'kind' }, onchange: (ev) => setWindowKind(i, j, ev.target.value) },
      kind ? null : h('option', { value: '' }, t('keys.kind.missing')),
      h('option', { value: 'requests' }, t('keys.kind.requests')),
      h('option', { value: 'tokens' }, t('keys.kind.tokens')));
    kindSelect.value = kind;
    const count = kind
      ? input(p + '.' + kind, (w || {})[kind], { type: 'number', min: 1, step: 1, 'data-type': 'int', 'aria-label': t('keys.count') })
      : h('input', { type: 'number', disabled: true, 'aria-label': t('keys.count') });
    return h('div', { class: 'window', dataset: { issuePath: p, index: String(j), fieldErrors: '' } },
      h('label', { class: 'field w-count' }, count),
      h('label', { class: 'field w-kind' }, kindSelect),
      h('label', { class: 'field w-per' }, h('span', { class: 'per-line' },
        h('span', { class: 'word' }, t('keys.per')),
        input(p + '.per', (w || {}).per, { list: 'window-lengths', placeholder: '1m', 'aria-label': t('keys.perLabel') }))),
      h('span', { class: 'usage', dataset: { window: String(j) } }),
      removeButton('remove-window', () => removeWindow(i, j)));
  }
  function setWindowKind(i, j, kind) {
    const limits = S.draft.apiKeys[i].limits;
    const { requests, tokens, ...rest } = limits[j] || {};
    const count = requests ?? tokens ?? null;
    limits[j] = Object.assign({ [kind]: count }, rest);
    changedKeys();
    focusField('apiKeys[' + i + '].limits[' + j + '].' + kind);
  }
  function addWindow(i) {
    const key = S.draft.apiKeys[i];
    if (!Array.isArray(key.limits)) key.limits = [];
    key.limits.push({ requests: 60, per: '1m' });
    changedKeys();
    focusField('apiKeys[' + i + '].limits[' + (key.limits.length - 1) + '].requests');
  }
  function removeWindow(i, j) {
    const key = S.draft.apiKeys[i];
    key.limits.splice(j, 1);
    if (!key.limits.length) delete key.limits;
    changedKeys();
  }

  // Token budget per calendar day or month (UTC); `resetAt` is written by Reset budget only.
  function budgetEditor(key, i) {
    const p = 'apiKeys[' + i + '].budget';
    const b = key.budget && typeof key.budget === 'object' ? key.budget : null;
    const saved = savedKey(key.id);
    const canReset = !!(saved && saved.budget);
    let body;
    if (b) {
      const period = h('select', { dataset: { path: p + '.per' }, 'aria-label': t('keys.period'), onchange: onFieldInput },
        h('option', { value: 'day' }, t('keys.period.day')), h('option', { value: 'month' }, t('keys.period.month')));
      showFieldValue(period, b.per);
      body = [
        h('div', { class: 'budget-line', dataset: { fieldErrors: '' } },
          h('label', { class: 'field b-tokens' }, input(p + '.tokens', b.tokens, { type: 'number', min: 1, step: 1, 'data-type': 'int', 'aria-label': t('keys.budgetTokens') })),
          h('span', { class: 'word' }, t('keys.tokensPer')),
          h('label', { class: 'field b-per' }, period),
          removeButton('remove-budget', () => removeBudget(i))),
        h('div', { class: 'budget-usage' },
          h('span', { class: 'usage', dataset: { budget: '' } }),
          canReset ? h('button', { type: 'button', class: 'button small', dataset: { action: 'reset-budget' }, onclick: () => resetBudget(key.id) }, t('keys.resetBudget')) : null),
        b.resetAt ? h('span', { class: 'hint' }, t('keys.lastReset', { when: Number.isNaN(Date.parse(b.resetAt)) ? b.resetAt : when(Date.parse(b.resetAt)) })) : null,
      ];
    } else {
      body = [
        h('span', { class: 'entries-state' }, t('keys.budgetNone')),
        h('div', {}, h('button', { type: 'button', class: 'button small', dataset: { action: 'add-budget' }, onclick: () => addBudget(i) }, t('keys.addBudget'))),
      ];
    }
    return h('div', { class: 'field wide', dataset: { issuePath: p } },
      h('span', {}, t('keys.budget')), ...body,
      h('span', { class: 'hint' }, t('keys.budgetHint')));
  }
  function addBudget(i) {
    S.draft.apiKeys[i].budget = { tokens: 1000000, per: 'month' };
    changedKeys();
    focusField('apiKeys[' + i + '].budget.tokens');
  }
  function removeBudget(i) {
    delete S.draft.apiKeys[i].budget;
    changedKeys();
  }

  // Expiry: a date-time input in the browser's time zone, kept as RFC 3339 UTC (`Z`).
  const pad = (n) => String(n).padStart(2, '0');
  function localInputValue(text) {
    const ms = text ? Date.parse(text) : NaN;
    if (Number.isNaN(ms)) return '';
    const d = new Date(ms);
    return d.getFullYear() + '-' + pad(d.getMonth() + 1) + '-' + pad(d.getDate()) + 'T' + pad(d.getHours()) + ':' + pad(d.getMinutes()) + ':' + pad(d.getSeconds());
  }
  function utcText(ms) {
    return new Date(Math.floor(ms / 1000) * 1000).toISOString().replace('.000Z', 'Z');
  }
  function expiryText(text) {
    if (!text) return t('keys.expiresNever');
    const ms = Date.parse(text);
    return t('keys.expiresStored', { utc: text }) + (ms <= Date.now() ? ' ' + t('keys.expiredNote') : '');
  }
  function expiryBadge(text) {
    const ms = text ? Date.parse(text) : NaN;
    if (Number.isNaN(ms)) return null;
    return ms <= Date.now() ? badge(t('keys.expired'), 'bad') : badge(t('keys.expiresOn', { when: when(ms) }), '');
  }
  function expiryEditor(key, i) {
    const path = 'apiKeys[' + i + '].expiresAt';
    const note = h('span', { class: 'hint expiry-note' }, expiryText(key.expiresAt));
    const never = h('button', { type: 'button', class: 'button small', dataset: { action: 'no-expiry' }, disabled: !key.expiresAt, onclick: () => { delete S.draft.apiKeys[i].expiresAt; changedKeys(); } }, t('keys.never'));
    const field = h('input', {
      type: 'datetime-local', step: 1, dataset: { path }, value: localInputValue(key.expiresAt), 'aria-label': t('keys.expires'),
      oninput: (ev) => {
        const ms = ev.target.value ? new Date(ev.target.value).getTime() : NaN;
        if (Number.isNaN(ms)) delete S.draft.apiKeys[i].expiresAt;
        else S.draft.apiKeys[i].expiresAt = utcText(ms);
        note.textContent = expiryText(S.draft.apiKeys[i].expiresAt);
        never.disabled = !S.draft.apiKeys[i].expiresAt;
        clearFieldError(ev.target);
        updateSavebar();
      },
    });
    return h('div', { class: 'field wide expiry' },
      h('span', {}, t('keys.expires')),
      h('div', { class: 'entry-line' }, field, never),
      note);
  }

  // ---------- client key usage ----------
  // Each window and budget of the draft next to what the proxy counts for it. A window shows its
  // use when it is saved as it stands in the draft and the proxy serves it; a new or changed one
  // says it is counted once saved.
  function resetTime(ms) {
    return ms - Date.now() < 86400000 ? clockTime(ms) : when(ms);
  }
  function meter(used, limit, resetMs, extra) {
    const full = used >= limit;
    return h('span', { class: 'meter' + (full ? ' full' : ''), dataset: { used: String(used), limit: String(limit) } },
      h('progress', { max: String(limit), value: Math.min(used, limit) }),
      h('span', { class: 'used' }, t('usage.used', { used: num(used), limit: num(limit) })),
      full ? badge(extra.fullText, 'bad') : null,
      extra.since ? h('span', { class: 'muted' }, t('usage.since', { time: when(extra.since) })) : null,
      h('span', { class: 'muted' }, t('usage.resets', { time: resetTime(resetMs) })));
  }
  function showKeyUsage() {
    const note = $('#key-usage-error');
    note.hidden = !S.usageError;
    note.textContent = S.usageError ? t('keys.usageUnreachable', { error: S.usageError }) : '';
    $$('#key-list .row.key').forEach((row) => {
      const key = ((S.draft && S.draft.apiKeys) || [])[Number(row.dataset.index)];
      if (!key) return;
      const live = S.usage ? S.usage.get(key.id) : null;
      const saved = savedKey(key.id) || {};
      const savedWindows = (Array.isArray(saved.limits) ? saved.limits : []).map((w) => JSON.stringify(w));
      const taken = new Set();
      $$('.usage[data-window]', row).forEach((cell) => {
        clear(cell);
        const w = (key.limits || [])[Number(cell.dataset.window)];
        const k = savedWindows.findIndex((s, n) => !taken.has(n) && s === JSON.stringify(w));
        const lw = live && k >= 0 ? live.windows[k] : null;
        if (!lw || lw.metered !== windowKind(w) || lw.limit !== w[lw.metered]) {
          if (S.usage && k < 0) cell.append(h('span', { class: 'muted' }, t('usage.notSaved')));
          return;
        }
        taken.add(k);
        cell.append(meter(lw.used, lw.limit, lw.reset_ms, { fullText: t('usage.full') }));
      });
      const cell = $('.usage[data-budget]', row);
      if (!cell) return;
      clear(cell);
      const lb = live && live.budget;
      if (lb && key.budget && lb.tokens === key.budget.tokens && lb.per === key.budget.per) {
        cell.append(meter(lb.used, lb.tokens, lb.reset_ms, { fullText: t('usage.spent'), since: lb.since_ms }));
      } else if (S.usage && !(saved.budget && JSON.stringify(saved.budget) === JSON.stringify(key.budget))) {
        cell.append(h('span', { class: 'muted' }, t('usage.notSaved')));
      }
    });
  }

  // The time on control's clock (from the Date of its answers) when the browser's is more than
  // two seconds off, so that a reset never lies in the proxy's future.
  function noteServerClock(res) {
    const server = Date.parse(res.headers.get('date') || '');
    if (Number.isNaN(server)) return;
    const offset = server - Date.now();
    S.clockOffset = Math.abs(offset) > 2000 ? offset : 0;
  }
  async function resetBudget(id) {
    const body = [h('p', {}, t('keys.resetBody'))];
    if (dirty()) body.push(h('p', {}, t('keys.resetUnsaved')));
    const choice = await dialog(t('keys.resetTitle', { id }), body,
      [{ label: t('keys.resetBudget'), value: 'ok', kind: 'primary' }, { label: t('common.cancel'), value: 'cancel' }]);
    if (choice !== 'ok') return;
    const config = clone(S.server.config);
    const key = (config.apiKeys || []).find((k) => k.id === id);
    if (!key || !key.budget) return;
    key.budget.resetAt = utcText(Date.now() + (S.clockOffset || 0));
    const unsaved = dirty() ? S.draft : null;
    const started = performance.now();
    try {
      const data = await putConfig(JSON.stringify(config, null, 2));
      if (!data) return;
      adoptSaved(data);
      S.draft = clone(data.config);
      if (unsaved) {
        const draftKey = (Array.isArray(unsaved.apiKeys) ? unsaved.apiKeys : []).find((k) => k && k.id === id);
        if (draftKey && draftKey.budget) draftKey.budget.resetAt = key.budget.resetAt;
        S.draft = unsaved;
      }
      S.json = null;
      renderDraft();
      toast(t('keys.resetDone'), 'ok');
      await waitForProxy(data.sha256, started);
      await refreshKeyUsage();
    } catch (err) {
      if (err.issues && err.issues.length) showIssues(err.issues);
      toast(err.message, 'bad');
    }
  }

  // A key operation saves config.json at once: the draft takes the new key list and ETag, and
  // keeps its unsaved edits of each key's other fields (`renamed`: `{from, to}` of a rename).
  async function afterKeyChange(renamed) {
    const { data } = await api('GET', 'config');
    const unsaved = dirty() ? clone(S.draft) : null;
    S.server = data;
    S.draft = clone(data.config);
    if (unsaved) {
      const before = (id) => (renamed && id === renamed.to ? renamed.from : id);
      const drafted = Array.isArray(unsaved.apiKeys) ? unsaved.apiKeys : [];
      unsaved.apiKeys = (data.config.apiKeys || []).map((k) => {
        const was = drafted.find((u) => u && u.id === before(k.id));
        return was ? Object.assign({}, was, { id: k.id, key: k.key, status: k.status }) : k;
      });
      S.draft = unsaved;
    }
    S.json = null;
    renderDraft();
    await enterKeys();
  }
  async function createKey(ev) {
    ev.preventDefault();
    const form = ev.target;
    const id = form.elements.id.value.trim();
    if (!id) return;
    try {
      const { data } = await api('POST', 'keys', { id });
      form.reset();
      await afterKeyChange();
      const field = h('input', { value: data.key, readonly: true, id: 'new-key-value' });
      await dialog(t('keys.createdTitle', { id: data.id }), [
        h('p', {}, t('keys.createdBody')),
        h('div', { class: 'secret-box' }, field, h('button', {
          type: 'button', class: 'button', onclick: async () => {
            field.select();
            try { await navigator.clipboard.writeText(data.key); toast(t('keys.copied'), 'ok'); } catch (_) { document.execCommand('copy'); }
          },
        }, t('keys.copy'))),
      ], [{ label: t('common.done'), value: 'ok', kind: 'primary' }]);
    } catch (err) { toast(err.message, 'bad'); }
  }
  async function keyChange(id, change, renamed) {
    try {
      await api('PATCH', 'keys/' + encodeURIComponent(id), change);
      await afterKeyChange(renamed);
      toast(t('save.saved'), 'ok');
    } catch (err) { toast(err.message, 'bad'); }
  }
  async function renameKey(id) {
    const field = h('input', { value: id, id: 'rename-key-value' });
    const choice = await dialog(t('keys.renameTitle', { id }), [labelled(t('keys.newId'), field)],
      [{ label: t('keys.rename'), value: 'ok', kind: 'primary' }, { label: t('common.cancel'), value: 'cancel' }]);
    const next = field.value.trim();
    if (choice === 'ok' && next && next !== id) keyChange(id, { id: next }, { from: id, to: next });
  }
  async function deleteKey(id) {
    const choice = await dialog(t('keys.deleteTitle', { id }), h('p', {}, t('keys.deleteBody')),
      [{ label: t('common.delete'), value: 'ok', kind: 'primary danger' }, { label: t('common.cancel'), value: 'cancel' }]);
    if (choice !== 'ok') return;
    try {
      await api('DELETE', 'keys/' + encodeURIComponent(id));
      await afterKeyChange();
      toast(t('keys.deleted'), 'ok');
    } catch (err) { toast(err.message, 'bad'); }
  }

  // ---------- upstream auth ----------
  async function verifyAuth() {
    const out = $('#verify-result');
    out.hidden = false;
    out.className = 'result';
    out.textContent = t('auth.verifying');
    try {
      const { data } = await api('POST', 'auth/verify', { auth: S.draft.auth });
      out.className = 'result ' + (data.ok ? 'ok' : 'bad');
      out.textContent = data.ok
        ? t('auth.verified', { mode: data.mode }) + (data.expires_at_ms ? ' ' + t('auth.expires', { when: when(data.expires_at_ms) }) : '')
        : t('auth.failed', { mode: data.mode, error: data.error_code === 'timed_out' ? t('auth.timedOut', { s: data.timeout_s }) : data.error || '' });
    } catch (err) {
      out.className = 'result bad';
      out.textContent = err.issues.length ? err.issues.map((i) => i.path + ': ' + i.message).join('; ') : err.message;
    }
  }

  // ---------- domain and TLS ----------
  async function enterTls() {
    try {
      const { data } = await api('GET', 'caddy');
      renderTls(data);
    } catch (err) { toast(err.message, 'bad'); }
  }
  // The hint names the ports and the kind of certificate this Caddy is set up for.
  function tlsHint(c) {
    const https = getPath(S.draft || {}, 'server.caddy.httpsPort') || 443;
    return t(c.tls_internal ? 'tls.hintInternal' : 'tls.hintAcme', { http: c.http_port, https });
  }
  // Days left, or hours when under two days (Caddy's internal certificates last 12 hours and
  // are renewed by Caddy itself).
  function certificateLeft(cert) {
    const ms = cert.not_after_ms - Date.now();
    const hours = Math.floor(ms / 3600000);
    const text = hours < 48 ? t('tls.hoursLeft', { n: Math.max(0, hours) }) : t('tls.daysLeft', { n: Math.floor(hours / 24) });
    const internal = cert.issuer_key === 'local';
    return badge(text, ms < 0 ? 'bad' : internal || hours >= 14 * 24 ? 'ok' : 'warn');
  }
  function renderTls(c) {
    $('#tls-hint').textContent = tlsHint(c);
    const f = clear($('#facts-tls'));
    if (!c.managed) {
      fact(f, t('overview.state'), badge(t('overview.notManaged'), ''));
    } else {
      fact(f, t('tls.adminApi'), h('span', {}, c.reachable ? badge(t('overview.reachable'), 'ok') : badge(t('overview.unreachable'), 'bad'), ' ', h('span', { class: 'mono' }, c.admin_url || '')));
      if (c.reach_error && !c.reachable) fact(f, t('col.message'), translated('caddyError.' + c.reach_error_code, c.reach_error_params, c.reach_error));
      const last = c.loader.last_load;
      fact(f, t('overview.lastLoad'), last
        ? h('span', {}, badge(last.ok ? t('overview.loaded') : t('overview.refused'), last.ok ? 'ok' : 'bad'), ' ', when(last.at_ms))
        : (c.loader.waiting ? t('tls.waiting', { n: c.loader.waiting.attempts }) : '—'));
      if (last && last.error) fact(f, t('tls.caddySays'), h('span', { class: 'mono' }, last.error));
      fact(f, t('tls.inSync'), c.pending ? badge(t('overview.pending'), 'warn') : badge(t('tls.yes'), 'ok'));
    }
    fact(f, t('tls.proxyHealth'), c.proxy_health === true ? badge(t('tls.healthy'), 'ok') : c.proxy_health === false ? badge(t('tls.unhealthy'), 'bad') : badge(t('overview.unreachable'), 'bad'));
    fact(f, t('tls.proxyUpstream'), h('span', {}, h('span', { class: 'mono' }, c.proxy_upstream), c.proxy_upstream_from_env ? ' ' + t('tls.fromEnv') : ''));
    fact(f, 'Caddyfile', h('span', { class: 'mono' }, c.caddyfile_path));
    fact(f, t('tls.storage'), h('span', { class: 'mono' }, c.storage_dir));

    const loads = clear($('#loads-table tbody'));
    if (!c.loader.history.length) loads.append(h('tr', {}, h('td', { colspan: 5, class: 'empty' }, t('tls.noLoads'))));
    for (const l of c.loader.history) {
      loads.append(h('tr', {}, h('td', {}, when(l.at_ms)), h('td', {}, badge(l.ok ? t('overview.loaded') : t('overview.refused'), l.ok ? 'ok' : 'bad')),
        h('td', {}, t('reason.' + l.reason)), h('td', {}, duration(l.took_ms)), h('td', { class: 'wrap mono' }, l.error || '')));
    }
    const ups = clear($('#caddy-upstreams tbody'));
    const list = Array.isArray(c.upstreams) ? c.upstreams : [];
    if (!list.length) ups.append(h('tr', {}, h('td', { colspan: 3, class: 'empty' }, '—')));
    for (const u of list) ups.append(h('tr', {}, h('td', { class: 'mono' }, u.address), h('td', {}, num(u.num_requests)), h('td', {}, num(u.fails))));

    const certs = clear($('#certs-table tbody'));
    if (!c.certificates.length) certs.append(h('tr', {}, h('td', { colspan: 3, class: 'empty' }, t('tls.noCerts'))));
    for (const cert of c.certificates) {
      const issuer = cert.issuer_key === 'local' ? cert.issuer + ' · ' + t('tls.internalCa') : cert.issuer;
      certs.append(h('tr', {}, h('td', { class: 'mono' }, cert.names.join(', ')), h('td', {}, issuer),
        h('td', { class: 'cert-validity', title: when(cert.not_before_ms) + ' – ' + when(cert.not_after_ms) }, when(cert.not_after_ms), ' ', certificateLeft(cert))));
    }
    const log = clear($('#tls-log tbody'));
    if (!c.tls_log.length) log.append(h('tr', {}, h('td', { colspan: 4, class: 'empty' }, t('tls.noLog'))));
    for (const line of c.tls_log) {
      const extra = Object.entries(line.fields).map(([k, v]) => k + '=' + (typeof v === 'string' ? v : JSON.stringify(v))).join(' ');
      log.append(h('tr', {}, h('td', {}, when(line.ts_ms)), h('td', {}, badge(line.level, line.level === 'error' ? 'bad' : line.level === 'warn' ? 'warn' : '')),
        h('td', { class: 'mono' }, line.logger), h('td', { class: 'wrap' }, line.msg, extra ? h('div', { class: 'mono muted' }, extra) : null)));
    }
    for (const table of ['#loads-table', '#caddy-upstreams', '#certs-table', '#tls-log']) stackLabels($(table));
  }
  async function showCaddyfile() {
    try {
      const res = await fetch(apiUrl('caddy/caddyfile'), { credentials: 'same-origin' });
      if (!res.ok) throw new ApiError(res.status, await res.json().catch(() => null));
      const text = await res.text();
      await dialog('Caddyfile', h('pre', {}, text), [{ label: t('common.done'), value: 'ok', kind: 'primary' }]);
    } catch (err) { toast(err.message, 'bad'); }
  }
  async function reloadCaddy() {
    try {
      await api('POST', 'caddy/reload');
      toast(t('tls.reloadAsked'), 'ok');
      setTimeout(enterTls, 800);
    } catch (err) { toast(err.message, 'bad'); }
  }

  // ---------- usage history ----------
  // The proxy's usage history (GET usage: sparse points per step, per group) drawn with
  // charts.js: the statistics page for a chosen range, the overview's last hour, and each key's
  // month. Days are UTC days, as the proxy's buckets and the key budgets count them.
  const Charts = window.GatewayCharts;
  const MINUTE = 60000;
  const HOUR = 3600000;
  const DAY = 86400000;
  // Each range of the statistics page: how far back from now, the step of its points, and how
  // often auto-refresh reads it again.
  const RANGES = {
    '1h': { span: HOUR, step: '1m', refresh: 5000 },
    '24h': { span: DAY, step: '5m', refresh: 30000 },
    '7d': { span: 7 * DAY, step: '1h', refresh: 60000 },
    '30d': { span: 30 * DAY, step: '6h', refresh: 300000 },
    month: { step: '1d', refresh: 300000 },
    custom: { step: 'auto' },
  };
  // Groups drawn apart in a stacked chart; the rest is summed as "others".
  const STACKED_GROUPS = 7;

  const locale = () => (lang() === 'zh' ? 'zh-CN' : 'en');
  const compact = (v) => new Intl.NumberFormat(locale(), { notation: 'compact', maximumFractionDigits: 1 }).format(v);
  const percent = (v) => (v === null || v === undefined ? '—'
    : new Intl.NumberFormat(locale(), { style: 'percent', maximumFractionDigits: 1 }).format(v));
  function millis(v) {
    if (v === null || v === undefined) return '—';
    if (v < 1000) return new Intl.NumberFormat(locale(), { maximumFractionDigits: v < 10 ? 1 : 0 }).format(v) + ' ' + t('unit.ms');
    return new Intl.NumberFormat(locale(), { maximumFractionDigits: 2 }).format(v / 1000) + ' ' + t('unit.s');
  }
  function axisMillis(v) {
    return v < 1000 ? compact(v) + ' ' + t('unit.ms') : compact(v / 1000) + ' ' + t('unit.s');
  }
  const errorCount = (p) => Object.values((p && p.errors) || {}).reduce((a, b) => a + b, 0);
  const tokenCount = (p) => (p ? (p.prompt_tokens || 0) + (p.completion_tokens || 0) : 0);
  const pct = (p, field, q) => (p && p[field] && p[field][q] !== undefined ? p[field][q] : null);

  // Time labels for a chart of `stepMs` steps over `spanMs`: days (UTC) for daily steps,
  // otherwise local times, with the date once the span is longer than a day.
  function timeFormats(stepMs, spanMs) {
    const daily = stepMs >= DAY;
    const fmt = (options) => new Intl.DateTimeFormat(locale(), Object.assign(daily ? { timeZone: 'UTC' } : { hourCycle: 'h23' }, options));
    const axis = daily ? fmt({ month: 'short', day: 'numeric' })
      : spanMs > DAY ? fmt({ month: 'numeric', day: 'numeric', hour: '2-digit', minute: '2-digit' })
        : fmt({ hour: '2-digit', minute: '2-digit' });
    const legend = daily ? fmt({ year: 'numeric', month: 'short', day: 'numeric', weekday: 'short' })
      : fmt({ month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' });
    return { utc: daily, axisTime: (v) => axis.format(v), legendTime: (v) => legend.format(v) };
  }
  function stepText(ms) {
    if (ms % DAY === 0) return t('history.stepDays', { n: num(ms / DAY) });
    if (ms % HOUR === 0) return t('history.stepHours', { n: num(ms / HOUR) });
    return t('history.stepMinutes', { n: num(Math.round(ms / MINUTE)) });
  }

  function usageParams(query) {
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== null && v !== '') params.set(k, String(v));
    return params.toString();
  }
  // In blob mode every replica's history (control merges the copies each replica makes to Blob
  // Storage), else this proxy's.
  const blobMode = () => !!(S.session && S.session.persistence === 'blob');
  const usagePath = () => (blobMode() ? 'usage/merged' : 'usage');
  async function readUsage(query) {
    showReplicasNotes();
    const { data } = await api('GET', usagePath() + '?' + usageParams(query));
    return data;
  }
  // In blob mode, says that the figures are every replica's as of its last copy.
  function showReplicasNotes() {
    const stats = S.server && S.server.config && S.server.config.stats;
    const text = blobMode() ? t('history.replicas', { interval: (stats && stats.flushInterval) || '30s' }) : '';
    $$('[data-replicas-note]').forEach((el) => { el.hidden = !text; el.textContent = text; });
  }
  // What a refused or failed usage query means to the operator.
  const historyOff = (err) => err.code === 'usage_history_off';
  function usageErrorText(err) {
    if (historyOff(err)) return t('history.off');
    return err.status === 400 ? t('history.refused', { error: err.message }) : t('history.unreachable', { error: err.message });
  }

  // The steps of an answer, each a point of every chart (the proxy's points are sparse).
  function answerSteps(answer) { return Charts.steps(answer.from, answer.to, answer.step_ms); }
  function seriesOf(answer, group) {
    return (answer.series || []).find((s) => s.group === group) || null;
  }

  // A chart spec of `series` over `xs`, with this page's formatting.
  function chartSpec(xs, answer, series, extra) {
    return Object.assign({
      x: xs, xRange: [answer.from, answer.to], series, height: 200, timeLabel: t('col.time'),
      format: num, axisFormat: compact, format2: num, axisFormat2: compact,
    }, timeFormats(answer.step_ms, answer.to - answer.from), extra || {});
  }

  // A group's name; requests refused before it was known are under "".
  const groupName = (group) => (group === '' ? t('history.unnamed') : group);
  // Tokens per step of each group with tokens, the largest first; beyond STACKED_GROUPS, one
  // "others".
  function stackedTokens(xs, answer) {
    const groups = (answer.series || []).filter((g) => tokenCount(g.total) > 0)
      .sort((a, b) => tokenCount(b.total) - tokenCount(a.total) || b.total.requests - a.total.requests);
    const shown = groups.slice(0, groups.length > STACKED_GROUPS + 1 ? STACKED_GROUPS : groups.length);
    const rest = groups.slice(shown.length);
    const series = shown.map((g, i) => ({
      key: g.group, label: groupName(g.group), color: Charts.color(i), kind: 'area',
      values: Charts.column(xs, g.points, tokenCount, 0),
    }));
    if (!series.length) series.push({ key: null, label: t('stats.totalTokens'), color: Charts.color(0), kind: 'area', values: xs.map(() => 0) });
    if (rest.length) {
      const columns = rest.map((g) => Charts.column(xs, g.points, tokenCount, 0));
      series.push({
        key: null, label: t('history.others', { n: rest.length }), color: Charts.OTHERS, kind: 'area',
        values: xs.map((_, i) => columns.reduce((sum, c) => sum + c[i], 0)),
      });
    }
    return series;
  }

  // ---------- statistics ----------
  // The chosen range as `{from, to, step}` (ms, ms, a step name), or an error text.
  function chosenRange() {
    const form = $('#usage-range');
    const name = form.elements.range.value;
    const range = RANGES[name] || RANGES['1h'];
    const now = Date.now();
    if (name === 'custom') {
      const from = Date.parse(form.elements.from.value);
      const to = Date.parse(form.elements.to.value);
      if (Number.isNaN(from) || Number.isNaN(to)) return { error: t('history.customMissing') };
      if (from >= to) return { error: t('history.customOrder') };
      return { from, to, step: range.step };
    }
    if (name === 'month') {
      const d = new Date(now);
      return { from: Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1), to: now, step: range.step };
    }
    return { from: now - range.span, to: now, step: range.step };
  }
  function fillUsageFilters() {
    const form = $('#usage-range');
    const fill = (select, values) => {
      const keep = select.value;
      clear(select).append(h('option', { value: '' }, t('requests.all')), ...values.map((v) => h('option', { value: v }, v)));
      select.value = values.includes(keep) ? keep : '';
    };
    fill(form.elements.model, ((S.draft && S.draft.models) || []).map((m) => m.id).filter(Boolean));
    fill(form.elements.key, ((S.draft && S.draft.apiKeys) || []).map((k) => k && k.id).filter(Boolean));
  }
  // Shows the custom fields with the range they stand for when first chosen.
  function onRangeChange() {
    const form = $('#usage-range');
    const custom = form.elements.range.value === 'custom';
    $$('.usage-custom', form).forEach((el) => { el.hidden = !custom; });
    if (custom && !form.elements.from.value) {
      const to = Math.ceil(Date.now() / MINUTE) * MINUTE;
      form.elements.from.value = localInputValue(new Date(to - DAY).toISOString()).slice(0, 16);
      form.elements.to.value = localInputValue(new Date(to).toISOString()).slice(0, 16);
    }
  }

  async function enterStats() {
    fillUsageFilters();
    onRangeChange();
    await refreshUsage();
  }
  // Auto-refresh: read the range again once its refresh interval has passed.
  function tickStats() {
    const range = RANGES[$('#usage-range').elements.range.value];
    if (!range || !range.refresh || Date.now() - S.usageShownAt < range.refresh - 500) return;
    refreshUsage();
  }
  // Reads `query`; when the proxy keeps no data as fine as the range's step this far back (its
  // retention is configurable), reads it again with the step it chooses.
  async function readUsageAnyStep(query) {
    try {
      return await readUsage(query);
    } catch (err) {
      if (err.status !== 400 || err.param !== 'step' || query.step === 'auto') throw err;
      return readUsage(Object.assign({}, query, { step: 'auto' }));
    }
  }
  async function refreshUsage() {
    const form = $('#usage-range');
    const errorNote = $('#usage-error');
    const range = chosenRange();
    const seq = ++S.usageSeq;
    if (range.error) {
      errorNote.hidden = false;
      errorNote.className = 'result bad';
      errorNote.textContent = range.error;
      return;
    }
    const group = form.elements.group.value;
    const base = { from: range.from, to: range.to, step: range.step, model: form.elements.model.value, key: form.elements.key.value };
    const csvLink = (step) => apiUrl(usagePath() + '?' + usageParams(Object.assign({}, base, { step, group_by: group, format: 'csv' }))).toString();
    $('#usage-csv').href = csvLink(base.step);
    try {
      const all = await readUsageAnyStep(base);
      // The step the proxy answered with, for every query of what is shown.
      const shown = Object.assign({}, base, { step: Math.round(all.step_ms / MINUTE) + 'm' });
      const [byModel, byKey] = await Promise.all([
        readUsage(Object.assign({}, shown, { group_by: 'model' })),
        readUsage(Object.assign({}, shown, { group_by: 'key' })),
      ]);
      if (seq !== S.usageSeq) return;
      $('#usage-csv').href = csvLink(shown.step);
      S.usageShownAt = Date.now();
      errorNote.hidden = true;
      $('#usage-charts').hidden = false;
      renderUsage(all, group === 'key' ? byKey : byModel, group, byModel, byKey);
    } catch (err) {
      if (seq !== S.usageSeq) return;
      S.usageShownAt = Date.now();
      errorNote.hidden = false;
      errorNote.className = historyOff(err) ? 'result' : 'result bad';
      errorNote.textContent = usageErrorText(err);
      $('#usage-charts').hidden = true;
      clear($('#stats-totals'));
      for (const table of ['#stats-models', '#stats-keys']) { clear($(table + ' thead')); clear($(table + ' tbody')); }
      $('#usage-shown').textContent = '';
    }
  }

  function renderUsage(all, grouped, group, byModel, byKey) {
    const total = all.total || {};
    const requests = total.requests || 0;
    const errors = errorCount(total);
    const totals = clear($('#stats-totals'));
    for (const [label, value, id, detail] of [
      [t('stats.requests'), num(requests), 'total-requests'],
      [t('stats.errors'), num(errors), 'total-errors', requests ? t('history.rate', { rate: percent(errors / requests) }) : null],
      [t('history.rateLimited'), num(total.rate_limited || 0), 'total-429'],
      [t('stats.totalTokens'), num(tokenCount(total)), 'total-tokens'],
      [t('history.latencyP50'), millis(pct(total, 'latency_ms', 'p50')), 'total-latency', t('history.p99', { value: millis(pct(total, 'latency_ms', 'p99')) })],
      [t('history.ttfbP50'), millis(pct(total, 'ttfb_ms', 'p50')), 'total-ttfb', t('history.p99', { value: millis(pct(total, 'ttfb_ms', 'p99')) })],
    ]) {
      totals.append(h('div', { class: 'card' }, h('div', { class: 'muted' }, label), h('div', { class: 'stat-big', id }, value),
        detail ? h('div', { class: 'muted' }, detail) : null));
    }
    $('#usage-shown').textContent = t('history.shown', { from: when(all.from), to: when(all.to), step: stepText(all.step_ms) })
      + (all.step_ms >= DAY ? ' ' + t('history.utcDays') : '') + (requests ? '' : ' ' + t('history.noneInRange'));

    const xs = answerSteps(all);
    const one = seriesOf(all, 'all') || { points: [] };
    const meta = { from: all.from, to: all.to, step_ms: all.step_ms };
    const spec = (series, extra) => chartSpec(xs, all, series, Object.assign({ meta }, extra));
    const line = (key, label, color, pick, empty) => ({ key, label, color, kind: 'line', points: empty === null, values: Charts.column(xs, one.points, pick, empty) });
    Charts.draw($('#chart-requests'), 'usage-requests', spec([
      { key: 'requests', label: t('stats.requests'), color: Charts.color(0), kind: xs.length <= 120 ? 'bars' : 'area',
        values: Charts.column(xs, one.points, (p) => p.requests, 0) },
    ]));
    $('#chart-tokens-title').textContent = t(group === 'key' ? 'history.chart.tokensByKey' : 'history.chart.tokensByModel');
    Charts.draw($('#chart-tokens'), 'usage-tokens', chartSpec(answerSteps(grouped), grouped, stackedTokens(answerSteps(grouped), grouped),
      { stacked: true, meta: Object.assign({ group_by: group }, meta) }));
    Charts.draw($('#chart-errors'), 'usage-errors', spec([
      line('errors', t('stats.errors'), '#b42318', errorCount, 0),
      line('rate_limited', t('history.rateLimited'), '#d97706', (p) => p.rate_limited || 0, 0),
    ]));
    Charts.draw($('#chart-latency'), 'usage-latency', spec([
      line('p50', 'p50', Charts.color(0), (p) => pct(p, 'latency_ms', 'p50'), null),
      line('p99', 'p99', Charts.color(3), (p) => pct(p, 'latency_ms', 'p99'), null),
    ], { format: millis, axisFormat: axisMillis, whole: false }));
    Charts.draw($('#chart-ttfb'), 'usage-ttfb', spec([
      line('p50', 'p50', Charts.color(1), (p) => pct(p, 'ttfb_ms', 'p50'), null),
      line('p99', 'p99', Charts.color(2), (p) => pct(p, 'ttfb_ms', 'p99'), null),
    ], { format: millis, axisFormat: axisMillis, whole: false }));

    usageTable('#stats-models', 'stats.model', byModel);
    usageTable('#stats-keys', 'stats.key', byKey);
  }

  // Columns of the per-model and per-key tables: heading key and cell text of a total.
  // (The CSV download holds every field.)
  const USAGE_COLUMNS = [
    ['stats.requests', (c) => num(c.requests), 'requests'],
    ['stats.errors', (c) => num(errorCount(c)), 'errors'],
    ['history.rateLimited', (c) => num(c.rate_limited || 0), 'rate_limited'],
    ['stats.cancelled', (c) => num(c.cancelled)],
    ['stats.prompt', (c) => num(c.prompt_tokens)],
    ['stats.completion', (c) => num(c.completion_tokens)],
    ['stats.totalTokens', (c) => num(tokenCount(c)), 'tokens'],
    ['history.latencyP50', (c) => millis(pct(c, 'latency_ms', 'p50')), 'p50'],
    ['history.latencyP90', (c) => millis(pct(c, 'latency_ms', 'p90')), 'p90'],
    ['history.latencyP99', (c) => millis(pct(c, 'latency_ms', 'p99')), 'p99'],
    ['history.ttfbP50', (c) => millis(pct(c, 'ttfb_ms', 'p50'))],
  ];
  function usageTable(table, first, answer) {
    clear($(table + ' thead')).append(h('tr', {}, h('th', {}, t(first)), ...USAGE_COLUMNS.map(([k]) => h('th', {}, t(k)))));
    const body = clear($(table + ' tbody'));
    const series = answer.series || [];
    if (!series.length) body.append(h('tr', {}, h('td', { colspan: USAGE_COLUMNS.length + 1, class: 'empty' }, t('history.noneInRange'))));
    for (const s of series) {
      body.append(h('tr', { dataset: { name: s.group } },
        h('td', { class: 'name', 'data-label': t(first) }, h('strong', {}, groupName(s.group))),
        ...USAGE_COLUMNS.map(([k, text, col]) => h('td', { 'data-label': t(k), dataset: col ? { col } : undefined }, text(s.total || {})))));
    }
  }

  // ---------- overview: the last hour ----------
  // Requests, tokens and error rate of the last hour, a point a minute, beside their totals.
  async function refreshSparks() {
    const box = $('#sparks');
    const now = Date.now();
    try {
      const answer = await readUsage({ from: now - HOUR, to: now, step: '1m' });
      renderSparks(answer);
    } catch (err) {
      for (const id of ['spark-requests', 'spark-tokens', 'spark-errors']) Charts.remove(id);
      clear(box).append(h('p', { class: 'muted' }, usageErrorText(err)));
    }
  }
  function renderSparks(answer) {
    const box = $('#sparks');
    const xs = answerSteps(answer);
    const points = (seriesOf(answer, 'all') || { points: [] }).points;
    const total = answer.total || {};
    const errors = errorCount(total);
    const rows = [
      ['requests', t('stats.requests'), num(total.requests || 0), Charts.column(xs, points, (p) => p.requests, 0), Charts.color(0)],
      ['tokens', t('stats.totalTokens'), num(tokenCount(total)), Charts.column(xs, points, tokenCount, 0), Charts.color(1)],
      ['errors', t('overview.errorRate'), total.requests ? percent(errors / total.requests) : '—',
        Charts.column(xs, points, (p) => (p.requests ? errorCount(p) / p.requests : null), null), '#b42318'],
    ];
    if (!$('.spark', box)) {
      clear(box);
      for (const [name] of rows) {
        box.append(h('div', { class: 'spark', dataset: { spark: name } },
          h('span', { class: 'spark-label' }), h('span', { class: 'spark-value', id: 'spark-value-' + name }),
          h('div', { class: 'spark-chart', id: 'spark-' + name })));
      }
    }
    for (const [name, label, value, values, color] of rows) {
      const row = $('.spark[data-spark="' + name + '"]', box);
      $('.spark-label', row).textContent = label;
      $('.spark-value', row).textContent = value;
      Charts.sparkline($('.spark-chart', row), 'spark-' + name, {
        // A rate is only known in minutes with requests: each shows as a dot.
        x: xs, xRange: [answer.from, answer.to], series: [{ key: name, label, values, color, points: name === 'errors' }], height: 36,
        meta: { from: answer.from, to: answer.to, step_ms: answer.step_ms },
      });
    }
  }
  // The image compressor's counters since the proxy started.
  function renderImageFacts(stats) {
    const dl = clear($('#facts-images'));
    const im = stats && stats.images;
    if (!im) { fact(dl, t('overview.state'), '—'); return; }
    const saved = Math.max(0, (im.bytes_before || 0) - (im.bytes_after || 0));
    fact(dl, t('images.seen'), h('span', { id: 'images-seen' }, num(im.seen)));
    fact(dl, t('images.compressed'), h('span', { id: 'images-compressed' }, num(im.compressed)));
    fact(dl, t('images.saved'), h('span', { id: 'images-saved' }, bytesText(saved)
      + (im.bytes_before ? ' (' + percent(saved / im.bytes_before) + ')' : '')));
    fact(dl, t('images.timeSpent'), h('span', { id: 'images-time' }, millis(im.work_ms || 0)));
    fact(dl, t('stats.since'), when(im.since_ms));
  }
  function bytesText(n) {
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    let v = n;
    while (v >= 1024 && i < units.length - 1) { v /= 1024; i += 1; }
    return new Intl.NumberFormat(locale(), { maximumFractionDigits: i ? 1 : 0 }).format(v) + ' ' + units[i];
  }

  // ---------- client keys: this month ----------
  // Each key's use this month (UTC), from one query grouped by key, a point a day.
  function monthStart(now) {
    const d = new Date(now);
    return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1);
  }
  async function refreshKeyMonth() {
    const now = Date.now();
    S.keyMonthAt = now;
    try {
      S.keyMonth = await readUsage({ from: monthStart(now), to: now, step: '1d', group_by: 'key' });
      S.keyMonthError = null;
      S.keyMonthOff = false;
    } catch (err) {
      S.keyMonth = null;
      // Without a history there is no month to show, which is no error.
      S.keyMonthOff = historyOff(err);
      S.keyMonthError = S.keyMonthOff ? null : usageErrorText(err);
    }
    showKeyMonth();
  }
  function showKeyMonth() {
    const note = $('#key-month-error');
    note.hidden = !S.keyMonthError;
    note.textContent = S.keyMonthError || '';
    const answer = S.keyMonth;
    $$('#key-list .key-month').forEach((box) => {
      box.hidden = S.keyMonthOff;
      const id = box.dataset.keyMonth;
      const chartId = 'key-month:' + id;
      const summary = $('.key-month-summary', box);
      const chart = $('.chart', box);
      const series = answer ? seriesOf(answer, id) : null;
      if (!series || !series.total || !series.total.requests) {
        summary.textContent = answer ? t('keys.monthNone') : '—';
        chart.hidden = true;
        Charts.remove(chartId);
        return;
      }
      const c = series.total;
      summary.textContent = t('keys.monthSummary', { requests: num(c.requests), tokens: num(tokenCount(c)), errors: num(errorCount(c)) });
      chart.hidden = false;
      const from = monthStart(answer.from);
      const next = new Date(from);
      next.setUTCMonth(next.getUTCMonth() + 1);
      const xs = Charts.steps(from, next.getTime(), DAY);
      // Days still to come have no value yet, rather than none.
      const sofar = (values) => values.map((v, i) => (xs[i] < answer.to ? v : null));
      Charts.draw(chart, chartId, Object.assign({
        x: xs, xRange: [from, next.getTime()], height: 150, timeLabel: t('col.time'), format: num, axisFormat: compact, format2: num, axisFormat2: compact,
        meta: { key: id, from: answer.from, to: answer.to, step_ms: answer.step_ms },
        series: [
          { key: 'tokens', label: t('stats.totalTokens'), color: Charts.color(0), kind: 'bars', values: sofar(Charts.column(xs, series.points, tokenCount, 0)) },
          { key: 'requests', label: t('stats.requests'), color: Charts.color(2), kind: 'line', scale: 'y2', values: sofar(Charts.column(xs, series.points, (p) => p.requests, 0)) },
        ],
      }, timeFormats(DAY, next.getTime() - from)));
    });
  }

  // ---------- recent requests ----------
  function fillRequestFilters() {
    const form = $('#requests-filters');
    const fill = (select, values) => {
      const keep = select.value;
      clear(select).append(h('option', { value: '' }, t('requests.all')), ...values.map((v) => h('option', { value: v }, v)));
      select.value = values.includes(keep) ? keep : '';
    };
    fill(form.elements.model, (S.draft.models || []).map((m) => m.id));
    fill(form.elements.key_id, (S.draft.apiKeys || []).map((k) => k.id));
  }
  async function enterRequests() {
    const form = $('#requests-filters');
    const params = new URLSearchParams();
    for (const name of ['level', 'model', 'key_id', 'request_id', 'limit']) {
      const v = form.elements[name].value.trim();
      if (v) params.set(name, v);
    }
    const since = form.elements.since.value;
    if (since) params.set('since', String(Date.now() - Number(since)));
    try {
      const { data } = await api('GET', 'requests?' + params.toString());
      renderRequests(data.data || []);
    } catch (err) { toast(err.message, 'bad'); }
  }
  function renderRequests(rows) {
    const body = clear($('#requests-table tbody'));
    if (!rows.length) body.append(h('tr', {}, h('td', { colspan: 10, class: 'empty' }, t('requests.none'))));
    // Each cell is labelled for the stacked rows of a narrow window.
    const cell = (label, attrs, ...content) => h('td', Object.assign({ dataset: { label: t(label) } }, attrs), ...content);
    for (const r of rows) {
      const kind = r.outcome === 'ok' ? 'ok' : r.outcome === 'cancelled' ? 'warn' : 'bad';
      const retried = (r.attempts || []).length > 1;
      // A model that is not configured (or not allowed to the key) shows as the client sent it.
      const model = r.model || (r.requested_model
        ? h('span', { class: 'requested-model', title: t('requests.requestedModel') }, r.requested_model)
        : '—');
      body.append(h('tr', { class: retried ? 'with-attempts' : null },
        cell('col.time', { title: r.time }, when(r.time_ms)),
        cell('col.status', {}, badge(String(r.status) + (r.outcome === 'cancelled' ? ' ' + t('requests.cancelled') : ''), kind)),
        cell('col.model', { class: 'breakable', title: r.deployment ? '→ ' + r.deployment : '' }, model),
        cell('col.key', { class: 'breakable' }, r.key_id || '—'),
        cell('col.route', {}, r.route, r.stream ? ' ' : '', r.stream ? badge('SSE', '') : null),
        cell('col.latency', {}, duration(r.latency_ms)),
        cell('col.ttfb', {}, r.ttfb_ms === null || r.ttfb_ms === undefined ? '—' : duration(r.ttfb_ms)),
        cell('col.tokens', {}, r.usage ? num(r.usage.total_tokens) : '—'),
        cell('col.requestId', { class: 'mono breakable request-id', title: r.upstream_request_id ? t('requests.upstreamRequestId', { id: r.upstream_request_id }) : null }, r.request_id),
        cell('col.message', { class: 'wrap' }, r.error || '')));
      if (retried) body.append(attemptsRow(r));
    }
    stackLabels($('#requests-table'));
  }
  // A request that went to more than one deployment: each attempt, in order.
  function attemptsRow(r) {
    const items = r.attempts.map((a) => {
      const kind = a.outcome === 'answered' ? 'ok' : a.outcome === 'throttled' ? 'warn' : 'bad';
      return h('li', { dataset: { deployment: a.deployment, outcome: a.outcome } },
        h('span', { class: 'mono' }, a.deployment), ' ',
        badge(outcomeText(a.outcome) + (a.status ? ' · ' + a.status : ''), kind), ' ',
        h('span', { class: 'muted' }, t('requests.attemptTiming', { start: duration(a.start_ms), took: duration(a.duration_ms) })));
    });
    return h('tr', { class: 'attempts' },
      h('td', { colspan: 10 }, h('div', { class: 'attempt-list' },
        h('span', { class: 'muted' }, t('requests.attempts', { n: r.attempts.length })), h('ol', {}, ...items))));
  }

  // ---------- endpoint tester ----------
  function fillTesterChoices() {
    const form = $('#tester-form');
    const model = form.elements.model;
    const keepModel = model.value;
    clear(model).append(...(S.draft.models || []).map((m) => h('option', { value: m.id }, m.id)));
    if (keepModel) model.value = keepModel;
    const key = form.elements.key_id;
    const keepKey = key.value;
    const active = (S.draft.apiKeys || []).filter((k) => k.status !== 'disabled');
    clear(key).append(...active.map((k) => h('option', { value: k.id }, k.id)));
    if (keepKey && active.some((k) => k.id === keepKey)) key.value = keepKey;
    if (!$('#tester-raw').open) form.elements.body.value = JSON.stringify(testerBody(), null, 2);
  }
  function testerBody() {
    const f = $('#tester-form').elements;
    const prompt = f.prompt.value.trim() || t('tester.promptPlaceholder');
    const stream = f.stream.checked;
    switch (f.route.value) {
      case 'responses':
        return Object.assign({ model: f.model.value, input: prompt }, stream ? { stream: true } : {});
      case 'images/generations':
        return { model: f.model.value, prompt, n: 1, size: '1024x1024' };
      default:
        return Object.assign({ model: f.model.value, messages: [{ role: 'user', content: prompt }] },
          stream ? { stream: true, stream_options: { include_usage: true } } : {});
    }
  }
  async function sendTester(ev) {
    ev.preventDefault();
    const f = $('#tester-form').elements;
    let body;
    try {
      body = $('#tester-raw').open ? JSON.parse(f.body.value) : testerBody();
    } catch (err) { toast(t('tester.badJson', { error: err.message }), 'bad'); return; }
    if (!f.key_id.value) { toast(t('tester.noKey'), 'bad'); return; }
    const out = $('#tester-output');
    const raw = $('#tester-raw-output');
    const meta = $('#tester-meta');
    out.textContent = '';
    out.className = 'output';
    raw.textContent = '';
    clear($('#tester-images'));
    meta.textContent = t('tester.sending');
    const controller = new AbortController();
    S.tester = controller;
    $('#tester-send').disabled = true;
    $('#tester-stop').disabled = false;
    const started = performance.now();
    let firstByte = null;
    let usage = null;
    try {
      const res = await fetch(apiUrl('tester'), {
        method: 'POST', credentials: 'same-origin', signal: controller.signal,
        headers: { 'Content-Type': 'application/json', 'X-Requested-With': 'gateway-admin' },
        body: JSON.stringify({ route: f.route.value, key_id: f.key_id.value, body }),
      });
      const requestId = res.headers.get('x-request-id') || '';
      const isSse = (res.headers.get('content-type') || '').includes('text/event-stream');
      const reader = res.body.getReader();
      const decoder = new TextDecoder();
      let text = '';
      let pending = '';
      let events = 0;
      const showMeta = (done) => {
        const parts = [String(res.status)];
        if (firstByte !== null) parts.push(t('tester.firstByte', { ms: Math.round(firstByte) }));
        if (done) parts.push(t('tester.total', { ms: Math.round(performance.now() - started) }));
        if (isSse) parts.push(t('tester.events', { n: events }));
        if (usage) parts.push(t('tester.tokens', { n: usage.total_tokens ?? ((usage.input_tokens || 0) + (usage.output_tokens || 0)) }));
        if (requestId) parts.push(requestId);
        meta.textContent = parts.join(' · ');
      };
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        if (firstByte === null) firstByte = performance.now() - started;
        const chunk = decoder.decode(value, { stream: true });
        if (raw.textContent.length < 200000) raw.textContent += chunk;
        if (!isSse) { text += chunk; showMeta(false); continue; }
        pending += chunk;
        const blocks = pending.split(/\r?\n\r?\n/);
        pending = blocks.pop();
        for (const block of blocks) {
          const data = block.split(/\r?\n/).filter((l) => l.startsWith('data:')).map((l) => l.slice(5).trimStart()).join('\n');
          if (!data || data === '[DONE]') continue;
          events += 1;
          let ev;
          try { ev = JSON.parse(data); } catch (_) { continue; }
          const piece = streamText(ev);
          if (piece) out.textContent += piece;
          if (ev.usage) usage = ev.usage;
          if (ev.response && ev.response.usage) usage = ev.response.usage;
          const error = ev.error ? (ev.error.message || JSON.stringify(ev.error)) : ev.type === 'error' ? ev.message : null;
          if (error) { out.textContent += '\n[' + t('tester.streamError') + '] ' + error; out.classList.add('error'); }
        }
        showMeta(false);
      }
      if (!isSse) showAnswer(text, res, (u) => { usage = u; });
      showMeta(true);
    } catch (err) {
      if (err.name === 'AbortError') meta.textContent += ' · ' + t('tester.stopped');
      else { out.textContent = err.message; out.className = 'output error'; meta.textContent = ''; }
    } finally {
      $('#tester-send').disabled = false;
      $('#tester-stop').disabled = true;
      S.tester = null;
    }
  }
  // An error answer in the page's language: the proxy's own by its code, with the model asked
  // for and when to retry; control's own by its code; any other (the upstream's, passed on)
  // as it came, inside a sentence that says whose it is.
  function testerErrorText(error, res) {
    const english = error.message || JSON.stringify(error);
    if (lang() === 'en') return english;
    const code = typeof error.code === 'string' ? error.code : '';
    if (code && DICT[lang()]['proxyError.' + code] !== undefined) {
      const model = (() => { try { return JSON.parse($('#tester-form').elements.body.value).model; } catch (_) { return ''; } })() || testerBody().model;
      const retryMs = Number(res.headers.get('retry-after-ms')) || Number(res.headers.get('retry-after')) * 1000 || 0;
      return translated('proxyError.' + code, {
        model, message: english, param: error.param || '', request_id: res.headers.get('x-request-id') || '',
        retry: retryMs ? t('tester.retryIn', { when: duration(retryMs) }) : '',
      }, english);
    }
    if (code && DICT[lang()]['error.' + code] !== undefined) return new ApiError(res.status, { error }).message;
    return t('tester.upstreamError', { status: res.status, message: english });
  }
  function streamText(ev) {
    if (ev.choices && ev.choices[0] && ev.choices[0].delta && typeof ev.choices[0].delta.content === 'string') return ev.choices[0].delta.content;
    if (ev.type === 'response.output_text.delta' && typeof ev.delta === 'string') return ev.delta;
    return '';
  }
  function showAnswer(text, res, setUsage) {
    const out = $('#tester-output');
    let body;
    try { body = JSON.parse(text); } catch (_) { out.textContent = text; if (res.status >= 400) out.classList.add('error'); return; }
    if (body.usage) setUsage(body.usage);
    if (body.error) {
      out.textContent = testerErrorText(body.error, res);
      out.classList.add('error');
      return;
    }
    if (body.choices) { out.textContent = body.choices.map((c) => (c.message && c.message.content) || '').join('\n'); return; }
    if (body.output) {
      const parts = [];
      for (const item of body.output) for (const c of item.content || []) if (c.text) parts.push(c.text);
      out.textContent = body.output_text || parts.join('\n');
      return;
    }
    if (Array.isArray(body.data)) {
      out.textContent = t('tester.images', { n: body.data.length });
      for (const img of body.data) {
        const src = img.b64_json ? 'data:image/png;base64,' + img.b64_json : img.url;
        if (src) $('#tester-images').append(h('img', { src, alt: img.revised_prompt || '' }));
      }
      return;
    }
    out.textContent = JSON.stringify(body, null, 2);
  }

  // ---------- raw JSON editor ----------
  // The line of every field path in `text` (keys and array elements), for showing issues.
  function locatePaths(text) {
    const lines = {};
    let i = 0;
    let line = 1;
    const ws = () => { while (i < text.length && /\s/.test(text[i])) { if (text[i] === '\n') line++; i++; } };
    const str = () => {
      let s = '';
      i++;
      while (i < text.length && text[i] !== '"') {
        if (text[i] === '\\') { s += text[i] + (text[i + 1] || ''); i += 2; } else { if (text[i] === '\n') line++; s += text[i++]; }
      }
      i++;
      try { return JSON.parse('"' + s + '"'); } catch (_) { return s; }
    };
    const value = (path) => {
      ws();
      const c = text[i];
      if (c === '{') {
        i++; ws();
        if (text[i] === '}') { i++; return; }
        for (;;) {
          ws();
          if (text[i] !== '"') throw new Error('key');
          const keyLine = line;
          const key = str();
          ws();
          if (text[i] !== ':') throw new Error('colon');
          i++;
          const p = childPath(path, key);
          lines[p] = keyLine;
          value(p);
          ws();
          if (text[i] === ',') { i++; continue; }
          if (text[i] === '}') { i++; return; }
          throw new Error('object');
        }
      } else if (c === '[') {
        i++; ws();
        if (text[i] === ']') { i++; return; }
        for (let n = 0; ; n++) {
          ws();
          const p = childPath(path, n);
          lines[p] = line;
          value(p);
          ws();
          if (text[i] === ',') { i++; continue; }
          if (text[i] === ']') { i++; return; }
          throw new Error('array');
        }
      } else if (c === '"') {
        str();
      } else {
        while (i < text.length && !/[\s,}\]]/.test(text[i])) i++;
      }
    };
    try { value(''); } catch (_) { /* a partial map is still useful */ }
    return lines;
  }
  function lineOfPath(path) {
    if (!S.json) return null;
    const m = /line (\d+)/.exec(path);
    if (m) return Number(m[1]);
    const lines = locatePaths(S.json.text);
    let p = path;
    while (p) {
      if (lines[p]) return lines[p];
      const cut = Math.max(p.lastIndexOf('.'), p.lastIndexOf('['));
      if (cut <= 0) break;
      p = p.slice(0, cut);
    }
    return lines[p] || null;
  }
  function issueLine(issue) {
    const m = /at line (\d+)/.exec(issue.message);
    return m ? Number(m[1]) : lineOfPath(issue.path);
  }
  function enterJson() {
    const serialized = JSON.stringify(S.draft, null, 2);
    if (!S.json || (!S.json.syntaxError && S.json.base !== JSON.stringify(S.draft))) {
      // A file that is not readable as a config shows as it is on disk (secrets masked).
      const text = S.draft ? serialized : (S.server && S.server.text) || '';
      S.json = { text, base: JSON.stringify(S.draft), syntaxError: null };
    }
    const area = $('#json-text');
    if (area.value !== S.json.text) area.value = S.json.text;
    renderJsonIssues();
  }
  function onJsonInput() {
    const text = $('#json-text').value;
    S.json = S.json || { base: '' };
    S.json.text = text;
    try {
      const parsed = JSON.parse(text);
      S.draft = parsed;
      S.json.base = JSON.stringify(parsed);
      S.json.syntaxError = null;
    } catch (err) {
      S.json.syntaxError = err.message;
    }
    renderGutter();
    updateSavebar();
  }
  function renderGutter() {
    const area = $('#json-text');
    const count = (S.json ? S.json.text : area.value).split('\n').length;
    const bad = new Set(S.issues.map(issueLine).filter(Boolean));
    const gutter = clear($('#json-gutter'));
    for (let n = 1; n <= count; n++) {
      gutter.append(bad.has(n) ? h('span', { class: 'err' }, String(n)) : String(n), '\n');
    }
    gutter.scrollTop = area.scrollTop;
  }
  function renderJsonIssues() {
    const list = $('#json-issues');
    if (!list) return;
    clear(list);
    if (S.json && S.json.syntaxError) list.append(h('li', {}, t('json.syntax', { error: S.json.syntaxError })));
    for (const issue of S.issues) {
      const line = issueLine(issue);
      list.append(h('li', { onclick: () => jumpToLine(line) }, line ? t('json.line', { n: line }) + ' · ' : '', h('code', {}, issue.path), ': ', issue.message));
    }
    if (S.page === 'json') renderGutter();
  }
  function jumpToLine(n) {
    if (!n) return;
    const area = $('#json-text');
    const lines = area.value.split('\n');
    const start = lines.slice(0, n - 1).reduce((a, l) => a + l.length + 1, 0);
    area.focus();
    area.setSelectionRange(start, start + (lines[n - 1] || '').length);
    const lineHeight = parseFloat(getComputedStyle(area).lineHeight) || 18;
    area.scrollTop = Math.max(0, (n - 5) * lineHeight);
    renderGutter();
  }
  async function validateJson() {
    const text = S.page === 'json' && S.json ? S.json.text : JSON.stringify(S.draft, null, 2);
    try {
      const { data } = await api('POST', 'config/validate', text);
      if (data.valid) {
        S.issues = [];
        renderJsonIssues();
        $('#json-issues').append(h('li', { class: 'ok' }, t('json.valid')));
        $('#issues-panel').hidden = true;
      } else {
        showIssues(data.issues);
      }
    } catch (err) { toast(err.message, 'bad'); }
  }
  function formatJson() {
    if (!S.json || S.json.syntaxError) { toast(t('json.cannotFormat'), 'bad'); return; }
    S.json.text = JSON.stringify(S.draft, null, 2);
    $('#json-text').value = S.json.text;
    renderJsonIssues();
  }

  // ---------- pages ----------
  const PAGES = {
    overview: { enter: enterOverview, every: 10000, withoutConfig: true },
    models: { enter: () => { renderUpstreams(); renderModels(); enterPoolLive(); }, tick: enterPoolLive, every: 5000, auto: '#pool-auto' },
    keys: { enter: enterKeys, tick: tickKeys, every: 5000, auto: '#keys-auto' },
    auth: { enter: showAuthFields },
    images: {},
    timeouts: {},
    tls: { enter: enterTls, every: 10000 },
    server: {},
    stats: { enter: enterStats, tick: tickStats, every: 5000, auto: '#stats-auto' },
    requests: { enter: enterRequests, every: 5000, auto: '#requests-auto' },
    tester: { enter: fillTesterChoices },
    json: { enter: enterJson, withoutConfig: true },
  };
  function showPage(name) {
    if (!PAGES[name]) name = 'overview';
    if (S.page === 'json' && name !== 'json' && S.json && S.json.syntaxError) {
      toast(t('json.leaveWithError'), 'bad');
    }
    S.page = name;
    $$('.page').forEach((p) => { p.hidden = p.dataset.page !== name; });
    $$('#nav a').forEach((a) => a.classList.toggle('active', a.getAttribute('href') === '#' + name));
    document.body.classList.remove('nav-open');
    clearInterval(S.timers.page);
    const page = PAGES[name];
    if ((S.draft || page.withoutConfig) && page.enter) page.enter();
    if (page.every) {
      const refresh = page.tick || page.enter;
      S.timers.page = setInterval(() => {
        if (document.hidden || !refresh) return;
        if (page.auto && !$(page.auto).checked) return;
        refresh();
      }, page.every);
    }
    markIssues();
    window.scrollTo(0, 0);
  }

  // ---------- start ----------
  function wire() {
    $('#lang').value = lang();
    $('#lang').addEventListener('change', (ev) => {
      localStorage.setItem('gateway.lang', ev.target.value);
      applyI18n();
      if (S.configMissing) return;
      refreshSession();
      if (S.loginRefused) return;
      if (S.draft) renderDraft();
      showPage(S.page);
    });
    $('#menu-toggle').addEventListener('click', () => {
      const open = document.body.classList.toggle('nav-open');
      $('#menu-toggle').setAttribute('aria-expanded', String(open));
    });
    $$('main [data-path]').forEach((el) => {
      el.addEventListener(el.tagName === 'SELECT' || el.type === 'checkbox' ? 'change' : 'input', onFieldInput);
      if ('secret' in el.dataset) el.addEventListener('focus', () => { if (el.value === MASK) el.select(); });
    });
    $('#save').addEventListener('click', save);
    $('#discard').addEventListener('click', discard);
    $('#add-upstream').addEventListener('click', () => {
      S.draft.upstreams = S.draft.upstreams || [];
      S.draft.upstreams.push({ name: '', baseUrl: '', routes: {} });
      renderUpstreams(); renderModels(); updateSavebar();
    });
    $('#add-model').addEventListener('click', () => {
      S.draft.models = S.draft.models || [];
      const first = (S.draft.upstreams || [])[0];
      S.draft.models.push({ id: '', upstream: first ? first.name : '', targetModel: '', routes: {} });
      renderModels(); updateSavebar();
      const id = $$('#model-list [data-path]').find((e) => e.dataset.path === 'models[' + (S.draft.models.length - 1) + '].id');
      if (id) id.focus();
    });
    $('#key-create').addEventListener('submit', createKey);
    $('#verify-auth').addEventListener('click', verifyAuth);
    $('#show-caddyfile').addEventListener('click', showCaddyfile);
    $('#reload-caddy').addEventListener('click', reloadCaddy);
    $('#requests-filters').addEventListener('submit', (ev) => { ev.preventDefault(); enterRequests(); });
    $('#requests-filters').addEventListener('change', () => enterRequests());
    $('#usage-range').addEventListener('submit', (ev) => { ev.preventDefault(); refreshUsage(); });
    $('#usage-range').addEventListener('change', (ev) => {
      if (ev.target.name === 'range') onRangeChange();
      refreshUsage();
    });
    $('#tester-form').addEventListener('submit', sendTester);
    $('#tester-form').addEventListener('change', (ev) => {
      if (ev.target.name === 'body') return;
      if (ev.target.name === 'route') $('#tester-form').elements.stream.disabled = ev.target.value === 'images/generations';
      if (!$('#tester-raw').open) $('#tester-form').elements.body.value = JSON.stringify(testerBody(), null, 2);
    });
    $('#tester-raw').addEventListener('toggle', () => {
      if ($('#tester-raw').open) $('#tester-form').elements.body.value = JSON.stringify(testerBody(), null, 2);
    });
    $('#tester-stop').addEventListener('click', () => { if (S.tester) S.tester.abort(); });
    $('#json-text').addEventListener('input', onJsonInput);
    $('#json-text').addEventListener('scroll', () => { $('#json-gutter').scrollTop = $('#json-text').scrollTop; });
    $('#json-validate').addEventListener('click', validateJson);
    $('#json-format').addEventListener('click', formatJson);
    window.addEventListener('hashchange', () => showPage(location.hash.slice(1)));
    window.addEventListener('beforeunload', (ev) => { if (dirty()) { ev.preventDefault(); ev.returnValue = ''; } });
    document.body.append(h('datalist', { id: 'route-targets' }, ...ROUTES.map((r) => h('option', { value: r }))));
    document.body.append(h('datalist', { id: 'key-model-ids' }));
    document.body.append(h('datalist', { id: 'window-lengths' }, ...['10s', '1m', '5m', '1h', '1d'].map((v) => h('option', { value: v }))));
  }

  async function start() {
    applyI18n();
    wire();
    await refreshSession();
    if (S.configMissing || S.loginRefused) {
      document.body.dataset.ready = 'true';
      return;
    }
    try {
      await loadConfig();
      if (!S.draft) toast(t('config.unreadable'), 'bad');
      if (S.server.exists && !S.server.valid) showIssues(S.server.issues || [], true);
    } catch (err) {
      toast(err.message, 'bad');
    }
    showPage(location.hash.slice(1) || 'overview');
    document.body.dataset.ready = 'true';
  }

  document.addEventListener('DOMContentLoaded', start);
})();
