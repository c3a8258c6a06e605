// tests/docs/architecture-names.mjs — docs/architecture.md and its diagram name only files and functions that exist.
//
// The architecture page follows requests through the code by file and function name; a rename or a removal
// would leave it describing code that is gone. This check reads docs/architecture.md (names in `backticks`) and
// docs/diagrams/*.dot (names in node labels) and requires:
//   - every path-like name ending in .c or .h (`http/server.c`, `store/registrations.c`, `worker.c`) to be a
//     file under service/src/, and every other repository path it names (`scripts/check-sql`,
//     `schema/0004_credit_buckets.sql`, `web/widget/widget.js`, `docs/adr/...`) to exist;
//   - every name written as a call, `name()`, to be a function defined in service/src (a line that starts a
//     definition: "<type> name(" at the start of a line, or "name(" after a return type on the line before).
// Prints every dangling name with where it was found; exit status 1 if there is one.
import fs from 'node:fs';
import path from 'node:path';
import { ROOT } from '../lib/service.mjs';

const SRC = path.join(ROOT, 'service/src');
const docs = [path.join(ROOT, 'docs/architecture.md'),
    ...fs.readdirSync(path.join(ROOT, 'docs/diagrams')).filter((f) => f.endsWith('.dot')).map((f) => path.join(ROOT, 'docs/diagrams', f))];

const sources = [];
(function walk(dir) {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
        const p = path.join(dir, e.name);
        if (e.isDirectory()) walk(p);
        else if (/\.[ch]$/.test(e.name)) sources.push(p);
    }
})(SRC);
const defined = new Set();
for (const f of sources) {
    const lines = fs.readFileSync(f, 'utf8').split('\n');
    lines.forEach((l, i) => {
        // "static enum et_err name(" / "void name(" / "struct pg *name(" at the start of a line ...
        let m = /^(?:static\s+|inline\s+|const\s+)*[A-Za-z_][\w\s*]*?[\s*]([A-Za-z_]\w*)\s*\(/.exec(l);
        if (m && !/^\s/.test(l) && !/;\s*$/.test(l)) defined.add(m[1]);
        // ... or "name(" at the start of a line after a return type alone on the line before
        m = /^([A-Za-z_]\w*)\s*\(/.exec(l);
        if (m && i > 0 && /^[A-Za-z_][\w\s*]*$/.test(lines[i - 1])) defined.add(m[1]);
    });
}

const failures = [];
let names = 0;
for (const doc of docs) {
    const text = fs.readFileSync(doc, 'utf8');
    const rel = path.relative(ROOT, doc);
    const tokens = doc.endsWith('.md')
        ? [...text.matchAll(/`([^`\n]+)`/g)].map((m) => m[1])
        : [...text.matchAll(/label="([^"]*)"/g)].flatMap((m) => m[1].split(/\\n|\s+/));
    const lineOf = (tok) => text.slice(0, text.indexOf(tok)).split('\n').length;
    for (const raw of tokens) {
        for (const tok of raw.split(/\s+/)) {
            const t = tok.replace(/[,;:]+$/, '');
            let m;
            if ((m = /^([a-z_][a-z0-9_]*)\(\)$/.exec(t))) {
                names += 1;
                if (!defined.has(m[1])) failures.push(`${rel}:${lineOf(t)}: ${t} is not a function defined in service/src`);
            } else if ((m = /^([a-z_]+\/)?[a-z_][a-z0-9_]*\.[ch]$/.exec(t))) {
                names += 1;
                if (!fs.existsSync(path.join(SRC, t))) failures.push(`${rel}:${lineOf(t)}: ${t} is not a file under service/src`);
            } else if ((m = /^(schema|scripts|docs|web|tests|config|deploy)\/[\w./-]*[\w-]$/.exec(t)) && !t.includes('<')) {
                names += 1;
                if (!fs.existsSync(path.join(ROOT, t))) failures.push(`${rel}:${lineOf(t)}: ${t} does not exist in the repository`);
            }
        }
    }
}

const unique = [...new Set(failures)];
failures.length = 0;
failures.push(...unique);
if (names < 20) failures.push(`only ${names} names found in ${docs.map((d) => path.relative(ROOT, d)).join(', ')}: is the check still reading them?`);
if (failures.length) {
    console.error(`architecture-names: ${failures.length} name(s) in the architecture docs match nothing in the code:`);
    for (const f of failures) console.error(`  - ${f}`);
    process.exit(1);
}
console.log(`architecture-names: ${names} file and function names in ${docs.map((d) => path.relative(ROOT, d)).join(', ')} all exist`);
