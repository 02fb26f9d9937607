// Moderation as people meet it: the "⋯" menu on a message (delete,
// report, a moderator's mute / kick / ban), the moderator's tools in the
// sidebar (member menus, slow mode, the report queue), and what a muted,
// kicked or banned player reads. Several people, each in a browser context
// of their own; the menus' forms also work without JavaScript.
//
// A server of its own: the users named `mod` and `mod2` are moderators
// (open mode, MODERATOR_IDS), everyone else a player.
import AxeBuilder from '@axe-core/playwright';
import * as path from 'path';
import type { Browser, Locator, Page } from '@playwright/test';
import { CuttableProxy } from './proxy';
import { ServerProcess } from './server_process';
import { expect, QUIET_MS, room, roomPath, sendWithEnter, test, unique, uniqueRoom, waitConnected } from './fixtures';

const port = Number(process.env.E2E_PORT ?? 8091) + 41;
const server = new ServerProcess(port, {
  MODERATOR_IDS: 'mod,mod2',
  MESSAGES_PER_SEC: '50',
  MESSAGE_BURST: '50',
});
const origin = server.origin;
const MOD = 'mod';

// ---- Locators and helpers ---------------------------------------------------

/** The notices moderation events leave in the conversation. */
const notices = (page: Page): Locator => room.conversation(page).locator('.event-text');
/** The line under the message box: muted until when, slow mode's wait. */
const composerStatus = (page: Page): Locator => page.locator('#composer-status');
/** The moderator's report queue. */
const reports = (page: Page): Locator => page.getByRole('list', { name: /^Reports/ }).getByRole('listitem');
/** The names in the sidebar's member list. */
const memberNames = (page: Page): Locator => room.members(page).locator('.member-name');

/** Opens the "⋯" menu of a message (`whose`: "ana's message" or "your message"). */
async function openMessageMenu(page: Page, whose: string, text: string): Promise<Locator> {
  await page.getByLabel(`Options for ${whose}: ${text}`, { exact: true }).click();
  const menu = page.locator('details.message-menu[open]');
  await expect(menu).toHaveCount(1);
  return menu;
}

/** Opens a moderator's menu of a member in the sidebar. */
async function openMemberMenu(page: Page, member: string): Promise<Locator> {
  await page.locator('.member-list').getByLabel(`Moderate ${member}`, { exact: true }).click();
  const menu = page.locator('details.member-menu[open]');
  await expect(menu).toHaveCount(1);
  return menu;
}

/** A moderator acts on a member from the sidebar, with a reason. */
async function sanction(page: Page, member: string, action: string, reason = ''): Promise<void> {
  const menu = await openMemberMenu(page, member);
  if (reason) await menu.getByLabel('Reason').fill(reason);
  await menu.getByRole('button', { name: action, exact: true }).click();
  await expect(page.locator('details.member-menu[open]')).toHaveCount(0);
}

/** The server's answer to a message sent over the stream: an `ack` or an `error` frame. */
interface Answer {
  type: string;
  code?: string;
  message?: string;
}

/**
 * Sends a message over a room stream of its own, opened from `page` as
 * `user` (what a page's script would send), and returns the server's answer.
 */
async function sendOverStream(page: Page, channel: string, user: string, body: string): Promise<Answer> {
  return page.evaluate(
    ({ channel, user, body }) =>
      new Promise<Answer>((resolve, reject) => {
        const ws = new WebSocket(`ws://${location.host}/api/stream`);
        const timer = setTimeout(() => reject(new Error('no answer from the stream')), 5000);
        ws.onopen = () => ws.send(JSON.stringify({ type: 'hello', channel_id: channel, user_id: user, after_seq: 1e12 }));
        ws.onmessage = (ev) => {
          const frame = JSON.parse(ev.data);
          if (frame.type === 'welcome') {
            ws.send(JSON.stringify({ type: 'send', client_msg_id: `raw-${Math.random().toString(36).slice(2)}`, body }));
          } else if (frame.type === 'ack' || frame.type === 'error') {
            clearTimeout(timer);
            ws.close();
            resolve(frame);
          }
        };
      }),
    { channel, user, body },
  );
}

/** Marks a page, to check later that what was done since went up the room stream (no form post reloaded it). */
async function mark(page: Page): Promise<void> {
  await page.evaluate(() => {
    Object.assign(window, { notReloaded: true });
  });
}
async function expectNotReloaded(page: Page): Promise<void> {
  expect(await page.evaluate(() => (window as unknown as { notReloaded?: boolean }).notReloaded)).toBe(true);
}

async function seriousViolations(page: Page): Promise<string[]> {
  const results = await new AxeBuilder({ page }).analyze();
  return results.violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .flatMap((v) => v.nodes.map((n) => `${v.id} (${v.impact}): ${v.help} at ${n.target.join(' ')}`));
}

/** A page without JavaScript (plain forms), closed after the test. */
async function openWithoutScripts(browser: Browser, user: string, roomName: string, opened: Array<() => Promise<void>>): Promise<Page> {
  const context = await browser.newContext({ baseURL: origin, javaScriptEnabled: false });
  opened.push(() => context.close());
  const page = await context.newPage();
  await page.goto(roomPath(user, roomName));
  await expect(page.getByRole('heading', { level: 1 })).toHaveText(`Room ${roomName}`);
  return page;
}

// ---- The tests ----------------------------------------------------------------

test.describe('Moderation', () => {
  test.beforeAll(async () => server.start());
  test.afterAll(async () => server.stop());

  test('a moderator deletes a message: every open page shows it removed within a second, and so does a reload', async ({ users }) => {
    const roomName = uniqueRoom('remove');
    const [ana, bob] = [unique('ana'), unique('bob')];
    const anaPage = await users.open(ana, roomName, { origin });
    const bobPage = await users.open(bob, roomName, { origin });
    const modPage = await users.open(MOD, roomName, { origin });
    await expect(modPage.locator('.role-badge')).toHaveText('moderator');
    await expect(anaPage.locator('.role-badge')).toHaveCount(0);

    const text = 'buy cheap gold at example dot com';
    await sendWithEnter(anaPage, text);
    await sendWithEnter(bobPage, 'please stop');
    const pages = [anaPage, bobPage, modPage];
    for (const page of pages) {
      await expect(room.lines(page)).toHaveText([`${ana}: ${text}`, `${bob}: please stop`]);
    }

    await mark(modPage);
    const menu = await openMessageMenu(modPage, `${ana}'s message`, 'buy cheap gold at example dot…');
    // A moderator acts; reporting is for players.
    await expect(menu.getByRole('button', { name: 'Report to moderators' })).toHaveCount(0);
    await expect(menu.getByRole('group', { name: `Moderate ${ana}` })).toBeVisible();
    // Each page notes when the removal shows (its clock is this one's),
    // looking every 10 ms: the test's own polling does not count.
    const removedAt = pages.map((page) =>
      page
        .waitForFunction(
          (expected) => {
            const first = document.querySelector('[role="log"][aria-label="Conversation"] li .line');
            return first?.textContent?.trim() === expected ? Date.now() : false;
          },
          `${ana}: Message removed by a moderator`,
          { polling: 10, timeout: 10_000 },
        )
        .then((shown) => shown.jsonValue()),
    );
    const clicked = Date.now();
    await menu.getByRole('button', { name: 'Delete message' }).click();
    for (const shown of await Promise.all(removedAt)) {
      expect(shown - clicked).toBeLessThan(1000);
    }
    for (const page of pages) {
      await expect(room.lines(page).first()).toHaveText(`${ana}: Message removed by a moderator`);
    }
    // The removal leaves no line of its own, and the text is gone from every page.
    for (const page of pages) {
      await expect(room.items(page)).toHaveCount(2);
      await expect(page.getByText(text)).toHaveCount(0);
    }
    // A removed message has no menu any more.
    await expect(anaPage.getByLabel(/^Options for your message/)).toHaveCount(0);
    await expectNotReloaded(modPage);

    await bobPage.reload();
    await waitConnected(bobPage);
    await expect(room.lines(bobPage)).toHaveText([`${ana}: Message removed by a moderator`, `${bob}: please stop`]);
    await expect(bobPage.getByText(text)).toHaveCount(0);
  });

  test('a moderator removes all of a spammer\'s messages from the member menu: every page, and a reload, shows them removed', async ({ users }) => {
    const roomName = uniqueRoom('purge');
    const [ana, bob] = [unique('ana'), unique('bob')];
    const anaPage = await users.open(ana, roomName, { origin });
    const bobPage = await users.open(bob, roomName, { origin });
    const modPage = await users.open(MOD, roomName, { origin });
    await sendWithEnter(bobPage, 'FREE GOLD, DM me');
    await sendWithEnter(anaPage, 'no thanks');
    await sendWithEnter(bobPage, 'FREE GOLD again');
    await expect(room.lines(modPage)).toHaveCount(3);

    await mark(modPage);
    await sanction(modPage, bob, 'Remove all their messages');
    const removed = `${bob}: Message removed by a moderator`;
    const after = [removed, `${ana}: no thanks`, removed];
    for (const page of [anaPage, bobPage, modPage]) {
      await expect(room.lines(page)).toHaveText(after);
      await expect(page.getByText('FREE GOLD')).toHaveCount(0);
    }
    await expect(notices(anaPage)).toHaveText([`${bob}'s messages were removed`]);
    await expect(notices(bobPage)).toHaveText(['Your messages were removed']);
    await expectNotReloaded(modPage);
    // What he writes after it stays.
    await sendWithEnter(bobPage, 'sorry');
    await expect(room.lines(anaPage)).toHaveText([...after, `${bob}: sorry`]);
    await anaPage.reload();
    await waitConnected(anaPage);
    await expect(room.lines(anaPage)).toHaveText([...after, `${bob}: sorry`]);
    await expect(anaPage.getByText('FREE GOLD')).toHaveCount(0);
  });

  test('a player deletes their own message, and has no Delete on anyone else\'s', async ({ users }) => {
    const roomName = uniqueRoom('own');
    const [ana, bob] = [unique('ana'), unique('bob')];
    const anaPage = await users.open(ana, roomName, { origin });
    const bobPage = await users.open(bob, roomName, { origin });
    await sendWithEnter(bobPage, 'hi ana');
    await sendWithEnter(anaPage, 'oops, wrong chat');
    await expect(room.lines(bobPage)).toHaveCount(2);

    // On someone else's message: report only, and no moderator's tools.
    const others = await openMessageMenu(anaPage, `${bob}'s message`, 'hi ana');
    await expect(others.getByRole('button', { name: 'Report to moderators' })).toBeVisible();
    await expect(others.getByRole('button', { name: 'Delete message' })).toHaveCount(0);
    await expect(others.getByRole('button', { name: /Mute|Kick|Ban/ })).toHaveCount(0);
    // Escape closes the menu and gives the keyboard back to its button.
    await anaPage.keyboard.press('Escape');
    await expect(anaPage.locator('details.menu[open]')).toHaveCount(0);
    await expect(anaPage.getByLabel(`Options for ${bob}'s message: hi ana`)).toBeFocused();
    await expect(anaPage.locator('.member-menu')).toHaveCount(0);
    await expect(anaPage.getByRole('heading', { name: 'Moderation' })).toHaveCount(0);

    // On one's own: delete, with the keyboard.
    await anaPage.getByLabel('Options for your message: oops, wrong chat').focus();
    await anaPage.keyboard.press('Enter');
    const own = anaPage.locator('details.message-menu[open]');
    await expect(own.getByRole('button', { name: 'Report to moderators' })).toHaveCount(0);
    await own.getByRole('button', { name: 'Delete message' }).focus();
    await anaPage.keyboard.press('Enter');
    for (const page of [anaPage, bobPage]) {
      await expect(room.lines(page)).toHaveText([`${bob}: hi ana`, `${ana}: Message removed`]);
    }
    await expect(bobPage.getByText('oops, wrong chat')).toHaveCount(0);
  });

  test('a mute ends by the server\'s clock, not by a device clock that runs an hour fast', async ({ users }) => {
    const roomName = uniqueRoom('mute-clock');
    const bob = unique('bob');
    const bobPage = await users.open(bob, roomName, {
      origin,
      prepare: (page) => page.clock.setFixedTime(Date.now() + 3_600_000),
    });
    const modPage = await users.open(MOD, roomName, { origin });
    await expect(memberNames(modPage)).toHaveText([bob, MOD]);
    await sanction(modPage, bob, 'Mute 10 minutes', 'spam');
    await expect(notices(bobPage)).toHaveText(['You were muted for 10 minutes (reason: spam)']);
    await bobPage.waitForTimeout(2_500); // the page's countdown ticks every second
    await expect(room.messageBox(bobPage)).toBeDisabled();
    await expect(composerStatus(bobPage)).toHaveText(/^You are muted until /);
  });

  test('a muted player reads why and until when, cannot send, and can again once unmuted', async ({ users }) => {
    const roomName = uniqueRoom('mute');
    const bob = unique('bob');
    const bobPage = await users.open(bob, roomName, { origin });
    const modPage = await users.open(MOD, roomName, { origin });
    await expect(memberNames(modPage)).toHaveText([bob, MOD]);
    // No menu on oneself.
    await expect(modPage.locator('.member-list').getByLabel(`Moderate ${MOD}`)).toHaveCount(0);

    // A request the room refuses says why, and the menu stays for another try.
    const menu = await openMemberMenu(modPage, bob);
    await menu.getByRole('button', { name: 'Unmute', exact: true }).click();
    await expect(modPage.getByRole('alert')).toHaveText(`${bob} is not muted.`);
    await expect(menu).toBeVisible();
    await modPage.keyboard.press('Escape');
    await expect(modPage.locator('details.menu[open]')).toHaveCount(0);
    await expect(modPage.locator('.member-list').getByLabel(`Moderate ${bob}`)).toBeFocused();

    await mark(modPage);
    await sanction(modPage, bob, 'Mute 10 minutes', 'spam');
    await expect(notices(modPage)).toHaveText([`${bob} was muted for 10 minutes (reason: spam)`]);
    await expectNotReloaded(modPage);
    await expect(notices(bobPage)).toHaveText(['You were muted for 10 minutes (reason: spam)']);
    await expect(room.messageBox(bobPage)).toBeDisabled();
    await expect(room.sendButton(bobPage)).toBeDisabled();
    // A time, with the day when that is not today ("Dec 8, 12:03 AM").
    const until = /^You are muted until ([A-Z][a-z]{2} \d{1,2}, )?\d{1,2}:\d\d( [AP]M)? \(reason: spam\)$/;
    await expect(composerStatus(bobPage)).toHaveText(until);

    // The server refuses a send all the same, with a sentence.
    const refused = await sendOverStream(bobPage, roomName, bob, 'let me talk');
    expect(refused.type).toBe('error');
    expect(refused.code).toBe('muted');
    expect(refused.message).toMatch(/^You are muted in this room for another 10 minutes \(reason: spam\)\.$/);

    // A reload is still muted (the page is rendered so), and reads well.
    await bobPage.reload();
    await waitConnected(bobPage);
    await expect(room.messageBox(bobPage)).toBeDisabled();
    await expect(composerStatus(bobPage)).toHaveText(until);
    for (const colorScheme of ['light', 'dark'] as const) {
      await bobPage.emulateMedia({ colorScheme });
      expect(await seriousViolations(bobPage)).toEqual([]);
    }

    await sanction(modPage, bob, 'Unmute');
    await expect(notices(bobPage)).toHaveText([
      'You were muted for 10 minutes (reason: spam)',
      'You can send messages again',
    ]);
    await expect(room.messageBox(bobPage)).toBeEnabled();
    await expect(composerStatus(bobPage)).toBeHidden();
    await sendWithEnter(bobPage, 'thanks, sorry');
    await expect(room.lines(modPage)).toHaveText([`${bob}: thanks, sorry`]);

    // A mute until lifted says so.
    await sanction(modPage, bob, 'Mute until lifted');
    await expect(composerStatus(bobPage)).toHaveText('You are muted until a moderator lifts it');
    await expect(notices(modPage).last()).toHaveText(`${bob} was muted until a moderator lifts it`);
  });

  test('a kicked player reads why, is not reconnected, and can rejoin', async ({ users }) => {
    const roomName = uniqueRoom('kick');
    const bob = unique('bob');
    const bobPage = await users.open(bob, roomName, { origin });
    const modPage = await users.open(MOD, roomName, { origin });
    await sendWithEnter(bobPage, 'you all stink');
    await expect(room.lines(modPage)).toHaveCount(1);

    // From the message's own menu this time.
    const menu = await openMessageMenu(modPage, `${bob}'s message`, 'you all stink');
    await menu.getByLabel('Reason').fill('be nice');
    await menu.getByRole('button', { name: 'Kick', exact: true }).click();

    await expect(bobPage.getByRole('alert')).toHaveText(
      'A moderator removed you from this room (reason: be nice). Rejoin the room',
    );
    await expect(notices(bobPage)).toHaveText(['You were removed from the room (reason: be nice)']);
    await expect(notices(modPage)).toHaveText([`${bob} was removed from the room (reason: be nice)`]);
    await expect(room.messageBox(bobPage)).toBeDisabled();
    await expect(room.status(bobPage)).toHaveText('Disconnected');
    await expect(memberNames(modPage)).toHaveText([MOD]);
    await bobPage.waitForTimeout(QUIET_MS * 2);
    await expect(room.status(bobPage)).toHaveText('Disconnected');
    await expect(bobPage).toHaveURL(/\/chat_room\?/);

    await bobPage.getByRole('link', { name: 'Rejoin the room' }).click();
    await waitConnected(bobPage);
    await expect(room.messageBox(bobPage)).toBeEnabled();
    await expect(memberNames(modPage)).toHaveText([MOD, bob]);
    await sendWithEnter(bobPage, 'sorry about that');
    await expect(room.lines(modPage).last()).toHaveText(`${bob}: sorry about that`);
  });

  test('a player kicked while their page was cut off reads why once it is back, and is not reconnected', async ({ users }) => {
    const proxy = new CuttableProxy(port);
    await proxy.start();
    try {
      const roomName = uniqueRoom('kick-away');
      const bob = unique('bob');
      const cutNoise = [/WebSocket connection to .* failed/, /Failed to load resource/];
      const bobPage = await users.open(bob, roomName, { origin: proxy.origin, allowConsole: cutNoise });
      const modPage = await users.open(MOD, roomName, { origin });
      await sendWithEnter(bobPage, 'you all stink');
      await expect(room.lines(modPage)).toHaveCount(1);

      proxy.cut();
      await expect(room.status(bobPage)).toHaveText(/Reconnecting…|Offline/);
      // Typed while away: it waits to be sent, and never will be.
      await sendWithEnter(bobPage, 'one more thing');
      await expect(room.items(bobPage).last()).toContainText('one more thing (sending…)');
      const menu = await openMessageMenu(modPage, `${bob}'s message`, 'you all stink');
      await menu.getByLabel('Reason').fill('be nice');
      await menu.getByRole('button', { name: 'Kick', exact: true }).click();
      await expect(notices(modPage)).toHaveText([`${bob} was removed from the room (reason: be nice)`]);

      proxy.restore();
      await expect(bobPage.getByRole('alert')).toHaveText(
        'A moderator removed you from this room (reason: be nice). Rejoin the room',
        { timeout: 20_000 },
      );
      await expect(room.status(bobPage)).toHaveText('Disconnected');
      await expect(room.items(bobPage).last()).toContainText('Not sent: The chat closed before this was confirmed as sent.');
      await bobPage.waitForTimeout(QUIET_MS * 2);
      await expect(room.status(bobPage)).toHaveText('Disconnected');
      await expect(room.messageBox(bobPage)).toBeDisabled();
      await expect(room.conversation(modPage)).not.toContainText('one more thing');
    } finally {
      await proxy.stop();
    }
  });

  test('a banned player reads until when, and cannot open the room again until the ban is lifted', async ({ users }) => {
    const roomName = uniqueRoom('ban');
    const bob = unique('bob');
    // Opening a room one is banned from answers 403, which Chromium logs.
    const bobPage = await users.open(bob, roomName, { origin, allowConsole: [/status of 403/] });
    const modPage = await users.open(MOD, roomName, { origin });

    await sanction(modPage, bob, 'Ban 1 day', 'cheating');
    await expect(bobPage.getByRole('alert')).toHaveText(
      /^You are banned from this room until .+ \(reason: cheating\)\.$/,
    );
    await expect(notices(modPage)).toHaveText([`${bob} was banned for 1 day (reason: cheating)`]);
    await expect(room.messageBox(bobPage)).toBeDisabled();
    await expect(room.status(bobPage)).toHaveText('Disconnected');

    // Opening the room again: a page that says why, in words.
    await bobPage.goto(`${origin}${roomPath(bob, roomName)}`);
    await expect(bobPage.getByRole('heading', { level: 1 })).toHaveText('This room cannot be opened');
    await expect(bobPage.getByRole('alert')).toHaveText(
      /^You are banned from this room for another (1 day|2[34] hours) \(reason: cheating\)\.$/,
    );
    await expect(bobPage.getByRole('link', { name: 'Back to the home page' })).toBeVisible();
    expect(await seriousViolations(bobPage)).toEqual([]);

    // The moderator lifts the ban by name; the player is back.
    await modPage.getByLabel('Lift a ban').fill(bob);
    await modPage.getByRole('button', { name: 'Lift ban' }).click();
    await expect(notices(modPage).last()).toHaveText(`${bob}'s ban was lifted`);
    await bobPage.goto(`${origin}${roomPath(bob, roomName)}`);
    await waitConnected(bobPage);
    await expect(room.messageBox(bobPage)).toBeEnabled();
  });

  test('slow mode makes a player wait, shows how long, and spares moderators', async ({ users }) => {
    test.setTimeout(60_000);
    const roomName = uniqueRoom('slow');
    const bob = unique('bob');
    const bobPage = await users.open(bob, roomName, { origin });
    const modPage = await users.open(MOD, roomName, { origin });

    await mark(modPage);
    await modPage.getByLabel('Slow mode').selectOption({ label: '10 seconds' });
    await modPage.getByRole('button', { name: 'Set', exact: true }).click();
    for (const page of [bobPage, modPage]) {
      await expect(notices(page)).toHaveText(['Slow mode is on: one message every 10 seconds']);
    }
    await expectNotReloaded(modPage);
    await expect(modPage.getByLabel('Slow mode')).toHaveValue('10');
    await expect(composerStatus(bobPage)).toHaveText('Slow mode is on: one message every 10 seconds');
    await expect(composerStatus(modPage)).toBeHidden();

    await sendWithEnter(bobPage, 'first');
    await expect(composerStatus(bobPage)).toHaveText(/^Slow mode: you can send again in (10|9) s$/);
    await expect(room.sendButton(bobPage)).toBeDisabled();
    // Typing goes on meanwhile; Enter sends nothing yet.
    await room.messageBox(bobPage).fill('second');
    await room.messageBox(bobPage).press('Enter');
    await expect(room.messageBox(bobPage)).toHaveValue('second');

    // The server is the judge: a send over the stream is refused.
    const refused = await sendOverStream(bobPage, roomName, bob, 'sneaky');
    expect(refused.code).toBe('slow_mode');
    expect(refused.message).toMatch(/^Slow mode is on: you can send again in \d+ seconds?\.$/);

    // A page that does not know of the wait (reloaded) learns it from a refusal.
    await bobPage.reload();
    await waitConnected(bobPage);
    await expect(composerStatus(bobPage)).toHaveText('Slow mode is on: one message every 10 seconds');
    await sendWithEnter(bobPage, 'too soon');
    await expect(room.items(bobPage).last()).toContainText('Not sent: Slow mode is on: you can send again in');
    await expect(composerStatus(bobPage)).toHaveText(/^Slow mode: you can send again in \d s$/);
    // The countdown moves on (0: the wait is over).
    const secondsLeft = async () => Number((await composerStatus(bobPage).textContent())?.match(/in (\d+) s$/)?.[1] ?? 0);
    const shown = await secondsLeft();
    await expect.poll(secondsLeft, { timeout: 5000 }).toBeLessThan(shown);

    // Moderators are not held back.
    await sendWithEnter(modPage, 'calm down, everyone');
    await sendWithEnter(modPage, 'thank you');
    await expect(room.lines(modPage)).toHaveText([`${bob}: first`, `${MOD}: calm down, everyone`, `${MOD}: thank you`]);

    // Once the wait is over, the player sends again.
    await expect(composerStatus(bobPage)).toHaveText('Slow mode is on: one message every 10 seconds', { timeout: 11_000 });
    await sendWithEnter(bobPage, 'second');
    await expect(room.lines(modPage).last()).toHaveText(`${bob}: second`);

    await modPage.getByLabel('Slow mode').selectOption({ label: 'Off' });
    await modPage.getByRole('button', { name: 'Set', exact: true }).click();
    await expect(notices(bobPage).last()).toHaveText('Slow mode is off');
    await expect(composerStatus(bobPage)).toBeHidden();
    await sendWithEnter(bobPage, 'third');
    await expect(room.lines(modPage).last()).toHaveText(`${bob}: third`);
  });

  test('a report reaches the moderator\'s queue live; Resolve takes it out', async ({ users }) => {
    const roomName = uniqueRoom('report');
    const [ana, bob] = [unique('ana'), unique('bob')];
    const anaPage = await users.open(ana, roomName, { origin });
    const bobPage = await users.open(bob, roomName, { origin });
    const modPage = await users.open(MOD, roomName, { origin });
    await expect(modPage.getByRole('heading', { name: 'Reports (0)' })).toBeVisible();
    await expect(modPage.getByText('No open reports.')).toBeVisible();

    await sendWithEnter(bobPage, 'you are all noobs');
    await mark(anaPage);
    const menu = await openMessageMenu(anaPage, `${bob}'s message`, 'you are all noobs');
    await menu.getByLabel('Why? (optional)').fill('rude');
    await menu.getByRole('button', { name: 'Report to moderators' }).click();
    await expect(anaPage.getByText('Thank you. The moderators will look at this message.')).toBeVisible();
    await expect(anaPage.locator('details.menu[open]')).toHaveCount(0);
    await expectNotReloaded(anaPage);

    await expect(modPage.getByRole('heading', { name: 'Reports (1)' })).toBeVisible();
    await expect(reports(modPage)).toHaveCount(1);
    const report = reports(modPage).first();
    await expect(report).toContainText(`${bob}: you are all noobs`);
    await expect(report).toContainText(`Reported by ${ana} at`);
    await expect(report).toContainText('(reason: rude)');
    // Players never see the queue.
    await expect(bobPage.getByRole('heading', { name: /Reports/ })).toHaveCount(0);

    // It comes with the page, too.
    await modPage.reload();
    await waitConnected(modPage);
    await expect(reports(modPage)).toHaveCount(1);

    await mark(modPage);
    await modPage.getByRole('button', { name: `Resolve report on ${bob}'s message: you are all noobs` }).click();
    await expect(reports(modPage)).toHaveCount(0);
    await expect(modPage.getByText('No open reports.')).toBeVisible();
    await expect(modPage.getByRole('heading', { name: 'Reports (0)' })).toBeFocused();
    await expectNotReloaded(modPage);
    await modPage.reload();
    await waitConnected(modPage);
    await expect(modPage.getByText('No open reports.')).toBeVisible();
  });

  test('a new report leaves the keyboard where the moderator was in the queue; a report closed elsewhere sends it to the heading', async ({ users }) => {
    const roomName = uniqueRoom('report-focus');
    const [ana, bob] = [unique('ana'), unique('bob')];
    const anaPage = await users.open(ana, roomName, { origin });
    const bobPage = await users.open(bob, roomName, { origin });
    const modPage = await users.open(MOD, roomName, { origin });
    const otherTab = await users.open(MOD, roomName, { origin });
    const fileReport = async (text: string): Promise<void> => {
      await sendWithEnter(bobPage, text);
      const menu = await openMessageMenu(anaPage, `${bob}'s message`, text);
      await menu.getByRole('button', { name: 'Report to moderators' }).click();
      await expect(anaPage.locator('details.menu[open]')).toHaveCount(0);
    };
    await fileReport('first rude line');
    await expect(reports(modPage)).toHaveCount(1);
    const dismiss = modPage.getByRole('button', { name: `Dismiss report on ${bob}'s message: first rude line` });
    await dismiss.focus();

    await fileReport('second rude line');
    await expect(reports(modPage)).toHaveCount(2);
    await expect(dismiss).toBeFocused();

    await otherTab.getByRole('button', { name: `Resolve report on ${bob}'s message: first rude line` }).click();
    await expect(reports(modPage)).toHaveCount(1);
    await expect(modPage.getByRole('heading', { name: 'Reports (1)' })).toBeFocused();
  });

  test('without JavaScript, delete, report, closing a report, slow mode and a mute work as plain forms', async ({ browser, users }) => {
    const roomName = uniqueRoom('nojs-mod');
    const [ana, bob] = [unique('ana'), unique('bob')];
    const closers: Array<() => Promise<void>> = [];
    try {
      const anaPage = await openWithoutScripts(browser, ana, roomName, closers);
      const bobPage = await users.open(bob, roomName, { origin });
      const modPage = await users.open(MOD, roomName, { origin });

      await room.messageBox(anaPage).fill('typed without scripts');
      await room.messageBox(anaPage).press('Enter');
      await expect(room.lines(anaPage)).toHaveText([`${ana}: typed without scripts`]);
      await sendWithEnter(bobPage, 'hello from a script');
      // Stored (no longer pending) before the plain page asks again.
      await expect(room.lines(bobPage)).toHaveText([`${ana}: typed without scripts`, `${bob}: hello from a script`]);
      await anaPage.reload();
      await expect(room.lines(anaPage)).toHaveCount(2);

      // Delete one's own: the disclosure opens without a script, the form posts.
      await anaPage.getByLabel('Options for your message: typed without scripts').click();
      await anaPage.locator('details.message-menu[open]').getByRole('button', { name: 'Delete message' }).click();
      await expect(anaPage).toHaveURL(/\/chat_room\?/);
      await expect(room.lines(anaPage)).toHaveText([`${ana}: Message removed`, `${bob}: hello from a script`]);
      await expect(room.lines(bobPage).first()).toHaveText(`${ana}: Message removed`);

      // Report someone else's, with a reason.
      await anaPage.getByLabel(`Options for ${bob}'s message: hello from a script`).click();
      const menu = anaPage.locator('details.message-menu[open]');
      await expect(menu.getByRole('button', { name: 'Delete message' })).toHaveCount(0);
      await menu.getByLabel('Why? (optional)').fill('spam');
      await menu.getByRole('button', { name: 'Report to moderators' }).click();
      await expect(anaPage).toHaveURL(/\/chat_room\?/);
      await expect(reports(modPage)).toHaveCount(1);
      await expect(reports(modPage).first()).toContainText('(reason: spam)');

      // A moderator without JavaScript: the queue comes with the page, and
      // Dismiss is a form too.
      const modPlain = await openWithoutScripts(browser, 'mod2', roomName, closers);
      await expect(reports(modPlain)).toHaveCount(1);
      await modPlain.getByRole('button', { name: `Dismiss report on ${bob}'s message: hello from a script` }).click();
      await expect(modPlain).toHaveURL(/\/chat_room\?/);
      await expect(modPlain.getByText('No open reports.')).toBeVisible();
      await expect(reports(modPage)).toHaveCount(0);

      // A refused form says why: slow mode holds a plain form's second message back.
      await modPlain.getByLabel('Slow mode').selectOption({ label: '30 seconds' });
      await modPlain.getByRole('button', { name: 'Set', exact: true }).click();
      await expect(notices(modPlain)).toHaveText(['Slow mode is on: one message every 30 seconds']);
      await anaPage.reload();
      await room.messageBox(anaPage).fill('one');
      await room.messageBox(anaPage).press('Enter');
      await expect(room.lines(anaPage).last()).toHaveText(`${ana}: one`);
      await room.messageBox(anaPage).fill('two');
      await room.messageBox(anaPage).press('Enter');
      await expect(anaPage.getByRole('alert')).toHaveText(/^Slow mode is on: you can send again in \d+ seconds\.$/);
      await expect(room.lines(anaPage).last()).toHaveText(`${ana}: one`);

      // A moderator's member menu is a form too; the muted page says until
      // when (in UTC, without a script to write the reader's time).
      await modPlain.reload();
      await modPlain.locator('.member-list').getByLabel(`Moderate ${ana}`).click();
      const members = modPlain.locator('details.member-menu[open]');
      await members.getByLabel('Reason').fill('spam');
      await members.getByRole('button', { name: 'Mute 10 minutes' }).click();
      await expect(notices(modPlain).last()).toHaveText(`${ana} was muted for 10 minutes (reason: spam)`);
      await anaPage.reload();
      await expect(room.messageBox(anaPage)).toBeDisabled();
      await expect(composerStatus(anaPage)).toHaveText(/^You are muted until \d\d:\d\d UTC \(reason: spam\)$/);
    } finally {
      for (const close of closers) await close().catch(() => {});
    }
  });

  test('the moderator\'s view with a menu open, and a player\'s, have no serious accessibility violations', async ({ users }) => {
    const roomName = uniqueRoom('a11y-mod');
    const [ana, bob] = [unique('ana'), unique('bob')];
    const anaPage = await users.open(ana, roomName, { origin });
    const bobPage = await users.open(bob, roomName, { origin });
    const modPage = await users.open(MOD, roomName, { origin });
    await sendWithEnter(bobPage, 'first message');
    await sendWithEnter(bobPage, 'second message');
    await sendWithEnter(anaPage, 'reply');
    await expect(room.lines(modPage)).toHaveCount(3);
    const menu = await openMessageMenu(anaPage, `${bob}'s message`, 'second message');
    await menu.getByRole('button', { name: 'Report to moderators' }).click();
    await expect(reports(modPage)).toHaveCount(1);
    await sanction(modPage, ana, 'Mute 1 hour', 'testing');
    const modMenu = await openMessageMenu(modPage, `${bob}'s message`, 'first message');
    await expect(modMenu.getByRole('button', { name: 'Ban for good' })).toBeVisible();
    for (const colorScheme of ['light', 'dark'] as const) {
      await modPage.emulateMedia({ colorScheme });
      expect(await seriousViolations(modPage)).toEqual([]);
    }
    // A member's menu: opening it closes the message's (one open at a time).
    await openMemberMenu(modPage, bob);
    await expect(modPage.locator('details.menu[open]')).toHaveCount(1);
    expect(await seriousViolations(modPage)).toEqual([]);

    // The muted player, with a menu open.
    await expect(room.messageBox(anaPage)).toBeDisabled();
    await openMessageMenu(anaPage, `${bob}'s message`, 'first message');
    for (const colorScheme of ['light', 'dark'] as const) {
      await anaPage.emulateMedia({ colorScheme });
      expect(await seriousViolations(anaPage)).toEqual([]);
    }
  });

  test('in a 320 px wide embedded room, a menu fits and works', async ({ users }) => {
    const roomName = uniqueRoom('embed-menu');
    const [ana, bob] = [unique('ana'), unique('bob')];
    const anaPage = await users.open(ana, roomName, { origin, extra: 'embed=1' });
    const bobPage = await users.open(bob, roomName, { origin, extra: 'embed=1' });
    const modPage = await users.open(MOD, roomName, { origin, extra: 'embed=1' });
    for (const page of [anaPage, bobPage, modPage]) await page.setViewportSize({ width: 320, height: 560 });
    await sendWithEnter(bobPage, 'a message long enough to wrap on a narrow phone screen');
    await sendWithEnter(anaPage, 'ok');

    const menu = await openMessageMenu(anaPage, `${bob}'s message`, 'a message long enough to wrap…');
    const reason = menu.getByLabel('Why? (optional)');
    const report = menu.getByRole('button', { name: 'Report to moderators' });
    for (const part of [reason, report]) {
      await expect(part).toBeInViewport();
      const box = (await part.boundingBox())!;
      expect(box.x).toBeGreaterThanOrEqual(0);
      expect(box.x + box.width).toBeLessThanOrEqual(320);
    }
    await reason.fill('spam');
    await report.click();
    await expect(reports(modPage)).toHaveCount(1);

    const modMenu = await openMessageMenu(modPage, `${ana}'s message`, 'ok');
    for (const name of ['Delete message', 'Mute 10 minutes', 'Mute 1 hour', 'Mute until lifted', 'Kick', 'Ban 1 day', 'Ban for good']) {
      const button = modMenu.getByRole('button', { name, exact: true });
      await button.scrollIntoViewIfNeeded();
      const box = (await button.boundingBox())!;
      expect(box.x, name).toBeGreaterThanOrEqual(0);
      expect(box.x + box.width, name).toBeLessThanOrEqual(320);
    }
    for (const page of [anaPage, modPage]) {
      expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(320);
    }
    await modMenu.getByRole('button', { name: 'Mute 10 minutes', exact: true }).click();
    await expect(room.messageBox(anaPage)).toBeDisabled();
    await expect(composerStatus(anaPage)).toBeInViewport();
  });

  test('screenshot of the moderator\'s view', async ({ users }, testInfo) => {
    const dir = process.env.SCREENSHOTS_DIR ? path.resolve(process.env.SCREENSHOTS_DIR) : testInfo.outputPath('screenshots');
    const stamp = Date.now().toString(36).slice(-4);
    const roomName = `game_1-${stamp}`;
    const [ana, bob, cy] = [`ana-${stamp}`, `bob-${stamp}`, `cy-${stamp}`];
    const anaPage = await users.open(ana, roomName, { origin });
    const bobPage = await users.open(bob, roomName, { origin });
    const cyPage = await users.open(cy, roomName, { origin });
    const modPage = await users.open(MOD, roomName, { origin });
    await sendWithEnter(anaPage, 'gg, that last round was close');
    await sendWithEnter(bobPage, 'FREE GOLD at a site I will not name, just DM me');
    await sendWithEnter(cyPage, 'rematch?');
    await sendWithEnter(bobPage, 'you are all terrible at this game');
    await expect(room.lines(modPage)).toHaveCount(4);

    const spam = await openMessageMenu(cyPage, `${bob}'s message`, 'FREE GOLD at a site I will not…');
    await spam.getByLabel('Why? (optional)').fill('spam');
    await spam.getByRole('button', { name: 'Report to moderators' }).click();
    const rude = await openMessageMenu(anaPage, `${bob}'s message`, 'you are all terrible at this…');
    await rude.getByLabel('Why? (optional)').fill('rude');
    await rude.getByRole('button', { name: 'Report to moderators' }).click();
    await expect(reports(modPage)).toHaveCount(2);

    const menu = await openMessageMenu(modPage, `${bob}'s message`, 'FREE GOLD at a site I will not…');
    await menu.getByRole('button', { name: 'Delete message' }).click();
    await expect(room.lines(modPage).nth(1)).toHaveText(`${bob}: Message removed by a moderator`);
    await modPage.getByRole('button', { name: `Resolve report on ${bob}'s message: FREE GOLD at a site I will not…` }).click();
    await sanction(modPage, bob, 'Mute 10 minutes', 'spam');
    await sendWithEnter(anaPage, 'thanks!');
    await expect(room.lines(modPage).last()).toHaveText(`${ana}: thanks!`);
    await expect(reports(modPage)).toHaveCount(1);
    const open = await openMessageMenu(modPage, `${bob}'s message`, 'you are all terrible at this…');
    await open.getByLabel('Reason').fill('be nice');
    await modPage.mouse.move(0, 0);

    await modPage.setViewportSize({ width: 1280, height: 800 });
    await modPage.emulateMedia({ colorScheme: 'light' });
    await modPage.screenshot({ path: path.join(dir, 'moderator-view.png') });
  });
});
