// End-to-end tests of Volley's dashboard in headless Chromium, driven by Playwright. They run against
// a real `volley serve` and mockllm started by internal/tools/e2e (TestDashboard), which passes:
//   VOLLEY_ORIGIN   the server's origin, e.g. http://127.0.0.1:43123
//   VOLLEY_KEY      an API key
//   SCREENSHOT_DIR  where to write a screenshot of each page (optional; `make screenshots` sets it)
//   CHROMIUM        the browser (default /usr/bin/chromium, Debian's package); none is downloaded.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { chromium } from 'playwright-core';

const origin = process.env.VOLLEY_ORIGIN;
const key = process.env.VOLLEY_KEY;
const shots = process.env.SCREENSHOT_DIR || '';
const TIMEOUT = 60_000;
assert.ok(origin && key, 'VOLLEY_ORIGIN and VOLLEY_KEY are set');

let browser;
let context;
let page;
const foreign = [];
const problems = [];

before(async () => {
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  });
  context = await browser.newContext({ viewport: { width: 1366, height: 860 }, acceptDownloads: true });
  context.setDefaultTimeout(TIMEOUT);
  page = await context.newPage();
  page.on('request', (r) => {
    const u = r.url();
    if (!u.startsWith(origin + '/') && !u.startsWith('blob:') && !u.startsWith('data:')) foreign.push(u);
  });
  page.on('console', (m) => {
    // A refused API call (a 4xx the page expects) is logged by Chromium as a failed resource load.
    if (m.type() === 'error' && !/Failed to load resource/.test(m.text())) problems.push(m.text());
  });
  page.on('pageerror', (e) => problems.push(String(e)));
});

after(async () => {
  await browser?.close();
});

async function shot(name) {
  if (!shots) return;
  mkdirSync(shots, { recursive: true });
  await page.screenshot({ path: path.join(shots, `${name}.png`), fullPage: false });
}

async function apiJSON(method, p, body) {
  const res = await fetch(origin + '/v1' + p, {
    method,
    headers: { Authorization: `Bearer ${key}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, body: await res.json() };
}

function line(customID, extra = '') {
  return JSON.stringify({ custom_id: customID, method: 'POST', url: '/v1/chat/completions',
    body: { model: 'm', messages: [{ role: 'user', content: `hello ${customID}` }], ...extra } });
}

const TOTAL = 60;
const FAILING = ['req-7', 'req-13', 'req-21', 'req-34'];
const goodFile = Array.from({ length: TOTAL }, (_, i) => {
  const id = `req-${i + 1}`;
  // mockllm answers the first call of such a body 400 (final, not retried) and later calls 200.
  return line(id, FAILING.includes(id) ? { mock: { status: 400, times: 1 } } : {});
}).join('\n') + '\n';
const badFile = [line('a'), line('b'), '{"custom_id": "c", "method": "POST"}', line('d')].join('\n') + '\n';

async function progressOf(locator) {
  return Number(await locator.getAttribute('aria-valuenow'));
}

async function waitProgress(locator, pct) {
  await locator.waitFor();
  const deadline = Date.now() + TIMEOUT;
  for (;;) {
    if ((await progressOf(locator)) >= pct) return;
    assert.ok(Date.now() < deadline, `progress reached ${pct}%`);
    await page.waitForTimeout(200);
  }
}

let batchID;
let slowID;

test('the pages carry a strict Content-Security-Policy', async () => {
  const res = await fetch(origin + '/');
  const csp = res.headers.get('content-security-policy');
  assert.match(csp, /default-src 'none'/);
  assert.match(csp, /script-src 'self'/);
  assert.doesNotMatch(csp, /unsafe|\*/);
  assert.match(await res.text(), /<title>Volley<\/title>/);
  const api = await fetch(origin + '/v1/batches');
  assert.equal(api.status, 401, '/v1 answers as before');
  assert.equal(api.headers.get('content-security-policy'), null);
});

test('sign in with the keyboard; a wrong key is refused', async () => {
  await page.goto(origin + '/');
  const input = page.getByLabel('API key');
  await input.waitFor();
  await shot('signin');
  await input.fill('sk-volley-wrong');
  await input.press('Enter');
  await page.getByText('This key was refused.').waitFor();
  assert.equal(await page.evaluate(() => sessionStorage.getItem('volley.key')), null);
  await input.fill(key);
  await input.press('Enter');
  await page.getByRole('heading', { name: 'Batches', level: 1 }).waitFor();
  assert.equal(await page.evaluate(() => sessionStorage.getItem('volley.key')), key, 'the key lives in sessionStorage');
  assert.equal(await page.evaluate(() => localStorage.length), 0, 'nothing in localStorage');
});

test('a file with a bad line is refused with its line number', async () => {
  await page.getByRole('link', { name: 'Upload' }).click();
  await page.getByLabel(/JSONL file of requests/).setInputFiles({ name: 'bad.jsonl', mimeType: 'application/jsonl', buffer: Buffer.from(badFile) });
  await page.getByRole('button', { name: 'Upload' }).click();
  const alert = page.getByRole('alert');
  await alert.waitFor();
  assert.equal(await alert.locator('.line-no').textContent(), 'Line 3');
  assert.match(await alert.textContent(), /Line 3/);
  assert.match(await alert.locator('.bad-line').textContent(), /^3: \{"custom_id": "c"/);
  await shot('upload-error');
});

test('a good file is uploaded and a batch is created from it', async () => {
  await page.getByLabel(/JSONL file of requests/).setInputFiles({ name: 'requests.jsonl', mimeType: 'application/jsonl', buffer: Buffer.from(goodFile) });
  await page.getByRole('button', { name: 'Upload' }).click();
  await page.getByText(/Uploaded requests\.jsonl/).waitFor();
  assert.equal(await page.getByLabel('Endpoint').inputValue(), '/v1/chat/completions', 'endpoint taken from the lines');
  await page.getByLabel(/Metadata/).fill('team=dashboard');
  await shot('upload');
  await page.getByRole('button', { name: 'Create batch' }).click();
  await page.waitForURL(/#\/batches\/batch_/);
  batchID = decodeURIComponent(new URL(page.url()).hash.split('/')[2]);
  assert.match(batchID, /^batch_/);
});

test('the batches list shows the progress bar reaching 100%', async () => {
  await page.getByRole('link', { name: 'Batches' }).click();
  const row = page.locator(`tr[data-id="${batchID}"]`);
  await row.waitFor();
  const bar = row.getByRole('progressbar');
  const first = await progressOf(bar);
  assert.ok(first < 100, `the batch is still running when the list first shows it (${first}%)`);
  await shot('batches');
  await waitProgress(bar, 100);
  await row.getByText('completed', { exact: true }).waitFor();
  assert.match(await bar.getAttribute('aria-valuetext'), new RegExp(`${TOTAL - FAILING.length} completed, ${FAILING.length} failed of ${TOTAL}`));
  // Filters are shown exactly when the server offers them.
  const probe = await apiJSON('GET', '/batches?limit=1&status=volley-probe');
  assert.equal(await page.locator('#f-status').count(), probe.status === 400 ? 1 : 0, 'list filters follow the server');
  if (probe.status === 400) {
    // The server filters: a search finds the batch, a status it is not in hides it.
    await page.getByLabel('Search').fill(batchID);
    await page.getByRole('button', { name: 'Apply' }).click();
    await page.locator('tbody tr[data-id]').first().waitFor();
    assert.deepEqual(await page.locator('tbody tr[data-id]').evaluateAll((rs) => rs.map((r) => r.dataset.id)), [batchID]);
    await page.getByLabel('Status').selectOption('cancelled');
    await page.getByRole('button', { name: 'Apply' }).click();
    await page.getByText('No batches match.').waitFor();
    await page.getByLabel('Status').selectOption('completed');
    await page.getByRole('button', { name: 'Apply' }).click();
    await row.waitFor();
    await page.getByLabel('Search').fill('');
    await page.getByLabel('Status').selectOption('');
    await page.getByRole('button', { name: 'Apply' }).click();
  }
});

test('the batch page filters failed requests, shows input and result, downloads the output', async () => {
  await page.getByRole('link', { name: batchID }).click();
  await page.getByRole('heading', { name: batchID, level: 1 }).waitFor();
  await page.getByRole('button', { name: 'Download output' }).waitFor();
  await page.getByLabel('Status', { exact: true }).selectOption('failed');
  await page.getByRole('button', { name: 'Apply' }).click();
  const rows = page.locator('tr[data-custom-id]');
  const deadline = Date.now() + TIMEOUT;
  while ((await rows.count()) !== FAILING.length) {
    assert.ok(Date.now() < deadline, 'the failed requests are listed');
    await page.waitForTimeout(100);
  }
  assert.deepEqual((await rows.evaluateAll((rs) => rs.map((r) => r.dataset.customId))), FAILING);
  await rows.first().getByRole('button', { name: 'Show' }).click();
  const detail = page.locator('tr.detail');
  await detail.waitFor();
  assert.match(await detail.locator('figure').first().textContent(), /hello req-7/, 'the input body');
  assert.match(await detail.locator('figure').nth(1).textContent(), /^Result \(HTTP 400\).*requested by mock directive/s, 'the result beside it');
  // A custom_id search narrows the list.
  await page.getByLabel('custom_id').fill('req-2');
  await page.getByRole('button', { name: 'Apply' }).click();
  await page.locator('tr[data-custom-id="req-7"]').waitFor({ state: 'detached' });
  assert.deepEqual((await rows.evaluateAll((rs) => rs.map((r) => r.dataset.customId))), ['req-21']);
  await page.getByLabel('custom_id').fill('');
  await page.getByRole('button', { name: 'Apply' }).click();
  await page.locator('tr[data-custom-id="req-7"]').waitFor();
  await shot('batch');

  const [dl] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Download output' }).click()]);
  const out = (await readFile(await dl.path(), 'utf8')).trim().split('\n').map((l) => JSON.parse(l));
  assert.equal(out.length, TOTAL - FAILING.length);
  assert.ok(out.every((l) => !FAILING.includes(l.custom_id) && l.response.status_code === 200));
  const [dlErr] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Download errors' }).click()]);
  const errs = (await readFile(await dlErr.path(), 'utf8')).trim().split('\n').map((l) => JSON.parse(l).custom_id);
  assert.deepEqual(errs, FAILING);
});

test('retrying the failures makes a new batch that completes them', async () => {
  await page.getByRole('button', { name: `Retry ${FAILING.length} failed` }).click();
  await page.waitForURL((u) => !u.hash.endsWith(batchID) && /#\/batches\/batch_/.test(u.hash));
  const retryID = decodeURIComponent(new URL(page.url()).hash.split('/')[2]);
  await page.getByRole('heading', { name: retryID, level: 1 }).waitFor();
  const bar = page.getByRole('progressbar', { name: 'Batch progress' });
  await waitProgress(bar, 100);
  await page.locator('.actions .badge', { hasText: 'completed' }).waitFor();
  assert.match(await bar.getAttribute('aria-valuetext'), new RegExp(`${FAILING.length} completed, 0 failed of ${FAILING.length}`));
  await page.getByText(`metadata.volley_retry_of`).waitFor();
  const [dl] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Download output' }).click()]);
  const ids = (await readFile(await dl.path(), 'utf8')).trim().split('\n').map((l) => JSON.parse(l).custom_id);
  assert.deepEqual(ids, FAILING, 'the retry holds exactly the failed lines');
  assert.equal(await page.getByRole('button', { name: /Retry/ }).count(), 0, 'nothing left to retry');
});

test('selected requests of a running batch are cancelled', async () => {
  const slow = Array.from({ length: 6 }, (_, i) => line(`slow-${i + 1}`, { mock: { latency: '20s' } })).join('\n') + '\n';
  const fd = new FormData();
  fd.append('purpose', 'batch');
  fd.append('file', new Blob([slow]), 'slow.jsonl');
  const up = await (await fetch(origin + '/v1/files', { method: 'POST', headers: { Authorization: `Bearer ${key}` }, body: fd })).json();
  const b = await apiJSON('POST', '/batches', { input_file_id: up.id, endpoint: '/v1/chat/completions', completion_window: '1h' });
  assert.equal(b.status, 200, JSON.stringify(b.body));
  await page.goto(`${origin}/#/batches/${b.body.id}`);
  await page.getByRole('heading', { name: b.body.id, level: 1 }).waitFor();
  await page.getByRole('checkbox', { name: 'Select slow-2' }).check();
  await page.getByRole('checkbox', { name: 'Select slow-5' }).check();
  await page.getByRole('button', { name: 'Cancel selected' }).click();
  await page.getByText('Cancelled 2 of 2 requests.').waitFor();
  await page.locator('tr[data-custom-id="slow-2"] .badge', { hasText: 'cancelled' }).waitFor();
  await page.locator('tr[data-custom-id="slow-5"] .badge', { hasText: 'cancelled' }).waitFor();
  slowID = b.body.id;
});

test('the queue page shows every model; replicas only where the server lists them', async () => {
  await page.getByRole('link', { name: 'Queue' }).click();
  await page.getByRole('heading', { name: 'Queue', level: 1 }).waitFor();
  await page.getByRole('columnheader', { name: 'Pending (all)' }).waitFor();
  const row = page.getByRole('row', { name: /^m / });
  await row.waitFor();
  const cells = await row.locator('td').allTextContents();
  assert.equal(Number(cells[1]) > 0, true, `the slow batch's requests are running: ${cells}`);
  await page.getByRole('columnheader', { name: 'Running / limit' }).waitFor();
  await row.getByRole('progressbar', { name: 'm running against its limit' }).waitFor();
  const daemons = await apiJSON('GET', '/daemons');
  if (daemons.status === 200) await page.getByRole('heading', { name: 'Replicas' }).waitFor();
  else {
    assert.equal(daemons.status, 404);
    assert.equal(await page.getByRole('heading', { name: 'Replicas' }).count(), 0, 'no replicas section without the route');
  }
  await shot('queue');
});

test('a running batch is cancelled', async () => {
  await page.goto(`${origin}/#/batches/${slowID}`);
  await page.getByRole('heading', { name: slowID, level: 1 }).waitFor();
  page.once('dialog', (d) => d.accept());
  await page.getByRole('button', { name: 'Cancel batch' }).click();
  await page.locator('.actions .badge', { hasText: /^cancelled$/ }).waitFor();
  assert.equal(await page.getByRole('button', { name: 'Cancel batch' }).count(), 0);
});

test('an admin key sees the replicas', { skip: !process.env.VOLLEY_ADMIN_KEY && 'this server has no admin keys' }, async () => {
  const admin = await browser.newContext({ viewport: { width: 1366, height: 860 } });
  const p = await admin.newPage();
  try {
    await p.goto(origin + '/');
    await p.getByLabel('API key').fill(process.env.VOLLEY_ADMIN_KEY);
    await p.getByLabel('API key').press('Enter');
    await p.getByRole('heading', { name: 'Batches', level: 1 }).waitFor();
    await p.getByRole('link', { name: 'Queue' }).click();
    await p.getByRole('heading', { name: 'Replicas' }).waitFor();
    await p.locator('table').nth(1).locator('tbody .badge', { hasText: 'running' }).first().waitFor();
    if (shots) await p.screenshot({ path: path.join(shots, 'queue-admin.png') });
  } finally {
    await admin.close();
  }
});

test('background responses are listed and opened', async () => {
  const r = await apiJSON('POST', '/responses', { model: 'm', input: 'Say hello', background: true });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  await page.getByRole('link', { name: 'Responses' }).click();
  const link = page.getByRole('link', { name: r.body.id });
  await link.waitFor();
  await shot('responses');
  await link.click();
  await page.getByRole('heading', { name: r.body.id, level: 1 }).waitFor();
  await page.locator('.actions .badge', { hasText: 'completed' }).waitFor();
  assert.notEqual((await page.locator('pre.output').textContent()).trim(), '');
  await shot('response');
});

test('the pages work from the keyboard', async () => {
  await page.getByRole('link', { name: 'Batches' }).click();
  await page.getByRole('heading', { name: 'Batches', level: 1 }).waitFor();
  assert.equal(await page.evaluate(() => document.activeElement.id), 'page-title', 'a new page moves the focus to its title');
  await page.keyboard.press('Tab');
  assert.equal(await page.evaluate(() => document.activeElement.textContent), 'New batch');
  await page.keyboard.press('Enter');
  await page.getByRole('heading', { name: 'New batch', level: 1 }).waitFor();
  await page.keyboard.press('Tab');
  assert.equal(await page.evaluate(() => document.activeElement.id), 'u-file', 'the file chooser is next');
  await page.keyboard.press('Tab');
  assert.equal(await page.evaluate(() => document.activeElement.textContent), 'Upload');
  // Every form control of every page has a label.
  for (const hash of ['#/batches', '#/upload', '#/queue', '#/responses', `#/batches/${batchID}`]) {
    await page.goto(origin + '/' + hash);
    await page.locator('#page-title').waitFor();
    const unlabelled = await page.evaluate(() => [...document.querySelectorAll('input, select, textarea')]
      .filter((el) => !el.labels?.length && !el.getAttribute('aria-label')).map((el) => el.outerHTML));
    assert.deepEqual(unlabelled, [], `${hash}: every control is labelled`);
  }
});

test('signing out forgets the key', async () => {
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByLabel('API key').waitFor();
  assert.equal(await page.evaluate(() => sessionStorage.getItem('volley.key')), null);
});

test('no request left the server and the page raised no error', () => {
  assert.deepEqual(foreign, [], 'every request went to Volley');
  assert.deepEqual(problems, [], 'no script error or policy violation');
});
