// Time to chatting: how long a player waits, from opening the chat inside a
// game to being able to send a message, on a slow mobile link.
//
// A game opens `/chat_room?user_id=…&channel_id=…`; the server renders the
// room, the browser downloads the JS and WASM bundle, hydrates the room and
// connects its websocket. The player can chat once the room says
// "Connected" and the message box takes input. This program measures that
// wait in Chromium with the network emulated over CDP (by default 1.6 Mbit/s
// down, 750 kbit/s up, 150 ms round trip), in two cases:
//   cold  a fresh browser context (empty cache) opens a room: everything is
//         downloaded and compiled. Target: ≤ 2.5 s.
//   warm  a page that has already opened a room goes to another one: the
//         bundle comes from the cache, only the HTML crosses the network.
//         Target: ≤ 1 s.
// Each run ends by sending a message and waiting for the server to confirm
// it, so a page that looks ready but cannot chat fails the measurement.
//
// It starts its own release server (fresh SQLite file, free port) and
// prints one JSON line on stdout; progress goes to stderr.
//
// Run from the repo root:   node end2end/perf/time_to_chatting.mjs [--runs N]
// or from end2end/:         npm run perf -- [--runs N]
// The browser is Debian's Chromium; CHROMIUM_PATH names another one.
import { chromium } from '@playwright/test';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
// The launch arguments of the end-to-end tests (playwright.config.ts).
const CHROMIUM_ARGS = [
  '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];
/** How long a page may take to become ready, or a sent message to be confirmed. */
const PAGE_TIMEOUT_MS = 30_000;
/** How often the page is checked for "chatting" (a finer grain than the times reported). */
const POLL_MS = 10;
const READY_TIMEOUT_MS = 20_000;
const KILL_AFTER_MS = 5_000;

const HELP = `Usage: node end2end/perf/time_to_chatting.mjs [options]

Measures the time from navigation to "chatting" (room shows "Connected" and
the message box takes input) in Chromium on an emulated slow network, for a
cold cache and a warm one, and prints one JSON line on stdout.

Options:
  --runs N          runs of each case (default 5)
  --down-kbps N     emulated download speed in kbit/s (default 1600)
  --up-kbps N       emulated upload speed in kbit/s (default 750)
  --rtt-ms N        emulated round-trip latency in ms (default 150)
  --server-bin PATH server binary (default <repo>/target/release/server)
  --site-root DIR   built site it serves (default <repo>/target/site)
  --port N          port to listen on (default: a free one)
  -h, --help        this text

Environment: CHROMIUM_PATH names the browser (default /usr/bin/chromium).`;

// ---- Options ----------------------------------------------------------------

function readOptions(argv) {
  const { values } = parseArgs({
    args: argv,
    options: {
      runs: { type: 'string', default: '5' },
      'down-kbps': { type: 'string', default: '1600' },
      'up-kbps': { type: 'string', default: '750' },
      'rtt-ms': { type: 'string', default: '150' },
      'server-bin': { type: 'string', default: path.join(ROOT, 'target/release/server') },
      'site-root': { type: 'string', default: path.join(ROOT, 'target/site') },
      port: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  return {
    help: values.help,
    runs: positiveInteger(values.runs, '--runs', 1),
    downKbps: positiveInteger(values['down-kbps'], '--down-kbps', 1),
    upKbps: positiveInteger(values['up-kbps'], '--up-kbps', 1),
    rttMs: positiveInteger(values['rtt-ms'], '--rtt-ms', 0),
    serverBin: path.resolve(values['server-bin']),
    siteRoot: path.resolve(values['site-root']),
    port: values.port === undefined ? undefined : positiveInteger(values.port, '--port', 1),
  };
}

function positiveInteger(text, flag, min) {
  const n = Number(text);
  if (!Number.isInteger(n) || n < min) throw new Error(`${flag} needs a whole number ≥ ${min}, not "${text}".`);
  return n;
}

// ---- The server -------------------------------------------------------------

/** A port nobody listens on right now (the kernel picks it). */
function freePort() {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
  });
}

/** Starts the server on `port` with a fresh database in `dataDir`; resolves once `/readyz` answers 200. */
async function startServer({ serverBin, siteRoot }, port, dataDir) {
  const failure = `The server ${serverBin} did not start on port ${port}`;
  if (!fs.existsSync(serverBin)) throw new Error(`${failure}: the binary does not exist.`);
  const child = spawn(serverBin, [], {
    cwd: ROOT,
    stdio: ['ignore', 'ignore', 'inherit'],
    env: {
      PATH: process.env.PATH,
      LEPTOS_SITE_ADDR: `127.0.0.1:${port}`,
      LEPTOS_SITE_ROOT: siteRoot,
      DATABASE_URL: `sqlite://${dataDir}/ttc.db?mode=rwc`,
      RUST_LOG: 'warn',
    },
  });
  let exited = null;
  child.once('error', (err) => { exited = err.message; });
  child.once('exit', (code, signal) => { exited = `it exited (${signal ?? `code ${code}`})`; });

  const deadline = Date.now() + READY_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (exited) throw new Error(`${failure}: ${exited}.`);
    try {
      const response = await fetch(`http://127.0.0.1:${port}/readyz`);
      if (response.status === 200) return child;
    } catch {
      // not listening yet
    }
    await sleep(50);
  }
  await stopServer(child);
  throw new Error(`${failure}: /readyz did not answer 200 within ${READY_TIMEOUT_MS / 1000} s.`);
}

/** SIGTERM, then SIGKILL if the server is still there after KILL_AFTER_MS. */
async function stopServer(child) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), KILL_AFTER_MS);
  await exited;
  clearTimeout(timer);
}

// ---- The browser ------------------------------------------------------------

async function launchBrowser() {
  if (!fs.existsSync(CHROMIUM)) {
    throw new Error(`Chromium is missing: ${CHROMIUM} does not exist (install chromium or set CHROMIUM_PATH).`);
  }
  return chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
}

/**
 * Emulates the slow link on `page` and counts the bytes it receives: the
 * returned `bytes()` is what came over the network since the last `reset()`
 * (compressed sizes plus headers, as CDP reports them).
 */
async function throttle(context, page, { downKbps, upKbps, rttMs }) {
  const cdp = await context.newCDPSession(page);
  await cdp.send('Network.enable');
  await cdp.send('Network.emulateNetworkConditions', {
    offline: false,
    latency: rttMs,
    downloadThroughput: (downKbps * 1000) / 8,
    uploadThroughput: (upKbps * 1000) / 8,
  });
  let received = 0;
  cdp.on('Network.loadingFinished', (event) => { received += event.encodedDataLength; });
  return {
    reset: () => { received = 0; },
    bytes: () => received,
  };
}

/** The address of a room page. */
function roomUrl(origin, user, room) {
  return `${origin}/chat_room?${new URLSearchParams({ user_id: user, channel_id: room })}`;
}

/**
 * True in the page once it shows `room`, says "Connected" and its message
 * box takes input. Returns the page's own clock then (ms since navigation).
 */
function chattingInPage(room) {
  const name = document.querySelector('.room-name');
  const status = document.querySelector('[role="status"]');
  const box = document.getElementById('message-input');
  const ready =
    name?.textContent.trim() === room &&
    status?.textContent.trim() === 'Connected' &&
    box !== null && box.matches(':enabled') && !box.readOnly;
  return ready && performance.now();
}

/** Where the page's time went, in ms since navigation (navigation and resource timing). */
function timelineInPage() {
  const nav = performance.getEntriesByType('navigation')[0];
  const done = (suffix) =>
    performance.getEntriesByType('resource').find((r) => r.name.endsWith(suffix))?.responseEnd ?? NaN;
  return { html: nav.responseEnd, js: done('.js'), wasm: done('.wasm') };
}

/**
 * Navigates `page` to a fresh room and times it until chatting; then sends
 * a message and waits for the server to confirm it (outside the timed window).
 */
async function timeOneRun(page, meter, origin, label) {
  const room = `ttc-${Date.now().toString(36)}-${label}`;
  const user = `player-${label}`;
  meter.reset();
  const start = performance.now();
  // 'commit': the new document exists, so the check below cannot see the previous room.
  await page.goto(roomUrl(origin, user, room), { waitUntil: 'commit', timeout: PAGE_TIMEOUT_MS });
  const ready = await page.waitForFunction(chattingInPage, room, { polling: POLL_MS, timeout: PAGE_TIMEOUT_MS });
  const seconds = (performance.now() - start) / 1000;
  const bytes = meter.bytes();
  const connectedMs = await ready.jsonValue();
  const timeline = await page.evaluate(timelineInPage);
  await checkCanChat(page, `hello from ${user}`);
  return { seconds, bytes, timeline: { ...timeline, connected: connectedMs } };
}

/** Types `text`, presses Enter, and waits until the conversation shows it confirmed (no longer pending). */
async function checkCanChat(page, text) {
  const box = page.locator('#message-input');
  await box.fill(text);
  await box.press('Enter');
  const confirmed = page.locator('[role="log"][aria-label="Conversation"] li.message:not(.pending) .body', {
    hasText: text,
  });
  try {
    await confirmed.waitFor({ timeout: PAGE_TIMEOUT_MS });
  } catch {
    throw new Error(`The message "${text}" was not confirmed in the conversation within ${PAGE_TIMEOUT_MS / 1000} s.`);
  }
}

/** Cold: each run in a fresh context (empty cache, nothing compiled). */
async function coldCase(browser, origin, options) {
  const results = [];
  for (let i = 1; i <= options.runs; i++) {
    const context = await browser.newContext();
    try {
      const page = await context.newPage();
      const meter = await throttle(context, page, options);
      results.push(await timeOneRun(page, meter, origin, `cold${i}`));
    } finally {
      await context.close();
    }
    progress(`cold ${i}/${options.runs}`, results.at(-1));
  }
  return results;
}

/** Warm: one page opens a room once (untimed) to fill its cache, then goes to a fresh room each run. */
async function warmCase(browser, origin, options) {
  const context = await browser.newContext();
  try {
    const page = await context.newPage();
    const meter = await throttle(context, page, options);
    progress('warm-up (untimed)', await timeOneRun(page, meter, origin, 'warmup'));
    const results = [];
    for (let i = 1; i <= options.runs; i++) {
      results.push(await timeOneRun(page, meter, origin, `warm${i}`));
      progress(`warm ${i}/${options.runs}`, results.at(-1));
    }
    return results;
  } finally {
    await context.close();
  }
}

// ---- Reporting --------------------------------------------------------------

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

const seconds3 = (s) => Number(s.toFixed(3));
const ms = (t) => (Number.isNaN(t) ? '-' : (t / 1000).toFixed(2));

/** One run on stderr: total, then when the page had its HTML, JS, WASM and connection (page clock). */
function progress(label, { seconds, bytes, timeline }) {
  const { html, js, wasm, connected } = timeline;
  process.stderr.write(
    `${label}: ${seconds.toFixed(3)} s, ${bytes} B ` +
      `(page: html ${ms(html)}, js ${ms(js)}, wasm ${ms(wasm)}, connected ${ms(connected)} s)\n`,
  );
}

function summary(options, cold, warm) {
  return {
    server: 'ours',
    kind: 'first_second',
    scenario: 'time-to-chatting',
    down_kbps: options.downKbps,
    up_kbps: options.upKbps,
    rtt_ms: options.rttMs,
    runs: options.runs,
    cold_median_s: seconds3(median(cold.map((r) => r.seconds))),
    cold_max_s: seconds3(Math.max(...cold.map((r) => r.seconds))),
    warm_median_s: seconds3(median(warm.map((r) => r.seconds))),
    warm_max_s: seconds3(Math.max(...warm.map((r) => r.seconds))),
    cold_bytes: Math.round(median(cold.map((r) => r.bytes))),
    warm_bytes: Math.round(median(warm.map((r) => r.bytes))),
  };
}

const sleep = (msec) => new Promise((resolve) => setTimeout(resolve, msec));

// ---- Main -------------------------------------------------------------------

async function measure(options) {
  const port = options.port ?? (await freePort());
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ttc-'));
  let server;
  let browser;
  // Ctrl-C must not leave the server behind.
  const onSignal = () => { server?.kill('SIGKILL'); process.exit(130); };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    browser = await launchBrowser();
    process.stderr.write(`starting ${options.serverBin} on port ${port}\n`);
    server = await startServer(options, port, dataDir);
    const origin = `http://127.0.0.1:${port}`;
    process.stderr.write(
      `network: ${options.downKbps} kbit/s down, ${options.upKbps} kbit/s up, ${options.rttMs} ms RTT; ${options.runs} runs each\n`,
    );
    const cold = await coldCase(browser, origin, options);
    const warm = await warmCase(browser, origin, options);
    return summary(options, cold, warm);
  } finally {
    await browser?.close().catch(() => {});
    if (server) await stopServer(server);
    fs.rmSync(dataDir, { recursive: true, force: true });
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

async function main() {
  let options;
  try {
    options = readOptions(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`${err.message}\n\n${HELP}\n`);
    return 2;
  }
  if (options.help) {
    process.stdout.write(`${HELP}\n`);
    return 0;
  }
  try {
    process.stdout.write(`${JSON.stringify(await measure(options))}\n`);
    return 0;
  } catch (err) {
    process.stderr.write(`${err.message}\n`);
    process.stdout.write(
      `${JSON.stringify({ server: 'ours', kind: 'first_second', scenario: 'time-to-chatting', error: err.message })}\n`,
    );
    return 1;
  }
}

process.exitCode = await main();
