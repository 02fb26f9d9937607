// Embedding: a host page (the demo at /embed-demo, standing in for a game)
// frames a room from another origin and hears its unread count through
// postMessage; a host whose origin is not allowed hears nothing.
import { test, expect, unique, uniqueRoom, room, sendWithEnter, QUIET_MS } from './fixtures';
import type { Page } from '@playwright/test';

/** The same server under its other name: 127.0.0.1 <-> localhost. */
function otherOrigin(baseURL: string): string {
  const url = new URL(baseURL);
  url.hostname = url.hostname === 'localhost' ? '127.0.0.1' : 'localhost';
  return url.origin;
}

function demoPath(user: string, roomName: string, chatOrigin: string): string {
  return `/embed-demo?${new URLSearchParams({ user_id: user, channel_id: roomName, chat_origin: chatOrigin })}`;
}

const unreadLine = (demo: Page) => demo.getByRole('status');
const events = (demo: Page) => demo.getByRole('list', { name: 'Events received' }).getByRole('listitem');

test.describe('Embedding', () => {
  test('a host page on another origin receives the unread count from the room iframe', async ({ users, baseURL }) => {
    // The host is served from the allowed origin (the test server's own
    // address); the room comes from the other name of the same server.
    const roomName = uniqueRoom('embed-host');
    const [guest, friend] = [unique('guest'), unique('friend')];
    const demo = await users.openPath('host page', demoPath(guest, roomName, otherOrigin(baseURL!)));
    const chat = demo.frameLocator('iframe[title="Chat room"]');
    await expect(chat.getByRole('status')).toHaveText('Connected');
    await expect(events(demo)).toHaveText([`ready · room ${roomName} · unread 0`]);
    await expect(unreadLine(demo)).toHaveText('Unread messages: 0');

    // Messages arrive while the player is busy with the game (the chat
    // frame does not have the focus): they count as unread.
    const friendPage = await users.open(friend, roomName);
    await sendWithEnter(friendPage, 'are you there?');
    await expect(unreadLine(demo)).toHaveText('Unread messages: 1');
    await sendWithEnter(friendPage, 'hello?');
    await expect(unreadLine(demo)).toHaveText('Unread messages: 2');
    await expect(chat.getByRole('log', { name: 'Conversation' }).getByRole('listitem').locator('.line'))
      .toHaveText([`${friend}: are you there?`, `${friend}: hello?`]);

    // A message that names the player: counted apart, marked in the room.
    await sendWithEnter(friendPage, `@${guest} over here`);
    await expect(unreadLine(demo)).toHaveText('Unread messages: 3');
    await expect(chat.locator('.message.mention')).toHaveText(new RegExp(`over here`));
    await expect(chat.locator('.message.mention')).toHaveCount(1);

    // The player clicks into the chat: everything is read.
    await chat.getByRole('textbox', { name: 'Message' }).click();
    await expect(unreadLine(demo)).toHaveText('Unread messages: 0');
    await expect(events(demo)).toHaveText([
      `ready · room ${roomName} · unread 0`,
      `message · room ${roomName} · unread 1`,
      `message · room ${roomName} · unread 2`,
      `message · room ${roomName} · unread 3 · mentions 1`,
      `read · room ${roomName} · unread 0`,
    ]);

    // While the player is in the chat, new messages are seen at once.
    await sendWithEnter(friendPage, 'there you are');
    await expect(chat.getByRole('log', { name: 'Conversation' }).getByRole('listitem')).toHaveCount(4);
    await demo.waitForTimeout(QUIET_MS);
    await expect(unreadLine(demo)).toHaveText('Unread messages: 0');
    await expect(events(demo)).toHaveCount(5);
  });

  test('a host page whose origin is not allowed receives nothing', async ({ users, baseURL }) => {
    const roomName = uniqueRoom('embed-denied');
    const [guest, friend] = [unique('guest'), unique('friend')];
    // Now the host is on the other name, which is not on the allowlist.
    const demo = await users.openPath(
      'unlisted host page',
      `${otherOrigin(baseURL!)}${demoPath(guest, roomName, new URL(baseURL!).origin)}`,
      { allowConsole: [/sends no events to the parent page/] },
    );
    const chat = demo.frameLocator('iframe[title="Chat room"]');
    await expect(chat.getByRole('status')).toHaveText('Connected');

    const friendPage = await users.open(friend, roomName);
    await sendWithEnter(friendPage, 'psst');
    await expect(chat.getByRole('log', { name: 'Conversation' }).getByRole('listitem')).toHaveCount(1);
    await demo.waitForTimeout(QUIET_MS);
    await expect(events(demo)).toHaveCount(0);
    await expect(unreadLine(demo)).toHaveText('Unread messages: 0');
  });

  test('the embedded room stays usable in a 320 px wide frame', async ({ users }) => {
    const roomName = uniqueRoom('a-rather-long-room-name-for-a-small-frame');
    const guest = unique('guest');
    const page = await users.open(guest, roomName, { extra: 'embed=1' });
    await page.setViewportSize({ width: 320, height: 480 });
    // The whole room name is shown (it wraps rather than being cut).
    const heading = page.getByRole('heading', { level: 1 });
    await expect(heading).toHaveText(`Room ${roomName}`);
    expect(await heading.evaluate((el) => el.scrollWidth <= el.clientWidth + 1)).toBe(true);
    await expect(room.leaveButton(page)).toBeInViewport();
    await expect(room.messageBox(page)).toBeInViewport();
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(320);
    await sendWithEnter(page, 'small but fine');
    await expect(room.lines(page)).toHaveText([`${guest}: small but fine`]);
    await expect(room.items(page).last()).toBeInViewport();
  });
});
