// tests/docs/readme-settings.mjs — README.md's settings table says what `eventtrack --help` says.
//
// Why from --help and not from service/src/config.c: --help is what the binary itself answers, and it is
// generated from config.c's one settings table, so a setting added there only needs its README row for this
// check to pass again; nothing here lists settings by hand.
//
// Checks, naming every mismatch:
//   1. every setting --help lists (`--some-key  meaning (default X)`) has a row `EVENTTRACK_SOME_KEY` in the
//      table under README.md's "## Configuration" heading;
//   2. every row names a setting --help lists (no stale rows);
//   3. the row's default agrees: it starts with --help's default, or says "required" when --help does;
//   4. each setting has one row (one setting per row, so that rows merge cleanly).
// A --help or a table this script cannot read is itself a failure, so the check cannot pass by seeing nothing.
// Run from anywhere: node tests/docs/readme-settings.mjs [README.md]; ET_BINARY names the binary
// (default build-test/eventtrack).
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { ROOT } from '../lib/service.mjs';

const readmeFile = path.resolve(process.argv[2] || path.join(ROOT, 'README.md'));
const binary = path.resolve(ROOT, process.env.ET_BINARY || 'build-test/eventtrack');
const envName = (flag) => 'EVENTTRACK_' + flag.toUpperCase().replace(/-/g, '_');

// --help: after the "Settings" line, one `  --key   meaning (default X)` line per setting.
function helpSettings() {
    const text = execFileSync(binary, ['--help'], { encoding: 'utf8' });
    const lines = text.split('\n');
    const start = lines.findIndex((l) => /^Settings\b/.test(l));
    if (start < 0) throw new Error(`${binary} --help has no "Settings" section`);
    const settings = new Map();
    for (const l of lines.slice(start + 1)) {
        if (!l.trim()) continue;
        const m = /^\s+--([a-z0-9-]+)\s+(.*)$/.exec(l);
        if (!m) throw new Error(`cannot read this line of ${binary} --help: ${l}`);
        const def = /\(default ([^)]*)\)\s*$/.exec(m[2]);
        settings.set(envName(m[1]), {
            flag: m[1],
            default: def ? def[1] : null,
            required: /\(required\b/.test(m[2]),
        });
    }
    if (settings.size === 0) throw new Error(`${binary} --help lists no settings`);
    return settings;
}

// README.md: the first table after "## Configuration"; rows `| `EVENTTRACK_X` | default | meaning |`.
function readmeRows() {
    const lines = fs.readFileSync(readmeFile, 'utf8').split('\n');
    const head = lines.findIndex((l) => /^## Configuration\s*$/.test(l));
    if (head < 0) throw new Error(`${readmeFile}: no "## Configuration" section`);
    let i = lines.findIndex((l, n) => n > head && /^\|/.test(l));
    if (i < 0 || !/^\|\s*setting\s*\|\s*default\s*\|/.test(lines[i]))
        throw new Error(`${readmeFile}:${i + 1}: expected the header row "| setting | default | meaning |"`);
    const rows = [];
    const problems = [];
    for (i += 2; i < lines.length && /^\|/.test(lines[i]); i++) {
        const cells = lines[i].split('|').slice(1, -1).map((c) => c.trim());
        const m = /^`(EVENTTRACK_[A-Z0-9_]+)`$/.exec(cells[0] || '');
        if (cells.length !== 3 || !m) {
            problems.push(`README.md:${i + 1}: cannot read this row (one \`EVENTTRACK_...\` setting per row, ` +
                `three cells): ${lines[i]}`);
            continue;
        }
        rows.push({ name: m[1], default: cells[1].replace(/`/g, ''), line: i + 1 });
    }
    if (rows.length === 0) problems.push(`${readmeFile}: the settings table has no rows`);
    return { rows, problems };
}

const settings = helpSettings();
const { rows, problems: failures } = readmeRows();
const seen = new Map();
for (const r of rows) {
    const s = settings.get(r.name);
    if (seen.has(r.name)) failures.push(`README.md:${r.line}: ${r.name} already has a row (line ${seen.get(r.name)})`);
    seen.set(r.name, r.line);
    if (!s) {
        failures.push(`README.md:${r.line}: ${r.name} is not a setting of \`eventtrack --help\``);
    } else if (s.required && !/required/.test(r.default)) {
        failures.push(`README.md:${r.line}: ${r.name}: --help says it is required; the table's default says "${r.default}"`);
    } else if (s.default !== null && !(r.default === s.default || r.default.startsWith(s.default + ' '))) {
        failures.push(`README.md:${r.line}: ${r.name}: default "${r.default}" in the table, "${s.default}" in --help`);
    }
}
for (const [name, s] of settings)
    if (!seen.has(name)) failures.push(`README.md: no row for ${name} (--${s.flag} in \`eventtrack --help\`)`);

if (failures.length) {
    for (const f of failures) console.error(f);
    console.error(`${failures.length} problem(s): the README settings table and \`eventtrack --help\` disagree`);
    process.exit(1);
}
console.log(`README.md's settings table matches \`eventtrack --help\` (${settings.size} settings)`);
