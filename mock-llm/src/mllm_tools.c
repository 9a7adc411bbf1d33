/*
 * mllm_tools.c - the seeded tool rule and arguments built from a JSON schema
 * (mllm_api.h, mllm_tool_call). Values come from the request's own generator, so a
 * request index gives the same call every time, and the arguments are always JSON the
 * SDKs parse (they are rendered here, never copied from the request).
 *
 * Building runs on the one scheduler thread every stream shares, so its work is
 * bounded, not just its recursion: a schema of arrays nested six deep around an object
 * of 3,000 required properties (111 KiB, well under the body limit) took 34 s to expand
 * before the bounds (3^6 copies of the leaf, `required` scanned once per property). Now
 * every schema node, property and `required` entry looked at is one step, and the
 * arguments' size and the steps have budgets (ARGS_*): past the soft one, optional
 * properties are left out and arrays get one item; past the hard one, objects and
 * arrays close and values not yet begun are null. Real tool arguments are far below
 * the soft budget, so the bounds change nothing for them.
 */
#include "mllm_api.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Deeper schemas are cut with null: the arguments stay small and the recursion bounded
 * on a connection fiber's stack. Each $ref followed counts as one level, so a schema
 * that refers to itself ends in null here too. */
#define MAX_SCHEMA_DEPTH 8
#define MAX_ARRAY_ITEMS  3
/* The work bounds (see the top of the file): bytes of arguments, and steps. 200,000
 * steps take 1-3 ms here (an enum of 120,000 values inside arrays nested six deep: 1.0
 * ms; objects of 20,000 optional properties the same way: 2.6 ms); 16 KiB of arguments
 * stream as 4,096 tokens. */
#define ARGS_SOFT_BYTES  4096u
#define ARGS_HARD_BYTES  16384u
#define ARGS_MAX_STEPS   200000L
/* `required` lists longer than this are looked up through a hash set, built once per
 * object, instead of a scan per property. */
#define REQ_LINEAR_MAX   8

/* 2^53: every integer up to it is exact in a double and prints in 16 digits. */
#define NUM_BOUND 9007199254740992.0

typedef struct build {
    mllm_buf_t  *b;
    const cJSON *root;  /* the parameters schema: where "#..." references point */
    mllm_rng_t  *rng;
    long         steps;
} build_t;

/* Past the soft budget: only what the schema requires, arrays of one item. */
static int lean(const build_t *x)
{
    return x->b->len > ARGS_SOFT_BYTES || x->steps > ARGS_MAX_STEPS / 2;
}

/* Past the hard budget: nothing more is added; values not yet begun are null. */
static int spent(const build_t *x)
{
    return x->b->oom || x->b->len > ARGS_HARD_BYTES || x->steps > ARGS_MAX_STEPS;
}

static const cJSON *item(const cJSON *o, const char *k)
{
    return cJSON_IsObject(o) ? cJSON_GetObjectItemCaseSensitive(o, k) : NULL;
}

/* ---- JSON references ---- */

/* The node a local JSON reference names inside root: "#" is root, "#/a/b/0" walks
 * object members and array indexes (RFC 6901: ~1 is '/', ~0 is '~'; %XX as in a URI
 * fragment). pydantic writes "#/$defs/Name", zod-to-json-schema "#/definitions/Name"
 * and paths like "#/properties/a". NULL for anything else (another document, an
 * anchor, a path that does not exist). */
static const cJSON *pointer(const cJSON *root, const char *ref, build_t *x)
{
    if (ref[0] != '#')
        return NULL;
    const char *p = ref + 1;
    const cJSON *cur = root;
    char tok[256];
    while (*p) {
        if (*p != '/')
            return NULL;
        p++;
        size_t n = 0;
        while (*p && *p != '/') {
            char c = *p++;
            if (c == '~' && (*p == '0' || *p == '1')) {
                c = *p++ == '0' ? '~' : '/';
            } else if (c == '%' && p[0] && p[1]) {
                char hex[3] = { p[0], p[1], 0 };
                char *end;
                long v = strtol(hex, &end, 16);
                if (*end || v <= 0)
                    return NULL;
                c = (char)v;
                p += 2;
            }
            if (n + 1 >= sizeof tok)
                return NULL;
            tok[n++] = c;
        }
        tok[n] = 0;
        x->steps++;
        if (cJSON_IsObject(cur)) {
            cur = cJSON_GetObjectItemCaseSensitive(cur, tok);
        } else if (cJSON_IsArray(cur) && n > 0 && n < 10 && strspn(tok, "0123456789") == n) {
            cur = cJSON_GetArrayItem(cur, atoi(tok));
        } else {
            return NULL;
        }
        if (!cur)
            return NULL;
    }
    return cur;
}

/* Follows $ref while the depth allows, one level per hop. */
static const cJSON *deref(build_t *x, const cJSON *s, int *depth)
{
    const cJSON *r;
    while (*depth < MAX_SCHEMA_DEPTH && cJSON_IsString(r = item(s, "$ref"))) {
        const cJSON *t = pointer(x->root, r->valuestring, x);
        if (!t)
            break;
        s = t;
        (*depth)++;
    }
    return s;
}

/* ---- `required`, looked at once per object ---- */

typedef struct reqset {
    const cJSON  *list;   /* short lists: scanned */
    const char  **slot;   /* long ones: open addressing on the names */
    size_t        mask;
} reqset_t;

static size_t name_hash(const char *s)
{
    size_t h = 1469598103934665603u; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211u;
    return h;
}

/* Returns 0, or -1 when out of memory (the buffer is then marked oom). */
static int reqset_init(reqset_t *rs, const cJSON *req, build_t *x)
{
    memset(rs, 0, sizeof *rs);
    if (!cJSON_IsArray(req))
        return 0;
    size_t n = 0;
    const cJSON *v;
    cJSON_ArrayForEach(v, req)
        n++;
    x->steps += (long)n;
    if (n <= REQ_LINEAR_MAX || spent(x)) {
        rs->list = req;
        return 0;
    }
    size_t cap = 16;
    while (cap < 2 * n)
        cap *= 2;
    rs->slot = calloc(cap, sizeof *rs->slot);
    if (!rs->slot) {
        x->b->oom = 1;
        return -1;
    }
    rs->mask = cap - 1;
    cJSON_ArrayForEach(v, req) {
        if (!cJSON_IsString(v))
            continue;
        size_t i = name_hash(v->valuestring) & rs->mask;
        while (rs->slot[i] && strcmp(rs->slot[i], v->valuestring))
            i = (i + 1) & rs->mask;
        rs->slot[i] = v->valuestring;
    }
    return 0;
}

static int reqset_has(const reqset_t *rs, const char *name)
{
    if (rs->slot) {
        size_t i = name_hash(name) & rs->mask;
        for (; rs->slot[i]; i = (i + 1) & rs->mask)
            if (!strcmp(rs->slot[i], name))
                return 1;
        return 0;
    }
    const cJSON *v;
    cJSON_ArrayForEach(v, rs->list)
        if (cJSON_IsString(v) && !strcmp(v->valuestring, name))
            return 1;
    return 0;
}

/* ---- values ---- */

/* The schema's type: a string, or the first non-"null" of a list; "" when absent. */
static const char *type_of(const cJSON *schema)
{
    const cJSON *t = item(schema, "type");
    if (cJSON_IsString(t))
        return t->valuestring;
    const cJSON *v;
    const cJSON *t_list = cJSON_IsArray(t) ? t : NULL;
    cJSON_ArrayForEach(v, t_list)
        if (cJSON_IsString(v) && strcmp(v->valuestring, "null"))
            return v->valuestring;
    if (item(schema, "properties"))
        return "object";
    if (item(schema, "items"))
        return "array";
    return "";
}

static double num_or(const cJSON *schema, const char *k, double dflt)
{
    const cJSON *v = item(schema, k);
    return cJSON_IsNumber(v) && isfinite(v->valuedouble) ? v->valuedouble : dflt;
}

/* Bounds of a drawn number: within +-2^53, so lo + u * (hi - lo) stays finite and
 * prints as a JSON number (a range of +-DBL_MAX made "inf" before). */
static double clamp_num(double v)
{
    return v < -NUM_BOUND ? -NUM_BOUND : v > NUM_BOUND ? NUM_BOUND : v;
}

/* The schema of an array's item i: prefixItems or a tuple-form items first. */
static const cJSON *item_schema(const cJSON *schema, int i)
{
    const cJSON *pre = item(schema, "prefixItems"), *it = item(schema, "items");
    if (cJSON_IsArray(pre) && i < cJSON_GetArraySize(pre))
        return cJSON_GetArrayItem(pre, i);
    if (cJSON_IsArray(it)) {
        int n = cJSON_GetArraySize(it);
        return n ? cJSON_GetArrayItem(it, i < n ? i : n - 1) : NULL;
    }
    return it;
}

static void value(build_t *x, const cJSON *schema, int depth)
{
    mllm_buf_t *b = x->b;
    x->steps++;
    schema = deref(x, schema, &depth);
    if (depth >= MAX_SCHEMA_DEPTH || spent(x)) {
        mllm_buf_adds(b, "null");
        return;
    }
    const cJSON *en = item(schema, "enum"), *cst = item(schema, "const");
    if (cJSON_IsArray(en)) {
        int n = cJSON_GetArraySize(en);
        x->steps += n;
        if (n > 0)
            cst = cJSON_GetArrayItem(en, (int)(mllm_rng_next(x->rng) % (uint64_t)n));
    }
    if (cst) {
        char *s = cJSON_PrintUnformatted(cst);
        mllm_buf_adds(b, s ? s : "null");
        cJSON_free(s);
        return;
    }
    const cJSON *any = item(schema, "anyOf");
    if (!any)
        any = item(schema, "oneOf");
    if (!any)
        any = item(schema, "allOf"); /* pydantic v1 wraps a described $ref in one */
    if (cJSON_IsArray(any) && cJSON_GetArraySize(any) > 0) {
        value(x, cJSON_GetArrayItem(any, 0), depth + 1);
        return;
    }
    const char *t = type_of(schema);
    mllm_rng_t *rng = x->rng;
    if (!strcmp(t, "object")) {
        const cJSON *props = item(schema, "properties"), *p;
        reqset_t req;
        if (reqset_init(&req, item(schema, "required"), x))
            return;
        int first = 1;
        mllm_buf_add(b, "{", 1);
        const cJSON *props_list = cJSON_IsObject(props) ? props : NULL;
        cJSON_ArrayForEach(p, props_list) {
            x->steps++;
            if (spent(x))
                break;
            /* every required property, and each optional one on a coin flip */
            if (!reqset_has(&req, p->string) && (lean(x) || (mllm_rng_next(rng) & 1)))
                continue;
            mllm_buf_adds(b, first ? "\"" : ",\"");
            first = 0;
            mllm_buf_json_str(b, p->string, strlen(p->string));
            mllm_buf_adds(b, "\":");
            value(x, p, depth + 1);
        }
        free(req.slot);
        mllm_buf_add(b, "}", 1);
    } else if (!strcmp(t, "array")) {
        /* Clamped as doubles: minItems 1e30 must not reach an int conversion. */
        double n = num_or(schema, "minItems", 1 + (double)(mllm_rng_next(rng) % 2));
        double max = num_or(schema, "maxItems", MAX_ARRAY_ITEMS);
        if (n > max)
            n = max;
        if (n > MAX_ARRAY_ITEMS)
            n = MAX_ARRAY_ITEMS;
        mllm_buf_add(b, "[", 1);
        for (int i = 0; i < (int)(n > 0 ? n : 0); i++) {
            if (i && (lean(x) || spent(x)))
                break;
            if (i)
                mllm_buf_add(b, ",", 1);
            value(x, item_schema(schema, i), depth + 1);
        }
        mllm_buf_add(b, "]", 1);
    } else if (!strcmp(t, "integer") || !strcmp(t, "number")) {
        double lo = clamp_num(num_or(schema, "minimum", 0));
        double hi = clamp_num(num_or(schema, "maximum", lo + 100));
        if (hi < lo)
            hi = lo;
        double v = lo + mllm_rng_uniform(rng) * (hi - lo);
        if (!strcmp(t, "integer")) {
            v = floor(v);
            if (v < ceil(lo) && ceil(lo) <= hi)
                v = ceil(lo);
            mllm_buf_printf(b, "%.0f", v);
        } else {
            /* two decimals, unless rounding to them leaves the range */
            double r = round(v * 100) / 100;
            if (r >= lo && r <= hi)
                mllm_buf_printf(b, "%.2f", r);
            else
                mllm_buf_printf(b, "%.17g", v);
        }
    } else if (!strcmp(t, "boolean")) {
        mllm_buf_adds(b, (mllm_rng_next(rng) & 1) ? "true" : "false");
    } else if (!strcmp(t, "null")) {
        mllm_buf_adds(b, "null");
    } else if (!strcmp(t, "string")) {
        /* one to three words of the mock's vocabulary */
        int n = 1 + (int)(mllm_rng_next(rng) % 3);
        mllm_buf_add(b, "\"", 1);
        for (int i = 0; i < n; i++) {
            const char *w = mllm_token_text(rng, i == 0);
            if (w[0] == ',' || w[0] == '.') /* punctuation: skip it, keep the words */
                w = "mock";
            mllm_buf_json_str(b, w, strlen(w));
        }
        mllm_buf_add(b, "\"", 1);
    } else {
        mllm_buf_adds(b, "\"mock\"");
    }
}

int mllm_tool_call(const mllm_gen_req_t *r, mllm_rng_t *rng, double rate, uint64_t id_num,
                   mllm_tool_call_t *call)
{
    memset(call, 0, sizeof *call);
    if (!r->tools || r->ntools == 0 || r->tool_choice == MLLM_TOOLS_NONE)
        return 0;
    int pick;
    if (r->tool_choice == MLLM_TOOLS_NAMED) {
        pick = r->named_tool;
    } else {
        if (r->tool_choice == MLLM_TOOLS_AUTO &&
            (r->after_tool_result || !(mllm_rng_uniform(rng) < rate)))
            return 0;
        pick = (int)(mllm_rng_next(rng) % (uint64_t)r->ntools);
    }
    const cJSON *tool = cJSON_GetArrayItem(r->tools, pick);
    const cJSON *name = item(tool, "name");
    snprintf(call->name, sizeof call->name, "%s", cJSON_IsString(name) ? name->valuestring : "");
    snprintf(call->id, sizeof call->id, "call_mock%016" PRIx64, id_num);
    const cJSON *params = item(tool, "parameters");
    if (cJSON_IsObject(params)) {
        build_t x = { .b = &call->args, .root = params, .rng = rng };
        value(&x, params, 0);
    } else {
        mllm_buf_adds(&call->args, "{}");
    }
    /* the arguments of a function call are an object, whatever the schema says */
    if (call->args.oom || !call->args.len || call->args.p[0] != '{') {
        mllm_buf_free(&call->args);
        mllm_buf_adds(&call->args, "{}");
    }
    return 1;
}

int mllm_json_answer(const mllm_gen_req_t *r, mllm_rng_t *rng, mllm_buf_t *out)
{
    memset(out, 0, sizeof *out);
    if (r->json_mode == MLLM_JSON_NONE)
        return 0;
    if (r->json_mode == MLLM_JSON_SCHEMA && cJSON_IsObject(r->json_schema)) {
        build_t x = { .b = out, .root = r->json_schema, .rng = rng };
        value(&x, r->json_schema, 0);
    } else {
        /* json_object (or a json_schema without a schema): one string member, its
         * words by the schema rule for a string */
        cJSON *str = cJSON_CreateObject();
        build_t x = { .b = out, .root = str, .rng = rng };
        mllm_buf_adds(out, "{\"answer\":");
        if (str && cJSON_AddStringToObject(str, "type", "string"))
            value(&x, str, 0);
        else
            mllm_buf_adds(out, "\"mock\"");
        mllm_buf_adds(out, "}");
        cJSON_Delete(str);
    }
    if (out->oom || !out->len || out->p[0] != '{') {
        mllm_buf_free(out);
        mllm_buf_adds(out, "{}");
    }
    return 1;
}
