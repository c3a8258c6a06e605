// tests/docs/k8s-manifests.mjs — deploy/k8s/*.yaml are valid Kubernetes objects, and they agree with
// the service and with each other.
//
// Schema: every document is validated against the Kubernetes OpenAPI schema of its apiVersion/kind by
// kubernetes-models (pinned in package.json; its validate() is a compiled JSON-schema validator of
// the upstream definitions). A kind the package does not know is a failure, not a skip. Those schemas
// do not refuse unknown fields (Kubernetes' own do not either), so a misspelled field would pass
// them: the fields this project relies on are therefore checked by name below, and a typo makes one
// of those checks fail. The validator is proven able to fail: a deliberately broken Deployment must
// be rejected, or this check fails.
// Agreement: readiness on /readyz and liveness on /healthz of the named container port; the preStop
// pause + shutdown grace + drain fit in terminationGracePeriodSeconds; the Service and the
// PodDisruptionBudget select the Deployment's pods; every EVENTTRACK_* setting of the ConfigMap and
// the Secret is a setting `eventtrack --help` lists (when ET_BINARY is set); the migrate Job runs
// `migrate`.
// Run from anywhere: node tests/docs/k8s-manifests.mjs
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { parseAllDocuments } from 'yaml';
import { ROOT } from '../lib/service.mjs';

const DIR = path.join(ROOT, 'deploy', 'k8s');
const failures = [];
const fail = (where, msg) => failures.push(`${where}: ${msg}`);

// apiVersion "apps/v1" -> module "kubernetes-models/apps/v1/<Kind>"; core "v1" -> "kubernetes-models/v1/<Kind>".
async function validator(apiVersion, kind) {
    if (!/^[a-z0-9.]+(\/v[0-9a-z]+)?$/.test(apiVersion) || !/^[A-Z][A-Za-z]+$/.test(kind)) return null;
    try {
        const mod = await import(`kubernetes-models/${apiVersion}/${kind}`);
        return mod[kind] || null;
    } catch {
        return null;
    }
}

async function schemaErrors(obj) {
    const Model = await validator(obj.apiVersion, obj.kind);
    if (!Model) return [`unknown apiVersion/kind ${obj.apiVersion}/${obj.kind}`];
    try {
        new Model(obj).validate();
        return [];
    } catch (e) {
        return [String(e.message || e).split('\n').slice(0, 6).join(' | ')];
    }
}

const objects = [];
const files = fs.readdirSync(DIR).filter((f) => f.endsWith('.yaml')).sort();
if (files.length === 0) fail('deploy/k8s', 'no manifest found');
for (const f of files) {
    const docs = parseAllDocuments(fs.readFileSync(path.join(DIR, f), 'utf8'));
    for (const [i, d] of docs.entries()) {
        const where = `deploy/k8s/${f}#${i}`;
        if (d.errors.length) { fail(where, `YAML: ${d.errors[0].message}`); continue; }
        const obj = d.toJS();
        if (!obj) continue;
        for (const e of await schemaErrors(obj)) fail(where, e);
        objects.push({ where, obj });
    }
}

const one = (kind) => {
    const all = objects.filter((o) => o.obj.kind === kind);
    if (all.length !== 1) fail('deploy/k8s', `expected one ${kind}, found ${all.length}`);
    return all[0] || { where: kind, obj: {} };
};
const dep = one('Deployment'), svc = one('Service'), pdb = one('PodDisruptionBudget'), job = one('Job');
const cm = one('ConfigMap'), sec = one('Secret');

// The validator must be able to fail.
{
    const broken = structuredClone(dep.obj);
    broken.spec.replicas = 'three';
    if ((await schemaErrors(broken)).length === 0) fail('k8s-manifests', 'a Deployment with replicas: "three" passed the schema check');
}

const matches = (sel, labels) => sel && Object.entries(sel).every(([k, v]) => labels?.[k] === v);
const podLabels = dep.obj.spec?.template?.metadata?.labels;
const c = dep.obj.spec?.template?.spec?.containers?.[0] || {};
const port = (c.ports || []).find((p) => p.name === 'http');
const env = { ...(cm.obj.data || {}) };
const probe = (p, want, what) => {
    const g = p?.httpGet;
    if (!g || g.path !== want || g.port !== 'http') fail(dep.where, `${what} must be httpGet ${want} on port "http" (got ${JSON.stringify(g)})`);
};
if (!port || String(port.containerPort) !== String(env.EVENTTRACK_PORT)) fail(dep.where, `container port "http" must be EVENTTRACK_PORT (${env.EVENTTRACK_PORT})`);
probe(c.readinessProbe, '/readyz', 'readinessProbe');
probe(c.livenessProbe, '/healthz', 'livenessProbe');
const cmd = c.lifecycle?.preStop?.exec?.command || [];
const pause = cmd[0] === 'sleep' ? Number(cmd[1]) : NaN;
const grace = Number(env.EVENTTRACK_SHUTDOWN_GRACE_SECONDS), drain = Number(env.EVENTTRACK_SHUTDOWN_DRAIN_SECONDS);
const tgps = dep.obj.spec?.template?.spec?.terminationGracePeriodSeconds ?? 30;
if (!(pause > 0)) fail(dep.where, 'lifecycle.preStop must pause (exec sleep N) while endpoints are updated');
if (!(grace > 0)) fail(cm.where, 'EVENTTRACK_SHUTDOWN_GRACE_SECONDS must be > 0');
if (!(grace >= (c.readinessProbe?.periodSeconds ?? 10) * (c.readinessProbe?.failureThreshold ?? 3)))
    fail(dep.where, 'the shutdown grace must outlast readinessProbe periodSeconds x failureThreshold');
if (!(pause + grace + drain < tgps)) fail(dep.where, `preStop ${pause} + grace ${grace} + drain ${drain} must be < terminationGracePeriodSeconds ${tgps}`);
if (!matches(dep.obj.spec?.selector?.matchLabels, podLabels)) fail(dep.where, 'selector does not select its own pods');
if (!matches(svc.obj.spec?.selector, podLabels)) fail(svc.where, 'selector does not select the Deployment\'s pods');
if (!matches(pdb.obj.spec?.selector?.matchLabels, podLabels)) fail(pdb.where, 'selector does not select the Deployment\'s pods');
if (pdb.obj.spec?.maxUnavailable === undefined && pdb.obj.spec?.minAvailable === undefined) fail(pdb.where, 'no budget');
if (dep.obj.spec?.strategy?.rollingUpdate?.maxUnavailable !== 0) fail(dep.where, 'rollingUpdate.maxUnavailable must be 0');
const jc = job.obj.spec?.template?.spec?.containers?.[0];
if (!jc || JSON.stringify(jc.args) !== '["migrate"]') fail(job.where, 'the migrate Job must run `eventtrack migrate`');
if (!(c.envFrom || []).some((e) => e.configMapRef?.name === cm.obj.metadata?.name)) fail(dep.where, 'envFrom lacks the ConfigMap');
if (!(c.envFrom || []).some((e) => e.secretRef?.name === sec.obj.metadata?.name)) fail(dep.where, 'envFrom lacks the Secret');

// Every EVENTTRACK_* name is a real setting (the binary's --help lists them as --kebab-case flags).
if (process.env.ET_BINARY) {
    const help = execFileSync(process.env.ET_BINARY, ['--help'], { encoding: 'utf8' });
    const known = new Set([...help.matchAll(/^\s+--([a-z-]+)\s/gm)].map((m) => 'EVENTTRACK_' + m[1].toUpperCase().replaceAll('-', '_')));
    for (const [where, obj] of [[cm.where, cm.obj.data], [sec.where, sec.obj.stringData]])
        for (const k of Object.keys(obj || {}))
            if (!known.has(k)) fail(where, `${k} is not a setting of eventtrack --help`);
}

if (failures.length) {
    console.error(failures.map((f) => `k8s-manifests: ${f}`).join('\n'));
    process.exit(1);
}
console.log(`k8s-manifests: ${objects.length} objects of ${files.length} files valid against the Kubernetes schemas; probes, shutdown timing and selectors agree`);
