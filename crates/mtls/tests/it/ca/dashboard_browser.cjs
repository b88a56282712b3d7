// Renders mtls-ca's dashboard in headless Chromium (playwright-core, the system's
// /usr/bin/chromium) as the admin identity over mTLS, and prints what the page shows as one
// JSON line for crates/mtls/tests/it/ca/dashboard_browser.rs to assert on. Exits non-zero on
// any failure to load; the assertions are the Rust test's.
//
// Environment: PLAYWRIGHT_DIR (the npm --prefix holding playwright-core), DASHBOARD_URL,
// CLIENT_CERT, CLIENT_KEY (the admin's PEM files), FILTER_ID (the identity to filter by),
// SCREENSHOT (PNG path). NODE_EXTRA_CA_CERTS names the CA's root, so the CA's own certificate
// is verified (no ignoreHTTPSErrors).
'use strict';
const path = require('path');
const { chromium } = require(path.join(process.env.PLAYWRIGHT_DIR, 'node_modules', 'playwright-core'));

async function facts(page) {
  return page.evaluate(() => {
    const text = (sel) => { const e = document.querySelector(sel); return e ? e.textContent.trim() : null; };
    const rows = [...document.querySelectorAll('#certificates tbody tr')].map((tr) => ({
      identity: tr.querySelector('td.identity').textContent,
      status: tr.dataset.status,
      badge: tr.querySelector('.badge').textContent,
    }));
    const badge = document.querySelector('#audit-status');
    return {
      title: document.title,
      rows,
      revocations: [...document.querySelectorAll('#revocations tbody td.identity')].map((td) => td.textContent),
      audit: text('#audit-status'),
      auditEntries: text('#audit-entries'),
      auditHead: text('#audit-head'),
      crl: text('#crl'),
      refusals: text('#refusals'),
      timelineBars: document.querySelectorAll('#timeline svg rect').length,
      scripts: document.querySelectorAll('script').length,
      // Computed by the browser: proves the stylesheet was allowed by the CSP hash.
      auditBadgeBackground: badge ? getComputedStyle(badge).backgroundColor : null,
    };
  });
}

(async () => {
  const url = new URL(process.env.DASHBOARD_URL);
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true });
  try {
    const context = await browser.newContext({
      clientCertificates: [{ origin: url.origin, certPath: process.env.CLIENT_CERT, keyPath: process.env.CLIENT_KEY }],
      viewport: { width: 1280, height: 900 },
    });
    const page = await context.newPage();
    const console_errors = [];
    page.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') console_errors.push(m.text()); });
    page.on('pageerror', (e) => console_errors.push(String(e)));
    const requests = [];
    page.on('request', (r) => requests.push(r.url()));

    const response = await page.goto(url.href);
    const headers = await response.allHeaders();
    const all = await facts(page);
    await page.screenshot({ path: process.env.SCREENSHOT, fullPage: true });

    // The filter, as a user without JavaScript would use it: choose, submit the form.
    await page.selectOption('#id', process.env.FILTER_ID);
    await Promise.all([page.waitForURL(/[?&]id=/), page.click('#filter button[type=submit]')]);
    const filtered = await facts(page);
    const filteredUrl = page.url();

    console.log(JSON.stringify({
      status: response.status(), csp: headers['content-security-policy'] || null,
      all, filtered, filteredUrl, consoleErrors: console_errors, requests,
    }));
  } finally {
    await browser.close();
  }
})().catch((e) => { console.error(e && e.stack || String(e)); process.exit(1); });
