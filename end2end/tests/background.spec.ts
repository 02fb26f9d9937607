// A player's tab in the background. After a few minutes hidden, Chrome runs
// a tab's timers only once a minute (Safari every 40 s), so the page's
// heartbeats come late and a quiet room says nothing between them. The
// player has not left: the room must not see them leave and come back each
// minute, and a connection that really died must still be noticed.
//
// Here the tab's clock is Playwright's, paused: none of its timers fire
// until the test moves the clock on, once a minute at a time, as a hidden
// tab's do. The server runs a short heartbeat (1 s) and idle timeout (3 s).
import type { Locator, Page } from '@playwright/test';
import { ServerProcess } from './server_process';
import { countPresenceFrames, expect, room, test, unique, uniqueRoom } from './fixtures';

const port = Number(process.env.E2E_PORT ?? 8091) + 81;
const server = new ServerProcess(port, { HEARTBEAT_SECS: '1', IDLE_TIMEOUT_SECS: '3' });

// Chromium logs the reconnects it tries while the tab is offline.
const OFFLINE_NOISE = [/WebSocket connection to .* failed/, /Failed to load resource/];

/** A minute in the background passes as the browser runs it: each due timer once, then a moment for the network. */
async function aMinuteLater(tab: Page): Promise<void> {
  await tab.clock.fastForward(60_000);
  await tab.waitForTimeout(1_500);
}

/**
 * The tab goes to the background (from then on its timers fire only when
 * the test says), then loses its network there, then comes back to the
 * front with it. `state` is what the tab says of its connection; `seen`
 * counts the presence frames about its user that another page receives.
 */
async function throughTheBackground(tab: Page, state: Locator, seen: { online: number; offline: number }): Promise<void> {
  await tab.clock.pauseAt(Date.now() + 1_000);
  // Twice the idle timeout without a heartbeat from the tab, then two of
  // its minutes.
  await tab.waitForTimeout(6_000);
  await aMinuteLater(tab);
  await aMinuteLater(tab);
  expect(seen, 'the tab never left the room for the others').toEqual({ online: 1, offline: 0 });
  await expect(state).toHaveText('Connected');

  // The network goes away without closing the socket. The tab wakes a
  // minute later and pings: unanswered, it knows a moment later.
  await tab.context().setOffline(true);
  await aMinuteLater(tab);
  await tab.clock.runFor(1_200);
  await expect(state).toHaveText(/Reconnecting…|Offline/);

  // Back in front, with the network: in the room again.
  await tab.context().setOffline(false);
  await tab.clock.resume();
  await expect(state).toHaveText('Connected', { timeout: 20_000 });
}

test.describe('A tab in the background', () => {
  test.beforeAll(async () => server.start());
  test.afterAll(async () => server.stop());

  test('the room page stays in the room while its timers are held back, and still notices a dead connection', async ({
    users,
  }) => {
    const roomName = uniqueRoom('background');
    const [ana, bob] = [unique('ana'), unique('bob')];
    let seen = { online: 0, offline: 0 };
    const anaPage = await users.open(ana, roomName, {
      origin: server.origin,
      prepare: async (p) => {
        seen = countPresenceFrames(p, bob);
      },
    });
    const bobPage = await users.open(bob, roomName, {
      origin: server.origin,
      allowConsole: OFFLINE_NOISE,
      prepare: (p) => p.clock.install(),
    });
    const bobsDot = room.members(anaPage).filter({ hasText: bob }).getByRole('img');
    await expect(bobsDot).toHaveAccessibleName('online');
    await expect.poll(() => seen.online).toBe(1);

    await throughTheBackground(bobPage, room.status(bobPage), seen);
    await expect(bobsDot).toHaveAccessibleName('online');
  });

  test("a game's JavaScript client stays in the room while its timers are held back, and still notices a dead connection", async ({
    users,
  }) => {
    const roomName = uniqueRoom('background-client');
    const [ana, bot] = [unique('ana'), unique('bot')];
    let seen = { online: 0, offline: 0 };
    await users.open(ana, roomName, {
      origin: server.origin,
      prepare: async (p) => {
        seen = countPresenceFrames(p, bot);
      },
    });
    const q = new URLSearchParams({ user_id: bot, channel_id: roomName });
    const demo = await users.openPath('the client demo', `${server.origin}/client-demo.html?${q}`, {
      allowConsole: OFFLINE_NOISE,
      prepare: (p) => p.clock.install(),
    });
    const state = demo.getByRole('status');
    await expect(state).toHaveText('Connected');
    await expect.poll(() => seen.online).toBe(1);

    await throughTheBackground(demo, state, seen);
  });
});
