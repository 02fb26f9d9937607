// The game's side of the JavaScript client demo (/client-demo.html): a
// room drawn by the page itself, as a game draws chat in its own
// interface. Everything it knows comes from the client's events.
import { ChatClient } from '/chat-client.js';

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(window.location.search);
const userId = params.get('user_id') || 'player1';
const channelId = params.get('channel_id') || 'lobby';
$('who-user').value = userId;
$('who-room').value = channelId;
$('room-name').textContent = `Room ${channelId}`;

const STATES = { connecting: 'Connecting…', connected: 'Connected', reconnecting: 'Reconnecting…', offline: 'Offline' };
const CLOSED = {
  left: 'You left the room.',
  removed: 'A moderator removed you from the room.',
  not_member: 'You are not in this room.',
  unauthorized: 'Your sign-in has expired.',
};

const chat = new ChatClient({ channelId, userId });
// What the room said, in order, and the lines removed since (seq → by whom).
let said = [];
const removed = new Map();

function drawMembers() {
  const online = new Set(chat.online);
  $('members').replaceChildren(...chat.members.map((member) => {
    const item = document.createElement('li');
    item.textContent = member;
    if (online.has(member)) item.className = 'online';
    item.title = online.has(member) ? 'online' : 'offline';
    return item;
  }));
}

/** The line of a message, or nothing (a player the reader blocked, a removal). */
function line(message, blocked) {
  const [kind, fields] = Object.entries(message.action ?? {})[0] ?? [];
  if (kind === 'remove' || kind === 'purge' || (!kind && blocked.has(message.user_id))) return null;
  const item = document.createElement('li');
  if (kind) {
    item.className = 'system';
    item.textContent = `${message.user_id}: ${kind.replace('_', ' ')} ${fields.user_id ?? ''}`.trim();
  } else if (message.removed || removed.has(message.seq)) {
    const by = message.removed?.by ?? removed.get(message.seq);
    item.className = 'removed';
    item.textContent = `${message.user_id}: (removed${by ? ` by ${by}` : ''})`;
  } else {
    item.className = message.system ? 'system' : '';
    item.textContent = `${message.user_id}: ${message.body}`;
  }
  return item;
}

/** Changes the conversation (text only: never HTML), staying at the end if it was there. */
function drawn(change) {
  const box = $('lines');
  const atEnd = box.scrollHeight - box.scrollTop - box.clientHeight < 40;
  change(box, new Set(chat.blocked));
  if (atEnd) box.scrollTop = box.scrollHeight;
}

/** Draws the whole conversation again (a removal, a block, a reset). */
function drawLines() {
  drawn((box, blocked) => box.replaceChildren(...said.map((message) => line(message, blocked)).filter(Boolean)));
}

/** The lines kept: a long room drops its oldest, a hundred at a time. */
const KEPT = 500;

let typingTimer;
function typingStopped(who) {
  if (who === undefined || $('typing').dataset.user === who) $('typing').textContent = '';
}

chat.on('message', (message) => {
  const [kind, fields] = Object.entries(message.action ?? {})[0] ?? [];
  if (kind === 'remove') removed.set(fields.seq, message.user_id);
  if (kind === 'purge') {
    for (const earlier of said) if (earlier.user_id === fields.user_id) removed.set(earlier.seq, message.user_id);
  }
  said.push(message);
  if (said.length > KEPT + 100 || kind === 'remove' || kind === 'purge') {
    said = said.slice(-KEPT);
    drawLines();
  } else {
    drawn((box, blocked) => {
      const item = line(message, blocked);
      if (item) box.append(item);
    });
  }
  typingStopped(message.user_id);
});
chat.on('reset', () => { said = []; removed.clear(); drawLines(); });
chat.on('blocked', ({ user_id: who }) => { typingStopped(who); drawLines(); });
chat.on('unblocked', drawLines);
chat.on('state', ({ state, reason }) => {
  $('state').textContent = state === 'closed' ? CLOSED[reason] ?? 'Closed.' : STATES[state] ?? state;
});
for (const type of ['welcome', 'member_joined', 'member_left', 'presence']) chat.on(type, drawMembers);
chat.on('typing', ({ user_id: who }) => {
  $('typing').textContent = `${who} is typing…`;
  $('typing').dataset.user = who;
  clearTimeout(typingTimer);
  typingTimer = setTimeout(typingStopped, 4000);
});
chat.on('error', (error) => { $('notice').textContent = error.message; });

$('message').addEventListener('input', () => chat.typing());
$('composer').addEventListener('submit', async (event) => {
  event.preventDefault();
  const body = $('message').value;
  if (!body.trim()) return;
  $('message').value = '';
  $('notice').textContent = '';
  try {
    await chat.send(body);
  } catch (error) {
    $('message').value ||= body;
    $('notice').textContent = `Not sent: ${error.message}`;
  }
});

chat.start().then(drawMembers, (error) => { $('notice').textContent = error.message; });
