// Accessibility: an axe-core scan of every kind of page in light and dark,
// and the room used with the keyboard alone.
import AxeBuilder from '@axe-core/playwright';
import { test, expect, unique, uniqueRoom, room, sendWithEnter } from './fixtures';
import type { Page } from '@playwright/test';

/** Violations axe rates serious or critical, one readable line each. */
async function seriousViolations(page: Page): Promise<string[]> {
  const results = await new AxeBuilder({ page }).analyze();
  return results.violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .flatMap((v) => v.nodes.map((n) => `${v.id} (${v.impact}): ${v.help} at ${n.target.join(' ')}`));
}

for (const colorScheme of ['light', 'dark'] as const) {
  test.describe(`Accessibility in ${colorScheme} mode`, () => {
    test('the home, room, embedded room and demo pages have no serious violations', async ({ users }) => {
      const roomName = uniqueRoom(`a11y-${colorScheme}`);
      const [ana, bob] = [unique('ana'), unique('bob')];

      const home = await users.openPath('home', '/');
      await home.emulateMedia({ colorScheme });
      expect(await seriousViolations(home)).toEqual([]);

      const pageA = await users.open(ana, roomName);
      await pageA.emulateMedia({ colorScheme });
      const pageB = await users.open(bob, roomName, { extra: 'embed=1' });
      await pageB.emulateMedia({ colorScheme });
      await sendWithEnter(pageA, 'hello, can you read this?');
      await sendWithEnter(pageA, 'a second line in the same group');
      await sendWithEnter(pageB, 'loud and clear');
      await expect(room.lines(pageA)).toHaveCount(3);
      await expect(room.lines(pageB)).toHaveCount(3);
      expect(await seriousViolations(pageA)).toEqual([]);
      expect(await seriousViolations(pageB)).toEqual([]);

      const missing = await users.openPath('missing room', '/chat_room?user_id=x');
      await missing.emulateMedia({ colorScheme });
      expect(await seriousViolations(missing)).toEqual([]);

      const demo = await users.openPath('demo', `/embed-demo?user_id=${unique('guest')}&channel_id=${roomName}`);
      await demo.emulateMedia({ colorScheme });
      await expect(demo.frameLocator('iframe[title="Chat room"]').getByRole('status')).toHaveText('Connected');
      expect(await seriousViolations(demo)).toEqual([]);
    });
  });
}

test.describe('Keyboard', () => {
  test('the room can be used with the keyboard alone, with a visible focus', async ({ users }) => {
    const roomName = uniqueRoom('keys');
    const ana = unique('ana');
    const page = await users.open(ana, roomName);

    // Tab from the top of the page to the message box.
    const box = room.messageBox(page);
    for (let i = 0; i < 12 && !(await box.evaluate((el) => el === document.activeElement)); i++) {
      await page.keyboard.press('Tab');
    }
    await expect(box).toBeFocused();
    await page.keyboard.type('typed with keys only');
    await page.keyboard.press('Enter');
    await expect(room.lines(page)).toHaveText([`${ana}: typed with keys only`]);

    // Next stops: Send, then (in the sidebar) the add-user box and button.
    await page.keyboard.press('Tab');
    await expect(room.sendButton(page)).toBeFocused();
    const outline = await room.sendButton(page).evaluate((el) => getComputedStyle(el).outlineStyle);
    expect(outline).not.toBe('none');
    await page.keyboard.press('Tab');
    await expect(room.addUserBox(page)).toBeFocused();
    await page.keyboard.type('keyboard-friend');
    await page.keyboard.press('Enter');
    await expect(room.members(page)).toHaveText([ana, 'keyboard-friend']);

    // Leaving works from the keyboard too.
    await room.leaveButton(page).focus();
    await page.keyboard.press('Enter');
    await expect(page).toHaveURL('/');
  });
});
