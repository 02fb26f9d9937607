// A game that draws its own chat: its page, on its own site (another origin,
// served by the test), loads the JavaScript client from the chat server and
// talks with players on the chat's room pages. The chat server lists the
// game's site in ALLOWED_ORIGINS; a site it does not list gets a clear error.
import { createHmac } from 'node:crypto';
import * as http from 'http';
import type { Browser, Page } from '@playwright/test';
import { CuttableProxy } from './proxy';
import { ServerProcess } from './server_process';
import { expect, room, sendWithEnter, test, unique, uniqueRoom } from './fixtures';

const SECRET = 'playwright-client-secret-0123456789abcdef';
const base = Number(process.env.E2E_PORT ?? 8091);
// The game's site: a page of its own, on another origin than the chat's.
const gamePort = base + 73;
const GAME = `http://127.0.0.1:${gamePort}`;
// The same page under another name: another origin, one the chat does not list.
const OTHER = `http://localhost:${gamePort}`;
const gameSite = http.createServer((_, response) => {
  response.writeHead(200, { 'content-type': 'text/html' });
  response.end('<!doctype html><title>A game</title><link rel="icon" href="data:,"><h1>A game</h1>');
});
const MODERATOR = 'js-moderator';
const open = new ServerProcess(base + 71, {
  ALLOWED_ORIGINS: GAME,
  MESSAGES_PER_SEC: '1000',
  MESSAGE_BURST: '1000',
  MODERATOR_IDS: MODERATOR,
});
const signed = new ServerProcess(base + 72, { ALLOWED_ORIGINS: GAME, CHAT_TOKEN_SECRET: SECRET });

function chatToken(userId: string, channelId: string, ttlSecs: number): string {
  const exp = Math.floor(Date.now() / 1000) + ttlSecs;
  const payload = Buffer.from(JSON.stringify({ u: userId, c: channelId, exp })).toString('base64url');
  return `${payload}.${createHmac('sha256', SECRET).update(payload).digest('base64url')}`;
}

/** What the game's page keeps of its client: every event, in order. */
interface Seen {
  messages: Array<{ seq: number; user_id: string; body: string }>;
  states: string[];
  events: string[];
}

/**
 * Opens the game's page at `site` in a browser context of its own and
 * makes `window.chat`, a client for `user` in `roomName` against `chat`
 * (an origin), recording what it hears in `window.seen`. `problems`
 * collects page errors and console errors other than `noise`.
 */
async function openGame(
  browser: Browser,
  chat: string,
  user: string,
  roomName: string,
  { site = GAME, options = '{}', noise = [] as RegExp[] } = {},
): Promise<{ page: Page; problems: string[] }> {
  const context = await browser.newContext();
  const page = await context.newPage();
  const problems: string[] = [];
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error' && !noise.some((re) => re.test(m.text()))) problems.push(`console: ${m.text()}`);
  });
  await page.goto(`${site}/`);
  await page.evaluate(
    async ({ chat, user, roomName, options }) => {
      const { ChatClient } = await import(`${chat}/chat-client.js`);
      const extra = new Function(`return (${options});`)();
      const client = new ChatClient({ server: chat, channelId: roomName, userId: user, ...extra });
      const seen = { messages: [] as unknown[], states: [] as string[], events: [] as string[] };
      client.on('message', (m: unknown) => seen.messages.push(m));
      client.on('state', ({ state, reason }: { state: string; reason?: string }) =>
        seen.states.push(reason ? `${state}:${reason}` : state));
      for (const type of ['member_joined', 'member_left', 'presence', 'typing', 'blocked', 'unblocked', 'reset']) {
        client.on(type, (e: Record<string, unknown>) => seen.events.push(`${type} ${JSON.stringify(e)}`));
      }
      Object.assign(window, { chat: client, seen });
    },
    { chat, user, roomName, options },
  );
  return { page, problems };
}

const seen = (page: Page): Promise<Seen> => page.evaluate(() => (window as any).seen);
const bodies = async (page: Page): Promise<string[]> =>
  (await seen(page)).messages.map((m) => `${m.user_id}: ${m.body}`);

/** The client's refusal of `call` (a script run in the page): `code: message`. */
const refusal = (page: Page, call: string): Promise<string> =>
  page.evaluate(async (call) => {
    try {
      await new Function('chat', `return ${call};`)((window as any).chat);
      return 'accepted';
    } catch (e: any) {
      return `${e.name} ${e.code}: ${e.message}`;
    }
  }, call);

test.describe('The JavaScript client', () => {
  test.beforeAll(async () => {
    await new Promise<void>((resolve) => gameSite.listen(gamePort, resolve));
    await open.start();
    await signed.start();
  });
  test.afterAll(async () => {
    await open.stop();
    await signed.stop();
    await new Promise((resolve) => gameSite.close(resolve));
  });

  test("a game's own page chats live with the room's pages, both ways, and hears refusals as sentences", async ({ users, browser }) => {
    const roomName = uniqueRoom('client');
    const [ana, bot] = [unique('ana'), unique('bot')];
    const anaPage = await users.open(ana, roomName, { origin: open.origin });
    await sendWithEnter(anaPage, 'before the game came');
    await expect(room.lines(anaPage)).toHaveText([`${ana}: before the game came`]);

    const { page: game, problems } = await openGame(browser, open.origin, bot, roomName, {
      noise: [/Failed to load resource: .* 400/], // the malformed history request below
    });
    const joined = await game.evaluate(async () => {
      const room = await (window as any).chat.start();
      return { members: room.members, last_seq: room.last_seq };
    });
    expect(joined).toEqual({ members: [ana, bot], last_seq: 1 });
    await expect.poll(() => game.evaluate(() => (window as any).chat.state)).toBe('connected');
    // The history came with the join, as events; the page sees the newcomer, online.
    expect(await bodies(game)).toEqual([`${ana}: before the game came`]);
    await expect(room.members(anaPage)).toHaveText([ana, bot]);
    await expect(room.members(anaPage).filter({ hasText: bot }).getByRole('img')).toHaveAccessibleName('online');

    await sendWithEnter(anaPage, 'hello, game');
    await expect.poll(() => bodies(game)).toEqual([`${ana}: before the game came`, `${ana}: hello, game`]);

    const sent = await game.evaluate(() => (window as any).chat.send('hello from the game'));
    expect(sent.seq).toBe(3);
    await expect(room.lines(anaPage)).toHaveText([
      `${ana}: before the game came`,
      `${ana}: hello, game`,
      `${bot}: hello from the game`,
    ]);
    await game.evaluate(() => (window as any).chat.typing());
    await expect(anaPage.getByText(`${bot} is typing…`)).toBeVisible();

    // Refusals: a sentence each, nothing stored, the connection stays.
    expect(await refusal(game, "chat.send('x'.repeat(2001))")).toMatch(/^ChatError invalid_input: .*2000/);
    expect(await refusal(game, `chat.act({ kick: { user_id: ${JSON.stringify(ana)} } })`)).toBe(
      'ChatError forbidden: Only a moderator can do that.',
    );
    expect(await refusal(game, "chat.olderMessages('not a seq')")).toBe('ChatError invalid_input: The request was malformed.');
    expect(await game.evaluate(() => (window as any).chat.olderMessages(2))).toEqual({
      messages: [expect.objectContaining({ seq: 1, body: 'before the game came' })],
      has_older: false,
    });
    expect(await game.evaluate(() => (window as any).chat.state)).toBe('connected');
    await expect(room.lines(anaPage)).toHaveCount(3);

    // Blocking from the game: ana's typing no longer reaches it.
    await game.evaluate((ana) => (window as any).chat.act({ block: { user_id: ana } }), ana);
    expect(await game.evaluate(() => (window as any).chat.blocked)).toEqual([ana]);
    const before = (await seen(game)).events.length;
    await room.messageBox(anaPage).pressSequentially(' and typing away', { delay: 20 });
    await anaPage.waitForTimeout(700);
    const events = (await seen(game)).events;
    expect(events.slice(0, before)).toContain(`blocked {"user_id":"${ana}"}`);
    expect(events.slice(before)).toEqual([]);

    // Leaving: the page's list drops the game's player; the client closes.
    await game.evaluate(() => (window as any).chat.leave());
    await expect(room.members(anaPage)).toHaveText([ana]);
    expect((await seen(game)).states.at(-1)).toBe('closed:left');
    expect(await refusal(game, "chat.send('after leaving')")).toBe('ChatError closed: The chat connection was closed.');
    expect(problems).toEqual([]);
  });

  test("the client tells the server's time, whatever the device's clock says", async ({ browser }) => {
    const { page: game, problems } = await openGame(browser, open.origin, unique('bot'), uniqueRoom('clock'));
    // The game's device runs an hour fast.
    await game.clock.setFixedTime(Date.now() + 3_600_000);
    await game.evaluate(() => (window as any).chat.start());
    await expect.poll(() => game.evaluate(() => (window as any).chat.state)).toBe('connected');
    const [device, server] = await game.evaluate(() => [Date.now(), (window as any).chat.serverNow()]);
    expect(device - Date.now()).toBeGreaterThan(3_500_000);
    expect(Math.abs(server - Date.now())).toBeLessThan(5_000);
    expect(problems).toEqual([]);
  });

  test("the demo page draws a room with the client and talks with the room's page", async ({ users }) => {
    const roomName = uniqueRoom('client-demo');
    const [ana, bot] = [unique('ana'), unique('bot')];
    const anaPage = await users.open(ana, roomName, { origin: open.origin });
    const q = new URLSearchParams({ user_id: bot, channel_id: roomName });
    const demo = await users.openPath('the client demo', `${open.origin}/client-demo.html?${q}`);
    const log = demo.getByRole('log', { name: 'Conversation' }).getByRole('listitem');
    await expect(demo.getByRole('status')).toHaveText('Connected');
    await expect(demo.getByRole('list', { name: 'Players in the room' }).getByRole('listitem')).toHaveText([ana, bot]);
    await expect(room.members(anaPage)).toHaveText([ana, bot]);

    await sendWithEnter(anaPage, 'hello, demo');
    await expect(log).toHaveText([`${ana}: hello, demo`]);
    const box = demo.getByRole('textbox', { name: 'Message' });
    await box.pressSequentially('hi from a game', { delay: 10 });
    await expect(anaPage.getByText(`${bot} is typing…`)).toBeVisible();
    await box.press('Enter');
    await expect(room.lines(anaPage)).toHaveText([`${ana}: hello, demo`, `${bot}: hi from a game`]);
    await expect(log).toHaveText([`${ana}: hello, demo`, `${bot}: hi from a game`]);
    await box.fill('x'.repeat(2000) + 'y');
    await box.press('Enter');
    await expect(demo.getByRole('alert')).toHaveText(/^Not sent: .*2000/);
  });

  test('cut off, the client keeps its message and catches up: every message once, in order', async ({ users, browser }) => {
    const proxy = new CuttableProxy(open.port);
    await proxy.start();
    try {
      const roomName = uniqueRoom('client-cut');
      const [ana, bot] = [unique('ana'), unique('bot')];
      const anaPage = await users.open(ana, roomName, { origin: open.origin });
      // The game reaches the chat through a connection the test can cut.
      const { page: game, problems } = await openGame(browser, proxy.origin, bot, roomName, {
        noise: [/WebSocket connection to .* failed/, /Failed to load resource/],
      });
      await game.evaluate(() => (window as any).chat.start());
      await expect.poll(() => game.evaluate(() => (window as any).chat.state)).toBe('connected');

      proxy.cut();
      await expect.poll(() => game.evaluate(() => (window as any).chat.state)).toBe('reconnecting');
      // Sent while cut off: confirmed once the connection is back.
      const confirmed = game.evaluate(() => (window as any).chat.send('sent while cut off'));
      const five = ['one', 'two', 'three', 'four', 'five'];
      for (const text of five) await sendWithEnter(anaPage, text);
      await expect(room.lines(anaPage)).toHaveText(five.map((t) => `${ana}: ${t}`));

      proxy.restore();
      // As a browser says when its network comes back: the client tries at
      // once instead of waiting out its backoff.
      await game.evaluate(() => window.dispatchEvent(new Event('online')));
      expect((await confirmed).seq).toBe(6);
      await expect(room.lines(anaPage)).toHaveText([...five.map((t) => `${ana}: ${t}`), `${bot}: sent while cut off`]);
      await expect.poll(() => bodies(game)).toEqual([...five.map((t) => `${ana}: ${t}`), `${bot}: sent while cut off`]);
      await game.waitForTimeout(700);
      const { messages, states } = await seen(game);
      expect(messages.map((m) => m.seq)).toEqual([1, 2, 3, 4, 5, 6]);
      expect(states).toEqual(['connecting', 'connected', 'reconnecting', 'connected']);

      // A client that has seen up to 4 (from an earlier session) gets
      // exactly what follows; one that claims more than the room holds
      // is told to start over.
      const later = await openGame(browser, open.origin, ana, roomName, { options: '{ afterSeq: 4 }' });
      await later.page.evaluate(() => (window as any).chat.start());
      await expect.poll(() => bodies(later.page)).toEqual([`${ana}: five`, `${bot}: sent while cut off`]);
      const ahead = await openGame(browser, open.origin, ana, roomName, { options: '{ afterSeq: 999, join: false }' });
      await ahead.page.evaluate(() => (window as any).chat.start());
      const resets = () => seen(ahead.page).then((s) => s.events.filter((e) => e.startsWith('reset')));
      await expect.poll(resets).toEqual(['reset {"resume_after":6}']);
      await ahead.page.waitForTimeout(700);
      expect((await seen(ahead.page)).messages).toEqual([]);
      expect(await ahead.page.evaluate(() => (window as any).chat.lastSeq)).toBe(6);
      expect([...problems, ...later.problems, ...ahead.problems]).toEqual([]);
    } finally {
      await proxy.stop();
    }
  });

  test('kicked while away, the client hears why when it is back and closes for good', async ({ browser }) => {
    const proxy = new CuttableProxy(open.port);
    await proxy.start();
    try {
      const roomName = uniqueRoom('client-kick');
      const bot = unique('bot');
      const { page: game, problems } = await openGame(browser, proxy.origin, bot, roomName, {
        noise: [/WebSocket connection to .* failed/, /Failed to load resource/],
      });
      const moderator = await openGame(browser, open.origin, MODERATOR, roomName);
      await game.evaluate(() => (window as any).chat.start());
      await moderator.page.evaluate(() => (window as any).chat.start());
      await expect.poll(() => game.evaluate(() => (window as any).chat.state)).toBe('connected');

      proxy.cut();
      await expect.poll(() => game.evaluate(() => (window as any).chat.state)).toBe('reconnecting');
      const waiting = game.evaluate(() =>
        (window as any).chat.send('never sent').then(() => 'stored', (e: any) => `${e.name} ${e.code}`));
      // Said while it was away, then the kick: only the kick reaches it.
      await moderator.page.evaluate(() => (window as any).chat.send('a last word'));
      await moderator.page.evaluate((bot) => (window as any).chat.act({ kick: { user_id: bot, reason: 'spam' } }), bot);
      proxy.restore();
      await game.evaluate(() => window.dispatchEvent(new Event('online')));
      await expect.poll(() => seen(game).then((s) => s.states.at(-1))).toBe('closed:removed');
      const heard = (await seen(game)).messages as any[];
      expect(heard.map((m) => m.action)).toEqual([{ kick: { user_id: bot, reason: 'spam' } }]);
      expect(await waiting).toBe('ChatError closed');
      expect([...problems, ...moderator.problems]).toEqual([]);
    } finally {
      await proxy.stop();
    }
  });

  test('with signed identities the client asks for a fresh token when one has expired', async ({ browser }) => {
    const roomName = uniqueRoom('client-token');
    const bot = unique('bot');
    const { page: game, problems } = await openGame(browser, signed.origin, 'ignored', roomName, {
      options: '{ token: () => window.mintToken() }',
      noise: [/Failed to load resource/],
    });
    // The game's server mints tokens; the second one handed out has expired.
    let minted = 0;
    await game.exposeFunction('mintToken', () => chatToken(bot, roomName, ++minted === 2 ? -60 : 600));
    const joined = await game.evaluate(async () => (await (window as any).chat.start()).members);
    expect(joined).toEqual([bot]);
    await expect.poll(() => game.evaluate(() => (window as any).chat.state)).toBe('connected');
    expect(minted).toBe(3);
    const sent = await game.evaluate(() => (window as any).chat.send('signed and sent'));
    expect(sent.seq).toBe(1);

    // A token function whose tokens have all expired by the time the
    // stream opens: one fresh try, then closed for good.
    let handedOut = 0;
    const doomed = await openGame(browser, signed.origin, 'ignored', roomName, {
      options: '{ token: () => window.mintToken() }',
      noise: [/Failed to load resource/],
    });
    await doomed.page.exposeFunction('mintToken', () => chatToken(bot, roomName, ++handedOut === 1 ? 600 : -60));
    await doomed.page.evaluate(() => (window as any).chat.start());
    await expect.poll(() => seen(doomed.page).then((s) => s.states.at(-1))).toBe('closed:unauthorized');
    expect(handedOut).toBe(3);

    // A fixed token that has expired: a clear refusal, and the client is closed.
    const expired = chatToken(bot, roomName, -60);
    const stale = await openGame(browser, signed.origin, 'ignored', roomName, {
      options: `{ token: ${JSON.stringify(expired)} }`,
      noise: [/Failed to load resource/],
    });
    expect(await refusal(stale.page, 'chat.start()')).toMatch(/^ChatError unauthorized: .*expired/);
    expect((await seen(stale.page)).states).toEqual(['connecting', 'closed:refused']);

    // A site the chat does not list: told so, nothing joined.
    const other = await openGame(browser, signed.origin, 'ignored', roomName, {
      site: OTHER,
      options: `{ token: ${JSON.stringify(chatToken(unique('eve'), roomName, 600))} }`,
      noise: [/CORS|Failed to load resource|Access-Control/],
    });
    expect(await refusal(other.page, 'chat.start()')).toMatch(/^ChatError unreachable: .*ALLOWED_ORIGINS/);
    // The room as the server has it (a call without a browser's Origin).
    const asServer = await fetch(`${signed.origin}/api/join_room`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
      body: new URLSearchParams({ channel_id: roomName, user_id: bot, token: chatToken(bot, roomName, 600) }),
    });
    expect((await asServer.json()).members).toEqual([bot]);
    expect([...problems, ...doomed.problems, ...stale.problems, ...other.problems]).toEqual([]);
  });
});
