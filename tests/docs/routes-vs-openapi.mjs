// tests/docs/routes-vs-openapi.mjs — the route table and docs/openapi.yaml describe the same API.
//
// Reads `routes[]` from service/src/routes/routes.c as text (it is one aligned table of
// {HTTP_<METHOD>, "<pattern>", <handler>, ACCESS_<ADMIN|TENANT|PUBLIC>, <json body: true|false>} rows; a row
// this script cannot read is itself a failure, so the check cannot silently skip one) and checks, naming every
// mismatch:
//   1. every routed (method, pattern) is a documented operation, with the same {param} names in the same places;
//   2. every documented (method, path) is routed (a documented `head` needs a routed GET: the router answers
//      HEAD for every GET route);
//   3. every {param} of a path is declared as an `in: path` parameter of that operation, and nothing else is;
//   4. access agrees: ACCESS_PUBLIC <=> the operation says `security: []`; a keyed route documents 401, and an
//      ACCESS_ADMIN route also documents 403;
//   5. a route that takes a JSON body (last column true) documents an application/json requestBody and the
//      refusals the dispatcher makes for it before reading it (413, 415), and a route that does not, documents
//      no requestBody.
// Run from anywhere: node tests/docs/routes-vs-openapi.mjs [routes.c] [openapi.yaml]
import fs from 'node:fs';
import path from 'node:path';
import { ROOT } from '../lib/service.mjs';
import { loadOpenApi, OPENAPI_FILE, operations } from '../lib/openapi.mjs';

const routesFile = path.resolve(process.argv[2] || path.join(ROOT, 'service/src/routes/routes.c'));
const openapiFile = path.resolve(process.argv[3] || OPENAPI_FILE);
const rel = (f) => path.relative(ROOT, f);

function readRoutes(file) {
    const text = fs.readFileSync(file, 'utf8').replace(/\/\*[\s\S]*?\*\//g, (c) => c.replace(/[^\n]/g, ' '));
    const start = text.search(/const\s+struct\s+route\s+routes\s*\[\s*\]\s*=\s*\{/);
    if (start < 0) throw new Error(`${rel(file)}: no "const struct route routes[] = {" table`);
    const end = text.indexOf('};', start);
    const table = text.slice(text.indexOf('{', start) + 1, end);
    const line0 = text.slice(0, start).split('\n').length;
    const rows = [];
    const problems = [];
    const rowRe = /^\s*\{\s*HTTP_([A-Z]+)\s*,\s*"([^"]*)"\s*,\s*(\w+)\s*,\s*ACCESS_(ADMIN|TENANT|PUBLIC)\s*,\s*(true|false)\s*\}\s*,?\s*$/;
    table.split('\n').forEach((l, i) => {
        if (!l.trim()) return;
        const m = rowRe.exec(l);
        if (!m) {
            problems.push(`${rel(file)}:${line0 + i}: cannot read this row of routes[]: ${l.trim()}`);
            return;
        }
        rows.push({ method: m[1], pattern: m[2], handler: m[3], access: m[4], json: m[5] === 'true', line: line0 + i });
    });
    if (rows.length === 0) problems.push(`${rel(file)}: routes[] has no rows`);
    return { rows, problems };
}

const params = (p) => [...p.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]);
const shape = (p) => p.replace(/\{[^}]+\}/g, '{}');

const { rows, problems: failures } = readRoutes(routesFile);
const doc = loadOpenApi(openapiFile);
const ops = operations(doc);
const where = (r) => `${rel(routesFile)}:${r.line} ${r.method} ${r.pattern}`;

// 1. routed => documented
for (const r of rows) {
    const op = ops.find((o) => o.method === r.method && o.path === r.pattern);
    if (op) continue;
    const similar = ops.filter((o) => o.method === r.method && shape(o.path) === shape(r.pattern));
    if (similar.length)
        failures.push(`${where(r)}: documented as ${r.method} ${similar[0].path}: path parameter names differ ` +
            `({${params(r.pattern).join('}, {')}} routed, {${params(similar[0].path).join('}, {')}} documented)`);
    else if (ops.some((o) => o.path === r.pattern))
        failures.push(`${where(r)}: the path is documented, but not its ${r.method} operation`);
    else
        failures.push(`${where(r)}: not documented in ${rel(openapiFile)}`);
}

// 2. documented => routed
for (const o of ops) {
    const method = o.method === 'HEAD' ? 'GET' : o.method;
    if (rows.some((r) => r.method === method && r.pattern === o.path)) continue;
    if (rows.some((r) => r.method === method && shape(r.pattern) === shape(o.path))) continue;   // reported above
    failures.push(`${rel(openapiFile)} ${o.method} ${o.path}: documented, but not routed in ${rel(routesFile)}` +
        (o.method === 'HEAD' ? ' (no GET route to answer HEAD)' : ''));
}

// 3.-5. per operation that is both routed and documented
const resolve = (node) => {
    while (node && node.$ref) node = node.$ref.slice(2).split('/').map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'))
        .reduce((x, k) => x && x[k], doc);
    return node;
};
for (const r of rows) {
    const o = ops.find((x) => x.method === r.method && x.path === r.pattern);
    if (!o) continue;
    const name = `${r.method} ${r.pattern} (${r.handler})`;
    const declared = [...(o.item.parameters || []), ...(o.op.parameters || [])].map(resolve).filter((p) => p && p.in === 'path');
    const declaredNames = declared.map((p) => p.name);
    for (const p of params(r.pattern))
        if (!declaredNames.includes(p)) failures.push(`${name}: {${p}} has no "in: path" parameter in the document`);
    for (const p of declaredNames)
        if (!params(r.pattern).includes(p)) failures.push(`${name}: the document declares path parameter "${p}", which the path does not have`);
    for (const p of declared)
        if (p.required !== true) failures.push(`${name}: path parameter "${p.name}" is not "required: true"`);

    const security = o.op.security !== undefined ? o.op.security : doc.security;
    const isPublic = Array.isArray(security) && security.length === 0;
    const codes = Object.keys(o.op.responses || {});
    if (r.access === 'PUBLIC' && !isPublic) failures.push(`${name}: ACCESS_PUBLIC in the route table, but the document requires a key (no "security: []")`);
    if (r.access !== 'PUBLIC' && isPublic) failures.push(`${name}: ACCESS_${r.access} in the route table, but the document says "security: []"`);
    if (r.access !== 'PUBLIC' && !codes.includes('401')) failures.push(`${name}: needs a key, but documents no 401`);
    if (r.access === 'ADMIN' && !codes.includes('403')) failures.push(`${name}: ACCESS_ADMIN, but documents no 403 for an organization key`);
    if (r.access === 'PUBLIC' && codes.some((c) => ['401', '403', '429'].includes(c)))
        failures.push(`${name}: public, but documents ${codes.filter((c) => ['401', '403', '429'].includes(c)).join(', ')}`);

    const body = resolve(o.op.requestBody);
    if (r.json) {
        if (!body || !body.content || !body.content['application/json'])
            failures.push(`${name}: takes a JSON body in the route table, but documents no application/json requestBody`);
        for (const c of ['413', '415'])
            if (!codes.includes(c)) failures.push(`${name}: takes a JSON body, but documents no ${c}`);
    } else if (body) {
        failures.push(`${name}: the route table reads no body, but the document has a requestBody`);
    }
}

if (failures.length) {
    console.error(`routes-vs-openapi: ${failures.length} mismatch(es) between ${rel(routesFile)} and ${rel(openapiFile)}:`);
    for (const f of failures) console.error(`  - ${f}`);
    process.exit(1);
}
console.log(`routes-vs-openapi: ${rows.length} routes of ${rel(routesFile)} and ${ops.length} operations of ` +
    `${rel(openapiFile)} agree (methods, paths, path parameters, access, bodies)`);
