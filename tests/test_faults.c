/* Check suite run in AXON_FAULT_INJECTION builds: out of memory is reported as -ENOMEM, never as something else, and nothing reported as sent is lost. */
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <string.h>
#include <unistd.h>
#include <stdatomic.h>

#include "axon_test.h"

/* io/alloc.h: exported by fault-injection builds only. */
uint64_t ax__fault_alloc(uint64_t nth, uint64_t every);

enum { MSG_COUNT = AX_MSG_USER + 1 };

static _Atomic uint64_t received;

static int counter(ax_actor_t *self, const ax_msg_t *m) {
  (void)self;
  if (m->type == MSG_COUNT)
    atomic_fetch_add(&received, 1);
  return 0;
}

typedef enum { OP_SEND, OP_STOP, OP_REGISTER, OP_JOIN, OP_GROUP_SEND } op_t;

typedef struct job {
  op_t op;
  ax_rt_t *rt;
  ax_ref_t to;
  ax_group_t *group;
  size_t size; /* OP_SEND's and OP_GROUP_SEND's payload */
  uint64_t nth;
  int rc;
  uint64_t failed;
} job_t;

/* A thread that never used the runtime: its first call must allocate its
 * epoch record, and that allocation (or any other) may be the one that
 * fails. */
static void *fresh_thread(void *arg) {
  job_t *j = arg;
  ax__fault_alloc(j->nth, 0);
  switch (j->op) {
  case OP_SEND: {
    static const char payload[1024];
    j->rc = ax_send(j->to, MSG_COUNT, payload, j->size);
    break;
  }
  case OP_STOP:
    j->rc = ax_stop(j->to, 0);
    break;
  case OP_REGISTER:
    j->rc = ax_register(j->rt, "target", j->to);
    break;
  case OP_JOIN:
    j->rc = ax_group_join(j->group, j->to);
    break;
  case OP_GROUP_SEND: {
    static const char payload[1024];
    j->rc = ax_group_send(j->group, MSG_COUNT, payload, j->size);
    break;
  }
  }
  j->failed = ax__fault_alloc(0, 0);
  return NULL;
}

/* Runs j on a fresh thread and returns it with its results. */
static job_t run(job_t j) {
  pthread_t t;
  ck_assert_int_eq(pthread_create(&t, NULL, fresh_thread, &j), 0);
  ck_assert_int_eq(pthread_join(t, NULL), 0);
  return j;
}

static job_t run_job(op_t op, ax_rt_t *rt, ax_ref_t to, uint64_t nth) {
  return run((job_t){.op = op, .rt = rt, .to = to, .nth = nth, .size = 1});
}

/* ax_send from a thread that is not a core, with each of its first
 * allocations failing in turn: 0 or -ENOMEM, never -ESRCH for the live
 * actor, and every send that returned 0 arrives.  Such a send allocates
 * only its message, from the thread's own pools (made on its first send,
 * adopted from a thread that exited when there is one); it needs no epoch
 * record.  A payload that fits a ring slot allocates nothing once the
 * thread's ring exists (the first thread made it; each later thread
 * takes over the ring of the one before), so it cannot fail. */
START_TEST(test_faults_foreign_send) {
  ax_rt_t *rt = test_rt_new(1, AX_RT_KEEP_ALIVE);
  test_rt_start(rt);
  atomic_store(&received, 0);
  ax_ref_t a = test_spawn(rt, counter, NULL, AX_PLACE_ANY, 0, NULL, NULL);
  uint64_t sent = 0;
  static const size_t sizes[] = {100, 1};
  for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
    uint64_t enomem = 0;
    for (uint64_t nth = 1; nth <= 6; nth++) {
      job_t j = run((job_t){.op = OP_SEND, .rt = rt, .to = a, .nth = nth, .size = sizes[s]});
      ck_assert_msg(j.rc == 0 || j.rc == -ENOMEM, "%zu B, allocation %llu failing: ax_send gave %s",
                    sizes[s], (unsigned long long)nth, ax_strerror(j.rc));
      ck_assert_msg(j.rc == 0 || j.failed == 1, "-ENOMEM with no failed allocation");
      sent += j.rc == 0;
      enomem += j.rc == -ENOMEM;
    }
    if (sizes[s] == 1)
      ck_assert_uint_eq(enomem, 0); /* inline in the ring's slot */
    else
      ck_assert_uint_ge(enomem, 1); /* the thread's message pools, or the message */
  }
  TEST_WAIT_UNTIL(atomic_load(&received) == sent, 10000);
  test_sleep_ms(20);
  ck_assert_uint_eq(atomic_load(&received), sent);
  test_rt_stop_join_free(rt);
}
END_TEST

/* ax_stop and ax_register likewise: -ENOMEM, never -ESRCH for a live
 * actor. */
START_TEST(test_faults_foreign_stop_register) {
  ax_rt_t *rt = test_rt_new(1, AX_RT_KEEP_ALIVE);
  test_rt_start(rt);
  ax_ref_t a = test_spawn(rt, counter, NULL, AX_PLACE_ANY, 0, NULL, NULL);
  for (uint64_t nth = 1; nth <= 4; nth++) {
    job_t j = run_job(OP_REGISTER, rt, a, nth);
    ck_assert_msg(j.rc == 0 || j.rc == -ENOMEM || j.rc == -EEXIST,
                  "allocation %llu failing: ax_register gave %s", (unsigned long long)nth,
                  ax_strerror(j.rc));
  }
  ck_assert_uint_eq(ax_whereis(rt, "target"), a);
  for (uint64_t nth = 1; nth <= 4; nth++) {
    job_t j = run_job(OP_STOP, rt, a, nth);
    ck_assert_msg(j.rc == 0 || j.rc == -ENOMEM, "allocation %llu failing: ax_stop gave %s",
                  (unsigned long long)nth, ax_strerror(j.rc));
    if (j.rc == 0)
      break; /* stopped */
  }
  test_rt_stop_join_free(rt);
}
END_TEST

/* Groups: a join that cannot allocate is -ENOMEM and changes nothing; a
 * group send (copied, and shared above AX_GROUP_COPY_MAX) is -ENOMEM or
 * the number of members reached, and exactly that many messages arrive. */
START_TEST(test_faults_group) {
  ax_rt_t *rt = test_rt_new(2, AX_RT_KEEP_ALIVE);
  test_rt_start(rt);
  atomic_store(&received, 0);
  ax_group_t *g;
  ck_assert_int_eq(ax_group_new(&g), 0);
  enum { N = 20 };
  int joined = 0;
  for (int i = 0; i < N; i++) {
    ax_ref_t a = test_spawn(rt, counter, NULL, AX_PLACE_SPREAD, 0, NULL, NULL);
    job_t j = run((job_t){.op = OP_JOIN, .to = a, .group = g, .nth = 1 + (uint64_t)i % 4});
    ck_assert_msg(j.rc == 0 || j.rc == -ENOMEM, "join with allocation %d failing: %s",
                  1 + i % 4, ax_strerror(j.rc));
    joined += j.rc == 0;
    ck_assert(ax_group_has(g, a) == (j.rc == 0));
  }
  ck_assert_int_eq(ax_group_members(g, NULL, 0), joined);
  uint64_t delivered = 0, enomem = 0;
  for (uint64_t nth = 1; nth <= 8; nth++) {
    for (int big = 0; big < 2; big++) {
      job_t j = run((job_t){.op = OP_GROUP_SEND, .group = g, .size = big ? 1024 : 8,
                            .nth = nth});
      ck_assert_msg(j.rc >= 0 || j.rc == -ENOMEM, "group send with allocation %llu failing: %s",
                    (unsigned long long)nth, ax_strerror(j.rc));
      if (j.rc >= 0)
        delivered += (uint64_t)j.rc;
      enomem += j.rc == -ENOMEM || (j.rc >= 0 && j.rc < joined);
    }
  }
  ck_assert_uint_ge(enomem, 1);
  TEST_WAIT_UNTIL(atomic_load(&received) == delivered, 10000);
  test_sleep_ms(20);
  ck_assert_uint_eq(atomic_load(&received), delivered);
  test_rt_stop_join_free(rt);
  ax_group_free(g);
}
END_TEST

/* Work submitted while the n-th allocation fails: -ENOMEM and nothing
 * runs or is disposed of, or 0 and exactly one result comes. */
enum { MSG_SUBMIT = AX_MSG_USER + 2 };
static _Atomic uint64_t work_ran, work_disposed, work_results;
static _Atomic int submit_rc;
static _Atomic int submit_done;

static int64_t work_fn(void *arg) {
  (void)arg;
  atomic_fetch_add(&work_ran, 1);
  return 1;
}

static void work_dispose(void *arg) {
  (void)arg;
  atomic_fetch_add(&work_disposed, 1);
}

static int submitter(ax_actor_t *self, const ax_msg_t *m) {
  if (m->type == MSG_SUBMIT) {
    uint64_t nth;
    memcpy(&nth, m->data, sizeof nth);
    ax__fault_alloc(nth, 0);
    int rc = ax_work_submit(self, work_fn, NULL, work_dispose, NULL);
    ax__fault_alloc(0, 0);
    atomic_store(&submit_rc, rc);
    atomic_store(&submit_done, 1);
  } else if (m->type == AX_MSG_WORK) {
    atomic_fetch_add(&work_results, 1);
  }
  return 0;
}

START_TEST(test_faults_work) {
  ax_rt_t *rt = test_rt_new(1, AX_RT_KEEP_ALIVE);
  test_rt_start(rt);
  atomic_store(&work_ran, 0);
  atomic_store(&work_disposed, 0);
  atomic_store(&work_results, 0);
  ax_ref_t a = test_spawn(rt, submitter, NULL, AX_PLACE_ANY, 0, NULL, NULL);
  uint64_t accepted = 0, refused = 0;
  for (int i = 0; i < 12; i++) {
    uint64_t nth = 1 + (uint64_t)i % 3; /* the first submit also makes the actor's list */
    atomic_store(&submit_done, 0);
    ck_assert_int_eq(ax_send(a, MSG_SUBMIT, &nth, sizeof nth), 0);
    TEST_WAIT_UNTIL(atomic_load(&submit_done) == 1, 10000);
    int rc = atomic_load(&submit_rc);
    ck_assert_msg(rc == 0 || rc == -ENOMEM, "submit with allocation %llu failing: %s",
                  (unsigned long long)nth, ax_strerror(rc));
    accepted += rc == 0;
    refused += rc == -ENOMEM;
  }
  ck_assert_uint_ge(refused, 1);
  TEST_WAIT_UNTIL(atomic_load(&work_results) == accepted, 10000);
  test_sleep_ms(20);
  ck_assert_uint_eq(atomic_load(&work_results), accepted);
  ck_assert_uint_eq(atomic_load(&work_ran), accepted);
  ck_assert_uint_eq(atomic_load(&work_disposed), 0);
  test_rt_stop_join_free(rt);
}
END_TEST

/* A monitor's DOWN is made with the monitor, and a link's exit with the
 * link: whichever allocation fails, ax_monitor (ax_link) either says
 * -ENOMEM (and no news comes) or returns 0 and exactly one DOWN
 * (AX_MSG_LINK_DOWN, to an actor that traps exits) comes, with the
 * target's reason (or -ENOMEM when the target could not record the
 * monitor or link).  The fault stays armed while the target records it and
 * dies, so the sweep reaches those paths. */
enum { MSG_WATCH = AX_MSG_USER + 20 };

typedef struct watch_job {
  ax_ref_t target;
  uint64_t nth;
  bool link; /* ax_link instead of ax_monitor */
} watch_job_t;

static _Atomic int watch_rc, stop_rc, news, news_reason;

static int watcher(ax_actor_t *self, const ax_msg_t *m) {
  if (m->type == MSG_WATCH) {
    watch_job_t j;
    memcpy(&j, m->data, sizeof j);
    if (j.link)
      ck_assert_int_eq(ax_trap_exits(self, true), 0);
    ax__fault_alloc(j.nth, 0);
    atomic_store(&watch_rc, j.link ? ax_link(self, j.target) : ax_monitor(self, j.target, NULL));
    atomic_store(&stop_rc, ax_stop(j.target, -EIO));
  } else if (m->type == AX_MSG_DOWN) {
    atomic_store(&news_reason, ((const ax_down_t *)m->data)->reason);
    atomic_fetch_add(&news, 1);
  } else if (m->type == AX_MSG_LINK_DOWN) {
    atomic_store(&news_reason, ((const ax_link_down_t *)m->data)->reason);
    atomic_fetch_add(&news, 1);
  }
  return 0;
}

static int idle_actor(ax_actor_t *self, const ax_msg_t *m) {
  (void)self;
  (void)m;
  return 0;
}

/* The sweep of both tests: n = 1..12, a fresh target each time. */
static void death_news_sweep(bool link) {
  const char *call = link ? "ax_link" : "ax_monitor";
  ax_rt_t *rt = test_rt_new(1, AX_RT_KEEP_ALIVE);
  test_rt_start(rt);
  ax_ref_t w = test_spawn(rt, watcher, NULL, AX_PLACE_ANY, 0, NULL, NULL);
  unsigned refused = 0, watched = 0;
  for (uint64_t nth = 1; nth <= 12; nth++) {
    ax_ref_t target = test_spawn(rt, idle_actor, NULL, AX_PLACE_ANY, 0, NULL, NULL);
    atomic_store(&watch_rc, 1);
    atomic_store(&news, 0);
    watch_job_t j = {.target = target, .nth = nth, .link = link};
    ck_assert_int_eq(ax_send(w, MSG_WATCH, &j, sizeof j), 0);
    TEST_WAIT_UNTIL(atomic_load(&watch_rc) != 1, 10000);
    test_sleep_ms(20); /* the target records the monitor or link and dies, fault armed */
    ax__fault_alloc(0, 0);
    int rc = atomic_load(&watch_rc);
    ck_assert_msg(rc == 0 || rc == -ENOMEM, "%s with allocation %llu failing: %s", call,
                  (unsigned long long)nth, ax_strerror(rc));
    if (atomic_load(&stop_rc) < 0)
      ck_assert_int_eq(ax_stop(target, -EIO), 0); /* its STOP was the failed allocation */
    if (rc == 0) {
      watched++;
      TEST_WAIT_UNTIL(atomic_load(&news) == 1, 10000);
      int reason = atomic_load(&news_reason);
      ck_assert_msg(reason == -EIO || reason == -ENOMEM, "%s: reason %d", call, reason);
    } else {
      refused++;
    }
    test_sleep_ms(10);
    ck_assert_int_eq(atomic_load(&news), rc == 0 ? 1 : 0);
  }
  ck_assert_uint_ge(refused, 1);
  ck_assert_uint_ge(watched, 1);
  test_rt_stop_join_free(rt);
}

START_TEST(test_faults_monitor_down) { death_news_sweep(false); }
END_TEST

START_TEST(test_faults_link_exit) { death_news_sweep(true); }
END_TEST

/* A stream's whole life with the n-th allocation failing, for each n:
 * opening it on a socket pair, reading lines into messages, echoing them
 * with ax_stream_write, and closing.  Every path must end in a clear
 * error (a call's -ENOMEM, or CLOSED{-ENOMEM}): the owner always hears
 * how its stream ended, and every line whose echo was accepted arrives. */
enum { MSG_OPEN_STREAM = AX_MSG_USER + 22, LINES = 5 };

typedef struct echo_state {
  int fd;
  _Atomic int open_rc;    /* 1 until opened */
  _Atomic int write_fail; /* ax_stream_write calls that failed */
  _Atomic int accepted;   /* lines whose echo (text and newline) was accepted */
  _Atomic int closed_err; /* CLOSED's err, 1 before it */
  _Atomic int ended;
} echo_state_t;

static int fault_echoer(ax_actor_t *self, const ax_msg_t *m) {
  echo_state_t *st = ax_state(self);
  if (m->type == MSG_OPEN_STREAM) {
    ax_stream_opts_t o = {.frame = AX_FRAME_DELIM, .delim = '\n'};
    ax_stream_t *s;
    int rc = ax_pipe_open(self, st->fd, st->fd, &o, &s);
    atomic_store(&st->open_rc, rc);
    return rc < 0 ? AX_STOP : 0;
  }
  if (m->type == AX_MSG_DATA) {
    const ax_data_t *d = m->data;
    int a = ax_stream_write(d->stream, d->bytes, d->len);
    int b = a == 0 ? ax_stream_write(d->stream, "\n", 1) : a;
    if (a < 0 || b < 0)
      atomic_fetch_add(&st->write_fail, 1);
    else
      atomic_fetch_add(&st->accepted, 1);
  } else if (m->type == AX_MSG_CLOSED) {
    atomic_store(&st->closed_err, ((const ax_stream_ev_t *)m->data)->err);
    return AX_STOP;
  }
  return 0;
}

static void fault_echoer_end(ax_actor_t *self, int reason) {
  (void)reason;
  atomic_store(&((echo_state_t *)ax_state(self))->ended, 1);
}

/* Reads what comes back within ms; returns the number of whole lines, all
 * of which must be "line <i>" in order. */
static int read_echoes(int fd, int ms) {
  char buf[512];
  size_t have = 0;
  int lines = 0;
  struct pollfd p = {.fd = fd, .events = POLLIN};
  while (lines < LINES && poll(&p, 1, ms) > 0) {
    ssize_t n = read(fd, buf + have, sizeof buf - 1 - have);
    if (n <= 0)
      break;
    have += (size_t)n;
    buf[have] = '\0';
    char *nl;
    while ((nl = memchr(buf, '\n', have)) != NULL) {
      char want[32];
      snprintf(want, sizeof want, "line %d", lines);
      *nl = '\0';
      ck_assert_msg(strcmp(buf, want) == 0, "echo %d is '%s'", lines, buf);
      lines++;
      have -= (size_t)(nl + 1 - buf);
      memmove(buf, nl + 1, have);
    }
  }
  return lines;
}

START_TEST(test_faults_stream_sweep) {
  ax_rt_t *rt = test_rt_new(1, AX_RT_KEEP_ALIVE);
  test_rt_start(rt);
  unsigned full = 0, failed = 0;
  for (uint64_t nth = 1; nth <= 40; nth++) {
    int sv[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    echo_state_t st = {.fd = sv[0], .open_rc = 1, .closed_err = 1};
    ax_ref_t a = test_spawn(rt, fault_echoer, &st, AX_PLACE_ANY, 0, NULL, fault_echoer_end);
    ax__fault_alloc(nth, 0);
    if (ax_send(a, MSG_OPEN_STREAM, NULL, 0) < 0) { /* the send was the failed allocation */
      ax__fault_alloc(0, 0);
      test_send(a, MSG_OPEN_STREAM, NULL, 0);
    }
    TEST_WAIT_UNTIL(atomic_load(&st.open_rc) != 1, 10000);
    int rc = atomic_load(&st.open_rc);
    ck_assert_msg(rc == 0 || rc == -ENOMEM, "open with allocation %llu failing: %s",
                  (unsigned long long)nth, ax_strerror(rc));
    int lines = 0;
    if (rc == 0) {
      for (int i = 0; i < LINES; i++) {
        char line[32];
        int n = snprintf(line, sizeof line, "line %d\n", i);
        if (send(sv[1], line, (size_t)n, MSG_NOSIGNAL) != n)
          break; /* the stream failed and closed its end */
      }
      lines = read_echoes(sv[1], 500);
    }
    ax__fault_alloc(0, 0);
    close(sv[1]); /* the peer goes: the stream ends with CLOSED */
    TEST_WAIT_UNTIL(atomic_load(&st.ended) == 1, 10000);
    if (rc == 0) {
      int err = atomic_load(&st.closed_err);
      ck_assert_msg(err == 0 || err == -ENOMEM || err == -EPIPE || err == -ECONNRESET,
                    "allocation %llu: CLOSED{%d}", (unsigned long long)nth, err);
      /* Every echo the stream accepted arrived while the client read,
       * unless the stream ended with an error, which its CLOSED reports
       * (a failed stream drops what it had queued). */
      ck_assert_msg(lines >= atomic_load(&st.accepted) || err != 0,
                    "allocation %llu: %d echoes accepted, %d arrived", (unsigned long long)nth,
                    atomic_load(&st.accepted), lines);
      /* Fewer lines than sent: the owner was told why. */
      ck_assert_msg(lines == LINES || err == -ENOMEM || atomic_load(&st.write_fail) > 0,
                    "allocation %llu: %d of %d lines, CLOSED{%d}, no error seen",
                    (unsigned long long)nth, lines, LINES, err);
    }
    full += lines == LINES;
    failed += lines < LINES;
    close(sv[0]);
  }
  ck_assert_uint_ge(full, 1);
  ck_assert_uint_ge(failed, 1);
  test_rt_stop_join_free(rt);
}
END_TEST

/* A source's end must reach its owner even when no allocation succeeds
 * at that moment: CLOSED comes from the core's reserve (msg.h,
 * ax__msg_new_vital).  Every allocation fails from the moment the peer
 * goes until the owner has stopped. */
START_TEST(test_faults_closed_from_reserve) {
  ax_rt_t *rt = test_rt_new(1, AX_RT_KEEP_ALIVE);
  test_rt_start(rt);
  for (int round = 0; round < 3; round++) {
    int sv[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    echo_state_t st = {.fd = sv[0], .open_rc = 1, .closed_err = 1};
    ax_ref_t a = test_spawn(rt, fault_echoer, &st, AX_PLACE_ANY, 0, NULL, fault_echoer_end);
    test_send(a, MSG_OPEN_STREAM, NULL, 0);
    TEST_WAIT_UNTIL(atomic_load(&st.open_rc) != 1, 10000);
    ck_assert_int_eq(atomic_load(&st.open_rc), 0);
    /* One line first, so that the core has its read buffer. */
    ck_assert_int_eq((int)send(sv[1], "line 0\n", 7, MSG_NOSIGNAL), 7);
    ck_assert_int_eq(read_echoes(sv[1], 500), 1);
    ax__fault_alloc(1, 1); /* from now on, every allocation fails */
    close(sv[1]);
    for (int w = 0; w < 5000 && atomic_load(&st.ended) == 0; w++)
      test_sleep_ms(1);
    int ended = atomic_load(&st.ended);
    ax__fault_alloc(0, 0);
    ck_assert_msg(ended == 1, "round %d: the owner never heard that its stream ended", round);
    ck_assert_int_eq(atomic_load(&st.closed_err), 0);
    close(sv[0]);
  }
  test_rt_stop_join_free(rt);
}
END_TEST

/* A TCP server's accept, session spawn, stream and echo paths with the
 * n-th allocation failing, for each n: a client either gets its lines
 * echoed or sees its connection closed, never a hang; every session that
 * started ends; and once allocations succeed again the server serves a new
 * client (nothing wedged). */
static _Atomic int tcp_sessions, tcp_ended;

/* Each session's own block (ax_serve_opts_t.session_size): whether it got
 * its connection.  A session whose AX_MSG_GIVEN could not be made is
 * stopped before it runs (its connection is closed); only those that got
 * one are counted. */
typedef struct fault_sess {
  bool given;
} fault_sess_t;

static int fault_session(ax_actor_t *self, const ax_msg_t *m) {
  if (m->type == AX_MSG_GIVEN) {
    ((fault_sess_t *)ax_state(self))->given = true;
    atomic_fetch_add(&tcp_sessions, 1);
  } else if (m->type == AX_MSG_DATA) {
    const ax_data_t *d = m->data;
    if (ax_stream_write(d->stream, d->bytes, d->len) < 0 ||
        ax_stream_write(d->stream, "\n", 1) < 0)
      return AX_STOP; /* closing the stream: the client sees it end */
  } else if (m->type == AX_MSG_CLOSED) {
    return AX_STOP;
  }
  return 0;
}

static void fault_session_end(ax_actor_t *self, int reason) {
  (void)reason;
  if (((fault_sess_t *)ax_state(self))->given)
    atomic_fetch_add(&tcp_ended, 1);
}

/* Connects, sends LINES lines, reads the echoes for at most ms; returns
 * the lines echoed (0 when the connection ended first). */
static int tcp_echo_client(int port, int ms) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ck_assert_int_ge(fd, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int rc = connect(fd, (struct sockaddr *)&sa, sizeof sa);
  ck_assert_msg(rc == 0, "connect to port %d: %s", port, strerror(errno));
  for (int i = 0; i < LINES; i++) {
    char line[32];
    int n = snprintf(line, sizeof line, "line %d\n", i);
    if (send(fd, line, (size_t)n, MSG_NOSIGNAL) != n)
      break; /* the server closed it already */
  }
  int lines = read_echoes(fd, ms);
  close(fd);
  return lines;
}

START_TEST(test_faults_tcp_sweep) {
  ax_rt_t *rt = test_rt_new(2, AX_RT_KEEP_ALIVE);
  test_rt_start(rt);
  atomic_store(&tcp_sessions, 0);
  atomic_store(&tcp_ended, 0);
  ax_serve_opts_t o = {.stream = {.frame = AX_FRAME_DELIM},
                       .terminate = fault_session_end,
                       .session_size = sizeof(fault_sess_t)};
  ax_server_t *srv;
  ck_assert_int_eq(ax_tcp_serve(rt, "127.0.0.1:0", fault_session, &o, &srv), 0);
  int port = ax_server_port(srv);
  ck_assert_int_gt(port, 0);
  unsigned full = 0, cut = 0;
  for (uint64_t nth = 1; nth <= 30; nth++) {
    ax__fault_alloc(nth, 0);
    int lines = tcp_echo_client(port, 300);
    ax__fault_alloc(0, 0);
    full += lines == LINES;
    cut += lines < LINES;
    /* Nothing wedged: with allocations working, a new client is served. */
    ck_assert_int_eq(tcp_echo_client(port, 10000), LINES);
  }
  ck_assert_uint_ge(full, 1);
  ck_assert_uint_ge(cut, 1);
  TEST_WAIT_UNTIL(atomic_load(&tcp_ended) == atomic_load(&tcp_sessions), 10000);
  ck_assert_int_eq(ax_server_close(srv), 0);
  test_rt_stop_join_free(rt);
}
END_TEST

/* A supervisor whose retry cannot be timed: a child's restart fails, and
 * the allocation of the back-off timer for the next try fails too.  The
 * supervisor must either try again or give up (stop, reason -ENOMEM, so
 * that whoever watches it hears of it); it must never stay up with the
 * child down and nothing on its way to start it. */
enum { MSG_SUP_GO = AX_MSG_USER + 40 };

static _Atomic int sup_starts, sup_down, sup_down_reason;
static _Atomic ax_ref_t sup_kid, sup_ref;

static int retry_kid_start(ax_actor_t *sup, void *arg, ax_ref_t *ref) {
  (void)arg;
  if (atomic_fetch_add(&sup_starts, 1) == 1) {
    ax__fault_alloc(1, 0); /* the next allocation, the retry's timer, fails */
    return -EIO;
  }
  ax_spawn_opts_t o = {.monitor = sup};
  int rc = ax_spawn(ax_actor_rt(sup), idle_actor, NULL, &o, ref);
  if (rc == 0)
    atomic_store(&sup_kid, *ref);
  return rc;
}

static int sup_boss(ax_actor_t *self, const ax_msg_t *m) {
  if (m->type == MSG_SUP_GO) {
    ax_child_spec_t kid = {.start = retry_kid_start, .restart = AX_PERMANENT};
    ax_sup_opts_t o = {.strategy = AX_ONE_FOR_ONE, .children = &kid, .nchildren = 1,
                       .max_restarts = 100, .period_ns = AX_NSEC_PER_SEC,
                       .backoff_ns = AX_NSEC_PER_MSEC};
    ax_spawn_opts_t so = {.monitor = self};
    ax_ref_t ref;
    ck_assert_int_eq(ax_sup_start(ax_actor_rt(self), &o, &so, &ref), 0);
    atomic_store(&sup_ref, ref);
  } else if (m->type == AX_MSG_DOWN) {
    atomic_store(&sup_down_reason, ((const ax_down_t *)m->data)->reason);
    atomic_store(&sup_down, 1);
  }
  return 0;
}

START_TEST(test_faults_sup_retry_timer) {
  ax_rt_t *rt = test_rt_new(1, AX_RT_KEEP_ALIVE);
  test_rt_start(rt);
  ax_ref_t boss = test_spawn(rt, sup_boss, NULL, AX_PLACE_ANY, 0, NULL, NULL);
  test_send(boss, MSG_SUP_GO, NULL, 0);
  TEST_WAIT_UNTIL(atomic_load(&sup_kid) != AX_REF_NONE, 10000);
  ck_assert_int_eq(ax_stop(atomic_load(&sup_kid), -EIO), 0);
  /* The restart fails (start 2), its retry's timer cannot be made. */
  TEST_WAIT_UNTIL(atomic_load(&sup_starts) >= 3 || atomic_load(&sup_down) == 1, 3000);
  ax__fault_alloc(0, 0);
  if (atomic_load(&sup_down) == 1)
    ck_assert_int_eq(atomic_load(&sup_down_reason), -ENOMEM);
  else
    (void)ax_sup_stop(atomic_load(&sup_ref));
  test_rt_stop_join_free(rt);
}
END_TEST

/* A one-shot timer that fires while every allocation fails: its message
 * comes from the core's reserve (or, the reserve empty, a millisecond
 * later).  It used to be lost: "the next tick retries", but a one-shot has
 * none, and its record stayed until the actor died. */
enum { MSG_ARM = AX_MSG_USER + 41, MSG_FIRED };
static _Atomic int oneshot_armed, oneshot_fired;

static int oneshot_actor(ax_actor_t *self, const ax_msg_t *m) {
  if (m->type == MSG_ARM) {
    ck_assert_int_eq(ax_after(self, 50 * AX_NSEC_PER_MSEC, MSG_FIRED, NULL, 0, NULL), 0);
    atomic_store(&oneshot_armed, 1);
  } else if (m->type == MSG_FIRED) {
    atomic_fetch_add(&oneshot_fired, 1);
  }
  return 0;
}

START_TEST(test_faults_oneshot_timer) {
  ax_rt_t *rt = test_rt_new(1, AX_RT_KEEP_ALIVE);
  test_rt_start(rt);
  ax_ref_t a = test_spawn(rt, oneshot_actor, NULL, AX_PLACE_ANY, 0, NULL, NULL);
  test_send(a, MSG_ARM, NULL, 0);
  TEST_WAIT_UNTIL(atomic_load(&oneshot_armed) == 1, 10000);
  ax__fault_alloc(1, 1); /* from now on, every allocation fails */
  test_sleep_ms(200);
  uint64_t failed = ax__fault_alloc(0, 0);
  ck_assert_uint_ge(failed, 1);
  TEST_WAIT_UNTIL(atomic_load(&oneshot_fired) == 1, 10000);
  test_sleep_ms(20);
  ck_assert_int_eq(atomic_load(&oneshot_fired), 1);
  test_rt_stop_join_free(rt);
}
END_TEST

/* A fiber's one-shot timer that has fired while the fiber waited for
 * something else (its tick kept aside), rearmed while every allocation
 * fails: -ENOMEM, and the tick stays for the fiber to receive.  The tick
 * used to be dropped before the new record was made, which lost the timer
 * (a reviewer). */
enum { MSG_REARM_TICK = AX_MSG_USER + 43, MSG_REARM_NEVER };
static _Atomic int rearm_rc = 1, rearm_got = 1;

static int rearm_fiber(ax_actor_t *self, void *arg) {
  (void)arg;
  uint64_t id;
  const ax_msg_t *m;
  uint32_t payload = 0x5eed;
  ck_assert_int_eq(ax_after(self, AX_NSEC_PER_MSEC, MSG_REARM_TICK, &payload, sizeof payload, &id),
                   0);
  /* The tick arrives during this wait and is kept aside. */
  ck_assert_int_eq(ax_recv_type(self, MSG_REARM_NEVER, ax_deadline(50 * AX_NSEC_PER_MSEC), &m),
                   -ETIMEDOUT);
  ax__fault_alloc(1, 1); /* from now on, every allocation fails */
  int rc = ax_timer_rearm(self, id, AX_NSEC_PER_MSEC);
  ax__fault_alloc(0, 0);
  atomic_store(&rearm_rc, rc);
  rc = ax_recv_type(self, MSG_REARM_TICK, ax_deadline(AX_NSEC_PER_SEC), &m);
  if (rc == 0 && (m->size != sizeof payload || memcmp(m->data, &payload, sizeof payload) != 0))
    rc = -EBADMSG;
  atomic_store(&rearm_got, rc);
  return 0;
}

START_TEST(test_faults_fiber_rearm_nomem) {
  ax_rt_t *rt = test_rt_new(1, AX_RT_KEEP_ALIVE);
  test_rt_start(rt);
  ck_assert_int_eq(ax_spawn_fiber(rt, rearm_fiber, NULL, NULL, NULL), 0);
  TEST_WAIT_UNTIL(atomic_load(&rearm_got) != 1, 10000);
  ck_assert_int_eq(atomic_load(&rearm_rc), -ENOMEM);
  ck_assert_msg(atomic_load(&rearm_got) == 0, "the tick after the failed rearm: %s",
                ax_strerror(atomic_load(&rearm_got)));
  test_rt_stop_join_free(rt);
}
END_TEST

/* ax_call to a live actor of another core, with each of the call's first
 * allocations failing in turn: 0, -ENOMEM or -ETIMEDOUT, never -ESRCH.
 * When the target's core could not record the call's monitor it answers
 * DOWN{-ENOMEM}, and ax_call took every DOWN for "gone": a caller that
 * failed over on -ESRCH ran a request twice (a reviewer). */
enum { MSG_CALL_ASK = AX_MSG_USER + 45, MSG_CALL_ANSWER, CALL_SWEEP = 30 };
static _Atomic int call_sweep_rc[CALL_SWEEP + 1];
static atomic_bool call_sweep_done;
static ax_ref_t call_target;

static int call_answerer(ax_actor_t *self, const ax_msg_t *m) {
  if (m->type == MSG_CALL_ASK)
    (void)ax_reply(self, m, MSG_CALL_ANSWER, NULL, 0);
  return 0;
}

static int call_sweeper(ax_actor_t *self, void *arg) {
  (void)arg;
  for (int nth = 1; nth <= CALL_SWEEP; nth++) {
    const ax_msg_t *reply;
    ax__fault_alloc((uint64_t)nth, 0);
    int rc = ax_call(self, call_target, MSG_CALL_ASK, "q", 1, ax_deadline(AX_NSEC_PER_SEC),
                     &reply);
    ax__fault_alloc(0, 0);
    atomic_store(&call_sweep_rc[nth], rc);
    ax_sleep(self, 20 * AX_NSEC_PER_MSEC); /* a late reply or DOWN is dropped meanwhile */
    /* A monitor of the target's own, made and removed: the target core's
     * index grows and shrinks around the calls, so that one call's
     * monitor finds it needing memory. */
    uint64_t mid;
    if (ax_monitor(self, call_target, &mid) == 0) {
      const ax_msg_t *m;
      (void)ax_recv_type(self, AX_MSG_DOWN, ax_deadline(20 * AX_NSEC_PER_MSEC), &m);
      (void)ax_demonitor(self, mid);
    }
  }
  atomic_store(&call_sweep_done, true);
  return 0;
}

START_TEST(test_faults_call_nomem_not_esrch) {
  ax_rt_t *rt = test_rt_new(2, AX_RT_KEEP_ALIVE);
  call_target = test_spawn(rt, call_answerer, NULL, AX_PLACE_CORE, 1, NULL, NULL);
  ax_fiber_opts_t fo = {.placement = AX_PLACE_CORE, .core = 0};
  ck_assert_int_eq(ax_spawn_fiber(rt, call_sweeper, NULL, &fo, NULL), 0);
  test_rt_start(rt);
  TEST_WAIT_UNTIL(atomic_load(&call_sweep_done), 60000);
  int ok = 0;
  for (int nth = 1; nth <= CALL_SWEEP; nth++) {
    int rc = atomic_load(&call_sweep_rc[nth]);
    ck_assert_msg(rc == 0 || rc == -ENOMEM || rc == -ETIMEDOUT,
                  "allocation %d failing: ax_call to a live actor gave %s", nth, ax_strerror(rc));
    ok += rc == 0;
  }
  ck_assert_int_ge(ok, 1); /* the sweep went past the call's allocations */
  ck_assert_int_eq(ax_send(call_target, AX_MSG_USER + 99, NULL, 0), 0); /* still alive */
  test_rt_stop_join_free(rt);
}
END_TEST

/* ax_stop of an actor that is gone says -ESRCH whatever allocation fails:
 * it used to make its message first, and said -ENOMEM. */
START_TEST(test_faults_stop_dead) {
  ax_rt_t *rt = test_rt_new(1, AX_RT_KEEP_ALIVE);
  test_rt_start(rt);
  ax_ref_t a = test_spawn(rt, idle_actor, NULL, AX_PLACE_ANY, 0, NULL, NULL);
  ck_assert_int_eq(ax_stop(a, 0), 0);
  TEST_WAIT_UNTIL(ax_send(a, MSG_COUNT, NULL, 0) == -ESRCH, 10000);
  /* From main, which has its epoch record already (a fresh thread's first
   * call may fail to make its own: an honest -ENOMEM). */
  ax__fault_alloc(1, 1);
  int rc = ax_stop(a, 0);
  ax__fault_alloc(0, 0);
  ck_assert_msg(rc == -ESRCH, "every allocation failing: %s", ax_strerror(rc));
  test_rt_stop_join_free(rt);
}
END_TEST

/* An eventfd written, and an fd watch whose pipe has data, while every
 * allocation fails: the message cannot be made, and the source waits a
 * little before it looks again instead of being called back at once for
 * as long as memory is short (its core slept and woke thousands of times
 * in 200 ms).  Once memory is back, the news arrives. */
enum { MSG_NOMEM_OPEN = AX_MSG_USER + 42 };
static _Atomic int nomem_opened = 1, nomem_ready;
static _Atomic uint64_t nomem_count;
static ax_efd_t *nomem_efd;
static int nomem_pipe[2];

static int nomem_owner(ax_actor_t *self, const ax_msg_t *m) {
  if (m->type == MSG_NOMEM_OPEN) {
    ax_fdwatch_t *w;
    int rc = ax_efd_open(self, &nomem_efd);
    if (rc == 0)
      rc = ax_fd_watch(self, nomem_pipe[0], AX_READ, &w);
    atomic_store(&nomem_opened, rc);
  } else if (m->type == AX_MSG_EVENT) {
    atomic_fetch_add(&nomem_count, ((const ax_event_msg_t *)m->data)->count);
  } else if (m->type == AX_MSG_FD_READY) {
    atomic_fetch_add(&nomem_ready, 1);
  }
  return 0;
}

START_TEST(test_faults_sources_nomem_wait) {
  ck_assert_int_eq(pipe2(nomem_pipe, O_NONBLOCK | O_CLOEXEC), 0);
  ax_rt_t *rt = test_rt_new(1, AX_RT_KEEP_ALIVE);
  test_rt_start(rt);
  ax_ref_t a = test_spawn(rt, nomem_owner, NULL, AX_PLACE_ANY, 0, NULL, NULL);
  test_send(a, MSG_NOMEM_OPEN, NULL, 0);
  TEST_WAIT_UNTIL(atomic_load(&nomem_opened) != 1, 10000);
  ck_assert_int_eq(atomic_load(&nomem_opened), 0);
  test_sleep_ms(20);
  ax_core_stats_t before, after;
  ck_assert_int_eq(ax_rt_stats(rt, 0, &before), 0);
  ax__fault_alloc(1, 1); /* every allocation fails */
  ck_assert_int_eq(ax_efd_notify(nomem_efd, 5), 0);
  ck_assert_int_eq((int)write(nomem_pipe[1], "x", 1), 1);
  test_sleep_ms(200);
  ck_assert_int_eq(ax_rt_stats(rt, 0, &after), 0);
  ax__fault_alloc(0, 0);
  uint64_t sleeps = after.sleeps - before.sleeps;
  ck_assert_msg(sleeps < 500, "the core slept %llu times in 200 ms: it spun",
                (unsigned long long)sleeps);
  TEST_WAIT_UNTIL(atomic_load(&nomem_count) == 5, 10000);
  TEST_WAIT_UNTIL(atomic_load(&nomem_ready) == 1, 10000);
  test_rt_stop_join_free(rt);
  close(nomem_pipe[0]);
  close(nomem_pipe[1]);
}
END_TEST

/* A delimited stream whose complete frame cannot be made into a message
 * (every allocation fails) while nothing more comes from the peer: the
 * frame used to wait in the framer for a next event that never came.  It
 * is posted once memory is back, after the stream's short wait. */
enum { MSG_FRAMED_OPEN = AX_MSG_USER + 43 };
static _Atomic int framed_opened = 1, framed_got;
static int framed_pipe[2];
static char framed_line[16];

static int framed_owner(ax_actor_t *self, const ax_msg_t *m) {
  if (m->type == MSG_FRAMED_OPEN) {
    ax_stream_opts_t o = {.frame = AX_FRAME_DELIM};
    ax_stream_t *st;
    atomic_store(&framed_opened, ax_pipe_open(self, framed_pipe[0], -1, &o, &st));
  } else if (m->type == AX_MSG_DATA) {
    const ax_data_t *d = m->data;
    if (d->len < sizeof framed_line) {
      memcpy(framed_line, d->bytes, d->len);
      framed_line[d->len] = '\0';
    }
    atomic_fetch_add(&framed_got, 1);
  }
  return 0;
}

START_TEST(test_faults_frame_nomem_retry) {
  ck_assert_int_eq(pipe2(framed_pipe, O_NONBLOCK | O_CLOEXEC), 0);
  ax_rt_t *rt = test_rt_new(1, AX_RT_KEEP_ALIVE);
  test_rt_start(rt);
  ax_ref_t a = test_spawn(rt, framed_owner, NULL, AX_PLACE_ANY, 0, NULL, NULL);
  test_send(a, MSG_FRAMED_OPEN, NULL, 0);
  TEST_WAIT_UNTIL(atomic_load(&framed_opened) != 1, 10000);
  ck_assert_int_eq(atomic_load(&framed_opened), 0);
  /* Half a line first: the framer and the core's read buffer exist. */
  ck_assert_int_eq((int)write(framed_pipe[1], "ab", 2), 2);
  test_sleep_ms(50);
  ax__fault_alloc(1, 1); /* every allocation fails */
  ck_assert_int_eq((int)write(framed_pipe[1], "c\n", 2), 2);
  test_sleep_ms(50);
  ck_assert_uint_ge(ax__fault_alloc(0, 0), 1);
  ck_assert_int_eq(atomic_load(&framed_got), 0);
  TEST_WAIT_UNTIL(atomic_load(&framed_got) == 1, 5000);
  ck_assert_str_eq(framed_line, "abc");
  test_rt_stop_join_free(rt); /* the stream, which owns the read end, closes it */
  close(framed_pipe[1]);
}
END_TEST

/* ax_stream_write whose direct write the kernel took in part (a pipe's 64
 * KiB of 100,000 bytes) and whose queue chunk for the rest found no
 * memory: -ENOMEM, and since the part written cannot be taken back, the
 * stream ends (CLOSED{-ENOMEM}, later writes -EPIPE) rather than staying
 * open with a hole a retry would fill twice (a reviewer's program). */
static struct {
  int p[2];
  int write_rc, again_rc, closed_err;
  size_t queued;
  _Atomic int done;
} wp;

static int write_partial_actor(ax_actor_t *self, const ax_msg_t *m) {
  if (m->type == AX_MSG_USER) {
    ax_stream_t *s;
    if ((wp.write_rc = ax_pipe_open(self, -1, wp.p[1], NULL, &s)) != 0) {
      atomic_store(&wp.done, 1);
      return AX_STOP;
    }
    static char buf[100000];
    memset(buf, 'x', sizeof buf);
    ax__fault_alloc(1, 0); /* the next allocation: the queue's chunk */
    wp.write_rc = ax_stream_write(s, buf, sizeof buf);
    ax__fault_alloc(0, 0);
    wp.queued = ax_stream_queued(s);
    wp.again_rc = ax_stream_write(s, buf, 10);
    return 0;
  }
  if (m->type == AX_MSG_CLOSED) {
    wp.closed_err = ((const ax_stream_ev_t *)m->data)->err;
    atomic_store(&wp.done, 1);
    return AX_STOP;
  }
  return 0;
}

START_TEST(test_faults_write_partial_nomem) {
  ck_assert_int_eq(pipe2(wp.p, O_CLOEXEC), 0);
  ck_assert_int_eq(fcntl(wp.p[0], F_SETFL, O_NONBLOCK), 0);
  ax_rt_t *rt = test_rt_new(1, AX_RT_KEEP_ALIVE);
  test_rt_start(rt);
  ax_ref_t a;
  ck_assert_int_eq(ax_spawn(rt, write_partial_actor, NULL, NULL, &a), 0);
  ck_assert_int_eq(ax_send(a, AX_MSG_USER, NULL, 0), 0);
  for (int i = 0; i < 5000 && !atomic_load(&wp.done); i++)
    test_sleep_ms(1);
  ck_assert_msg(atomic_load(&wp.done), "no CLOSED after a write that lost its rest");
  ck_assert_int_eq(wp.write_rc, -ENOMEM);
  static char rb[200000];
  ssize_t got = read(wp.p[0], rb, sizeof rb);
  ck_assert_int_gt(got, 0); /* the kernel took a part */
  ck_assert_int_lt(got, 100000);
  ck_assert_int_eq(wp.write_rc, -ENOMEM);
  ck_assert_uint_eq(wp.queued, 0);
  ck_assert_int_eq(wp.again_rc, -EPIPE);
  ck_assert_int_eq(wp.closed_err, -ENOMEM);
  test_rt_stop_join_free(rt);
  close(wp.p[0]);
}
END_TEST

/* The first message from core 0 to core 1 cannot have its ring (out of
 * memory): it goes through core 1's inbox.  The messages after it must
 * not overtake it on a ring made later (a core takes its rings before its
 * inbox): a reviewer's reasoning, made a test. */
enum { MSG_ORDER_GO = AX_MSG_USER + 50, MSG_ORDER_SEQ, MSG_ORDER_HOLD, ORDER_N = 1000 };
static _Atomic int order_rc = 1, order_got, order_bad = -1, order_held, order_release;
static _Atomic uint64_t order_failed;

static int order_sink(ax_actor_t *self, const ax_msg_t *m) {
  (void)self;
  if (m->type == MSG_ORDER_HOLD) { /* its core takes nothing meanwhile */
    atomic_store(&order_held, 1);
    while (!atomic_load(&order_release))
      sched_yield();
    return 0;
  }
  if (m->type != MSG_ORDER_SEQ)
    return 0;
  uint32_t seq;
  memcpy(&seq, m->data, sizeof seq);
  int got = atomic_fetch_add(&order_got, 1);
  if ((int)seq != got && atomic_load(&order_bad) < 0)
    atomic_store(&order_bad, got);
  return 0;
}

static int order_source(ax_actor_t *self, const ax_msg_t *m) {
  (void)self;
  if (m->type != MSG_ORDER_GO)
    return 0;
  ax_ref_t sink;
  memcpy(&sink, m->data, sizeof sink);
  char payload[64] = {0}; /* larger than a ring slot holds: one try at the ring */
  int rc = 0;
  for (uint32_t seq = 0; seq < ORDER_N && rc == 0; seq++) {
    memcpy(payload, &seq, sizeof seq);
    if (seq == 0)
      ax__fault_alloc(2, 0); /* the message's allocation counts first, then the ring's fails */
    rc = ax_send(sink, MSG_ORDER_SEQ, payload, seq % 2 == 0 ? sizeof payload : sizeof seq);
    if (seq == 0)
      atomic_store(&order_failed, ax__fault_alloc(0, 0));
  }
  atomic_store(&order_rc, rc);
  return 0;
}

START_TEST(test_faults_ring_nomem_order) {
  ax_rt_t *rt = test_rt_new(2, AX_RT_KEEP_ALIVE);
  test_rt_start(rt);
  ax_ref_t sink = test_spawn(rt, order_sink, NULL, AX_PLACE_CORE, 1, NULL, NULL);
  ax_ref_t source = test_spawn(rt, order_source, NULL, AX_PLACE_CORE, 0, NULL, NULL);
  /* The sink's core is held in a turn while the source sends all: then
   * it finds the inbox's message and the ring's together. */
  test_send(sink, MSG_ORDER_HOLD, NULL, 0);
  TEST_WAIT_UNTIL(atomic_load(&order_held) == 1, 10000);
  test_send(source, MSG_ORDER_GO, &sink, sizeof sink);
  TEST_WAIT_UNTIL(atomic_load(&order_rc) != 1, 10000);
  atomic_store(&order_release, 1);
  ck_assert_int_eq(atomic_load(&order_rc), 0);
  ck_assert_uint_eq(atomic_load(&order_failed), 1);
  TEST_WAIT_UNTIL(atomic_load(&order_got) == ORDER_N, 10000);
  ck_assert_msg(atomic_load(&order_bad) < 0, "message %d arrived out of order",
                atomic_load(&order_bad));
  test_rt_stop_join_free(rt);
}
END_TEST

static Suite *faults_suite(void) {
  Suite *s = suite_create("faults");
  TCase *tc = tcase_create("foreign");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_faults_foreign_send);
  tcase_add_test(tc, test_faults_foreign_stop_register);
  tcase_add_test(tc, test_faults_group);
  tcase_add_test(tc, test_faults_work);
  tcase_add_test(tc, test_faults_monitor_down);
  tcase_add_test(tc, test_faults_link_exit);
  tcase_add_test(tc, test_faults_stream_sweep);
  tcase_add_test(tc, test_faults_tcp_sweep);
  tcase_add_test(tc, test_faults_closed_from_reserve);
  tcase_add_test(tc, test_faults_sup_retry_timer);
  tcase_add_test(tc, test_faults_oneshot_timer);
  tcase_add_test(tc, test_faults_fiber_rearm_nomem);
  tcase_add_test(tc, test_faults_stop_dead);
  tcase_add_test(tc, test_faults_sources_nomem_wait);
  tcase_add_test(tc, test_faults_frame_nomem_retry);
  tcase_add_test(tc, test_faults_write_partial_nomem);
  tcase_add_test(tc, test_faults_ring_nomem_order);
  tcase_add_test(tc, test_faults_call_nomem_not_esrch);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return test_run_suite(faults_suite()); }
