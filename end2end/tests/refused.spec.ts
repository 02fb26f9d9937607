// A message the server refuses is never lost: it stays in the conversation,
// marked "Not sent" with the server's reason, until the person retries it
// (it goes out again, at the end), copies its text or dismisses it. The
// message box is never overwritten with it.
//
// A server of its own with a low per-user rate (a burst of 3, then one
// message a second), so that typing fast gets messages refused.
import AxeBuilder from '@axe-core/playwright';
import type { Locator, Page } from '@playwright/test';
import { ServerProcess } from './server_process';
import { expect, room, sendWithEnter, test, unique, uniqueRoom } from './fixtures';

const port = Number(process.env.E2E_PORT ?? 8091) + 31;
const server = new ServerProcess(port, {
  MESSAGES_PER_SEC: '1',
  MESSAGE_BURST: '3',
});

const TOO_FAST = 'You are sending messages too fast. Please wait a moment.';
/** The server lets one more message through after this long. */
const RATE_MS = 1_100;

/** A page's refused lines (list items). */
const refusedItems = (page: Page): Locator => room.items(page).filter({ hasText: 'Not sent:' });

/** The texts of a page's lines, split into stored and refused (none pending). */
async function settledTexts(page: Page): Promise<{ stored: string[]; refused: string[] }> {
  await expect(room.lines(page).filter({ hasText: '(sending…)' })).toHaveCount(0);
  return {
    stored: await room.items(page).filter({ hasNotText: 'Not sent:' }).locator('.body').allTextContents(),
    refused: await refusedItems(page).locator('.body').allTextContents(),
  };
}

/** Sends `texts` one right after the other, as fast as a person can. */
async function typeQuickly(page: Page, texts: string[]): Promise<void> {
  for (const text of texts) {
    await sendWithEnter(page, text);
  }
}

async function seriousViolations(page: Page): Promise<string[]> {
  const results = await new AxeBuilder({ page }).analyze();
  return results.violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .flatMap((v) => v.nodes.map((n) => `${v.id} (${v.impact}): ${v.help} at ${n.target.join(' ')}`));
}

test.describe('Refused messages', () => {
  test.beforeAll(async () => server.start());
  test.afterAll(async () => server.stop());

  test('every message typed too fast is delivered or kept as not sent; a retry delivers it, a dismiss removes it', async ({ users }) => {
    test.setTimeout(90_000);
    const roomName = uniqueRoom('refused');
    const [ana, bob] = [unique('ana'), unique('bob')];
    const anaPage = await users.open(ana, roomName, { origin: server.origin });
    const bobPage = await users.open(bob, roomName, { origin: server.origin });
    await expect(room.members(anaPage)).toHaveText([ana, bob]);

    const texts = Array.from({ length: 12 }, (_, i) => `quick ${i + 1}`);
    await typeQuickly(anaPage, texts);

    // Every text is on Ana's page, once: stored, or kept with the reason.
    const first = await settledTexts(anaPage);
    expect([...first.stored, ...first.refused].sort()).toEqual([...texts].sort());
    expect(first.refused.length, 'a burst of 12 at 3 + 1/s gets some refused').toBeGreaterThanOrEqual(2);
    // Both in the order they were typed, the refused ones below.
    expect(first.stored).toEqual(texts.filter((t) => first.stored.includes(t)));
    expect(first.refused).toEqual(texts.filter((t) => first.refused.includes(t)));
    await expect(room.lines(anaPage)).toHaveText([...first.stored, ...first.refused].map((t) => `${ana}: ${t}`));
    for (const item of await refusedItems(anaPage).all()) {
      await expect(item).toContainText(`Not sent: ${TOO_FAST}`);
    }
    // The stored ones reached Bob; the refused ones did not.
    await expect(room.lines(bobPage)).toHaveText(first.stored.map((t) => `${ana}: ${t}`));
    // Nothing was written back into the message box.
    await expect(room.messageBox(anaPage)).toHaveValue('');

    // The page with refused lines is accessible, in light and dark, and
    // fits a 320 px wide frame.
    for (const colorScheme of ['light', 'dark'] as const) {
      await anaPage.emulateMedia({ colorScheme });
      expect(await seriousViolations(anaPage)).toEqual([]);
    }
    await anaPage.setViewportSize({ width: 320, height: 640 });
    const last = refusedItems(anaPage).last();
    await expect(last.getByRole('button', { name: /^Dismiss: / })).toBeInViewport();
    const right = await last.evaluate((el) => el.getBoundingClientRect().right);
    expect(right).toBeLessThanOrEqual(320);
    await anaPage.setViewportSize({ width: 1280, height: 720 });

    // Dismissing removes that line only, and the keyboard moves on to the
    // next refused line.
    const dismissed = first.refused[first.refused.length - 1];
    await anaPage.getByRole('button', { name: `Dismiss: ${dismissed}`, exact: true }).click();
    await expect(anaPage.getByText(dismissed, { exact: true })).toHaveCount(0);
    const toRetry = first.refused.slice(0, -1);
    await expect(refusedItems(anaPage).locator('.body')).toHaveText(toRetry);
    await expect(room.lines(anaPage)).toHaveCount(texts.length - 1);
    await expect(
      anaPage.getByRole('button', { name: `Dismiss: ${toRetry[0]}`, exact: true }),
    ).toBeFocused();

    // Retry each, once the rate allows: each goes out again and reaches Bob
    // (one refused again waits at the end for another retry).
    for (let attempt = 0; attempt < 3 * toRetry.length && (await refusedItems(anaPage).count()) > 0; attempt++) {
      await anaPage.waitForTimeout(RATE_MS);
      const text = await refusedItems(anaPage).first().locator('.body').textContent();
      await anaPage.getByRole('button', { name: `Retry sending: ${text}`, exact: true }).click();
      await settledTexts(anaPage);
    }
    await expect(refusedItems(anaPage)).toHaveCount(0);

    // Both pages now show the same lines, each once: the first delivered
    // ones where they were, the retried ones after them.
    const final = (await settledTexts(anaPage)).stored;
    expect(final.slice(0, first.stored.length)).toEqual(first.stored);
    expect([...final].sort()).toEqual(texts.filter((t) => t !== dismissed).sort());
    await expect(room.lines(bobPage)).toHaveText(final.map((t) => `${ana}: ${t}`));
    await bobPage.reload();
    await expect(room.lines(bobPage)).toHaveText(final.map((t) => `${ana}: ${t}`));
    await expect(room.messageBox(anaPage)).toHaveValue('');
  });

  test('Copy puts a refused text on the clipboard, leaving the draft alone', async ({ users }) => {
    const roomName = uniqueRoom('copy');
    const ana = unique('ana');
    const page = await users.open(ana, roomName, { origin: server.origin });
    await page.context().grantPermissions(['clipboard-read', 'clipboard-write'], { origin: server.origin });

    await typeQuickly(page, Array.from({ length: 8 }, (_, i) => `to copy ${i + 1}`));
    const { refused } = await settledTexts(page);
    expect(refused.length).toBeGreaterThanOrEqual(1);
    await room.messageBox(page).fill('a draft in progress');

    const text = refused[0];
    await page.getByRole('button', { name: `Copy text: ${text}`, exact: true }).click();
    await expect(page.getByRole('button', { name: `Copied: ${text}`, exact: true })).toHaveText('Copied');
    expect(await page.evaluate(() => navigator.clipboard.readText())).toBe(text);
    await expect(room.messageBox(page)).toHaveValue('a draft in progress');
    await expect(refusedItems(page)).toHaveCount(refused.length);
  });

  test('without a Clipboard API, Copy puts the text in the message box after the draft', async ({ users }) => {
    const roomName = uniqueRoom('copy-box');
    const ana = unique('ana');
    const page = await users.open(ana, roomName, {
      origin: server.origin,
      prepare: (p) => p.addInitScript(() => Object.defineProperty(Navigator.prototype, 'clipboard', { get: () => undefined })),
    });

    await typeQuickly(page, Array.from({ length: 8 }, (_, i) => `into the box ${i + 1}`));
    const { refused } = await settledTexts(page);
    expect(refused.length).toBeGreaterThanOrEqual(1);
    await room.messageBox(page).fill('draft');

    const text = refused[0];
    await page.getByRole('button', { name: `Copy text: ${text}`, exact: true }).click();
    await expect(room.messageBox(page)).toHaveValue(`draft ${text}`);
    await expect(room.messageBox(page)).toBeFocused();
    await expect(refusedItems(page)).toHaveCount(refused.length);
  });
});
