// Screenshots of the home page, a room, an embedded room, the embedding
// demo and the JavaScript client's demo at 320 px and 1280 px, light and
// dark. They land in the test output; with SCREENSHOTS_DIR set (e.g.
// `SCREENSHOTS_DIR=../docs/screenshots`) they are written there instead, to
// refresh the documentation.
import * as path from 'path';
import { test, expect, room, sendWithEnter } from './fixtures';

const widths = [320, 1280] as const;
const schemes = ['light', 'dark'] as const;

test('screenshots at 320 and 1280 px, light and dark', async ({ users }, testInfo) => {
  test.setTimeout(90_000);
  const dir = process.env.SCREENSHOTS_DIR
    ? path.resolve(process.env.SCREENSHOTS_DIR)
    : testInfo.outputPath('screenshots');
  // A small conversation to show: two people in the seed's room.
  const stamp = Date.now().toString(36).slice(-4);
  const roomName = `game_1-${stamp}`;
  const [john, ana] = [`john-${stamp}`, `ana-${stamp}`];
  const johnPage = await users.open(john, roomName);
  const anaPage = await users.open(ana, roomName, { extra: 'embed=1' });
  await sendWithEnter(johnPage, 'gg, that last round was close');
  await sendWithEnter(johnPage, 'rematch?');
  await sendWithEnter(anaPage, 'sure! give me two minutes to grab a drink and I will be right back');
  await sendWithEnter(johnPage, 'ok, queueing up');
  await expect(room.lines(johnPage)).toHaveCount(4);
  await expect(room.lines(anaPage)).toHaveCount(4);
  const home = await users.openPath('home', '/');
  const demo = await users.openPath('demo', `/embed-demo?user_id=guest-${stamp}&channel_id=${roomName}`);
  await expect(demo.frameLocator('iframe[title="Chat room"]').getByRole('status')).toHaveText('Connected');
  const drawn = await users.openPath('client demo', `/client-demo.html?user_id=guest2-${stamp}&channel_id=${roomName}`);
  await expect(drawn.getByRole('log', { name: 'Conversation' }).getByRole('listitem')).toHaveCount(4);
  await expect(drawn.getByRole('status')).toHaveText('Connected');

  for (const width of widths) {
    for (const colorScheme of schemes) {
      const pages = [
        ['home', home], ['room', johnPage], ['embedded', anaPage], ['embed-demo', demo], ['client-demo', drawn],
      ] as const;
      for (const [name, page] of pages) {
        await page.setViewportSize({ width, height: width === 320 ? 560 : 720 });
        await page.emulateMedia({ colorScheme });
        await page.screenshot({ path: path.join(dir, `${name}-${width}-${colorScheme}.png`) });
      }
    }
  }
});
