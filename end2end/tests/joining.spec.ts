// Diagrams 1 and 2: opening a room, alone and as the second person.
import { test, expect, unique, uniqueRoom, room, sendWithEnter, reloadRoom, QUIET_MS } from './fixtures';

test.describe('Joining a room', () => {
  test('the first user to open a new room sees only themselves and an empty conversation', async ({ users }) => {
    const roomName = uniqueRoom('join');
    const alice = unique('alice');
    const page = await users.open(alice, roomName);

    await expect(page.getByRole('heading', { level: 1 })).toHaveText(`Room ${roomName}`);
    await expect(page.getByText(`Signed in as ${alice}`)).toBeVisible();
    await expect(room.membersHeading(page)).toHaveText('Users in room (1)');
    await expect(room.members(page)).toHaveText([alice]);
    await expect(room.emptyNote(page)).toBeVisible();
    await expect(room.lines(page)).toHaveCount(0);
  });

  test('after sending messages a reload shows the history oldest first', async ({ users }) => {
    const roomName = uniqueRoom('history');
    const alice = unique('alice');
    const page = await users.open(alice, roomName);

    for (const text of ['first', 'second', 'third']) {
      await sendWithEnter(page, text);
      // Wait until the server confirmed it (no "(sending…)" left).
      await expect(room.lines(page).last()).toHaveText(`${alice}: ${text}`);
    }
    await expect(room.emptyNote(page)).toBeHidden();

    await reloadRoom(page);
    await expect(room.lines(page)).toHaveText([`${alice}: first`, `${alice}: second`, `${alice}: third`]);
    await expect(room.emptyNote(page)).toBeHidden();
    await expect(room.members(page)).toHaveText([alice]);
  });

  test('a second user joining appears live in the first user\'s member list', async ({ users }) => {
    const roomName = uniqueRoom('second');
    const user1 = unique('user1');
    const user2 = unique('user2');

    const page1 = await users.open(user1, roomName);
    await expect(room.members(page1)).toHaveText([user1]);

    const page2 = await users.open(user2, roomName);
    await expect(room.members(page2)).toHaveText([user1, user2]);
    // No reload of page 1: the stream delivered the join.
    await expect(room.members(page1)).toHaveText([user1, user2]);
    await expect(room.membersHeading(page1)).toHaveText('Users in room (2)');
  });

  test('the same user opening the room twice is listed once', async ({ users }) => {
    const roomName = uniqueRoom('twice');
    const alice = unique('alice');
    const bob = unique('bob');

    const tab1 = await users.open(alice, roomName);
    const tab2 = await users.open(alice, roomName);
    await expect(room.members(tab1)).toHaveText([alice]);
    await expect(room.members(tab2)).toHaveText([alice]);

    // Another member joining is seen once in both tabs, alice still once.
    await users.open(bob, roomName);
    await expect(room.members(tab1)).toHaveText([alice, bob]);
    await expect(room.members(tab2)).toHaveText([alice, bob]);

    // A message sent from one tab shows once in the other.
    await sendWithEnter(tab1, 'from tab one');
    await expect(room.lines(tab2)).toHaveText([`${alice}: from tab one`]);
    await expect(room.lines(tab1)).toHaveText([`${alice}: from tab one`]);
    await tab1.waitForTimeout(QUIET_MS);
    await expect(room.lines(tab2)).toHaveCount(1);

    await reloadRoom(tab2);
    await expect(room.members(tab2)).toHaveText([alice, bob]);
  });
});
