/*
 * http/body.c - request bodies against one memory budget (see body.h).
 *
 * Design notes:
 *   1. Reserve, then allocate. A reservation is a compare-and-swap on one
 *      atomic counter, so a worker never waits for another, and the total of
 *      all reservations never exceeds the limit, even for a moment.
 *   2. Reservation == capacity. A Content-Length body is allocated once at
 *      its exact size (plus buf's terminating NUL); a chunked body, whose size
 *      is unknown, grows by doubling (capped at max + 1), reserving each step
 *      before the realloc. buf's own doubling never runs: every append fits.
 *   3. A refusal frees at once. The rest of a refused body is discarded as it
 *      arrives (the caller's job), holding no memory.
 */
#include "http/body.h"

#include <stdint.h>

#include "invariant.h"

void body_budget_init(struct body_budget *b, size_t limit)
{
    atomic_init(&b->reserved, 0);
    b->limit = limit;
}

static bool budget_take(struct body_budget *b, size_t n)
{
    size_t cur = atomic_load(&b->reserved);

    do {
        if (n > b->limit || cur > b->limit - n)
            return false;
    } while (!atomic_compare_exchange_weak(&b->reserved, &cur, cur + n));
    return true;
}

static void budget_give(struct body_budget *b, size_t n)
{
    /* Giving back more than was taken would let the budget be exceeded later. */
    ET_ASSERT(atomic_load(&b->reserved) >= n);
    if (n > 0)
        atomic_fetch_sub(&b->reserved, n);
}

void body_intake_free(struct body_intake *in, struct body_budget *b)
{
    buf_free(&in->buf);
    budget_give(b, in->reserved);
    in->reserved = 0;
}

/* Holds exactly `cap` bytes of the budget and of memory (cap > in->reserved). */
static enum et_err grow(struct body_intake *in, struct body_budget *b, size_t cap)
{
    if (!budget_take(b, cap - in->reserved))
        return ET_ERR_UNAVAILABLE;
    in->reserved = cap;
    return buf_grow_to(&in->buf, cap) ? ET_OK : ET_ERR_INTERNAL;
}

enum et_err body_intake_expect(struct body_intake *in, struct body_budget *b, size_t length)
{
    if (length == 0 || length + 1 <= in->reserved)
        return ET_OK;
    /* Only the reservation: memory is allocated when the first byte arrives,
     * so a client that sends headers and stalls costs a reservation only. */
    if (length == SIZE_MAX || !budget_take(b, length + 1 - in->reserved))
        return ET_ERR_UNAVAILABLE;
    in->reserved = length + 1;
    return ET_OK;
}

enum et_err body_intake_append(struct body_intake *in, struct body_budget *b, const char *data,
                               size_t n, size_t max)
{
    enum et_err err = ET_OK;
    size_t need;

    if (n > max || in->buf.len > max - n) {
        err = ET_ERR_TOO_LARGE;
        goto done;
    }
    need = in->buf.len + n + 1;                /* + buf's terminating NUL */
    if (need > in->buf.cap) {
        size_t cap = in->reserved;             /* a Content-Length body: already reserved */
        if (cap < need) {                      /* chunked: double, up to max + 1 */
            cap = cap > (max + 1) / 2 ? max + 1 : cap * 2;
            if (cap < need)
                cap = need;
            err = grow(in, b, cap);
        } else if (!buf_grow_to(&in->buf, cap)) {
            err = ET_ERR_INTERNAL;
        }
        if (err != ET_OK)
            goto done;
    }
    buf_append(&in->buf, data, n);
    if (in->buf.failed)
        err = ET_ERR_INTERNAL;
done:
    if (err != ET_OK)
        body_intake_free(in, b);
    return err;
}

static void server_busy(struct problem *p)
{
    problem_set(p, ET_ERR_UNAVAILABLE, PT_SERVER_BUSY,
                "the server is receiving too many request bodies; retry shortly");
}

bool body_admit(struct body_intake *in, struct body_budget *b, const struct framing *f, size_t max,
                struct problem *p)
{
    if (!f->has_length || f->length == 0)
        return true;
    if (f->length > max) {
        problem_set(p, ET_ERR_TOO_LARGE, NULL, "the body is larger than %zu bytes", max);
        return false;
    }
    if (body_intake_expect(in, b, (size_t)f->length) != ET_OK) {
        server_busy(p);
        return false;
    }
    return true;
}

void body_receive(struct body_intake *in, struct body_budget *b, const char *data, size_t n,
                  size_t max, struct problem *p)
{
    enum et_err err = body_intake_append(in, b, data, n, max);

    if (err == ET_ERR_TOO_LARGE)
        problem_set(p, err, NULL, "the body is larger than %zu bytes", max);
    else if (err == ET_ERR_UNAVAILABLE)
        server_busy(p);
    else if (err != ET_OK)
        problem_set(p, err, NULL, "out of memory reading the body");
}
