// The console in a real browser: Debian's Chromium, driven by playwright-core, against a real
// `kefu up` (SQLite, every port chosen by the system) started by this file. Each page it visits is
// saved as a screenshot under KEFU_SCREENSHOTS (default target/console-screenshots).
//
// Run: tests/console/run.sh (installs what it needs), or with a built kefu:
//   KEFU_BIN=target/release/kefu node --test tests/console/console.test.mjs

import { after, afterEach, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { createHash, generateKeyPairSync, randomBytes, sign } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const kefuBin = process.env.KEFU_BIN || path.join(root, 'target/debug/kefu');
const screenshots = process.env.KEFU_SCREENSHOTS || path.join(root, 'target/console-screenshots');
const bootstrap = `console-test-bootstrap-${Math.random().toString(36).slice(2)}-0123456789abcdef`;

let suite, dataDir, browser, consoleUrl, gatewayUrl;
const tokens = {};

// ---------------------------------------------------------------------------------------------
// The suite and its callers.

// The company's identity provider, as small as the console's single sign-on needs: it approves
// whoever comes (as staff member Z7001, a supervisor of the service center), checks the PKCE
// verifier, and signs an access token with a key whose public half the gateway trusts.
const idp = { keys: generateKeyPairSync('rsa', { modulusLength: 2048 }), codes: new Map(), tokensIssued: 0 };
const b64url = (buffer) => Buffer.from(buffer).toString('base64url');

function jwt(claims) {
  const header = b64url(JSON.stringify({ alg: 'RS256', typ: 'JWT', kid: 'console-test' }));
  const payload = b64url(JSON.stringify(claims));
  return `${header}.${payload}.${b64url(sign('RSA-SHA256', Buffer.from(`${header}.${payload}`), idp.keys.privateKey))}`;
}

async function startIdentityProvider() {
  idp.server = http.createServer(async (request, response) => {
    const url = new URL(request.url, idp.issuer);
    if (url.pathname === '/authorize') {
      const code = randomBytes(12).toString('hex');
      assert.equal(url.searchParams.get('code_challenge_method'), 'S256');
      idp.codes.set(code, { challenge: url.searchParams.get('code_challenge'), redirect: url.searchParams.get('redirect_uri') });
      const back = new URL(url.searchParams.get('redirect_uri'));
      back.searchParams.set('code', code);
      back.searchParams.set('state', url.searchParams.get('state'));
      response.writeHead(302, { Location: back.toString() }).end();
      return;
    }
    if (url.pathname === '/token' && request.method === 'POST') {
      let body = '';
      for await (const chunk of request) body += chunk;
      const form = new URLSearchParams(body);
      const asked = idp.codes.get(form.get('code'));
      idp.codes.delete(form.get('code'));
      const verified = asked && asked.redirect === form.get('redirect_uri')
        && createHash('sha256').update(form.get('code_verifier') || '').digest('base64url') === asked.challenge;
      const headers = { 'Content-Type': 'application/json', 'Access-Control-Allow-Origin': '*' };
      if (!verified) { response.writeHead(400, headers).end(JSON.stringify({ error: 'invalid_grant' })); return; }
      idp.tokensIssued += 1;
      const now = Math.floor(Date.now() / 1000);
      const access = jwt({ iss: idp.issuer, aud: 'kefu', sub: 'Z7001', department: 'intake', roles: ['supervisor'], iat: now, exp: now + 600 });
      response.writeHead(200, headers).end(JSON.stringify({ access_token: access, token_type: 'Bearer', expires_in: 600 }));
      return;
    }
    response.writeHead(404).end();
  });
  await new Promise((resolve) => idp.server.listen(0, '127.0.0.1', resolve));
  idp.issuer = `http://127.0.0.1:${idp.server.address().port}`;
}

async function startSuite() {
  dataDir = mkdtempSync(path.join(tmpdir(), 'kefu-console-'));
  const jwks = path.join(dataDir, 'jwks.json');
  writeFileSync(jwks, JSON.stringify({ keys: [{ ...idp.keys.publicKey.export({ format: 'jwk' }), kid: 'console-test', alg: 'RS256', use: 'sig' }] }));
  const env = {
    ...process.env, KEFU_DATA_DIR: dataDir, KEFU_BOOTSTRAP_TOKEN: bootstrap, KEFU_LOG: 'warn',
    KEFU_GATEWAY_ADDR: '127.0.0.1:0', KEFU_CONSOLE_ADDR: '127.0.0.1:0', KEFU_RATE_LIMIT: '10000',
    KEFU_OIDC_ISSUER: idp.issuer, KEFU_OIDC_AUDIENCE: 'kefu', KEFU_OIDC_JWKS_FILE: jwks,
    KEFU_CONSOLE_OIDC_AUTHORIZE_URL: `${idp.issuer}/authorize`, KEFU_CONSOLE_OIDC_TOKEN_URL: `${idp.issuer}/token`,
    KEFU_CONSOLE_OIDC_CLIENT_ID: 'kefu-console',
  };
  for (const service of ['INTAKE', 'INSPECTION', 'CLAIMS', 'SETTLEMENT', 'ARCHIVES']) env[`KEFU_${service}_ADDR`] = '127.0.0.1:0';
  delete env.KEFU_DATABASE_URL;
  suite = spawn(kefuBin, ['up'], { env, stdio: ['ignore', 'pipe', 'inherit'] });
  let banner = '';
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`kefu up did not start: ${banner}`)), 60000);
    suite.stdout.on('data', (chunk) => {
      banner += chunk;
      if (banner.includes('Stop with Ctrl-C')) { clearTimeout(timer); resolve(); }
    });
    suite.on('exit', (code) => { clearTimeout(timer); reject(new Error(`kefu up exited ${code}: ${banner}`)); });
  });
  consoleUrl = banner.match(/console\s+(http:\/\/\S+\/)/)[1];
  gatewayUrl = `http://${banner.match(/gateway\s+(\S+)/)[1]}`;
}

function kefu(args, token) {
  return execFileSync(kefuBin, args, { env: { ...process.env, KEFU_GATEWAY_URL: gatewayUrl, KEFU_TOKEN: token }, encoding: 'utf8' });
}

function createToken(subject, { department = '', branch = '', roles }) {
  const args = ['token', 'create', '--subject', subject];
  if (department) args.push('--department', department);
  if (branch) args.push('--branch', branch);
  for (const role of roles) args.push('--role', role);
  return kefu(args, bootstrap).trim();
}

// A call through the console's own API, as the page makes it.
async function apiCall(token, method, body) {
  const response = await fetch(`${consoleUrl}api/call/${method}`, {
    method: 'POST', headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' }, body: JSON.stringify(body),
  });
  const value = await response.json();
  if (!response.ok) throw Object.assign(new Error(`${method}: ${value.message}`), { status: response.status, body: value });
  return value;
}

async function eventually(what, probe, limit = 30000) {
  const end = Date.now() + limit;
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value) return value;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

async function fileComplaint(token, complaint) {
  return apiCall(token, 'kefu.gateway.v1.Complaints/CreateComplaint', { request_id: crypto.randomUUID(), complaint });
}

async function acceptedBy(token, name) {
  return eventually(`${name} accepted`, async () => {
    const complaint = await apiCall(token, 'kefu.gateway.v1.Complaints/GetComplaint', { name });
    return complaint.owner_reference || undefined;
  });
}

// ---------------------------------------------------------------------------------------------
// The browser.

const open = [];

async function pageFor(token) {
  const context = await browser.newContext({ viewport: { width: 1366, height: 768 }, locale: 'zh-CN' });
  const page = await context.newPage();
  open.push(page);
  page.on('pageerror', (error) => { throw error; });
  await page.goto(consoleUrl);
  await page.fill('input[name=token]', token);
  await page.click('form[data-page=sign-in] button[type=submit]');
  await page.waitForSelector('header [data-caller]');
  return page;
}

async function screenshot(page, name) {
  await page.screenshot({ path: path.join(screenshots, `${name}.png`), fullPage: false });
}

before(async () => {
  mkdirSync(screenshots, { recursive: true });
  await startIdentityProvider();
  await startSuite();
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
  tokens.agent = createToken('A1024', { department: 'intake', roles: ['agent'] });
  tokens.settlement = createToken('J2001', { department: 'settlement', roles: ['agent'] });
  tokens.settlementSupervisor = createToken('S3001', { department: 'settlement', roles: ['agent', 'supervisor'] });
  tokens.claimsAgent = createToken('L3001', { department: 'claims', roles: ['agent'] });
  tokens.offerer = createToken('S2002', { department: 'claims', roles: ['agent', 'supervisor'] });
  tokens.approver = createToken('S2003', { department: 'claims', roles: ['agent', 'supervisor'] });
  tokens.branch = createToken('branch-SH01', { branch: 'SH01', roles: ['branch_system'] });
  tokens.head = createToken('H1', { department: 'intake', roles: ['department_head'] });
  tokens.inspector = createToken('Q100', { department: 'inspection', roles: ['agent'] });
  tokens.inspectionHead = createToken('H2', { department: 'inspection', roles: ['department_head'] });
});

// A failed test leaves a screenshot of every page it had open, to see why.
afterEach(async (context) => {
  for (const [index, page] of open.splice(0).entries()) {
    if (!page.isClosed()) {
      const name = context.name.replace(/\W+/g, '-').slice(0, 40);
      await page.screenshot({ path: path.join(screenshots, `failed-${name}-${index}.png`) }).catch(() => {});
    }
  }
});

after(async () => {
  await browser?.close();
  suite?.kill('SIGINT');
  idp.server?.close();
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------------------------

test('an agent takes a call, sees it in the inbox with its badge, the owner accepts it and settlement resolves it', async () => {
  // Two earlier cases, so the inbox has rows to sort and count.
  await fileComplaint(tokens.agent, { category: 'late_delivery', waybill_number: 'WB-EARLY-1', branch: 'SH01', description: '货物晚到三天', contact: { name: '周先生', phone: '13900000009' } });
  await fileComplaint(tokens.agent, { category: 'attitude', waybill_number: 'WB-EARLY-2', branch: 'BJ02', description: '送货员态度差', contact: { name: '吴女士', phone: '13900000008' } });

  const page = await pageFor(tokens.agent);
  assert.match(await page.textContent('header .who'), /A1024 · 客服中心 · agent/);
  assert.equal(await page.locator('[data-nav=claims]').count(), 1, 'intake staff may list claims');

  await page.click('[data-nav=new]');
  await page.selectOption('[name=category]', 'late_remittance');
  await page.fill('[name=branch]', 'SH01');
  await page.fill('[name="contact.name"]', '李女士');
  await page.fill('[name="contact.phone"]', '13900000001');
  await page.fill('[name=description]', '代收货款一周未到帐');
  // No waybill: the server's field violation is shown at the field.
  await page.click('[data-action=file]');
  const error = page.locator('.field[data-name=waybill_number] .error');
  await error.waitFor();
  await eventually('the waybill error', async () => (await error.textContent()).includes('运单号'));
  assert.equal(await page.getAttribute('[name=waybill_number]', 'aria-invalid'), 'true');

  await page.fill('[name=waybill_number]', 'WB-CONSOLE-1');
  // A double click files one case: the same request id, the button disabled while it runs.
  await page.dblclick('[data-action=file]');
  const filed = page.locator('[data-case-number]');
  await filed.waitFor();
  const number = await filed.getAttribute('data-case-number');
  assert.match(number, /^\d{8}-[0-9A-Z]+$/);
  assert.match(await page.textContent('[data-acknowledgement]'), /A1024号为您服务/);
  await screenshot(page, 'take-a-call');

  await page.click('[data-nav=inbox]');
  const row = page.locator(`tr[data-case="${number}"]`);
  await row.waitFor();
  assert.ok(['on_time', 'due_today'].includes(await row.locator('[data-sla]').getAttribute('data-sla')), 'a badge from the server');
  assert.ok(Number(await page.textContent('[data-count=open]')) >= 3);
  await screenshot(page, 'inbox');
  // The departments' pages this agent may look at: inspection's cases, the archives' files.
  await page.click('[data-nav=inspection]');
  await page.locator('[data-page=inspection] table[data-table=records] tr[data-record]').first().waitFor();
  await screenshot(page, 'inspection');
  await page.click('[data-nav=archives]');
  await page.waitForSelector('[data-page=archives]');
  await screenshot(page, 'archives');
  await page.click('[data-nav=inbox]');
  await row.waitFor();

  // Searching the waybill finds one case: the double click filed once.
  await page.fill('[data-search]', 'WB-CONSOLE-1');
  await page.press('[data-search]', 'Enter');
  await eventually('one row', async () => (await page.locator('table[data-inbox] tbody tr').count()) === 1 && page.locator(`tr[data-case="${number}"]`).count());
  // The phone finds the same customer's case too.
  await page.fill('[data-search]', '13900000001');
  await page.press('[data-search]', 'Enter');
  await page.locator(`tr[data-case="${number}"]`).waitFor();

  // The same customer calls again about another waybill: the case page will show it beside.
  const again = await fileComplaint(tokens.agent, { category: 'late_delivery', waybill_number: 'WB-CONSOLE-2', branch: 'SH01',
    description: '另一票货也晚到', contact: { name: '李女士', phone: '13900000001' } });

  // Open it from the keyboard, and watch the owner accept it.
  await page.locator('h1').click();
  await page.keyboard.press('Enter');
  await page.waitForSelector('[data-page=case]');
  await page.waitForSelector('[data-page=case][data-state=ACCEPTED]', { timeout: 30000 });
  const reference = await page.getAttribute('[data-owner-reference]', 'data-owner-reference');
  assert.ok(reference.length > 0, 'the owner record is shown');
  assert.equal(await page.getAttribute('[data-owner]', 'data-owner'), 'settlement');
  assert.match(await page.textContent('[data-deadline]'), /late_remittance/);
  assert.match(await page.textContent('[data-timeline]'), /accepted/);
  const related = page.locator(`[data-related] li:has(a[href="#/case/${again.name.replace('complaints/', '')}"])`);
  assert.match(await related.textContent(), /同一电话/);
  await screenshot(page, 'case');

  // Waiting on the customer pauses the deadline: the server's badge says so, and again when resumed.
  await page.click('[data-method=WaitForCustomer]');
  await page.fill('.action-form [name=reason]', '等客户提供收款凭证');
  await page.click('.action-form button[type=submit]');
  await page.waitForSelector('h1 [data-sla=paused]');
  await page.click('[data-method=ResumeComplaint]');
  await page.fill('.action-form [name=note]', '凭证已收到');
  await page.click('.action-form button[type=submit]');
  await page.waitForSelector('h1 [data-sla]:not([data-sla=paused])');

  // Settlement resolves it on its own page; the customer's case says so.
  const clerk = await pageFor(tokens.settlement);
  await clerk.click('[data-nav=settlement]');
  await clerk.click(`tr[data-record="${reference}"]`);
  await clerk.waitForSelector('[data-page=settlement-record]');
  await clerk.click('[data-method=ResolveCase]');
  await clerk.fill('.action-form [name=resolution]', '款项已于今日补转，并向客户致歉');
  await clerk.click('.action-form button[type=submit]');
  await clerk.waitForSelector('.action-form', { state: 'detached' });
  await screenshot(clerk, 'settlement-case');

  await eventually('the complaint resolved', async () => {
    await page.reload();
    await page.waitForSelector('[data-page=case]');
    return (await page.getAttribute('[data-page=case]', 'data-state')) !== 'ACCEPTED';
  });
  assert.match(await page.getAttribute('[data-page=case]', 'data-state'), /RESOLVED|NOTIFIED/);
  assert.match(await page.textContent('[data-page=case]'), /款项已于今日补转/);
  await page.context().close();
  await clerk.context().close();
});

test('a supervisor approves a claim above the standard; an agent is neither offered nor allowed it', async () => {
  const complaint = await fileComplaint(tokens.agent, { category: 'cargo_damage', waybill_number: 'WB-CLAIM-1', branch: 'SH01',
    description: '茶叶四箱破损一箱', contact: { name: '王先生', phone: '13900000002' } });
  const claim = await acceptedBy(tokens.agent, complaint.name);
  await apiCall(tokens.claimsAgent, 'kefu.claims.v1.Claims/RecordClaimFacts', { name: claim, request_id: crypto.randomUUID(), facts: {
    claimant: '王先生', goods: '茶叶 4 箱', compensation: { declared_value_fen: '100000', insured: false, packaging: 'INTACT', shipping_list: true,
      loss_market_value_fen: '80000', piece_freight_fen: '2000', pieces: 4, pieces_affected: 1, accident: 'TRANSIT_DAMAGE' } } });
  await apiCall(tokens.claimsAgent, 'kefu.claims.v1.Claims/RecordInvestigation', { name: claim, request_id: crypto.randomUUID(),
    investigation: { findings: 'carton dropped at the SH01 dock', responsible_party: { kind: 'branch', id: 'SH01' }, share_percent: 100 } });
  await apiCall(tokens.offerer, 'kefu.claims.v1.Claims/MakeOffer', { name: claim, amount_fen: '60000', request_id: crypto.randomUUID() });
  const waiting = await apiCall(tokens.claimsAgent, 'kefu.claims.v1.Claims/RecordCustomerResponse', { name: claim, accept: true, note: 'by phone', request_id: crypto.randomUUID() });
  assert.equal(waiting.state, 'AWAITING_APPROVAL');

  const agent = await pageFor(tokens.claimsAgent);
  await agent.click('[data-nav=claims]');
  await agent.locator(`table[data-table=queue] tr[data-record="${claim}"]`).waitFor();
  // The live quote: the standards' amount and why, as the facts are typed.
  await agent.fill('[name=declared_value_fen]', '1000');
  await agent.selectOption('[name=packaging]', 'INTACT');
  await agent.check('[name=shipping_list]');
  await agent.fill('[name=loss_market_value_fen]', '800');
  await eventually('the quote', async () => (await agent.getAttribute('[data-amount]', 'data-amount', { timeout: 500 })) === '56000');
  assert.match(await agent.textContent('[data-quote]'), /560\.00/);
  await screenshot(agent, 'claims');
  await agent.click(`table[data-table=queue] tr[data-record="${claim}"] td:first-child a`);
  await agent.waitForSelector('[data-page=claims-record][data-state=AWAITING_APPROVAL]');
  assert.equal(await agent.locator('[data-method=ApproveClaim]').count(), 0, 'an agent is not offered the approval');
  assert.equal(await agent.locator('[data-method=MakeOffer]').count(), 1, 'but is offered what agents do');
  const refused = await apiCall(tokens.claimsAgent, 'kefu.claims.v1.Claims/ApproveClaim', { name: claim, reason: 'ok', request_id: crypto.randomUUID() })
    .catch((error) => error);
  assert.equal(refused.status, 403, 'nor allowed it');
  assert.equal(refused.body.code, 'PERMISSION_DENIED');

  const supervisor = await pageFor(tokens.approver);
  await supervisor.goto(`${consoleUrl}#/claims/${claim}`);
  await supervisor.waitForSelector('[data-page=claims-record][data-state=AWAITING_APPROVAL]');
  await supervisor.click('[data-method=ApproveClaim]');
  await supervisor.fill('.action-form [name=reason]', '损失属实，超出标准部分经主管同意');
  await screenshot(supervisor, 'claim-approval');
  await supervisor.click('.action-form button[type=submit]');
  await supervisor.waitForSelector('[data-page=claims-record][data-state=APPROVED]');
  await agent.context().close();
  await supervisor.context().close();
});

test("a branch system's token sees only its branch's cases", async () => {
  const other = await fileComplaint(tokens.agent, { category: 'late_delivery', waybill_number: 'WB-BJ-9', branch: 'BJ02',
    description: '北京分公司的案件', contact: { name: '赵先生', phone: '13900000003' } });
  const page = await pageFor(tokens.branch);
  assert.match(await page.textContent('header .who'), /branch-SH01 · 全公司 · SH01 · branch_system/);
  assert.equal(await page.locator('[data-nav=new]').count(), 1, 'a branch system files its own complaints');
  assert.equal(await page.locator('[data-nav=claims]').count(), 0);
  await page.click('[data-view=all]');
  await page.locator('table[data-inbox] tbody tr').first().waitFor();
  const branches = await page.locator('table[data-inbox] tbody tr td:nth-child(4)').allTextContents();
  assert.ok(branches.length >= 2, `${branches}`);
  assert.deepEqual([...new Set(branches)], ['SH01']);
  await page.fill('[data-search]', other.name.replace('complaints/', ''));
  await page.press('[data-search]', 'Enter');
  await page.locator('p.muted.panel').waitFor();
  assert.equal(await page.locator('table[data-inbox] tbody tr').count(), 0, "another branch's case is not found");
  await screenshot(page, 'branch-inbox');
  await page.context().close();
});

test('reports as charts with their CSV, shortcuts, and English', async () => {
  const page = await pageFor(tokens.head);
  await page.click('[data-nav=reports]');
  await page.waitForSelector('[data-report-body] svg[data-chart]');
  assert.ok((await page.locator('[data-report-body] svg[data-chart] rect').count()) >= 2, 'a bar for each category');
  assert.match(await page.getAttribute('[data-csv]', 'href'), /^blob:/);
  await page.waitForSelector('[data-trend] svg');
  await screenshot(page, 'reports');

  await page.click('[data-nav=inbox]');
  await page.waitForSelector('table[data-inbox]');
  await page.locator('h1').click();
  await page.keyboard.press('j');
  assert.equal(await page.locator('table[data-inbox] tbody tr').nth(1).getAttribute('class'), 'selected');
  await page.keyboard.press('k');
  assert.equal(await page.locator('table[data-inbox] tbody tr').nth(0).getAttribute('class'), 'selected');
  await page.keyboard.press('?');
  await page.waitForSelector('[data-help]');
  await page.keyboard.press('Escape');
  await page.keyboard.press('/');
  assert.equal(await page.evaluate(() => document.activeElement?.dataset.search !== undefined), true, '/ goes to the search');

  await page.click('[data-action=language]');
  await page.waitForSelector('[data-nav=inbox]:text("Inbox")');
  assert.match(await page.textContent('[data-view=overdue]'), /Overdue/);
  await screenshot(page, 'inbox-english');
  await page.context().close();
});

test('access requests to a closed file are signed in bulk by each signer in turn', async () => {
  // A complaint filed, resolved by settlement and closed: archives files it.
  const complaint = await fileComplaint(tokens.agent, { category: 'late_remittance', waybill_number: 'WB-ARCH-1', branch: 'SH01',
    description: '代收货款未到帐', contact: { name: '钱女士', phone: '13900000004' } });
  const reference = await acceptedBy(tokens.agent, complaint.name);
  await apiCall(tokens.settlement, 'kefu.settlement.v1.Settlement/ResolveCase', { name: reference, resolution: '已补转', request_id: crypto.randomUUID() });
  await eventually('resolved', async () => ['RESOLVED', 'NOTIFIED'].includes((await apiCall(tokens.agent, 'kefu.intake.v1.Intake/GetComplaint', { name: complaint.name })).state));
  await apiCall(tokens.agent, 'kefu.intake.v1.Intake/CloseComplaint', { name: complaint.name, request_id: crypto.randomUUID(), note: '客户满意' });
  const file = `caseFiles/${complaint.name.replace('complaints/', '')}`;
  await eventually('filed', () => apiCall(tokens.inspector, 'kefu.archives.v1.Archives/GetCaseFile', { name: file }));
  // Inspection asks twice to read it.
  const asked = [];
  for (const purpose of ['复核罚款', '整改检查']) {
    asked.push((await apiCall(tokens.inspector, 'kefu.archives.v1.Archives/CreateAccessRequest', { request_id: crypto.randomUUID(),
      access_request: { file, kind: 'READ', purpose, reason: '分公司对罚款有异议' } })).name);
  }

  // Each signer's queue holds both; approving the selection signs both at once.
  for (const [token, who] of [[tokens.inspectionHead, 'inspection-head'], [tokens.head, 'intake-head']]) {
    const page = await pageFor(token);
    await page.click('[data-nav=archives]');
    for (const name of asked) await page.locator(`[data-access-queue] tr[data-access-request="${name}"]`).waitFor();
    await screenshot(page, `archives-queue-${who}`);
    await page.click('[data-action=approve-access]');
    await eventually('the queue emptied', async () => (await page.locator('[data-access-queue] tr[data-access-request]').count()) === 0);
    await page.context().close();
  }
  for (const name of asked) {
    const request = await apiCall(tokens.inspector, 'kefu.archives.v1.Archives/GetAccessRequest', { name });
    assert.equal(request.state, 'APPROVED', name);
  }
});

test('inspection takes a complaint about staff from the written report to the fine, and the customer is told', async () => {
  const complaint = await fileComplaint(tokens.agent, { category: 'attitude', waybill_number: 'WB-INSP-1', branch: 'SH01',
    description: '送货员语气生硬', contact: { name: '孙先生', phone: '13900000006' } });
  const reference = await acceptedBy(tokens.agent, complaint.name);
  const page = await pageFor(tokens.inspector);
  await page.click('[data-nav=inspection]');
  await page.click(`table[data-table=records] tr[data-record="${reference}"] td:first-child a`);
  await page.waitForSelector('[data-page=inspection-record]');
  // Each step is a form built from the method's request: inner fields as inputs, lists as lines or JSON.
  const step = async (method, fill) => {
    await page.click(`[data-method=${method}]`);
    await page.waitForSelector(`.action-form[data-method$="/${method}"]`);
    for (const [name, value] of Object.entries(fill)) await page.fill(`.action-form [name="${name}"]`, value);
    await page.click('.action-form button[type=submit]');
    await page.waitForSelector('.action-form', { state: 'detached' });
  };
  await step('RecordWrittenReport', { 'author.kind': 'person', 'author.id': 'B042', content: '客户催问时我语气生硬，没有耐心解释' });
  await step('RecordFindings', { facts: '通话录音证实投诉属实', evidence: '录音 2026-11-21 14:02' });
  await step('DivideResponsibility', { shares: JSON.stringify([{ party: { kind: 'person', id: 'B042' }, share_percent: 100 }]) });
  await step('DecidePenalties', { penalties: JSON.stringify([{ party: { kind: 'person', id: 'B042' }, kind: 'FINE',
    violation: 'attitude_or_inefficiency', amount_fen: '8000' }]) });
  await page.waitForSelector('[data-page=inspection-record][data-state=DECIDED]');
  await screenshot(page, 'inspection-case');
  // A refused step is shown at its field: resolving without a resolution.
  await page.click('[data-method=ResolveCase]');
  await page.click('.action-form button[type=submit]');
  await page.locator('.action-form .field[data-name=resolution] .error').filter({ hasText: /./ }).waitFor();
  await page.fill('.action-form [name=resolution]', '对责任人罚款80元并进行服务培训');
  await page.click('.action-form button[type=submit]');
  await page.waitForSelector('[data-page=inspection-record][data-state=RESOLVED]');
  await eventually('the complaint resolved', async () =>
    ['RESOLVED', 'NOTIFIED'].includes((await apiCall(tokens.agent, 'kefu.intake.v1.Intake/GetComplaint', { name: complaint.name })).state));
  await page.context().close();
});

test("a settlement supervisor decides the waybill change requests waiting in the queue", async () => {
  for (const number of ['WB-CHG-1', 'WB-CHG-2']) {
    await apiCall(tokens.settlement, 'kefu.settlement.v1.Settlement/RecordWaybill', { request_id: crypto.randomUUID(), waybill: {
      name: `waybills/${number}`, shipper: 'S1001', branch: 'SH01', freight_fen: '2000', payment_method: 'collect',
      cod_amount_fen: '50000', consignee: '李四', consignee_phone: '13900000005' } });
    await apiCall(tokens.settlement, 'kefu.settlement.v1.Settlement/RequestChange', { name: `waybills/${number}`, request_id: crypto.randomUUID(),
      changes: [{ field: 'payment_method', after: 'monthly' }], reason: '发货人电话要求改为月结' });
  }
  // A clerk sees the queue but is not offered the decision.
  const clerk = await pageFor(tokens.settlement);
  await clerk.click('[data-nav=settlement]');
  await clerk.locator('[data-change-queue] tr[data-change-request="waybills/WB-CHG-1/changeRequests/1"]').waitFor();
  assert.equal(await clerk.locator('[data-action=approve-changes]').count(), 0);
  await clerk.context().close();

  const supervisor = await pageFor(tokens.settlementSupervisor);
  await supervisor.click('[data-nav=settlement]');
  for (const number of ['WB-CHG-1', 'WB-CHG-2']) {
    await supervisor.check(`[data-change-queue] input[data-change="waybills/${number}/changeRequests/1"]`);
  }
  await supervisor.fill('[data-change-queue] input[name=reason]', '已与发货人核实');
  await screenshot(supervisor, 'settlement-changes');
  await supervisor.click('[data-action=approve-changes]');
  await eventually('the queue emptied', async () => (await supervisor.locator('[data-change-queue] tr[data-change-request]').count()) === 0);
  for (const number of ['WB-CHG-1', 'WB-CHG-2']) {
    const waybill = await apiCall(tokens.settlement, 'kefu.settlement.v1.Settlement/GetWaybill', { name: `waybills/${number}` });
    assert.equal(waybill.payment_method, 'monthly', number);
  }
  await supervisor.context().close();
});

test("staff sign in through the company's single sign-on", async () => {
  const context = await browser.newContext({ viewport: { width: 1366, height: 768 }, locale: 'zh-CN' });
  const page = await context.newPage();
  open.push(page);
  await page.goto(`${consoleUrl}#/reports`);
  await page.click('[data-action=sign-on]');
  // To the identity provider and back with a code, which the page trades for a token.
  await page.waitForSelector('header [data-caller=Z7001]');
  assert.match(await page.textContent('header .who'), /Z7001 · 客服中心 · supervisor/);
  assert.equal(idp.tokensIssued, 1);
  assert.equal(new URL(page.url()).search, '', 'the code is not left in the address');
  await page.waitForSelector('[data-page=reports]');
  await context.close();
  // An answer this tab did not ask for (a forged or replayed redirect) signs no one in.
  const other = await browser.newContext();
  const forged = await other.newPage();
  await forged.goto(`${consoleUrl}?code=stolen&state=forged`);
  await forged.waitForSelector('form[data-page=sign-in] .form-errors:text("单点登录未完成")');
  assert.equal(await forged.locator('header [data-caller]').count(), 0);
  assert.equal(idp.tokensIssued, 1, 'no code was traded');
  await other.close();
});

test('the console refuses what it should', async () => {
  const noToken = await fetch(`${consoleUrl}api/inbox`, { method: 'POST', body: '{}' });
  assert.equal(noToken.status, 401);
  const forged = await fetch(`${consoleUrl}api/inbox`, { method: 'POST', headers: { Authorization: 'Bearer kefu_nope_0000' }, body: '{}' });
  assert.equal(forged.status, 401);
  const elsewhere = await fetch(`${consoleUrl}api/call/kefu.gateway.v1.Complaints/ListComplaints`, {
    method: 'POST', headers: { Authorization: `Bearer ${tokens.agent}`, Origin: 'http://evil.example' }, body: '{}' });
  assert.equal(elsewhere.status, 403);
  const internal = await fetch(`${consoleUrl}api/call/kefu.events.v1.EventInbox/Deliver`, {
    method: 'POST', headers: { Authorization: `Bearer ${tokens.agent}` }, body: '{}' });
  assert.equal(internal.status, 404, 'kefu\'s internal methods are not the public API');
  const page = await fetch(consoleUrl);
  assert.match(page.headers.get('content-security-policy'), /script-src 'self'/);
  assert.equal(page.headers.get('x-frame-options'), 'DENY');
});
