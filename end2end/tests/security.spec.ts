// Hostile text renders as text, and a server with a token secret admits
// only pages with a valid identity token, saying clearly when one has
// expired. Tokens are minted here the way the README tells game servers to.
import { createHmac } from 'node:crypto';
import { ServerProcess } from './server_process';
import { expect, room, sendWithEnter, test, unique, uniqueRoom } from './fixtures';

const HOSTILE = ['<img src=x onerror=alert(1)>', '<script>alert(2)</script>', '"><svg onload=alert(3)>'];
const SECRET = 'playwright-test-secret-0123456789abcdef';
// Chromium logs the refused page's 401 status.
const REFUSAL_NOISE = [/Failed to load resource/];

function chatToken(secret: string, userId: string, channelId: string, ttlSecs = 3600): string {
  const exp = Math.floor(Date.now() / 1000) + ttlSecs;
  const payload = Buffer.from(JSON.stringify({ u: userId, c: channelId, exp })).toString('base64url');
  return `${payload}.${createHmac('sha256', secret).update(payload).digest('base64url')}`;
}

test.describe('Hostile text', () => {
  test('messages and user ids that look like HTML render as text and run nothing', async ({ users }) => {
    const roomName = uniqueRoom('xss');
    const evilName = `${HOSTILE[0]}${unique('')}`.slice(0, 60);
    const watcher = unique('ana');
    const evil = await users.open(evilName, roomName);
    const ana = await users.open(watcher, roomName);
    const dialogs: string[] = [];
    for (const page of [evil, ana]) page.on('dialog', (d) => { dialogs.push(d.message()); void d.dismiss(); });

    for (const text of HOSTILE) await sendWithEnter(evil, text);
    await expect(room.lines(ana)).toHaveText(HOSTILE.map((t) => `${evilName}: ${t}`));
    await expect(room.members(ana)).toHaveText([evilName, watcher]);
    // After a reload the server-rendered HTML is just as inert.
    await ana.reload();
    await expect(room.lines(ana)).toHaveText(HOSTILE.map((t) => `${evilName}: ${t}`));
    await expect(ana.locator('.messages img, .messages svg[onload], .messages script')).toHaveCount(0);
    expect(dialogs).toEqual([]);
  });
});

test.describe('Text that hides or spills', () => {
  test('stacked accents and direction overrides are refused with a reason, names and text keep their own direction, an invisible character in a new name is refused', async ({ users }) => {
    const roomName = uniqueRoom('zalgo');
    const [ana, bob] = [unique('ana'), unique('bob')];
    const anaPage = await users.open(ana, roomName);
    const bobPage = await users.open(bob, roomName);

    const zalgo = 'h\u0315\u031b\u0340\u035d\u035e\u035c\u0360\u0361ello';
    await sendWithEnter(anaPage, zalgo);
    await expect(anaPage.getByText('The message has too many accents stacked on one letter.')).toBeVisible();
    await expect(room.messageBox(anaPage)).toHaveValue(zalgo);
    // An override that would make "evil" read "live".
    await sendWithEnter(anaPage, '\u202Eevil');
    await expect(anaPage.getByText('The message contains characters that are not allowed.')).toBeVisible();
    // Real accents, and right-to-left text, isolated from the line around it.
    await room.messageBox(anaPage).fill('');
    await sendWithEnter(anaPage, 'Chào bạn, hẹn gặp lại');
    await sendWithEnter(anaPage, 'مرحبا بالجميع');
    await expect(room.lines(bobPage)).toHaveText([`${ana}: Chào bạn, hẹn gặp lại`, `${ana}: مرحبا بالجميع`]);
    for (const part of ['.message .body', '.message .author']) {
      const bidi = await bobPage.locator(part).first().evaluate((el) => getComputedStyle(el).unicodeBidi);
      expect(bidi, part).toBe('plaintext');
    }

    const hidden = await users.open(`${ana}\u200B`, roomName, { connected: false, allowConsole: REFUSAL_NOISE });
    await expect(hidden.getByRole('alert')).toHaveText('The user name contains characters that are not allowed.');
    await expect(room.members(bobPage)).toHaveText([ana, bob]);
  });
});

test.describe('Signed identities', () => {
  const server = new ServerProcess(Number(process.env.E2E_PORT ?? 8091) + 21, {
    CHAT_TOKEN_SECRET: SECRET,
    MAX_MESSAGE_CHARS: '40',
  });

  test.beforeAll(async () => server.start());
  test.afterAll(async () => server.stop());

  test('a page with a valid token chats; an oversize message is refused with a visible reason', async ({ users }) => {
    const roomName = uniqueRoom('signed');
    const [ana, bob] = [unique('ana'), unique('bob')];
    const anaPage = await users.open('ignored', '', { origin: server.origin, extra: `token=${chatToken(SECRET, ana, roomName)}` });
    const bobPage = await users.open('ignored', '', { origin: server.origin, extra: `token=${chatToken(SECRET, bob, roomName)}` });
    await expect(room.members(anaPage)).toHaveText([ana, bob]);
    await sendWithEnter(bobPage, 'hello with a token');
    await expect(room.lines(anaPage)).toHaveText([`${bob}: hello with a token`]);

    await sendWithEnter(anaPage, 'this message is longer than forty characters');
    // The refused message stays on its line with the reason.
    await expect(room.items(anaPage).filter({ hasText: 'this message is longer' })).toContainText(
      'Not sent: The message is too long (at most 40 characters).',
    );
    await expect(room.lines(bobPage)).toHaveCount(1);
  });

  test('an expired or missing token gets a clear page', async ({ users }) => {
    const roomName = uniqueRoom('expired');
    const expired = chatToken(SECRET, unique('ana'), roomName, -60);
    const page = await users.openPath('expired token', `${server.origin}/chat_room?channel_id=${roomName}&token=${expired}`, {
      allowConsole: REFUSAL_NOISE,
    });
    await expect(page.getByRole('heading', { name: 'This room cannot be opened' })).toBeVisible();
    await expect(page.getByRole('alert')).toHaveText('Your sign-in has expired. Please reopen the chat from the game.');

    const bare = await users.openPath('no token', `${server.origin}/chat_room?user_id=ana&channel_id=${roomName}`, {
      allowConsole: REFUSAL_NOISE,
    });
    await expect(bare.getByRole('alert')).toContainText('needs a sign-in token');
  });
});
