// tests/docs/readme-walkthrough.mjs — README.md's curl walkthrough, executed against the live service.
//
// 1. Extracts the first ```sh block under the heading "## The story, with curl" from README.md, unchanged.
// 2. Starts `eventtrack serve` on a free port (tests/lib/service.mjs) and runs the block with bash -euo pipefail
//    in a scratch directory laid out like the repository root for it: .local/admin-key holds the admin key,
//    exactly where scripts/serve keeps it, and EVENTTRACK_ADMIN_KEY is removed from the block's environment,
//    so the block's own default reads the file. Its one parameter is EVENTTRACK_URL, which the block reads
//    with the README's default (BASE=${EVENTTRACK_URL:-http://127.0.0.1:8080}): no text is substituted.
// 3. Observes every curl call: a `curl` first in PATH runs the real one with the same arguments, writes the
//    body to stdout as curl would, and records (status, method, URL, body) on the side.
// 4. Asserts what the block's comments promise, call by call (the README comment each check stands for is
//    quoted in its message), plus the README's inline samples: the 402 problem document in the prose after the
//    block and every `# {...}` sample at the end of a curl line ("..." matching anything).
// Output, the block and the recorded calls are kept in <ET_CHECK_OUT>/readme/.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { adminKey, outDir, ROOT, startService } from '../lib/service.mjs';

const README = path.join(ROOT, 'README.md');
const HEADING = '## The story, with curl';
const failures = [];

function extractBlock(text) {
    const at = text.indexOf(`\n${HEADING}\n`);
    if (at < 0) throw new Error(`README.md has no "${HEADING}" heading`);
    const section = text.slice(at + 1).split(/\n## /)[0];
    const m = /\n```sh\n([\s\S]*?)\n```\n/.exec(section);
    if (!m) throw new Error(`README.md: no \`\`\`sh block under "${HEADING}"`);
    return { block: m[1], section };
}

const readme = fs.readFileSync(README, 'utf8');
const { block, section } = extractBlock(readme);
if (!block.includes('${EVENTTRACK_URL:-'))
    throw new Error('the README block does not read EVENTTRACK_URL (BASE=${EVENTTRACK_URL:-http://127.0.0.1:8080}); ' +
        'the check cannot point it at the test service without changing its text');

const dir = outDir('readme');
const work = path.join(dir, 'root');
fs.rmSync(work, { recursive: true, force: true });
fs.mkdirSync(path.join(work, '.local'), { recursive: true, mode: 0o700 });
fs.writeFileSync(path.join(work, '.local/admin-key'), adminKey(), { mode: 0o600 });
fs.writeFileSync(path.join(dir, 'walkthrough.sh'), block + '\n');

// The observing curl.
const realCurl = spawnSync('bash', ['-c', 'command -v curl'], { encoding: 'utf8' }).stdout.trim();
if (!realCurl) throw new Error('curl is not installed (deploy/local/packages.sh installs it)');
const shimDir = path.join(dir, 'bin');
const callsDir = path.join(dir, 'calls');
fs.rmSync(callsDir, { recursive: true, force: true });
fs.mkdirSync(shimDir, { recursive: true });
fs.mkdirSync(callsDir, { recursive: true });
fs.writeFileSync(path.join(shimDir, 'curl'), `#!/bin/bash
# Records each call of the README block: runs the real curl with the same arguments, body to a file, status
# and method and URL to another, then writes the body to stdout as curl itself would have.
n=$(ls "$ET_CALLS" | wc -l)
f=$(printf '%s/%03d' "$ET_CALLS" "$n")
rc=0
"$ET_REAL_CURL" "$@" -o "$f.body" -w '%{response_code} %{method} %{url_effective}' >"$f.meta" || rc=$?
cat "$f.body" 2>/dev/null
exit "$rc"
`, { mode: 0o755 });

const svc = await startService('readme');
let run;
try {
    const env = { ...process.env, PATH: `${shimDir}:${process.env.PATH}`, EVENTTRACK_URL: svc.base,
        ET_REAL_CURL: realCurl, ET_CALLS: callsDir };
    delete env.EVENTTRACK_ADMIN_KEY;
    run = spawnSync('bash', ['--noprofile', '--norc', '-euo', 'pipefail', path.join(dir, 'walkthrough.sh')],
        { cwd: work, env, encoding: 'utf8', timeout: 60000 });
} finally {
    await svc.stop();
}
fs.writeFileSync(path.join(dir, 'stdout.txt'), run.stdout || '');
fs.writeFileSync(path.join(dir, 'stderr.txt'), run.stderr || '');
if (run.error) failures.push(`the block did not run: ${run.error.message}`);
else if (run.status !== 0) failures.push(`the block exited with status ${run.status}; stderr: ${(run.stderr || '').trim().slice(0, 400)}`);

const calls = fs.readdirSync(callsDir).filter((f) => f.endsWith('.meta')).sort().map((f) => {
    const [status, method, url] = fs.readFileSync(path.join(callsDir, f), 'utf8').split(' ');
    const text = fs.readFileSync(path.join(callsDir, f.replace('.meta', '.body')), 'utf8');
    let json;
    try { json = JSON.parse(text); } catch { json = undefined; }
    return { status: Number(status), method, path: url ? new URL(url).pathname + new URL(url).search : '', text, json };
});

// What the block's comments promise, in the order the block makes its calls.
const T = '[0-9]+';
const promises = [
    ['POST', `/v1/organizations`, 201, 'The admin creates an organization with 2 credits; the answer carries the organization\'s first API key',
        (j) => j && /^etk_[0-9a-f]{64}$/.test(j.api_key) && j.credits === 2],
    ['POST', `/v1/events`, 201, 'an event', (j) => j && new RegExp(`^conf-${T}$`).test(j.id)],
    ['POST', `/v1/sessions`, 201, 'a session', (j) => j && j.speaker_id === 'ada'],
    ['POST', `/v1/registrations`, 201, 'Register until the credits run out: 201, ...', (j) => j && j.credits_remaining === 1],
    ['POST', `/v1/registrations`, 201, '... 201, ...', (j) => j && j.credits_remaining === 0],
    ['POST', `/v1/registrations`, 402, '... then 402 insufficient-credits (nothing saved)', (j) => j && j.type === '/problems/insufficient-credits'],
    ['GET', `/v1/organizations/acme-${T}/credits`, 200, '{"organization_id":"acme-...","balance":0}', (j) => j && j.balance === 0],
    ['POST', `/v1/organizations/acme-${T}/credits`, 403, 'Top-ups are the admin\'s (an organization key gets 403)', (j) => j && j.type === '/problems/forbidden'],
    ['POST', `/v1/organizations/acme-${T}/credits`, 200, 'the balance moves once', (j) => j && j.balance === 10],
    ['POST', `/v1/organizations/acme-${T}/credits`, 200, 'the second call replays the first answer, and the balance moves once', (j) => j && j.balance === 10],
    ['POST', `/v1/analytics/events`, 201, 'Attendees view the session', (j) => j && j.duplicate === false],
    ['POST', `/v1/analytics/events`, 200, 'a batch of views (and a sponsor scan)', (j) => j && j.accepted === 3 && j.rejected === 0],
    ['POST', `/v1/analytics/events`, 200, 'A retry of an event already logged is a duplicate: stored once, counted once (200, "duplicate": true)', (j) => j && j.duplicate === true],
    ['GET', `/v1/events/conf-${T}/leaderboard?top_n=10`, 200, 'served from Redis alone: ada 2, grace 1',
        (j) => j && JSON.stringify(j.leaderboard) === '[{"rank":1,"speaker_id":"ada","score":2},{"rank":2,"speaker_id":"grace","score":1}]'],
    ['GET', `/v1/events/conf-${T}/leaderboard/speakers/ada`, 200, 'ada 2', (j) => j && j.rank === 1 && j.score === 2],
    ['GET', `/v1/sessions/talk-${T}/registrations?limit=50`, 200, 'The attendee list (newest first ...)',
        (j) => j && j.items.length === 2 && j.items.every((r) => r.status === 'active') && j.next_cursor === null],
    ['DELETE', `/v1/registrations/reg_[0-9a-f-]+`, 200, 'Cancelling refunds the credit in the same transaction (200, "status":"cancelled", balance 11)',
        (j) => j && j.status === 'cancelled' && j.credits_remaining === 11 && typeof j.cancelled_at === 'string'],
    ['DELETE', `/v1/registrations/reg_[0-9a-f-]+`, 409, 'a second cancel is 409 registration-cancelled and changes nothing',
        (j) => j && j.type === '/problems/registration-cancelled'],
    ['GET', `/v1/sessions/talk-${T}/registrations?status=active`, 200, 'one attendee left',
        (j) => j && j.items.length === 1 && j.items[0].status === 'active'],
    ['GET', `/v1/organizations/acme-${T}/ledger`, 200, 'refund +1, top_up +10, registration -1 twice, opening_balance +2',
        (j) => j && JSON.stringify(j.items.map((e) => [e.kind, e.delta])) ===
            '[["refund",1],["top_up",10],["registration",-1],["registration",-1],["opening_balance",2]]'],
    ['GET', `/v1/analytics/counts?event_type=sponsor_scan&bucket=hour&since=[0-9-]+T00:00:00Z&until=[0-9-]+T00:00:00Z`, 200,
        'sponsor scans per hour today (empty hours are listed with count 0)',
        (j) => j && j.items.length === 24 && j.items.reduce((n, b) => n + b.count, 0) === 1],
];
promises.forEach(([method, pathRe, status, comment, bodyOk], i) => {
    const c = calls[i];
    const label = `call ${i + 1} (README: "${comment}")`;
    if (!c) {
        failures.push(`${label}: the block made only ${calls.length} calls, expected ${method} ${pathRe}`);
        return;
    }
    if (c.method !== method || !new RegExp(`^${pathRe.replace(/\?/g, '\\?')}$`).test(c.path))
        failures.push(`${label}: expected ${method} ${pathRe}, the block called ${c.method} ${c.path}`);
    else if (c.status !== status)
        failures.push(`${label}: ${c.method} ${c.path} answered ${c.status}, expected ${status}: ${c.text.trim()}`);
    else if (!bodyOk(c.json))
        failures.push(`${label}: ${c.method} ${c.path} answered ${c.text.trim()}`);
});
if (calls[8] && calls[9] && calls[8].text !== calls[9].text)
    failures.push(`calls 9 and 10 (README: "the second call replays the first answer"): the answers differ: ` +
        `${calls[8].text.trim()} / ${calls[9].text.trim()}`);
if (calls.length > promises.length)
    failures.push(`the block made ${calls.length} calls, this check knows ${promises.length}: ` +
        `add what the new ones promise (${calls.slice(promises.length).map((c) => `${c.method} ${c.path}`).join(', ')})`);

// The README's inline samples: "..." stands for anything.
const sampleRe = (s) => new RegExp('^' + s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&').replace(/\\\.\\\.\\\./g, '.*') + '$');
for (const m of block.matchAll(/curl [^\n]*#\s*(\{.*\})\s*$/gm)) {
    if (!calls.some((c) => sampleRe(m[1]).test(c.text.trim())))
        failures.push(`README sample ${m[1]} (a comment in the block) matches no answer of the walkthrough`);
}
const prose = /`(\{"type":"\/problems\/insufficient-credits"[^`]*\})`/.exec(section);
if (!prose) failures.push('README: the 402 problem sample after the block is gone (this check looks for it)');
else if (calls[5] && !sampleRe(prose[1]).test(calls[5].text.trim()))
    failures.push(`README sample ${prose[1]} does not match the walkthrough's 402: ${calls[5].text.trim()}`);

fs.writeFileSync(path.join(dir, 'calls.json'), JSON.stringify(calls, null, 1));
if (failures.length) {
    console.error(`readme-walkthrough: README.md's walkthrough no longer tells the truth (${failures.length} problem(s); block, output and calls in ${path.relative(ROOT, dir)}):`);
    for (const f of failures) console.error(`  - ${f}`);
    process.exit(1);
}
console.log(`readme-walkthrough: the README block ran against ${svc.base}: ${calls.length} calls, every promised outcome held`);
