// The basics without JavaScript: the page is readable as the server
// renders it, and sending, adding a user and leaving are plain form posts.
import { test, expect, unique, uniqueRoom, room, roomPath, seedAuthor, seedMessages } from './fixtures';

test.describe('Without JavaScript', () => {
  test('a person can send a message, add a user and leave', async ({ browser, baseURL }) => {
    const context = await browser.newContext({ baseURL, javaScriptEnabled: false });
    try {
      const page = await context.newPage();
      const roomName = uniqueRoom('nojs');
      const [ana, bob] = [unique('ana'), unique('bob')];
      await page.goto(roomPath(ana, roomName));
      await expect(page.getByRole('heading', { level: 1 })).toHaveText(`Room ${roomName}`);
      await expect(room.emptyNote(page)).toBeVisible();

      await room.messageBox(page).fill('sent by a plain form');
      await room.messageBox(page).press('Enter');
      await expect(page).toHaveURL(/\/chat_room\?/);
      await expect(room.lines(page)).toHaveText([`${ana}: sent by a plain form`]);
      // The time is there, in UTC, until a script could localise it.
      await expect(room.times(page).first()).toHaveAttribute('datetime', /Z$/);
      await expect(room.times(page).first()).toHaveAttribute('data-utc', /^\d\d:\d\d UTC$/);

      await room.sendButton(page).click(); // blank: stored nothing
      await expect(room.lines(page)).toHaveCount(1);

      await room.addUserBox(page).fill(bob);
      await room.addUserButton(page).click();
      await expect(room.members(page)).toHaveText([ana, bob]);

      await room.leaveButton(page).click();
      await expect(page).toHaveURL('/');
      await expect(page.getByRole('button', { name: 'Enter room' })).toBeVisible();

      // Back in the room as bob: ana is gone, her message stays.
      await page.goto(roomPath(bob, roomName));
      await expect(room.members(page)).toHaveText([bob]);
      await expect(room.lines(page)).toHaveText([`${ana}: sent by a plain form`]);
    } finally {
      await context.close();
    }
  });

  test('a long conversation opens at its newest message', async ({ browser, baseURL, request }) => {
    const roomName = uniqueRoom('nojs-long');
    const senders = [unique('ana'), unique('ben'), unique('cy'), unique('dee')];
    await seedMessages(request, senders, roomName, 60);
    const context = await browser.newContext({ baseURL, javaScriptEnabled: false, viewport: { width: 320, height: 560 } });
    try {
      const page = await context.newPage();
      await page.goto(roomPath(senders[0], roomName, 'embed=1'));
      await expect(room.lines(page)).toHaveCount(50);
      await expect(room.lines(page).last()).toHaveText(`${seedAuthor(senders, 60)}: message 60`);
      await expect(room.items(page).last()).toBeInViewport();
      await expect(room.items(page).first()).not.toBeInViewport();
    } finally {
      await context.close();
    }
  });
});
