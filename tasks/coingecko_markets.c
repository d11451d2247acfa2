/* coingecko_markets: CoinGecko's coin catalog, the top N by market cap (GET /api/v3/coins/markets, paged), into the assets registry. */
#include <dagrun/task.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const dr_param params[] = {
    { "source", DR_T_STRING, "coingecko", false,
      "the config.json source to ask, also the assets.source column" },
    { "vs_currency", DR_T_STRING, "usd", false, "the currency prices are quoted in" },
    { "top", DR_T_INT, "100", false, "how many coins, by market cap" },
    { "per_page", DR_T_INT, "250", false, "coins per request (1-250)" },
    { NULL, 0, NULL, false, NULL }
};

/* Coins are keyed by CoinGecko's id (bitcoin, usd-coin). */
static const char upsert_sql[] =
    "INSERT INTO assets AS a (source, symbol, name, asset_type, currency, active) "
    "SELECT $1, id, name, 'crypto', $4, true FROM unnest($2::text[], $3::text[]) AS u(id, name) "
    "ON CONFLICT (source, symbol) DO UPDATE SET name = EXCLUDED.name, currency = EXCLUDED.currency, "
    "active = true, updated_at = now()";

/* Appends one page's coins (id, name) to the growing arrays ids/names. */
static void add_page(dr_ctx *ctx, const json_t *page, json_t *ids, json_t *names)
{
    size_t i;
    const json_t *c;
    json_array_foreach(page, i, c) {
        const char *id = json_string_value(json_object_get(c, "id"));
        const char *name = json_string_value(json_object_get(c, "name"));
        if (!id || !*id) {
            dr_warn(ctx, "coingecko_markets: coin %zu of a page has no id; skipped", i);
            continue;
        }
        json_array_append_new(ids, json_string(id));
        json_array_append_new(names, json_string(name ? name : id));
    }
}

static dr_status markets_run(dr_ctx *ctx, void *state)
{
    (void)state;
    const char *source = dr_param_str(ctx, "source");
    const char *vs = dr_param_str(ctx, "vs_currency");
    long long top = dr_param_int(ctx, "top"), per = dr_param_int(ctx, "per_page");
    if (top < 1 || per < 1 || per > 250) {
        dr_error(ctx, "coingecko_markets: top must be at least 1 and per_page 1-250");
        return DR_FATAL;
    }
    for (const char *p = vs; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9'))) {
            dr_error(ctx, "coingecko_markets: vs_currency \"%s\" is not a currency code", vs);
            return DR_FATAL;
        }
    json_t *ids = json_array(), *names = json_array();
    dr_status st = DR_FAIL;
    char *arr[2] = { NULL };
    PGresult *res = NULL;
    for (long long page = 1; (page - 1) * per < top; page++) {
        long long n = top - (page - 1) * per < per ? top - (page - 1) * per : per;
        char path[200];
        /* A short last page still asks per_page: CoinGecko pages by per_page. */
        snprintf(path, sizeof path, "/api/v3/coins/markets?vs_currency=%s&order=market_cap_desc"
                 "&per_page=%lld&page=%lld", vs, per, page);
        dr_http_response r;
        if (dr_http_get(ctx, source, path, &r) < 0 || r.status != 200) {
            dr_error(ctx, "coingecko_markets: %s", r.error[0] ? r.error : "failed");
            st = r.status == 401 || r.status == 403 ? DR_FATAL
                 : r.status == DR_HTTP_NOT_SENT ? DR_FAIL
                 : r.status == 0 || r.status == 429 || r.status >= 500 ? DR_RETRY : DR_FAIL;
            dr_http_response_free(&r);
            goto out;
        }
        char why[160];
        json_t *j = dr_json_loadb_exact(r.body, r.len, why, sizeof why);
        dr_http_response_free(&r);
        if (!json_is_array(j)) {
            dr_error(ctx, "coingecko_markets: page %lld: %s", page,
                     j ? "bad response: not an array" : why);
            st = j ? DR_FAIL : DR_RETRY;
            json_decref(j);
            goto out;
        }
        size_t got = json_array_size(j);
        while ((long long)json_array_size(j) > n)      /* the last page: only up to top */
            json_array_remove(j, json_array_size(j) - 1);
        add_page(ctx, j, ids, names);
        json_decref(j);
        if ((long long)got < per)       /* CoinGecko has no more */
            break;
    }
    size_t n = json_array_size(ids);
    bool not_strings;
    for (int k = 0; k < 2; k++)
        if (!(arr[k] = dr_pg_text_array(k ? names : ids, &not_strings))) {
            dr_error(ctx, "coingecko_markets: out of memory");
            goto out;
        }
    PGconn *db = dr_db(ctx);
    if (!db) {
        st = DR_RETRY;
        goto out;
    }
    const char *values[4] = { source, arr[0], arr[1], vs };
    res = PQexecParams(db, upsert_sql, 4, NULL, values, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        st = dr_db_failed(ctx, db, res, "coingecko_markets");
        goto out;
    }
    dr_log(ctx, DR_LOG_INFO, "%s: %zu coins registered", source, n);
    dr_count(ctx, "coins", (long long)n);
    st = DR_OK;
out:
    PQclear(res);
    free(arr[0]);
    free(arr[1]);
    json_decref(ids);
    json_decref(names);
    return st;
}

static const dr_task_def def = {
    .abi_version = DR_ABI_VERSION,
    .size = sizeof def,
    .name = "coingecko_markets",
    .summary = "load CoinGecko's top coins by market cap into assets",
    .params = params,
    .run = markets_run,
    .source_param = "source",
};

DR_EXPORT const dr_task_def *dr_task_entry(void) { return &def; }
