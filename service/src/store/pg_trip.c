/*
 * store/pg_trip.c - one statement's round trip under a deadline.
 *
 * libpq's blocking calls wait as long as the kernel lets them: a peer that
 * vanished without a reset (SIGSTOP, a host crash, a partition) holds the
 * thread for minutes. So statements go out with the asynchronous calls on a
 * non-blocking connection and we poll the socket ourselves, giving up when
 * the request's deadline passes (store/pg.c design note 6 says why the
 * caller then drops the connection instead of cancelling). The PQsend*
 * call itself stays in store/pg.c, where scripts/check-sql proves its SQL
 * is a constant.
 */
#include "store/pg_trip.h"

#include <errno.h>
#include <poll.h>
#include <time.h>

#include "clock.h"

/* Waits until the socket is ready for `events`; false once the deadline
 * has passed. No deadline (0) waits as long as it takes. */
static bool pg_wait(PGconn *conn, int64_t deadline_us, short events)
{
    struct pollfd pfd = {.fd = PQsocket(conn), .events = events};
    int rc;

    do {
        int timeout = -1;
        if (deadline_us > 0) {
            int64_t left = deadline_us - monotonic_us();
            if (left <= 0)
                return false;
            timeout = (int)((left + 999) / 1000);
        }
        rc = poll(&pfd, 1, timeout);
    } while (rc < 0 && errno == EINTR);
    return rc != 0;
}

/* Keeps the first error, else the latest result. */
static void keep_result(PGresult **out, PGresult *r, bool *late_error)
{
    if (*out != NULL && PQresultStatus(*out) == PGRES_FATAL_ERROR) {
        PQclear(r);
        return;
    }
    if (*out != NULL && PQresultStatus(r) == PGRES_FATAL_ERROR)
        *late_error = true;     /* after a success: it may have committed */
    PQclear(*out);
    *out = r;
}

enum pg_trip pg_trip(PGconn *conn, int64_t deadline_us, bool sent, PGresult **out, bool *late_error)
{
    PGresult *r;
    int flushed;

    *out = NULL;
    *late_error = false;
    if (!sent)
        return TRIP_UNSENT;
    while ((flushed = PQflush(conn)) == 1) {
        if (!pg_wait(conn, deadline_us, POLLIN | POLLOUT))
            return TRIP_EXPIRED;
        if (!PQconsumeInput(conn))
            return TRIP_UNSENT;
    }
    if (flushed < 0)
        return TRIP_UNSENT;
    for (;;) {
        while (PQisBusy(conn) && PQstatus(conn) == CONNECTION_OK) {
            if (!pg_wait(conn, deadline_us, POLLIN)) {
                PQclear(*out);
                *out = NULL;
                return TRIP_EXPIRED;
            }
            if (!PQconsumeInput(conn))
                break;          /* PQgetResult below reports it without waiting */
        }
        if ((r = PQgetResult(conn)) == NULL)
            break;
        keep_result(out, r, late_error);
    }
    return *out != NULL ? TRIP_DONE : TRIP_LOST;
}
