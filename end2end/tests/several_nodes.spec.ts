// Two server processes share rooms through one PostgreSQL database and one
// Redis, as behind a load balancer: pages on different nodes chat with each
// other, and a page whose node goes away carries on through the other one.
//
// Needs the machine's PostgreSQL (127.0.0.1:5432, user postgres, `psql` on
// the PATH) and Redis (127.0.0.1:6379); the database is created here and
// dropped afterwards.
import { execFileSync } from 'child_process';
import { CuttableProxy } from './proxy';
import { ServerProcess } from './server_process';
import { expect, room, sendWithEnter, test, unique, uniqueRoom } from './fixtures';

const basePort = Number(process.env.E2E_PORT ?? 8091);
const database = `chat_e2e_${process.pid}_${Date.now().toString(36)}`;
const prefix = `chat-e2e-${process.pid}-${Date.now().toString(36)}`;
// Chromium's noise when a node goes away under an open websocket.
const NODE_LOSS_NOISE = [/WebSocket connection to .* failed/, /Failed to load resource/];

function psql(sql: string): void {
  execFileSync('psql', ['-h', '127.0.0.1', '-U', 'postgres', '-d', 'postgres', '-q', '-c', sql], { stdio: 'pipe' });
}

function node(port: number): ServerProcess {
  return new ServerProcess(port, {
    DATABASE_URL: `postgres://postgres@127.0.0.1:5432/${database}`,
    REDIS_URL: 'redis://127.0.0.1:6379/',
    REDIS_PREFIX: prefix,
  });
}

test.describe('Several nodes', () => {
  const a = node(basePort + 11);
  const b = node(basePort + 12);

  test.beforeAll(async () => {
    psql(`CREATE DATABASE ${database}`);
    await a.start();
    await b.start();
  });

  test.afterAll(async () => {
    await a.stop();
    await b.stop();
    psql(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
  });

  test('two people on two different nodes chat with each other live', async ({ users }) => {
    const roomName = uniqueRoom('nodes');
    const [ana, bob] = [unique('ana'), unique('bob')];
    const anaPage = await users.open(ana, roomName, { origin: a.origin });
    const bobPage = await users.open(bob, roomName, { origin: b.origin });
    await expect(room.members(anaPage)).toHaveText([ana, bob]);
    await expect(room.members(bobPage)).toHaveText([ana, bob]);

    await sendWithEnter(anaPage, 'hello from node A');
    await expect(room.conversation(bobPage)).toContainText('hello from node A');
    await sendWithEnter(bobPage, 'hello from node B');
    await expect(room.conversation(anaPage)).toContainText('hello from node B');
    await expect(room.lines(anaPage)).toHaveCount(2);
    await expect(room.lines(bobPage)).toHaveCount(2);
  });

  test('when a node goes away its page reconnects through the other node and catches up', async ({ users }) => {
    // The page reaches node A through a "load balancer" that moves new
    // connections to node B once A is gone.
    const balancer = new CuttableProxy(a.port);
    await balancer.start();
    try {
      const roomName = uniqueRoom('failover');
      const [ana, bob] = [unique('ana'), unique('bob')];
      const anaPage = await users.open(ana, roomName, { origin: balancer.origin, allowConsole: NODE_LOSS_NOISE });
      const bobPage = await users.open(bob, roomName, { origin: b.origin });
      await sendWithEnter(anaPage, 'before the deploy');
      await expect(room.conversation(bobPage)).toContainText('before the deploy');

      balancer.retarget(b.port);
      await a.stop();
      await sendWithEnter(bobPage, 'while node A was gone');
      await expect(room.status(anaPage)).toHaveText('Connected', { timeout: 20_000 });
      await expect(room.conversation(anaPage)).toContainText('while node A was gone');
      await sendWithEnter(anaPage, 'back through node B');
      await expect(room.conversation(bobPage)).toContainText('back through node B');
      await expect(room.lines(anaPage)).toHaveCount(3);
      await expect(room.lines(bobPage)).toHaveCount(3);
    } finally {
      await balancer.stop();
    }
  });
});
