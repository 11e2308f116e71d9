// The meshcfg dashboard: a plain ES module, served by meshcfg itself (no CDN, no build step).
//
// Every piece of data comes from the bearer-token admin API, like the CLI. The token lives in
// sessionStorage (this tab only); `/#token=<t>` signs in and the fragment is removed from the
// address bar at once (a fragment never reaches the server or its logs).
//
// Live updates: short polling every 2 s. EventSource cannot send an Authorization header, and
// a token in a query string would land in logs and history; five small GETs every 2 s cost the
// server nothing next to its agents' streams.
//
// Type-checked by `npm run typecheck` (tsconfig.dashboard.json: strict, DOM types, JSDoc).
//
// Everything from the API (agent ids, labels, error messages, commit subjects) is attacker-
// reachable text: it is only ever put into the page as text nodes, never as HTML.

const POLL_MS = 2000;
const TOKEN_KEY = 'meshcfg.adminToken';
const STATES = ['SYNCED', 'PENDING', 'STALE', 'NACKED', 'QUARANTINED', 'DISCONNECTED'];
const HOUR_MS = 3600 * 1000;
const DAY_MS = 24 * HOUR_MS;

const ui = {
  /** @type {string | null} */ token: null,
  /** @type {{name: string, role: string} | null} */ me: null,
  /** @type {any} */ data: null,
  /** @type {string | null} */ stateFilter: null,
  /** @type {number | undefined} */ timer: undefined,
  /** @type {Date | null} */ lastOk: null,
  /** @type {string | null} */ lastError: null,
  /** Bumped on sign-out so late answers of the old session are dropped. */
  session: 0,
  /** Polls started, and the newest one rendered: an older answer arriving late is not drawn over a newer one. */
  polls: 0,
  rendered: 0,
};

const $ = (/** @type {string} */ id) => /** @type {HTMLElement} */ (document.getElementById(id));

// ---------------------------------------------------------------------------------------------
// API

class ApiError extends Error {
  /** @param {number} status @param {string} code @param {string} message */
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** @param {string} path @param {{method?: string, body?: unknown}} [init] */
async function api(path, init = {}) {
  /** @type {Record<string, string>} */
  const headers = { authorization: `Bearer ${ui.token}` };
  if (init.body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(path, {
    method: init.method ?? 'GET',
    headers,
    body: init.body === undefined ? undefined : JSON.stringify(init.body),
    cache: 'no-store',
    credentials: 'omit',
    referrerPolicy: 'no-referrer',
  });
  const text = await res.text();
  let body = null;
  try {
    body = text === '' ? null : JSON.parse(text);
  } catch {
    throw new ApiError(res.status, 'BAD_RESPONSE', `the server answered ${res.status} with something that is not JSON`);
  }
  if (!res.ok) {
    const error = body && typeof body === 'object' && body.error ? body.error : { code: `HTTP_${res.status}`, message: res.statusText };
    throw new ApiError(res.status, String(error.code), String(error.message ?? ''));
  }
  return body;
}

// ---------------------------------------------------------------------------------------------
// Session

function takeTokenFromFragment() {
  const params = new URLSearchParams(location.hash.replace(/^#/, ''));
  const token = params.get('token');
  if (token === null) return;
  // Out of the address bar (and so out of history, bookmarks and screen shares) before anything else.
  history.replaceState(null, '', location.pathname + location.search);
  if (token.trim() !== '') sessionStorage.setItem(TOKEN_KEY, token.trim());
}

/** @param {string} [message] */
function showLogin(message) {
  ui.session += 1;
  clearTimeout(ui.timer);
  ui.token = null;
  ui.me = null;
  ui.data = null;
  sessionStorage.removeItem(TOKEN_KEY);
  $('app').hidden = true;
  $('logout').hidden = true;
  $('whoami').textContent = '';
  $('login').hidden = false;
  $('login-error').textContent = message ?? '';
  setLive('idle', 'not signed in');
  /** @type {HTMLInputElement} */ ($('login-token')).focus();
}

/** @param {string} token */
async function signIn(token) {
  ui.token = token;
  const session = ++ui.session;
  try {
    ui.me = await api('/api/v1/whoami');
  } catch (err) {
    if (session !== ui.session) return;
    if (err instanceof ApiError && err.status === 401) return showLogin(`The server refused this token (${err.code}).`);
    return showLogin(`Cannot reach the admin API: ${describe(err)}`);
  }
  if (session !== ui.session) return;
  sessionStorage.setItem(TOKEN_KEY, token);
  $('login').hidden = true;
  $('app').hidden = false;
  $('logout').hidden = false;
  $('whoami').replaceChildren(h('span', { class: 'muted' }, 'signed in as '), h('b', {}, ui.me?.name ?? '?'), ' ', h('span', { class: `role role-${ui.me?.role}` }, ui.me?.role ?? ''));
  await poll(session);
}

/** @param {number} session */
async function poll(session) {
  const seq = ++ui.polls;
  try {
    const [agents, source, rollout, audit, alerts] = await Promise.all([
      api('/api/v1/agents'),
      api('/api/v1/source'),
      api('/api/v1/rollout'),
      api('/api/v1/audit?limit=25'),
      api('/api/v1/alerts?limit=25'),
    ]);
    if (session !== ui.session) return;
    if (seq < ui.rendered) return;
    ui.rendered = seq;
    ui.data = { agents, source, rollout, audit, alerts };
    ui.lastOk = new Date();
    ui.lastError = null;
    render();
  } catch (err) {
    if (session !== ui.session) return;
    if (err instanceof ApiError && err.status === 401) return showLogin(`Signed out: the server refused the token (${err.code}).`);
    ui.lastError = describe(err);
    renderLive();
  }
  if (session !== ui.session) return;
  clearTimeout(ui.timer);
  ui.timer = setTimeout(() => void poll(session), POLL_MS);
}

function refreshNow() {
  if (ui.token === null) return;
  clearTimeout(ui.timer);
  void poll(ui.session);
}

// ---------------------------------------------------------------------------------------------
// Rendering helpers

/**
 * A DOM element with attributes and children; strings become text nodes (never HTML).
 * @param {string} tag
 * @param {Record<string, unknown>} [attrs]
 * @param {...unknown} children
 * @returns {HTMLElement}
 */
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') el.addEventListener(key.slice(2), /** @type {EventListener} */ (value));
    else el.setAttribute(key, value === true ? '' : String(value));
  }
  for (const child of children.flat(3)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

/** @param {unknown} err */
function describe(err) {
  if (err instanceof ApiError) return `${err.status} ${err.code}${err.message ? `: ${err.message}` : ''}`;
  return err instanceof Error ? err.message : String(err);
}

/** @param {string | null | undefined} sha */
const short = (sha) => (sha ? sha.slice(0, 7) : '–');
/** @param {string | null | undefined} digest */
const shortDigest = (digest) => (digest ? digest.replace(/^sha256:/, '').slice(0, 8) : '–');

/** @param {string | null | undefined} iso @param {number} [nowMs] */
function relative(iso, nowMs = Date.now()) {
  if (!iso) return '–';
  const ms = Date.parse(iso) - nowMs;
  const abs = Math.abs(ms);
  const [n, unit] =
    abs < 45_000 ? [Math.round(abs / 1000), 's'] : abs < 90 * 60_000 ? [Math.round(abs / 60_000), 'm'] : abs < 48 * 3600_000 ? [Math.round(abs / 3600_000), 'h'] : [Math.round(abs / DAY_MS), 'd'];
  if (abs < 1500) return 'now';
  return ms < 0 ? `${n}${unit} ago` : `in ${n}${unit}`;
}

/** @param {string | null | undefined} iso */
const time = (iso) => h('time', { datetime: iso ?? '', title: iso ? new Date(iso).toLocaleString() : '' }, relative(iso));

/** @param {string} state */
const stateBadge = (state) => h('span', { class: `badge st-${state.toLowerCase()}` }, state);

const canOperate = () => ui.me !== null && ui.me.role !== 'viewer';
const readOnlyTitle = () => `read-only: the ${ui.me?.role ?? ''} token ${ui.me?.name ?? ''} may not act (needs role operator)`;

// ---------------------------------------------------------------------------------------------
// Rendering

function render() {
  if (ui.data === null) return;
  renderLive();
  renderSource();
  renderFleet();
  renderRollout();
  renderQuarantined();
  renderAgents();
  renderFeeds();
}

/** @param {string} state @param {string} text */
function setLive(state, text) {
  const el = $('live');
  el.dataset['state'] = state;
  el.textContent = text;
}

function renderLive() {
  if (ui.lastError !== null) setLive('error', `connection lost (${ui.lastError}) · last update ${ui.lastOk ? ui.lastOk.toLocaleTimeString() : 'never'}`);
  else if (ui.lastOk !== null) setLive('ok', `live · updated ${ui.lastOk.toLocaleTimeString()}`);
}

function renderSource() {
  const { source } = ui.data;
  const accepted = source.acceptedCommit;
  const refused = source.refused;
  $('source').replaceChildren(
    h(
      'div',
      { class: 'commit accepted', 'data-testid': 'accepted' },
      h('div', { class: 'label' }, 'accepted'),
      accepted === null
        ? h('div', { class: 'muted' }, 'no commit accepted yet')
        : [
            h('div', { class: 'sha-line' }, h('code', { class: 'sha', title: accepted.sha, 'data-sha': accepted.sha }, short(accepted.sha)), h('span', { class: 'subject' }, accepted.subject)),
            h('div', { class: 'meta' }, 'signed by ', h('b', {}, accepted.signer ?? 'unknown'), ' · committed ', time(accepted.committedAt), accepted.seenAt ? [' · seen ', time(accepted.seenAt)] : null),
          ],
    ),
    h(
      'div',
      { class: `commit refused ${refused ? 'is-refused' : ''}`, 'data-testid': 'refused' },
      h('div', { class: 'label' }, 'last refused'),
      refused === null
        ? h('div', { class: 'muted' }, 'none')
        : [
            h('div', { class: 'sha-line' }, h('code', { class: 'sha', title: refused.commit }, short(refused.commit)), h('span', { class: 'code' }, refused.code), ' ', time(refused.at)),
            h('div', { class: 'reason' }, refused.message),
          ],
    ),
    h(
      'div',
      { class: 'meta' },
      'branch ',
      h('code', {}, source.branch),
      ' · generation ',
      String(source.generation),
      source.head && source.head !== source.accepted ? [' · head ', h('code', {}, short(source.head))] : null,
      // Several replicas: which one answered, and whether it leads (the answers are the same from each).
      source.replica ? [' · replica ', h('code', { 'data-testid': 'replica' }, source.replica.id), source.replica.leader ? ' (leader)' : ' (follower)'] : null,
    ),
  );
}

function renderFleet() {
  /** @type {Record<string, number>} */
  const counts = Object.fromEntries(STATES.map((s) => [s, 0]));
  for (const agent of ui.data.agents) counts[agent.state] = (counts[agent.state] ?? 0) + 1;
  $('fleet-counts').replaceChildren(
    ...STATES.map((state) =>
      h(
        'button',
        {
          type: 'button',
          class: `count st-${state.toLowerCase()} ${counts[state] ? '' : 'zero'} ${ui.stateFilter === state ? 'selected' : ''}`,
          'data-state': state,
          title: ui.stateFilter === state ? 'show every state' : `show only ${state} agents`,
          onclick: () => {
            ui.stateFilter = ui.stateFilter === state ? null : state;
            render();
          },
        },
        h('span', { class: 'n' }, String(counts[state] ?? 0)),
        h('span', { class: 's' }, state),
      ),
    ),
    h('div', { class: 'total muted' }, `${ui.data.agents.length} agents · ${ui.data.agents.filter((/** @type {any} */ a) => a.connected).length} connected`),
  );
}

function renderRollout() {
  const { rollout } = ui.data;
  const win = rollout.window;
  const waves = rollout.waves.map((/** @type {any} */ wave) => {
    // A wave not started yet has nothing in flight: its members are all waiting, not pending.
    const started = wave.state !== 'pending';
    const pending = started ? wave.pending : 0;
    const waiting = Math.max(0, wave.agents - wave.applied - wave.rejected - pending);
    /** @param {string} cls @param {number} n @param {string} what */
    const segment = (cls, n, what) => {
      const el = h('span', { class: `seg ${cls}`, title: `${n} ${what}` });
      el.style.flexGrow = String(n);
      return n > 0 ? el : null;
    };
    return h(
      'div',
      { class: 'wave', 'data-wave': wave.name },
      h('div', { class: 'wave-head' }, h('b', {}, wave.name), h('span', { class: `wstate ws-${wave.state}` }, wave.state), h('span', { class: 'spacer' }), h('span', { class: 'muted' }, `${wave.applied}/${wave.agents} applied`)),
      h('div', { class: 'bar' }, segment('applied', wave.applied, 'applied'), segment('rejected', wave.rejected, 'rejected'), segment('pending', pending, 'pending (sent, not answered)'), segment('waiting', waiting, started ? 'not connected' : 'waiting for this wave to start')),
      h(
        'div',
        { class: 'wave-foot muted' },
        started ? `${wave.rejected} rejected · ${wave.pending} pending` : `not started · ${wave.agents} agent${wave.agents === 1 ? '' : 's'} waiting`,
        wave.completedAt ? [' · completed ', time(wave.completedAt)] : wave.startedAt ? [' · started ', time(wave.startedAt)] : null,
      ),
    );
  });
  $('rollout').replaceChildren(
    h(
      'div',
      { class: 'rollout-head' },
      h('span', { class: `rstate rs-${rollout.state}`, 'data-testid': 'rollout-state' }, rollout.state),
      h('span', {}, ' commit ', h('code', { title: rollout.commit ?? '' }, short(rollout.commit))),
      rollout.previous ? h('span', { class: 'muted' }, ' from ', h('code', { title: rollout.previous }, short(rollout.previous))) : null,
    ),
    h(
      'div',
      { class: `window ${win.open ? 'open' : 'closed'}` },
      win.open ? 'window open' : 'window closed',
      !win.open && win.nextOpen ? [' · next opens ', time(win.nextOpen), ` (${new Date(win.nextOpen).toLocaleString()})`] : null,
    ),
    ...(waves.length === 0 ? [h('div', { class: 'muted' }, 'no waves')] : waves),
  );
  const paused = rollout.state === 'paused';
  for (const button of /** @type {NodeListOf<HTMLButtonElement>} */ (document.querySelectorAll('[data-rollout]'))) {
    const kind = button.dataset['rollout'];
    button.hidden = (kind === 'pause' && paused) || (kind === 'resume' && !paused);
    button.disabled = !canOperate();
    button.title = canOperate() ? `${kind} the rollout (audited)` : readOnlyTitle();
  }
}

function renderQuarantined() {
  const quarantined = ui.data.agents.filter((/** @type {any} */ a) => a.quarantine !== null);
  $('quarantine-card').hidden = quarantined.length === 0;
  $('quarantined').replaceChildren(
    ...quarantined.map((/** @type {any} */ agent) =>
      h(
        'div',
        { class: 'quarantined', 'data-agent': agent.id },
        h('b', { class: 'agent-id' }, agent.id),
        h('span', { class: 'muted' }, ' since ', time(agent.quarantine.since), ' by ', h('b', {}, agent.quarantine.by)),
        h('span', { class: 'reason' }, agent.quarantine.reason),
        h('span', { class: 'spacer' }),
        approveButton(agent.id),
      ),
    ),
  );
}

/** @param {string} id */
function approveButton(id) {
  return h(
    'button',
    {
      type: 'button',
      class: 'primary small',
      'data-approve': id,
      disabled: !canOperate(),
      title: canOperate() ? `let ${id} rejoin: it gets its desired bundle again (audited)` : readOnlyTitle(),
      onclick: () =>
        openAction({
          title: `Approve ${id}`,
          text: `${id} leaves quarantine and is sent its desired bundle again. Say why it is safe.`,
          confirm: 'Approve',
          requireReason: true,
          run: (reason) => api(`/api/v1/agents/${encodeURIComponent(id)}/approve`, { method: 'POST', body: { reason } }),
          done: `${id} approved to rejoin`,
        }),
    },
    'Approve',
  );
}

/** @param {any} agent */
function agentText(agent) {
  return [agent.id, agent.wave ?? '', agent.state, ...Object.entries(agent.labels).map(([k, v]) => `${k}=${v}`)].join(' ').toLowerCase();
}

/** @param {{commit: string, digest: string} | null} ref @param {boolean} drift @param {boolean} [baseline] */
function ref(ref, drift, baseline) {
  if (ref === null) return h('span', { class: 'muted' }, '–');
  return h(
    'span',
    { class: `ref ${drift ? 'drift' : ''}`, title: `${ref.commit}\n${ref.digest}` },
    h('code', {}, short(ref.commit)),
    h('span', { class: 'muted' }, ':'),
    h('code', { class: 'digest' }, shortDigest(ref.digest)),
    baseline ? h('span', { class: 'tag' }, 'baseline') : null,
  );
}

function renderAgents() {
  const text = /** @type {HTMLInputElement} */ ($('filter')).value.trim().toLowerCase();
  const all = ui.data.agents;
  const shown = all.filter((/** @type {any} */ a) => (ui.stateFilter === null || a.state === ui.stateFilter) && (text === '' || text.split(/\s+/).every((word) => agentText(a).includes(word))));
  $('agents-count').textContent = shown.length === all.length ? `(${all.length})` : `(${shown.length} of ${all.length})`;
  const stateFilter = $('state-filter');
  stateFilter.hidden = ui.stateFilter === null;
  stateFilter.replaceChildren(
    ui.stateFilter === null
      ? ''
      : h('button', { type: 'button', class: 'chip', title: 'clear', onclick: () => ((ui.stateFilter = null), render()) }, `state = ${ui.stateFilter} ✕`),
  );
  const now = Date.now();
  const rows = shown.map((/** @type {any} */ agent) => {
    const drift = agent.desired !== null && agent.active !== null && agent.desired.digest !== agent.active.digest;
    const expiry = agent.certExpiry ? Date.parse(agent.certExpiry) - now : null;
    const rejection = agent.lastRejection;
    return h(
      'tr',
      { 'data-agent': agent.id, 'data-state': agent.state, class: `${drift ? 'has-drift' : ''} ${rejection ? 'has-nack' : ''}` },
      h('td', { class: 'agent' }, h('span', { class: `dot ${agent.connected ? 'on' : 'off'}`, title: agent.connected ? 'connected' : 'not connected' }), h('b', {}, agent.id)),
      h('td', { class: 'labels' }, Object.entries(agent.labels).map(([k, v]) => h('span', { class: 'label-chip' }, h('span', { class: 'k' }, k), '=', String(v)))),
      h('td', {}, agent.wave ?? '–'),
      h('td', {}, stateBadge(agent.state)),
      h('td', { class: 'desired' }, ref(agent.desired, false, agent.desired?.baseline)),
      h('td', { class: 'active' }, ref(agent.active, drift), drift ? h('span', { class: 'tag warn', title: 'active digest differs from desired' }, 'drift') : null),
      h(
        'td',
        { class: 'rejection' },
        rejection === null
          ? h('span', { class: 'muted' }, '–')
          : h('div', { class: 'nack', title: `${rejection.commit}\n${rejection.digest}\n${rejection.error}` }, h('span', { class: 'tag bad' }, 'NACK'), ' ', h('code', {}, short(rejection.commit)), ' ', time(rejection.at), h('div', { class: 'err' }, rejection.error)),
      ),
      h('td', { class: `expiry ${expiry === null ? '' : expiry < 0 ? 'expired' : expiry < HOUR_MS ? 'urgent' : expiry < DAY_MS ? 'soon' : ''}` }, agent.certExpiry ? time(agent.certExpiry) : h('span', { class: 'muted' }, '–')),
      h('td', { class: 'seen' }, time(agent.lastSeen)),
      h('td', { class: 'row-actions' }, agent.quarantine !== null ? approveButton(agent.id) : null),
    );
  });
  /** @type {HTMLTableElement} */ ($('agents')).tBodies[0]?.replaceChildren(
    ...(rows.length > 0 ? rows : [h('tr', {}, h('td', { colspan: 10, class: 'muted empty' }, all.length === 0 ? 'no agents in the inventory' : 'no agent matches the filter'))]),
  );
}

function renderFeeds() {
  const { alerts, audit } = ui.data;
  $('alerts').replaceChildren(
    ...(alerts.length === 0
      ? [h('li', { class: 'muted' }, 'no alerts since the server started')]
      : alerts.map((/** @type {any} */ a) =>
          h('li', { class: `alert k-${a.kind}` }, h('span', { class: 'when' }, time(a.at)), h('span', { class: 'kind' }, a.kind), a.agent ? h('b', {}, a.agent) : null, h('span', { class: 'msg' }, a.message)),
        )),
  );
  $('audit').replaceChildren(
    ...(audit.length === 0
      ? [h('li', { class: 'muted' }, 'nothing audited yet')]
      : audit.map((/** @type {any} */ e) =>
          h('li', {}, h('span', { class: 'when' }, time(e.at)), h('span', { class: 'kind' }, e.action), /^[0-9a-f]{40}$/.test(e.target) ? h('code', { title: e.target }, short(e.target)) : h('b', {}, e.target), h('span', { class: 'muted' }, ` by ${e.actor}`), e.reason ? h('span', { class: 'msg' }, `“${e.reason}”`) : null),
        )),
  );
}

// ---------------------------------------------------------------------------------------------
// Actions: a dialog asks for the reason (audited); the API's answer, refusals included, is shown.

/** @type {{run: (reason: string) => Promise<unknown>, requireReason: boolean, done: string} | null} */
let pending = null;

/**
 * @param {{title: string, text: string, confirm: string, requireReason: boolean, run: (reason: string) => Promise<unknown>, done: string, danger?: boolean}} action
 */
function openAction(action) {
  pending = action;
  $('action-title').textContent = action.title;
  $('action-text').textContent = action.text;
  $('action-required').textContent = action.requireReason ? '(required, audited)' : '(optional, audited)';
  $('action-error').textContent = '';
  const confirm = /** @type {HTMLButtonElement} */ ($('action-confirm'));
  confirm.textContent = action.confirm;
  confirm.className = action.danger ? 'danger' : 'primary';
  confirm.disabled = false;
  const reason = /** @type {HTMLTextAreaElement} */ ($('action-reason'));
  reason.value = '';
  /** @type {HTMLDialogElement} */ ($('action-dialog')).showModal();
  reason.focus();
}

async function confirmAction() {
  if (pending === null) return;
  const reason = /** @type {HTMLTextAreaElement} */ ($('action-reason')).value.trim();
  if (pending.requireReason && reason === '') {
    $('action-error').textContent = 'A reason is required: it goes into the audit log.';
    return;
  }
  const confirm = /** @type {HTMLButtonElement} */ ($('action-confirm'));
  confirm.disabled = true;
  try {
    await pending.run(reason);
    notice('ok', pending.done);
    /** @type {HTMLDialogElement} */ ($('action-dialog')).close();
    pending = null;
    refreshNow();
  } catch (err) {
    // Refusals (403 FORBIDDEN_ROLE, 409 NOT_QUARANTINED, HALTED, …) are shown as the API gave them.
    $('action-error').textContent = `Refused: ${describe(err)}`;
    notice('error', `Refused: ${describe(err)}`);
    confirm.disabled = false;
  }
}

/** @param {'ok' | 'error'} kind @param {string} message */
function notice(kind, message) {
  const el = $('notice');
  el.hidden = false;
  el.className = `notice ${kind}`;
  el.replaceChildren(h('span', { 'data-testid': 'notice' }, message), h('button', { type: 'button', class: 'ghost small', onclick: () => (el.hidden = true) }, 'dismiss'));
}

/** @type {Record<string, {text: string, danger?: boolean}>} */
const ROLLOUT_ACTIONS = {
  pause: { text: 'No new wave starts until the rollout is resumed (waves already started continue).' },
  resume: { text: 'Waves start again as the gates and windows allow.' },
  promote: { text: 'Completes the current wave now and starts the next, overriding bake and windows.' },
  abort: { text: 'Every agent gets the last completed commit again.', danger: true },
};

function wire() {
  $('login-submit').addEventListener('click', () => {
    const input = /** @type {HTMLInputElement} */ ($('login-token'));
    const token = input.value.trim();
    input.value = '';
    if (token === '') return showLogin('Paste a token first.');
    void signIn(token);
  });
  $('login-token').addEventListener('keydown', (event) => {
    if (/** @type {KeyboardEvent} */ (event).key === 'Enter') $('login-submit').click();
  });
  $('logout').addEventListener('click', () => showLogin());
  $('filter').addEventListener('input', () => ui.data && renderAgents());
  $('action-cancel').addEventListener('click', () => {
    pending = null;
    /** @type {HTMLDialogElement} */ ($('action-dialog')).close();
  });
  $('action-confirm').addEventListener('click', () => void confirmAction());
  for (const button of /** @type {NodeListOf<HTMLButtonElement>} */ (document.querySelectorAll('[data-rollout]'))) {
    const kind = button.dataset['rollout'] ?? '';
    const action = ROLLOUT_ACTIONS[kind];
    if (action === undefined) continue;
    button.addEventListener('click', () =>
      openAction({
        title: `${kind[0]?.toUpperCase()}${kind.slice(1)} the rollout`,
        text: action.text,
        confirm: `${kind[0]?.toUpperCase()}${kind.slice(1)}`,
        requireReason: false,
        danger: action.danger === true,
        run: (reason) => api(`/api/v1/rollout/${kind}`, { method: 'POST', body: reason === '' ? {} : { reason } }),
        done: `rollout: ${kind} done`,
      }),
    );
  }
  // Keep the relative times honest between polls when the tab comes back.
  document.addEventListener('visibilitychange', () => document.visibilityState === 'visible' && refreshNow());
}

wire();
takeTokenFromFragment();
const saved = sessionStorage.getItem(TOKEN_KEY);
if (saved === null) showLogin();
else void signIn(saved);
