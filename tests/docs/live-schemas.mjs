// tests/docs/live-schemas.mjs — live responses of the real service validate against docs/openapi.yaml.
//
// Starts `eventtrack serve` (tests/lib/service.mjs), runs the main flows of the API over HTTP, and checks every
// response against what the document declares for that operation and status:
//   - the status is documented for the operation (an undocumented status is a failure);
//   - the Content-Type is one the response documents, and the body validates against that media type's schema
//     (Ajv, OpenAPI 3.1 dialect: tests/lib/openapi.mjs); a response documented without content has no body;
//   - documented headers with `required: true` are present, and every documented header present matches its
//     schema (Location, Allow, WWW-Authenticate, Retry-After, ETag, Cache-Control, Content-Security-Policy);
//   - the conventions the description states for every response: `X-Content-Type-Options: nosniff`, and a
//     problem document's `status` equal to the HTTP status, with a `type` listed in the conventions table
//     under that status.
// A 405 and a 404 for an unknown path belong to no declared operation; they are checked against the
// components the document gives for them (responses/MethodNotAllowed, responses/NotFound).
// Finally every documented operation must have been exercised at least once, so a new operation cannot
// escape the check. Any mismatch is printed with the request, the status and the schema location; the exit
// status is 1 if there was any.
import { adminKey, bearer, freshId, request, startService } from '../lib/service.mjs';
import { loadOpenApi, operations, ResponseValidator } from '../lib/openapi.mjs';

const doc = loadOpenApi();
const validator = new ResponseValidator(doc);
const ops = operations(doc);
const failures = [];
const exercised = new Map();         // "GET /path" -> Set of statuses seen
let responses = 0;

// The conventions table: | `/problems/<slug>` | <status> | ... |
const problemTypes = new Map();
for (const m of doc.info.description.matchAll(/^\|\s*`(\/problems\/[a-z-]+)`\s*\|\s*(\d{3})\s*\|/gm))
    problemTypes.set(m[1], Number(m[2]));
if (problemTypes.size < 10) failures.push(`the conventions table of problem types was not found in info.description`);

function conventions(what, res) {
    const problems = [];
    if (res.headers['x-content-type-options'] !== 'nosniff')
        problems.push(`X-Content-Type-Options is ${JSON.stringify(res.headers['x-content-type-options'])}, not "nosniff"`);
    if (/^application\/problem\+json/.test(res.headers['content-type'] || '') && res.json) {
        if (res.json.status !== res.status) problems.push(`problem status ${res.json.status} != HTTP status ${res.status}`);
        const listed = problemTypes.get(res.json.type);
        if (listed === undefined) problems.push(`problem type ${res.json.type} is not in the conventions table`);
        else if (listed !== res.status) problems.push(`problem type ${res.json.type} is listed with status ${listed}, sent with ${res.status}`);
    }
    return problems;
}

function report(what, res, problems) {
    responses += 1;
    const type = res.headers['content-type'] || '';
    const body = /json/.test(type) ? res.text.replace(/\s+/g, ' ').trim().slice(0, 300)
        : `(${res.text.length} bytes${type ? ` of ${type}` : ''})`;
    for (const p of problems) failures.push(`${what}: ${p}\n      body: ${body}`);
}

// One call of a documented operation. expect: the status this flow must produce (a different one is a
// failure of the flow, reported as such, and the response is still validated against its own status).
async function call(method, template, { params = {}, query = '', auth = 'admin', headers = {}, body, expect, type } = {}) {
    const urlPath = template.replace(/\{(\w+)\}/g, (_, k) => {
        if (params[k] === undefined) throw new Error(`no value for {${k}} in ${template}`);
        return encodeURIComponent(params[k]);
    }) + (query ? `?${query}` : '');
    const authHeaders = auth === 'admin' ? bearer(adminKey()) : auth ? bearer(auth) : {};
    const res = await request(base, method, urlPath, { headers: { ...authHeaders, ...headers }, body });
    const what = `${method} ${urlPath} -> ${res.status}`;
    const problems = [];
    const opInfo = ops.find((o) => o.method === method && o.path === template);
    if (!opInfo) {
        problems.push(`${method} ${template} is not an operation of docs/openapi.yaml`);
    } else {
        const key = `${method} ${template}`;
        if (!exercised.has(key)) exercised.set(key, new Set());
        exercised.get(key).add(res.status);
        const documented = validator.documentedResponse(opInfo, res.status);
        if (!documented) problems.push(`status ${res.status} is not documented for ${method} ${template} (documented: ${Object.keys(opInfo.op.responses).join(', ')})`);
        else problems.push(...validator.check(documented, res));
    }
    if (expect !== undefined && res.status !== expect) problems.push(`the flow expects ${expect}`);
    if (type !== undefined && (!res.json || res.json.type !== `/problems/${type}`))
        problems.push(`the flow expects problem type /problems/${type}, got ${res.json && res.json.type}`);
    problems.push(...conventions(what, res));
    report(what, res, problems);
    return res;
}

// A response that belongs to no declared operation, checked against a component response.
async function callOutside(method, urlPath, component, expect, headers = {}) {
    const res = await request(base, method, urlPath, { headers: { ...bearer(adminKey()), ...headers } });
    const what = `${method} ${urlPath} -> ${res.status}`;
    const problems = [];
    if (res.status !== expect) problems.push(`the flow expects ${expect}`);
    else problems.push(...validator.check(validator.componentResponse(component), res));
    problems.push(...conventions(what, res));
    report(what, res, problems);
    return res;
}

const svc = await startService('live-schemas');
const base = svc.base;
let fatal = null;
try {
    // ---- operations
    await call('GET', '/healthz', { auth: null, expect: 200 });
    await call('GET', '/readyz', { auth: null, expect: 200 });
    await call('GET', '/readyz/read', { auth: null, expect: 200 });
    await call('GET', '/metrics', { auth: null, expect: 200 });

    // ---- organizations, keys
    const org = freshId('org');
    const created = await call('POST', '/v1/organizations', { body: { id: org, name: 'Schema Check Org', credits: 2 }, expect: 201 });
    const orgKey = created.json && created.json.api_key;
    if (!orgKey) throw new Error('POST /v1/organizations returned no api_key; cannot go on');
    await call('POST', '/v1/organizations', { body: { id: org, name: 'Again' }, expect: 409, type: 'already-exists' });
    await call('POST', '/v1/organizations', { auth: orgKey, body: { name: 'Nope' }, expect: 403, type: 'forbidden' });
    await call('GET', '/v1/organizations/{org_id}', { params: { org_id: org }, auth: orgKey, expect: 200 });
    const issued = await call('POST', '/v1/organizations/{org_id}/keys', { params: { org_id: org }, auth: orgKey, expect: 201 });
    await call('DELETE', '/v1/organizations/{org_id}/keys/{key_id}', { params: { org_id: org, key_id: issued.json ? issued.json.key_id : 'none' }, auth: orgKey, expect: 204 });
    await call('DELETE', '/v1/organizations/{org_id}/keys/{key_id}', { params: { org_id: org, key_id: issued.json ? issued.json.key_id : 'none' }, auth: orgKey, expect: 404, type: 'not-found' });

    // ---- events, sessions
    const ev = freshId('evt');
    await call('POST', '/v1/events', { auth: orgKey, body: { id: ev, organization_id: org, name: 'Schema Conf', starts_at: '2026-12-01T09:00:00+01:00' }, expect: 201 });
    await call('POST', '/v1/events', { auth: orgKey, body: { organization_id: org, name: 'No start' }, expect: 201 });
    await call('GET', '/v1/events/{event_id}', { params: { event_id: ev }, auth: orgKey, expect: 200 });
    await call('GET', '/v1/events/{event_id}', { params: { event_id: freshId('nope') }, auth: orgKey, expect: 404, type: 'not-found' });
    const ses = freshId('ses');
    await call('POST', '/v1/sessions', { auth: orgKey, body: { id: ses, event_id: ev, title: 'Schemas', speaker_id: 'ada' }, expect: 201 });
    await call('GET', '/v1/sessions/{session_id}', { params: { session_id: ses }, auth: orgKey, expect: 200 });

    // ---- registrations: 201 (with an Idempotency-Key, and its replay), 201, 409, 402
    const reg = (user) => ({ session_id: ses, user_id: user, organization_id: org, ticket_type: 'standard', price_paid: '99.00' });
    const idem = { 'Idempotency-Key': freshId('reg-key') };
    const r1 = await call('POST', '/v1/registrations', { auth: orgKey, headers: idem, body: reg('u1'), expect: 201 });
    const r1again = await call('POST', '/v1/registrations', { auth: orgKey, headers: idem, body: reg('u1'), expect: 201 });
    if (r1.text !== r1again.text) failures.push(`POST /v1/registrations replay: body differs from the original\n      ${r1.text.trim()}\n      ${r1again.text.trim()}`);
    await call('POST', '/v1/registrations', { auth: orgKey, headers: idem, body: reg('u9'), expect: 422, type: 'idempotency-key-reused' });
    await call('POST', '/v1/registrations', { auth: orgKey, body: reg('u2'), expect: 201 });
    await call('POST', '/v1/registrations', { auth: orgKey, body: reg('u1'), expect: 409, type: 'already-registered' });
    await call('POST', '/v1/registrations', { auth: orgKey, body: reg('u3'), expect: 402, type: 'insufficient-credits' });
    await call('POST', '/v1/registrations', { auth: orgKey, headers: { 'Idempotency-Key': 'bad key with spaces' }, body: reg('u4'), expect: 400, type: 'invalid-header' });
    await call('GET', '/v1/registrations/{registration_id}', { params: { registration_id: r1.json ? r1.json.id : 'none' }, auth: orgKey, expect: 200 });

    // ---- credits: balance, 403 for the organization's own top-up, idempotent admin top-up
    await call('GET', '/v1/organizations/{org_id}/credits', { params: { org_id: org }, auth: orgKey, expect: 200 });
    await call('POST', '/v1/organizations/{org_id}/credits', { params: { org_id: org }, auth: orgKey, body: { amount: 10 }, expect: 403, type: 'forbidden' });
    const topKey = { 'Idempotency-Key': freshId('topup') };
    const t1 = await call('POST', '/v1/organizations/{org_id}/credits', { params: { org_id: org }, headers: topKey, body: { amount: 10, reason: 'schema check' }, expect: 200 });
    const t2 = await call('POST', '/v1/organizations/{org_id}/credits', { params: { org_id: org }, headers: topKey, body: { amount: 10, reason: 'schema check' }, expect: 200 });
    if (t1.text !== t2.text) failures.push(`POST credits replay: body differs\n      ${t1.text.trim()}\n      ${t2.text.trim()}`);
    await call('POST', '/v1/organizations/{org_id}/credits', { params: { org_id: freshId('nope') }, body: { amount: 1 }, expect: 404, type: 'not-found' });

    // ---- cancel with refund (200, its replay, 409, 404), then the lists: pages, filters, 400s, 404s
    const cancelKey = { 'Idempotency-Key': freshId('cancel') };
    const regId = { registration_id: r1.json ? r1.json.id : 'none' };
    const c1 = await call('DELETE', '/v1/registrations/{registration_id}', { params: regId, auth: orgKey, headers: cancelKey, expect: 200 });
    const c2 = await call('DELETE', '/v1/registrations/{registration_id}', { params: regId, auth: orgKey, headers: cancelKey, expect: 200 });
    if (c1.text !== c2.text) failures.push(`DELETE registration replay: body differs\n      ${c1.text.trim()}\n      ${c2.text.trim()}`);
    await call('DELETE', '/v1/registrations/{registration_id}', { params: regId, auth: orgKey, expect: 409, type: 'registration-cancelled' });
    await call('DELETE', '/v1/registrations/{registration_id}', { params: { registration_id: freshId('nope') }, auth: orgKey, expect: 404, type: 'not-found' });
    await call('GET', '/v1/registrations/{registration_id}', { params: regId, auth: orgKey, expect: 200 });
    const evPage = await call('GET', '/v1/organizations/{org_id}/events', { params: { org_id: org }, query: 'limit=1', auth: orgKey, expect: 200 });
    const evCursor = evPage.json && evPage.json.next_cursor ? evPage.json.next_cursor : 'none';
    await call('GET', '/v1/organizations/{org_id}/events', { params: { org_id: org }, query: `limit=1&cursor=${evCursor}`, auth: orgKey, expect: 200 });
    await call('GET', '/v1/organizations/{org_id}/events', { params: { org_id: freshId('nope') }, auth: orgKey, expect: 404, type: 'not-found' });
    await call('GET', '/v1/events/{event_id}/sessions', { params: { event_id: ev }, auth: orgKey, expect: 200 });
    await call('GET', '/v1/events/{event_id}/sessions', { params: { event_id: ev }, query: 'limit=0', auth: orgKey, expect: 400, type: 'invalid-query' });
    await call('GET', '/v1/sessions/{session_id}/registrations', { params: { session_id: ses }, auth: orgKey, expect: 200 });
    await call('GET', '/v1/sessions/{session_id}/registrations', { params: { session_id: ses }, query: 'status=cancelled', auth: orgKey, expect: 200 });
    await call('GET', '/v1/sessions/{session_id}/registrations', { params: { session_id: ses }, query: `cursor=${evCursor}`, auth: orgKey, expect: 400, type: 'invalid-cursor' });
    await call('GET', '/v1/organizations/{org_id}/ledger', { params: { org_id: org }, auth: orgKey, expect: 200 });
    await call('GET', '/v1/organizations/{org_id}/ledger', { params: { org_id: org }, query: 'kind=refund&limit=200', auth: orgKey, expect: 200 });
    await call('POST', '/v1/analytics/events', { auth: orgKey, body: { event_type: 'sponsor_scan', user_id: 'u1', occurred_at: '2026-12-01T09:30:00Z', payload: { sponsor_id: 'sp_001' } }, expect: 201 });
    await call('POST', '/v1/analytics/events', { auth: orgKey, body: { event_type: 'sponsor_scan', user_id: 'u2', occurred_at: '2026-12-01T09:40:00Z', payload: { sponsor_id: 'sp_002' } }, expect: 201 });
    const scans = await call('GET', '/v1/analytics/events', { query: `event_type=sponsor_scan&limit=1&payload=${encodeURIComponent('{"sponsor_id":"sp_001"}')}`, auth: orgKey, expect: 200 });
    const all = await call('GET', '/v1/analytics/events', { query: 'event_type=sponsor_scan&limit=1', auth: orgKey, expect: 200 });
    await call('GET', '/v1/analytics/events', { query: `event_type=sponsor_scan&limit=1&cursor=${all.json && all.json.next_cursor ? all.json.next_cursor : 'none'}`, auth: orgKey, expect: 200 });
    if (!scans.json || scans.json.items.length !== 1) failures.push(`GET /v1/analytics/events payload filter: ${scans.text}`);
    await call('GET', '/v1/analytics/events', { query: 'payload=%5B1%5D', auth: orgKey, expect: 400, type: 'invalid-query' });
    await call('GET', '/v1/analytics/counts', { query: 'event_type=sponsor_scan&bucket=hour&since=2026-12-01T08:00:00Z&until=2026-12-01T11:00:00Z', auth: orgKey, expect: 200 });
    await call('GET', '/v1/analytics/counts', { query: 'since=2026-12-01T08:00:00Z&until=2027-01-08T00:00:00Z', auth: orgKey, expect: 400, type: 'invalid-query' });

    // ---- analytics: single (201), duplicate (200), conflict (409), batch (200), invalid (422)
    const view = (id, user, extra = {}) => ({ event_id: id, event_type: 'session_view', user_id: user, payload: { session_id: ses, ...extra } });
    const v1 = freshId('view');
    await call('POST', '/v1/analytics/events', { auth: orgKey, body: view(v1, 'u1'), expect: 201 });
    const dup = await call('POST', '/v1/analytics/events', { auth: orgKey, body: view(v1, 'u1'), expect: 200 });
    if (!dup.json || dup.json.duplicate !== true) failures.push(`analytics duplicate: expected "duplicate": true, got ${dup.text.trim()}`);
    await call('POST', '/v1/analytics/events', { auth: orgKey, body: view(v1, 'u2'), expect: 409, type: 'event-id-conflict' });
    const batch = await call('POST', '/v1/analytics/events', {
        auth: orgKey, expect: 200, body: {
            batch: [
                view(freshId('view'), 'u2'),
                view(freshId('view'), 'u3', { speaker_id: 'grace' }),
                view(v1, 'u1'),
                { event_type: 'Not A Type', user_id: 'u1', payload: {} },
                view(v1, 'u3'),
                { event_type: 'sponsor_scan', user_id: 'u1', payload: { sponsor_id: 'sp_001' } },
            ],
        },
    });
    const counts = batch.json && [batch.json.accepted, batch.json.duplicates, batch.json.rejected].join('/');
    if (counts !== '3/1/2') failures.push(`analytics batch: expected accepted/duplicates/rejected 3/1/2, got ${counts}`);
    await call('POST', '/v1/analytics/events', { auth: orgKey, body: { event_type: 'session_view', user_id: 'u1' }, expect: 422, type: 'validation-failed' });

    // ---- leaderboard (public): 200, 304 with the ETag, 400, speaker 200 and 404
    const board = await call('GET', '/v1/events/{event_id}/leaderboard', { params: { event_id: ev }, query: 'top_n=10', auth: null, expect: 200 });
    const expected = '[{"rank":1,"speaker_id":"ada","score":2},{"rank":2,"speaker_id":"grace","score":1}]';
    if (!board.json || JSON.stringify(board.json.leaderboard) !== expected)
        failures.push(`leaderboard: expected ${expected}, got ${board.text.trim()}`);
    await call('GET', '/v1/events/{event_id}/leaderboard', { params: { event_id: ev }, query: 'top_n=10', auth: null, headers: { 'If-None-Match': board.headers.etag || '"none"' }, expect: 304 });
    await call('GET', '/v1/events/{event_id}/leaderboard', { params: { event_id: freshId('unknown') }, auth: null, expect: 200 });
    await call('GET', '/v1/events/{event_id}/leaderboard', { params: { event_id: ev }, query: 'top_n=0', auth: null, expect: 400, type: 'invalid-query' });
    const ada = await call('GET', '/v1/events/{event_id}/leaderboard/speakers/{speaker_id}', { params: { event_id: ev, speaker_id: 'ada' }, auth: null, expect: 200 });
    await call('GET', '/v1/events/{event_id}/leaderboard/speakers/{speaker_id}', { params: { event_id: ev, speaker_id: 'ada' }, auth: null, headers: { 'If-None-Match': ada.headers.etag || '"none"' }, expect: 304 });
    await call('GET', '/v1/events/{event_id}/leaderboard/speakers/{speaker_id}', { params: { event_id: ev, speaker_id: 'nobody' }, auth: null, expect: 404, type: 'not-found' });

    // ---- the widget (public): page, assets, 304, 404
    const page = await call('GET', '/widget/events/{event_id}', { params: { event_id: ev }, auth: null, expect: 200 });
    await call('GET', '/widget/events/{event_id}', { params: { event_id: ev }, auth: null, headers: { 'If-None-Match': page.headers.etag || '"none"' }, expect: 304 });
    await call('GET', '/widget/{file}', { params: { file: 'widget.js' }, auth: null, expect: 200 });
    await call('GET', '/widget/{file}', { params: { file: 'widget.css' }, auth: null, expect: 200 });
    await call('GET', '/widget/{file}', { params: { file: 'index.html' }, auth: null, expect: 404, type: 'not-found' });

    // ---- refusals: 401 (none, invalid), 404, 405, 413, 415, 400, 422
    await call('GET', '/v1/events/{event_id}', { params: { event_id: ev }, auth: null, expect: 401, type: 'unauthorized' });
    await call('GET', '/v1/events/{event_id}', { params: { event_id: ev }, auth: 'etk_0000', expect: 401, type: 'invalid-token' });
    await call('POST', '/v1/events', { auth: orgKey, headers: { 'Content-Type': 'application/json' }, body: '{"organization_id": ', expect: 400, type: 'malformed-json' });
    await call('POST', '/v1/events', { auth: orgKey, headers: { 'Content-Type': 'text/plain' }, body: 'hello', expect: 415, type: 'unsupported-media-type' });
    await call('POST', '/v1/events', { auth: orgKey, body: { organization_id: org, name: 'x', credit: 5 }, expect: 422, type: 'validation-failed' });
    await call('POST', '/v1/sessions', { auth: orgKey, headers: { 'Content-Type': 'application/json', Expect: '100-continue' }, body: 'x'.repeat(1100000), expect: 413, type: 'payload-too-large' });
    await callOutside('GET', '/v1/nothing-here', 'NotFound', 404);
    await callOutside('DELETE', '/v1/events', 'MethodNotAllowed', 405);
    await callOutside('PUT', '/widget/widget.js', 'MethodNotAllowed', 405);
} catch (e) {
    fatal = e;
} finally {
    const { code, signal } = await svc.stop();
    if (code !== 0) failures.push(`the service did not stop cleanly on SIGTERM (${signal || `status ${code}`}); see ${svc.logPath}`);
}
if (fatal) failures.push(`the flow stopped: ${fatal.stack || fatal}`);

for (const o of ops) {
    const key = `${o.method} ${o.path}`;
    if (!exercised.has(key)) failures.push(`${key}: documented, but no response of it was checked (add it to the flows)`);
}

const opsSeen = [...exercised.values()].reduce((n, s) => n + s.size, 0);
if (failures.length) {
    console.error(`live-schemas: ${failures.length} mismatch(es) between the live service and docs/openapi.yaml:`);
    for (const f of failures) console.error(`  - ${f}`);
    process.exit(1);
}
console.log(`live-schemas: ${responses} responses valid against docs/openapi.yaml ` +
    `(${exercised.size} of ${ops.length} operations, ${opsSeen} operation/status pairs)`);
