/*
 * routes/widget.c - the live leaderboard widget: one static page, its script
 * and its stylesheet, compiled into the binary from web/widget/.
 *
 * The page is the same for every event (the script reads the event id from
 * the URL), so nothing a client sends is ever written into HTML. The
 * Content-Security-Policy allows this origin's script, style and API calls
 * and nothing else: no inline script, no third party.
 */
#include <string.h>

#include "embedded.h"
#include "routes/routes.h"

#define WIDGET_CSP \
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; " \
    "img-src 'self'; base-uri 'none'; form-action 'none'"

static const struct embedded_file *asset_find(const char *name)
{
    for (size_t i = 0; i < widget_assets_count; i++)
        if (strcmp(widget_assets[i].name, name) == 0)
            return &widget_assets[i];
    return NULL;
}

static const char *content_type_of(const char *name)
{
    const char *dot = strrchr(name, '.');

    if (dot && strcmp(dot, ".html") == 0)
        return "text/html; charset=utf-8";
    if (dot && strcmp(dot, ".js") == 0)
        return "text/javascript; charset=utf-8";
    if (dot && strcmp(dot, ".css") == 0)
        return "text/css; charset=utf-8";
    return "application/octet-stream";
}

static void respond_asset(struct response *res, const struct embedded_file *f)
{
    respond_bytes(res, 200, content_type_of(f->name), f->data, f->size);
    respond_etag(res);
    res->cache_control = "public, max-age=300";
    res->content_security_policy = WIDGET_CSP;
}

void api_widget_page(struct request *req, struct response *res)
{
    (void)req;
    respond_asset(res, asset_find("index.html"));
}

void api_widget_asset(struct request *req, struct response *res)
{
    const struct embedded_file *f = asset_find(req_param(req, "file"));

    if (f == NULL || strcmp(f->name, "index.html") == 0) {
        respond_error(res, ET_ERR_NOT_FOUND, NULL, "no such widget file");
        return;
    }
    respond_asset(res, f);
}
