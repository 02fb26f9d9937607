// Diagram 3: sending messages, and what must not be sent or interpreted.
import { test, expect, unique, uniqueRoom, room, sendWithEnter, reloadRoom, waitConnected, QUIET_MS } from './fixtures';

test.describe('Sending messages', () => {
  test('a message sent with Enter appears once in every page of the room and never in another room', async ({ users }) => {
    const roomA = uniqueRoom('roomA');
    const roomB = uniqueRoom('roomB');
    const a1 = unique('ann');
    const a2 = unique('abe');
    const b1 = unique('bea');

    const pageA1 = await users.open(a1, roomA);
    const pageA2 = await users.open(a2, roomA);
    const pageB1 = await users.open(b1, roomB);

    const text = `hello from ${a1}`;
    await sendWithEnter(pageA1, text);

    await expect(room.lines(pageA1)).toHaveText([`${a1}: ${text}`]);
    await expect(room.lines(pageA2)).toHaveText([`${a1}: ${text}`]);
    await expect(room.lines(pageA1)).toHaveCount(1);
    await expect(room.lines(pageA2)).toHaveCount(1);

    // Still exactly once a moment later (no late duplicate), and never in B.
    await pageA1.waitForTimeout(QUIET_MS);
    await expect(room.lines(pageA1)).toHaveCount(1);
    await expect(room.lines(pageA2)).toHaveCount(1);
    await expect(room.lines(pageB1)).toHaveCount(0);
    await expect(room.emptyNote(pageB1)).toBeVisible();

    // The message is stored: a reload shows it once; room B stays empty.
    await reloadRoom(pageA2);
    await expect(room.lines(pageA2)).toHaveText([`${a1}: ${text}`]);
    await reloadRoom(pageB1);
    await expect(room.lines(pageB1)).toHaveCount(0);
  });

  test('the message input is cleared after sending', async ({ users }) => {
    const roomName = uniqueRoom('clear');
    const alice = unique('alice');
    const page = await users.open(alice, roomName);

    await sendWithEnter(page, 'clear me');
    await expect(room.messageBox(page)).toHaveValue('');
    await expect(room.lines(page)).toHaveText([`${alice}: clear me`]);

    // The Send button works too and also clears the input.
    await room.messageBox(page).fill('by button');
    await room.sendButton(page).click();
    await expect(room.messageBox(page)).toHaveValue('');
    await expect(room.lines(page)).toHaveText([`${alice}: clear me`, `${alice}: by button`]);
  });

  test('what was typed before the page came alive stays in the box, and is sent', async ({ users }) => {
    const alice = unique('alice');
    // The room's code is held back until the player has typed into the
    // page as the server rendered it.
    let typed!: () => void;
    const hold = new Promise<void>((resolve) => { typed = resolve; });
    const page = await users.open(alice, uniqueRoom('early'), {
      connected: false,
      prepare: async (p) => {
        await p.route(/\.wasm$/, async (route) => { await hold; await route.continue(); });
        p.once('domcontentloaded', () => { void room.messageBox(p).fill('typed early').then(typed); });
      },
    });
    await waitConnected(page);
    await expect(room.messageBox(page)).toHaveValue('typed early');
    await room.messageBox(page).press('Enter');
    await expect(room.lines(page)).toHaveText([`${alice}: typed early`]);
    await expect(room.messageBox(page)).toHaveValue('');
  });

  test('a message naming the reader in another case, beyond ASCII, is marked as a mention, live and after a reload', async ({ users }) => {
    const roomName = uniqueRoom('mention-case');
    const [zoe, friend] = [unique('zoë'), unique('friend')];
    const zoePage = await users.open(zoe, roomName);
    const friendPage = await users.open(friend, roomName);
    await sendWithEnter(friendPage, `@${zoe.toUpperCase()} over here`);
    await sendWithEnter(friendPage, `@${zoe}x is someone else`);
    const mentions = zoePage.locator('.message.mention');
    await expect(room.lines(zoePage)).toHaveCount(2);
    await expect(mentions).toHaveCount(1);
    await expect(mentions).toContainText('over here');
    await reloadRoom(zoePage);
    await expect(mentions).toHaveCount(1);
    await expect(mentions).toContainText('over here');
  });

  test('replies from the other user arrive live in the sender\'s page in order', async ({ users }) => {
    const roomName = uniqueRoom('reply');
    const alice = unique('alice');
    const bob = unique('bob');
    const pageA = await users.open(alice, roomName);
    const pageB = await users.open(bob, roomName);

    await sendWithEnter(pageA, 'ping');
    await expect(room.lines(pageB)).toHaveText([`${alice}: ping`]);
    await sendWithEnter(pageB, 'pong');
    const expected = [`${alice}: ping`, `${bob}: pong`];
    await expect(room.lines(pageA)).toHaveText(expected);
    await expect(room.lines(pageB)).toHaveText(expected);
  });

  test('an empty or blank message sends nothing', async ({ users }) => {
    const roomName = uniqueRoom('blank');
    const alice = unique('alice');
    const bob = unique('bob');
    const page = await users.open(alice, roomName);
    const other = await users.open(bob, roomName);

    await sendWithEnter(page, '');
    await sendWithEnter(page, '   ');
    await page.waitForTimeout(QUIET_MS);
    await expect(room.lines(page)).toHaveCount(0);
    await expect(room.lines(other)).toHaveCount(0);
    await expect(room.emptyNote(page)).toBeVisible();
    await expect(page.getByRole('alert')).toHaveCount(0);

    // Nothing was stored either.
    await reloadRoom(page);
    await expect(room.lines(page)).toHaveCount(0);
    await expect(room.emptyNote(page)).toBeVisible();
  });

  test('message text is rendered as text, not as HTML', async ({ users }) => {
    const roomName = uniqueRoom('html');
    const alice = unique('alice');
    const bob = unique('bob');
    const page = await users.open(alice, roomName);
    const other = await users.open(bob, roomName);

    await sendWithEnter(page, '<b>bold</b>');
    await expect(room.lines(page)).toHaveText([`${alice}: <b>bold</b>`]);
    await expect(room.lines(other)).toHaveText([`${alice}: <b>bold</b>`]);
    await expect(room.conversation(other).locator('b')).toHaveCount(0);

    // Also after a server render of the history.
    await reloadRoom(other);
    await expect(room.lines(other)).toHaveText([`${alice}: <b>bold</b>`]);
    await expect(room.lines(other).first()).toContainText('<b>bold</b>');
    await expect(room.conversation(other).locator('b')).toHaveCount(0);
  });
});
