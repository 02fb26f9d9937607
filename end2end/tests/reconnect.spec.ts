import { CuttableProxy } from './proxy';
import { expect, room, sendWithEnter, test, unique, uniqueRoom, QUIET_MS } from './fixtures';

// The websocket errors Chromium logs when the test cuts the connection.
const CUT_NOISE = [/WebSocket connection to .* failed/, /Failed to load resource/];

test.describe('Reconnecting', () => {
  test('messages sent while a page is cut off all arrive once, in order, without a reload', async ({ users, baseURL }) => {
    const proxy = new CuttableProxy(Number(new URL(baseURL!).port));
    await proxy.start();
    try {
      const roomName = uniqueRoom('reconnect');
      const [ana, bob] = [unique('ana'), unique('bob')];
      const anaPage = await users.open(ana, roomName);
      const bobPage = await users.open(bob, roomName, { origin: proxy.origin, allowConsole: CUT_NOISE });
      await expect(room.members(anaPage)).toHaveText([ana, bob]);

      proxy.cut();
      await expect(room.status(bobPage)).toHaveText(/Reconnecting…|Offline/);
      await expect(bobPage.getByText('Connection lost — messages will be sent when it is back.')).toBeVisible();

      // Bob types while cut off: it shows as pending.
      await sendWithEnter(bobPage, 'typed while cut off');
      await expect(room.lines(bobPage)).toHaveText([`${bob}: typed while cut off (sending…)`]);

      const five = ['one', 'two', 'three', 'four', 'five'];
      for (const text of five) {
        await sendWithEnter(anaPage, text);
      }
      await expect(room.lines(anaPage)).toHaveText(five.map((t) => `${ana}: ${t}`));
      await bobPage.waitForTimeout(QUIET_MS);
      await expect(room.lines(bobPage)).toHaveCount(1);

      proxy.restore();
      await expect(room.status(bobPage)).toHaveText('Connected', { timeout: 20_000 });
      const expected = [...five.map((t) => `${ana}: ${t}`), `${bob}: typed while cut off`];
      await expect(room.lines(bobPage)).toHaveText(expected);
      await expect(room.lines(anaPage)).toHaveText(expected);
      await expect(bobPage.getByText('Connection lost — messages will be sent when it is back.')).toHaveCount(0);

      // Nothing arrives twice later on.
      await anaPage.waitForTimeout(QUIET_MS);
      await expect(room.lines(anaPage)).toHaveCount(6);
      await expect(room.lines(bobPage)).toHaveCount(6);
    } finally {
      await proxy.stop();
    }
  });
});
