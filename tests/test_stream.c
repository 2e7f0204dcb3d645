/* Check suite for streams: pipes and socket pairs as messages, flow control, writes, half-close, close, moving across cores (framing: test_framing.c). */
#include <fcntl.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>

#include "stream_test.h"

/* The scripted actors live on core 1 unless a test says otherwise; core 0
 * stays free for the actors a stream is given to. */
enum { CORE_A = 1, CORE_B = 0 };

static ax_stream_opts_t opts_zero(void) {
  ax_stream_opts_t o;
  memset(&o, 0, sizeof o);
  return o;
}

/* Waits until the actor has handled everything sent to it so far. */
static void barrier(st_env_t *env, ax_ref_t a) {
  ck_assert_int_eq(st_call(env, a, CMD_NOP, -1, 0), 0);
}

/* ------------------------------------------------------------------------ */
/* Opening, bad arguments                                                    */

START_TEST(test_stream_pipe_basic) {
  st_env_t env;
  st_env_init(&env);
  st_actor_t a;
  st_actor_init(&env, &a, 1);
  ax_ref_t ar = st_spawn(&env, &a, CORE_A);

  /* A pipe pair: reads from in[0], writes to out[1]. */
  int in[2], out[2];
  ck_assert_int_eq(pipe2(in, O_CLOEXEC), 0);
  ck_assert_int_eq(pipe2(out, O_CLOEXEC), 0);
  ck_assert_int_eq(st_pipe_open(&env, ar, 0, in[0], out[1], NULL), 0);
  st_write_all(in[1], "hello", 5);
  st_expect_bytes(&env, "hello", 5);
  ck_assert_int_eq(st_write(&env, ar, 0, "world", 5), 0);
  char buf[16];
  ck_assert_int_eq((int)read(out[0], buf, sizeof buf), 5);
  ck_assert(memcmp(buf, "world", 5) == 0);
  int64_t fd = -1;
  st_cmd_t *c = st_cmd_new(0, NULL, 0);
  fd = st_call_cmd(&env, ar, CMD_FD, c, NULL);
  free(c);
  ck_assert_int_eq((int)fd, in[0]); /* the read fd */
  /* The fds are non-blocking now. */
  ck_assert(fcntl(in[0], F_GETFL) & O_NONBLOCK);
  ck_assert(fcntl(out[1], F_GETFL) & O_NONBLOCK);
  close(in[1]);
  st_report_t *r = st_expect(&env, AX_MSG_CLOSED);
  ck_assert_int_eq(r->err, 0);
  ck_assert_int_eq(r->slot, 0);
  /* The stream closed both of its fds when its CLOSED was handled. */
  TEST_WAIT_UNTIL(st_wait_eof(out[0], 10) == 1, 10000);
  close(out[0]);

  /* A socket pair adopted as one fd. */
  int sv[2];
  st_socketpair(sv);
  ck_assert_int_eq(st_pipe_open(&env, ar, 1, sv[0], sv[0], NULL), 0);
  st_write_all(sv[1], "ping", 4);
  st_expect_bytes(&env, "ping", 4);
  ck_assert_int_eq(st_write(&env, ar, 1, "pong", 4), 0);
  ck_assert_int_eq((int)read(sv[1], buf, sizeof buf), 4);
  ck_assert(memcmp(buf, "pong", 4) == 0);
  close(sv[1]);
  r = st_expect(&env, AX_MSG_CLOSED);
  ck_assert_int_eq(r->err, 0);
  ck_assert_int_eq(atomic_load(&a.violations), 0);
  st_env_done(&env);
}
END_TEST

/* Hook state for the argument checks run inside the actor. */
typedef struct args_check {
  int fails;
  char what[256];
} args_check_t;

#define ARG_CHECK(cond)                                                                  \
  do {                                                                                   \
    if (!(cond) && chk->fails++ == 0)                                                    \
      snprintf(chk->what, sizeof chk->what, "line %d: %s", __LINE__, #cond);           \
  } while (0)

static bool fd_is_open(int fd) { return fcntl(fd, F_GETFD) != -1; }

/* Runs inside the actor: every bad-argument case of the stream calls. */
static int args_hook(ax_actor_t *self, st_actor_t *a, const ax_msg_t *m) {
  if (m->type != CMD_USER)
    return ST_NEXT;
  args_check_t *chk = a->user;
  ax_stream_t *s = NULL;
  int p[2];
  /* NULL out, both fds -1, a closed fd: -EINVAL, and the fds are closed. */
  ARG_CHECK(pipe2(p, O_CLOEXEC) == 0);
  ARG_CHECK(ax_pipe_open(self, p[0], p[1], NULL, NULL) == -EINVAL);
  ARG_CHECK(!fd_is_open(p[0]) && !fd_is_open(p[1]));
  ARG_CHECK(ax_pipe_open(self, -1, -1, NULL, &s) == -EINVAL);
  ARG_CHECK(pipe2(p, O_CLOEXEC) == 0);
  close(p[1]);
  ARG_CHECK(ax_pipe_open(self, p[0], 100000, NULL, &s) == -EINVAL); /* not an open fd */
  ARG_CHECK(!fd_is_open(p[0]));
  /* Bad options. */
  ax_stream_opts_t bad[7];
  memset(bad, 0, sizeof bad);
  bad[6].flags = AX_STREAM_PAUSED << 1; /* no such flag */
  bad[0].frame = (ax_frame_t)7;
  bad[1].frame = AX_FRAME_LENGTH;
  bad[1].len_bytes = 3;
  bad[2].max_frame = ((size_t)16 << 20) + 1;
  bad[3].linger = -3;
  bad[4].connect_timeout = -5;
  bad[5].sndbuf = -1;
  for (int i = 0; i < 7; i++) {
    ARG_CHECK(pipe2(p, O_CLOEXEC) == 0);
    int rc = ax_pipe_open(self, p[0], p[1], &bad[i], &s);
    if (rc != -EINVAL && chk->fails++ == 0)
      snprintf(chk->what, sizeof chk->what, "bad options %d accepted: %d", i, rc);
    ARG_CHECK(!fd_is_open(p[0]) && !fd_is_open(p[1]));
  }
  /* The largest frame allowed is accepted. */
  ax_stream_opts_t ok = opts_zero();
  ok.max_frame = (size_t)16 << 20;
  ok.frame = AX_FRAME_LENGTH;
  ok.len_bytes = 4;
  ARG_CHECK(pipe2(p, O_CLOEXEC) == 0);
  ARG_CHECK(ax_pipe_open(self, p[0], p[1], &ok, &s) == 0);

  /* Calls with a NULL stream or bad values. */
  ARG_CHECK(ax_stream_write(NULL, "x", 1) == -EINVAL);
  ARG_CHECK(ax_stream_write(s, NULL, 1) == -EINVAL);
  ARG_CHECK(ax_stream_write(s, NULL, 0) == 0);
  ARG_CHECK(ax_stream_write(s, "", 0) == 0);
  ARG_CHECK(ax_stream_queued(NULL) == 0);
  ARG_CHECK(ax_stream_queued(s) == 0);
  ARG_CHECK(ax_stream_shutdown(NULL) == -EINVAL);
  ARG_CHECK(ax_stream_close(NULL) == -EINVAL);
  ARG_CHECK(ax_stream_pause(NULL) == -EINVAL);
  ARG_CHECK(ax_stream_resume(NULL) == -EINVAL);
  ARG_CHECK(ax_stream_active(NULL, 1) == -EINVAL);
  ARG_CHECK(ax_stream_active(s, 0) == -EINVAL);
  ARG_CHECK(ax_stream_active(s, -3) == -EINVAL);
  ARG_CHECK(ax_stream_give(NULL, ax_self(self)) == -EINVAL);
  ARG_CHECK(ax_stream_give(s, AX_REF_NONE) == -EINVAL);
  ARG_CHECK(ax_stream_give(s, a->evport) == -EINVAL); /* a port */
  ARG_CHECK(ax_stream_set_nodelay(NULL, true) == -EINVAL);
  ARG_CHECK(ax_stream_set_keepalive(NULL, true, 0) == -EINVAL);
  ARG_CHECK(ax_stream_set_bufsize(NULL, 0, 0) == -EINVAL);
  ARG_CHECK(ax_stream_fd(NULL) == -EINVAL);
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  ARG_CHECK(ax_stream_peer(NULL, &ss, &len) == -EINVAL);
  ARG_CHECK(ax_stream_peer(s, NULL, &len) == -EINVAL);
  ARG_CHECK(ax_stream_peer(s, &ss, NULL) == -EINVAL);
  /* Socket calls on a pipe. */
  ARG_CHECK(ax_stream_set_nodelay(s, true) == -ENOTSOCK);
  ARG_CHECK(ax_stream_set_keepalive(s, true, 10) == -ENOTSOCK);
  ARG_CHECK(ax_stream_set_bufsize(s, 4096, 4096) == -ENOTSOCK);
  ARG_CHECK(ax_stream_peer(s, &ss, &len) == -ENOTSOCK);
  ARG_CHECK(ax_stream_fd(s) == p[0]);
  /* The user pointer. */
  ARG_CHECK(ax_stream_data(s) == NULL);
  ax_stream_set_data(s, chk);
  ARG_CHECK(ax_stream_data(s) == chk);
  ax_stream_set_data(NULL, chk); /* ignored, no crash */
  ARG_CHECK(ax_stream_data(NULL) == NULL);
  /* The still-working stream after all those refusals. */
  ARG_CHECK(ax_stream_write(s, "ok", 2) == 0);
  char buf[4];
  ARG_CHECK(read(p[0], buf, sizeof buf) == 2); /* our own write end loops back */
  ARG_CHECK(ax_stream_close(s) == 0);
  ARG_CHECK(!fd_is_open(p[0]) && !fd_is_open(p[1]));

  /* A write-only pipe and a read-only pipe. */
  ARG_CHECK(pipe2(p, O_CLOEXEC) == 0);
  ARG_CHECK(ax_pipe_open(self, -1, p[1], NULL, &s) == 0);
  ARG_CHECK(ax_stream_fd(s) == p[1]);
  ARG_CHECK(ax_stream_write(s, "w", 1) == 0);
  ARG_CHECK(read(p[0], buf, sizeof buf) == 1);
  ARG_CHECK(ax_stream_close(s) == 0);
  close(p[0]);
  ARG_CHECK(pipe2(p, O_CLOEXEC) == 0);
  ARG_CHECK(ax_pipe_open(self, p[0], -1, NULL, &s) == 0);
  ARG_CHECK(ax_stream_write(s, "r", 1) == -EPIPE);
  ARG_CHECK(ax_stream_close(s) == 0);
  close(p[1]);

  /* Listener calls. */
  ARG_CHECK(ax_listener_port(NULL) == -EINVAL);
  ARG_CHECK(ax_listener_close(NULL) == -EINVAL);
  st_reply(a, CMD_USER, chk->fails, 0);
  return 0;
}

START_TEST(test_stream_bad_arguments) {
  /* From a thread that is not an actor: NULL self closes the fds too. */
  int p[2];
  ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
  ax_stream_t *s = NULL;
  ck_assert_int_eq(ax_pipe_open(NULL, p[0], p[1], NULL, &s), -EINVAL);
  ck_assert(!test_fd_open(p[0]));
  ck_assert(!test_fd_open(p[1]));

  st_env_t env;
  st_env_init(&env);
  st_actor_t a;
  args_check_t chk;
  memset(&chk, 0, sizeof chk);
  st_actor_init(&env, &a, 1);
  a.hook = args_hook;
  a.user = &chk;
  ax_ref_t ar = st_spawn(&env, &a, CORE_A);
  int fails = st_call(&env, ar, CMD_USER, -1, 0);
  ck_assert_msg(fails == 0, "%d argument checks failed, first: %s", fails, chk.what);
  st_expect_none(&env, 50); /* closed streams said nothing */
  st_env_done(&env);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Flow control                                                              */

/* Hook state of the window checks: the total written before the stream
 * opened, so that (total - FIONREAD) is what the stream has read. */
typedef struct window_check {
  uint64_t total;
  uint64_t handled;     /* bytes of DATA handled before this one */
  uint64_t max_ahead;   /* most bytes read but not handled, seen in a DATA */
  uint64_t limit;       /* window * largest DATA */
  unsigned data_msgs;
} window_check_t;

static int window_hook(ax_actor_t *self, st_actor_t *a, const ax_msg_t *m) {
  (void)self;
  window_check_t *w = a->user;
  if (m->type != AX_MSG_DATA)
    return ST_NEXT;
  const ax_data_t *d = m->data;
  int inq = -1;
  if (ioctl(ax_stream_fd(d->stream), FIONREAD, &inq) != 0)
    atomic_fetch_add(&a->violations, 1);
  uint64_t consumed = w->total - (uint64_t)inq;
  uint64_t ahead = consumed - w->handled;
  if (ahead > w->max_ahead)
    w->max_ahead = ahead;
  if (ahead > w->limit)
    atomic_fetch_add(&a->violations, 1); /* more than `window` DATA unhandled */
  if (st_check_pattern(d->bytes, w->handled, d->len) != 0)
    atomic_fetch_add(&a->pattern_errors, 1);
  w->handled += d->len;
  w->data_msgs++;
  atomic_fetch_add(&a->rx_bytes, d->len);
  return 0;
}

/* Fills a pipe of 1 MiB with the pattern before the stream opens; the
 * stream may read 1 MiB per event, 64 KiB per read, so only the window
 * stops it from reading everything at once. */
static void window_bound_run(unsigned window, size_t read_max, uint64_t data_max) {
  st_env_t env;
  st_env_init(&env);
  int p[2];
  ck_assert_int_eq(pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
  ck_assert_int_ge(fcntl(p[1], F_SETPIPE_SZ, 1 << 20), 1 << 20);
  static unsigned char buf[1 << 20];
  st_fill_pattern(buf, 0, sizeof buf);
  ck_assert_int_eq((int)write(p[1], buf, sizeof buf), (int)sizeof buf);

  window_check_t w;
  memset(&w, 0, sizeof w);
  w.total = sizeof buf;
  w.limit = window * data_max;
  st_actor_t a;
  st_actor_init(&env, &a, 1);
  a.hook = window_hook;
  a.user = &w;
  ax_ref_t ar = st_spawn(&env, &a, CORE_A);
  ax_stream_opts_t o = opts_zero();
  o.window = window;
  o.read_max = read_max;
  ck_assert_int_eq(st_pipe_open(&env, ar, 0, p[0], -1, &o), 0);
  TEST_WAIT_UNTIL(atomic_load(&a.rx_bytes) == sizeof buf, 20000);
  close(p[1]);
  st_expect(&env, AX_MSG_CLOSED);
  barrier(&env, ar);
  ck_assert_msg(atomic_load(&a.violations) == 0,
                "more than %u DATA unhandled: %llu bytes read ahead (limit %llu)", window,
                (unsigned long long)w.max_ahead, (unsigned long long)w.limit);
  ck_assert_int_eq(atomic_load(&a.pattern_errors), 0);
  ax_core_stats_t st;
  ck_assert_int_eq(ax_rt_stats(env.rt, CORE_A, &st), 0);
  /* A turn handles what was queued when it began: at most the window of
   * DATA plus CLOSED and a command. */
  ck_assert_uint_le(st.turn_max, window + 2);
  st_env_done(&env);
}

START_TEST(test_stream_window_bound) {
  window_bound_run(3, 1 << 20, 64 * 1024);
  window_bound_run(1, 1 << 20, 64 * 1024);
  window_bound_run(8, 4096, 4096);
}
END_TEST

/* Lines under a window of 4: each read yields thousands of lines, the
 * framer may post only 4 at a time. */
typedef struct lines_check {
  uint64_t next;
  uint64_t n;
} lines_check_t;

static int lines_hook(ax_actor_t *self, st_actor_t *a, const ax_msg_t *m) {
  (void)self;
  lines_check_t *l = a->user;
  if (m->type != AX_MSG_DATA)
    return ST_NEXT;
  const ax_data_t *d = m->data;
  char want[16];
  int n = snprintf(want, sizeof want, "%07llu", (unsigned long long)l->next);
  if (d->len != (size_t)n || memcmp(d->bytes, want, (size_t)n) != 0)
    atomic_fetch_add(&a->pattern_errors, 1);
  l->next++;
  atomic_fetch_add(&a->rx_msgs, 1);
  return 0;
}

typedef struct line_writer {
  int fd;
  uint64_t n;
} line_writer_t;

static void *line_writer_main(void *arg) {
  line_writer_t *w = arg;
  char *buf = malloc(8 * w->n + 1);
  size_t len = 0;
  for (uint64_t i = 0; i < w->n; i++)
    len += (size_t)sprintf(buf + len, "%07llu\n", (unsigned long long)i);
  size_t off = 0;
  while (off < len) {
    ssize_t k = write(w->fd, buf + off, len - off > 3000 ? 3000 : len - off);
    if (k <= 0)
      break;
    off += (size_t)k;
  }
  free(buf);
  close(w->fd);
  return NULL;
}

START_TEST(test_stream_window_lines) {
  st_env_t env;
  st_env_init(&env);
  lines_check_t l = {0, test_scaled(50000)};
  st_actor_t a;
  st_actor_init(&env, &a, 1);
  a.hook = lines_hook;
  a.user = &l;
  ax_ref_t ar = st_spawn(&env, &a, CORE_A);
  int sv[2];
  st_socketpair(sv);
  ax_stream_opts_t o = opts_zero();
  o.window = 4;
  o.frame = AX_FRAME_DELIM;
  ck_assert_int_eq(st_pipe_open(&env, ar, 0, sv[0], sv[0], &o), 0);
  line_writer_t w = {sv[1], l.n};
  pthread_t t;
  ck_assert_int_eq(pthread_create(&t, NULL, line_writer_main, &w), 0);
  st_report_t *r = st_expect(&env, AX_MSG_CLOSED);
  ck_assert_int_eq(r->err, 0);
  ck_assert_int_eq(pthread_join(t, NULL), 0);
  barrier(&env, ar);
  ck_assert_uint_eq(atomic_load(&a.rx_msgs), l.n);
  ck_assert_int_eq(atomic_load(&a.pattern_errors), 0);
  ax_core_stats_t st;
  ck_assert_int_eq(ax_rt_stats(env.rt, CORE_A, &st), 0);
  ck_assert_uint_le(st.turn_max, 4 + 2);
  st_env_done(&env);
}
END_TEST

/* A slow owner: it blocks in its first DATA until the test lets it go. */
typedef struct slow_owner {
  sem_t entered, go;
  bool blocked_once;
} slow_owner_t;

static int slow_hook(ax_actor_t *self, st_actor_t *a, const ax_msg_t *m) {
  (void)self;
  slow_owner_t *so = a->user;
  if (m->type == AX_MSG_DATA && !so->blocked_once) {
    so->blocked_once = true;
    sem_post(&so->entered);
    while (sem_wait(&so->go) != 0) {
    }
  }
  return ST_NEXT;
}

START_TEST(test_stream_slow_owner_pushback) {
  st_env_t env;
  st_env_init(&env);
  slow_owner_t so;
  memset(&so, 0, sizeof so);
  ck_assert_int_eq(sem_init(&so.entered, 0, 0), 0);
  ck_assert_int_eq(sem_init(&so.go, 0, 0), 0);
  st_actor_t a;
  st_actor_init(&env, &a, 1);
  a.hook = slow_hook;
  a.user = &so;
  a.check_pattern = true;
  ax_ref_t ar = st_spawn(&env, &a, CORE_A);
  int p[2];
  ck_assert_int_eq(pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
  ck_assert_int_ge(fcntl(p[1], F_SETPIPE_SZ, 64 * 1024), 64 * 1024);
  int cap = fcntl(p[1], F_GETPIPE_SZ);
  ax_stream_opts_t o = opts_zero();
  o.window = 2;
  o.read_max = 4096;
  ck_assert_int_eq(st_pipe_open(&env, ar, 0, p[0], -1, &o), 0);

  /* Write until the kernel refuses: the owner is stuck in its first DATA,
   * so the stream reads no more than its window. */
  uint64_t total = 2 * 1024 * 1024, off = 0;
  unsigned char *buf = malloc(total);
  st_fill_pattern(buf, 0, total);
  ck_assert_int_eq((int)write(p[1], buf, 4096), 4096);
  off = 4096;
  while (sem_wait(&so.entered) != 0) {
  }
  for (;;) {
    ssize_t n = write(p[1], buf + off, 4096);
    if (n < 0) {
      ck_assert_int_eq(errno, EAGAIN);
      break;
    }
    off += (uint64_t)n;
    ck_assert_uint_lt(off, total); /* the stream must push back long before */
  }
  uint64_t consumed = off - (uint64_t)st_inq(p[1]);
  ck_assert_uint_le(consumed, 2 * 4096);
  ck_assert_uint_ge(off, (uint64_t)cap);
  sem_post(&so.go);
  /* Reading resumes; everything arrives in order. */
  st_write_all(p[1], buf + off, total - off);
  close(p[1]);
  st_report_t *r = st_expect(&env, AX_MSG_CLOSED);
  ck_assert_int_eq(r->err, 0);
  barrier(&env, ar);
  ck_assert_uint_eq(atomic_load(&a.rx_bytes), total);
  ck_assert_int_eq(atomic_load(&a.pattern_errors), 0);
  free(buf);
  st_env_done(&env);
  sem_destroy(&so.entered);
  sem_destroy(&so.go);
}
END_TEST

START_TEST(test_stream_active_n) {
  st_env_t env;
  st_env_init(&env);
  st_actor_t a;
  st_actor_init(&env, &a, 1);
  ax_ref_t ar = st_spawn(&env, &a, CORE_A);

  /* Raw: 10-byte reads, 100 bytes waiting, opened paused. */
  int p[2];
  ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
  unsigned char buf[100];
  st_fill_pattern(buf, 0, sizeof buf);
  st_write_all(p[1], buf, sizeof buf);
  ax_stream_opts_t o = opts_zero();
  o.read_max = 10;
  o.flags = AX_STREAM_PAUSED;
  ck_assert_int_eq(st_pipe_open(&env, ar, 0, p[0], -1, &o), 0);
  st_expect_none(&env, 50);
  ck_assert_int_eq(st_inq(p[1]), 100);
  ck_assert_int_eq(st_call(&env, ar, CMD_ACTIVE, 0, 3), 0);
  st_expect_bytes(&env, buf, 30);
  st_expect(&env, AX_MSG_PASSIVE);
  st_expect_none(&env, 100);
  ck_assert_int_eq(st_inq(p[1]), 70); /* reading stopped exactly there */
  ck_assert_int_eq(st_call(&env, ar, CMD_ACTIVE, 0, 2), 0);
  st_expect_bytes(&env, buf + 30, 20);
  st_expect(&env, AX_MSG_PASSIVE);
  st_expect_none(&env, 100);
  ck_assert_int_eq(st_inq(p[1]), 50);
  /* resume: no count any more, no PASSIVE */
  ck_assert_int_eq(st_call(&env, ar, CMD_RESUME, 0, 0), 0);
  st_expect_bytes(&env, buf + 50, 50);
  st_expect_none(&env, 50);
  close(p[1]);
  st_expect(&env, AX_MSG_CLOSED);

  /* Lines already read and buffered are counted too; the count is not
   * limited by a smaller window. */
  ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
  st_write_all(p[1], "a\nb\nc\nd\ne\nf\ng\n", 14);
  o = opts_zero();
  o.frame = AX_FRAME_DELIM;
  o.window = 2;
  o.flags = AX_STREAM_PAUSED;
  ck_assert_int_eq(st_pipe_open(&env, ar, 1, p[0], -1, &o), 0);
  ck_assert_int_eq(st_call(&env, ar, CMD_ACTIVE, 1, 5), 0);
  const char *want = "abcde";
  for (int i = 0; i < 5; i++) {
    st_report_t *r = st_expect(&env, AX_MSG_DATA);
    ck_assert_uint_eq(r->len, 1);
    ck_assert_int_eq(r->bytes[0], want[i]);
  }
  st_expect(&env, AX_MSG_PASSIVE);
  st_expect_none(&env, 100);
  ck_assert_int_eq(st_call(&env, ar, CMD_ACTIVE, 1, 1), 0);
  st_report_t *r = st_expect(&env, AX_MSG_DATA);
  ck_assert_int_eq(r->bytes[0], 'f');
  st_expect(&env, AX_MSG_PASSIVE);
  st_expect_none(&env, 50);
  /* pause wins over nothing; resume delivers the rest */
  ck_assert_int_eq(st_call(&env, ar, CMD_PAUSE, 1, 0), 0);
  ck_assert_int_eq(st_call(&env, ar, CMD_RESUME, 1, 0), 0);
  r = st_expect(&env, AX_MSG_DATA);
  ck_assert_int_eq(r->bytes[0], 'g');
  close(p[1]);
  st_expect(&env, AX_MSG_CLOSED);
  ck_assert_int_eq(atomic_load(&a.violations), 0);
  st_env_done(&env);
}
END_TEST

/* A raw read finds more waiting than the stream's first message holds
 * (4 KiB at first) and spills the rest into a second message: with
 * ax_stream_active(s, 1) that second one waits for the next call, after
 * PASSIVE (a reviewer's program got DATA, PASSIVE, DATA). */
START_TEST(test_stream_active_spill) {
  st_env_t env;
  st_env_init(&env);
  st_actor_t a;
  st_actor_init(&env, &a, 1);
  ax_ref_t ar = st_spawn(&env, &a, CORE_A);
  int p[2];
  ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
  enum { TOTAL = 20000 };
  static unsigned char buf[TOTAL];
  st_fill_pattern(buf, 0, sizeof buf);
  st_write_all(p[1], buf, sizeof buf);
  ax_stream_opts_t o = opts_zero();
  o.flags = AX_STREAM_PAUSED;
  ck_assert_int_eq(st_pipe_open(&env, ar, 0, p[0], -1, &o), 0);
  st_expect_none(&env, 50);
  size_t got = 0;
  int calls = 0;
  while (got < TOTAL) {
    ck_assert_int_lt(++calls, 20);
    ck_assert_int_eq(st_call(&env, ar, CMD_ACTIVE, 0, 1), 0);
    st_report_t *r = st_expect(&env, AX_MSG_DATA);
    ck_assert_uint_gt(r->len, 0);
    ck_assert_uint_le(got + r->len, TOTAL);
    size_t check = r->len < ST_MAX_REPORT ? r->len : ST_MAX_REPORT;
    ck_assert_int_eq(memcmp(r->bytes, buf + got, check), 0);
    got += r->len;
    st_expect(&env, AX_MSG_PASSIVE);
    st_expect_none(&env, 50); /* nothing more until the next call */
  }
  ck_assert_int_ge(calls, 2); /* the read spilled: more than one message's worth */
  close(p[1]);
  ck_assert_int_eq(st_call(&env, ar, CMD_ACTIVE, 0, 1), 0);
  st_expect(&env, AX_MSG_CLOSED);
  ck_assert_int_eq(atomic_load(&a.violations), 0);
  st_env_done(&env);
}
END_TEST

START_TEST(test_stream_pause_resume) {
  st_env_t env;
  st_env_init(&env);
  st_actor_t a;
  st_actor_init(&env, &a, 1);
  ax_ref_t ar = st_spawn(&env, &a, CORE_A);
  int sv[2];
  st_socketpair(sv);
  ck_assert_int_eq(st_pipe_open(&env, ar, 0, sv[0], sv[0], NULL), 0);
  st_write_all(sv[1], "first", 5);
  st_expect_bytes(&env, "first", 5);
  ck_assert_int_eq(st_call(&env, ar, CMD_PAUSE, 0, 0), 0);
  ck_assert_int_eq(st_call(&env, ar, CMD_PAUSE, 0, 0), 0); /* twice is fine */
  st_write_all(sv[1], "second", 6);
  st_expect_none(&env, 100);
  ck_assert_int_eq(st_inq(sv[0]), 6); /* still in the kernel */
  /* Writing works while paused. */
  ck_assert_int_eq(st_write(&env, ar, 0, "out", 3), 0);
  char buf[8];
  ck_assert_int_eq((int)read(sv[1], buf, sizeof buf), 3);
  ck_assert_int_eq(st_call(&env, ar, CMD_RESUME, 0, 0), 0);
  st_expect_bytes(&env, "second", 6);
  /* EOF while paused is not reported until resumed. */
  ck_assert_int_eq(st_call(&env, ar, CMD_PAUSE, 0, 0), 0);
  close(sv[1]);
  st_expect_none(&env, 100);
  ck_assert_int_eq(st_call(&env, ar, CMD_RESUME, 0, 0), 0);
  st_report_t *r = st_expect(&env, AX_MSG_CLOSED);
  ck_assert_int_eq(r->err, 0);
  st_env_done(&env);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Writes                                                                    */

/* The owner writes `total` pattern bytes in 64 KiB writes; the peer does
 * not read until the first -ENOBUFS, then reads slowly. */
static void write_large_run(size_t high_water, uint64_t total) {
  st_env_t env;
  st_env_init(&env);
  st_actor_t a;
  st_actor_init(&env, &a, 1);
  ax_ref_t ar = st_spawn(&env, &a, CORE_A);
  int sv[2];
  st_socketpair(sv);
  ax_stream_opts_t o = opts_zero();
  o.high_water = high_water;
  size_t hw = high_water != 0 ? high_water : (size_t)1 << 20;
  const uint64_t chunk = 64 * 1024;
  ck_assert_int_eq(st_pipe_open(&env, ar, 0, sv[0], sv[0], &o), 0);
  st_write_pattern(&env, ar, 0, total, chunk, PW_SHUTDOWN);
  st_report_t *r = st_expect(&env, REP_PW_NOBUFS);
  /* refused whole only once the queue holds high_water */
  ck_assert_uint_ge(r->count, hw);
  ck_assert_uint_lt(r->count, hw + chunk);
  int64_t queued = -1;
  st_cmd_t *c = st_cmd_new(0, NULL, 0);
  ck_assert_int_eq(st_call_cmd(&env, ar, CMD_QUEUED, c, &queued), 0);
  free(c);
  ck_assert_int_ge(queued, (int64_t)hw);

  bool eof = false;
  uint64_t got = st_read_pattern(sv[1], total + 1, 10000, &eof, 1);
  ck_assert_uint_eq(got, total);
  ck_assert(eof); /* the write side was shut down after the last byte */
  /* Every -ENOBUFS was followed by WRITABLE below half the mark, and the
   * writer finished. */
  unsigned nobufs = 1, writable = 0;
  for (;;) {
    r = st_next(&env);
    if (r->type == REP_PW_DONE) {
      ck_assert_int_eq(r->err, 0);
      break;
    }
    if (r->type == REP_PW_NOBUFS) {
      ck_assert_uint_ge(r->count, hw);
      nobufs++;
      continue;
    }
    ck_assert_uint_eq(r->type, AX_MSG_WRITABLE);
    ck_assert_int_lt(r->value, (int64_t)hw / 2);
    writable++;
  }
  ck_assert_uint_eq(nobufs, writable);
  ck_assert_int_eq(st_write(&env, ar, 0, "x", 1), -EPIPE); /* shut down */
  close(sv[1]);
  r = st_expect(&env, AX_MSG_CLOSED);
  ck_assert_int_eq(r->err, 0);
  st_env_done(&env);
}

START_TEST(test_stream_write_large) {
  /* at least four times the mark, so that the queue fills */
  write_large_run(0, test_scaled(2) * (4 << 20)); /* 8 MiB, the default mark */
  write_large_run(64 * 1024, 1 << 20); /* the kernel takes ~230 KiB itself */
}
END_TEST

START_TEST(test_stream_write_pipe_pair_linger) {
  /* A write-only pipe: everything queued, then closed at once; the queue
   * is flushed in the background. */
  st_env_t env;
  st_env_init(&env);
  st_actor_t a;
  st_actor_init(&env, &a, 1);
  ax_ref_t ar = st_spawn(&env, &a, CORE_A);
  int p[2];
  ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
  ax_stream_opts_t o = opts_zero();
  o.high_water = 16 << 20;
  uint64_t total = 4 << 20;
  ck_assert_int_eq(st_pipe_open(&env, ar, 0, -1, p[1], &o), 0);
  st_write_pattern(&env, ar, 0, total, 256 * 1024, PW_CLOSE);
  st_report_t *r = st_expect(&env, REP_PW_DONE);
  ck_assert_int_eq(r->err, 0);
  /* The owner may even stop: the flush goes on. */
  ck_assert_int_eq(st_call(&env, ar, CMD_STOP, -1, 0), 0);
  bool eof = false;
  ck_assert_uint_eq(st_read_pattern(p[0], total + 1, 10000, &eof, 0), total);
  ck_assert(eof);
  close(p[0]);
  st_expect_none(&env, 50); /* closed: no message */
  st_env_done(&env);
}
END_TEST

START_TEST(test_stream_write_epipe) {
  signal(SIGPIPE, SIG_IGN); /* the test thread's own writes */
  st_env_t env;
  st_env_init(&env);
  st_actor_t a;
  st_actor_init(&env, &a, 1);
  ax_ref_t ar = st_spawn(&env, &a, CORE_A);
  int p[2];
  ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
  close(p[0]);
  ck_assert_int_eq(st_pipe_open(&env, ar, 0, -1, p[1], NULL), 0);
  ck_assert_int_eq(st_write(&env, ar, 0, "x", 1), -EPIPE);
  st_report_t *r = st_expect(&env, AX_MSG_CLOSED);
  ck_assert_int_eq(r->err, -EPIPE);
  st_expect_none(&env, 50);
  st_env_done(&env);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Half-close                                                                */

START_TEST(test_stream_shutdown) {
  st_env_t env;
  st_env_init(&env);
  st_actor_t a;
  st_actor_init(&env, &a, 1);
  ax_ref_t ar = st_spawn(&env, &a, CORE_A);
  int sv[2];
  st_socketpair(sv);
  ck_assert_int_eq(st_pipe_open(&env, ar, 0, sv[0], sv[0], NULL), 0);
  ck_assert_int_eq(st_write(&env, ar, 0, "abc", 3), 0);
  ck_assert_int_eq(st_call(&env, ar, CMD_SHUTDOWN, 0, 0), 0);
  ck_assert_int_eq(st_call(&env, ar, CMD_SHUTDOWN, 0, 0), 0); /* again: fine */
  char buf[8];
  ck_assert_int_eq((int)read(sv[1], buf, sizeof buf), 3);
  ck_assert_int_eq((int)read(sv[1], buf, sizeof buf), 0); /* EOF */
  ck_assert_int_eq(st_write(&env, ar, 0, "late", 4), -EPIPE);
  /* The stream still reads. */
  st_write_all(sv[1], "xyz", 3);
  st_expect_bytes(&env, "xyz", 3);
  close(sv[1]);
  st_report_t *r = st_expect(&env, AX_MSG_CLOSED);
  ck_assert_int_eq(r->err, 0);

  /* A pipe pair: shutdown closes the write fd. */
  int in[2], out[2];
  ck_assert_int_eq(pipe2(in, O_CLOEXEC), 0);
  ck_assert_int_eq(pipe2(out, O_CLOEXEC), 0);
  ck_assert_int_eq(st_pipe_open(&env, ar, 1, in[0], out[1], NULL), 0);
  ck_assert_int_eq(st_write(&env, ar, 1, "q", 1), 0);
  ck_assert_int_eq(st_call(&env, ar, CMD_SHUTDOWN, 1, 0), 0);
  ck_assert_int_eq((int)read(out[0], buf, sizeof buf), 1);
  ck_assert_int_eq((int)read(out[0], buf, sizeof buf), 0);
  st_write_all(in[1], "still", 5);
  st_expect_bytes(&env, "still", 5);
  close(in[1]);
  st_expect(&env, AX_MSG_CLOSED);
  close(out[0]);
  st_env_done(&env);
}
END_TEST

START_TEST(test_stream_half_open) {
  st_env_t env;
  st_env_init(&env);
  st_actor_t a;
  st_actor_init(&env, &a, 1);
  ax_ref_t ar = st_spawn(&env, &a, CORE_A);
  int sv[2];
  st_socketpair(sv);
  ax_stream_opts_t o = opts_zero();
  o.flags = AX_STREAM_HALF_OPEN;
  ck_assert_int_eq(st_pipe_open(&env, ar, 0, sv[0], sv[0], &o), 0);
  st_write_all(sv[1], "tail", 4);
  ck_assert_int_eq(shutdown(sv[1], SHUT_WR), 0);
  st_expect_bytes(&env, "tail", 4);
  st_report_t *r = st_expect(&env, AX_MSG_EOF);
  ck_assert_int_eq(r->slot, 0);
  st_expect_none(&env, 50); /* EOF, not CLOSED */
  ck_assert_int_eq(st_write(&env, ar, 0, "bye", 3), 0);
  char buf[8];
  ck_assert_int_eq((int)read(sv[1], buf, sizeof buf), 3);
  ck_assert(memcmp(buf, "bye", 3) == 0);
  ck_assert_int_eq(st_call(&env, ar, CMD_SHUTDOWN, 0, 0), 0);
  ck_assert_int_eq((int)read(sv[1], buf, sizeof buf), 0);
  r = st_expect(&env, AX_MSG_CLOSED); /* both sides shut: finished */
  ck_assert_int_eq(r->slot, 0);
  ck_assert_int_eq(r->err, 0);
  st_expect_none(&env, 50);
  close(sv[1]);

  /* Without HALF_OPEN the peer's shutdown ends the stream. */
  st_socketpair(sv);
  ck_assert_int_eq(st_pipe_open(&env, ar, 1, sv[0], sv[0], NULL), 0);
  ck_assert_int_eq(shutdown(sv[1], SHUT_WR), 0);
  r = st_expect(&env, AX_MSG_CLOSED);
  ck_assert_int_eq(r->err, 0);
  close(sv[1]);
  st_env_done(&env);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Close                                                                     */

enum { MSG_AFTER_CLOSE = CMD_USER + 1 };

typedef struct close_check {
  ax_stream_t *closed;
  int after;     /* messages of the closed stream seen after close */
  int data_seen; /* DATA handled before closing */
} close_check_t;

/* Closes the stream in the handler of its first DATA, then sends itself a
 * message that arrives after everything already queued. */
static int close_hook(ax_actor_t *self, st_actor_t *a, const ax_msg_t *m) {
  close_check_t *cc = a->user;
  if (m->type == MSG_AFTER_CLOSE) {
    st_report(self, a, REP_USER, -1, 0, (uint64_t)cc->after, cc->data_seen, NULL, 0);
    return 0;
  }
  if (m->type >= AX_MSG_ACCEPT && m->type <= AX_MSG_GIVEN) {
    const ax_stream_ev_t *ev = m->data; /* stream is first in every payload */
    if (cc->closed != NULL && ev->stream == cc->closed) {
      cc->after++;
      return 0;
    }
    if (m->type == AX_MSG_DATA && cc->closed == NULL) {
      cc->data_seen++;
      cc->closed = ev->stream;
      if (ax_stream_close(ev->stream) != 0)
        atomic_fetch_add(&a->violations, 1);
      a->s[0] = NULL;
      if (ax_send(ax_self(self), MSG_AFTER_CLOSE, NULL, 0) != 0)
        atomic_fetch_add(&a->violations, 1);
      return 0;
    }
  }
  return ST_NEXT;
}

START_TEST(test_stream_close_drops_queued) {
  st_env_t env;
  st_env_init(&env);
  close_check_t cc;
  memset(&cc, 0, sizeof cc);
  st_actor_t a;
  st_actor_init(&env, &a, 1);
  a.hook = close_hook;
  a.user = &cc;
  ax_ref_t ar = st_spawn(&env, &a, CORE_A);
  int sv[2];
  st_socketpair(sv);
  /* 20 lines waiting: the first read posts 8 DATA (the window) at once. */
  for (int i = 0; i < 20; i++)
    st_write_all(sv[1], "line\n", 5);
  shutdown(sv[1], SHUT_WR); /* EOF waiting too */
  ax_stream_opts_t o = opts_zero();
  o.frame = AX_FRAME_DELIM;
  o.window = 8;
  ck_assert_int_eq(st_pipe_open(&env, ar, 0, sv[0], sv[0], &o), 0);
  st_report_t *r = st_expect(&env, REP_USER);
  ck_assert_int_eq(r->value, 1);
  ck_assert_msg(r->count == 0, "%llu messages of a closed stream delivered",
                (unsigned long long)r->count);
  ck_assert_int_eq(atomic_load(&a.violations), 0);
  /* The fd is closed: the peer sees EOF. */
  ck_assert_int_eq(st_wait_eof(sv[1], 10000), 1);
  close(sv[1]);
  st_expect_none(&env, 50);
  st_env_done(&env);
}
END_TEST

START_TEST(test_stream_close_flushes_and_lingers) {
  st_env_t env;
  st_env_init(&env);
  st_actor_t a;
  st_actor_init(&env, &a, 1);
  ax_ref_t ar = st_spawn(&env, &a, CORE_A);
  uint64_t total = 4 << 20;
  ax_stream_opts_t o = opts_zero();
  o.high_water = 16 << 20;

  /* Closed with 4 MiB queued, the owner gone: all of it arrives, then EOF. */
  int sv[2];
  st_socketpair(sv);
  ck_assert_int_eq(st_pipe_open(&env, ar, 0, sv[0], sv[0], &o), 0);
  st_write_pattern(&env, ar, 0, total, 1 << 20, PW_CLOSE);
  st_report_t *r = st_expect(&env, REP_PW_DONE);
  ck_assert_int_eq(r->err, 0);
  ck_assert_uint_gt(r->count, 0); /* really queued at close time */
  bool eof = false;
  ck_assert_uint_eq(st_read_pattern(sv[1], total + 1, 10000, &eof, 0), total);
  ck_assert(eof);
  close(sv[1]);

  /* A short linger with a peer that never reads: the fd is closed when it
   * runs out, with bytes still queued. */
  o.linger = 100 * AX_NSEC_PER_MSEC;
  st_socketpair(sv);
  ck_assert_int_eq(st_pipe_open(&env, ar, 1, sv[0], sv[0], &o), 0);
  st_write_pattern(&env, ar, 1, total, 1 << 20, PW_CLOSE);
  r = st_expect(&env, REP_PW_DONE);
  ck_assert_uint_gt(r->count, 0);
  struct pollfd pfd = {sv[1], POLLRDHUP, 0};
  TEST_WAIT_UNTIL(poll(&pfd, 1, 0) == 1 && (pfd.revents & (POLLHUP | POLLRDHUP)), 10000);
  uint64_t got = st_read_pattern(sv[1], total + 1, 10000, &eof, 0);
  ck_assert(eof);
  ck_assert_uint_lt(got, total);
  close(sv[1]);

  /* The runtime stops while a stream lingers (60 s): it ends at once, and
   * nothing leaks. */
  o.linger = 60 * AX_NSEC_PER_SEC;
  st_socketpair(sv);
  ck_assert_int_eq(st_pipe_open(&env, ar, 2, sv[0], sv[0], &o), 0);
  st_write_pattern(&env, ar, 2, total, 1 << 20, PW_CLOSE);
  r = st_expect(&env, REP_PW_DONE);
  ck_assert_uint_gt(r->count, 0);
  st_env_done(&env);
  ck_assert_int_eq(st_wait_eof(sv[1], 10000), 1);
  close(sv[1]);
}
END_TEST

START_TEST(test_stream_owner_stop_closes) {
  st_env_t env;
  st_env_init(&env);
  st_actor_t a;
  st_actor_init(&env, &a, 1);
  ax_ref_t ar = st_spawn(&env, &a, CORE_A);
  int sv[2], p[2], q[2];
  st_socketpair(sv);
  ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
  ck_assert_int_eq(pipe2(q, O_CLOEXEC), 0);
  ck_assert_int_eq(st_pipe_open(&env, ar, 0, sv[0], sv[0], NULL), 0);
  ck_assert_int_eq(st_pipe_open(&env, ar, 1, p[0], q[1], NULL), 0);
  st_write_all(sv[1], "pending", 7); /* unread DATA dies with the owner */
  ck_assert_int_eq(st_call(&env, ar, CMD_STOP, -1, 0), 0);
  /* EOF, or a reset when "pending" was still unread in the closed socket */
  int end = st_wait_eof(sv[1], 10000);
  ck_assert_msg(end == 1 || end == -ECONNRESET, "peer end: %d", end);
  ck_assert_int_eq(st_wait_eof(q[0], 10000), 1);
  TEST_WAIT_UNTIL(atomic_load(&a.terminated) == 1, 10000);
  /* The pipe's read end is closed too: writing fails. */
  signal(SIGPIPE, SIG_IGN);
  TEST_WAIT_UNTIL(write(p[1], "x", 1) < 0 && errno == EPIPE, 10000);
  close(sv[1]);
  close(p[1]);
  close(q[0]);
  st_env_done(&env);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Moving across cores                                                       */

typedef struct give_check {
  ax_ref_t to;
  bool given;
  _Atomic uint64_t next; /* the next line number expected (shared in order) */
} give_check_t;

/* Line-checking hook: A gives the stream away after its first DATA; B
 * checks that GIVEN comes first and the lines go on in order. */
static int give_hook(ax_actor_t *self, st_actor_t *a, const ax_msg_t *m) {
  give_check_t *g = a->user;
  if (m->type == AX_MSG_GIVEN) {
    if (a->tag != 2 || atomic_load(&a->rx_msgs) != 0)
      atomic_fetch_add(&a->violations, 1);
    return ST_NEXT;
  }
  if (m->type != AX_MSG_DATA)
    return ST_NEXT;
  const ax_data_t *d = m->data;
  char want[16];
  int n = snprintf(want, sizeof want, "%06llu", (unsigned long long)atomic_load(&g->next));
  if (d->len != (size_t)n || memcmp(d->bytes, want, (size_t)n) != 0)
    atomic_fetch_add(&a->pattern_errors, 1);
  atomic_fetch_add(&g->next, 1);
  atomic_fetch_add(&a->rx_msgs, 1);
  if (a->tag == 1 && !g->given) {
    g->given = true;
    int rc = ax_stream_give(d->stream, g->to);
    st_report(self, a, REP_USER, 0, rc, 0, (int64_t)ax_core(self), NULL, 0);
  }
  return 0;
}

START_TEST(test_stream_give_carries_queued) {
  st_env_t env;
  st_env_init(&env);
  give_check_t g;
  memset(&g, 0, sizeof g);
  st_actor_t a, b;
  st_actor_init(&env, &a, 1);
  st_actor_init(&env, &b, 2);
  a.hook = b.hook = give_hook;
  a.user = b.user = &g; /* A stops touching g before B starts (the give) */
  ax_ref_t ar = st_spawn(&env, &a, CORE_A);
  ax_ref_t br = st_spawn(&env, &b, CORE_B);
  g.to = br;
  int sv[2];
  st_socketpair(sv);
  /* Lines wait before the open: the first read posts a window of 8, and
   * the rest stays in the framer (a partial frame too). */
  enum { LINES = 200 };
  char line[16];
  for (int i = 0; i < LINES; i++) {
    snprintf(line, sizeof line, "%06d\n", i);
    st_write_all(sv[1], line, 7);
  }
  st_write_all(sv[1], "000", 3);
  ax_stream_opts_t o = opts_zero();
  o.frame = AX_FRAME_DELIM;
  o.window = 8;
  ck_assert_int_eq(st_pipe_open(&env, ar, 0, sv[0], sv[0], &o), 0);
  /* A's give result and B's GIVEN come from two senders: either order. */
  for (int i = 0; i < 2; i++) {
    st_report_t *r = st_next(&env);
    if (r->type == REP_USER) {
      ck_assert_int_eq(r->err, 0);
      ck_assert_int_eq(r->value, CORE_A);
    } else {
      ck_assert_uint_eq(r->type, AX_MSG_GIVEN);
      ck_assert_int_eq(r->tag, 2);
      ck_assert_int_eq(r->core, CORE_B);
    }
  }
  st_report_t *r;
  /* Every complete line the framer held reaches B without more input. */
  TEST_WAIT_UNTIL(atomic_load(&g.next) >= LINES || atomic_load(&b.pattern_errors) != 0, 10000);
  ck_assert_msg(atomic_load(&b.pattern_errors) == 0,
                "lines lost in the hand-over: B's first line after the carried ones was not %d",
                (int)atomic_load(&a.rx_msgs) + 7);
  st_write_all(sv[1], "200\n", 4); /* completes the partial frame */
  for (int i = LINES + 1; i < LINES + 50; i++) {
    snprintf(line, sizeof line, "%06d\n", i);
    st_write_all(sv[1], line, 7);
  }
  TEST_WAIT_UNTIL(atomic_load(&g.next) == LINES + 50 || atomic_load(&b.pattern_errors) != 0, 10000);
  barrier(&env, br);
  ck_assert_msg(atomic_load(&b.pattern_errors) == 0 && atomic_load(&g.next) == LINES + 50,
                "lines out of order or lost: A got %llu, B got %llu with %d mismatches, next %llu",
                (unsigned long long)atomic_load(&a.rx_msgs),
                (unsigned long long)atomic_load(&b.rx_msgs), atomic_load(&b.pattern_errors),
                (unsigned long long)atomic_load(&g.next));
  ck_assert_uint_eq(atomic_load(&a.rx_msgs), 1);
  ck_assert_uint_eq(atomic_load(&b.rx_msgs), LINES + 49);
  ck_assert_int_eq(atomic_load(&a.pattern_errors) + atomic_load(&b.pattern_errors), 0);
  ck_assert_int_eq(atomic_load(&a.violations) + atomic_load(&b.violations), 0);
  /* B owns it now: it writes and closes. */
  ck_assert_int_eq(st_write(&env, br, 0, "from-b", 6), 0);
  char buf[8];
  ck_assert_int_eq((int)read(sv[1], buf, sizeof buf), 6);
  close(sv[1]);
  r = st_expect(&env, AX_MSG_CLOSED);
  ck_assert_int_eq(r->tag, 2);
  ck_assert_int_eq(r->err, 0);
  st_expect_none(&env, 50);
  st_env_done(&env);
}
END_TEST

/* Ping-pong: each owner gives the stream to the other every few DATA
 * while a writer thread streams pattern bytes. */
typedef struct pingpong {
  ax_ref_t refs[2];
  _Atomic uint64_t off;
  atomic_int gives;
  atomic_int errors;
} pingpong_t;

static int pingpong_hook(ax_actor_t *self, st_actor_t *a, const ax_msg_t *m) {
  (void)self;
  pingpong_t *pp = a->user;
  if (m->type != AX_MSG_DATA)
    return ST_NEXT;
  const ax_data_t *d = m->data;
  uint64_t off = atomic_load(&pp->off);
  if (st_check_pattern(d->bytes, off, d->len) != 0)
    atomic_fetch_add(&a->pattern_errors, 1);
  atomic_store(&pp->off, off + d->len);
  uint64_t n = atomic_fetch_add(&a->rx_msgs, 1) + 1;
  if (n % 3 == 0) {
    int rc = ax_stream_give(d->stream, pp->refs[a->tag == 1 ? 1 : 0]);
    if (rc != 0)
      atomic_fetch_add(&pp->errors, 1);
    else
      atomic_fetch_add(&pp->gives, 1);
  }
  return 0;
}

typedef struct pattern_writer {
  int fd;
  uint64_t total;
} pattern_writer_t;

static void *pattern_writer_main(void *arg) {
  pattern_writer_t *w = arg;
  unsigned char buf[8192];
  uint64_t off = 0;
  while (off < w->total) {
    size_t n = (size_t)(w->total - off < sizeof buf ? w->total - off : sizeof buf);
    n = n > 1000 + off % 7000 ? 1000 + (size_t)(off % 7000) : n; /* uneven writes */
    st_fill_pattern(buf, off, n);
    ssize_t k = write(w->fd, buf, n);
    if (k <= 0)
      break;
    off += (uint64_t)k;
  }
  close(w->fd);
  return NULL;
}

START_TEST(test_stream_give_ping_pong) {
  st_env_t env;
  st_env_init(&env);
  pingpong_t pp;
  memset(&pp, 0, sizeof pp);
  st_actor_t a, b;
  st_actor_init(&env, &a, 1);
  st_actor_init(&env, &b, 2);
  a.hook = b.hook = pingpong_hook;
  a.user = b.user = &pp;
  pp.refs[0] = st_spawn(&env, &a, CORE_A);
  pp.refs[1] = st_spawn(&env, &b, CORE_B);
  int sv[2];
  st_socketpair(sv);
  ax_stream_opts_t o = opts_zero();
  o.read_max = 4096;
  o.window = 4;
  ck_assert_int_eq(st_pipe_open(&env, pp.refs[0], 0, sv[0], sv[0], &o), 0);
  pattern_writer_t w = {sv[1], test_scaled(40) * 100 * 1024};
  pthread_t t;
  ck_assert_int_eq(pthread_create(&t, NULL, pattern_writer_main, &w), 0);
  /* GIVEN reports come in between; the stream ends with one CLOSED. */
  st_report_t *r;
  int given = 0;
  while ((r = st_next(&env))->type == AX_MSG_GIVEN)
    given++;
  ck_assert_uint_eq(r->type, AX_MSG_CLOSED);
  ck_assert_int_eq(r->err, 0);
  ck_assert_int_eq(pthread_join(t, NULL), 0);
  ck_assert_uint_eq(atomic_load(&pp.off), w.total);
  ck_assert_int_eq(atomic_load(&a.pattern_errors) + atomic_load(&b.pattern_errors), 0);
  ck_assert_int_eq(atomic_load(&pp.errors), 0);
  ck_assert_int_eq(atomic_load(&a.violations) + atomic_load(&b.violations), 0);
  ck_assert_int_gt(atomic_load(&pp.gives), 10);
  ck_assert_int_eq(given, atomic_load(&pp.gives));
  st_env_done(&env);
}
END_TEST

/* Hot potato: the owner that receives the stream gives it on at once,
 * from inside its AX_MSG_GIVEN, twenty times, while bytes keep coming. */
typedef struct potato {
  ax_ref_t refs[2];
  _Atomic uint64_t off;
  atomic_int bounces;
  atomic_int errors;
} potato_t;

static int potato_hook(ax_actor_t *self, st_actor_t *a, const ax_msg_t *m) {
  (void)self;
  potato_t *pp = a->user;
  ax_ref_t other = pp->refs[a->tag == 1 ? 1 : 0];
  if (m->type == AX_MSG_GIVEN) {
    const ax_stream_ev_t *ev = m->data;
    if (atomic_load(&pp->bounces) < 20) {
      atomic_fetch_add(&pp->bounces, 1);
      if (ax_stream_give(ev->stream, other) != 0)
        atomic_fetch_add(&pp->errors, 1);
      return 0;
    }
    return ST_NEXT; /* the last owner keeps it (and reports GIVEN) */
  }
  if (m->type != AX_MSG_DATA)
    return ST_NEXT;
  const ax_data_t *d = m->data;
  uint64_t off = atomic_load(&pp->off);
  if (st_check_pattern(d->bytes, off, d->len) != 0)
    atomic_fetch_add(&a->pattern_errors, 1);
  atomic_store(&pp->off, off + d->len);
  if (off == 0 && ax_stream_give(d->stream, other) != 0) /* the first give */
    atomic_fetch_add(&pp->errors, 1);
  return 0;
}

START_TEST(test_stream_give_from_given) {
  st_env_t env;
  st_env_init(&env);
  potato_t pp;
  memset(&pp, 0, sizeof pp);
  st_actor_t a, b;
  st_actor_init(&env, &a, 1);
  st_actor_init(&env, &b, 2);
  a.hook = b.hook = potato_hook;
  a.user = b.user = &pp;
  pp.refs[0] = st_spawn(&env, &a, CORE_A);
  pp.refs[1] = st_spawn(&env, &b, CORE_B);
  int sv[2];
  st_socketpair(sv);
  ax_stream_opts_t o = opts_zero();
  o.read_max = 1024;
  o.window = 4;
  ck_assert_int_eq(st_pipe_open(&env, pp.refs[0], 0, sv[0], sv[0], &o), 0);
  pattern_writer_t w = {sv[1], 512 * 1024};
  pthread_t t;
  ck_assert_int_eq(pthread_create(&t, NULL, pattern_writer_main, &w), 0);
  st_expect(&env, AX_MSG_GIVEN);
  st_report_t *r = st_expect(&env, AX_MSG_CLOSED);
  ck_assert_int_eq(r->err, 0);
  ck_assert_int_eq(pthread_join(t, NULL), 0);
  ck_assert_int_eq(atomic_load(&pp.bounces), 20);
  ck_assert_int_eq(atomic_load(&pp.errors), 0);
  ck_assert_uint_eq(atomic_load(&pp.off), w.total);
  ck_assert_int_eq(atomic_load(&a.pattern_errors) + atomic_load(&b.pattern_errors), 0);
  ck_assert_int_eq(atomic_load(&a.violations) + atomic_load(&b.violations), 0);
  st_env_done(&env);
}
END_TEST

/* A recipient that blocks until released, so it can be stopped with the
 * hand-over message still in its mailbox. */
typedef struct blocker {
  sem_t entered, go;
} blocker_t;

static int blocker_hook(ax_actor_t *self, st_actor_t *a, const ax_msg_t *m) {
  (void)self;
  blocker_t *bl = a->user;
  if (m->type == CMD_USER) {
    sem_post(&bl->entered);
    while (sem_wait(&bl->go) != 0) {
    }
    return 0;
  }
  if (m->type == AX_MSG_GIVEN)
    atomic_fetch_add(&a->violations, 1); /* it must never take it */
  return ST_NEXT;
}

START_TEST(test_stream_give_errors) {
  st_env_t env;
  st_env_init(&env);
  st_actor_t a, dead, b;
  st_actor_init(&env, &a, 1);
  st_actor_init(&env, &dead, 3);
  st_actor_init(&env, &b, 2);
  ax_ref_t ar = st_spawn(&env, &a, CORE_A);
  ax_ref_t dr = st_spawn(&env, &dead, CORE_B);
  int sv[2];
  st_socketpair(sv);
  ck_assert_int_eq(st_pipe_open(&env, ar, 0, sv[0], sv[0], NULL), 0);

  /* Bad targets: the stream stays the giver's and keeps working. */
  ck_assert_int_eq(st_give(&env, ar, 0, AX_REF_NONE), -EINVAL);
  ck_assert_int_eq(st_give(&env, ar, 0, ax_port_ref(env.ev)), -EINVAL);
  ck_assert_int_eq(st_call(&env, dr, CMD_STOP, -1, 0), 0);
  TEST_WAIT_UNTIL(ax_send(dr, CMD_USER + 5, NULL, 0) == -ESRCH, 10000);
  ck_assert_int_eq(st_give(&env, ar, 0, dr), -ESRCH);
  /* Another runtime's actor. */
  ax_rt_t *rt2 = test_rt_new(1, AX_RT_KEEP_ALIVE);
  test_rt_start(rt2);
  st_actor_t other;
  st_actor_init(&env, &other, 4);
  ax_ref_t or2 = test_spawn(rt2, st_behaviour, &other, AX_PLACE_ANY, 0, NULL, NULL);
  ck_assert_int_eq(st_give(&env, ar, 0, or2), -EXDEV);
  test_rt_stop_join_free(rt2);
  st_write_all(sv[1], "still", 5);
  st_expect_bytes(&env, "still", 5);

  /* The new owner stops before it takes the stream: the stream is closed
   * (the peer sees EOF) and nothing leaks. */
  blocker_t bl;
  ck_assert_int_eq(sem_init(&bl.entered, 0, 0), 0);
  ck_assert_int_eq(sem_init(&bl.go, 0, 0), 0);
  b.hook = blocker_hook;
  b.user = &bl;
  ax_ref_t br = st_spawn(&env, &b, CORE_B);
  test_send(br, CMD_USER, NULL, 0);
  while (sem_wait(&bl.entered) != 0) {
  }
  ck_assert_int_eq(st_give(&env, ar, 0, br), 0);
  ck_assert_int_eq(ax_stop(br, 0), 0);
  sem_post(&bl.go);
  ck_assert_int_eq(st_wait_eof(sv[1], 10000), 1);
  TEST_WAIT_UNTIL(atomic_load(&b.terminated) == 1, 10000);
  ck_assert_int_eq(atomic_load(&b.violations), 0);
  st_expect_none(&env, 50); /* A no longer owns it: no message */
  close(sv[1]);
  st_env_done(&env);
  sem_destroy(&bl.entered);
  sem_destroy(&bl.go);
}
END_TEST

static Suite *stream_suite(void) {
  Suite *s = suite_create("stream");
  TCase *tc = tcase_create("open");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_stream_pipe_basic);
  tcase_add_test(tc, test_stream_bad_arguments);
  suite_add_tcase(s, tc);

  tc = tcase_create("flow");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_stream_window_bound);
  tcase_add_test(tc, test_stream_window_lines);
  tcase_add_test(tc, test_stream_slow_owner_pushback);
  tcase_add_test(tc, test_stream_active_n);
  tcase_add_test(tc, test_stream_active_spill);
  tcase_add_test(tc, test_stream_pause_resume);
  suite_add_tcase(s, tc);


  tc = tcase_create("writes");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_stream_write_large);
  tcase_add_test(tc, test_stream_write_pipe_pair_linger);
  tcase_add_test(tc, test_stream_write_epipe);
  suite_add_tcase(s, tc);

  tc = tcase_create("close");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_stream_shutdown);
  tcase_add_test(tc, test_stream_half_open);
  tcase_add_test(tc, test_stream_close_drops_queued);
  tcase_add_test(tc, test_stream_close_flushes_and_lingers);
  tcase_add_test(tc, test_stream_owner_stop_closes);
  suite_add_tcase(s, tc);

  tc = tcase_create("give");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_stream_give_carries_queued);
  tcase_add_test(tc, test_stream_give_ping_pong);
  tcase_add_test(tc, test_stream_give_from_given);
  tcase_add_test(tc, test_stream_give_errors);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return test_run_suite(stream_suite()); }
