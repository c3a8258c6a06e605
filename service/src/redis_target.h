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

struct redis_target {
    char host[256];          /* empty for a unix socket */
    int port;
    char socket_path[256];   /* empty for TCP */
    int db;
};

/* Parses redis://host:port[/db] or unix:///path[?db=N]; false if malformed
 * (config.c). */
bool redis_url_parse(const char *url, struct redis_target *out);

#endif
