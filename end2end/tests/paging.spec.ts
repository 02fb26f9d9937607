// History paging, timestamps and where the view stays as messages arrive.
import { test, expect, unique, uniqueRoom, room, seedAuthor, seedMessages, sendWithEnter, QUIET_MS } from './fixtures';

const escapeRegExp = (text: string): string => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

const expectedLines = (senders: string[], from: number, to: number): string[] =>
  Array.from({ length: to - from + 1 }, (_, i) => `${seedAuthor(senders, from + i)}: message ${from + i}`);

test.describe('History', () => {
  test('a room opens with its latest 50 messages and loads older ones in order, without duplicates', async ({ users, request }) => {
    const roomName = uniqueRoom('paging');
    const ana = unique('ana');
    const senders = [ana, ...['ben', 'cy', 'dee', 'eli', 'fay', 'gus', 'hal'].map((n) => unique(n))];
    await seedMessages(request, senders, roomName, 120);

    // The server renders only the latest page.
    const html = await (await request.get(`/chat_room?user_id=${ana}&channel_id=${roomName}`)).text();
    expect(html.match(/<li class="message/g)?.length).toBe(50);

    const page = await users.open(ana, roomName);
    await expect(room.lines(page)).toHaveText(expectedLines(senders, 71, 120));
    await expect(room.items(page).last()).toBeInViewport();

    // With the keyboard: the button loads the page before.
    const older = room.loadOlderButton(page);
    await older.focus();
    await page.keyboard.press('Enter');
    // The page before comes in; if that leaves the view at the top, the
    // scroll trigger may fetch the first page right after. Either way the
    // lines are one unbroken run ending at the newest.
    const pageBefore = expectedLines(senders, 21, 120).join('\n');
    const all = expectedLines(senders, 1, 120).join('\n');
    await expect
      .poll(async () => (await room.lines(page).allTextContents()).join('\n'))
      .toMatch(new RegExp(`^(${escapeRegExp(pageBefore)}|${escapeRegExp(all)})$`));

    // Scrolling to the top loads the rest.
    await room.scroller(page).evaluate((el) => el.scrollTo({ top: -el.scrollHeight }));
    await expect(room.lines(page)).toHaveText(expectedLines(senders, 1, 120));
    await expect(older).toHaveCount(0);
    await expect(page.getByText('This is the beginning of the conversation.')).toBeVisible();

    // Nothing more comes, and live messages still go at the end.
    await page.waitForTimeout(QUIET_MS);
    await expect(room.lines(page)).toHaveCount(120);
    await sendWithEnter(page, 'after paging');
    await expect(room.lines(page).last()).toHaveText(`${ana}: after paging`);
    await expect(room.lines(page)).toHaveCount(121);
    await expect(room.items(page).last()).toBeInViewport();
  });

  test('each message shows its time, written in the reader\'s time zone', async ({ users, browser, baseURL }) => {
    const roomName = uniqueRoom('times');
    const ana = unique('ana');
    const page = await users.open(ana, roomName);
    await sendWithEnter(page, 'what time is it?');
    await expect(room.lines(page)).toHaveText([`${ana}: what time is it?`]);
    const time = room.times(page).first();
    const iso = await time.getAttribute('datetime');
    expect(iso).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);

    // A reader in Tokyo sees the same instant in Tokyo time.
    const tokyo = await browser.newContext({ baseURL, timezoneId: 'Asia/Tokyo', locale: 'en-GB' });
    try {
      const reader = await tokyo.newPage();
      await reader.goto(`/chat_room?user_id=${unique('kenji')}&channel_id=${roomName}`);
      await expect(room.status(reader)).toHaveText('Connected');
      const expected = new Date(iso!).toLocaleTimeString('en-GB', { timeZone: 'Asia/Tokyo', timeStyle: 'short' });
      await expect(room.times(reader).first()).toContainText(expected);
    } finally {
      await tokyo.close();
    }
  });

  test('consecutive messages of one person show the name once', async ({ users }) => {
    const roomName = uniqueRoom('groups');
    const [ana, bob] = [unique('ana'), unique('bob')];
    const pageA = await users.open(ana, roomName);
    const pageB = await users.open(bob, roomName);
    await sendWithEnter(pageA, 'one');
    await expect(room.lines(pageB)).toHaveCount(1);
    await sendWithEnter(pageA, 'two');
    await expect(room.lines(pageB)).toHaveCount(2);
    await sendWithEnter(pageB, 'three');
    await expect(room.lines(pageA)).toHaveText([`${ana}: one`, `${ana}: two`, `${bob}: three`]);

    // The second line continues the first one's group: its name is kept
    // for screen readers but not drawn.
    const items = room.conversation(pageA).getByRole('listitem');
    await expect(items.nth(0)).not.toHaveClass(/\bcontinued\b/);
    await expect(items.nth(1)).toHaveClass(/\bcontinued\b/);
    await expect(items.nth(2)).not.toHaveClass(/\bcontinued\b/);
    const drawnWidth = (i: number) => items.nth(i).locator('.author').evaluate((el) => el.getBoundingClientRect().width);
    expect(await drawnWidth(0)).toBeGreaterThan(10);
    expect(await drawnWidth(1)).toBeLessThanOrEqual(1);
    expect(await drawnWidth(2)).toBeGreaterThan(10);
  });

  test('the view follows new messages unless the reader scrolled up; then a button brings them down', async ({ users, request }) => {
    const roomName = uniqueRoom('follow');
    const [ana, bob] = [unique('ana'), unique('bob')];
    await seedMessages(request, [bob, unique('carl'), unique('dora')], roomName, 40);
    const reader = await users.open(ana, roomName);
    const writer = await users.open(bob, roomName);

    await sendWithEnter(writer, 'live one');
    await expect(room.lines(reader).last()).toHaveText(`${bob}: live one`);
    await expect(room.items(reader).last()).toBeInViewport();
    await expect(room.newMessagesButton(reader)).toHaveCount(0);

    // The reader scrolls up a little: new messages do not move the view.
    await room.scroller(reader).evaluate((el) => el.scrollTo({ top: -400 }));
    const firstVisible = room.items(reader).nth(29); // "message 30"
    const before = await firstVisible.boundingBox();
    await sendWithEnter(writer, 'live two');
    await expect(room.newMessagesButton(reader)).toBeVisible();
    await expect(room.lines(reader).last()).toHaveText(`${bob}: live two`);
    await expect(room.items(reader).last()).not.toBeInViewport();
    // (Sub-pixel rounding aside.)
    expect(Math.abs((await firstVisible.boundingBox())!.y - before!.y)).toBeLessThan(2);

    await room.newMessagesButton(reader).click();
    await expect(room.items(reader).last()).toBeInViewport();
    await expect(room.newMessagesButton(reader)).toHaveCount(0);
  });
});
