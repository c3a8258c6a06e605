// tests/docs/readme-links.mjs — every relative link of README.md resolves to a file inside the repository.
//
// Why: a clone is all a newcomer has. A link to ../shared/... or to a file that was moved reads fine in review
// and is dead in every checkout; web links (http:, https:, mailto:) and in-page anchors are not checked.
// Both [text](target) links and ![alt](image) images count, and so does a path quoted in backticks that climbs
// out of the checkout (`../something`), the way ../shared/limits.md was once cited. A README with no relative link at all is a failure,
// so that a parser broken by a format change cannot pass by finding nothing.
// Run from anywhere: node tests/docs/readme-links.mjs [README.md]
import fs from 'node:fs';
import path from 'node:path';
import { ROOT } from '../lib/service.mjs';

const readmeFile = path.resolve(process.argv[2] || path.join(ROOT, 'README.md'));
const base = path.dirname(readmeFile);
const failures = [];
let checked = 0;
fs.readFileSync(readmeFile, 'utf8').split('\n').forEach((line, i) => {
    for (const m of line.matchAll(/\]\(([^)\s]+)\)/g)) {
        const target = m[1];
        if (/^[a-z][a-z0-9+.-]*:/i.test(target) || target.startsWith('#')) continue;
        checked++;
        const file = path.resolve(base, target.split('#')[0]);
        const rel = path.relative(ROOT, file);
        if (rel.startsWith('..') || path.isAbsolute(rel))
            failures.push(`README.md:${i + 1}: ${target} points outside the repository`);
        else if (!fs.existsSync(file))
            failures.push(`README.md:${i + 1}: ${target} does not exist`);
    }
    for (const m of line.matchAll(/`(\.\.\/[^`\s]*)`/g))
        failures.push(`README.md:${i + 1}: ${m[1]} is a path outside the repository: cite a file of the repository`);
});
if (checked === 0) failures.push('README.md: no relative link found (is the parser still right?)');
if (failures.length) {
    for (const f of failures) console.error(f);
    process.exit(1);
}
console.log(`README.md: ${checked} relative links, all inside the repository`);
