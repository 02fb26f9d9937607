// What a player downloads, counted as Chromium counts the bytes that came
// over the network (CDP `Network.loadingFinished`): the bundle compressed
// at build time (brotli, or gzip where the browser offers no brotli:
// browsers offer it over HTTPS, and on plain HTTP only to some hosts); and
// on the next room, only the page itself, the bundle being kept by the
// browser (content-hashed names, `immutable`).
import type { CDPSession, Page } from '@playwright/test';
import { test, expect, unique, uniqueRoom, roomPath, waitConnected } from './fixtures';

interface Transfer {
  url: string;
  type: string;
  status: number;
  encoding?: string;
  cacheControl?: string;
  fromCache: boolean;
  /** Bytes over the network: headers and (compressed) body; 0 from the cache. */
  bytes: number;
}

/** Records every finished load of the page, with what it cost on the wire. */
async function recordTransfers(page: Page): Promise<{ cdp: CDPSession; transfers: Transfer[] }> {
  const cdp = await page.context().newCDPSession(page);
  const pending = new Map<string, Omit<Transfer, 'bytes'>>();
  const transfers: Transfer[] = [];
  cdp.on('Network.responseReceived', (event) => {
    const headers = Object.fromEntries(
      Object.entries(event.response.headers).map(([name, value]) => [name.toLowerCase(), String(value)]),
    );
    pending.set(event.requestId, {
      url: event.response.url,
      type: event.type,
      status: event.response.status,
      encoding: headers['content-encoding'],
      cacheControl: headers['cache-control'],
      fromCache: Boolean(event.response.fromDiskCache || event.response.fromPrefetchCache),
    });
  });
  cdp.on('Network.requestServedFromCache', (event) => {
    const seen = pending.get(event.requestId);
    if (seen) seen.fromCache = true;
  });
  cdp.on('Network.loadingFinished', (event) => {
    const seen = pending.get(event.requestId);
    if (seen) transfers.push({ ...seen, bytes: event.encodedDataLength });
  });
  await cdp.send('Network.enable');
  return { cdp, transfers };
}

const isWasm = (t: Transfer) => /\/pkg\/embedded-chat\.[0-9a-f]{16}\.wasm$/.test(t.url);

test('the bundle comes compressed, and a second room downloads only its page', async ({ page }) => {
  const { transfers } = await recordTransfers(page);
  const ana = unique('ana');

  await page.goto(roomPath(ana, uniqueRoom('bytes')));
  await waitConnected(page);
  await expect.poll(() => transfers.filter(isWasm).length).toBe(1);
  const wasm = transfers.find(isWasm)!;
  expect(wasm.status).toBe(200);
  expect(['br', 'gzip']).toContain(wasm.encoding);
  expect(wasm.cacheControl).toBe('public, max-age=31536000, immutable');
  // About 400 KB as built: some 160 KB with gzip, less with brotli.
  expect(wasm.bytes).toBeGreaterThan(50_000);
  expect(wasm.bytes).toBeLessThanOrEqual(170_000);
  for (const kind of ['js', 'css']) {
    const file = transfers.find((t) => new RegExp(`/pkg/embedded-chat\\.[0-9a-f]{16}\\.${kind}$`).test(t.url));
    expect(file, `the ${kind} of the bundle, hashed`).toBeDefined();
    expect(file!.cacheControl).toBe('public, max-age=31536000, immutable');
  }
  const cold = transfers.reduce((sum, t) => sum + t.bytes, 0);

  transfers.length = 0;
  await page.goto(roomPath(ana, uniqueRoom('bytes-again')));
  await waitConnected(page);
  const document = transfers.filter((t) => t.type === 'Document');
  expect(document).toHaveLength(1);
  expect(document[0].bytes).toBeGreaterThan(0);
  // Everything else (the room is connected, so its code ran) came from
  // the browser's cache: nothing over the wire.
  const others = transfers.filter((t) => t.type !== 'Document');
  for (const other of others) {
    expect(other.bytes, `${other.url} over the wire`).toBe(0);
  }
  console.log(
    `bytes over the wire: first room ${cold}, second room ${document[0].bytes} (the page alone)`,
  );
});
