// Types of Embedded Chat's JavaScript client (`chat-client.js`). Data keeps
// the wire's shape (snake_case), as in the server API and the webhooks.

/** A moderation event, recorded in the room's order like a message. */
export type Action =
  | { remove: { seq: number } }
  | { mute: { user_id: string; until_ms: number | null; reason: string } }
  | { unmute: { user_id: string } }
  | { kick: { user_id: string; reason: string } }
  | { ban: { user_id: string; until_ms: number | null; reason: string } }
  | { unban: { user_id: string } }
  | { purge: { user_id: string } }
  | { slow_mode: { seconds: number } };

/** One stored message of a room; `seq` numbers them 1, 2, 3, … without gaps. */
export interface ChatMessage {
  seq: number;
  user_id: string;
  /** Empty once removed. */
  body: string;
  client_msg_id: string;
  /** When the server stored it, Unix milliseconds. */
  at_ms: number;
  /** Set for a moderation event: what was done; `user_id` is who did it. */
  action?: Action;
  /** Set once the message was removed. */
  removed?: { by: string; at_ms: number };
  /** Posted by the game's server as itself. */
  system?: boolean;
}

export type Role = 'player' | 'moderator';

export interface Mute {
  /** Unix ms; null: until lifted. */
  until_ms: number | null;
  reason: string;
}

/** What a member asks of a room (`ChatClient.act`). */
export type Request =
  | { remove: { seq: number } }
  | { report: { seq: number; reason?: string } }
  | { mute: { user_id: string; minutes?: number | null; reason?: string } }
  | { unmute: { user_id: string } }
  | { kick: { user_id: string; reason?: string } }
  | { ban: { user_id: string; minutes?: number | null; reason?: string } }
  | { unban: { user_id: string } }
  | { purge: { user_id: string } }
  | { slow_mode: { seconds: number } }
  | { close_report: { id: number; resolved: boolean } }
  | { block: { user_id: string } }
  | { unblock: { user_id: string } };

/** A report in a moderator's queue. */
export interface Report {
  id: number;
  seq: number;
  author: string;
  body: string;
  reporter: string;
  reason: string;
  at_ms: number;
}

/** The room as joined (`ChatClient.start`). */
export interface RoomSnapshot {
  channel_id: string;
  user_id: string;
  members: string[];
  /** The latest messages, oldest first (also emitted as `message` events). */
  messages: ChatMessage[];
  last_seq: number;
  has_older: boolean;
  role: Role;
  muted: Mute | null;
  slow_mode_secs: number;
  blocked: string[];
}

export interface HistoryPage {
  messages: ChatMessage[];
  has_older: boolean;
}

export type State = 'idle' | 'connecting' | 'connected' | 'reconnecting' | 'offline' | 'closed';

/** Why a client closed. */
export type ClosedReason =
  | 'stopped' | 'left' | 'removed' | 'not_member' | 'unauthorized'
  /** `start()` failed, or the server refused the connection's hello (an invalid id, say). */
  | 'refused';

export type ErrorCode =
  // The stream's refusals.
  | 'bad_frame' | 'invalid_input' | 'not_member' | 'resync' | 'unauthorized' | 'internal'
  | 'forbidden' | 'muted' | 'slow_mode'
  // Refused requests over HTTP (join, history, leave).
  | 'not_found' | 'conflict' | 'too_fast' | 'refused'
  // The client's own.
  | 'closed' | 'disconnected' | 'dropped' | 'unreachable' | 'token';

export class ChatError extends Error {
  constructor(code: ErrorCode, message: string, status?: number);
  readonly name: 'ChatError';
  readonly code: ErrorCode;
  /** The HTTP status of a refused request. */
  readonly status?: number;
  /** When the server asked to be tried again (a join storm's 503). */
  retryAfterMs?: number;
  /** A sentence for people. */
  readonly message: string;
}

export interface ChatEvents {
  /** Every stored message and moderation event, once each, in seq order. */
  message: ChatMessage;
  /** Connected (again): redraw the members and who is online from the client. */
  welcome: { members: string[]; online: string[]; role: Role; last_seq: number };
  /** Drop what is shown: the messages after `resume_after` follow. */
  reset: { resume_after: number };
  state: { state: State; reason?: ClosedReason };
  member_joined: { user_id: string };
  member_left: { user_id: string };
  presence: { user_id: string; online: boolean };
  /** Someone else is typing (never someone the user blocked). */
  typing: { user_id: string };
  role: { role: Role };
  /** The user blocked `user_id` (here or on another page). */
  blocked: { user_id: string };
  unblocked: { user_id: string };
  /** For moderators: a report came in, or was closed. */
  reported: Report;
  report_closed: { id: number };
  /** A refusal about the connection rather than one message or request. */
  error: ChatError;
}

export interface ChatClientOptions {
  channelId: string;
  userId: string;
  /** The chat server's origin; default this page's. */
  server?: string;
  /** The identity token, or a function giving one (asked again for every connection). */
  token?: string | (() => string | Promise<string>);
  /** The newest seq already shown: only later messages are emitted (the
   * join's latest page is then not). */
  afterSeq?: number;
  /** Join the room first (default true); false when the game's server adds
   * its players (then `userId` must be the token's, as the server has it). */
  join?: boolean;
  WebSocket?: typeof WebSocket;
  fetch?: typeof fetch;
}

/** Delay before reconnect attempt `attempt`, `jitter` in [0, 1). */
export function reconnectDelayMs(attempt: number, jitter: number): number;

export class ChatClient {
  constructor(options: ChatClientOptions);
  readonly state: State;
  readonly channelId: string;
  readonly userId: string;
  readonly lastSeq: number;
  readonly members: string[];
  readonly online: string[];
  readonly blocked: string[];
  readonly role: Role;
  readonly muted: Mute | null;
  readonly slowModeSecs: number;
  readonly hasOlder: boolean;
  /** Now by the server's clock (Unix ms), as of the last welcome: compare `muted.until_ms` with this. */
  serverNow(): number;
  /** Returns the function that stops listening. */
  on<K extends keyof ChatEvents>(type: K, listener: (event: ChatEvents[K]) => void): () => void;
  /** Joins (unless `join: false`) and connects; the room as joined. */
  start(): Promise<RoomSnapshot | null>;
  stop(): void;
  send(body: string, options?: { clientMsgId?: string }): Promise<{ client_msg_id: string; seq: number }>;
  typing(): void;
  act(request: Request): Promise<void>;
  olderMessages(beforeSeq: number): Promise<HistoryPage>;
  leave(): Promise<void>;
}
