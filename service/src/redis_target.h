/*
 * redis_target.h - where Redis is: the parsed form of the redis_url setting.
 *
 * A header of its own so that store/redis.h can name its target without
 * including config.h: a store sees the one value it is given, not the whole
 * settings struct (config.c parses it; main.c hands it over).
 */
#ifndef ET_REDIS_TARGET_H
#define ET_REDIS_TARGET_H

#include <stdbool.h>

#define REDIS_MAX_SENTINELS 8

struct redis_endpoint {
    char host[256];
    int port;
};

struct redis_target {
    char host[256];          /* empty for a unix socket or Sentinel mode */
    int port;
    char socket_path[256];   /* empty for TCP */
    int db;
    char user[128];          /* ACL user; empty: AUTH with the password alone */
    char password[256];      /* empty: no AUTH */
    char master_name[128];   /* non-empty: redis-sentinel://, the primary is asked of the Sentinels */
    int sentinel_count;
    struct redis_endpoint sentinels[REDIS_MAX_SENTINELS];
};

/* Parses redis://[[user]:password@]host:port[/db], unix:///path[?db=N] or
 * redis-sentinel://[[user]:password@]h1:p1,h2:p2,.../MASTER[/db]; false if
 * malformed (config.c). */
bool redis_url_parse(const char *url, struct redis_target *out);

#endif
