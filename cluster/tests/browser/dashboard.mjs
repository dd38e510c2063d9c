// The dashboard in a real headless browser, for cluster/tests/dashboard_browser.rs:
//
//   node cluster/tests/browser/dashboard.mjs --url http://127.0.0.1:8080/ --screenshot out.png
//
// Opens the page in Debian's Chromium (playwright-core from cluster/dashboard/node_modules;
// $CHROMIUM overrides /usr/bin/chromium), waits for the risk table to fill, switches the
// window to 2h, waits for the new subscription and the rows again, takes a full-page
// screenshot and prints ONE JSON line: the console errors, page errors, failed requests
// and responses >= 400 it saw, the row counts, the switch's subscription URL and every
// subscription URL requested. The caller judges them; this script exits non-zero only
// when it cannot run (bad arguments, no playwright-core, Chromium does not start).

import { createRequire } from 'node:module';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';

function fail(message) {
  process.stderr.write(`dashboard.mjs: ${message}\n`);
  process.exit(2);
}

function parseArgs(argv) {
  const args = { url: 'http://127.0.0.1:8080/', screenshot: null };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = argv[i + 1];
    if (flag === '--url' || flag === '--screenshot') {
      if (value === undefined) fail(`${flag} needs a value`);
      args[flag.slice(2)] = value;
      i++;
    } else {
      fail(`unknown argument ${flag} (usage: --url URL --screenshot PNG)`);
    }
  }
  if (!args.screenshot) fail('--screenshot PNG is required');
  return args;
}

function loadPlaywright() {
  // The dashboard's own packages hold playwright-core (its devDependencies); NODE_PATH
  // is the fallback for a checkout that keeps node_modules elsewhere.
  const dashboard = new URL('../../dashboard/package.json', import.meta.url);
  try {
    return createRequire(dashboard)('playwright-core');
  } catch (first) {
    try {
      return createRequire(import.meta.url)('playwright-core');
    } catch {
      fail(
        `cannot load playwright-core from cluster/dashboard/node_modules (${first.message}); ` +
          'run scripts/setup.sh',
      );
    }
  }
}

// Host rows (the contract's data-ip), not a placeholder row of an empty table.
// The windows of the risk subscriptions a request asks for: one view per stream
// (`/v1/subscribe/risks?window=2h`) or several on one (`/v1/subscribe?r=risks%3Fwindow%3D2h`).
function risksWindows(url) {
  let u;
  try {
    u = new URL(url);
  } catch {
    return [];
  }
  if (u.pathname === '/v1/subscribe/risks') return [u.searchParams.get('window')];
  if (u.pathname !== '/v1/subscribe') return [];
  return [...u.searchParams.values()]
    .filter((view) => view.split('?')[0] === 'risks')
    .map((view) => new URLSearchParams(view.split('?')[1] || '').get('window'));
}

const isSubscription = (url) => {
  try {
    return new URL(url).pathname.startsWith('/v1/subscribe');
  } catch {
    return false;
  }
};

const ROWS = '#risk-table tbody tr[data-ip]';
const SWITCH = '#window-switch button[data-window="2h"]';

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const { chromium } = loadPlaywright();
  const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';

  let browser;
  try {
    browser = await chromium.launch({ executablePath, args: ['--no-sandbox'] });
  } catch (e) {
    fail(`cannot launch Chromium at ${executablePath}: ${e.message}`);
  }

  const report = {
    console_errors: [],
    page_errors: [],
    failed_requests: [],
    bad_responses: [],
    risk_rows: 0,
    risk_rows_after_switch: 0,
    switch_request: null,
    requests: [],
    // Steps that timed out or failed, for the caller's message.
    steps_failed: [],
  };
  const allRequests = [];
  // Set before closing: the page's own subscriptions are aborted then.
  let closing = false;

  try {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await context.newPage();

    page.on('console', (msg) => {
      if (msg.type() !== 'error') return;
      const loc = msg.location();
      const where = loc && loc.url ? ` (${loc.url}:${loc.lineNumber}:${loc.columnNumber})` : '';
      report.console_errors.push(`${msg.text()}${where}`);
    });
    page.on('pageerror', (err) => {
      report.page_errors.push(err.stack || String(err));
    });
    page.on('crash', () => report.page_errors.push('the page crashed'));
    page.on('request', (req) => allRequests.push(req.url()));
    page.on('requestfailed', (req) => {
      if (closing) return;
      const text = (req.failure() && req.failure().errorText) || 'unknown failure';
      // Switching windows closes the page's EventSource subscriptions: those aborts are
      // expected.
      if (isSubscription(req.url()) && text === 'net::ERR_ABORTED') return;
      report.failed_requests.push(`${req.method()} ${req.url()}: ${text}`);
    });
    page.on('response', (res) => {
      if (res.status() >= 400) {
        report.bad_responses.push(`${res.request().method()} ${res.url()}: ${res.status()}`);
      }
    });

    const countRows = () => page.locator(ROWS).count();
    const waitForRows = async (timeout, step) => {
      try {
        await page.waitForFunction((sel) => document.querySelectorAll(sel).length > 0, ROWS, {
          timeout,
          polling: 200,
        });
      } catch (e) {
        report.steps_failed.push(`${step}: ${e.message.split('\n')[0]}`);
      }
      return countRows();
    };

    try {
      await page.goto(args.url, { waitUntil: 'load', timeout: 30_000 });
    } catch (e) {
      report.steps_failed.push(`open ${args.url}: ${e.message.split('\n')[0]}`);
    }
    report.risk_rows = await waitForRows(60_000, 'risk rows within 60 s');

    const isSwitch = (req) => risksWindows(req.url()).includes('2h');
    const switchRequest = page.waitForRequest(isSwitch, { timeout: 20_000 }).then(
      (req) => req,
      (e) => {
        report.steps_failed.push(`2h subscription within 20 s: ${e.message.split('\n')[0]}`);
        return null;
      },
    );
    try {
      await page.click(SWITCH, { timeout: 10_000 });
    } catch (e) {
      report.steps_failed.push(`click ${SWITCH}: ${e.message.split('\n')[0]}`);
    }
    const req = await switchRequest;
    report.switch_request = req ? req.url() : null;
    await waitForRows(20_000, 'risk rows after the switch within 20 s');
    // Let the charts draw what the subscriptions brought.
    await page.waitForTimeout(3_000);
    report.risk_rows_after_switch = await countRows();

    mkdirSync(dirname(args.screenshot), { recursive: true });
    await page.screenshot({ path: args.screenshot, fullPage: true });
  } catch (e) {
    closing = true;
    await browser.close().catch(() => {});
    fail(`the browser session failed: ${e.stack || e.message}`);
  }

  closing = true;
  await browser.close();
  report.requests = allRequests.filter(isSubscription);
  process.stdout.write(`${JSON.stringify(report)}\n`);
}

main().catch((e) => fail(e.stack || String(e)));
