// Host side of the embedding demo (/embed-demo): what a game's page does to
// embed a chat room and hear from it. It loads the room in the iframe with
// `embed=1` and `parent_origin` set to this page's origin, then listens for
// the room's events, trusting only messages from the iframe's origin.
'use strict';

(() => {
  const frame = document.getElementById('chat-frame');
  const unread = document.getElementById('demo-unread');
  const log = document.getElementById('demo-log');
  if (!frame || !unread || !log) return;

  const field = (id) => (document.getElementById(id)?.value ?? '').trim();
  let chatOrigin = window.location.origin;
  const asked = field('demo-origin');
  if (asked) {
    try {
      chatOrigin = new URL(asked).origin;
    } catch {
      const item = document.createElement('li');
      item.textContent = `"${asked}" is not an origin; showing the room from this site instead.`;
      log.append(item);
    }
  }

  const src = new URL('/chat_room', chatOrigin);
  src.search = new URLSearchParams({
    user_id: field('demo-user') || 'player1',
    channel_id: field('demo-room') || 'lobby',
    embed: '1',
    parent_origin: window.location.origin,
  }).toString();
  frame.src = src.href;

  window.addEventListener('message', (event) => {
    // Anything else may post to this window too: check who is talking.
    if (event.origin !== chatOrigin || event.source !== frame.contentWindow) return;
    const data = event.data;
    if (!data || typeof data.type !== 'string' || typeof data.unread !== 'number') return;
    unread.textContent = String(data.unread);
    const item = document.createElement('li');
    const mentions = typeof data.mentions === 'number' && data.mentions > 0 ? ` · mentions ${data.mentions}` : '';
    item.textContent = `${data.type} · room ${data.room} · unread ${data.unread}${mentions}`;
    log.append(item);
  });
})();
