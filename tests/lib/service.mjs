// tests/lib/service.mjs — start the real `eventtrack serve` for a Node check, and speak HTTP to it.
//
// Like the C integration harness (tests/integration/harness.h), a check runs the built binary on port 0 against
// the test stores and talks to it only over HTTP. Everything comes from the environment scripts/test exports:
//   ET_BINARY                 the binary (default build-test/eventtrack)
//   EVENTTRACK_DATABASE_URL   the test database (eventtrack_test; already migrated by scripts/test)
//   EVENTTRACK_REDIS_URL      the test Redis db (1)
//   EVENTTRACK_ADMIN_KEY      the admin key the service is started with (required)
//   ET_CHECK_OUT              where logs and screenshots go (default build-test/checks)
// The service's stderr goes to <ET_CHECK_OUT>/<name>.service.log.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

export function outDir(sub = '') {
    const dir = path.resolve(ROOT, process.env.ET_CHECK_OUT || 'build-test/checks', sub);
    fs.mkdirSync(dir, { recursive: true });
    return dir;
}

export function adminKey() {
    const key = process.env.EVENTTRACK_ADMIN_KEY;
    if (!key) throw new Error('EVENTTRACK_ADMIN_KEY is not set (scripts/test exports it)');
    return key;
}

// A fresh id, unique across runs: the stores are shared and never truncated (as in the C suites).
let counter = 0;
const RUN = `${Date.now().toString(36)}${process.pid.toString(36)}`;
export function freshId(tag) {
    counter += 1;
    return `${tag}_${RUN}_${counter}`;
}

// Starts the service; resolves to { base, stop(), exited } once it printed its "listening" line.
export async function startService(name, { env = {}, timeoutMs = 15000 } = {}) {
    const binary = path.resolve(ROOT, process.env.ET_BINARY || 'build-test/eventtrack');
    if (!fs.existsSync(binary)) throw new Error(`${binary} does not exist (build it first: scripts/test)`);
    adminKey();
    const logPath = path.join(outDir(), `${name}.service.log`);
    const log = fs.openSync(logPath, 'w');
    const child = spawn(binary, ['serve', '--port', '0', '--bind', '127.0.0.1'], {
        cwd: ROOT,
        env: { ...process.env, EVENTTRACK_SHUTDOWN_GRACE_SECONDS: '0', ...env },
        stdio: ['ignore', 'pipe', log],
    });
    fs.closeSync(log);
    const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
    const base = await new Promise((resolve, reject) => {
        let out = '';
        const timer = setTimeout(() => {
            child.kill('SIGKILL');
            reject(new Error(`${binary} serve printed no "listening" line within ${timeoutMs} ms; see ${logPath}`));
        }, timeoutMs);
        child.stdout.on('data', (chunk) => {
            out += chunk;
            const m = /eventtrack: listening on (http:\/\/[^\s]+)/.exec(out);
            if (m) {
                clearTimeout(timer);
                resolve(m[1]);
            }
        });
        exited.then(({ code, signal }) => {
            clearTimeout(timer);
            reject(new Error(`${binary} serve exited (${signal || `status ${code}`}) before listening; see ${logPath}`));
        });
    });
    child.stdout.resume();
    let stopped = null;
    return {
        base,
        logPath,
        pid: child.pid,
        exited,
        // SIGTERM, then SIGKILL after 15 s; resolves to the exit { code, signal }.
        stop() {
            if (!stopped) {
                agent.destroy();
                child.kill('SIGTERM');
                const killer = setTimeout(() => child.kill('SIGKILL'), 15000);
                stopped = exited.finally(() => clearTimeout(killer));
            }
            return stopped;
        },
    };
}

const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });

// One HTTP exchange. body: a string (sent as is) or an object (sent as JSON with Content-Type application/json
// unless headers say otherwise); with an `Expect: 100-continue` header the body is sent only on 100 Continue. Resolves to { status, headers (lower-case names), text, json (parsed when the
// body parses as JSON, else undefined) }. Never throws on an HTTP status; throws on a transport failure.
export function request(base, method, urlPath, { headers = {}, body } = {}) {
    const url = new URL(urlPath, base);
    const hdrs = { ...headers };
    let payload;
    if (body !== undefined) {
        payload = typeof body === 'string' ? body : JSON.stringify(body);
        if (typeof body !== 'string' && !Object.keys(hdrs).some((h) => h.toLowerCase() === 'content-type'))
            hdrs['Content-Type'] = 'application/json';
        hdrs['Content-Length'] = Buffer.byteLength(payload);
    }
    return new Promise((resolve, reject) => {
        const req = http.request(url, { method, headers: hdrs, agent }, (res) => {
            const chunks = [];
            res.on('data', (c) => chunks.push(c));
            res.on('end', () => {
                const text = Buffer.concat(chunks).toString('utf8');
                let json;
                try {
                    json = text.length ? JSON.parse(text) : undefined;
                } catch {
                    json = undefined;
                }
                resolve({ status: res.statusCode, headers: res.headers, text, json });
            });
            res.on('error', reject);
        });
        req.setTimeout(15000, () => req.destroy(new Error(`${method} ${urlPath}: no answer within 15 s`)));
        req.on('error', reject);
        if (payload !== undefined && /100-continue/i.test(String(hdrs.Expect || hdrs.expect || ''))) {
            // The body goes out only if the server asks for it; a server that refuses on the head (413)
            // answers without reading it, and no body is left unread for it to reset the connection over.
            req.on('continue', () => req.end(payload));
            req.flushHeaders();
            return;
        }
        if (payload !== undefined) req.write(payload);
        req.end();
    });
}

export const bearer = (key) => ({ Authorization: `Bearer ${key}` });
