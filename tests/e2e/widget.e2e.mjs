// tests/e2e/widget.e2e.mjs — the leaderboard widget in a real browser (issue 7), against the live service.
//
// Debian's Chromium (/usr/bin/chromium, or ET_CHROMIUM), headless, driven by playwright-core (package.json pins
// it; playwright never downloads a browser here). The test:
//   1. starts `eventtrack serve` (tests/lib/service.mjs) and creates an organization, an event and one session
//      for each of three speakers through the API;
//   2. loads /widget/events/<event> from the service in a phone viewport (390x844) and checks the empty state,
//      the response headers of the page, its script and its stylesheet (a Content-Security-Policy without
//      'unsafe-inline', nosniff, the right Content-Types), that nothing is fetched from another origin and that
//      the console reports no error (a CSP violation included);
//   3. logs session views through the API and sees the board within one refresh (5 s + 2 s of margin);
//   4. makes one speaker overtake another and sees the "moved up" / "moved down" / "new" marks, then saves
//      screenshots in the phone (390x844) and projector (1920x1080) viewports;
//   5. sees the next refresh of that unchanged board answered 304 (revalidated with If-None-Match), observed
//      on the network, while the page keeps the board;
//   5b. serves the page an older board (a lower version, as a replica behind or a rebuild in progress would)
//      and sees the page ignore it and keep the newer board, then accept the service's board again;
//   6. stops the service and sees the page keep the last board and say that it is reconnecting.
// Screenshots and the service log go to <ET_CHECK_OUT>/e2e/ (build-test/checks/e2e/ under scripts/test).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { adminKey, bearer, freshId, outDir, request, ROOT, startService } from '../lib/service.mjs';

const REFRESH_MS = 5000;
const MARGIN_MS = 2000;
const CHROMIUM = process.env.ET_CHROMIUM || '/usr/bin/chromium';
const dir = outDir('e2e');
const failures = [];
const t0 = Date.now();
const log = (msg) => console.log(`e2e-widget: [${((Date.now() - t0) / 1000).toFixed(1)}s] ${msg}`);
const check = (ok, msg) => { if (!ok) failures.push(msg); return ok; };

if (!fs.existsSync(CHROMIUM)) {
    console.error(`e2e-widget: ${CHROMIUM} does not exist (Debian's chromium package; deploy/local/packages.sh installs it)`);
    process.exit(1);
}

const svc = await startService('e2e-widget');
const api = async (method, p, body) => {
    const res = await request(svc.base, method, p, { headers: bearer(adminKey()), body });
    if (res.status >= 300) throw new Error(`${method} ${p}: ${res.status} ${res.text}`);
    return res.json;
};
const org = freshId('org');
const ev = freshId('evt');
const speakers = ['ada', 'grace', 'linus'];
const sessionOf = {};
await api('POST', '/v1/organizations', { id: org, name: 'Widget Test Org' });
await api('POST', '/v1/events', { id: ev, organization_id: org, name: 'Widget Conf' });
for (const s of speakers) {
    sessionOf[s] = freshId(`ses_${s}`);
    await api('POST', '/v1/sessions', { id: sessionOf[s], event_id: ev, title: `Talk by ${s}`, speaker_id: s });
}
const views = (counts) => api('POST', '/v1/analytics/events', {
    batch: Object.entries(counts).flatMap(([s, n]) => Array.from({ length: n }, () => ({
        event_id: freshId('view'), event_type: 'session_view', user_id: freshId('u'), payload: { session_id: sessionOf[s] },
    }))),
});

const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'eventtrack-e2e-chromium-'));
let context;
let fatal = null;
try {
    context = await chromium.launchPersistentContext(profile, {
        executablePath: CHROMIUM,
        headless: true,
        args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-quic',
            '--no-first-run', '--disable-component-update', '--disable-sync'],
        viewport: { width: 390, height: 844 },
        deviceScaleFactor: 1,
    });
    const page = context.pages()[0] || await context.newPage();
    const origin = new URL(svc.base).origin;
    const responses = [];            // every response the page received, in order
    const consoleErrors = [];
    page.on('console', (m) => { if (m.type() === 'error' || /Content.Security.Policy|Refused to/i.test(m.text())) consoleErrors.push(m.text()); });
    page.on('pageerror', (e) => consoleErrors.push(`page error: ${e.message}`));
    page.on('request', (r) => check(r.url().startsWith(origin) || r.url().startsWith('data:'),
        `the page requested ${r.url()}, outside ${origin} (the widget must fetch nothing from elsewhere)`));
    page.on('response', async (r) => {
        const entry = { url: r.url(), status: r.status(), at: Date.now() };
        responses.push(entry);
        try {
            entry.headers = await r.allHeaders();
            entry.requestHeaders = await r.request().allHeaders();
        } catch { /* the page may be gone */ }
    });
    const boardResponses = () => responses.filter((r) => new URL(r.url).pathname === `/v1/events/${ev}/leaderboard`);
    // The wire, as Chromium's network stack sees it (DevTools protocol). Playwright reports a response the HTTP
    // cache revalidated as the cached 200; the ExtraInfo events carry the headers actually sent (If-None-Match)
    // and the status actually received (304).
    const wire = new Map();          // requestId -> { url, ifNoneMatch, status, etag }
    const cdp = await context.newCDPSession(page);
    await cdp.send('Network.enable');
    const wireOf = (id) => { if (!wire.has(id)) wire.set(id, {}); return wire.get(id); };
    cdp.on('Network.requestWillBeSent', (e) => { wireOf(e.requestId).url = e.request.url; });
    cdp.on('Network.requestWillBeSentExtraInfo', (e) => {
        const h = Object.fromEntries(Object.entries(e.headers).map(([k, v]) => [k.toLowerCase(), v]));
        wireOf(e.requestId).ifNoneMatch = h['if-none-match'] || null;
    });
    cdp.on('Network.responseReceivedExtraInfo', (e) => {
        const h = Object.fromEntries(Object.entries(e.headers).map(([k, v]) => [k.toLowerCase(), v]));
        Object.assign(wireOf(e.requestId), { status: e.statusCode, etag: h.etag || null });
    });
    const boardWire = () => [...wire.values()].filter((w) => w.url && new URL(w.url).pathname === `/v1/events/${ev}/leaderboard` && w.status);
    const metric304 = async () => {
        const m = await request(svc.base, 'GET', '/metrics');
        const line = m.text.split('\n').find((l) => l.startsWith('eventtrack_http_requests_total{') &&
            l.includes('route="/v1/events/{event_id}/leaderboard"') && l.includes('status="304"'));
        return line ? Number(line.split(' ').pop()) : 0;
    };
    const rows = () => page.$$eval('#ranking .row', (lis) => lis.map((li) => ({
        speaker: li.dataset.speaker,
        move: li.dataset.move,
        rank: li.querySelector('.rank').textContent,
        score: li.querySelector('.score').textContent,
        mark: li.querySelector('.move').textContent,
    })));
    const waitRows = async (order, what) => {
        const start = Date.now();
        try {
            await page.waitForFunction((want) => [...document.querySelectorAll('#ranking .row')]
                .map((li) => li.dataset.speaker).join(',') === want, order.join(','), { timeout: REFRESH_MS + MARGIN_MS });
        } catch {
            failures.push(`${what}: the page did not show ${order.join(' > ')} within ${REFRESH_MS + MARGIN_MS} ms ` +
                `(it shows ${JSON.stringify(await rows())})`);
            return null;
        }
        return Date.now() - start;
    };

    // ---- 2. the page, its headers, the empty state
    const doc = await page.goto(`${svc.base}/widget/events/${encodeURIComponent(ev)}`, { waitUntil: 'load' });
    await page.waitForFunction(() => document.querySelector('#event').textContent !== '');
    for (const until = Date.now() + REFRESH_MS; boardResponses().length === 0 && Date.now() < until;) await page.waitForTimeout(50);
    const expectType = { '/widget/widget.js': 'text/javascript', '/widget/widget.css': 'text/css' };
    const served = [[`/widget/events/${ev}`, doc.status(), await doc.allHeaders(), 'text/html']];
    for (const [p, type] of Object.entries(expectType)) {
        const r = responses.find((x) => new URL(x.url).pathname === p);
        if (check(r, `the page did not load ${p}`)) served.push([p, r.status, r.headers || {}, type]);
    }
    for (const [p, status, h, type] of served) {
        check(status === 200, `${p}: status ${status}`);
        check((h['content-type'] || '').split(';')[0].trim() === type, `${p}: Content-Type ${h['content-type']}, expected ${type}`);
        check(h['x-content-type-options'] === 'nosniff', `${p}: X-Content-Type-Options ${h['x-content-type-options']}`);
        const csp = h['content-security-policy'] || '';
        check(/script-src 'self'(;|$)/.test(csp), `${p}: Content-Security-Policy without script-src 'self' only: "${csp}"`);
        check(/default-src 'none'/.test(csp), `${p}: Content-Security-Policy without default-src 'none': "${csp}"`);
        check(!/unsafe-inline|unsafe-eval/.test(csp), `${p}: Content-Security-Policy allows unsafe-inline/eval: "${csp}"`);
    }
    const first = boardResponses()[0];
    if (check(first, 'the page made no leaderboard request')) {
        const h = first.headers || {};
        check(first.status === 200 && /^application\/json/.test(h['content-type'] || ''), `leaderboard: ${first.status} ${h['content-type']}`);
        check(/^"[0-9a-f]{16}"$/.test(h.etag || ''), `leaderboard: ETag ${h.etag}`);
        check(h['cache-control'] === 'public, max-age=4', `leaderboard: Cache-Control ${h['cache-control']}`);
    }
    check(await page.isVisible('#empty'), 'empty state: the "No scores yet" message is not shown for a board without scores');
    check((await rows()).length === 0, 'empty state: rows are shown for a board without scores');
    check(await page.isHidden('#status'), 'empty state: a status notice is shown while the API answers');
    await page.screenshot({ path: path.join(dir, 'widget-phone-empty.png'), fullPage: true });
    log('empty state and headers checked');

    // ---- 3. views logged through the API appear within one refresh
    await views({ ada: 2, grace: 1 });
    let took = await waitRows(['ada', 'grace'], 'first views');
    if (took !== null) log(`board ada > grace shown ${took} ms after the views were logged`);
    check(await page.isHidden('#empty'), 'the empty state stays shown next to a board with scores');
    const r1 = await rows();
    check(JSON.stringify(r1.map((r) => [r.rank, r.speaker, r.score])) === '[["#1","ada","2"],["#2","grace","1"]]',
        `first board: ${JSON.stringify(r1)}`);

    // ---- 4. an overtake: grace passes ada, linus enters
    const before = boardWire().length;
    const served304 = await metric304();
    await views({ grace: 3, linus: 1 });
    took = await waitRows(['grace', 'ada', 'linus'], 'overtake');
    if (took !== null) log(`board grace > ada > linus shown ${took} ms after the views were logged`);
    const r2 = await rows();
    const by = Object.fromEntries(r2.map((r) => [r.speaker, r]));
    check(by.grace && by.grace.move === 'moved up' && by.grace.mark === '\u25B2', `grace overtook ada but is not marked "moved up" (▲): ${JSON.stringify(by.grace)}`);
    check(by.ada && by.ada.move === 'moved down' && by.ada.mark === '\u25BC', `ada was overtaken but is not marked "moved down" (▼): ${JSON.stringify(by.ada)}`);
    check(by.linus && by.linus.move === 'new on the board', `linus is new but not marked so: ${JSON.stringify(by.linus)}`);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    check(overflow <= 0, `phone viewport: the page is ${overflow}px wider than the screen (horizontal scrolling)`);
    await page.screenshot({ path: path.join(dir, 'widget-phone.png'), fullPage: true });
    await page.setViewportSize({ width: 1920, height: 1080 });
    await page.screenshot({ path: path.join(dir, 'widget-projector.png') });
    const projectorOverflow = await page.evaluate(() => document.documentElement.scrollHeight - window.innerHeight);
    check(projectorOverflow <= 0, `projector viewport: a board of 3 needs vertical scrolling (${projectorOverflow}px)`);
    await page.setViewportSize({ width: 390, height: 844 });
    log('overtake shown and its marks checked; screenshots saved');

    // ---- 5. the next refresh of the unchanged board is a 304
    const changedAt = boardWire().findIndex((w, i) => i >= before && w.status === 200);
    const deadline = Date.now() + REFRESH_MS + MARGIN_MS;
    while (boardWire().length <= changedAt + 1 && Date.now() < deadline) await page.waitForTimeout(100);
    const changed = boardWire()[changedAt];
    const next = boardWire()[changedAt + 1];
    if (check(changedAt >= 0 && next, `no leaderboard refresh within ${REFRESH_MS + MARGIN_MS} ms after the changed board`)) {
        check(next.ifNoneMatch === changed.etag,
            `the refresh after the board changed sent If-None-Match ${next.ifNoneMatch}, the board's ETag is ${changed.etag}`);
        check(next.status === 304, `the refresh after the board last changed answered ${next.status} on the wire, not 304`);
        const more = (await metric304()) - served304;
        check(more >= 1, `the service's metrics count no 304 for the leaderboard since the board changed`);
        await page.waitForTimeout(300);
        const r3 = await rows();
        check(JSON.stringify(r3.map((r) => r.speaker)) === '["grace","ada","linus"]', `after the 304 the board changed: ${JSON.stringify(r3)}`);
        check(r3.every((r) => r.move === 'same'), `after an unchanged refresh, marks remain: ${JSON.stringify(r3)}`);
        log(`refresh of the unchanged board: ${next.status} on the wire (If-None-Match ${next.ifNoneMatch}); the service counted ${more} leaderboard 304(s)`);
    }

    // ---- 5b. an older board (a replica behind, a rebuild in progress) is ignored
    const boardPath = `/v1/events/${ev}/leaderboard`;
    const shownVersion = Number(await page.evaluate(() => document.body.dataset.version));
    check(shownVersion === 7, `the page shows board version ${shownVersion}; 7 views were counted`);
    let staleServed = 0;
    const older = { event_id: ev, version: shownVersion - 4, leaderboard: [
        { rank: 1, speaker_id: 'ada', score: 2 }, { rank: 2, speaker_id: 'grace', score: 1 }] };
    const serveOlder = (route) => {
        staleServed++;
        return route.fulfill({ status: 200, contentType: 'application/json', headers: { 'cache-control': 'no-store' },
            body: JSON.stringify(older) });
    };
    const isBoard = (url) => url.pathname === boardPath;     // unroute needs this very function
    await page.route(isBoard, serveOlder);
    try {
        await page.waitForFunction(() => Number(document.body.dataset.ignored || 0) >= 1, null,
            { timeout: REFRESH_MS + MARGIN_MS });
    } catch {
        failures.push(`the page did not ignore the older board (version ${older.version}) within ${REFRESH_MS + MARGIN_MS} ms` +
            ` (${staleServed} served; it shows ${JSON.stringify(await rows())})`);
    }
    await page.unroute(isBoard, serveOlder);
    const servedWhileRouted = staleServed;
    const r5 = await rows();
    check(staleServed >= 1 && JSON.stringify(r5.map((r) => [r.speaker, r.score])) === '[["grace","4"],["ada","2"],["linus","1"]]',
        `after an older board (version ${older.version} < ${shownVersion}) the page must keep the newer one; it shows ${JSON.stringify(r5)}`);
    check(await page.isHidden('#status'), 'an ignored older board made the page show a status notice');
    const ignoredBefore = Number(await page.evaluate(() => document.body.dataset.ignored));
    const realAgain = responses.length;
    for (const until = Date.now() + REFRESH_MS + MARGIN_MS;
        !responses.slice(realAgain).some((r) => new URL(r.url).pathname === boardPath) && Date.now() < until;) await page.waitForTimeout(100);
    await page.waitForTimeout(300);
    check(staleServed === servedWhileRouted, 'an older board was served after the route was removed');
    check(Number(await page.evaluate(() => document.body.dataset.ignored)) === ignoredBefore &&
        Number(await page.evaluate(() => document.body.dataset.version)) === shownVersion,
        'the service\'s board (same version as the shown one) was not accepted after the older one');
    log(`older board (version ${older.version}) served ${staleServed} time(s) and ignored; the board of version ${shownVersion} kept`);

    // ---- a full board (the top 10, long speaker ids) must fit a projector without scrolling, and a phone's width
    const full = freshId('evt_full');
    await api('POST', '/v1/events', { id: full, organization_id: org, name: 'Full board' });
    const many = Array.from({ length: 12 }, (_, i) => `speaker-${String(i + 1).padStart(2, '0')}${i === 2 ? '-with-a-rather-long-speaker-id-that-must-wrap' : ''}`);
    for (const s of many) {
        sessionOf[s] = freshId('ses_full');
        await api('POST', '/v1/sessions', { id: sessionOf[s], event_id: full, title: 'Talk', speaker_id: s });
    }
    await views(Object.fromEntries(many.map((s, i) => [s, 12 - i])));
    const tab = await context.newPage();
    await tab.setViewportSize({ width: 1920, height: 1080 });
    await tab.goto(`${svc.base}/widget/events/${encodeURIComponent(full)}`);
    await tab.waitForFunction(() => document.querySelectorAll('#ranking .row').length === 10, null, { timeout: REFRESH_MS });
    const fits = await tab.evaluate(() => document.documentElement.scrollHeight - window.innerHeight);
    check(fits <= 0, `projector viewport (1920x1080): the top 10 need ${fits}px of vertical scrolling`);
    await tab.screenshot({ path: path.join(dir, 'widget-projector-top10.png') });
    await tab.setViewportSize({ width: 390, height: 844 });
    const wide = await tab.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    check(wide <= 0, `phone viewport: the top 10 with a long speaker id are ${wide}px wider than the screen`);
    await tab.screenshot({ path: path.join(dir, 'widget-phone-top10.png'), fullPage: true });
    await tab.close();
    log('top 10 checked on the projector and the phone; screenshots saved');

    // ---- 6. the API goes away: the board stays, the notice says reconnecting
    const { code, signal } = await svc.stop();
    check(code === 0, `the service did not stop cleanly (${signal || code}); see ${svc.logPath}`);
    try {
        await page.waitForFunction(() => !document.querySelector('#status').hidden, null, { timeout: REFRESH_MS + MARGIN_MS });
        const notice = await page.textContent('#status');
        check(/reconnecting/i.test(notice), `the notice shown while the API is unreachable does not say reconnecting: "${notice}"`);
    } catch {
        failures.push(`no notice within ${REFRESH_MS + MARGIN_MS} ms of the API becoming unreachable`);
    }
    const r4 = await rows();
    check(JSON.stringify(r4.map((r) => [r.speaker, r.score])) === '[["grace","4"],["ada","2"],["linus","1"]]',
        `while the API is unreachable the page must keep the last board; it shows ${JSON.stringify(r4)}`);
    await page.screenshot({ path: path.join(dir, 'widget-phone-reconnecting.png'), fullPage: true });
    log('API stopped: kept board and reconnecting notice checked');

    for (const e of consoleErrors.filter((e) => !/Failed to load resource|ERR_CONNECTION_REFUSED/.test(e)))
        failures.push(`console: ${e}`);
} catch (e) {
    fatal = e;
} finally {
    if (context) await context.close().catch(() => {});
    await svc.stop();
    fs.rmSync(profile, { recursive: true, force: true });
}
if (fatal) failures.push(`stopped: ${fatal.stack || fatal}`);

if (failures.length) {
    console.error(`e2e-widget: ${failures.length} failure(s) (screenshots and log in ${path.relative(ROOT, dir)}):`);
    for (const f of failures) console.error(`  - ${f}`);
    process.exit(1);
}
log(`passed; screenshots in ${path.relative(ROOT, dir)}`);
