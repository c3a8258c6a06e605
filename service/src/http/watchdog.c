/*
 * http/watchdog.c - the slow-client watchdog (see watchdog.h for why).
 *
 * One thread scans the list of open connections five times a second. The
 * list is doubly linked so that a close unlinks in O(1) under the lock; the
 * per-connection timestamp is atomic because MHD's workers set it outside
 * the lock on every request.
 */
#include "http/watchdog.h"

#include <pthread.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>

#include "clock.h"

#define SCAN_INTERVAL_NS (200 * 1000 * 1000)

struct watchdog {
    pthread_mutex_t lock;           /* guards the list, against MHD's close notification */
    struct watched_conn *watched;
    pthread_t thread;
    atomic_bool stop;
    uint64_t limit_ns;
};

static void *watchdog_main(void *arg)
{
    struct watchdog *wd = arg;

    while (!atomic_load(&wd->stop)) {
        uint64_t now = monotonic_ns();
        pthread_mutex_lock(&wd->lock);
        for (struct watched_conn *w = wd->watched; w; w = w->next) {
            uint64_t since = atomic_load(&w->arriving_since_ns);
            /* since may be later than now (set by a worker after we read the
             * clock): unsigned now - since would wrap into a false timeout. */
            if (since != 0 && now > since && now - since > wd->limit_ns) {
                shutdown(w->fd, SHUT_RDWR);   /* MHD sees the end and closes it */
                atomic_store(&w->arriving_since_ns, 0);
            }
        }
        pthread_mutex_unlock(&wd->lock);
        nanosleep(&(struct timespec){0, SCAN_INTERVAL_NS}, NULL);
    }
    return NULL;
}

struct watchdog *watchdog_start(uint64_t limit_ns)
{
    struct watchdog *wd = calloc(1, sizeof *wd);

    if (wd == NULL)
        return NULL;
    pthread_mutex_init(&wd->lock, NULL);
    wd->limit_ns = limit_ns;
    if (pthread_create(&wd->thread, NULL, watchdog_main, wd) != 0) {
        pthread_mutex_destroy(&wd->lock);
        free(wd);
        return NULL;
    }
    return wd;
}

struct watched_conn *watchdog_add(struct watchdog *wd, int fd)
{
    struct watched_conn *w;

    if (wd == NULL || (w = calloc(1, sizeof *w)) == NULL)
        return NULL;
    w->fd = fd;
    atomic_store(&w->arriving_since_ns, monotonic_ns());
    pthread_mutex_lock(&wd->lock);
    w->next = wd->watched;
    if (wd->watched)
        wd->watched->prev = w;
    wd->watched = w;
    pthread_mutex_unlock(&wd->lock);
    return w;
}

void watchdog_remove(struct watchdog *wd, struct watched_conn *w)
{
    pthread_mutex_lock(&wd->lock);
    if (w->prev)
        w->prev->next = w->next;
    else
        wd->watched = w->next;
    if (w->next)
        w->next->prev = w->prev;
    pthread_mutex_unlock(&wd->lock);
    free(w);
}

void watchdog_arrived(struct watched_conn *w)
{
    atomic_store(&w->arriving_since_ns, 0);
}

void watchdog_next_request(struct watched_conn *w)
{
    atomic_store(&w->arriving_since_ns, monotonic_ns());
}

void watchdog_stop(struct watchdog *wd)
{
    if (wd == NULL)
        return;
    atomic_store(&wd->stop, true);
    pthread_join(wd->thread, NULL);
    pthread_mutex_destroy(&wd->lock);
    free(wd);
}
