// A node given more page requests than it admits (here: one at a time and
// no waiting line) answers the rest at once with a short waiting page,
// never the browser's error page, and that page opens the room by itself a
// moment later.
import * as net from 'net';
import { ServerProcess } from './server_process';
import { expect, room, roomPath, test, unique, uniqueRoom } from './fixtures';

const port = Number(process.env.E2E_PORT ?? 8091) + 61;
const server = new ServerProcess(port, {
  PAGES_IN_FLIGHT: '1',
  PAGE_QUEUE: '0',
});

/**
 * Takes the node's one slot and keeps it: a server-function call whose
 * body never comes (the server waits for it while holding the slot). A
 * page asked for at the same moment may win the slot instead, and the
 * call is then turned away (it gets an answer): that try is dropped and
 * another made.
 */
async function holdTheSlot(): Promise<net.Socket> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const socket = await new Promise<net.Socket>((resolve, reject) => {
      const s = net.connect(port, '127.0.0.1', () => resolve(s));
      s.on('error', reject);
    });
    let answered = false;
    socket.on('data', () => {
      answered = true;
    });
    socket.write(
      `POST /api/join_room HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n` +
        'Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\n',
    );
    // Held once a page asked for now is turned away.
    for (let look = 0; look < 10 && !answered; look++) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      const status = (await fetch(`${server.origin}/`, { headers: { accept: 'text/html' } })).status;
      if (status === 503 && !answered) return socket;
    }
    socket.destroy();
  }
  throw new Error("the node's one slot could not be held");
}

test.describe('A full node', () => {
  test.beforeAll(async () => {
    await server.start();
  });

  test.afterAll(async () => server.stop());

  test('a player turned away waits on a short page and gets into the room by itself', async ({ page }) => {
    const held = await holdTheSlot();
    const url = `${server.origin}${roomPath(unique('ana'), uniqueRoom('storm'))}`;

    const first = await page.goto(url);
    expect(first?.status()).toBe(503);
    const retryAfter = Number(first?.headers()['retry-after']);
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(4);
    await expect(page.getByRole('status')).toHaveText(/joining right now.*opens in a moment/);
    await expect(page).toHaveTitle(/Joining/);

    // The node frees up; the waiting page comes back by itself, to the
    // same room, and the room goes live.
    held.destroy();
    await expect(room.status(page)).toHaveText('Connected', { timeout: (retryAfter + 10) * 1000 });
    expect(page.url()).toBe(url);
  });

  test('a form sent while the node is full says it is busy, and goes through once it is not', async ({ page }) => {
    await page.goto(`${server.origin}${roomPath(unique('ana'), uniqueRoom('busy'))}`);
    await expect(room.status(page)).toHaveText('Connected');
    const held = await holdTheSlot();
    const bob = unique('bob');
    await room.addUserBox(page).fill(bob);
    await room.addUserButton(page).click();
    await expect(page.getByRole('alert')).toHaveText(/^The chat is very busy right now\. Please try again in \d s\.$/);

    held.destroy();
    await expect
      .poll(async () => (await fetch(`${server.origin}/`, { headers: { accept: 'text/html' } })).status)
      .toBe(200);
    await room.addUserButton(page).click();
    await expect(room.members(page).filter({ hasText: bob })).toHaveCount(1);
    await expect(page.getByRole('alert')).toHaveCount(0);
  });
});
