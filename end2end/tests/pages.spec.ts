// The home page, links missing a parameter, and embedded mode.
import { test, expect, unique, uniqueRoom, room, sendWithEnter, waitConnected } from './fixtures';

test.describe('Pages', () => {
  test('the home page form takes the user into the room', async ({ users }) => {
    const roomName = uniqueRoom('home');
    const alice = unique('alice');
    const page = await users.openPath('home visitor', '/');

    await expect(page.getByRole('heading', { level: 1, name: 'Embedded Chat' })).toBeVisible();
    await page.getByLabel('Your name', { exact: true }).fill(alice);
    await page.getByLabel('Room', { exact: true }).fill(roomName);
    await page.getByRole('button', { name: 'Enter room' }).click();

    await expect(page).toHaveURL(new RegExp(`/chat_room\\?.*user_id=${alice}`));
    await expect(page).toHaveURL(new RegExp(`channel_id=${roomName}`));
    await waitConnected(page);
    await expect(page.getByRole('heading', { level: 1 })).toHaveText(`Room ${roomName}`);
    await expect(room.members(page)).toHaveText([alice]);
  });

  test('a room link without a room asks which room, keeping the user name', async ({ users }) => {
    const alice = unique('alice');
    const roomName = uniqueRoom('which');
    const page = await users.openPath('missing room', `/chat_room?user_id=${alice}`);

    await expect(page.getByRole('heading', { level: 1, name: 'Which room?' })).toBeVisible();
    await expect(page.getByLabel('Your name', { exact: true })).toHaveValue(alice);
    await expect(page.getByLabel('Room', { exact: true })).toHaveValue('');
    await expect(room.conversation(page)).toHaveCount(0);

    // Filling in what is missing opens the room.
    await page.getByLabel('Room', { exact: true }).fill(roomName);
    await page.getByRole('button', { name: 'Enter room' }).click();
    await waitConnected(page);
    await expect(room.members(page)).toHaveText([alice]);
  });

  test('a room link without a user name or with no parameters asks which room', async ({ users }) => {
    const roomName = uniqueRoom('which');
    const noUser = await users.openPath('missing user', `/chat_room?channel_id=${roomName}`);
    await expect(noUser.getByRole('heading', { level: 1, name: 'Which room?' })).toBeVisible();
    await expect(noUser.getByLabel('Room', { exact: true })).toHaveValue(roomName);
    await expect(noUser.getByLabel('Your name', { exact: true })).toHaveValue('');

    const nothing = await users.openPath('no params', '/chat_room');
    await expect(nothing.getByRole('heading', { level: 1, name: 'Which room?' })).toBeVisible();
    await expect(nothing.getByRole('button', { name: 'Enter room' })).toBeVisible();
  });

  test('the room comes alive in a browser that is never idle', async ({ users }) => {
    // An embedded room beside a running game may see no idle moment for a
    // long time: loading the room must not wait for one.
    const alice = unique('alice');
    const page = await users.open(alice, uniqueRoom('busy'), {
      prepare: (page) =>
        page.addInitScript(() => {
          window.requestIdleCallback = () => 0;
        }),
    });
    await sendWithEnter(page, 'still here');
    await expect(room.lines(page)).toHaveText([`${alice}: still here`]);
  });

  test('embedded mode is compact and chats with a normal page', async ({ users }) => {
    const roomName = uniqueRoom('embed');
    const guest = unique('guest');
    const host = unique('host');

    const embedded = await users.open(guest, roomName, { extra: 'is_embedded=true' });
    const normal = await users.open(host, roomName);

    await expect(embedded.locator('.room')).toHaveClass(/\bembedded\b/);
    await expect(room.brand(embedded)).toBeHidden();
    await expect(room.addUserHeading(embedded)).toBeHidden();
    await expect(room.addUserBox(embedded)).toBeHidden();
    await expect(room.messageBox(embedded)).toBeVisible();
    await expect(room.members(embedded)).toHaveText([guest, host]);

    await expect(normal.locator('.room')).not.toHaveClass(/\bembedded\b/);
    await expect(room.brand(normal)).toBeVisible();
    await expect(room.addUserHeading(normal)).toBeVisible();

    await sendWithEnter(embedded, 'hi from the game');
    await expect(room.lines(normal)).toHaveText([`${guest}: hi from the game`]);
    await sendWithEnter(normal, 'hi from the web');
    const expected = [`${guest}: hi from the game`, `${host}: hi from the web`];
    await expect(room.lines(embedded)).toHaveText(expected);
    await expect(room.lines(normal)).toHaveText(expected);
  });

  test('embed=1 is accepted as the short spelling of embedded mode', async ({ users }) => {
    const roomName = uniqueRoom('embed1');
    const guest = unique('guest');
    const page = await users.open(guest, roomName, { extra: 'embed=1' });

    await expect(page.locator('.room')).toHaveClass(/\bembedded\b/);
    await expect(room.brand(page)).toBeHidden();
    await expect(room.addUserHeading(page)).toBeHidden();
    await sendWithEnter(page, 'compact');
    await expect(room.lines(page)).toHaveText([`${guest}: compact`]);
  });
});
