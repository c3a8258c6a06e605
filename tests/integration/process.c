/* process.c: processes of the binary and a store proxy (see harness.h).
 *
 * The suite's service. Criterion (BoxFort) runs a "child pump" thread in the
 * runner that waits on *every* child with waitid(P_ALL, ..., WNOWAIT) and only
 * reaps its own test workers; a foreign child that exits while tests run (a
 * crashing service) would stay a zombie the pump sees again and again,
 * spinning forever. So the runner forks A, A forks a watcher B and exits at
 * once (reaped here, before any test runs), and B forks and execs the service
 * S, then waits for S and writes its exit status into a pipe the runner
 * reads. Nothing the runner has as a child can die during the run.
 *
 * Inside a test (a worker, with no pump) other runs of the binary are plain
 * children: run_binary for sub-commands, spawn_service for a second service,
 * and the proxy is a thread of the test process.
 */
#define _GNU_SOURCE 1 /* pipe2, accept4 */
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#ifndef ET_BINARY_PATH
#error "ET_BINARY_PATH must name the eventtrack binary (set by tests/integration/CMakeLists.txt)"
#endif

/* ---- the service process ------------------------------------------------------- */

static pid_t g_service = -1;   /* S */
static int g_status_fd = -1;   /* B writes S's wait status here */
static int g_stdout_fd = -1;   /* S's stdout */
static int g_log_fd = -1;
static pthread_t g_drain;
static bool g_drain_started;
static char g_log_path[4096];

const char *service_log_path(void)
{
    return g_log_path;
}

/* After the ready line, anything S prints on stdout goes to the log, so a
 * chatty service can never block on a full pipe. */
static void *drain_stdout(void *arg)
{
    (void)arg;
    char buf[4096];
    for (;;) {
        ssize_t n = read(g_stdout_fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        if (write(g_log_fd, buf, (size_t)n) < 0)
            break;
    }
    return NULL;
}

static void print_log_tail(void)
{
    FILE *f = fopen(g_log_path, "r");
    if (!f)
        return;
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, size > 4000 ? size - 4000 : 0, SEEK_SET);
    fprintf(stderr, "---- last lines of %s ----\n", g_log_path);
    char buf[1024];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        fwrite(buf, 1, n, stderr);
    fprintf(stderr, "---- end of log ----\n");
    fclose(f);
}

/* Reads S's exit status from B within timeout_ms; 1 and *status on success. */
static int read_exit_status(int timeout_ms, int *status)
{
    struct pollfd p = {.fd = g_status_fd, .events = POLLIN};
    int rc;
    do {
        rc = poll(&p, 1, timeout_ms);
    } while (rc < 0 && errno == EINTR);
    if (rc <= 0)
        return 0;
    int st = 0;
    ssize_t n = read(g_status_fd, &st, sizeof st);
    if (n != (ssize_t)sizeof st)
        return 0;
    *status = st;
    return 1;
}

static void describe_status(int st, char *out, size_t n)
{
    if (WIFEXITED(st))
        snprintf(out, n, "exit status %d", WEXITSTATUS(st));
    else if (WIFSIGNALED(st))
        snprintf(out, n, "killed by signal %d (%s)", WTERMSIG(st), strsignal(WTERMSIG(st)));
    else
        snprintf(out, n, "wait status 0x%x", st);
}

int service_start(char **base_url)
{
    const char *log = getenv("ET_IT_SERVICE_LOG");
    if (log && *log)
        snprintf(g_log_path, sizeof g_log_path, "%s", log);
    else
        snprintf(g_log_path, sizeof g_log_path, "%s/integration-service.log", ET_IT_LOG_DIR);
    g_log_fd = open(g_log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (g_log_fd < 0) {
        fprintf(stderr, "integration: cannot open %s: %s\n", g_log_path, strerror(errno));
        return -1;
    }

    int out[2], st[2], pidp[2];
    if (pipe2(out, O_CLOEXEC) || pipe2(st, O_CLOEXEC) || pipe2(pidp, O_CLOEXEC)) {
        perror("integration: pipe2");
        return -1;
    }
    fflush(NULL);
    pid_t a = fork();
    if (a < 0) {
        perror("integration: fork");
        return -1;
    }
    if (a == 0) {
        /* A: hand over to the watcher B and leave at once. */
        pid_t b = fork();
        if (b != 0)
            _exit(b < 0 ? 1 : 0);
        /* B: the watcher. */
        pid_t s = fork();
        if (s == 0) {
            /* S: the service. */
            int devnull = open("/dev/null", O_RDONLY);
            if (devnull < 0 || dup2(devnull, 0) < 0 || dup2(out[1], 1) < 0 || dup2(g_log_fd, 2) < 0)
                _exit(126);
            char *argv[] = {(char *)ET_BINARY_PATH, (char *)"serve", (char *)"--port", (char *)"0",
                            (char *)"--bind", (char *)"127.0.0.1", NULL};
            execv(ET_BINARY_PATH, argv);
            dprintf(2, "integration: cannot exec %s: %s\n", ET_BINARY_PATH, strerror(errno));
            _exit(127);
        }
        if (s < 0)
            _exit(1);
        close(out[0]);
        close(out[1]);
        close(g_log_fd);
        if (write(pidp[1], &s, sizeof s) != (ssize_t)sizeof s)
            _exit(1);
        close(pidp[1]);
        int status = 0;
        while (waitpid(s, &status, 0) < 0 && errno == EINTR)
            ;
        if (write(st[1], &status, sizeof status) < 0)
            _exit(1);
        _exit(0);
    }
    close(out[1]);
    close(st[1]);
    close(pidp[1]);
    while (waitpid(a, NULL, 0) < 0 && errno == EINTR)
        ;
    pid_t s = -1;
    ssize_t n;
    do {
        n = read(pidp[0], &s, sizeof s);
    } while (n < 0 && errno == EINTR);
    close(pidp[0]);
    g_status_fd = st[0];
    g_stdout_fd = out[0];
    if (n != (ssize_t)sizeof s) {
        fprintf(stderr, "integration: could not start the service watcher\n");
        return -1;
    }
    g_service = s;

    /* Wait for "eventtrack: listening on http://ADDR:PORT". */
    static const char ready[] = "eventtrack: listening on ";
    char line[1024];
    size_t used = 0;
    long long deadline = it_now_ms() + 10000;
    for (;;) {
        long long left = deadline - it_now_ms();
        if (left <= 0) {
            fprintf(stderr, "integration: %s did not print \"%s...\" within 10 s\n", ET_BINARY_PATH, ready);
            print_log_tail();
            service_stop();
            return -1;
        }
        struct pollfd p = {.fd = g_stdout_fd, .events = POLLIN};
        int rc = poll(&p, 1, (int)left);
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc <= 0)
            continue;
        if (used >= sizeof line - 1)
            used = 0; /* an absurd line: drop it */
        n = read(g_stdout_fd, line + used, sizeof line - 1 - used);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            int status;
            char why[128] = "still running, stdout closed";
            if (read_exit_status(2000, &status)) {
                describe_status(status, why, sizeof why);
                g_service = -1;
            }
            fprintf(stderr, "integration: %s serve exited before it was ready (%s)\n", ET_BINARY_PATH, why);
            print_log_tail();
            service_stop();
            return -1;
        }
        used += (size_t)n;
        line[used] = '\0';
        char *nl;
        while ((nl = strchr(line, '\n')) != NULL) {
            *nl = '\0';
            if (nl > line && nl[-1] == '\r')
                nl[-1] = '\0';
            if (strncmp(line, ready, sizeof ready - 1) == 0) {
                const char *url = line + sizeof ready - 1;
                if (strncmp(url, "http://", 7) != 0 || !strchr(url + 7, ':')) {
                    fprintf(stderr, "integration: unexpected ready line \"%s\"\n", line);
                    service_stop();
                    return -1;
                }
                *base_url = it_strdup(url);
                g_drain_started = pthread_create(&g_drain, NULL, drain_stdout, NULL) == 0;
                return 0;
            }
            fprintf(stderr, "integration: service stdout: %s\n", line);
            size_t rest = used - (size_t)(nl + 1 - line);
            memmove(line, nl + 1, rest + 1);
            used = rest;
        }
    }
}

/* Returns 0 when S stopped cleanly on SIGTERM, 1 otherwise (printed). */
int service_stop_status(void)
{
    int bad = 0;
    if (g_service > 0) {
        int status;
        char why[128];
        if (read_exit_status(0, &status)) {
            describe_status(status, why, sizeof why);
            fprintf(stderr, "integration: the service died during the run (%s); see %s\n", why, g_log_path);
            bad = 1;
        } else {
            /* The service may give in-flight requests a drain period
             * (shutdown_drain_seconds, 10 by default); none are in flight. */
            kill(g_service, SIGTERM);
            if (read_exit_status(15000, &status)) {
                describe_status(status, why, sizeof why);
                if (!(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
                    fprintf(stderr, "integration: on SIGTERM the service ended with %s, expected exit status 0; "
                                    "see %s\n", why, g_log_path);
                    bad = 1;
                }
            } else {
                fprintf(stderr, "integration: the service did not stop within 15 s of SIGTERM; sending SIGKILL\n");
                kill(g_service, SIGKILL);
                read_exit_status(5000, &status);
                bad = 1;
            }
        }
        g_service = -1;
    }
    if (g_drain_started) {
        pthread_join(g_drain, NULL);
        g_drain_started = false;
    }
    if (g_stdout_fd >= 0)
        close(g_stdout_fd);
    if (g_status_fd >= 0)
        close(g_status_fd);
    if (g_log_fd >= 0)
        close(g_log_fd);
    g_stdout_fd = g_status_fd = g_log_fd = -1;
    return bad;
}

void service_stop(void)
{
    (void)service_stop_status();
}

/* ---- other processes of the binary ---------------------------------------------- */

char **env_with(const char *const *changes)
{
    size_t n = 0;
    while (environ[n])
        n++;
    size_t extra = 0;
    while (changes && changes[extra])
        extra++;
    char **envp = it_malloc((n + extra + 1) * sizeof *envp);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        bool drop = false;
        for (size_t j = 0; j < extra; j++) {
            size_t len = strcspn(changes[j], "=");
            if (strncmp(environ[i], changes[j], len) == 0 && environ[i][len] == '=')
                drop = true;
        }
        if (!drop)
            envp[k++] = environ[i];
    }
    for (size_t j = 0; j < extra; j++)
        if (strchr(changes[j], '='))
            envp[k++] = (char *)changes[j];
    envp[k] = NULL;
    return envp;
}

struct run run_binary(const char *const *argv, const char *const *env, int timeout_ms)
{
    char **envp = env_with(env);

    int out[2], err[2];
    cr_assert(pipe(out) == 0 && pipe(err) == 0);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    posix_spawn_file_actions_adddup2(&fa, err[1], 2);
    posix_spawn_file_actions_addclose(&fa, out[0]);
    posix_spawn_file_actions_addclose(&fa, err[0]);
    pid_t pid;
    int rc = posix_spawn(&pid, argv[0], &fa, NULL, (char *const *)argv, envp);
    cr_assert(rc == 0, "cannot run %s: %s", argv[0], strerror(rc));
    posix_spawn_file_actions_destroy(&fa);
    close(out[1]);
    close(err[1]);
    free(envp);

    struct run r = {0};
    char *bufs[2] = {NULL, NULL};
    size_t lens[2] = {0, 0};
    int fds[2] = {out[0], err[0]};
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int open_fds = 2;
    while (open_fds) {
        struct timespec t;
        clock_gettime(CLOCK_MONOTONIC, &t);
        long long left = timeout_ms - ((t.tv_sec - t0.tv_sec) * 1000LL + (t.tv_nsec - t0.tv_nsec) / 1000000);
        if (left <= 0) {
            r.timed_out = true;
            kill(pid, SIGKILL);
            break;
        }
        struct pollfd p[2] = {{.fd = fds[0], .events = POLLIN}, {.fd = fds[1], .events = POLLIN}};
        int pr = poll(p, 2, (int)left);
        if (pr < 0 && errno == EINTR)
            continue;
        for (int i = 0; i < 2; i++) {
            if (fds[i] < 0 || !(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            char chunk[4096];
            ssize_t got = read(fds[i], chunk, sizeof chunk);
            if (got <= 0) {
                close(fds[i]);
                fds[i] = -1;
                p[i].fd = -1;
                open_fds--;
                continue;
            }
            char *grown = realloc(bufs[i], lens[i] + (size_t)got + 1);
            if (!grown)
                abort();
            bufs[i] = grown;
            memcpy(bufs[i] + lens[i], chunk, (size_t)got);
            lens[i] += (size_t)got;
            bufs[i][lens[i]] = '\0';
        }
        for (int i = 0; i < 2; i++)
            if (fds[i] < 0)
                p[i].fd = -1;
    }
    for (int i = 0; i < 2; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    while (waitpid(pid, &r.status, 0) < 0 && errno == EINTR)
        ;
    r.out = bufs[0] ? bufs[0] : it_strdup("");
    r.err = bufs[1] ? bufs[1] : it_strdup("");
    return r;
}

pid_t spawn_service(const char *const *extra_args, const char *const *env, const char *log_path,
                    char **base_url)
{
    const char *argv[32] = {ET_BINARY_PATH, "serve", "--port", "0", "--bind", "127.0.0.1"};
    size_t argc = 6;
    for (size_t i = 0; extra_args && extra_args[i] && argc < 31; i++)
        argv[argc++] = extra_args[i];
    argv[argc] = NULL;
    char **envp = env_with(env);
    int out[2];
    cr_assert(pipe2(out, O_CLOEXEC) == 0);
    pid_t parent = getpid();
    pid_t pid = fork();
    cr_assert(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        /* The service dies with the test process, even one killed mid-run, so
         * an interrupted suite leaves no orphan serving behind it. */
        int in = open("/dev/null", O_RDONLY);
        int log = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent || in < 0 || log < 0 ||
            dup2(in, 0) < 0 || dup2(out[1], 1) < 0 || dup2(log, 2) < 0)
            _exit(127);
        execve(ET_BINARY_PATH, (char *const *)argv, envp);
        _exit(127);
    }
    free(envp);
    close(out[1]);

    static const char ready[] = "eventtrack: listening on ";
    char line[1024];
    size_t used = 0;
    long long deadline = it_now_ms() + 10000;
    while (it_now_ms() < deadline) {
        struct pollfd p = {.fd = out[0], .events = POLLIN};
        if (poll(&p, 1, (int)(deadline - it_now_ms())) <= 0)
            continue;
        ssize_t n = read(out[0], line + used, sizeof line - 1 - used);
        if (n <= 0)
            break;
        used += (size_t)n;
        line[used] = '\0';
        char *nl = strchr(line, '\n');
        if (nl && strncmp(line, ready, sizeof ready - 1) == 0) {
            *nl = '\0';
            *base_url = it_strdup(line + sizeof ready - 1);
            /* Keep stdout open (and unread: the service prints one line). */
            return pid;
        }
        if (nl || used == sizeof line - 1)
            used = 0;
    }
    close(out[0]);
    kill(pid, SIGKILL);
    int st;
    waitpid(pid, &st, 0);
    cr_assert_fail("a second service (%s) did not become ready within 10 s; see %s", ET_BINARY_PATH, log_path);
    return -1;
}

int stop_spawned_service(pid_t pid)
{
    int st = 0;
    kill(pid, SIGTERM);
    long long deadline = it_now_ms() + 15000;
    while (it_now_ms() < deadline) {
        pid_t w = waitpid(pid, &st, WNOHANG);
        if (w == pid)
            return st;
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
    return st;
}

void release_spawned_service(pid_t *pid)
{
    if (*pid > 0) {
        http_close();
        stop_spawned_service(*pid);
        *pid = -1;
    }
}

/* ---- a TCP proxy that can be cut ------------------------------------------------- */

#define PROXY_MAX 64

struct proxy {
    int target_port, port;
    int listener;                 /* -1 while cut */
    int pipe_wake[2];             /* wakes the thread after a change */
    int conns[PROXY_MAX][2];      /* client fd, upstream fd; -1 when free */
    pthread_mutex_t mu;
    pthread_t thread;
};

static int listen_on(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 64) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static int connect_to(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Close with RST, as a crashed or restarted store would look. */
static void hard_close(int fd)
{
    struct linger l = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    close(fd);
}

static void *proxy_loop(void *arg)
{
    struct proxy *p = arg;
    for (;;) {
        struct pollfd fds[2 + 2 * PROXY_MAX];
        int map[2 + 2 * PROXY_MAX];
        nfds_t n = 0;
        pthread_mutex_lock(&p->mu);
        fds[n] = (struct pollfd){.fd = p->pipe_wake[0], .events = POLLIN};
        map[n++] = -2;
        if (p->listener >= 0) {
            fds[n] = (struct pollfd){.fd = p->listener, .events = POLLIN};
            map[n++] = -1;
        }
        for (int i = 0; i < PROXY_MAX; i++)
            for (int s = 0; s < 2; s++)
                if (p->conns[i][s] >= 0) {
                    fds[n] = (struct pollfd){.fd = p->conns[i][s], .events = POLLIN};
                    map[n++] = i * 2 + s;
                }
        pthread_mutex_unlock(&p->mu);
        if (poll(fds, n, -1) < 0)
            continue;
        pthread_mutex_lock(&p->mu);
        for (nfds_t k = 0; k < n; k++) {
            if (!fds[k].revents)
                continue;
            if (map[k] == -2) {
                char b[16];
                if (read(p->pipe_wake[0], b, sizeof b) <= 0)
                    goto out;
                break; /* the set of fds changed: rebuild it */
            }
            if (map[k] == -1) {
                if (p->listener < 0)
                    continue;
                int c = accept4(p->listener, NULL, NULL, SOCK_CLOEXEC);
                if (c < 0)
                    continue;
                int u = connect_to(p->target_port);
                int slot = -1;
                for (int i = 0; i < PROXY_MAX && slot < 0; i++)
                    if (p->conns[i][0] < 0)
                        slot = i;
                if (u < 0 || slot < 0) {
                    hard_close(c);
                    if (u >= 0)
                        close(u);
                    continue;
                }
                p->conns[slot][0] = c;
                p->conns[slot][1] = u;
                break;
            }
            int i = map[k] / 2, s = map[k] % 2;
            if (p->conns[i][s] != fds[k].fd)
                continue;
            char buf[16384];
            ssize_t got = read(fds[k].fd, buf, sizeof buf);
            bool ok = got > 0;
            for (ssize_t off = 0; ok && off < got;) {
                ssize_t w = write(p->conns[i][1 - s], buf + off, (size_t)(got - off));
                if (w <= 0)
                    ok = false;
                else
                    off += w;
            }
            if (!ok) {
                close(p->conns[i][0]);
                close(p->conns[i][1]);
                p->conns[i][0] = p->conns[i][1] = -1;
                break;
            }
        }
        pthread_mutex_unlock(&p->mu);
    }
out:
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

struct proxy *proxy_start(int target_port)
{
    struct proxy *p = calloc(1, sizeof *p);
    p->target_port = target_port;
    p->listener = listen_on(0);
    cr_assert(p->listener >= 0, "proxy: cannot listen: %s", strerror(errno));
    struct sockaddr_in a;
    socklen_t len = sizeof a;
    getsockname(p->listener, (struct sockaddr *)&a, &len);
    p->port = ntohs(a.sin_port);
    for (int i = 0; i < PROXY_MAX; i++)
        p->conns[i][0] = p->conns[i][1] = -1;
    cr_assert(pipe2(p->pipe_wake, O_CLOEXEC) == 0);
    pthread_mutex_init(&p->mu, NULL);
    cr_assert(pthread_create(&p->thread, NULL, proxy_loop, p) == 0);
    return p;
}

int proxy_port(const struct proxy *p)
{
    return p->port;
}

static void proxy_wake(struct proxy *p)
{
    if (write(p->pipe_wake[1], "x", 1) < 0)
        perror("proxy: wake");
}

void proxy_cut(struct proxy *p)
{
    pthread_mutex_lock(&p->mu);
    if (p->listener >= 0)
        close(p->listener);
    p->listener = -1;
    for (int i = 0; i < PROXY_MAX; i++)
        if (p->conns[i][0] >= 0) {
            hard_close(p->conns[i][0]);
            close(p->conns[i][1]);
            p->conns[i][0] = p->conns[i][1] = -1;
        }
    proxy_wake(p);
    pthread_mutex_unlock(&p->mu);
}

void proxy_restore(struct proxy *p)
{
    pthread_mutex_lock(&p->mu);
    if (p->listener < 0)
        p->listener = listen_on(p->port);
    int fd = p->listener;
    proxy_wake(p);
    pthread_mutex_unlock(&p->mu);
    cr_assert(fd >= 0, "proxy: cannot listen again on port %d: %s", p->port, strerror(errno));
}
