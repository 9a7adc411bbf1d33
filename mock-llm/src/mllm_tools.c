/*
 * mllm_tools.c - the seeded tool rule and arguments built from a JSON schema
 * (mllm_api.h, mllm_tool_call). Values come from the request's own generator, so a
 * request index gives the same call every time, and the arguments are always JSON the
 * SDKs parse (they are rendered here, never copied from the request).
 */
#include "mllm_api.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

/* Deeper schemas are cut with null: the arguments stay small and the recursion bounded
 * on a connection fiber's stack. */
#define MAX_SCHEMA_DEPTH 8
#define MAX_ARRAY_ITEMS  3

static const cJSON *item(const cJSON *o, const char *k)
{
    return cJSON_IsObject(o) ? cJSON_GetObjectItemCaseSensitive(o, k) : NULL;
}

static int has_str(const cJSON *arr, const char *s)
{
    const cJSON *v;
    const cJSON *arr_list = cJSON_IsArray(arr) ? arr : NULL;
    cJSON_ArrayForEach(v, arr_list)
        if (cJSON_IsString(v) && !strcmp(v->valuestring, s))
            return 1;
    return 0;
}

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
    return "";
}

static double num_or(const cJSON *schema, const char *k, double dflt)
{
    const cJSON *v = item(schema, k);
    return cJSON_IsNumber(v) && isfinite(v->valuedouble) ? v->valuedouble : dflt;
}

static void value(mllm_buf_t *b, const cJSON *schema, mllm_rng_t *rng, int depth)
{
    const cJSON *en = item(schema, "enum"), *cst = item(schema, "const");
    if (cJSON_IsArray(en) && cJSON_GetArraySize(en) > 0)
        cst = cJSON_GetArrayItem(en, (int)(mllm_rng_next(rng) % (uint64_t)cJSON_GetArraySize(en)));
    if (cst) {
        char *s = cJSON_PrintUnformatted(cst);
        mllm_buf_adds(b, s ? s : "null");
        cJSON_free(s);
        return;
    }
    const cJSON *any = item(schema, "anyOf");
    if (!any)
        any = item(schema, "oneOf");
    if (cJSON_IsArray(any) && cJSON_GetArraySize(any) > 0 && depth < MAX_SCHEMA_DEPTH) {
        value(b, cJSON_GetArrayItem(any, 0), rng, depth + 1);
        return;
    }
    const char *t = type_of(schema);
    if (depth >= MAX_SCHEMA_DEPTH) {
        mllm_buf_adds(b, "null");
    } else if (!strcmp(t, "object")) {
        const cJSON *props = item(schema, "properties"), *req = item(schema, "required"), *p;
        int first = 1;
        mllm_buf_add(b, "{", 1);
        const cJSON *props_list = cJSON_IsObject(props) ? props : NULL;
        cJSON_ArrayForEach(p, props_list) {
            /* every required property, and each optional one on a coin flip */
            if (!has_str(req, p->string) && (mllm_rng_next(rng) & 1))
                continue;
            mllm_buf_adds(b, first ? "\"" : ",\"");
            first = 0;
            mllm_buf_json_str(b, p->string, strlen(p->string));
            mllm_buf_adds(b, "\":");
            value(b, p, rng, depth + 1);
        }
        mllm_buf_add(b, "}", 1);
    } else if (!strcmp(t, "array")) {
        int n = (int)num_or(schema, "minItems", 1 + (double)(mllm_rng_next(rng) % 2));
        int max = (int)num_or(schema, "maxItems", MAX_ARRAY_ITEMS);
        if (n > max)
            n = max;
        if (n > MAX_ARRAY_ITEMS)
            n = MAX_ARRAY_ITEMS;
        mllm_buf_add(b, "[", 1);
        for (int i = 0; i < n; i++) {
            if (i)
                mllm_buf_add(b, ",", 1);
            value(b, item(schema, "items"), rng, depth + 1);
        }
        mllm_buf_add(b, "]", 1);
    } else if (!strcmp(t, "integer") || !strcmp(t, "number")) {
        double lo = num_or(schema, "minimum", 0), hi = num_or(schema, "maximum", lo + 100);
        if (hi < lo)
            hi = lo;
        double v = lo + mllm_rng_uniform(rng) * (hi - lo);
        if (!strcmp(t, "integer"))
            mllm_buf_printf(b, "%.0f", floor(v));
        else
            mllm_buf_printf(b, "%.2f", v);
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
    if (cJSON_IsObject(params))
        value(&call->args, params, rng, 0);
    else
        mllm_buf_adds(&call->args, "{}");
    /* the arguments of a function call are an object, whatever the schema says */
    if (call->args.oom || !call->args.len || call->args.p[0] != '{') {
        mllm_buf_free(&call->args);
        mllm_buf_adds(&call->args, "{}");
    }
    return 1;
}
