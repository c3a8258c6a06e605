/*
 * store/pg_trip.h - one statement's round trip under a deadline (store/pg.c
 * design note 6). Private to store/pg.c: split out so that each file stays
 * one screenful of ideas.
 */
#ifndef ET_STORE_PG_TRIP_H
#define ET_STORE_PG_TRIP_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>

/* What became of one round trip. */
enum pg_trip {
    TRIP_DONE,      /* *out holds the result, possibly an error the server sent */
    TRIP_UNSENT,    /* the connection failed before the whole statement left */
    TRIP_LOST,      /* the connection failed after: the outcome is unknown */
    TRIP_EXPIRED,   /* the deadline passed: the outcome is unknown */
};

/*
 * Finishes a statement the caller has just handed to PQsend* (sent: whether
 * that call succeeded): flushes it on the non-blocking conn and collects its
 * results until deadline_us (CLOCK_MONOTONIC; 0: none). The first error
 * result wins, else the last result; *late_error says an error came after a
 * success. *out is the caller's to PQclear (NULL unless TRIP_DONE). The
 * connection is left as it is: after anything but TRIP_DONE the caller
 * drops it.
 */
enum pg_trip pg_trip(PGconn *conn, int64_t deadline_us, bool sent, PGresult **out, bool *late_error);

#endif
