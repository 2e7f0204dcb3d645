/* Check suite for streams closed with queued writes (linger): any number, any order, peers that drain, vanish or never read, owners that stop before, during or after; hostile TCP clients. */
#include <dirent.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>

#include "stream_test.h"

enum {
  MSG_GO = AX_MSG_USER + 1, /* open, write, close every stream of the plan */
  MSG_STOP,                 /* return AX_STOP */
  MAX_STREAMS = 48,
};

/* What the peer of a stream does while the stream lingers. */
enum { PEER_DRAIN, PEER_VANISH, PEER_NEVER_READS };
/* When the owner stops: right after closing, while the streams linger, or
 * after every linger has ended. */
enum { STOP_BEFORE, STOP_DURING, STOP_AFTER, STOP_ON_MESSAGE };

typedef struct plan {
  int n;
  int mine[MAX_STREAMS];   /* the stream's fd (the actor's end) */
  int peer[MAX_STREAMS];   /* the test's end */
  int kind[MAX_STREAMS];   /* PEER_* */
  int order[MAX_STREAMS];  /* the order the streams are closed in */
  size_t each;             /* bytes written to every stream before its close */
  int64_t linger;
  int stop;                /* STOP_* */
  /* written by the actor, read by the test */
  _Atomic int closed;      /* streams closed with bytes still queued */
  _Atomic int failures;    /* unexpected results inside the actor */
  _Atomic int terminated;
} plan_t;

static int plan_actor(ax_actor_t *self, const ax_msg_t *m) {
  plan_t *p = ax_state(self);
  if (m->type == MSG_STOP)
    return AX_STOP;
  if (m->type != MSG_GO)
    return 0;
  ax_stream_opts_t o;
  memset(&o, 0, sizeof o);
  o.high_water = p->each * 2;
  o.linger = p->linger;
  o.flags = AX_STREAM_PAUSED; /* the peers never send */
  ax_stream_t *s[MAX_STREAMS];
  static unsigned char buf[64 * 1024];
  for (int i = 0; i < p->n; i++) {
    if (ax_pipe_open(self, p->mine[i], p->mine[i], &o, &s[i]) != 0) {
      atomic_fetch_add(&p->failures, 1);
      return AX_STOP;
    }
    for (size_t off = 0; off < p->each; off += sizeof buf) {
      size_t len = p->each - off < sizeof buf ? p->each - off : sizeof buf;
      st_fill_pattern(buf, off, len);
      if (ax_stream_write(s[i], buf, len) != 0)
        atomic_fetch_add(&p->failures, 1);
    }
  }
  for (int k = 0; k < p->n; k++) {
    ax_stream_t *st = s[p->order[k]];
    bool queued = ax_stream_queued(st) > 0;
    if (ax_stream_close(st) != 0)
      atomic_fetch_add(&p->failures, 1);
    if (queued)
      atomic_fetch_add(&p->closed, 1);
  }
  switch (p->stop) {
  case STOP_BEFORE:
    return AX_STOP;
  case STOP_DURING:
    return ax_after(self, p->linger / 3, MSG_STOP, NULL, 0, NULL) == 0 ? 0 : AX_STOP;
  case STOP_AFTER:
    return ax_after(self, p->linger * 2, MSG_STOP, NULL, 0, NULL) == 0 ? 0 : AX_STOP;
  default:
    return 0;
  }
}

static void plan_terminate(ax_actor_t *self, int reason) {
  (void)reason;
  plan_t *p = ax_state(self);
  atomic_fetch_add(&p->terminated, 1);
}

/* A socketpair whose buffers are small, so that `each` bytes cannot all
 * fit in the kernel and some stay queued in the stream. */
static void small_pair(int *mine, int *peer) {
  int sv[2];
  st_socketpair(sv);
  int small = 4096;
  ck_assert_int_eq(setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small), 0);
  ck_assert_int_eq(setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &small, sizeof small), 0);
  ck_assert_int_eq(fcntl(sv[1], F_SETFL, O_NONBLOCK), 0);
  *mine = sv[0];
  *peer = sv[1];
}

/* The number of open fds of this process. */
static int open_fds(void) {
  DIR *d = opendir("/proc/self/fd");
  ck_assert_ptr_nonnull(d);
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL)
    if (e->d_name[0] != '.')
      n++;
  closedir(d);
  return n - 1; /* the directory's own fd */
}

/* CPU seconds used by the whole process so far. */
static double cpu_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The CPU the process uses over ms of idle time, in seconds. */
static double idle_cpu(int ms) {
  double before = cpu_seconds();
  test_sleep_ms(ms);
  return cpu_seconds() - before;
}

/* Reads every DRAIN peer until EOF, checking the pattern and the count. */
static void drain_peers(plan_t *p, int timeout_ms) {
  for (int i = 0; i < p->n; i++) {
    if (p->kind[i] != PEER_DRAIN)
      continue;
    bool eof = false;
    uint64_t got = st_read_pattern(p->peer[i], p->each + 1, timeout_ms, &eof, 0);
    ck_assert_msg(got == p->each, "stream %d: %llu of %zu bytes arrived", i,
                  (unsigned long long)got, p->each);
    ck_assert_msg(eof, "stream %d: no EOF after its bytes", i);
  }
}

static void plan_init(plan_t *p, int n, size_t each, int64_t linger, int stop) {
  memset(p, 0, sizeof *p);
  p->n = n;
  p->each = each;
  p->linger = linger;
  p->stop = stop;
  for (int i = 0; i < n; i++) {
    small_pair(&p->mine[i], &p->peer[i]);
    p->kind[i] = PEER_NEVER_READS;
    p->order[i] = i;
  }
}

static ax_ref_t plan_spawn(ax_rt_t *rt, plan_t *p) {
  return test_spawn(rt, plan_actor, p, AX_PLACE_CORE, 0, NULL, plan_terminate);
}

/* ------------------------------------------------------------------------ */
/* The minimal cases of the report                                           */

/* Two streams with 1 MiB queued each, both closed, and the owner stops in
 * the same turn: the runtime (no KEEP_ALIVE) must finish on its own, and
 * both peers must see their streams end. */
START_TEST(test_linger_two_closed_owner_stops) {
  ax_rt_t *rt = test_rt_new(1, 0);
  plan_t p;
  plan_init(&p, 2, 1 << 20, 5 * AX_NSEC_PER_SEC, STOP_BEFORE);
  ax_ref_t a = plan_spawn(rt, &p);
  test_send(a, MSG_GO, NULL, 0);
  ck_assert_int_eq(ax_rt_run(rt), 0); /* hung here before the fix */
  ck_assert_int_eq(ax_rt_free(rt), 0);
  ck_assert_int_eq(atomic_load(&p.failures), 0);
  ck_assert_int_eq(atomic_load(&p.closed), 2);
  ck_assert_int_eq(atomic_load(&p.terminated), 1);
  for (int i = 0; i < 2; i++) { /* the runtime's end cut the linger short */
    ck_assert_int_eq(st_wait_eof(p.peer[i], 10000), 1);
    close(p.peer[i]);
  }
}
END_TEST

/* The first stream's peer drains it (its linger ends and it is freed), and
 * only then does the owner stop: its death must not touch the freed
 * stream (ASan reported heap-use-after-free here before the fix). */
START_TEST(test_linger_first_drained_then_owner_stops) {
  ax_rt_t *rt = test_rt_new(1, AX_RT_KEEP_ALIVE);
  test_rt_start(rt);
  plan_t p;
  plan_init(&p, 2, 1 << 20, 10 * AX_NSEC_PER_SEC, STOP_ON_MESSAGE);
  p.kind[0] = PEER_DRAIN;
  ax_ref_t a = plan_spawn(rt, &p);
  test_send(a, MSG_GO, NULL, 0);
  TEST_WAIT_UNTIL(atomic_load(&p.closed) == 2, 10000);
  drain_peers(&p, 10000);
  close(p.peer[0]);
  test_sleep_ms(50);
  test_send(a, MSG_STOP, NULL, 0);
  TEST_WAIT_UNTIL(atomic_load(&p.terminated) == 1, 10000);
  /* The second one still lingers (10 s); its bytes still flow. */
  bool eof = false;
  ck_assert_uint_eq(st_read_pattern(p.peer[1], p.each + 1, 10000, &eof, 0), p.each);
  ck_assert(eof);
  close(p.peer[1]);
  ck_assert_int_eq(atomic_load(&p.failures), 0);
  test_rt_stop_join_free(rt);
}
END_TEST

/* AX_LINGER_NONE drops what is queued at close: the peer sees the end at
 * once, with part of the bytes; AX_FOREVER flushes everything however long
 * the peer takes to read. */
START_TEST(test_linger_none_and_forever) {
  ax_rt_t *rt = test_rt_new(1, AX_RT_KEEP_ALIVE);
  test_rt_start(rt);
  plan_t p;
  plan_init(&p, 2, 1 << 20, AX_LINGER_NONE, STOP_ON_MESSAGE);
  ax_ref_t a = plan_spawn(rt, &p);
  test_send(a, MSG_GO, NULL, 0);
  TEST_WAIT_UNTIL(atomic_load(&p.closed) == 2, 10000);
  for (int i = 0; i < 2; i++) {
    bool eof = false;
    uint64_t got = st_read_pattern(p.peer[i], p.each + 1, 10000, &eof, 0);
    ck_assert(eof);
    ck_assert_uint_lt(got, p.each);
    close(p.peer[i]);
  }
  test_send(a, MSG_STOP, NULL, 0);
  TEST_WAIT_UNTIL(atomic_load(&p.terminated) == 1, 10000);

  plan_init(&p, 1, 1 << 20, AX_FOREVER, STOP_BEFORE);
  a = plan_spawn(rt, &p);
  test_send(a, MSG_GO, NULL, 0);
  TEST_WAIT_UNTIL(atomic_load(&p.terminated) == 1, 10000);
  test_sleep_ms(300); /* no time limit: nothing is cut */
  bool eof = false;
  ck_assert_uint_eq(st_read_pattern(p.peer[0], p.each + 1, 10000, &eof, 0), p.each);
  ck_assert(eof);
  close(p.peer[0]);
  ck_assert_int_eq(atomic_load(&p.failures), 0);
  test_rt_stop_join_free(rt);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Every combination                                                         */

/* 3 x 8 streams, closed in a shuffled order: a third with peers that read
 * everything, a third with peers that close their end during the linger,
 * a third with peers that never read.  Within the linger time every
 * stream is flushed or ended and every fd is closed; afterwards the
 * process uses no CPU, and SIGINT still stops the runtime. */
static void run_matrix(int stop) {
  int fds_before = open_fds();
  ax_rt_t *rt = test_rt_new(2, AX_RT_KEEP_ALIVE);
  test_rt_start(rt);
  int fds_rt = open_fds();
  plan_t p;
  /* Long enough for the peers that drain to read everything while the
   * streams linger (sanitizers slow the flushing down ten times). */
  int64_t linger = (TEST_SANITIZED ? 4000 : 400) * AX_NSEC_PER_MSEC;
  plan_init(&p, 24, 256 << 10, linger, stop);
  unsigned seed = 12345u + (unsigned)stop;
  for (int i = 0; i < p.n; i++)
    p.kind[i] = i % 3;
  for (int i = p.n - 1; i > 0; i--) { /* Fisher-Yates */
    int j = (int)(rand_r(&seed) % (unsigned)(i + 1));
    int t = p.order[i];
    p.order[i] = p.order[j];
    p.order[j] = t;
  }
  ax_ref_t a = plan_spawn(rt, &p);
  int64_t start = ax_now();
  test_send(a, MSG_GO, NULL, 0);
  TEST_WAIT_UNTIL(atomic_load(&p.closed) == p.n, 10000);
  for (int i = 0; i < p.n; i++)
    if (p.kind[i] == PEER_VANISH) {
      close(p.peer[i]);
      p.peer[i] = -1;
    }
  drain_peers(&p, 10000);
  /* The peers that never read see the end once the linger runs out. */
  for (int i = 0; i < p.n; i++)
    if (p.kind[i] == PEER_NEVER_READS) {
      struct pollfd pfd = {p.peer[i], POLLRDHUP, 0};
      TEST_WAIT_UNTIL(poll(&pfd, 1, 0) == 1 && (pfd.revents & (POLLHUP | POLLRDHUP)), 10000);
    }
  int64_t ended = ax_now() - start;
  ck_assert_msg(ended < linger + 5 * AX_NSEC_PER_SEC, "the streams took %lld ms to end",
                (long long)(ended / AX_NSEC_PER_MSEC));
  for (int i = 0; i < p.n; i++)
    if (p.peer[i] >= 0) {
      close(p.peer[i]);
      p.peer[i] = -1;
    }
  if (stop != STOP_ON_MESSAGE)
    TEST_WAIT_UNTIL(atomic_load(&p.terminated) == 1, 10000);
  /* Every fd of the streams is closed (the runtime's own stay). */
  ck_assert_int_eq(open_fds(), fds_rt);
  double cpu = idle_cpu(300);
  ck_assert_msg(cpu < 0.1, "idle, the process used %.3f s of CPU in 0.3 s", cpu);
  ck_assert_int_eq(atomic_load(&p.failures), 0);
  /* SIGINT stops the runtime (it claims the signal). */
  ck_assert_int_eq(kill(getpid(), SIGINT), 0);
  ck_assert_int_eq(ax_rt_join(rt), 0);
  ck_assert_int_eq(ax_rt_free(rt), 0);
  ck_assert_int_eq(open_fds(), fds_before);
}

START_TEST(test_linger_matrix_owner_stops_before) { run_matrix(STOP_BEFORE); }
END_TEST

START_TEST(test_linger_matrix_owner_stops_during) { run_matrix(STOP_DURING); }
END_TEST

START_TEST(test_linger_matrix_owner_stops_after) { run_matrix(STOP_AFTER); }
END_TEST

START_TEST(test_linger_matrix_owner_lives) { run_matrix(STOP_ON_MESSAGE); }
END_TEST

/* ------------------------------------------------------------------------ */
/* Hostile TCP clients                                                       */

/* The example's session: echo each line; a client that does not read its
 * echoes (-ENOBUFS) is dropped, so its stream closes with bytes queued. */
static int echo_session(ax_actor_t *self, const ax_msg_t *m) {
  (void)self;
  if (m->type == AX_MSG_DATA) {
    const ax_data_t *d = m->data;
    if (ax_stream_write(d->stream, d->bytes, d->len) < 0 ||
        ax_stream_write(d->stream, "\n", 1) < 0)
      return AX_STOP;
  }
  return m->type == AX_MSG_CLOSED ? AX_STOP : 0;
}

static _Atomic int sessions_ended;
static void session_end(ax_actor_t *self, int reason) {
  (void)self;
  (void)reason;
  atomic_fetch_add(&sessions_ended, 1);
}

static int tcp_client(int port, int rcvbuf) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ck_assert_int_ge(fd, 0);
  if (rcvbuf > 0)
    ck_assert_int_eq(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf), 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
  return fd;
}

/* Clients connect, send lines and never read, until the server stops
 * taking them (its session dropped them with echoes queued); then they
 * disconnect.  The server must stay idle and responsive, and stop on
 * SIGINT. */
START_TEST(test_linger_hostile_clients) {
  int fds_before = open_fds();
  ax_rt_t *rt = test_rt_new(2, 0);
  test_rt_start(rt);
  atomic_store(&sessions_ended, 0);
  ax_serve_opts_t so;
  memset(&so, 0, sizeof so);
  so.stream.frame = AX_FRAME_DELIM;
  so.stream.high_water = 64 << 10;
  so.stream.sndbuf = 8192;
  so.terminate = session_end;
  ax_server_t *srv = NULL;
  ck_assert_int_eq(ax_tcp_serve(rt, "127.0.0.1:0", echo_session, &so, &srv), 0);
  int port = ax_server_port(srv);
  enum { CLIENTS = 20 };
  int c[CLIENTS];
  char line[1024];
  memset(line, 'x', sizeof line - 1);
  line[sizeof line - 1] = '\n';
  for (int i = 0; i < CLIENTS; i++) {
    c[i] = tcp_client(port, 4096);
    ck_assert_int_eq(fcntl(c[i], F_SETFL, O_NONBLOCK), 0);
  }
  /* Send until no client can send more for 300 ms (every session has
   * stopped reading: it was dropped, or its window is full). */
  int64_t idle_since = ax_now();
  while (ax_now() - idle_since < 300 * AX_NSEC_PER_MSEC) {
    bool progress = false;
    for (int i = 0; i < CLIENTS; i++)
      if (send(c[i], line, sizeof line, MSG_NOSIGNAL | MSG_DONTWAIT) > 0)
        progress = true;
    if (progress)
      idle_since = ax_now();
    else
      test_sleep_ms(5);
  }
  TEST_WAIT_UNTIL(atomic_load(&sessions_ended) == CLIENTS, 20000);
  for (int i = 0; i < CLIENTS; i++)
    close(c[i]);
  test_sleep_ms(100);
  double cpu = idle_cpu(500);
  ck_assert_msg(cpu < 0.1, "idle, the server used %.3f s of CPU in 0.5 s", cpu);
  /* A new, polite client is served. */
  int fd = tcp_client(port, 0);
  st_write_all(fd, "ping\n", 5);
  char got[5];
  size_t have = 0;
  while (have < sizeof got) {
    struct pollfd pfd = {fd, POLLIN, 0};
    ck_assert_int_eq(poll(&pfd, 1, 10000), 1);
    ssize_t n = read(fd, got + have, sizeof got - have);
    ck_assert_int_gt(n, 0);
    have += (size_t)n;
  }
  ck_assert_int_eq(memcmp(got, "ping\n", 5), 0);
  close(fd);
  ck_assert_int_eq(kill(getpid(), SIGINT), 0);
  ck_assert_int_eq(ax_rt_join(rt), 0);
  ck_assert_int_eq(ax_server_close(srv), 0);
  ck_assert_int_eq(ax_rt_free(rt), 0);
  ck_assert_int_eq(open_fds(), fds_before);
}
END_TEST

/* A TCP stream whose queued bytes are dropped (its linger time ended, or
 * AX_LINGER_NONE) resets the connection: the peer reads ECONNRESET, not an
 * end of file it would take for an orderly one after a cut. */
typedef struct cut {
  char addr[64];
  int64_t linger;
  _Atomic int closed_queued; /* closed with bytes queued */
  _Atomic int failures;
} cut_t;

enum { CUT_BYTES = 2 << 20 };

static int cut_actor(ax_actor_t *self, const ax_msg_t *m) {
  cut_t *c = ax_state(self);
  if (m->type == MSG_GO) {
    ax_stream_opts_t o;
    memset(&o, 0, sizeof o);
    o.linger = c->linger;
    o.high_water = 2 * CUT_BYTES;
    o.sndbuf = 4096;
    ax_stream_t *st;
    if (ax_tcp_connect(self, c->addr, &o, &st) != 0)
      atomic_fetch_add(&c->failures, 1);
    return 0;
  }
  if (m->type == AX_MSG_CONNECTED) {
    ax_stream_t *st = ((const ax_stream_ev_t *)m->data)->stream;
    static unsigned char buf[64 * 1024];
    for (size_t off = 0; off < CUT_BYTES; off += sizeof buf) {
      st_fill_pattern(buf, off, sizeof buf);
      if (ax_stream_write(st, buf, sizeof buf) != 0)
        atomic_fetch_add(&c->failures, 1);
    }
    bool queued = ax_stream_queued(st) > 0;
    if (ax_stream_close(st) != 0)
      atomic_fetch_add(&c->failures, 1);
    atomic_store(&c->closed_queued, queued ? 1 : -1);
    return AX_STOP;
  }
  if (m->type == AX_MSG_CLOSED)
    atomic_fetch_add(&c->failures, 1);
  return 0;
}

START_TEST(test_linger_tcp_cut_resets) {
  int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ck_assert_int_eq(bind(l, (struct sockaddr *)&sa, sizeof sa), 0);
  int small = 4096;
  ck_assert_int_eq(setsockopt(l, SOL_SOCKET, SO_RCVBUF, &small, sizeof small), 0);
  ck_assert_int_eq(listen(l, 4), 0);
  socklen_t len = sizeof sa;
  ck_assert_int_eq(getsockname(l, (struct sockaddr *)&sa, &len), 0);
  ax_rt_t *rt = test_rt_new(1, AX_RT_KEEP_ALIVE);
  test_rt_start(rt);
  static const int64_t lingers[] = {100 * AX_NSEC_PER_MSEC, AX_LINGER_NONE};
  for (int k = 0; k < 2; k++) {
    static cut_t c;
    memset(&c, 0, sizeof c);
    snprintf(c.addr, sizeof c.addr, "127.0.0.1:%d", ntohs(sa.sin_port));
    c.linger = lingers[k];
    ax_ref_t a = test_spawn(rt, cut_actor, &c, AX_PLACE_ANY, 0, NULL, NULL);
    test_send(a, MSG_GO, NULL, 0);
    int peer = accept4(l, NULL, NULL, SOCK_CLOEXEC);
    ck_assert_int_ge(peer, 0);
    TEST_WAIT_UNTIL(atomic_load(&c.closed_queued) != 0, 10000);
    ck_assert_int_eq(atomic_load(&c.closed_queued), 1); /* bytes were queued at the close */
    test_sleep_ms(400);                                  /* the linger time has ended */
    static unsigned char buf[64 * 1024];
    ssize_t n;
    size_t got = 0;
    while ((n = read(peer, buf, sizeof buf)) > 0)
      got += (size_t)n;
    ck_assert_msg(n < 0 && errno == ECONNRESET,
                  "linger %lld: after %zu of %d bytes the peer read %s, not ECONNRESET",
                  (long long)lingers[k], got, CUT_BYTES, n == 0 ? "an end of file" : strerror(errno));
    ck_assert_int_lt(got, CUT_BYTES);
    ck_assert_int_eq(atomic_load(&c.failures), 0);
    close(peer);
  }
  test_rt_stop_join_free(rt);
  close(l);
}
END_TEST

/* Memory goes back after slow consumers: sessions that queue 1 MiB for
 * peers that never read are dropped (closed on -ENOBUFS, so they linger),
 * then the peers reset.  Once the core has been idle a while, the queues'
 * memory, freed into malloc's arenas by the lingering streams, is trimmed
 * back: RSS ends within 8 MiB of where it started (it stayed about 50 MiB
 * higher before the core counted what streams free).  The sanitizers'
 * allocators keep their own memory: there only the rest is checked. */
static char queue_buf[64 * 1024]; /* filled before the cores start; they only read it */

static int queue_session(ax_actor_t *self, const ax_msg_t *m) {
  (void)self;
  if (m->type == AX_MSG_DATA) {
    const ax_data_t *d = m->data;
    for (int i = 0; i < 64; i++)
      if (ax_stream_write(d->stream, queue_buf, sizeof queue_buf) == -ENOBUFS) {
        ax_stream_close(d->stream); /* dropped: its queue lingers */
        return AX_STOP;
      }
  }
  return m->type == AX_MSG_CLOSED ? AX_STOP : 0;
}

static long rss_kib(void) {
  FILE *f = fopen("/proc/self/status", "r");
  ck_assert_ptr_nonnull(f);
  char line[256];
  long v = -1;
  while (fgets(line, sizeof line, f) != NULL)
    if (strncmp(line, "VmRSS:", 6) == 0)
      v = atol(line + 6);
  fclose(f);
  return v;
}

START_TEST(test_linger_queues_memory_goes_back) {
  memset(queue_buf, 'q', sizeof queue_buf);
  ax_rt_t *rt = test_rt_new(2, AX_RT_KEEP_ALIVE);
  test_rt_start(rt);
  atomic_store(&sessions_ended, 0);
  ax_serve_opts_t so;
  memset(&so, 0, sizeof so);
  so.stream.sndbuf = 4096;
  so.terminate = session_end;
  ax_server_t *srv = NULL;
  ck_assert_int_eq(ax_tcp_serve(rt, "127.0.0.1:0", queue_session, &so, &srv), 0);
  int port = ax_server_port(srv);
  enum { PEERS = 50 };
  test_sleep_ms(100);
  long before = rss_kib();
  int c[PEERS];
  for (int i = 0; i < PEERS; i++) {
    c[i] = tcp_client(port, 4096);
    st_write_all(c[i], "go\n", 3);
  }
  TEST_WAIT_UNTIL(atomic_load(&sessions_ended) == PEERS, 20000);
  /* The sessions' own end is trimmed first (their messages' spans); the
   * queues go later, when the peers reset the lingering streams. */
  test_sleep_ms(600);
  long queued = rss_kib();
  for (int i = 0; i < PEERS; i++) {
    struct linger lg = {1, 0};
    ck_assert_int_eq(setsockopt(c[i], SOL_SOCKET, SO_LINGER, &lg, sizeof lg), 0);
    close(c[i]); /* a reset: the lingering streams end at once */
  }
  long after = queued;
  for (int i = 0; i < 300 && after > before + 8 * 1024; i++) {
    test_sleep_ms(10);
    after = rss_kib();
  }
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  printf("  info  RSS %ld KiB before, %ld with the queues, %ld after (sanitizer allocator: not "
         "checked)\n", before, queued, after);
#else
  ck_assert_msg(queued > before + PEERS * 512, "the queues took only %ld KiB: nothing to test",
                queued - before);
  ck_assert_msg(after <= before + 8 * 1024, "RSS %ld KiB before, %ld with the queues, %ld 3 s after",
                before, queued, after);
#endif
  ax_rt_stop(rt);
  ck_assert_int_eq(ax_rt_join(rt), 0);
  ck_assert_int_eq(ax_server_close(srv), 0);
  ck_assert_int_eq(ax_rt_free(rt), 0);
}
END_TEST

/* A stream with writes queued, given to an actor on another core that
 * stops before it takes it: the stream is finished on that core and
 * lingers there (200 ms), then its fd closes.  It lingered on the giver's
 * core's loop from the wrong thread: an assertion in debug builds, and in
 * release a linger that never ended (the fd stayed open). */
enum { MSG_GIVE = MSG_GO + 100, MSG_HOLD };
static int give_fd;
static ax_ref_t give_to;
static atomic_int give_rc;

static int dying_behaviour(ax_actor_t *self, const ax_msg_t *m) {
  (void)self;
  /* On the other core: busy until the giver has given, so that it is
   * alive when the stream is given and dies (MSG_STOP, queued behind)
   * before it takes it.  Without this its core stopped it first now and
   * then, and the give said -ESRCH. */
  if (m->type == MSG_HOLD)
    while (atomic_load(&give_rc) == 0)
      ;
  return m->type == MSG_STOP ? AX_STOP : 0;
}

static int giver_behaviour(ax_actor_t *self, const ax_msg_t *m) {
  if (m->type != MSG_GIVE)
    return 0;
  ax_stream_opts_t o;
  memset(&o, 0, sizeof o);
  o.linger = 200 * AX_NSEC_PER_MSEC;
  o.flags = AX_STREAM_PAUSED;
  o.high_water = 8 << 20;
  ax_stream_t *st;
  int rc = ax_pipe_open(self, give_fd, give_fd, &o, &st);
  static unsigned char buf[1 << 20];
  if (rc == 0)
    rc = ax_stream_write(st, buf, sizeof buf);
  if (rc == 0 && ax_stream_queued(st) == 0)
    rc = -EAGAIN; /* nothing queued: the case is not made */
  if (rc == 0 && ax_ref_core(give_to) != (int)ax_core(self))
    rc = ax_send(give_to, MSG_HOLD, NULL, 0);
  if (rc == 0)
    rc = ax_send(give_to, MSG_STOP, NULL, 0); /* it stops before the hand-over comes */
  if (rc == 0)
    rc = ax_stream_give(st, give_to);
  atomic_store(&give_rc, rc == 0 ? 1 : rc);
  return 0;
}

START_TEST(test_linger_given_to_dying_actor) {
  for (unsigned core = 0; core < 2; core++) { /* the same core, then the other */
    ax_rt_t *rt = test_rt_new(2, AX_RT_KEEP_ALIVE | AX_RT_NO_SIGNALS);
    test_rt_start(rt);
    int fds = open_fds();
    int peer;
    small_pair(&give_fd, &peer);
    atomic_store(&give_rc, 0);
    give_to = test_spawn(rt, dying_behaviour, NULL, AX_PLACE_CORE, core, NULL, NULL);
    ax_ref_t a = test_spawn(rt, giver_behaviour, NULL, AX_PLACE_CORE, 0, NULL, NULL);
    test_send(a, MSG_GIVE, NULL, 0);
    TEST_WAIT_UNTIL(atomic_load(&give_rc) != 0, 10000);
    ck_assert_int_eq(atomic_load(&give_rc), 1);
    TEST_WAIT_UNTIL(fcntl(give_fd, F_GETFD) < 0, 5000); /* the linger's 200 ms, and then some */
    close(peer);
    ck_assert_int_eq(open_fds(), fds);
    test_send(a, MSG_STOP, NULL, 0);
    test_rt_stop_join_free(rt);
  }
}
END_TEST

/* The peer half-closes (shutdown(SHUT_WR), as `nc -N` or an HTTP/1.0
 * client does) while the stream, not half-open, still has bytes queued for
 * it: the stream ends with CLOSED{0}, and its queue is still written in the
 * background (the linger), then a FIN.  Before, the end of file dropped
 * the queue and reset a TCP peer that was still reading (a newcomer's
 * echo server lost 4.9 of 5 MB). */
enum { EOF_BYTES = 1 << 20 };
static _Atomic int eof_written, eof_closed_rc = 1;

static int eof_writer(ax_actor_t *self, const ax_msg_t *m) {
  if (m->type == MSG_STOP)
    return AX_STOP;
  if (m->type == MSG_GO) {
    ax_stream_opts_t o = {.high_water = 2 * EOF_BYTES, .sndbuf = 4096};
    ax_stream_t *st;
    int fd;
    memcpy(&fd, m->data, sizeof fd);
    int rc = ax_pipe_open(self, fd, fd, &o, &st);
    static unsigned char buf[64 * 1024];
    for (size_t off = 0; rc == 0 && off < EOF_BYTES; off += sizeof buf) {
      st_fill_pattern(buf, off, sizeof buf);
      rc = ax_stream_write(st, buf, sizeof buf);
    }
    if (rc == 0 && ax_stream_queued(st) == 0)
      rc = -EAGAIN; /* nothing queued: the case is not made */
    atomic_store(&eof_written, rc == 0 ? 1 : rc);
  } else if (m->type == AX_MSG_CLOSED) {
    atomic_store(&eof_closed_rc, ((const ax_stream_ev_t *)m->data)->err);
  }
  return 0;
}

START_TEST(test_linger_peer_eof_flushes) {
  for (int tcp = 0; tcp < 2; tcp++) {
    ax_rt_t *rt = test_rt_new(1, AX_RT_KEEP_ALIVE | AX_RT_NO_SIGNALS);
    test_rt_start(rt);
    int mine, peer;
    if (tcp) {
      int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      struct sockaddr_in sa = {.sin_family = AF_INET};
      sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      ck_assert_int_eq(bind(l, (struct sockaddr *)&sa, sizeof sa), 0);
      ck_assert_int_eq(listen(l, 1), 0);
      socklen_t len = sizeof sa;
      ck_assert_int_eq(getsockname(l, (struct sockaddr *)&sa, &len), 0);
      peer = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      int small = 4096;
      ck_assert_int_eq(setsockopt(peer, SOL_SOCKET, SO_RCVBUF, &small, sizeof small), 0);
      ck_assert_int_eq(connect(peer, (struct sockaddr *)&sa, sizeof sa), 0);
      mine = accept4(l, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
      ck_assert_int_ge(mine, 0);
      ck_assert_int_eq(setsockopt(mine, SOL_SOCKET, SO_SNDBUF, &small, sizeof small), 0);
      close(l);
    } else {
      small_pair(&mine, &peer);
    }
    atomic_store(&eof_written, 0);
    atomic_store(&eof_closed_rc, 1);
    ax_ref_t a = test_spawn(rt, eof_writer, NULL, AX_PLACE_CORE, 0, NULL, NULL);
    test_send(a, MSG_GO, &mine, sizeof mine);
    TEST_WAIT_UNTIL(atomic_load(&eof_written) != 0, 10000);
    ck_assert_int_eq(atomic_load(&eof_written), 1);
    ck_assert_int_eq(shutdown(peer, SHUT_WR), 0);
    TEST_WAIT_UNTIL(atomic_load(&eof_closed_rc) != 1, 10000);
    ck_assert_int_eq(atomic_load(&eof_closed_rc), 0);
    test_sleep_ms(50); /* the owner has handled CLOSED: the stream is closed */
    bool eof = false;
    uint64_t got = st_read_pattern(peer, EOF_BYTES + 1, 5000, &eof, 0);
    ck_assert_msg(got == EOF_BYTES && eof, "%s: %llu of %d bytes, then %s",
                  tcp ? "tcp" : "socketpair", (unsigned long long)got, EOF_BYTES,
                  eof ? "EOF" : "no EOF");
    close(peer);
    test_send(a, MSG_STOP, NULL, 0);
    test_rt_stop_join_free(rt);
  }
}
END_TEST

static Suite *linger_suite(void) {
  Suite *s = suite_create("linger");
  TCase *tc = tcase_create("minimal");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_linger_two_closed_owner_stops);
  tcase_add_test(tc, test_linger_first_drained_then_owner_stops);
  tcase_add_test(tc, test_linger_none_and_forever);
  tcase_add_test(tc, test_linger_tcp_cut_resets);
  tcase_add_test(tc, test_linger_given_to_dying_actor);
  tcase_add_test(tc, test_linger_peer_eof_flushes);
  suite_add_tcase(s, tc);
  tc = tcase_create("matrix");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_linger_matrix_owner_stops_before);
  tcase_add_test(tc, test_linger_matrix_owner_stops_during);
  tcase_add_test(tc, test_linger_matrix_owner_stops_after);
  tcase_add_test(tc, test_linger_matrix_owner_lives);
  suite_add_tcase(s, tc);
  tc = tcase_create("hostile");
  tcase_set_timeout(tc, 90);
  tcase_add_test(tc, test_linger_hostile_clients);
  tcase_add_test(tc, test_linger_queues_memory_goes_back);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  return test_run_suite(linger_suite());
}
