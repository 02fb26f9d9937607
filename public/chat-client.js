// Embedded Chat's JavaScript client, for a game that draws its own chat
// instead of embedding the room page: the same room stream the page uses
// (`/api/stream`), with what the page does around it. It joins the room,
// keeps a room's messages gap-free and in order across reconnects (backoff
// with jitter, catching up from the last seq it has), sends each message
// until the server confirms it (a retry is stored once), keeps the
// members, who is online, the player's role, mute and blocks, and turns
// every refusal into a `ChatError` with a sentence for people.
//
// No dependencies; an ES module for browsers (and any runtime with
// `WebSocket` and `fetch`, which may also be passed in). Types:
// `chat-client.d.ts` beside it. Guide: docs/javascript-client.md.
//
// Data keeps the wire's shape (snake_case, as in the server API and the
// webhooks); the client's own methods and options are camelCase.

/** Close codes the server ends a stream with (engine/src/stream.rs). */
const CLOSE = {
  GOING_AWAY: 1001, TOO_BIG: 1009, BAD_HELLO: 4400, UNAUTHORIZED: 4401, NOT_MEMBER: 4403, RESYNC: 4409, REMOVED: 4410,
};
/** Largest frame the server reads (engine/src/stream.rs). */
const MAX_FRAME_BYTES = 16 * 1024;
/** Joins tried while the server says it is busy (a join storm), before giving up. */
const JOIN_TRIES = 6;
/** A connection not welcomed this long after it was opened is given up and tried again. */
const WELCOME_WITHIN_MS = 10000;
/** Reconnect backoff, as the page's (protocol/src/backoff.rs). */
const BACKOFF_BASE_MS = 500;
const BACKOFF_CAP_MS = 15000;
/** Heartbeats a ping may go unanswered before the connection is taken for dead. */
const MISSED_HEARTBEATS = 1.5;
/** The room hears "typing" at most this often from one client. */
const TYPING_EVERY_MS = 2000;

/**
 * Delay before reconnect attempt `attempt` (0 for the first retry), with
 * `jitter` in [0, 1): between half and all of the exponential step.
 */
export function reconnectDelayMs(attempt, jitter) {
  const step = Math.min(BACKOFF_BASE_MS * 2 ** Math.min(attempt, 16), BACKOFF_CAP_MS);
  return Math.floor(step * (0.5 + 0.5 * Math.min(Math.max(jitter, 0), 1)));
}

/** A refusal or failure, with a sentence for people in `message`. */
export class ChatError extends Error {
  constructor(code, message, status) {
    super(message);
    this.name = 'ChatError';
    /** The stream's error code (`invalid_input`, `muted`, …) or the client's own. */
    this.code = code;
    /** The HTTP status, for a refused request (join, history, leave). */
    this.status = status;
  }
}

const HTTP_CODES = { 400: 'invalid_input', 401: 'unauthorized', 403: 'forbidden', 404: 'not_found', 409: 'conflict', 422: 'invalid_input', 429: 'too_fast' };

const SENTENCES = {
  closed: 'The chat connection was closed.',
  notText: 'A message must be text.',
  tooBig: 'This message is too long.',
  disconnected: 'The chat is not connected right now. Please try again in a moment.',
  dropped: 'The connection dropped before the answer came. Please check and try again.',
};

function randomId(prefix) {
  const bytes = new Uint8Array(12);
  globalThis.crypto.getRandomValues(bytes);
  return prefix + Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

/** Hands a listener's exception to the runtime's error reporting, past the client. */
function report(error) {
  if (typeof globalThis.reportError === 'function') globalThis.reportError(error);
  else console.error(error);
}

export class ChatClient {
  #options;
  #listeners = new Map();
  /** Messages not confirmed yet, in the order sent: id → { body, promise, resolve, reject }. */
  #pending = new Map();
  /** Requests (`act`) not answered yet: id → { request, resolve, reject }. */
  #requests = new Map();
  #ws = null;
  /** Numbers connection attempts: one still waiting for its token when a
   * newer one started gives way. */
  #connectionId = 0;
  #timer = null;
  #welcomeDeadline = null;
  /** A busy server's join waiting to be tried again: { timer, resolve }. */
  #joinWait = null;
  #heartbeat = null;
  /** Reconnect attempts since the last welcome (the backoff's step). */
  #backoffStep = 0;
  /** When the ping still unanswered went out (any frame answers it). */
  #pingedAt = null;
  #lastTyping = 0;
  #welcomed = false;
  #running = false;
  /** A refused token was already fetched afresh once since the last welcome. */
  #tokenRetried = false;
  /** A moderator's kick or ban of this user arrived (the close follows). */
  #removed = false;
  /** The room's newest seq when the client last heard its whole state (a
   * join or a welcome): moderation events up to it are in that state. */
  #knownAtSeq = 0;
  /** Back online (the browser says so): try at once instead of waiting out
   * the backoff (or an attempt begun while offline). */
  #backOnline = () => {
    if (!this.#running || this.#welcomed || (this.#ws === null && this.#timer === null)) return;
    clearTimeout(this.#timer);
    this.#timer = null;
    this.#disconnect();
    this.#backoffStep = 0;
    this.#connect();
  };

  #state = 'idle';
  #lastSeq = 0;
  #members = [];
  #online = new Set();
  #blocked = new Set();
  #role = 'player';
  #muted = null;
  #slowModeSecs = 0;
  /** The server's clock minus this device's (ms), from the last welcome. */
  #clockOffset = 0;
  #hasOlder = false;

  /**
   * @param {object} options `channelId`, `userId`; optional `server` (the
   * chat's origin, default this page's), `token` (a string, or a function
   * returning one or a promise of one, asked again for every connection),
   * `afterSeq` (the newest seq already shown), `join` (default true),
   * `WebSocket` and `fetch` (default the global ones).
   */
  constructor(options) {
    const { channelId, userId } = options ?? {};
    if (typeof channelId !== 'string' || typeof userId !== 'string') {
      throw new TypeError('ChatClient needs a channelId and a userId (strings).');
    }
    const server = options.server ?? globalThis.location?.origin;
    if (!server) throw new TypeError('ChatClient needs the chat server\'s origin (`server`).');
    this.#options = {
      channelId,
      userId,
      server: new URL(server).origin,
      token: options.token,
      join: options.join ?? true,
      WebSocket: options.WebSocket ?? globalThis.WebSocket,
      fetch: options.fetch ?? ((...args) => globalThis.fetch(...args)),
    };
    this.#lastSeq = Math.max(0, Math.floor(Number(options.afterSeq ?? 0)) || 0);
    // The game shows the messages up to it.
    this.#hasOlder = this.#lastSeq > 0;
  }

  get state() { return this.#state; }
  get channelId() { return this.#options.channelId; }
  get userId() { return this.#options.userId; }
  /** The newest seq received: every message up to it has been emitted once. */
  get lastSeq() { return this.#lastSeq; }
  get members() { return [...this.#members]; }
  get online() { return [...this.#online]; }
  get blocked() { return [...this.#blocked]; }
  get role() { return this.#role; }
  get muted() { return this.#muted; }
  get slowModeSecs() { return this.#slowModeSecs; }
  /**
   * Now by the server's clock (Unix ms), as of the last welcome: compare a
   * mute's `until_ms` with this, not with `Date.now()` (a device's clock
   * may be minutes or hours off).
   */
  serverNow() { return Date.now() + this.#clockOffset; }
  /** Whether the room holds messages older than the first one received. */
  get hasOlder() { return this.#hasOlder; }

  /** Listens to `type`; returns the function that stops listening. */
  on(type, listener) {
    if (!this.#listeners.has(type)) this.#listeners.set(type, new Set());
    this.#listeners.get(type).add(listener);
    return () => this.#listeners.get(type)?.delete(listener);
  }

  /**
   * Joins the room (unless `join: false`: then the user must be a member
   * already, e.g. added by the game's server) and opens the stream. The
   * latest messages arrive as `message` events before it resolves with the
   * room as joined (`null` without a join). Rejects with a `ChatError` if
   * the join is refused; the client is then closed.
   */
  async start() {
    if (this.#running || this.#state === 'closed') throw new Error('This ChatClient was started already.');
    this.#running = true;
    this.#setState('connecting');
    globalThis.addEventListener?.('online', this.#backOnline);
    let joined = null;
    if (this.#options.join) {
      try {
        joined = await this.#join();
        if (!Array.isArray(joined?.members) || !Array.isArray(joined.messages)) {
          throw new ChatError('internal', 'The chat server\'s answer could not be read.');
        }
      } catch (error) {
        this.#end('refused', error);
        throw error;
      }
      if (!this.#running) return joined;
      // The ids as the server has them (a token's win over the options).
      this.#options.channelId = joined.channel_id;
      this.#options.userId = joined.user_id;
      this.#room(joined);
      this.#knownAtSeq = joined.last_seq;
      if (this.#lastSeq === 0) {
        // The latest page; with `afterSeq`, the stream replays from there.
        this.#hasOlder = joined.has_older;
        for (const message of joined.messages) {
          if (this.#running) this.#message(message);
        }
        this.#lastSeq = Math.max(this.#lastSeq, joined.last_seq);
      }
      if (!this.#running) return joined;
    }
    this.#connect();
    return joined;
  }

  /** Closes the connection for good; messages not confirmed are refused. */
  stop() {
    this.#end('stopped');
  }

  /**
   * Sends a message (now, or after the next reconnect): resolves with
   * `{ client_msg_id, seq }` once stored, rejects with a `ChatError` if
   * refused. `clientMsgId` makes a send the game repeats (after a reload,
   * say) harmless: the server stores one message per id.
   */
  send(body, { clientMsgId } = {}) {
    if (this.#state === 'closed') return Promise.reject(new ChatError('closed', SENTENCES.closed));
    // Half an emoji (a lone surrogate) is not text the server can read either.
    if (typeof body !== 'string' || body.isWellFormed?.() === false) {
      return Promise.reject(new ChatError('invalid_input', SENTENCES.notText));
    }
    const id = clientMsgId ?? randomId('m');
    const waiting = this.#pending.get(id);
    if (waiting) return waiting.promise;
    const frame = { type: 'send', client_msg_id: id, body };
    // The server would close the connection over a frame this big.
    if (new TextEncoder().encode(JSON.stringify(frame)).length > MAX_FRAME_BYTES) {
      return Promise.reject(new ChatError('invalid_input', SENTENCES.tooBig));
    }
    // The message ends this bout of typing: typing again is news.
    this.#lastTyping = 0;
    const entry = { body };
    entry.promise = new Promise((resolve, reject) => Object.assign(entry, { resolve, reject }));
    this.#pending.set(id, entry);
    if (this.#welcomed) this.#frame(frame);
    return entry.promise;
  }

  /** The user is typing: the room hears it at most every two seconds. */
  typing() {
    const now = Date.now();
    if (this.#welcomed && now - this.#lastTyping >= TYPING_EVERY_MS) {
      this.#lastTyping = now;
      this.#frame({ type: 'typing' });
    }
  }

  /**
   * A request of the room (`{ block: { user_id } }`, `{ remove: { seq } }`,
   * `{ report: { seq, reason } }`, a moderator's `{ mute: … }`, …):
   * resolves when done, rejects with a `ChatError` when refused. Refused at
   * once while disconnected: it would act on what the player may no longer
   * see.
   */
  act(request) {
    if (!this.#welcomed) {
      const code = this.#state === 'closed' ? 'closed' : 'disconnected';
      return Promise.reject(new ChatError(code, SENTENCES[code]));
    }
    const id = randomId('r');
    return new Promise((resolve, reject) => {
      this.#requests.set(id, { request, resolve, reject });
      this.#frame({ type: 'act', request_id: id, request });
    });
  }

  /** The page of history just before `beforeSeq`: `{ messages, has_older }`, oldest first. */
  olderMessages(beforeSeq) {
    return this.#call('older_messages', { before_seq: String(beforeSeq) });
  }

  /** Leaves the room (the others see the user go) and closes the client. */
  async leave() {
    // A join waiting for a busy server is not tried again after this.
    if (this.#joinWait) this.#end('left');
    await this.#call('leave_room', {});
    this.#end('left');
  }

  #emit(type, detail, current = () => true) {
    for (const listener of [...(this.#listeners.get(type) ?? [])]) {
      if (!current()) return;
      try {
        listener(detail);
      } catch (error) {
        // One listener's bug must not stop the client or the others.
        report(error);
      }
    }
  }

  #setState(state, reason) {
    if (this.#state === state && !reason) return;
    this.#state = state;
    // A listener that changed the state again (stopping the client, say)
    // has had the later state told: the rest do not hear this one after it.
    this.#emit('state', reason ? { state, reason } : { state }, () => this.#state === state);
  }

  /** The token to use now (a token function is asked each time). */
  async #token() {
    const token = this.#options.token;
    if (typeof token !== 'function') return token;
    try {
      return await token();
    } catch (error) {
      throw new ChatError('token', `The sign-in token could not be had: ${error?.message ?? error}`);
    }
  }

  /** Joins, trying again a few times while the server is too busy (it says when). */
  async #join() {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.#call('join_room', {});
      } catch (error) {
        const busy = error.status === 503 || error.status === 429;
        if (!busy || attempt >= JOIN_TRIES || !this.#running) throw error;
        const wait = Math.max(error.retryAfterMs ?? 0, reconnectDelayMs(attempt, Math.random()));
        await new Promise((resolve) => {
          this.#joinWait = { timer: setTimeout(resolve, wait), resolve };
        });
        this.#joinWait = null;
        // Stopped (or left) while waiting: not back into the room.
        if (!this.#running) throw new ChatError('closed', SENTENCES.closed);
      }
    }
  }

  /** Calls one of the chat's server functions; its JSON answer. */
  async #call(endpoint, fields) {
    const { channelId, userId, server } = this.#options;
    const body = new URLSearchParams({ channel_id: channelId, user_id: userId, ...fields });
    const token = await this.#token();
    if (token) body.set('token', token);
    let response;
    try {
      response = await this.#options.fetch(new URL(`/api/${endpoint}`, server).href, {
        method: 'POST',
        headers: { 'Content-Type': 'application/x-www-form-urlencoded', Accept: 'application/json' },
        body,
      });
    } catch {
      throw new ChatError('unreachable', `Could not reach the chat server at ${server}. Check the network, and that the server lists this page's origin in ALLOWED_ORIGINS.`);
    }
    const text = await response.text();
    let answer = null;
    try {
      answer = JSON.parse(text);
    } catch {
      // Not the function's answer (a proxy's error page, say).
      if (response.ok) throw new ChatError('internal', 'The chat server\'s answer could not be read.', response.status);
    }
    if (!response.ok) {
      const sentence = answer?.Rejected ?? answer?.Failed ?? `The chat server answered ${response.status}.`;
      const code = HTTP_CODES[response.status] ?? (response.status >= 500 ? 'internal' : 'refused');
      const error = new ChatError(code, sentence, response.status);
      const retryAfter = Number(response.headers.get('retry-after'));
      if (retryAfter > 0) error.retryAfterMs = retryAfter * 1000;
      throw error;
    }
    return answer;
  }

  async #connect() {
    this.#timer = null;
    if (!this.#running) return;
    const id = ++this.#connectionId;
    let token;
    try {
      token = await this.#token();
    } catch (error) {
      if (id !== this.#connectionId) return;
      this.#emit('error', error);
      return this.#retry();
    }
    // Stopped, or a newer attempt began meanwhile.
    if (!this.#running || id !== this.#connectionId) return;
    const url = new URL('/api/stream', this.#options.server);
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    let ws;
    try {
      ws = new this.#options.WebSocket(url.href);
    } catch {
      return this.#retry();
    }
    this.#ws = ws;
    // A socket that never opens (a node gone without a word) or is never
    // welcomed is given up.
    this.#welcomeDeadline = setTimeout(() => {
      if (this.#ws !== ws || this.#welcomed) return;
      this.#dead();
    }, WELCOME_WITHIN_MS);
    ws.onopen = () => {
      const { channelId, userId } = this.#options;
      const hello = { type: 'hello', channel_id: channelId, user_id: userId, after_seq: this.#lastSeq };
      if (token) hello.token = token;
      this.#frame(hello);
    };
    ws.onmessage = (event) => {
      if (this.#ws !== ws) return;
      this.#pingedAt = null;
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch {
        return;
      }
      this.#apply(frame);
    };
    ws.onclose = (event) => {
      if (this.#ws === ws) this.#dropped(event.code);
    };
  }

  #frame(frame) {
    if (this.#ws?.readyState === 1) this.#ws.send(JSON.stringify(frame));
  }

  /** Forgets the socket; `reconnect`: at once. */
  #disconnect() {
    const ws = this.#ws;
    this.#ws = null;
    this.#welcomed = false;
    clearInterval(this.#heartbeat);
    this.#heartbeat = null;
    clearTimeout(this.#welcomeDeadline);
    this.#welcomeDeadline = null;
    if (ws) {
      ws.onopen = ws.onmessage = ws.onclose = null;
      try {
        ws.close();
      } catch {
        // Closing a socket that never opened.
      }
    }
    // Whether those were done is unknown: say so.
    for (const { reject } of this.#requests.values()) reject(new ChatError('dropped', SENTENCES.dropped));
    this.#requests.clear();
  }

  #dropped(code) {
    this.#disconnect();
    if (!this.#running) return;
    switch (code) {
      case CLOSE.NOT_MEMBER:
        return this.#end('not_member');
      case CLOSE.BAD_HELLO:
      case CLOSE.TOO_BIG:
        // Trying again would be refused again (an invalid id, say).
        return this.#end('refused');
      case CLOSE.REMOVED:
        return this.#end('removed');
      case CLOSE.UNAUTHORIZED:
        // An expired token: a token function may give a fresh one, once.
        if (typeof this.#options.token !== 'function' || this.#tokenRetried) return this.#end('unauthorized');
        this.#tokenRetried = true;
        return this.#retry();
      case CLOSE.GOING_AWAY:
      case CLOSE.RESYNC:
        this.#backoffStep = 0;
        return this.#retry();
      default:
        return this.#retry();
    }
  }

  #retry() {
    if (!this.#running) return;
    const delay = reconnectDelayMs(this.#backoffStep, Math.random());
    this.#backoffStep += 1;
    clearTimeout(this.#timer);
    // Set before the state is told: a listener may stop the client.
    this.#timer = setTimeout(() => this.#connect(), delay);
    this.#setState(globalThis.navigator?.onLine === false ? 'offline' : 'reconnecting');
  }

  /** Closes for good: `reason` says why (`stopped`, `left`, `removed`, …). */
  #end(reason, error) {
    const wasOpen = this.#state !== 'closed';
    this.#running = false;
    globalThis.removeEventListener?.('online', this.#backOnline);
    clearTimeout(this.#timer);
    this.#timer = null;
    if (this.#joinWait) {
      // The join gives up at once (`start()` rejects).
      clearTimeout(this.#joinWait.timer);
      this.#joinWait.resolve();
    }
    this.#disconnect();
    const refusal = error ?? new ChatError('closed', SENTENCES.closed);
    for (const { reject } of this.#pending.values()) reject(refusal);
    this.#pending.clear();
    if (wasOpen) this.#setState('closed', reason);
  }

  /** What a join or a welcome says of the room and the user's standing. */
  #room(room) {
    this.#members = [...room.members];
    this.#role = room.role ?? 'player';
    this.#muted = room.muted ?? null;
    this.#slowModeSecs = room.slow_mode_secs ?? 0;
    this.#blocked = new Set(room.blocked ?? []);
  }

  // Dead means a ping unanswered (no frame at all since) for a few beats,
  // not a long silence: a hidden tab's timers may run only once a minute,
  // and a quiet room says nothing between them (the server pings such a
  // page itself, and the browser answers for it). A beat far behind time
  // (the machine slept, or the tab was held back) checks its ping again a
  // moment later: a link lost meanwhile shows at once.
  #startHeartbeat(everyMs) {
    clearInterval(this.#heartbeat);
    this.#pingedAt = null;
    const every = Math.max(everyMs, 1000);
    let beatAt = Date.now();
    this.#heartbeat = setInterval(() => {
      const now = Date.now();
      const late = now - beatAt > 2 * every;
      beatAt = now;
      const sent = this.#pingedAt ?? now;
      if (now - sent > every * MISSED_HEARTBEATS) {
        this.#dead();
        return;
      }
      this.#pingedAt = sent;
      this.#frame({ type: 'ping' });
      if (late) {
        setTimeout(() => {
          if (this.#welcomed && this.#pingedAt === sent) this.#dead();
        }, Math.min(every, 5000));
      }
    }, every);
  }

  /** Dead even if the socket has not noticed (never welcomed, or a ping
   * unanswered): drop it, reconnect. */
  #dead() {
    this.#disconnect();
    this.#retry();
  }

  #apply(frame) {
    const me = this.#options.userId;
    switch (frame.type) {
      case 'welcome': {
        if (frame.now_ms > 0) this.#clockOffset = frame.now_ms - Date.now();
        this.#room(frame);
        this.#online = new Set(frame.online ?? []);
        this.#knownAtSeq = frame.last_seq;
        // Too far behind (only the latest messages follow), or ahead of
        // the room (a database restored from a backup): start over.
        const reset = frame.resume_after !== this.#lastSeq;
        if (reset) {
          this.#lastSeq = frame.resume_after;
          this.#hasOlder = frame.resume_after > 0;
        }
        this.#startHeartbeat(frame.heartbeat_ms);
        this.#backoffStep = 0;
        this.#tokenRetried = false;
        this.#welcomed = true;
        for (const [id, { body }] of this.#pending) this.#frame({ type: 'send', client_msg_id: id, body });
        // Listeners last: one may stop the client.
        this.#setState('connected');
        if (reset && this.#running) this.#emit('reset', { resume_after: frame.resume_after });
        if (this.#running) {
          this.#emit('welcome', { members: this.members, online: this.online, role: this.#role, last_seq: frame.last_seq });
        }
        return;
      }
      case 'message': {
        const { type: _, ...message } = frame;
        if (!this.#welcomed) {
          // Before any welcome: the notice of a kick made while this client
          // was away (the close, 4410, follows). Not part of the order.
          this.#removed = true;
          this.#emit('message', message);
          return;
        }
        if (message.seq <= this.#lastSeq) return;
        if (message.seq > this.#lastSeq + 1) {
          // A gap: catch up from the store.
          this.#disconnect();
          this.#backoffStep = 0;
          return this.#retry();
        }
        return this.#message(message);
      }
      case 'member_joined':
        return this.#joined(frame.user_id);
      case 'member_left': {
        this.#members = this.#members.filter((m) => m !== frame.user_id);
        this.#online.delete(frame.user_id);
        this.#emit('member_left', { user_id: frame.user_id });
        if (frame.user_id === me && !this.#removed) this.#end('left');
        return;
      }
      case 'presence':
        return this.#presence(frame.user_id, frame.online);
      case 'roster':
        (frame.joined ?? []).forEach((user) => this.#joined(user));
        (frame.online ?? []).forEach((user) => this.#presence(user, true));
        (frame.offline ?? []).forEach((user) => this.#presence(user, false));
        return;
      case 'typing':
        if (frame.user_id !== me && !this.#blocked.has(frame.user_id)) this.#emit('typing', { user_id: frame.user_id });
        return;
      case 'ack': {
        const sent = this.#pending.get(frame.client_msg_id);
        this.#pending.delete(frame.client_msg_id);
        sent?.resolve({ client_msg_id: frame.client_msg_id, seq: frame.seq });
        return;
      }
      case 'done': {
        const answered = this.#requests.get(frame.request_id);
        this.#requests.delete(frame.request_id);
        if (!answered) return;
        // A block is done for this client now (its frame may come later).
        const [kind, fields] = Object.entries(answered.request ?? {})[0] ?? [];
        if (kind === 'block' || kind === 'unblock') this.#blockChanged(fields.user_id, kind === 'block');
        answered.resolve();
        return;
      }
      case 'error':
        return this.#refused(frame);
      case 'role_changed':
        if (frame.user_id === me && frame.role !== this.#role) {
          this.#role = frame.role;
          this.#emit('role', { role: frame.role });
        }
        return;
      case 'blocked':
      case 'unblocked':
        if (frame.user_id === me) this.#blockChanged(frame.target, frame.type === 'blocked');
        return;
      case 'reported':
        return this.#emit('reported', frame.report);
      case 'report_closed':
        return this.#emit('report_closed', { id: frame.id });
      default:
        // `pong`, and frames of a newer server.
    }
  }

  /** A stored message, in seq order. Moderation events newer than the
   * state last heard change it (older ones are in it already). */
  #message(message) {
    this.#lastSeq = message.seq;
    const [kind, fields] = Object.entries(message.action ?? {})[0] ?? [];
    if (kind && message.seq > this.#knownAtSeq) {
      const aboutMe = fields?.user_id === this.#options.userId;
      if (kind === 'slow_mode') this.#slowModeSecs = fields.seconds;
      if (aboutMe && kind === 'mute') this.#muted = { until_ms: fields.until_ms ?? null, reason: fields.reason };
      if (aboutMe && kind === 'unmute') this.#muted = null;
      // Out of the room: the server closes the stream next.
      if (aboutMe && (kind === 'kick' || kind === 'ban')) this.#removed = true;
    }
    this.#emit('message', message);
  }

  #blockChanged(user, blocked) {
    if (blocked === this.#blocked.has(user)) return;
    if (blocked) this.#blocked.add(user);
    else this.#blocked.delete(user);
    this.#emit(blocked ? 'blocked' : 'unblocked', { user_id: user });
  }

  #joined(user) {
    if (this.#members.includes(user)) return;
    this.#members.push(user);
    this.#emit('member_joined', { user_id: user });
  }

  #presence(user, online) {
    if (online === this.#online.has(user)) return;
    if (online) this.#online.add(user);
    else this.#online.delete(user);
    this.#emit('presence', { user_id: user, online });
  }

  #refused({ code, message, client_msg_id: msgId, request_id: requestId }) {
    const error = new ChatError(code, message);
    if (requestId && this.#requests.has(requestId)) {
      this.#requests.get(requestId).reject(error);
      this.#requests.delete(requestId);
    } else if (msgId && this.#pending.has(msgId)) {
      this.#pending.get(msgId).reject(error);
      this.#pending.delete(msgId);
    } else if (code !== 'resync') {
      // About the connection (the server closes it next when it must).
      this.#emit('error', error);
    }
  }
}
