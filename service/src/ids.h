/*
 * ids.h - resource ids: the syntax every id must have, and fresh ones.
 *
 * An id is 1..128 characters from [A-Za-z0-9_.:-]: safe in a URL path, a
 * Redis key and a log line without escaping. The schema's et_id domain states
 * the same rule, so a bypass of this check still cannot store a bad id.
 */
#ifndef ET_IDS_H
#define ET_IDS_H

#include <stdbool.h>
#include <stddef.h>

#define ID_MAX 128

bool id_valid(const char *s, size_t len);

/* Writes "<prefix>_<uuid v4>" (or a bare UUID v4 when prefix is NULL) into out. */
void id_generate(char out[ID_MAX + 1], const char *prefix);

/* Writes "etk_" + 64 hex digits: a 256-bit bearer secret (69 bytes with NUL). */
void secret_generate(char out[69]);

#endif
