// Presence and the typing indicator: each member's dot says whether they
// have the room open (several tabs count once), and "… is typing" shows
// under the conversation while someone else types.
import { test, expect, unique, uniqueRoom, room, reloadRoom, sendWithEnter, countPresenceFrames, QUIET_MS } from './fixtures';
import type { Locator, Page } from '@playwright/test';

/** The presence dot of `user` in the members list of `page`. */
function dot(page: Page, user: string): Locator {
  return room.members(page).filter({ hasText: user }).getByRole('img');
}

/** The line under the conversation that says who is typing. */
function typingLine(page: Page): Locator {
  return page.getByRole('region', { name: 'Discussion' }).locator('p.typing[aria-live="polite"]');
}

test.describe('Presence', () => {
  test('a member with two tabs is online once, until both tabs are closed', async ({ users }) => {
    const roomName = uniqueRoom('presence');
    const [ana, bob] = [unique('ana'), unique('bob')];

    const watcher = await users.open(ana, roomName);
    await expect(dot(watcher, ana)).toHaveAccessibleName('online');
    const frames = countPresenceFrames(watcher, bob);
    await reloadRoom(watcher);

    const firstTab = await users.open(bob, roomName);
    const secondTab = await users.open(bob, roomName);
    await expect(room.members(watcher)).toHaveText([ana, bob]);
    await expect(dot(watcher, bob)).toHaveAccessibleName('online');
    await expect(dot(firstTab, ana)).toHaveAccessibleName('online');
    await expect(dot(secondTab, bob)).toHaveAccessibleName('online');
    expect(frames).toEqual({ online: 1, offline: 0 });

    await firstTab.close();
    await watcher.waitForTimeout(QUIET_MS);
    await expect(dot(watcher, bob)).toHaveAccessibleName('online');
    expect(frames).toEqual({ online: 1, offline: 0 });

    await secondTab.close();
    await expect(dot(watcher, bob)).toHaveAccessibleName('offline', { timeout: 5_000 });
    expect(frames).toEqual({ online: 1, offline: 1 });
    // The member stays in the list: offline is not gone.
    await expect(room.members(watcher)).toHaveText([ana, bob]);
  });

  test('a member who has never opened the room shows offline', async ({ users }) => {
    const roomName = uniqueRoom('presence-added');
    const [ana, dan] = [unique('ana'), unique('dan')];
    const page = await users.open(ana, roomName);
    await room.addUserBox(page).fill(dan);
    await room.addUserButton(page).click();
    await expect(room.members(page)).toHaveText([ana, dan]);
    await expect(dot(page, dan)).toHaveAccessibleName('offline');
    await expect(dot(page, ana)).toHaveAccessibleName('online');
  });
});

test.describe('Typing indicator', () => {
  test('someone typing shows for the others until they pause or send', async ({ users }) => {
    const roomName = uniqueRoom('typing');
    const [ana, bob, carl] = [unique('ana'), unique('bob'), unique('carl')];
    const pageA = await users.open(ana, roomName);
    const pageB = await users.open(bob, roomName);
    const pageC = await users.open(carl, roomName);

    await room.messageBox(pageB).pressSequentially('hello th', { delay: 40 });
    await expect(typingLine(pageA)).toHaveText(`${bob} is typing…`);
    await expect(typingLine(pageC)).toHaveText(`${bob} is typing…`);
    await expect(typingLine(pageB)).toHaveText('');

    // A few seconds without typing: the line empties by itself.
    await expect(typingLine(pageA)).toHaveText('', { timeout: 7_000 });
    await expect(room.lines(pageA)).toHaveCount(0);

    // Two people typing, in the order they started.
    await room.messageBox(pageB).pressSequentially('ere', { delay: 40 });
    await expect(typingLine(pageA)).toHaveText(`${bob} is typing…`);
    await room.messageBox(pageC).pressSequentially('me t', { delay: 40 });
    await expect(typingLine(pageA)).toHaveText(`${bob} and ${carl} are typing…`);

    // Sending takes the sender off the line at once.
    await sendWithEnter(pageB, 'hello there');
    await expect(room.lines(pageA)).toHaveText([`${bob}: hello there`]);
    await expect(typingLine(pageA)).toHaveText(`${carl} is typing…`, { timeout: 2_000 });
  });
});
