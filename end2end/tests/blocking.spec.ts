// Blocking as players meet it: "Block" in the "⋯" menu of another
// player's message hides what that player writes (their lines, new ones,
// their typing) on every page of the blocker, live and after a reload,
// while everyone else's pages are unchanged; the member list marks the
// blocked player and "Unblock" brings their lines back.
import type { Page } from '@playwright/test';
import { expect, room, sendWithEnter, test, unique, uniqueRoom } from './fixtures';

/** Opens the "⋯" menu of `author`'s message `text` and presses `button`. */
async function fromMessageMenu(page: Page, author: string, text: string, button: string): Promise<void> {
  await page.getByLabel(`Options for ${author}'s message: ${text}`, { exact: true }).click();
  const menu = page.locator('details.message-menu[open]');
  await menu.getByRole('button', { name: button, exact: true }).click();
  await expect(page.locator('details.menu[open]')).toHaveCount(0);
}

/** The typing line under the conversation. */
const typing = (page: Page) => page.locator('p.typing');

test.describe('Blocking', () => {
  test('a blocked player\'s lines leave the blocker\'s pages, live and after a reload, and come back on Unblock', async ({ users }) => {
    const roomName = uniqueRoom('block');
    const [ana, bob, cy] = [unique('ana'), unique('bob'), unique('cy')];
    const anaPage = await users.open(ana, roomName);
    const anaOther = await users.open(ana, roomName);
    const bobPage = await users.open(bob, roomName);
    const cyPage = await users.open(cy, roomName);
    await sendWithEnter(bobPage, 'hello from bob');
    // Stored before cy answers (else the two may be stored either way round).
    await expect(room.lines(cyPage)).toHaveText([`${bob}: hello from bob`]);
    await sendWithEnter(cyPage, 'hello from cy');
    const both = [`${bob}: hello from bob`, `${cy}: hello from cy`];
    for (const page of [anaPage, anaOther, bobPage, cyPage]) {
      await expect(room.lines(page)).toHaveText(both);
    }

    await fromMessageMenu(anaPage, bob, 'hello from bob', `Block ${bob}`);
    await expect(anaPage.getByText('Blocked. You will not see their messages any more.')).toBeVisible();
    // Both of ana's pages, the other one told by the server.
    for (const page of [anaPage, anaOther]) {
      await expect(room.lines(page)).toHaveText([`${cy}: hello from cy`]);
      const bobsEntry = room.members(page).filter({ hasText: bob });
      await expect(bobsEntry.getByText('blocked', { exact: true })).toBeVisible();
      await expect(bobsEntry.getByRole('button', { name: `Unblock ${bob}` })).toBeVisible();
    }
    await expect(room.lines(cyPage)).toHaveText(both);
    await expect(room.lines(bobPage)).toHaveText(both);
    await expect(room.members(bobPage).getByText('blocked', { exact: true })).toHaveCount(0);

    // What bob does next: cy sees it, ana does not.
    // (Slowly: a page tells the room at most every 2 seconds.)
    await room.messageBox(bobPage).pressSequentially('still typing', { delay: 200 });
    await expect(typing(cyPage)).toContainText(`${bob} is typing`);
    // ana's page had as long as cy's to hear of it.
    await anaPage.waitForTimeout(500);
    await expect(typing(anaPage)).toHaveText('');
    await sendWithEnter(bobPage, 'second from bob');
    await expect(room.lines(cyPage)).toHaveText([...both, `${bob}: second from bob`]);
    await sendWithEnter(cyPage, 'second from cy');
    await expect(room.lines(anaPage)).toHaveText([`${cy}: hello from cy`, `${cy}: second from cy`]);

    // A reload (the page rendered by the server) keeps them hidden.
    await anaPage.reload();
    await expect(room.status(anaPage)).toHaveText('Connected');
    await expect(room.lines(anaPage)).toHaveText([`${cy}: hello from cy`, `${cy}: second from cy`]);

    await room.members(anaPage).filter({ hasText: bob }).getByRole('button', { name: `Unblock ${bob}` }).click();
    const all = [...both, `${bob}: second from bob`, `${cy}: second from cy`];
    for (const page of [anaPage, anaOther]) {
      await expect(room.lines(page)).toHaveText(all);
      await expect(room.members(page).getByText('blocked', { exact: true })).toHaveCount(0);
    }
  });
});
