// The game's backend at work: it posts a system message through the server
// API and every open page shows it, set apart from players' messages; its
// webhook receiver (a Node server here) gets the event, signed, and checks
// it with the README's recipe, copied as is.
import { createHmac, timingSafeEqual } from 'node:crypto';
import * as http from 'http';
import type { AddressInfo } from 'net';
import { ServerProcess } from './server_process';
import { expect, room, sendWithEnter, test, unique, uniqueRoom } from './fixtures';

const KEY = 'playwright-api-key-0123456789abcdefghij';
const HOOK_SECRET = 'playwright-hook-secret-0123456789abcdefg';
const port = Number(process.env.E2E_PORT ?? 8091) + 51;

// ---- The README's webhook recipe, as a game's backend would paste it. ----
function verifyChatWebhook(secret: string, header: string, rawBody: Buffer, seen: Set<string>) {
  const parts = Object.fromEntries(header.split(',').map((p) => p.split('=')));
  const t = Number(parts.t);
  if (!Number.isInteger(t) || Math.abs(Date.now() / 1000 - t) > 300) return null; // a replay
  const expected = createHmac('sha256', secret).update(`${t}.`).update(rawBody).digest();
  const given = Buffer.from(parts.v1 ?? '', 'hex');
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return null; // a forgery
  const event = JSON.parse(rawBody.toString());
  if (seen.has(event.id)) return null; // delivered before: a retry
  seen.add(event.id);
  return event;
}

/** The game's webhook receiver: keeps each event that passes the recipe. */
const received: Array<{ type: string; room: string; data: Record<string, unknown> }> = [];
const refused: string[] = [];
const seen = new Set<string>();
const receiver = http.createServer((request, response) => {
  const chunks: Buffer[] = [];
  request.on('data', (chunk: Buffer) => chunks.push(chunk));
  request.on('end', () => {
    const body = Buffer.concat(chunks);
    const event = verifyChatWebhook(HOOK_SECRET, String(request.headers['x-chat-signature'] ?? ''), body, seen);
    if (event) received.push(event);
    else refused.push(body.toString());
    response.writeHead(204).end();
  });
});

let server: ServerProcess;

async function api(method: string, pathname: string, body?: unknown): Promise<{ status: number; json: any }> {
  const response = await fetch(`${server.origin}/api/v1${pathname}`, {
    method,
    headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, json: text ? JSON.parse(text) : null };
}

test.describe('Server API', () => {
  test.beforeAll(async () => {
    await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
    const hookPort = (receiver.address() as AddressInfo).port;
    server = new ServerProcess(port, {
      API_KEYS: KEY,
      WEBHOOK_URLS: `http://127.0.0.1:${hookPort}/hook`,
      WEBHOOK_SECRET: HOOK_SECRET,
    });
    await server.start();
  });
  test.afterAll(async () => {
    await server.stop();
    receiver.close();
  });

  test('a system message posted by the game appears, set apart, in every open page', async ({ users }) => {
    const roomName = uniqueRoom('match');
    const [ana, bob] = [unique('ana'), unique('bob')];
    expect((await api('POST', '/rooms', { channel_id: roomName })).status).toBe(201);
    for (const user of [ana, bob]) {
      expect((await api('POST', `/rooms/${roomName}/members`, { user_id: user })).status).toBe(201);
    }
    const pages = [
      await users.open(ana, roomName, { origin: server.origin }),
      await users.open(bob, roomName, { origin: server.origin }),
    ];
    await sendWithEnter(pages[0], 'ready when you are');
    const posted = await api('POST', `/rooms/${roomName}/messages`, {
      client_msg_id: 'round-2',
      body: 'Round 2 starts',
    });
    expect(posted.status).toBe(201);
    expect(posted.json.system).toBe(true);

    for (const page of pages) {
      const system = room.items(page).filter({ hasText: 'Round 2 starts' });
      await expect(system).toHaveCount(1, { timeout: 3_000 });
      await expect(system).toHaveClass(/\bsystem\b/);
      await expect(system).toContainText('Game');
      const player = room.items(page).filter({ hasText: 'ready when you are' });
      const look = async (item: typeof system) =>
        item.locator('.body').evaluate((el) => {
          const style = getComputedStyle(el.closest('li')!);
          return `${style.backgroundColor}|${style.borderLeftStyle}|${getComputedStyle(el).fontStyle}`;
        });
      expect(await look(system)).not.toBe(await look(player));
    }
    // A reload shows it the same way (from the history, not the stream).
    await pages[1].reload();
    await expect(room.items(pages[1]).filter({ hasText: 'Round 2 starts' })).toHaveClass(/\bsystem\b/);

    // The game's receiver heard of it, signed as the README says.
    await expect.poll(() => received.filter((e) => e.type === 'message.created' && e.room === roomName).length).toBe(2);
    const event = received.find((e) => e.type === 'message.created' && e.data.body === 'Round 2 starts')!;
    expect(event.data.system).toBe(true);
    expect(refused).toEqual([]);
  });
});
