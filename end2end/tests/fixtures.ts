// Shared fixtures and helpers for the Embedded Chat end-to-end tests.
//
// `users` opens each person in their OWN browser context (separate cookies,
// storage and websocket), watches every page for console errors/warnings
// (hydration problems show up there) and uncaught page errors, and fails the
// test after it ran if any were seen. All tests share one database per run,
// so every test builds its own room and user names with `unique()`.
import {
  test as base,
  expect,
  type APIRequestContext,
  type BrowserContext,
  type Locator,
  type Page,
} from '@playwright/test';

/** A name nobody else in this run uses: `${prefix}-<time>-<random>`. */
export function unique(prefix: string): string {
  return `${prefix}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 7)}`;
}

/** A fresh room name for one test. */
export function uniqueRoom(prefix = 'room'): string {
  return unique(prefix);
}

/** The address of a room page. */
export function roomPath(user: string, room: string, extra = ''): string {
  const q = new URLSearchParams({ user_id: user, channel_id: room });
  return `/chat_room?${q.toString()}${extra ? `&${extra}` : ''}`;
}

export interface OpenOptions {
  /** Extra query string, e.g. `is_embedded=true` or `embed=1`. */
  extra?: string;
  /** Wait for the live connection ("Connected"); default true. */
  connected?: boolean;
  /** Open the page through another origin, e.g. a test proxy's. */
  origin?: string;
  /** Console messages this test expects (e.g. a websocket it cuts on purpose). */
  allowConsole?: RegExp[];
  /** Called before the page is opened (to change the browser's behaviour, route its traffic). */
  prepare?: (page: Page) => Promise<void>;
}

export interface Users {
  /** Opens the room page for `user` in a new browser context. */
  open(user: string, room: string, options?: OpenOptions): Promise<Page>;
  /** Opens any path in a new browser context (watched like room pages). */
  openPath(label: string, path: string, options?: Pick<OpenOptions, 'allowConsole' | 'prepare'>): Promise<Page>;
}

interface Watched {
  label: string;
  context: BrowserContext;
  problems: string[];
  allowed: RegExp[];
}

// ---- Locators of the room page (role / label based) -----------------------

export const room = {
  status: (page: Page): Locator => page.getByRole('status'),
  conversation: (page: Page): Locator => page.getByRole('log', { name: 'Conversation' }),
  /** Each message's "user: text" (without its time). */
  lines: (page: Page): Locator =>
    page.getByRole('log', { name: 'Conversation' }).getByRole('listitem').locator('.line'),
  /** Each message's list item (its box, for what is in view). */
  items: (page: Page): Locator => page.getByRole('log', { name: 'Conversation' }).getByRole('listitem'),
  /** Each message's time (`<time datetime>`). */
  times: (page: Page): Locator => page.getByRole('log', { name: 'Conversation' }).locator('time'),
  /** The scrolling box around the conversation. */
  scroller: (page: Page): Locator => page.getByRole('region', { name: 'Messages' }),
  loadOlderButton: (page: Page): Locator => page.getByRole('button', { name: /older messages/ }),
  newMessagesButton: (page: Page): Locator => page.getByRole('button', { name: /New messages/ }),
  emptyNote: (page: Page): Locator => page.getByText('No messages yet. Say hello!'),
  messageBox: (page: Page): Locator => page.getByRole('textbox', { name: 'Message' }),
  sendButton: (page: Page): Locator => page.getByRole('button', { name: 'Send' }),
  membersHeading: (page: Page): Locator => page.getByRole('heading', { name: /Users in room/ }),
  members: (page: Page): Locator => page.getByRole('list', { name: /Users in room/ }).getByRole('listitem'),
  addUserHeading: (page: Page): Locator => page.getByRole('heading', { name: 'Add user to room' }),
  addUserBox: (page: Page): Locator => page.getByLabel('User to add'),
  addUserButton: (page: Page): Locator => page.getByRole('button', { name: 'Add user' }),
  leaveButton: (page: Page): Locator => page.getByRole('button', { name: 'Leave room' }),
  brand: (page: Page): Locator => page.getByRole('link', { name: 'Embedded Chat' }),
};

/** Counts the presence frames about `user` that reach `page` on sockets it opens from now on (a reload, or before `goto`). */
export function countPresenceFrames(page: Page, user: string): { online: number; offline: number } {
  const seen = { online: 0, offline: 0 };
  page.on('websocket', (ws) => {
    ws.on('framereceived', (frame) => {
      if (typeof frame.payload !== 'string') return;
      const data = JSON.parse(frame.payload);
      if (data.type === 'presence' && data.user_id === user) {
        seen[data.online ? 'online' : 'offline'] += 1;
      }
    });
  });
  return seen;
}

/** Types `text` in the message box and presses Enter. */
export async function sendWithEnter(page: Page, text: string): Promise<void> {
  const box = room.messageBox(page);
  await box.fill(text);
  await box.press('Enter');
}

/** Waits until the page's live connection is up (hydrated and welcomed). */
export async function waitConnected(page: Page): Promise<void> {
  await expect(room.status(page)).toHaveText('Connected');
}

/** Reloads a room page and waits for it to be live again. */
export async function reloadRoom(page: Page): Promise<void> {
  await page.reload();
  await waitConnected(page);
}

/** Messages each seeding user sends in a row (below the server's burst limit). */
const SEED_RUN = 15;

/** Who sends message `i` (from 1) when `senders` seed a room. */
export function seedAuthor(senders: string[], i: number): string {
  return senders[Math.floor((i - 1) / SEED_RUN) % senders.length];
}

/**
 * Fills a room with `count` messages "message 1" … "message N", the way a
 * page without JavaScript sends: opening the room makes each sender a
 * member, then each message is a form post to the `send_message` server
 * function. Senders take turns, SEED_RUN messages each (see `seedAuthor`),
 * so the per-user rate limit does not slow seeding down.
 */
export async function seedMessages(
  request: APIRequestContext,
  senders: string | string[],
  roomName: string,
  count: number,
): Promise<void> {
  const list = typeof senders === 'string' ? [senders] : senders;
  for (const user of list) {
    expect((await request.get(roomPath(user, roomName))).ok()).toBeTruthy();
  }
  const run = Math.random().toString(36).slice(2, 8);
  for (let i = 1; i <= count; i++) {
    const user = seedAuthor(list, i);
    const text = `message ${i}`;
    // The server limits how fast one user sends: wait and retry when told.
    for (let attempt = 0; ; attempt++) {
      const response = await request.post('/api/send_message', {
        form: { channel_id: roomName, user_id: user, client_msg_id: `seed-${run}-${i}`, body: text },
        headers: { accept: 'application/json' },
        maxRedirects: 0,
      });
      if (response.status() === 429 && attempt < 50) {
        await new Promise((resolve) => setTimeout(resolve, 200));
        continue;
      }
      expect(response.status(), await response.text()).toBeLessThan(400);
      break;
    }
  }
}

/** Pause used ONLY to assert that something does not happen. */
export const QUIET_MS = 700;

// ---- The fixture ------------------------------------------------------------

export const test = base.extend<{ users: Users }>({
  users: async ({ browser, baseURL }, use, testInfo) => {
    const watched: Watched[] = [];

    const watch = async (label: string, allowed: RegExp[] = []): Promise<{ page: Page; entry: Watched }> => {
      const context = await browser.newContext({ baseURL });
      const entry: Watched = { label, context, problems: [], allowed };
      watched.push(entry);
      const page = await context.newPage();
      page.on('console', (msg) => {
        const type = msg.type();
        if ((type === 'error' || type === 'warning') && !entry.allowed.some((re) => re.test(msg.text()))) {
          const where = msg.location()?.url ? ` (${msg.location().url})` : '';
          entry.problems.push(`console.${type} on ${page.url()}: ${msg.text()}${where}`);
        }
      });
      page.on('pageerror', (err) => {
        entry.problems.push(`pageerror on ${page.url()}: ${err.message}`);
      });
      return { page, entry };
    };

    const users: Users = {
      async open(user, roomName, options = {}) {
        const { page } = await watch(`${user} in ${roomName}`, options.allowConsole);
        await options.prepare?.(page);
        await page.goto(`${options.origin ?? ''}${roomPath(user, roomName, options.extra)}`);
        if (options.connected ?? true) {
          await waitConnected(page);
        }
        return page;
      },
      async openPath(label, path, options = {}) {
        const { page } = await watch(label, options.allowConsole);
        await options.prepare?.(page);
        await page.goto(path);
        return page;
      },
    };

    await use(users);

    // Snapshot what was seen during the test, then close everything.
    const report = watched.flatMap((w) => w.problems.map((p) => `[${w.label}] ${p}`));
    for (const w of watched) {
      await w.context.close().catch(() => {});
    }
    if (report.length > 0) {
      await testInfo.attach('console-problems', { body: report.join('\n'), contentType: 'text/plain' });
    }
    expect(report, `console errors/warnings or page errors:\n${report.join('\n')}`).toEqual([]);
  },
});

export { expect };
