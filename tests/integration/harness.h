/* harness.h: what every integration test needs to drive the real service.
 *
 * The suite runs the built `eventtrack` binary on port 0 against the test
 * PostgreSQL and Redis (see main.c for the one-service-per-run lifecycle) and
 * speaks to it only over HTTP, like any client. Direct store probes exist for
 * one purpose: proving that a request changed nothing (or exactly one thing),
 * which no HTTP answer alone can show.
 *
 * Conventions of the suite:
 *   - the stores are shared with other runs: nothing is ever truncated or
 *     flushed; every test makes its own ids with it_id() and looks only at
 *     rows and keys carrying them;
 *   - every test process holds a shared PostgreSQL advisory lock for its whole
 *     life (it_setup), and the "nothing changed" table of bad inputs holds it
 *     exclusively (it_setup_exclusive), so its global counts cannot race with
 *     any other test of any run of this suite;
 *   - check helpers return NULL when all is well, else a message naming the
 *     request and what differed; the EXPECT_* macros turn that into a
 *     Criterion assertion at the caller's line.
 *
 * Memory: every char * returned by it_* / fmt / pg_text / redis_text is
 * heap-allocated and owned by the caller (tests are short-lived processes and
 * may leak them). A struct http_resp is freed with http_resp_free (NULL ok).
 */
#ifndef ET_IT_HARNESS_H
#define ET_IT_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <cJSON.h>
#include <criterion/criterion.h>

/* ---- the service process (main.c) ---------------------------------------- */

/* Starts ET_BINARY_PATH serve --port 0 --bind 127.0.0.1 and waits (10 s at
 * most) for its ready line. Returns 0 and sets *base_url (caller frees), or -1
 * after printing why to stderr. */
int service_start(char **base_url);
/* SIGTERM, wait up to 15 s, then SIGKILL. Safe to call when not started. */
void service_stop(void);
/* The same, returning 0 when the service stopped cleanly on SIGTERM (exit
 * status 0) and 1 when it had died during the run, failed to stop, or ended
 * with another status (each printed to stderr). */
int service_stop_status(void);
/* Where the service's stderr goes. */
const char *service_log_path(void);

/* Environment the harness reads (and main.c fills in before tests run):
 *   ET_IT_BASE_URL            base URL of the running service
 *   EVENTTRACK_DATABASE_URL   test database (default below)
 *   EVENTTRACK_REDIS_URL      test Redis (default below)
 *   EVENTTRACK_ADMIN_KEY      admin bearer key (generated when unset) */
#define IT_DEFAULT_DATABASE_URL "postgresql://eventtrack@127.0.0.1:25432/eventtrack_test"
#define IT_DEFAULT_REDIS_URL "redis://127.0.0.1:26379/1"
void it_env_defaults(void);
const char *it_base_url(void);
const char *it_admin_key(void);

/* ---- other processes of the binary (inside a test) -------------------------- */

/* A copy of the environment with changes applied: "NAME=value" sets, "NAME"
 * removes (changes NULL-terminated, may be NULL). Free with free(); the
 * strings are borrowed. */
char **env_with(const char *const *changes);

struct run {
    int status;       /* wait status */
    bool timed_out;   /* killed after the time limit */
    char *out, *err;  /* captured stdout and stderr */
};
/* Runs argv (argv[0] a path) to completion, killed after timeout_ms. */
struct run run_binary(const char *const *argv, const char *const *env, int timeout_ms);

/* A second service, child of the test process: ET_BINARY_PATH serve --port 0
 * with extra arguments and environment changes; its stderr is appended to
 * log_path. Returns its pid and sets *base_url, or asserts. */
pid_t spawn_service(const char *const *extra_args, const char *const *env, const char *log_path,
                    char **base_url);
/* SIGTERM, then SIGKILL after 15 s; returns the wait status. */
int stop_spawned_service(pid_t pid);
/* For a .fini: when *pid > 0, closes this process's kept-alive connections
 * (see http_close) and stops it as above without looking at how it ended;
 * *pid becomes -1. */
void release_spawned_service(pid_t *pid);

/* A TCP forwarder 127.0.0.1:<port> -> 127.0.0.1:target_port run by a thread
 * of the test process, to take a store away from a service and give it back:
 * proxy_cut refuses new connections and resets every open one; proxy_restore
 * listens again on the same port. */
struct proxy;
struct proxy *proxy_start(int target_port);
int proxy_port(const struct proxy *p);
void proxy_cut(struct proxy *p);
void proxy_restore(struct proxy *p);

/* ---- fixtures ---------------------------------------------------------------- */

/* .init of every suite: shared advisory lock (see above). */
void it_setup(void);
/* .init of the bad-input suite: exclusive advisory lock. */
void it_setup_exclusive(void);

/* ---- small utilities --------------------------------------------------------- */

char *fmt(const char *format, ...) __attribute__((format(printf, 1, 2)));
char *it_strdup(const char *s);  /* aborts when out of memory; NULL gives "" */
void *it_malloc(size_t n);       /* aborts when out of memory */
long long it_now_ms(void);       /* monotonic clock */
void it_pause_ms(long ms);       /* sleeps ms milliseconds, resuming after signals */
/* A fresh id "<tag>_<run>_<pid>_<n>" unique across tests and runs. */
char *it_id(const char *tag);
/* A string of n copies of c. */
char *repeat_char(char c, size_t n);
/* What a file holds from offset to its end (caller frees); asserts it can be read. */
char *it_file_since(const char *path, long offset);

/* ---- HTTP -------------------------------------------------------------------- */

struct http_resp {
    long status;          /* 0 when the transfer itself failed (see error) */
    char *body;           /* NUL-terminated, len bytes */
    size_t len;
    char *headers;        /* raw response header block */
    char *content_type;   /* NULL when absent */
    char *allow;
    char *retry_after;
    char *location;
    char *www_authenticate;
    char error[256];      /* curl error text when status == 0 */
    char *what;           /* "METHOD path" for messages */
    cJSON *json;          /* parsed body, cached by resp_json */
};

struct http_req {
    const char *method;        /* "GET", "POST", ... */
    const char *path;          /* "/v1/..." */
    const char *content_type;  /* NULL: no Content-Type header at all */
    const char *body;          /* NULL: no body */
    size_t len;                /* body length; 0 with a body: strlen(body) */
    const char *auth;          /* NULL: admin key; "": no Authorization; else a bearer key */
    const char *idem_key;      /* NULL: no Idempotency-Key; "": an empty one */
    const char *const *headers;/* extra raw header lines, NULL-terminated, or NULL */
    bool chunked;              /* send the body with chunked transfer encoding */
    const char *base;          /* NULL: the suite's service (ET_IT_BASE_URL) */
};

struct http_resp *http_do(const struct http_req *rq);
struct http_resp *http_get(const char *path);
struct http_resp *http_get_as(const char *path, const char *auth);
struct http_resp *http_get_at(const char *base, const char *path);
struct http_resp *http_get_at_as(const char *base, const char *path, const char *auth);
struct http_resp *http_post_json(const char *path, const char *body);
struct http_resp *http_post_json_as(const char *path, const char *body, const char *auth);
struct http_resp *http_post_json_at(const char *base, const char *path, const char *body);
struct http_resp *http_post_json_at_as(const char *base, const char *path, const char *body,
                                       const char *auth);
struct http_resp *http_post_json_idem(const char *path, const char *body, const char *key);
struct http_resp *http_request(const char *method, const char *path, const char *content_type,
                               const char *body, size_t len);
void http_resp_free(struct http_resp *r);
/* Closes this process's kept-alive connections (before stopping a service,
 * whose SIGTERM drain would otherwise wait for them). */
void http_close(void);

/* Many requests at once over one curl multi handle (each on its own
 * connection). */
struct http_par {
    struct http_req req;       /* in */
    struct http_resp *resp;    /* out, owned by the caller */
};
void http_parallel(struct http_par *reqs, size_t n);

/* ---- raw HTTP on a TCP socket (raw.c) ---------------------------------------- */

/* For requests libcurl will not send and answers it would hide. */
int raw_port(const char *base);  /* the port of a base URL */
/* A loopback TCP connection, or -1 with errno; a non-blocking one may still
 * be connecting. Blocking sends on it give up after 10 s. Caller closes. */
int raw_try_connect(int port, bool nonblocking);
int raw_connect(int port);       /* the same, blocking, asserting it connected */
/* Sends all of data; false when the server closed or reset first. */
bool raw_send(int fd, const char *data, size_t len);

struct raw_resp {
    int status;          /* 0: no complete response */
    char head[4096];     /* status line and headers */
    char body[4096];     /* NUL-terminated */
    bool closed;         /* the server ended the stream (EOF or reset) */
    bool partial;        /* not closed, but part of a response came before the timeout */
    char error[64];      /* why no response: "closed", a reset's strerror, "timeout" */
};
/* Reads one response (head and Content-Length body) within timeout_ms;
 * asserts that nothing follows it. */
void raw_read(int fd, int timeout_ms, struct raw_resp *r);
/* After a response: does the server end the stream within timeout_ms, sending
 * nothing more? When it does send, extra holds what came (NUL-terminated). */
bool raw_closed_after(int fd, int timeout_ms, char *extra, size_t extra_size);

/* ---- JSON -------------------------------------------------------------------- */

/* The parsed body (NULL if not JSON); owned by r. */
cJSON *resp_json(struct http_resp *r);
/* Member lookup by dotted path ("error.status", "results.2.status"). */
cJSON *jget(const cJSON *o, const char *path);
const char *jstr(const cJSON *o, const char *path);           /* NULL unless a string */
bool jint(const cJSON *o, const char *path, long long *out);  /* false unless an integer */
long long jint_or(const cJSON *o, const char *path, long long dflt);
bool jbool(const cJSON *o, const char *path, bool *out);

/* ---- checks (NULL = fine, else a message) ----------------------------------- */

const char *check_status(struct http_resp *r, long status);
/* status, Content-Type application/problem+json, body type "/problems/<slug>"
 * and body status; when field is not NULL, errors[] must name it. */
const char *check_problem(struct http_resp *r, long status, const char *slug, const char *field);
/* status 2xx with Content-Type application/json and a JSON object body */
const char *check_json(struct http_resp *r, long status);

#define EXPECT_OK_(msg) do { const char *m_ = (msg); cr_assert(m_ == NULL, "%s", m_); } while (0)
#define EXPECT_STATUS(r, st) EXPECT_OK_(check_status((r), (st)))
#define EXPECT_JSON(r, st) EXPECT_OK_(check_json((r), (st)))
#define EXPECT_PROBLEM(r, st, slug) EXPECT_OK_(check_problem((r), (st), (slug), NULL))
#define EXPECT_PROBLEM_FIELD(r, st, slug, field) EXPECT_OK_(check_problem((r), (st), (slug), (field)))
#define EXPECT_STR(obj, path, want) do {                                                  \
        const char *g_ = jstr((obj), (path));                                          \
        cr_assert(g_ != NULL && strcmp(g_, (want)) == 0, "%s: expected \"%s\", got %s%s%s", \
                  (path), (want), g_ ? "\"" : "", g_ ? g_ : "(missing or not a string)",  \
                  g_ ? "\"" : "");                                                        \
    } while (0)
#define EXPECT_INT(obj, path, want) do {                                                  \
        long long g_ = 0;                                                                 \
        bool ok_ = jint((obj), (path), &g_);                                              \
        cr_assert(ok_ && g_ == (long long)(want), "%s: expected %lld, got %s%lld", (path),   \
                  (long long)(want), ok_ ? "" : "(missing or not an integer) ", g_);      \
    } while (0)

/* ---- resources made over HTTP (assert on failure) ---------------------------- */

char *make_org(long long credits);                     /* returns the id */
char *make_org_key(long long credits, char **api_key); /* also returns its first key */
char *make_event(const char *org);
char *make_session(const char *event, const char *speaker);
struct http_resp *post_registration(const char *session, const char *user, const char *org,
                                    const char *idem_key);
struct http_resp *post_view(const char *event_id, const char *session, const char *speaker,
                            const char *user);
long long get_balance(const char *org);

/* Posts one batch of session_views (fresh event ids, fresh users) and asserts
 * 200 with every item created. speaker NULL: the session's own speaker. */
struct view {
    const char *session;
    const char *speaker;
};
void post_views(const struct view *views, size_t n);

/* GET /v1/events/{event}/leaderboard<query> must be exactly want[0..n). */
struct board_entry {
    const char *speaker;
    long long score;
    long long rank;
};
const char *check_board(const char *event_id, const char *query, const struct board_entry *want, size_t n);
#define EXPECT_BOARD(ev, query, want, n) EXPECT_OK_(check_board((ev), (query), (want), (n)))

/* ---- stores -------------------------------------------------------------------- */

/* One PostgreSQL value of a parameterised query (params NULL-terminated);
 * asserts on errors. pg_ll returns -1 for SQL NULL. */
#define PG_PARAMS(...) ((const char *const[]){__VA_ARGS__, NULL})
long long pg_ll(const char *sql, const char *const *params);
char *pg_text(const char *sql, const char *const *params);  /* NULL for SQL NULL */
void pg_exec(const char *sql, const char *const *params);

/* The PostgreSQL server's log (ET_IT_PG_LOG, else deploy/local/stores.sh's
 * .local/log/postgres.log): its size now, and what was appended after an
 * offset (caller frees), to assert on what the server logged meanwhile. */
long pg_log_size(void);
char *pg_log_since(long offset);

/* The test stores' ports, and their URLs with host and port replaced by
 * 127.0.0.1:port (to route a second service through a proxy). */
int pg_store_port(void);
int redis_store_port(void);
char *pg_url_via(int port);
/* The test database's conninfo with dbname (NULL: its own) and, when port > 0,
 * host and port replaced by 127.0.0.1:port. */
char *pg_conninfo(const char *dbname, int port);
char *redis_url_via(int port);

/* Redis on the test db; printf-style hiredis commands. */
long long redis_ll(const char *format, ...);  /* integer reply; -1 for nil */
char *redis_text(const char *format, ...);    /* bulk/status reply; NULL for nil */
/* The service's keys for an event (docs/adr/0001-polyglot-persistence.md). */
char *lb_key(const char *event_id);
char *lb_applied_key(const char *event_id);
/* Score of a speaker on an event's board, -1 when absent. */
long long redis_score(const char *event_id, const char *speaker);
/* Whether an event id sent with the admin key is in the applied set, and the set's size. */
bool redis_applied_has(const char *event_id, const char *id);
long long redis_applied_count(const char *event_id);

#endif
