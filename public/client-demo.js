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
const lines = new Map(); // seq → its <li>

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

function blank(seq, by) {
  const item = lines.get(seq);
  if (!item) return;
  item.className = 'removed';
  item.textContent = `${item.dataset.author}: (removed${by ? ` by ${by}` : ''})`;
}

function drawLine(message) {
  const [kind, fields] = Object.entries(message.action ?? {})[0] ?? [];
  if (kind === 'remove') return blank(fields.seq, message.user_id);
  if (kind === 'purge') {
    for (const [seq, item] of lines) if (item.dataset.author === fields.user_id && seq < message.seq) blank(seq);
    return;
  }
  const item = document.createElement('li');
  item.dataset.author = message.user_id;
  if (kind) {
    item.className = 'system';
    item.textContent = `${message.user_id}: ${kind.replace('_', ' ')} ${fields.user_id ?? ''}`.trim();
  } else if (chat.blocked.includes(message.user_id)) {
    return;
  } else {
    item.className = message.system ? 'system' : '';
    item.textContent = message.removed ? `${message.user_id}: (removed)` : `${message.user_id}: ${message.body}`;
  }
  lines.set(message.seq, item);
  const box = $('lines');
  const atEnd = box.scrollHeight - box.scrollTop - box.clientHeight < 40;
  box.append(item);
  if (atEnd) box.scrollTop = box.scrollHeight;
}

let typingTimer;
chat.on('message', (message) => {
  drawLine(message);
  if ($('typing').dataset.user === message.user_id) $('typing').textContent = '';
});
chat.on('reset', () => { lines.clear(); $('lines').replaceChildren(); });
chat.on('state', ({ state, reason }) => {
  $('state').textContent = state === 'closed' ? CLOSED[reason] ?? 'Closed.' : STATES[state] ?? state;
});
for (const type of ['welcome', 'member_joined', 'member_left', 'presence']) chat.on(type, drawMembers);
chat.on('typing', ({ user_id: who }) => {
  $('typing').textContent = `${who} is typing…`;
  $('typing').dataset.user = who;
  clearTimeout(typingTimer);
  typingTimer = setTimeout(() => { $('typing').textContent = ''; }, 4000);
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
