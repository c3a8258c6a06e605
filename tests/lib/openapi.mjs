// tests/lib/openapi.mjs — docs/openapi.yaml as data: its operations, and a validator of live responses against
// the responses it documents.
//
// Schemas are checked with Ajv in the OpenAPI 3.1 dialect: JSON Schema draft 2020-12 (Ajv2020), with formats
// asserted (ajv-formats: date-time, uri-reference, ...) and the OpenAPI base vocabulary's annotation keywords
// (discriminator, xml, externalDocs, example) known, so that strict mode still refuses any other unknown keyword
// (a typo such as `minLenght` fails the check instead of being ignored). The whole document is registered as one
// schema resource, so every `$ref: '#/components/schemas/...'` resolves exactly as the document means it.
import fs from 'node:fs';
import path from 'node:path';
import Ajv2020 from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import YAML from 'yaml';
import { ROOT } from './service.mjs';

export const OPENAPI_FILE = path.join(ROOT, 'docs/openapi.yaml');
export const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'];
const DOC_ID = 'https://eventtrack.invalid/openapi.yaml';
const OAS_DIALECT = 'https://spec.openapis.org/oas/3.1/dialect/base';

export function loadOpenApi(file = OPENAPI_FILE) {
    const doc = YAML.parse(fs.readFileSync(file, 'utf8'));
    if (!/^3\.1\./.test(String(doc.openapi))) throw new Error(`${file}: openapi is ${doc.openapi}, not 3.1.x`);
    if (doc.jsonSchemaDialect && doc.jsonSchemaDialect !== OAS_DIALECT)
        throw new Error(`${file}: jsonSchemaDialect ${doc.jsonSchemaDialect} is not the OpenAPI 3.1 base dialect`);
    return doc;
}

// Every documented operation: { method (upper case), path, op, pointer }.
export function operations(doc) {
    const out = [];
    for (const [p, item] of Object.entries(doc.paths || {}))
        for (const m of METHODS)
            if (item[m]) out.push({ method: m.toUpperCase(), path: p, op: item[m], item, pointer: ptr(['paths', p, m]) });
    return out;
}

const esc = (s) => String(s).replace(/~/g, '~0').replace(/\//g, '~1');
export const ptr = (parts) => '#/' + parts.map(esc).join('/');

function deref(doc, node, pointer) {
    // Follows an OpenAPI Reference Object ($ref to '#/...') to the object and its pointer.
    let seen = 0;
    while (node && node.$ref) {
        if (!node.$ref.startsWith('#/') || ++seen > 10) throw new Error(`unsupported $ref ${node.$ref}`);
        pointer = node.$ref;
        node = node.$ref.slice(2).split('/').map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'))
            .reduce((o, k) => (o === undefined ? undefined : o[k]), doc);
        if (node === undefined) throw new Error(`dangling $ref ${pointer}`);
    }
    return { node, pointer };
}

export class ResponseValidator {
    constructor(doc) {
        this.doc = doc;
        this.ajv = new Ajv2020({ strict: true, strictTypes: true, allErrors: true, validateFormats: true });
        addFormats(this.ajv);
        // OpenAPI 3.1 base vocabulary: annotations only.
        this.ajv.addVocabulary(['discriminator', 'xml', 'externalDocs', 'example']);
        // The document's other top-level members are not schema keywords; known, so strict mode accepts the
        // document as the resource the $refs point into.
        this.ajv.addVocabulary(['openapi', 'info', 'jsonSchemaDialect', 'servers', 'paths', 'webhooks',
            'components', 'security', 'tags']);
        this.ajv.addSchema({ ...doc, $id: DOC_ID });
        this.compiled = new Map();
    }

    schemaValidator(pointer) {
        if (!this.compiled.has(pointer)) this.compiled.set(pointer, this.ajv.compile({ $ref: DOC_ID + pointer }));
        return this.compiled.get(pointer);
    }

    // The documented response for (operation, status): { response, pointer } or null. Operation-level codes
    // first, then ranges ('4XX'), then 'default'.
    documentedResponse(opInfo, status) {
        const responses = opInfo.op.responses || {};
        for (const code of [String(status), `${String(status)[0]}XX`, 'default'])
            if (responses[code]) {
                const { node, pointer } = deref(this.doc, responses[code], `${opInfo.pointer}/responses/${code}`);
                return { response: node, pointer };
            }
        return null;
    }

    componentResponse(name) {
        const { node, pointer } = deref(this.doc, { $ref: `#/components/responses/${name}` });
        return { response: node, pointer };
    }

    // Checks one live response against a documented response; returns a list of problems (empty when it
    // conforms). res: { status, headers (lower-case), text, json }.
    check(documented, res) {
        const problems = [];
        const { response, pointer } = documented;
        // Headers: a documented header with `required: true` must be there; any documented header that is
        // there must match its schema.
        for (const [name, h0] of Object.entries(response.headers || {})) {
            if (name.toLowerCase() === 'content-type') continue;     // ignored by OpenAPI
            const { node: h, pointer: hp } = deref(this.doc, h0, `${pointer}/headers/${esc(name)}`);
            const value = res.headers[name.toLowerCase()];
            if (value === undefined) {
                if (h.required) problems.push(`header ${name} is missing (required by ${hp})`);
                continue;
            }
            if (h.schema) {
                const schemaPtr = h0.$ref ? `${h0.$ref}/schema` : `${hp}/schema`;
                const v = this.schemaValidator(schemaPtr);
                const t = deref(this.doc, h.schema).node.type;
                const typed = t === 'integer' || t === 'number' ? Number(value) : value;
                if (!v(typed)) problems.push(`header ${name}: ${JSON.stringify(value)} ${ajvText(v.errors)} (${schemaPtr})`);
            }
        }
        // Body and Content-Type.
        const content = response.content || {};
        const mediaTypes = Object.keys(content);
        const ctHeader = res.headers['content-type'];
        if (mediaTypes.length === 0) {
            if (res.text.length) problems.push(`a body of ${res.text.length} bytes, but ${pointer} documents none`);
            return problems;
        }
        if (!ctHeader) {
            problems.push(`no Content-Type, documented: ${mediaTypes.join(', ')} (${pointer})`);
            return problems;
        }
        const mt = ctHeader.split(';')[0].trim().toLowerCase();
        const key = mediaTypes.find((k) => k.toLowerCase() === mt) ||
            mediaTypes.find((k) => k.endsWith('/*') && mt.startsWith(k.slice(0, -1)));
        if (!key) {
            problems.push(`Content-Type ${ctHeader} is not documented (${pointer}: ${mediaTypes.join(', ')})`);
            return problems;
        }
        const media = content[key];
        if (!media.schema) return problems;
        const schemaPtr = `${pointer}/content/${esc(key)}/schema`;
        let value = res.text;
        if (/^application\/(.+\+)?json$/.test(mt)) {
            if (res.json === undefined) {
                problems.push(`the ${mt} body is not JSON: ${res.text.slice(0, 120)}`);
                return problems;
            }
            value = res.json;
        }
        const v = this.schemaValidator(schemaPtr);
        if (!v(value)) problems.push(`body ${ajvText(v.errors)} (schema ${schemaPtr})`);
        return problems;
    }
}

export function ajvText(errors) {
    return (errors || []).slice(0, 6).map((e) => {
        const where = e.instancePath || '(root)';
        const extra = e.params && e.params.additionalProperty ? ` "${e.params.additionalProperty}"`
            : e.params && e.params.allowedValues ? ` ${JSON.stringify(e.params.allowedValues)}`
                : e.params && e.params.missingProperty ? '' : '';
        return `${where} ${e.message}${extra}`;
    }).join('; ');
}
