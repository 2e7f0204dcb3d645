/* Check suite for ports: mailboxes of foreign threads, deadlines, wake-ups, the eventfd, freed ports. */
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>

#include "axon_test.h"

enum {
  MSG_PING = AX_MSG_USER,
  MSG_ECHO,    /* echo_t: the actor answers to reply_to with value * 2 */
  MSG_ANSWER,  /* an int */
  MSG_ASK,     /* the actor sends an ax_request to the port in its state */
  MSG_REPLY,   /* the port owner's ax_reply */
  MSG_RESULT,  /* the actor reports on the reply: int 1 = good */
  MSG_SEQ,     /* test_seq_msg_t */
  MSG_BURST,   /* the actor sends `int` MSG_SEQ messages to its port */
  MSG_STOP,
  MSG_FLOOD, /* the actor sends FLOOD_N messages of 64 bytes to the port in its state */
  MSG_BULK,
};

static ax_port_t *new_port(ax_rt_t *rt) {
  ax_port_t *port = NULL;
  int rc = ax_port_new(rt, &port);
  ck_assert_msg(rc == 0, "ax_port_new: %s", ax_strerror(rc));
  ck_assert_ptr_nonnull(port);
  ck_assert(ax_port_ref(port) != AX_REF_NONE);
  ck_assert_int_ge(ax_port_fd(port), 0);
  return port;
}

/* Waits for the runtime to stop, then frees the port and the runtime. */
static void join_free_with_port(ax_rt_t *rt, ax_port_t *port) {
  ck_assert_int_eq(ax_rt_join(rt), 0);
  ck_assert_int_eq(ax_port_close(port), 0);
  ck_assert_int_eq(ax_rt_free(rt), 0);
}

/* Receives one message within five seconds and fails the test otherwise. */
static void recv_one(ax_port_t *port, ax_msg_t *msg) {
  int rc = ax_port_recv(port, ax_now() + 5 * AX_NSEC_PER_SEC, msg);
  ck_assert_msg(rc == 0, "ax_port_recv: %s", ax_strerror(rc));
}

/* ------------------------------------------------------------------------ */
/* Creation and errors                                                       */

START_TEST(test_port_new_free) {
  ax_rt_t *rt = test_rt_new(1, 0);
  ax_port_t *a = new_port(rt);
  ax_port_t *b = new_port(rt);
  ck_assert(ax_port_ref(a) != ax_port_ref(b));
  ck_assert_int_ne(ax_port_fd(a), ax_port_fd(b));
  /* A port is not an actor: it has no core. */
  ck_assert_int_eq(ax_ref_core(ax_port_ref(a)), -EINVAL);

  ax_msg_t msg;
  ck_assert_int_eq(ax_port_recv(a, 0, &msg), -EAGAIN);
  ck_assert_int_eq(ax_port_recv(NULL, 0, &msg), -EINVAL);
  ck_assert_int_eq(ax_port_recv(a, 0, NULL), -EINVAL);
  ax_port_t *none = NULL;
  ck_assert_int_eq(ax_port_new(NULL, &none), -EINVAL);
  ck_assert_int_eq(ax_port_new(rt, NULL), -EINVAL);
  ck_assert_int_eq(ax_port_close(NULL), -EINVAL);

  ck_assert_int_eq(ax_port_close(a), 0);
  ck_assert_int_eq(ax_port_close(b), 0);
  ck_assert_int_eq(ax_rt_free(rt), 0);
}
END_TEST

START_TEST(test_port_recv_deadlines) {
  ax_rt_t *rt = test_rt_new(2, AX_RT_KEEP_ALIVE);
  test_rt_start(rt);
  ax_port_t *port = new_port(rt);
  ax_msg_t msg;

  int64_t start = ax_now();
  ck_assert_int_eq(ax_port_recv(port, 0, &msg), -EAGAIN);
  ck_assert_int_lt(ax_now() - start, 1 * AX_NSEC_PER_SEC);

  start = ax_now();
  ck_assert_int_eq(ax_port_recv(port, start + 50 * AX_NSEC_PER_MSEC, &msg), -ETIMEDOUT);
  int64_t elapsed = ax_now() - start;
  ck_assert_int_ge(elapsed, 40 * AX_NSEC_PER_MSEC);
  ck_assert_int_lt(elapsed, 5 * AX_NSEC_PER_SEC);

  /* A message already queued is taken at once, whatever the deadline. */
  test_send(ax_port_ref(port), MSG_PING, NULL, 0);
  ck_assert_int_eq(ax_port_recv(port, AX_FOREVER, &msg), 0);
  ck_assert_uint_eq(msg.type, MSG_PING);
  ck_assert_int_eq(ax_port_recv(port, 0, &msg), -EAGAIN);

  ck_assert_int_eq(ax_port_close(port), 0);
  test_rt_stop_join_free(rt);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Messages between threads, actors and ports                                */

START_TEST(test_port_thread_to_own_port) {
  enum { N = 1000 };
  ax_rt_t *rt = test_rt_new(1, AX_RT_KEEP_ALIVE);
  test_rt_start(rt);
  ax_port_t *port = new_port(rt);
  ax_ref_t ref = ax_port_ref(port);
  test_seq_msg_t m = {7, 0, 0};
  for (m.seq = 0; m.seq < N; m.seq++) {
    test_send(ref, MSG_SEQ, &m, sizeof m);
    if (m.seq % 100 == 0)
      test_send(ref, MSG_PING, NULL, 0);
  }
  uint64_t next = 0;
  int pings = 0;
  while (next < N) {
    ax_msg_t msg;
    recv_one(port, &msg);
    ck_assert(msg.from == AX_REF_NONE);
    ck_assert(msg.req == 0);
    if (msg.type == MSG_PING) {
      ck_assert_uint_eq(msg.size, 0);
      ck_assert_ptr_null(msg.data);
      pings++;
      continue;
    }
    ck_assert_uint_eq(msg.type, MSG_SEQ);
    ck_assert_uint_eq(msg.size, sizeof m);
    test_seq_msg_t got;
    memcpy(&got, msg.data, sizeof got);
    ck_assert_uint_eq(got.sender, 7);
    ck_assert_uint_eq(got.seq, next);
    next++;
  }
  ck_assert_int_eq(pings, N / 100);
  ax_msg_t msg;
  ck_assert_int_eq(ax_port_recv(port, 0, &msg), -EAGAIN);
  ck_assert_int_eq(ax_port_close(port), 0);
  test_rt_stop_join_free(rt);
}
END_TEST

typedef struct echo {
  ax_ref_t reply_to;
  int value;
} echo_t;

/* Answers MSG_ECHO; on MSG_ASK sends a request to `port_ref` and checks
 * the reply that comes back. */
typedef struct answerer {
  ax_ref_t port_ref;
  uint64_t req;
  atomic_int bad;
} answerer_t;

static int answerer_behaviour(ax_actor_t *self, const ax_msg_t *msg) {
  answerer_t *a = ax_state(self);
  switch (msg->type) {
  case MSG_ECHO: {
    echo_t e;
    memcpy(&e, msg->data, sizeof e);
    int answer = e.value * 2;
    if (ax_send(e.reply_to, MSG_ANSWER, &answer, sizeof answer) != 0)
      atomic_fetch_add(&a->bad, 1);
    return 0;
  }
  case MSG_ASK: {
    int question = 21;
    if (ax_request(self, a->port_ref, MSG_ASK, &question, sizeof question, &a->req) != 0)
      atomic_fetch_add(&a->bad, 1);
    return 0;
  }
  case MSG_REPLY: {
    int answer = 0;
    if (msg->size == sizeof answer)
      memcpy(&answer, msg->data, sizeof answer);
    /* From a thread: no sender; the request id comes back. */
    int good = msg->req == a->req && a->req != 0 && msg->from == AX_REF_NONE && answer == 42;
    if (ax_send(a->port_ref, MSG_RESULT, &good, sizeof good) != 0)
      atomic_fetch_add(&a->bad, 1);
    return 0;
  }
  case MSG_STOP:
    return AX_STOP;
  default:
    atomic_fetch_add(&a->bad, 1);
    return 0;
  }
}

START_TEST(test_port_actor_replies) {
  enum { N = 200 };
  ax_rt_t *rt = test_rt_new(2, 0);
  ax_port_t *port = new_port(rt);
  answerer_t a;
  memset(&a, 0, sizeof a);
  a.port_ref = ax_port_ref(port);
  ax_ref_t actor = test_spawn(rt, answerer_behaviour, &a, AX_PLACE_CORE, 1, NULL, NULL);
  test_rt_start(rt);

  /* The thread asks, the actor answers to the port, in order. */
  for (int i = 0; i < N; i++) {
    echo_t e = {ax_port_ref(port), i};
    test_send(actor, MSG_ECHO, &e, sizeof e);
  }
  for (int i = 0; i < N; i++) {
    ax_msg_t msg;
    recv_one(port, &msg);
    ck_assert_uint_eq(msg.type, MSG_ANSWER);
    ck_assert(msg.from == actor);
    ck_assert_uint_eq(msg.size, sizeof(int));
    ck_assert_int_eq(*(const int *)msg.data, 2 * i);
  }

  /* The actor asks the port with ax_request; the thread replies with
   * ax_reply(NULL, ...). */
  test_send(actor, MSG_ASK, NULL, 0);
  ax_msg_t request;
  recv_one(port, &request);
  ck_assert_uint_eq(request.type, MSG_ASK);
  ck_assert(request.from == actor);
  ck_assert(request.req != 0);
  ck_assert_int_eq(*(const int *)request.data, 21);
  int answer = 42;
  ck_assert_int_eq(ax_reply(NULL, &request, MSG_REPLY, &answer, sizeof answer), 0);
  ax_msg_t result;
  recv_one(port, &result);
  ck_assert_uint_eq(result.type, MSG_RESULT);
  ck_assert_int_eq(*(const int *)result.data, 1);
  /* A message that is not a request cannot be replied to. */
  ck_assert_int_eq(ax_reply(NULL, &result, MSG_REPLY, NULL, 0), -EINVAL);
  ck_assert_int_eq(ax_reply(NULL, NULL, MSG_REPLY, NULL, 0), -EINVAL);

  test_send(actor, MSG_STOP, NULL, 0);
  join_free_with_port(rt, port);
  ck_assert_int_eq(atomic_load(&a.bad), 0);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Blocking receives and wake-ups                                            */

typedef struct blocked {
  ax_port_t *port;
  int64_t deadline;
  atomic_int waiting;
  atomic_int done;
  int rc;
  ax_msg_t msg;
  int value;
  int64_t woke_after;
} blocked_t;

/* Blocks in ax_port_recv until a message or the deadline. */
static void *blocked_main(void *arg) {
  blocked_t *b = arg;
  atomic_store(&b->waiting, 1);
  int64_t start = ax_now();
  b->rc = ax_port_recv(b->port, b->deadline, &b->msg);
  b->woke_after = ax_now() - start;
  if (b->rc == 0 && b->msg.size == sizeof b->value)
    memcpy(&b->value, b->msg.data, sizeof b->value);
  atomic_store(&b->done, 1);
  return NULL;
}

START_TEST(test_port_blocking_recv_woken) {
  ax_rt_t *rt = test_rt_new(2, 0);
  answerer_t a;
  memset(&a, 0, sizeof a);
  ax_ref_t actor = test_spawn(rt, answerer_behaviour, &a, AX_PLACE_CORE, 1, NULL, NULL);
  test_rt_start(rt);
  /* Woken by an actor (AX_FOREVER), then by another thread (a far
   * deadline). */
  for (int round = 0; round < 2; round++) {
    ax_port_t *port = new_port(rt);
    blocked_t b;
    memset(&b, 0, sizeof b);
    b.port = port;
    b.deadline = round == 0 ? AX_FOREVER : ax_now() + 60 * AX_NSEC_PER_SEC;
    pthread_t thread;
    ck_assert_int_eq(pthread_create(&thread, NULL, blocked_main, &b), 0);
    TEST_WAIT_UNTIL(atomic_load(&b.waiting) == 1, 10000);
    test_sleep_ms(50); /* let it block */
    if (round == 0) {
      echo_t e = {ax_port_ref(port), 50};
      test_send(actor, MSG_ECHO, &e, sizeof e);
    } else {
      int hundred = 100;
      test_send(ax_port_ref(port), MSG_ANSWER, &hundred, sizeof hundred);
    }
    ck_assert_int_eq(pthread_join(thread, NULL), 0);
    ck_assert_int_eq(b.rc, 0);
    ck_assert_uint_eq(b.msg.type, MSG_ANSWER);
    ck_assert_int_eq(b.value, 100);
    ck_assert(b.msg.from == (round == 0 ? actor : AX_REF_NONE));
    ck_assert_int_lt(b.woke_after, 30 * AX_NSEC_PER_SEC);
    ck_assert_int_eq(ax_port_close(port), 0);
  }
  test_send(actor, MSG_STOP, NULL, 0);
  test_rt_join_free(rt);
  ck_assert_int_eq(atomic_load(&a.bad), 0);
}
END_TEST

static void ignore_signal(int signo) {
  (void)signo;
}

START_TEST(test_port_recv_eintr) {
  /* A signal handled while the owner waits interrupts the wait.  SIGURG:
   * the runtime claims SIGUSR1 and the like (blocked in the threads
   * started while it runs), not this one. */
  struct sigaction action;
  memset(&action, 0, sizeof action);
  action.sa_handler = ignore_signal;
  sigemptyset(&action.sa_mask);
  ck_assert_int_eq(sigaction(SIGURG, &action, NULL), 0);

  ax_rt_t *rt = test_rt_new(1, AX_RT_KEEP_ALIVE);
  test_rt_start(rt);
  ax_port_t *port = new_port(rt);
  blocked_t b;
  memset(&b, 0, sizeof b);
  b.port = port;
  b.deadline = ax_now() + 20 * AX_NSEC_PER_SEC;
  pthread_t thread;
  ck_assert_int_eq(pthread_create(&thread, NULL, blocked_main, &b), 0);
  TEST_WAIT_UNTIL(atomic_load(&b.waiting) == 1, 10000);
  /* Signal until it returns (the first ones may come before it waits). */
  for (int i = 0; i < 500 && !atomic_load(&b.done); i++) {
    test_sleep_ms(20);
    if (!atomic_load(&b.done))
      pthread_kill(thread, SIGURG);
  }
  ck_assert_int_eq(pthread_join(thread, NULL), 0);
  ck_assert_msg(b.rc == -EINTR, "ax_port_recv returned %d (%s), expected -EINTR", b.rc,
                ax_err_name(b.rc));
  ck_assert_int_eq(ax_port_close(port), 0);
  test_rt_stop_join_free(rt);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* The eventfd in a poll() loop                                              */

/* Sends `rounds` bursts of 1-3 sequence messages to a port, each after the
 * receiver has taken the previous burst: a lost wake-up would stall it. */
typedef struct burster {
  ax_ref_t to;
  int rounds;
  atomic_long sent;
  atomic_long *received;
} burster_t;

static void *burster_main(void *arg) {
  burster_t *b = arg;
  uint64_t state = 88172645463325252ULL;
  test_seq_msg_t m = {1, 0, 0};
  for (int r = 0; r < b->rounds; r++) {
    int burst = 1 + r % 3;
    for (int k = 0; k < burst; k++, m.seq++) {
      if (ax_send(b->to, MSG_SEQ, &m, sizeof m) != 0)
        return (void *)1;
      atomic_fetch_add(&b->sent, 1);
    }
    int64_t deadline = ax_now() + 20 * AX_NSEC_PER_SEC;
    while (atomic_load(b->received) < atomic_load(&b->sent) && ax_now() < deadline) {
    }
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    if (state % 4 == 0)
      test_sleep_ms(1);
  }
  return NULL;
}

START_TEST(test_port_fd_poll) {
  int rounds = (int)test_scaled(2000);
  ax_rt_t *rt = test_rt_new(2, AX_RT_KEEP_ALIVE);
  test_rt_start(rt);
  ax_port_t *port = new_port(rt);
  int fd = ax_port_fd(port);

  /* First a message sent before anyone polls: the fd is readable. */
  test_send(ax_port_ref(port), MSG_PING, NULL, 0);
  struct pollfd pfd = {fd, POLLIN, 0};
  ck_assert_int_eq(poll(&pfd, 1, 5000), 1);
  ck_assert(pfd.revents & POLLIN);
  ax_msg_t msg;
  ck_assert_int_eq(ax_port_recv(port, 0, &msg), 0);
  ck_assert_uint_eq(msg.type, MSG_PING);
  ck_assert_int_eq(ax_port_recv(port, 0, &msg), -EAGAIN);

  /* Then bursts from another thread, taken only when poll() says so. */
  atomic_long received;
  atomic_init(&received, 0);
  burster_t b;
  b.to = ax_port_ref(port);
  b.rounds = rounds;
  atomic_init(&b.sent, 0);
  b.received = &received;
  long total = 0;
  for (int r = 0; r < rounds; r++)
    total += 1 + r % 3;
  pthread_t thread;
  ck_assert_int_eq(pthread_create(&thread, NULL, burster_main, &b), 0);
  uint64_t next = 0;
  while (atomic_load(&received) < total) {
    pfd.revents = 0;
    int n = poll(&pfd, 1, 10000);
    ck_assert_msg(n == 1, "poll found nothing with %ld of %ld messages taken (lost wake-up)",
                  atomic_load(&received), total);
    int rc;
    while ((rc = ax_port_recv(port, 0, &msg)) == 0) {
      test_seq_msg_t got;
      ck_assert_uint_eq(msg.type, MSG_SEQ);
      memcpy(&got, msg.data, sizeof got);
      ck_assert_uint_eq(got.seq, next);
      next++;
      atomic_fetch_add(&received, 1);
    }
    ck_assert_int_eq(rc, -EAGAIN);
  }
  void *thread_rc = NULL;
  ck_assert_int_eq(pthread_join(thread, &thread_rc), 0);
  ck_assert_ptr_null(thread_rc);
  ck_assert_int_eq(ax_port_close(port), 0);
  test_rt_stop_join_free(rt);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Several senders, and freed ports                                          */

/* Sends `count` sequence messages tagged `id` to `to`, in chunks. */
typedef struct seq_actor {
  ax_ref_t to;
  uint32_t id;
  uint64_t seq, count;
  atomic_int bad;
  atomic_int late_rc; /* MSG_PING: the result of one more send */
} seq_actor_t;

static int seq_actor_behaviour(ax_actor_t *self, const ax_msg_t *msg) {
  seq_actor_t *s = ax_state(self);
  if (msg->type == MSG_STOP)
    return AX_STOP;
  if (msg->type == MSG_PING) {
    atomic_store(&s->late_rc, ax_send(s->to, MSG_PING, NULL, 0));
    return 0;
  }
  for (int k = 0; k < 100 && s->seq < s->count; k++, s->seq++) {
    test_seq_msg_t m = {s->id, 0, s->seq};
    if (ax_send(s->to, MSG_SEQ, &m, sizeof m) != 0)
      atomic_fetch_add(&s->bad, 1);
  }
  if (s->seq < s->count && ax_send(ax_self(self), MSG_BURST, NULL, 0) != 0)
    atomic_fetch_add(&s->bad, 1);
  return 0;
}

typedef struct seq_thread {
  ax_ref_t to;
  uint32_t id;
  uint64_t count;
  int bad;
} seq_thread_t;

static void *seq_thread_main(void *arg) {
  seq_thread_t *t = arg;
  for (uint64_t seq = 0; seq < t->count; seq++) {
    test_seq_msg_t m = {t->id, 0, seq};
    if (ax_send(t->to, MSG_SEQ, &m, sizeof m) != 0)
      t->bad++;
  }
  return NULL;
}

START_TEST(test_port_many_senders) {
  uint64_t per_sender = test_scaled(20000);
  ax_rt_t *rt = test_rt_new(2, 0);
  ax_port_t *port = new_port(rt);
  seq_actor_t actors[2];
  memset(actors, 0, sizeof actors);
  ax_ref_t refs[2];
  for (uint32_t i = 0; i < 2; i++) {
    actors[i].to = ax_port_ref(port);
    actors[i].id = i;
    actors[i].count = per_sender;
    refs[i] = test_spawn(rt, seq_actor_behaviour, &actors[i], AX_PLACE_CORE, i, NULL, NULL);
    test_send(refs[i], MSG_BURST, NULL, 0);
  }
  seq_thread_t threads[2];
  pthread_t tids[2];
  test_rt_start(rt);
  for (uint32_t i = 0; i < 2; i++) {
    threads[i].to = ax_port_ref(port);
    threads[i].id = 2 + i;
    threads[i].count = per_sender;
    threads[i].bad = 0;
    ck_assert_int_eq(pthread_create(&tids[i], NULL, seq_thread_main, &threads[i]), 0);
  }
  uint64_t next[4] = {0, 0, 0, 0};
  for (uint64_t n = 0; n < 4 * per_sender; n++) {
    ax_msg_t msg;
    int rc = ax_port_recv(port, ax_now() + 30 * AX_NSEC_PER_SEC, &msg);
    ck_assert_msg(rc == 0, "after %llu messages: %s", (unsigned long long)n, ax_strerror(rc));
    ck_assert_uint_eq(msg.type, MSG_SEQ);
    test_seq_msg_t got;
    memcpy(&got, msg.data, sizeof got);
    ck_assert_uint_lt(got.sender, 4);
    ck_assert_msg(got.seq == next[got.sender], "sender %u: got %llu, expected %llu",
                  got.sender, (unsigned long long)got.seq,
                  (unsigned long long)next[got.sender]);
    next[got.sender]++;
    ck_assert(msg.from == (got.sender < 2 ? refs[got.sender] : AX_REF_NONE));
  }
  for (int i = 0; i < 2; i++) {
    ck_assert_int_eq(pthread_join(tids[i], NULL), 0);
    ck_assert_int_eq(threads[i].bad, 0);
    ck_assert_int_eq(atomic_load(&actors[i].bad), 0);
  }
  /* Empty, and the runtime still runs (once its last actor stops, an
   * empty port says -ESHUTDOWN instead). */
  ax_msg_t msg;
  ck_assert_int_eq(ax_port_recv(port, 0, &msg), -EAGAIN);
  for (int i = 0; i < 2; i++)
    test_send(refs[i], MSG_STOP, NULL, 0);
  join_free_with_port(rt, port);
}
END_TEST

static atomic_int port_released;

static void port_release(void *buf) {
  atomic_fetch_add(&port_released, 1);
  free(buf);
}

START_TEST(test_port_freed) {
  ax_rt_t *rt = test_rt_new(2, AX_RT_KEEP_ALIVE);
  ax_port_t *port = new_port(rt);
  ax_ref_t ref = ax_port_ref(port);
  seq_actor_t s;
  memset(&s, 0, sizeof s);
  s.to = ref;
  atomic_init(&s.late_rc, 12345);
  ax_ref_t actor = test_spawn(rt, seq_actor_behaviour, &s, AX_PLACE_CORE, 1, NULL, NULL);
  test_rt_start(rt);

  /* Messages left in the port when it is freed are dropped; owned
   * buffers among them are released. */
  atomic_store(&port_released, 0);
  for (int i = 0; i < 5; i++)
    test_send(ref, MSG_PING, "left", 4);
  for (int i = 0; i < 3; i++)
    ck_assert_int_eq(ax_send_owned(ref, MSG_PING, malloc(32), 32, port_release), 0);
  ck_assert_int_eq(ax_port_close(port), 0);
  ck_assert_int_eq(atomic_load(&port_released), 3);

  /* The reference is dead for threads and actors alike. */
  ck_assert_int_eq(ax_send(ref, MSG_PING, NULL, 0), -ESRCH);
  ck_assert_int_eq(ax_send_owned(ref, MSG_PING, malloc(32), 32, port_release), -ESRCH);
  ck_assert_int_eq(atomic_load(&port_released), 4);
  test_send(actor, MSG_PING, NULL, 0);
  TEST_WAIT_UNTIL(atomic_load(&s.late_rc) != 12345, 10000);
  ck_assert_int_eq(atomic_load(&s.late_rc), -ESRCH);

  /* A new port does not answer to the old reference. */
  ax_port_t *again = new_port(rt);
  ck_assert(ax_port_ref(again) != ref);
  ck_assert_int_eq(ax_send(ref, MSG_PING, NULL, 0), -ESRCH);
  ax_msg_t msg;
  ck_assert_int_eq(ax_port_recv(again, 0, &msg), -EAGAIN);
  ck_assert_int_eq(ax_port_close(again), 0);
  test_rt_stop_join_free(rt);
}
END_TEST

START_TEST(test_port_free_after_join) {
  /* A port may outlive the runtime's threads (not the runtime): messages
   * still queued are dropped when it is freed. */
  ax_rt_t *rt = test_rt_new(1, AX_RT_KEEP_ALIVE);
  test_rt_start(rt);
  ax_port_t *port = new_port(rt);
  atomic_store(&port_released, 0);
  ck_assert_int_eq(ax_send_owned(ax_port_ref(port), MSG_PING, malloc(8), 8, port_release), 0);
  test_send(ax_port_ref(port), MSG_PING, "x", 1);
  ax_rt_stop(rt);
  ck_assert_int_eq(ax_rt_join(rt), 0);
  ck_assert_int_eq(ax_port_close(port), 0);
  ck_assert_int_eq(atomic_load(&port_released), 1);
  ck_assert_int_eq(ax_rt_free(rt), 0);
}
END_TEST

/* The runtime's stop ends a wait on a port: a thread in
 * ax_port_recv(AX_FOREVER) gets what the actors sent before they finished
 * (a terminate hook's last word), then -ESHUTDOWN; a poll loop's fd is
 * rung.  Before, the thread waited forever (Ctrl-C hung the program).
 * What other threads send later is still received. */
static ax_ref_t last_word_to;

static void last_word(ax_actor_t *self, int reason) {
  (void)self;
  (void)ax_send(last_word_to, MSG_ANSWER, &reason, sizeof reason);
}

START_TEST(test_port_stop_ends_wait) {
  ax_rt_t *rt = test_rt_new(2, 0);
  ax_port_t *port = new_port(rt);
  ax_port_t *polled = new_port(rt);
  last_word_to = ax_port_ref(port);
  test_spawn(rt, test_idle_behaviour, NULL, AX_PLACE_CORE, 1, NULL, last_word);
  test_rt_start(rt);
  blocked_t b;
  memset(&b, 0, sizeof b);
  b.port = port;
  b.deadline = AX_FOREVER;
  pthread_t thread;
  ck_assert_int_eq(pthread_create(&thread, NULL, blocked_main, &b), 0);
  TEST_WAIT_UNTIL(atomic_load(&b.waiting) == 1, 10000);
  test_sleep_ms(50);
  ck_assert_int_eq(atomic_load(&b.done), 0);
  ax_rt_stop(rt);
  ck_assert_int_eq(pthread_join(thread, NULL), 0); /* the terminate hook's message */
  ck_assert_int_eq(b.rc, 0);
  ck_assert_int_eq(b.value, AX_REASON_SHUTDOWN);
  memset(&b, 0, sizeof b);
  b.port = port;
  b.deadline = AX_FOREVER;
  ck_assert_int_eq(pthread_create(&thread, NULL, blocked_main, &b), 0);
  ck_assert_int_eq(pthread_join(thread, NULL), 0); /* then the end, not a wait */
  ck_assert_int_eq(b.rc, -ESHUTDOWN);
  ax_msg_t m;
  ck_assert_int_eq(ax_port_recv(port, 0, &m), -ESHUTDOWN);
  ck_assert_int_eq(ax_port_recv(port, ax_now() + AX_NSEC_PER_SEC, &m), -ESHUTDOWN);
  struct pollfd pfd = {ax_port_fd(polled), POLLIN, 0};
  ck_assert_int_eq(poll(&pfd, 1, 10000), 1); /* rung for a poll loop */
  ck_assert_int_eq(ax_port_recv(polled, 0, &m), -ESHUTDOWN);
  ck_assert_int_eq(poll(&pfd, 1, 0), 0); /* and quiet after (no spinning loop) */
  ck_assert_int_eq(ax_rt_join(rt), 0);
  int seven = 7; /* threads still talk through the port */
  test_send(ax_port_ref(port), MSG_ANSWER, &seven, sizeof seven);
  recv_one(port, &m);
  ck_assert_int_eq(*(const int *)m.data, 7);
  ck_assert_int_eq(ax_port_recv(port, AX_FOREVER, &m), -ESHUTDOWN);
  ck_assert_int_eq(ax_port_close(polled), 0);
  ck_assert_int_eq(ax_port_close(port), 0);
  ck_assert_int_eq(ax_rt_free(rt), 0);
}
END_TEST

/* A thread that sends from a pthread key destructor that runs after
 * axon's own (a key made after the thread's first send): axon has given
 * the thread's message heap, and its ring to each core, to whichever
 * thread comes next, and such a thread is sending meanwhile.  Every
 * message arrives, and nothing is shared (ThreadSanitizer): the exiting
 * thread takes a heap of its own again.  It used to go on with the heap
 * it had given away: two threads on one single-producer ring. */
static _Atomic uint64_t dtor_sent, dtor_got;
static ax_ref_t dtor_sink;
static pthread_key_t dtor_key;
static _Atomic int dtor_go;

static int dtor_sink_fn(ax_actor_t *self, const ax_msg_t *m) {
  (void)self;
  if (m->type == AX_MSG_USER)
    atomic_fetch_add(&dtor_got, 1);
  return 0;
}

static void dtor_burst(int n) {
  char buf[64];
  memset(buf, 7, sizeof buf);
  for (int i = 0; i < n; i++)
    if (ax_send(dtor_sink, AX_MSG_USER, buf, i % 2 == 0 ? 8 : sizeof buf) == 0)
      atomic_fetch_add(&dtor_sent, 1);
}

static void late_dtor(void *arg) {
  (void)arg;
  dtor_burst(3000); /* after axon's destructor gave the heap up */
}

static void *dtor_exiting(void *arg) {
  (void)arg;
  ck_assert_int_eq(pthread_setspecific(dtor_key, (void *)1), 0);
  dtor_burst(10); /* makes this thread's heap */
  return NULL;
}

static void *dtor_adopter(void *arg) {
  (void)arg;
  while (atomic_load(&dtor_go) == 0) {
  }
  dtor_burst(3000); /* adopts the heap the exiting thread gave up */
  return NULL;
}

START_TEST(test_port_sends_from_thread_exit) {
  ax_rt_t *rt = test_rt_new(2, AX_RT_KEEP_ALIVE);
  test_rt_start(rt);
  dtor_sink = test_spawn(rt, dtor_sink_fn, NULL, AX_PLACE_ANY, 0, NULL, NULL);
  dtor_burst(1); /* axon's key exists before this test's */
  ck_assert_int_eq(pthread_key_create(&dtor_key, late_dtor), 0);
  for (int round = 0; round < 10; round++) {
    pthread_t a, b;
    atomic_store(&dtor_go, 0);
    ck_assert_int_eq(pthread_create(&a, NULL, dtor_exiting, NULL), 0);
    ck_assert_int_eq(pthread_create(&b, NULL, dtor_adopter, NULL), 0);
    test_sleep_ms(1);
    atomic_store(&dtor_go, 1);
    ck_assert_int_eq(pthread_join(a, NULL), 0);
    ck_assert_int_eq(pthread_join(b, NULL), 0);
  }
  TEST_WAIT_UNTIL(atomic_load(&dtor_got) == atomic_load(&dtor_sent), 20000);
  pthread_key_delete(dtor_key);
  test_rt_stop_join_free(rt);
}
END_TEST

/* An actor floods a port and its core goes to sleep; then the port's
 * thread takes every message.  Its frees go to the core's pools, and no
 * free wakes a core: the memory must still go back (the core looks again
 * while its pools hold much and nothing is due), not stay until something
 * else wakes the core (a newcomer: 133 MB for good after 500,000). */
enum { FLOOD_N = 100000 };
static atomic_bool flooded;

static int flooder(ax_actor_t *self, const ax_msg_t *m) {
  ax_ref_t *port = ax_state(self);
  static unsigned char payload[64];
  if (m->type == MSG_FLOOD) {
    for (int i = 0; i < FLOOD_N; i++)
      ck_assert_int_eq(ax_send(*port, MSG_BULK, payload, sizeof payload), 0);
    atomic_store(&flooded, true);
  }
  return 0;
}

START_TEST(test_port_drained_memory_goes_back) {
  ax_rt_t *rt = test_rt_new(1, AX_RT_KEEP_ALIVE | AX_RT_NO_SIGNALS);
  ax_port_t *port = new_port(rt);
  static ax_ref_t pref;
  pref = ax_port_ref(port);
  test_rt_start(rt);
  ax_ref_t a = test_spawn(rt, flooder, &pref, AX_PLACE_CORE, 0, NULL, NULL);
  test_send(a, MSG_FLOOD, NULL, 0);
  /* All queued, and the core asleep, before the thread takes any: a
   * reader that keeps pace lets the core reuse the messages as it sends. */
  TEST_WAIT_UNTIL(atomic_load(&flooded), 30000);
  test_sleep_ms(20);
  ax_msg_t msg;
  for (int i = 0; i < FLOOD_N; i++) {
    int rc = ax_port_recv(port, ax_now() + 10 * AX_NSEC_PER_SEC, &msg);
    ck_assert_msg(rc == 0, "message %d: %s", i, ax_strerror(rc));
    ck_assert_uint_eq(msg.type, MSG_BULK);
  }
  ax_core_stats_t st = {0};
  for (int i = 0; i < 5000; i++) {
    ck_assert_int_eq(ax_rt_stats(rt, 0, &st), 0);
    if (st.released >= (uint64_t)FLOOD_N * 64)
      break;
    test_sleep_ms(1);
  }
  ck_assert_msg(st.released >= (uint64_t)FLOOD_N * 64,
                "the core gave back %llu bytes of the %d messages the port's thread freed",
                (unsigned long long)st.released, FLOOD_N);
  ck_assert_int_eq(ax_port_close(port), 0);
  test_rt_stop_join_free(rt);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Bounded ports                                                             */

static ax_port_t *new_bounded_port(ax_rt_t *rt, uint32_t max) {
  ax_port_t *port = NULL;
  ax_port_opts_t o = {.max = max};
  int rc = ax_port_new_opts(rt, &o, &port);
  ck_assert_msg(rc == 0, "ax_port_new_opts: %s", ax_strerror(rc));
  return port;
}

static atomic_int owned_released;

static void count_release(void *buf) {
  atomic_fetch_add(&owned_released, 1);
  free(buf);
}

/* A thread sends to its own bounded port: exactly `max` wait, one more is
 * refused with -EAGAIN (an owned buffer released at once), and each
 * receive makes room for one; nothing accepted is lost or reordered. */
START_TEST(test_port_bounded_thread) {
  enum { MAX = 100 };
  ax_rt_t *rt = test_rt_new(1, AX_RT_KEEP_ALIVE);
  test_rt_start(rt);
  ax_port_t *none = NULL;
  ck_assert_int_eq(ax_port_new_opts(NULL, NULL, &none), -EINVAL);
  ck_assert_int_eq(ax_port_new_opts(rt, NULL, NULL), -EINVAL);
  ax_port_t *port = new_bounded_port(rt, MAX);
  ax_ref_t ref = ax_port_ref(port);
  uint64_t seq = 0;
  for (int i = 0; i < MAX; i++, seq++)
    ck_assert_int_eq(ax_send(ref, MSG_SEQ, &seq, sizeof seq), 0);
  ck_assert_int_eq(ax_send(ref, MSG_SEQ, &seq, sizeof seq), -EAGAIN);
  ck_assert_int_eq(ax_send(ref, MSG_SEQ, NULL, 0), -EAGAIN);
  atomic_store(&owned_released, 0);
  void *buf = malloc(32);
  ck_assert_ptr_nonnull(buf);
  ck_assert_int_eq(ax_send_owned(ref, MSG_SEQ, buf, 32, count_release), -EAGAIN);
  ck_assert_int_eq(atomic_load(&owned_released), 1);

  /* Each receive makes room for exactly one more. */
  uint64_t want = 0;
  ax_msg_t msg;
  for (int round = 0; round < 3 * MAX; round++) {
    recv_one(port, &msg);
    ck_assert_uint_eq(msg.type, MSG_SEQ);
    ck_assert_uint_eq(*(const uint64_t *)msg.data, want++);
    ck_assert_int_eq(ax_send(ref, MSG_SEQ, &seq, sizeof seq), 0);
    seq++;
    ck_assert_int_eq(ax_send(ref, MSG_SEQ, &seq, sizeof seq), -EAGAIN);
  }
  int rc;
  while ((rc = ax_port_recv(port, 0, &msg)) == 0)
    ck_assert_uint_eq(*(const uint64_t *)msg.data, want++);
  ck_assert_int_eq(rc, -EAGAIN);
  ck_assert_uint_eq(want, seq);

  /* No bound (opts NULL): far more than any bound above waits. */
  ax_port_t *free_port = NULL;
  ck_assert_int_eq(ax_port_new_opts(rt, NULL, &free_port), 0);
  for (int i = 0; i < 20 * MAX; i++)
    ck_assert_int_eq(ax_send(ax_port_ref(free_port), MSG_SEQ, &seq, sizeof seq), 0);
  ck_assert_int_eq(ax_port_close(free_port), 0);
  ck_assert_int_eq(ax_port_close(port), 0);
  test_rt_stop_join_free(rt);
}
END_TEST

/* Actors on two cores flood a bounded port that nobody reads, then while
 * a thread reads it: what is accepted is exactly what the bound allows,
 * and every accepted message arrives once, in each sender's order (a
 * newcomer's actors filled 1.6 GB flooding an unbounded port). */
enum { BFLOOD_MAX = 1000, BFLOOD_N = 200000, BFLOOD_SENDERS = 4 };

typedef struct bflood {
  ax_ref_t port;
  uint32_t id;
  uint64_t next;        /* the next sequence number to send */
  _Atomic uint64_t ok;  /* sends accepted */
  _Atomic uint64_t full; /* sends refused with -EAGAIN */
  atomic_bool done;
} bflood_t;

static int bflooder(ax_actor_t *self, const ax_msg_t *m) {
  bflood_t *f = ax_state(self);
  if (m->type != MSG_FLOOD)
    return 0;
  uint64_t ok = 0, full = 0;
  for (int i = 0; i < BFLOOD_N; i++) {
    test_seq_msg_t s = {.sender = f->id, .seq = f->next};
    int rc = ax_send(f->port, MSG_SEQ, &s, sizeof s);
    if (rc == 0) {
      f->next++;
      ok++;
    } else {
      ck_assert_int_eq(rc, -EAGAIN);
      full++;
    }
  }
  atomic_fetch_add(&f->ok, ok);
  atomic_fetch_add(&f->full, full);
  atomic_store(&f->done, true);
  return 0;
}

static uint64_t bflood_wait(bflood_t *f) {
  uint64_t ok = 0;
  for (int k = 0; k < BFLOOD_SENDERS; k++) {
    TEST_WAIT_UNTIL(atomic_load(&f[k].done), 30000);
    atomic_store(&f[k].done, false);
    ok += atomic_load(&f[k].ok);
  }
  return ok;
}

START_TEST(test_port_bounded_flood) {
  ax_rt_t *rt = test_rt_new(2, AX_RT_KEEP_ALIVE);
  test_rt_start(rt);
  ax_port_t *port = new_bounded_port(rt, BFLOOD_MAX);
  static bflood_t f[BFLOOD_SENDERS];
  ax_ref_t a[BFLOOD_SENDERS];
  for (int k = 0; k < BFLOOD_SENDERS; k++) {
    f[k] = (bflood_t){.port = ax_port_ref(port), .id = (uint32_t)k};
    a[k] = test_spawn(rt, bflooder, &f[k], AX_PLACE_CORE, (unsigned)k % 2, NULL, NULL);
  }
  /* 1. Nobody reads: exactly the bound is accepted, the rest refused. */
  for (int k = 0; k < BFLOOD_SENDERS; k++)
    test_send(a[k], MSG_FLOOD, NULL, 0);
  uint64_t accepted = bflood_wait(f);
  ck_assert_uint_eq(accepted, BFLOOD_MAX);
  uint64_t got[BFLOOD_SENDERS] = {0};
  ax_msg_t msg;
  int rc;
  uint64_t taken = 0;
  while ((rc = ax_port_recv(port, 0, &msg)) == 0) {
    const test_seq_msg_t *s = msg.data;
    ck_assert_uint_lt(s->sender, BFLOOD_SENDERS);
    ck_assert_uint_eq(s->seq, got[s->sender]++);
    taken++;
  }
  ck_assert_int_eq(rc, -EAGAIN);
  ck_assert_uint_eq(taken, BFLOOD_MAX);

  /* 2. Again while this thread reads: nothing accepted is lost. */
  for (int k = 0; k < BFLOOD_SENDERS; k++)
    test_send(a[k], MSG_FLOOD, NULL, 0);
  int64_t end = ax_now() + 60 * AX_NSEC_PER_SEC;
  bool all_done = false;
  for (;;) {
    rc = ax_port_recv(port, ax_now() + 10 * AX_NSEC_PER_MSEC, &msg);
    if (rc == 0) {
      const test_seq_msg_t *s = msg.data;
      ck_assert_uint_eq(s->seq, got[s->sender]++);
      taken++;
      continue;
    }
    ck_assert_int_eq(rc, -ETIMEDOUT);
    if (all_done)
      break; /* every sender had finished before this empty wait */
    all_done = true;
    for (int k = 0; k < BFLOOD_SENDERS; k++)
      all_done &= atomic_load(&f[k].done);
    ck_assert_int_lt(ax_now(), end);
  }
  accepted = 0;
  for (int k = 0; k < BFLOOD_SENDERS; k++) {
    ck_assert_uint_eq(got[k], f[k].next);
    accepted += atomic_load(&f[k].ok);
    ck_assert_uint_eq(atomic_load(&f[k].ok) + atomic_load(&f[k].full), 2ull * BFLOOD_N);
  }
  ck_assert_uint_eq(taken, accepted);
  ck_assert_uint_gt(accepted, BFLOOD_MAX);
  ck_assert_int_eq(ax_port_close(port), 0);
  test_rt_stop_join_free(rt);
}
END_TEST

static Suite *port_suite(void) {
  Suite *suite = suite_create("port");

  TCase *tc = tcase_create("basics");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_port_new_free);
  tcase_add_test(tc, test_port_recv_deadlines);
  tcase_add_test(tc, test_port_thread_to_own_port);
  tcase_add_test(tc, test_port_actor_replies);
  suite_add_tcase(suite, tc);

  tc = tcase_create("wake");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_port_blocking_recv_woken);
  tcase_add_test(tc, test_port_stop_ends_wait);
  tcase_add_test(tc, test_port_recv_eintr);
  tcase_add_test(tc, test_port_fd_poll);
  suite_add_tcase(suite, tc);

  tc = tcase_create("senders");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_port_many_senders);
  tcase_add_test(tc, test_port_freed);
  tcase_add_test(tc, test_port_free_after_join);
  tcase_add_test(tc, test_port_sends_from_thread_exit);
  tcase_add_test(tc, test_port_drained_memory_goes_back);
  tcase_add_test(tc, test_port_bounded_thread);
  tcase_add_test(tc, test_port_bounded_flood);
  suite_add_tcase(suite, tc);

  return suite;
}

int main(void) {
  return test_run_suite(port_suite());
}
