// What a player downloads: the bundle compressed at build time (brotli,
// or gzip where the browser offers no brotli: browsers offer it over
// HTTPS, and on plain HTTP only to some hosts), and on the next room the
// browser asks again and gets a 304 with no body, not the WASM again.
import { test, expect, unique, uniqueRoom, roomPath, waitConnected } from './fixtures';

interface Fetched {
  status: number;
  encoding?: string;
  bodyBytes: number;
}

test('the WASM comes compressed, and a second room does not download it again', async ({ page }) => {
  const wasm: Fetched[] = [];
  page.on('requestfinished', async (request) => {
    if (!request.url().endsWith('/pkg/embedded-chat.wasm')) return;
    const response = await request.response();
    const sizes = await request.sizes();
    wasm.push({
      status: response?.status() ?? 0,
      encoding: response?.headers()['content-encoding'],
      bodyBytes: sizes.responseBodySize,
    });
  });
  const ana = unique('ana');

  await page.goto(roomPath(ana, uniqueRoom('bytes')));
  await waitConnected(page);
  await expect.poll(() => wasm.length).toBe(1);
  expect(wasm[0].status).toBe(200);
  expect(['br', 'gzip']).toContain(wasm[0].encoding);
  // About 400 KB as built: some 160 KB with gzip, less with brotli.
  expect(wasm[0].bodyBytes).toBeGreaterThan(50_000);
  expect(wasm[0].bodyBytes).toBeLessThanOrEqual(170_000);

  await page.goto(roomPath(ana, uniqueRoom('bytes-again')));
  await waitConnected(page);
  // Asked again (the names carry no hash yet, so the bundle is
  // revalidated) and answered 304 with no body, which the browser reports
  // as its cached 200; or taken from the memory cache without asking.
  for (const again of wasm.slice(1)) {
    expect([200, 304]).toContain(again.status);
    expect(again.bodyBytes).toBeLessThan(1_000);
  }
});
