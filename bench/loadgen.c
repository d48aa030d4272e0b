/* An open-loop HTTP/1.1 load generator in one thread: Poisson arrivals at a fixed rate, one
 * connection per request (gunicorn's sync workers close it after each answer), latency measured
 * from each request's *scheduled* send time, so a slow server or a late generator shows in the
 * figures (no coordinated omission).
 *
 *   loadgen HOST PORT REQUESTS_FILE RATE DURATION_S [SEED] [TIMEOUT_S]
 *   loadgen HOST PORT REQUESTS_FILE cN DURATION_S [SEED] [TIMEOUT_S]
 *
 * With RATE given as cN (c8: eight at a time) the loop is closed instead: N requests are always in
 * flight, each answer starts the next, and "rps" is the server's throughput at saturation (latency
 * then counts from each request's actual start).
 *
 * REQUESTS_FILE holds the raw requests, each as "<length>\n<bytes>"; they are sent in turn,
 * cycling. Prints one JSON object: counts, statuses, latency percentiles (ms) and the generator's
 * own health (how late it sent, its CPU seconds). Built by bench/waiturl.py with the system gcc;
 * Linux only (epoll, timerfd).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    char *data;
    size_t len;
} request_t;

typedef struct {
    int fd;
    double scheduled;  /* seconds since start */
    const request_t *req;
    size_t sent;
    int status;        /* parsed from the status line, 0 until read */
    char head[16];     /* the first bytes of the answer */
    size_t head_len;
    int in_use;
} conn_t;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t rng_state;
static double uniform01(void) { /* xorshift64*, good enough for arrival gaps */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (double)((rng_state * 2685821657736338717ULL) >> 11) / 9007199254740992.0;
}

static request_t *load_requests(const char *path, size_t *count) {
    FILE *f = fopen(path, "rb");
    if (!f) { perror("requests file"); exit(2); }
    size_t cap = 1024, n = 0;
    request_t *reqs = malloc(cap * sizeof *reqs);
    size_t len;
    while (fscanf(f, "%zu", &len) == 1) {
        if (fgetc(f) != '\n') { fprintf(stderr, "bad requests file\n"); exit(2); }
        if (n == cap) { cap *= 2; reqs = realloc(reqs, cap * sizeof *reqs); }
        reqs[n].data = malloc(len);
        reqs[n].len = len;
        if (fread(reqs[n].data, 1, len, f) != len) { fprintf(stderr, "short requests file\n"); exit(2); }
        n++;
    }
    fclose(f);
    if (n == 0) { fprintf(stderr, "no requests\n"); exit(2); }
    *count = n;
    return reqs;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double pct(const double *sorted, size_t n, double p) {
    if (n == 0) return NAN;
    size_t i = (size_t)(p * (double)n);
    return sorted[i < n ? i : n - 1];
}

/* results */
static double *latencies;
static size_t n_lat, cap_lat;
static long errors_connect, errors_io, errors_timeout, statuses[600];

static void record_latency(double ms) {
    if (n_lat == cap_lat) {
        cap_lat = cap_lat ? cap_lat * 2 : 65536;
        latencies = realloc(latencies, cap_lat * sizeof *latencies);
    }
    latencies[n_lat++] = ms;
}

static conn_t *conns;
static int max_conns, top_fd;
static int epfd;
static int in_flight;

enum { DONE, FAILED, TIMED_OUT };

static void finish(conn_t *c, double t, int how) {
    epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->in_use = 0;
    in_flight--;
    if (how == TIMED_OUT) { errors_timeout++; return; }
    if (how == FAILED) { errors_io++; return; }
    if (c->status > 0 && c->status < 600) statuses[c->status]++;
    else { errors_io++; return; }
    record_latency((t - c->scheduled) * 1000.0);
}

static void start(struct sockaddr_in *addr, const request_t *req, double scheduled) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 || fd >= max_conns) {
        if (fd >= 0) close(fd);
        errors_connect++;
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (struct sockaddr *)addr, sizeof *addr) < 0 && errno != EINPROGRESS) {
        close(fd);
        errors_connect++;
        return;
    }
    conn_t *c = &conns[fd];
    if (fd > top_fd) top_fd = fd;
    memset(c, 0, sizeof *c);
    c->fd = fd;
    c->scheduled = scheduled;
    c->req = req;
    c->in_use = 1;
    in_flight++;
    struct epoll_event ev = {.events = EPOLLOUT, .data.fd = fd};
    epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
}

static void on_event(int fd, uint32_t events, double t) {
    conn_t *c = &conns[fd];
    if (!c->in_use) return;
    if (c->sent < c->req->len) {
        if (events & (EPOLLERR | EPOLLHUP)) { finish(c, t, FAILED); return; }
        ssize_t w = send(fd, c->req->data + c->sent, c->req->len - c->sent, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno != EAGAIN) finish(c, t, FAILED);
            return;
        }
        c->sent += (size_t)w;
        if (c->sent == c->req->len) {
            struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
            epoll_ctl(epfd, EPOLL_CTL_MOD, fd, &ev);
        }
        return;
    }
    char buf[16384];
    for (;;) {
        ssize_t r = recv(fd, buf, sizeof buf, 0);
        if (r > 0) {
            size_t room = sizeof c->head - 1 - c->head_len;
            size_t take = (size_t)r < room ? (size_t)r : room;
            memcpy(c->head + c->head_len, buf, take);
            c->head_len += take;
            continue;
        }
        if (r == 0) { /* the server closed: the answer is complete */
            c->head[c->head_len] = 0;
            if (strncmp(c->head, "HTTP/1.", 7) == 0 && c->head_len >= 12) c->status = atoi(c->head + 9);
            finish(c, t, DONE);
            return;
        }
        if (errno == EAGAIN) return;
        finish(c, t, FAILED);
        return;
    }
}

static void arm(int tfd, double at, double t0) {
    double abs_t = t0 + at;
    struct itimerspec its = {0};
    its.it_value.tv_sec = (time_t)abs_t;
    its.it_value.tv_nsec = (long)((abs_t - (double)its.it_value.tv_sec) * 1e9);
    if (its.it_value.tv_sec == 0 && its.it_value.tv_nsec == 0) its.it_value.tv_nsec = 1;
    timerfd_settime(tfd, TFD_TIMER_ABSTIME, &its, NULL);
}

int main(int argc, char **argv) {
    if (argc < 6) {
        fprintf(stderr, "usage: %s HOST PORT REQUESTS_FILE RATE DURATION_S [SEED] [TIMEOUT_S]\n", argv[0]);
        return 2;
    }
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[2]))};
    if (inet_pton(AF_INET, argv[1], &addr.sin_addr) != 1) { fprintf(stderr, "bad host\n"); return 2; }
    size_t n_reqs;
    request_t *reqs = load_requests(argv[3], &n_reqs);
    int closed = argv[4][0] == 'c' ? atoi(argv[4] + 1) : 0; /* requests kept in flight, or 0: open */
    double rate = closed ? 1.0 : atof(argv[4]), duration = atof(argv[5]);
    rng_state = argc > 6 ? strtoull(argv[6], NULL, 10) * 0x9E3779B97F4A7C15ULL + 1 : 1;
    double timeout = argc > 7 ? atof(argv[7]) : 15.0;

    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    max_conns = (int)(rl.rlim_cur < 200000 ? rl.rlim_cur : 200000);
    conns = calloc((size_t)max_conns, sizeof *conns);
    epfd = epoll_create1(EPOLL_CLOEXEC);
    int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    struct epoll_event tev = {.events = EPOLLIN, .data.fd = -1};
    epoll_ctl(epfd, EPOLL_CTL_ADD, tfd, &tev);

    double t0 = now_s();
    double next_at = 0.0, max_lag = 0.0, sum_lag = 0.0;
    long sent = 0;
    size_t i = 0;
    arm(tfd, next_at, t0);
    struct epoll_event events[512];
    double last_sweep = 0.0;
    for (;;) {
        int n = epoll_wait(epfd, events, 512, 100);
        double t = now_s() - t0;
        for (int k = 0; k < n; k++) {
            if (events[k].data.fd == -1) {
                uint64_t expirations;
                if (read(tfd, &expirations, sizeof expirations) < 0) { /* spurious */ }
                continue;
            }
            on_event(events[k].data.fd, events[k].events, t);
        }
        t = now_s() - t0;
        for (int k = 0; closed && k < closed && t < duration && in_flight < closed; k++) {
            start(&addr, &reqs[i++ % n_reqs], t); /* a failed connect counts and is retried next turn */
            sent++;
        }
        if (closed) next_at = t < duration ? t : duration; /* no schedule: only the end counts */
        while (!closed && next_at < duration && next_at <= t) {
            double lag = t - next_at;
            sum_lag += lag;
            if (lag > max_lag) max_lag = lag;
            start(&addr, &reqs[i++ % n_reqs], next_at);
            sent++;
            next_at += -log(1.0 - uniform01()) / rate;
        }
        if (!closed && next_at < duration) arm(tfd, next_at, t0);
        if (t - last_sweep > 0.1) { /* time out the stragglers */
            last_sweep = t;
            for (int fd = 0; fd <= top_fd; fd++) {
                if (conns[fd].in_use && t - conns[fd].scheduled > timeout) {
                    finish(&conns[fd], t, TIMED_OUT);
                }
            }
        }
        if (next_at >= duration && in_flight == 0) break;
    }
    double elapsed = now_s() - t0;

    qsort(latencies, n_lat, sizeof *latencies, cmp_double);
    long bad_status = 0, ok = 0;
    for (int s = 0; s < 600; s++) {
        if (s >= 200 && s < 300) ok += statuses[s];
        else bad_status += statuses[s];
    }
    double mean = 0.0;
    for (size_t k = 0; k < n_lat; k++) mean += latencies[k];
    mean = n_lat ? mean / (double)n_lat : NAN;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cpu = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
                 ru.ru_stime.tv_usec / 1e6;
    printf("{\"requests\": %ld, \"ok\": %ld, \"errors\": %ld, \"connect_errors\": %ld, \"io_errors\": %ld,"
           " \"timeouts\": %ld, \"bad_status\": %ld, \"rps\": %.1f, \"p50_ms\": %.2f, \"p90_ms\": %.2f,"
           " \"p99_ms\": %.2f, \"max_ms\": %.2f, \"mean_ms\": %.2f, \"send_lag_mean_ms\": %.3f,"
           " \"send_lag_max_ms\": %.3f, \"loadgen_cpu_s\": %.2f, \"elapsed_s\": %.2f}\n",
           sent, ok, errors_connect + errors_io + errors_timeout + bad_status, errors_connect, errors_io,
           errors_timeout, bad_status, (double)(n_lat + errors_connect + errors_io + errors_timeout) / elapsed, pct(latencies, n_lat, 0.50),
           pct(latencies, n_lat, 0.90), pct(latencies, n_lat, 0.99), n_lat ? latencies[n_lat - 1] : NAN,
           mean, sent ? sum_lag / (double)sent * 1000.0 : 0.0, max_lag * 1000.0, cpu, elapsed);
    return 0;
}
