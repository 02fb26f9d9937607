// The room in a second browser engine: Debian's Firefox ESR, driven over
// WebDriver BiDi with puppeteer-core (no browser download).
//
// The room stream is a websocket served by our own RFC 6455 implementation
// (engine/src/websocket.rs) and the room is hydrated WASM; the Playwright
// suite checks both in Chromium only. These tests check them against
// another engine: joining (member list, "Connected"), messages in order and
// unicode intact in both pages, closing and leaving, the stream coming back
// after a server restart without duplicates, and no console errors or page
// errors in Firefox; and the JavaScript client (public/chat-client.js) in a
// page of its own.
//
// Run with `npm run test:firefox` in end2end/ (scripts/test runs it after
// Playwright). Like playwright.config.ts it starts the release server
// (./target/release/server, built by scripts/build-release) on its own port
// (FIREFOX_E2E_PORT, default 8093) with a fresh SQLite file, and drives
// /usr/bin/firefox-esr (FIREFOX_PATH overrides it); the server's
// stderr goes to target/e2e-firefox-server.log.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import puppeteer from 'puppeteer-core';

const port = Number(process.env.FIREFOX_E2E_PORT ?? 8093);
const origin = `http://127.0.0.1:${port}`;
const repo = fileURLToPath(new URL('../..', import.meta.url));
const firefox = process.env.FIREFOX_PATH ?? '/usr/bin/firefox-esr';
const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'embedded-chat-firefox-'));
const serverLog = path.join(repo, 'target', 'e2e-firefox-server.log');
/** Pause used ONLY to check that something does not happen (a late duplicate). */
const QUIET_MS = 700;

// ---- The server and the browser ---------------------------------------------

let server;
let browser;
/** Console errors and page errors seen in any page, with the page's address. */
const problems = [];
/** Console warnings: reported, not failed on. */
const warnings = [];
/** While set, the websocket errors Firefox reports when the server is down are expected. */
let serverDown = false;
const DOWN_NOISE = /can.t establish a connection to the server at ws:|connection to ws:.* was interrupted/i;

async function startServer() {
  if (!fs.existsSync(path.join(repo, 'target/release/server'))) {
    throw new Error('target/release/server is missing: build it with scripts/build-release');
  }
  fs.mkdirSync(path.dirname(serverLog), { recursive: true });
  const log = fs.openSync(serverLog, 'a');
  const child = spawn('./target/release/server', [], {
    cwd: repo,
    stdio: ['ignore', 'ignore', log],
    env: {
      PATH: process.env.PATH,
      LEPTOS_SITE_ADDR: `127.0.0.1:${port}`,
      LEPTOS_SITE_ROOT: 'target/site',
      DATABASE_URL: `sqlite://${dataDir}/e2e.db`,
      RUST_LOG: 'warn',
      MESSAGES_PER_SEC: '1000',
      MESSAGE_BURST: '1000',
    },
  });
  fs.closeSync(log);
  server = { child, ended: false };
  server.gone = new Promise((resolve) => {
    child.once('exit', resolve);
    child.once('error', resolve);
  }).then(() => { server.ended = true; });
  for (let i = 0; i < 300 && !server.ended; i++) {
    if (await fetch(`${origin}/readyz`).then((r) => r.status === 200, () => false)) return;
    await sleep(100);
  }
  await stopServer('SIGKILL');
  throw new Error(`the server on port ${port} did not become ready (see ${serverLog})`);
}

/** SIGTERM: the server closes every stream with 1001 "going away" and exits. */
async function stopServer(signal = 'SIGTERM') {
  if (!server || server.ended) return;
  server.child.kill(signal);
  await server.gone;
}

before(async () => {
  await startServer();
  browser = await puppeteer.launch({
    browser: 'firefox',
    protocol: 'webDriverBiDi',
    executablePath: firefox,
    headless: true,
  });
});

after(async () => {
  await browser?.close().catch(() => {});
  await stopServer();
  fs.rmSync(dataDir, { recursive: true, force: true });
});

// ---- Helpers ------------------------------------------------------------------

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A name nobody else in this run uses. */
function unique(prefix) {
  return `${prefix}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 7)}`;
}

/** Retries `check` (which asserts) until it passes; after `timeout` ms its last failure is the test's. */
async function eventually(check, timeout = 7_000) {
  const deadline = Date.now() + timeout;
  for (;;) {
    try {
      return await check();
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await sleep(100);
    }
  }
}

/** Opens the room page for `user` in a browser context of its own (its own cookies and websocket). */
async function open(t, user, room) {
  const context = await browser.createBrowserContext();
  t.after(() => context.close().catch(() => {}));
  const page = await context.newPage();
  const report = (kind, message) => {
    if (!(serverDown && DOWN_NOISE.test(message))) problems.push(`${kind} in ${user}'s page ${page.url()}: ${message}`);
  };
  page.on('console', (msg) => {
    if (msg.type() === 'error') report('console.error', msg.text());
    if (msg.type() === 'warn') warnings.push(`console.warn in ${user}'s page ${page.url()}: ${msg.text()}`);
  });
  // Firefox reports a websocket that cannot connect as a page error.
  page.on('pageerror', (err) => report('pageerror', err.message ?? String(err)));
  const q = new URLSearchParams({ user_id: user, channel_id: room });
  await page.goto(`${origin}/chat_room?${q}`);
  await eventually(async () => assert.equal(await status(page), 'Connected'), 10_000);
  return page;
}

const text = (page, selector) =>
  page.$$eval(selector, (els) => els.map((el) => el.textContent.replace(/\s+/g, ' ').trim()));
/** The header's connection state: Connecting… / Connected / Reconnecting… / Offline. */
const status = async (page) => (await text(page, 'header [role="status"]'))[0];
/** The "Users in room" list, one name each. */
const members = (page) => text(page, 'ul[aria-labelledby="members-heading"] > li');
/** Each message's "user: text" line (with " (sending…)" until the server confirms it). */
const lines = (page) => text(page, '[role="log"][aria-label="Conversation"] li .line');
/** The presence dot's label of `user`: "online" or "offline". */
const presence = (page, user) =>
  page.$$eval(
    'ul[aria-labelledby="members-heading"] > li',
    (items, user) => items.find((li) => li.textContent.trim() === user)?.querySelector('[role="img"]')?.getAttribute('aria-label'),
    user,
  );

/** Types `message` in the composer and sends it with Enter, or with the Send button. */
async function send(page, message, how = 'enter') {
  await page.type('#message-input', message);
  if (how === 'enter') await page.keyboard.press('Enter');
  else await page.click('form.composer button[type="submit"]');
  await eventually(async () => assert.equal(await page.$eval('#message-input', (el) => el.value), ''));
}

// ---- The tests ------------------------------------------------------------------

test('two users in separate contexts join a room: both listed in both pages, both connected', async (t) => {
  const room = unique('ff-join');
  const [ana, bob] = [unique('ana'), unique('bob')];
  const anaPage = await open(t, ana, room);
  assert.deepEqual(await members(anaPage), [ana]);

  const bobPage = await open(t, bob, room);
  for (const page of [anaPage, bobPage]) {
    await eventually(async () => assert.deepEqual(await members(page), [ana, bob]));
    await eventually(async () => assert.equal(await presence(page, bob), 'online'));
    assert.equal(await presence(page, ana), 'online');
    assert.equal(await status(page), 'Connected');
    assert.match((await text(page, '#members-heading'))[0], /\(2\)$/);
  }
});

test('messages from both users arrive in both pages, in order, once, unicode intact', async (t) => {
  const room = unique('ff-chat');
  const [ana, bob] = [unique('ana'), unique('bob')];
  const anaPage = await open(t, ana, room);
  const bobPage = await open(t, bob, room);
  await eventually(async () => assert.deepEqual(await members(anaPage), [ana, bob]));

  const sent = [
    [anaPage, ana, 'first', 'enter'],
    [bobPage, bob, 'second, with the button', 'button'],
    [anaPage, ana, 'héllo 👋 ✓', 'enter'],
    [bobPage, bob, 'Grüße — 日本語 — ü', 'enter'],
    [anaPage, ana, 'third', 'button'],
  ];
  const expected = [];
  for (const [page, user, message, how] of sent) {
    await send(page, message, how);
    expected.push(`${user}: ${message}`);
    // Both pages show the conversation so far, in order, nothing pending.
    for (const p of [anaPage, bobPage]) {
      await eventually(async () => assert.deepEqual(await lines(p), expected));
    }
  }
  // A burst without waiting in between still arrives in order.
  for (const n of [1, 2, 3, 4]) await send(bobPage, `burst ${n}`);
  expected.push(...[1, 2, 3, 4].map((n) => `${bob}: burst ${n}`));
  for (const p of [anaPage, bobPage]) {
    await eventually(async () => assert.deepEqual(await lines(p), expected));
  }
  await sleep(QUIET_MS);
  assert.deepEqual(await lines(anaPage), expected);
  assert.deepEqual(await lines(bobPage), expected);

  // The history as the server renders it (and Firefox hydrates it) after a reload.
  await bobPage.reload();
  await eventually(async () => assert.equal(await status(bobPage), 'Connected'), 10_000);
  assert.deepEqual(await lines(bobPage), expected);
});

test('closing a page takes its user offline for the others; leaving the room removes them', async (t) => {
  const room = unique('ff-leave');
  const [ana, bob] = [unique('ana'), unique('bob')];
  const anaPage = await open(t, ana, room);
  let bobPage = await open(t, bob, room);
  await eventually(async () => assert.equal(await presence(anaPage, bob), 'online'));

  // Closing the page ends bob's stream: he stays a member, shown offline.
  await bobPage.close();
  await eventually(async () => assert.equal(await presence(anaPage, bob), 'offline'), 5_000);
  assert.deepEqual(await members(anaPage), [ana, bob]);

  // Leaving (the header's button) takes him off ana's list, live.
  bobPage = await open(t, bob, room);
  await eventually(async () => assert.equal(await presence(anaPage, bob), 'online'));
  await bobPage.click('form.leave-form button[type="submit"]');
  await eventually(async () => assert.equal(new URL(bobPage.url()).pathname, '/'));
  await eventually(async () => assert.deepEqual(await members(anaPage), [ana]));
  assert.match((await text(anaPage, '#members-heading'))[0], /\(1\)$/);
});

test('after a server restart the stream reconnects: messages arrive in both pages, none twice', async (t) => {
  const room = unique('ff-restart');
  const [ana, bob] = [unique('ana'), unique('bob')];
  const anaPage = await open(t, ana, room);
  const bobPage = await open(t, bob, room);
  await send(anaPage, 'before the restart');
  const before = [`${ana}: before the restart`];
  await eventually(async () => assert.deepEqual(await lines(bobPage), before));

  serverDown = true;
  try {
    await stopServer();
    for (const page of [anaPage, bobPage]) {
      await eventually(async () => assert.match(await status(page), /Reconnecting…|Offline/));
    }
    // Typed while the server is down: shown as pending, sent after reconnecting.
    await send(bobPage, 'typed while down');
    await eventually(async () => assert.deepEqual(await lines(bobPage), [...before, `${bob}: typed while down (sending…)`]));

    await startServer();
    for (const page of [anaPage, bobPage]) {
      await eventually(async () => assert.equal(await status(page), 'Connected'), 20_000);
    }
  } finally {
    serverDown = false;
  }
  const caughtUp = [...before, `${bob}: typed while down`];
  for (const page of [anaPage, bobPage]) {
    await eventually(async () => assert.deepEqual(await lines(page), caughtUp));
  }

  await send(anaPage, 'after the restart ✓');
  const expected = [...caughtUp, `${ana}: after the restart ✓`];
  for (const page of [anaPage, bobPage]) {
    await eventually(async () => assert.deepEqual(await lines(page), expected));
  }
  await sleep(QUIET_MS);
  assert.deepEqual(await lines(anaPage), expected);
  assert.deepEqual(await lines(bobPage), expected);
});

test("the JavaScript client, in a game's page, chats with a room page: once each, in order", async (t) => {
  const room = unique('ff-client');
  const [ana, bot] = [unique('ana'), unique('bot')];
  const anaPage = await open(t, ana, room);
  await send(anaPage, 'hello, game');

  // The game's page: any page of the chat's site will do (the client is served there).
  const context = await browser.createBrowserContext();
  t.after(() => context.close().catch(() => {}));
  const game = await context.newPage();
  game.on('pageerror', (err) => problems.push(`pageerror in the game's page: ${err.message ?? err}`));
  await game.goto(`${origin}/`);
  const joined = await game.evaluate(async (room, bot) => {
    const { ChatClient } = await import('/chat-client.js');
    const chat = new ChatClient({ channelId: room, userId: bot });
    window.lines = [];
    chat.on('message', (m) => window.lines.push(`${m.seq} ${m.user_id}: ${m.body}`));
    window.chat = chat;
    return (await chat.start()).members;
  }, room, bot);
  assert.deepEqual(joined, [ana, bot]);
  await eventually(async () => assert.equal(await game.evaluate(() => window.chat.state), 'connected'));
  await eventually(async () => assert.deepEqual(await members(anaPage), [ana, bot]));

  const sent = await game.evaluate(() => window.chat.send('héllo from the game 👋'));
  assert.equal(sent.seq, 2);
  await send(anaPage, 'Grüße zurück');
  const expected = [`1 ${ana}: hello, game`, `2 ${bot}: héllo from the game 👋`, `3 ${ana}: Grüße zurück`];
  await eventually(async () => assert.deepEqual(await game.evaluate(() => window.lines), expected));
  await eventually(async () =>
    assert.deepEqual(await lines(anaPage), expected.map((l) => l.slice(l.indexOf(' ') + 1))));
  const refused = await game.evaluate(() =>
    window.chat.send('x'.repeat(2001)).then(() => 'stored', (e) => `${e.name} ${e.code}`));
  assert.equal(refused, 'ChatError invalid_input');
  await sleep(QUIET_MS);
  assert.deepEqual(await game.evaluate(() => window.lines), expected);
});

test('Firefox logged no console errors and no page errors', (t) => {
  for (const warning of warnings) t.diagnostic(warning);
  assert.deepEqual(problems, [], `console errors or page errors in Firefox:\n${problems.join('\n')}`);
});
