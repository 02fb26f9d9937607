// Diagrams 4 and 5: adding a user to the room, and leaving it.
import { test, expect, unique, uniqueRoom, room, reloadRoom, QUIET_MS } from './fixtures';

test.describe('Room members', () => {
  test('a user added through the form appears live in every page of the room', async ({ users }) => {
    const roomName = uniqueRoom('add');
    const [u1, u2, u3] = [unique('ann'), unique('ben'), unique('cat')];
    const dave = unique('dave');

    const page1 = await users.open(u1, roomName);
    const page2 = await users.open(u2, roomName);
    const page3 = await users.open(u3, roomName);
    await expect(room.members(page1)).toHaveText([u1, u2, u3]);

    await room.addUserBox(page1).fill(dave);
    await room.addUserButton(page1).click();

    for (const page of [page1, page2, page3]) {
      await expect(room.members(page)).toHaveText([u1, u2, u3, dave]);
      await expect(room.membersHeading(page)).toHaveText('Users in room (4)');
    }
    await expect(room.addUserBox(page1)).toHaveValue('');
    await expect(page1.getByRole('alert')).toHaveCount(0);

    await reloadRoom(page3);
    await expect(room.members(page3)).toHaveText([u1, u2, u3, dave]);
  });

  test('adding a user with an empty name shows an error and changes nothing', async ({ users }) => {
    const roomName = uniqueRoom('addempty');
    const [u1, u2] = [unique('ann'), unique('ben')];
    const page1 = await users.open(u1, roomName);
    const page2 = await users.open(u2, roomName);
    await expect(room.members(page1)).toHaveText([u1, u2]);

    await room.addUserButton(page1).click();
    await expect(page1.getByRole('alert')).toHaveText('Please enter a user name.');

    await page1.waitForTimeout(QUIET_MS);
    await expect(room.members(page1)).toHaveText([u1, u2]);
    await expect(room.members(page2)).toHaveText([u1, u2]);

    await reloadRoom(page1);
    await expect(room.members(page1)).toHaveText([u1, u2]);
  });

  test('a user who leaves goes to the home page and disappears live from the others\' lists', async ({ users }) => {
    const roomName = uniqueRoom('leave');
    const [u1, u2, u3] = [unique('ann'), unique('ben'), unique('cat')];
    const page1 = await users.open(u1, roomName);
    const page2 = await users.open(u2, roomName);
    const page3 = await users.open(u3, roomName);
    await expect(room.members(page1)).toHaveText([u1, u2, u3]);

    await room.leaveButton(page1).click();

    await expect(page1).toHaveURL('/');
    await expect(page1.getByRole('heading', { level: 1, name: 'Embedded Chat' })).toBeVisible();
    await expect(page1.getByRole('button', { name: 'Enter room' })).toBeVisible();

    await expect(room.members(page2)).toHaveText([u2, u3]);
    await expect(room.members(page3)).toHaveText([u2, u3]);
    await expect(room.membersHeading(page2)).toHaveText('Users in room (2)');

    await reloadRoom(page2);
    await expect(room.members(page2)).toHaveText([u2, u3]);
  });

  test('a user whose live connection is down can still leave, and goes to the home page', async ({ users }) => {
    const roomName = uniqueRoom('leave-offline');
    const [u1, u2] = [unique('ann'), unique('ben')];
    const page2 = await users.open(u2, roomName);
    // u1's page never gets its room stream: no frame will tell it that it left.
    const page1 = await users.open(u1, roomName, {
      connected: false,
      prepare: (page) => page.routeWebSocket(/\/api\/stream/, (ws) => ws.close()),
    });
    // The room runs in the browser (not the plain form) and knows it is cut off.
    await expect(room.status(page1)).toHaveText('Reconnecting…');

    await room.leaveButton(page1).click();

    await expect(page1).toHaveURL('/');
    await expect(room.members(page2)).toHaveText([u2]);
  });
});
