/* Check suite for shared payloads and process groups: references, members that stop, bounds, sends from many threads. */
#include <pthread.h>
#include <stdatomic.h>

#include "axon_test.h"

enum {
  MSG_DATA = AX_MSG_USER, /* any payload: the member reports it to its port */
  MSG_KEEP,               /* a shared payload the member keeps (ax_msg_take) */
  MSG_DROP,               /* the member drops the payload it kept */
  MSG_HOLD,               /* the member blocks until `gate` opens */
  MSG_SEEN,               /* seen_t, to the port */
};

/* What a member tells the test port about a message it got. */
typedef struct seen {
  ax_ref_t who;
  uint32_t size;
  bool shared;
  bool same;     /* data equals the pointer the test sent (shared) */
  uint8_t first; /* the payload's first byte */
} seen_t;

typedef struct member {
  ax_ref_t port;
  const void *expect; /* the shared buffer the test sends, or NULL */
  const void *kept;   /* MSG_KEEP's buffer, until MSG_DROP */
  atomic_bool *gate;
} member_t;

static int member(ax_actor_t *self, const ax_msg_t *msg) {
  member_t *m = ax_state(self);
  switch (msg->type) {
  case MSG_DATA: {
    seen_t s = {ax_self(self), msg->size, ax_msg_shared(msg), msg->data == m->expect,
                msg->size > 0 ? ((const uint8_t *)msg->data)[0] : 0};
    ax_send(m->port, MSG_SEEN, &s, sizeof s);
    return 0;
  }
  case MSG_KEEP:
    ck_assert(ax_msg_shared(msg));
    m->kept = ax_msg_take(msg);
    ck_assert_ptr_eq(m->kept, msg->data);
    ax_send(m->port, MSG_SEEN, &(seen_t){.who = ax_self(self)}, sizeof(seen_t));
    return 0;
  case MSG_DROP: {
    seen_t s = {ax_self(self), 0, false, false, ((const uint8_t *)m->kept)[0]};
    ax_shared_unref(m->kept);
    m->kept = NULL;
    ax_send(m->port, MSG_SEEN, &s, sizeof s);
    return 0;
  }
  case MSG_HOLD:
    while (!atomic_load(m->gate))
      test_sleep_ms(1);
    return 0;
  }
  return 0;
}

static ax_port_t *port_new(ax_rt_t *rt) {
  ax_port_t *p = NULL;
  ck_assert_int_eq(ax_port_new(rt, &p), 0);
  return p;
}

static seen_t recv_seen(ax_port_t *p) {
  ax_msg_t msg;
  int rc = ax_port_recv(p, ax_now() + 10 * AX_NSEC_PER_SEC, &msg);
  ck_assert_msg(rc == 0, "ax_port_recv: %s", ax_strerror(rc));
  ck_assert_uint_eq(msg.type, MSG_SEEN);
  seen_t s;
  memcpy(&s, msg.data, sizeof s);
  return s;
}

/* Waits until ref is gone (a send says -ESRCH). */
static void wait_gone(ax_ref_t ref) {
  for (int i = 0; i < 10000 && ax_send(ref, MSG_HOLD + 100, NULL, 0) != -ESRCH; i++)
    test_sleep_ms(1);
  ck_assert_int_eq(ax_send(ref, MSG_HOLD + 100, NULL, 0), -ESRCH);
}

/* ------------------------------------------------------------------------ */

START_TEST(test_shared_buffers) {
  errno = 0;
  ck_assert_ptr_null(ax_shared_new(0));
  ck_assert_int_eq(errno, EINVAL);
  errno = 0;
  ck_assert_ptr_null(ax_shared_new(AX_MSG_MAX + 1));
  ck_assert_int_eq(errno, EINVAL);

  uint8_t *b = ax_shared_new(100);
  ck_assert_ptr_nonnull(b);
  ck_assert_uint_eq((uintptr_t)b % 16, 0);
  ck_assert_uint_eq(ax_shared_size(b), 100);
  ck_assert_uint_eq(ax_shared_size(NULL), 0);
  memset(b, 7, 100);
  ck_assert_ptr_eq(ax_shared_ref(b), b);
  ax_shared_unref(b); /* back to one: still ours (ASan would see a use after free) */
  ck_assert_uint_eq(b[99], 7);
  ck_assert_ptr_null(ax_shared_ref(NULL));
  ax_shared_unref(NULL);

  /* Bad sends drop the message's reference and leave the caller's. */
  ax_rt_t *rt = test_rt_new(1, 0);
  ax_port_t *port = port_new(rt);
  ax_ref_t to = ax_port_ref(port);
  ck_assert_int_eq(ax_send_shared(to, 0, b, 10), -EINVAL);
  ck_assert_int_eq(ax_send_shared(to, MSG_DATA, NULL, 0), -EINVAL);
  ck_assert_int_eq(ax_send_shared(to, MSG_DATA, b, 101), -EINVAL);
  ck_assert_int_eq(ax_send_shared(AX_REF_NONE, MSG_DATA, b, 10), -ESRCH);
  ck_assert_int_eq(ax_send_shared(to + (1ull << 40), MSG_DATA, b, 10), -ESRCH);
  ck_assert_uint_eq(b[0], 7);

  /* A port gets the buffer itself and lets it go at its next receive;
   * its thread is no actor, so ax_msg_shared and ax_msg_take say nothing
   * there, and it keeps the buffer with ax_shared_ref. */
  ck_assert_int_eq(ax_send_shared(to, MSG_DATA, b, 50), 0);
  ck_assert_int_eq(ax_send_shared(to, MSG_DATA, b, 50), 0);
  ax_msg_t msg;
  ck_assert_int_eq(ax_port_recv(port, 0, &msg), 0);
  ck_assert_ptr_eq(msg.data, b);
  ck_assert_uint_eq(msg.size, 50);
  ck_assert(!ax_msg_shared(&msg));
  ck_assert_ptr_null(ax_msg_take(&msg));
  const uint8_t *kept = ax_shared_ref(msg.data);
  ck_assert_int_eq(ax_port_recv(port, 0, &msg), 0);
  ck_assert_int_eq(ax_send(to, MSG_DATA, "x", 1), 0);
  ck_assert_int_eq(ax_port_recv(port, 0, &msg), 0);
  ck_assert(!ax_msg_shared(NULL));
  ck_assert_uint_eq(b[49], 7);
  ax_shared_unref(kept);
  ax_shared_unref(b); /* the last reference: freed (LeakSanitizer checks) */
  ck_assert_int_eq(ax_port_close(port), 0);
  ck_assert_int_eq(ax_rt_free(rt), 0);
}
END_TEST

/* Receivers keep a shared payload past their behaviour after the sender
 * has let it go; it is freed when the last of them drops it. */
START_TEST(test_shared_kept_by_receivers) {
  ax_rt_t *rt = test_rt_new(2, AX_RT_KEEP_ALIVE);
  test_rt_start(rt);
  ax_port_t *port = port_new(rt);
  enum { N = 8 };
  member_t st[N];
  ax_ref_t refs[N];
  for (int i = 0; i < N; i++) {
    st[i] = (member_t){.port = ax_port_ref(port)};
    ax_spawn_opts_t o = {.placement = AX_PLACE_SPREAD};
    ck_assert_int_eq(ax_spawn(rt, member, &st[i], &o, &refs[i]), 0);
  }
  uint8_t *b = ax_shared_new(4096);
  memset(b, 0x5a, 4096);
  for (int i = 0; i < N; i++)
    ck_assert_int_eq(ax_send_shared(refs[i], MSG_KEEP, b, 4096), 0);
  for (int i = 0; i < N; i++)
    recv_seen(port);
  ax_shared_unref(b); /* the receivers hold it now */
  for (int i = 0; i < N; i++)
    ck_assert_int_eq(ax_send(refs[i], MSG_DROP, NULL, 0), 0);
  for (int i = 0; i < N; i++)
    ck_assert_uint_eq(recv_seen(port).first, 0x5a); /* read before each drop */
  ax_rt_stop(rt);
  ck_assert_int_eq(ax_rt_join(rt), 0);
  ck_assert_int_eq(ax_port_close(port), 0);
  ck_assert_int_eq(ax_rt_free(rt), 0);
}
END_TEST

START_TEST(test_group_membership) {
  ax_group_t *g = NULL;
  ck_assert_int_eq(ax_group_new(NULL), -EINVAL);
  ck_assert_int_eq(ax_group_new(&g), 0);
  ax_rt_t *rt = test_rt_new(1, 0);
  ax_port_t *p1 = port_new(rt), *p2 = port_new(rt);
  ax_ref_t a = ax_port_ref(p1), b = ax_port_ref(p2);

  ck_assert_int_eq(ax_group_join(NULL, a), -EINVAL);
  ck_assert_int_eq(ax_group_join(g, AX_REF_NONE), -EINVAL);
  ck_assert_int_eq(ax_group_join(g, a + (1ull << 40)), -ESRCH);
  ck_assert_int_eq(ax_group_members(g, NULL, 0), 0);
  ck_assert_int_eq(ax_group_join(g, a), 0);
  ck_assert_int_eq(ax_group_join(g, a), -EEXIST);
  ck_assert_int_eq(ax_group_join(g, b), 0);
  ck_assert(ax_group_has(g, a) && ax_group_has(g, b));
  ck_assert(!ax_group_has(g, a + (1ull << 40)) && !ax_group_has(NULL, a));

  ax_ref_t out[4] = {0};
  ck_assert_int_eq(ax_group_members(g, out, 1), 2); /* room for one, two live */
  ck_assert(out[0] == a || out[0] == b);
  ck_assert(out[1] == AX_REF_NONE);
  ck_assert_int_eq(ax_group_members(g, out, 4), 2);
  ck_assert(out[0] != out[1]);
  ck_assert_int_eq(ax_group_members(NULL, out, 4), -EINVAL);
  ck_assert_int_eq(ax_group_members(g, NULL, 4), -EINVAL);

  ck_assert_int_eq(ax_group_leave(NULL, a), -EINVAL);
  ck_assert_int_eq(ax_group_leave(g, a), 0);
  ck_assert_int_eq(ax_group_leave(g, a), -ENOENT);
  ck_assert_int_eq(ax_group_leave(g, AX_REF_NONE), -ENOENT);
  ck_assert(!ax_group_has(g, a));
  ck_assert_int_eq(ax_group_join(g, a), 0); /* rejoin after leaving */

  /* Sends: the arguments are checked; a closed port leaves by itself. */
  ck_assert_int_eq(ax_group_send(NULL, MSG_DATA, "x", 1), -EINVAL);
  ck_assert_int_eq(ax_group_send(g, 0, "x", 1), -EINVAL);
  ck_assert_int_eq(ax_group_send(g, MSG_DATA, NULL, 1), -EINVAL);
  ck_assert_int_eq(ax_group_send_shared(g, MSG_DATA, NULL, 0), -EINVAL);
  ck_assert_int_eq(ax_group_send(g, MSG_DATA, "x", 1), 2);
  ck_assert_int_eq(ax_port_close(p2), 0);
  ck_assert(!ax_group_has(g, b));
  ck_assert_int_eq(ax_group_members(g, out, 4), 1);
  ck_assert(out[0] == a);
  ck_assert_int_eq(ax_group_send(g, MSG_DATA, "y", 1), 1);
  ax_msg_t msg;
  ck_assert_int_eq(ax_port_recv(p1, 0, &msg), 0);
  ck_assert_int_eq(((const char *)msg.data)[0], 'x');
  ck_assert_int_eq(ax_port_recv(p1, 0, &msg), 0);
  ck_assert_int_eq(((const char *)msg.data)[0], 'y');
  ck_assert_int_eq(ax_port_recv(p1, 0, &msg), -EAGAIN);

  ck_assert_int_eq(ax_port_close(p1), 0);
  ck_assert_int_eq(ax_group_send(g, MSG_DATA, "z", 1), 0);
  ck_assert_int_eq(ax_group_members(g, NULL, 0), 0);
  ax_group_free(g);
  ax_group_free(NULL);
  ck_assert_int_eq(ax_rt_free(rt), 0);
}
END_TEST

/* Members on both cores get one message each; a payload above
 * AX_GROUP_COPY_MAX is one shared buffer, a smaller one a copy each. */
static void check_broadcast(size_t size) {
  ax_rt_t *rt = test_rt_new(2, AX_RT_KEEP_ALIVE);
  test_rt_start(rt);
  ax_port_t *port = port_new(rt);
  ax_group_t *g;
  ck_assert_int_eq(ax_group_new(&g), 0);
  enum { N = 40 };
  member_t st[N];
  ax_ref_t refs[N];
  for (int i = 0; i < N; i++) {
    st[i] = (member_t){.port = ax_port_ref(port)};
    ax_spawn_opts_t o = {.placement = AX_PLACE_SPREAD};
    ck_assert_int_eq(ax_spawn(rt, member, &st[i], &o, &refs[i]), 0);
    ck_assert_int_eq(ax_group_join(g, refs[i]), 0);
  }
  uint8_t *data = malloc(size);
  memset(data, 0xab, size);
  ck_assert_int_eq(ax_group_send(g, MSG_DATA, data, size), N);
  int got[N] = {0};
  for (int i = 0; i < N; i++) {
    seen_t s = recv_seen(port);
    ck_assert_uint_eq(s.size, size);
    ck_assert_uint_eq(s.first, size > 0 ? 0xab : 0);
    ck_assert(s.shared == (size > AX_GROUP_COPY_MAX));
    for (int j = 0; j < N; j++)
      got[j] += refs[j] == s.who;
  }
  for (int j = 0; j < N; j++)
    ck_assert_int_eq(got[j], 1);

  /* ax_group_send_shared: every member sees the caller's very buffer. */
  if (size > 0) {
    uint8_t *b = ax_shared_new(size);
    memset(b, 0xcd, size);
    for (int i = 0; i < N; i++)
      st[i].expect = b; /* read by the members only after the send below */
    ck_assert_int_eq(ax_group_send_shared(g, MSG_DATA, b, size), N);
    ax_shared_unref(b);
    for (int i = 0; i < N; i++) {
      seen_t s = recv_seen(port);
      ck_assert(s.shared && s.same);
      ck_assert_uint_eq(s.first, 0xcd);
    }
  }
  free(data);
  ax_rt_stop(rt);
  ck_assert_int_eq(ax_rt_join(rt), 0);
  ck_assert_int_eq(ax_group_members(g, NULL, 0), 0); /* all stopped */
  ax_group_free(g);
  ck_assert_int_eq(ax_port_close(port), 0);
  ck_assert_int_eq(ax_rt_free(rt), 0);
}

START_TEST(test_group_send_small) { check_broadcast(16); }
END_TEST
START_TEST(test_group_send_empty) { check_broadcast(0); }
END_TEST
START_TEST(test_group_send_large) { check_broadcast(64 * 1024); }
END_TEST

/* A member that stops leaves; one with a full bounded mailbox is skipped
 * and not counted; the others still get theirs. */
START_TEST(test_group_stopped_and_full_members) {
  ax_rt_t *rt = test_rt_new(2, AX_RT_KEEP_ALIVE);
  test_rt_start(rt);
  ax_port_t *port = port_new(rt);
  ax_group_t *g;
  ck_assert_int_eq(ax_group_new(&g), 0);
  atomic_bool gate = false;
  member_t st[3];
  ax_ref_t r[3];
  for (int i = 0; i < 3; i++) {
    st[i] = (member_t){.port = ax_port_ref(port), .gate = &gate};
    ax_spawn_opts_t o = {.placement = AX_PLACE_CORE, .core = (unsigned)i % 2,
                         .mailbox_max = i == 2 ? 1 : 0};
    ck_assert_int_eq(ax_spawn(rt, member, &st[i], &o, &r[i]), 0);
    ck_assert_int_eq(ax_group_join(g, r[i]), 0);
  }
  ck_assert_int_eq(ax_stop(r[0], 0), 0);
  wait_gone(r[0]);
  ck_assert_int_eq(ax_group_members(g, NULL, 0), 2);
  ck_assert(!ax_group_has(g, r[0]));
  ck_assert_int_eq(ax_group_join(g, r[0]), -ESRCH);

  /* r[2] holds one message (its bound) and cannot take a second. */
  ck_assert_int_eq(ax_send(r[2], MSG_HOLD, NULL, 0), 0);
  ck_assert_int_eq(ax_group_send(g, MSG_DATA, "a", 1), 1);
  char big[1000] = {1};
  ck_assert_int_eq(ax_group_send(g, MSG_DATA, big, sizeof big), 1);
  ck_assert_int_eq(recv_seen(port).who, r[1]);
  ck_assert_int_eq(recv_seen(port).who, r[1]);
  atomic_store(&gate, true);
  ck_assert_int_ge(ax_group_send(g, MSG_DATA, "b", 1), 1); /* r[2] may still hold its slot */

  ax_rt_stop(rt);
  ck_assert_int_eq(ax_rt_join(rt), 0);
  ax_group_free(g);
  ck_assert_int_eq(ax_port_close(port), 0);
  ck_assert_int_eq(ax_rt_free(rt), 0);
}
END_TEST

/* Ten thousand members, half of them leaving, then every one stopping:
 * counts stay exact, and the set shrinks back (sends still reach all). */
START_TEST(test_group_many_members) {
  ax_rt_t *rt = test_rt_new(2, AX_RT_KEEP_ALIVE);
  test_rt_start(rt);
  ax_group_t *g;
  ck_assert_int_eq(ax_group_new(&g), 0);
  int n = (int)test_scaled(10000);
  ax_ref_t *r = calloc((size_t)n, sizeof *r);
  member_t st = {0};
  ax_port_t *port = port_new(rt);
  st.port = ax_port_ref(port);
  for (int i = 0; i < n; i++) {
    ck_assert_int_eq(ax_spawn(rt, member, &st, NULL, &r[i]), 0);
    ck_assert_int_eq(ax_group_join(g, r[i]), 0);
  }
  ck_assert_int_eq(ax_group_members(g, NULL, 0), n);
  for (int i = 0; i < n; i += 2)
    ck_assert_int_eq(ax_group_leave(g, r[i]), 0);
  ck_assert_int_eq(ax_group_members(g, NULL, 0), n / 2);
  for (int i = 0; i < n; i++)
    ck_assert(ax_group_has(g, r[i]) == (i % 2 == 1));
  ck_assert_int_eq(ax_group_send(g, MSG_DATA, "q", 1), n / 2);
  for (int i = 0; i < n / 2; i++)
    recv_seen(port);
  for (int i = 1; i < n; i += 2)
    ck_assert_int_eq(ax_stop(r[i], 0), 0);
  for (int i = 1; i < n; i += 2)
    wait_gone(r[i]);
  ck_assert_int_eq(ax_group_send(g, MSG_DATA, "q", 1), 0);
  ck_assert_int_eq(ax_group_members(g, NULL, 0), 0);
  /* Joining again after the set shrank works as at first. */
  for (int i = 0; i < 100; i++)
    ck_assert_int_eq(ax_spawn(rt, member, &st, NULL, &r[i]), 0);
  for (int i = 0; i < 100; i++)
    ck_assert_int_eq(ax_group_join(g, r[i]), 0);
  ck_assert_int_eq(ax_group_send(g, MSG_DATA, "q", 1), 100);
  for (int i = 0; i < 100; i++)
    recv_seen(port);
  ax_rt_stop(rt);
  ck_assert_int_eq(ax_rt_join(rt), 0);
  free(r);
  ax_group_free(g);
  ck_assert_int_eq(ax_port_close(port), 0);
  ck_assert_int_eq(ax_rt_free(rt), 0);
}
END_TEST

/* Threads join, leave and send at once (ThreadSanitizer checks the
 * locking); every send reaches exactly the members it counts. */
typedef struct churn {
  ax_group_t *g;
  ax_rt_t *rt;
  ax_port_t *port;
  _Atomic long delivered;
} churn_t;

static void *churn_thread(void *arg) {
  churn_t *c = arg;
  ax_port_t *mine = port_new(c->rt);
  ax_ref_t me = ax_port_ref(mine);
  int rounds = (int)test_scaled(2000);
  for (int i = 0; i < rounds; i++) {
    ck_assert_int_eq(ax_group_join(c->g, me), 0);
    int n = ax_group_send(c->g, MSG_DATA, &i, sizeof i);
    ck_assert_int_ge(n, 1); /* at least this thread's own port */
    atomic_fetch_add(&c->delivered, n);
    ck_assert_int_eq(ax_group_leave(c->g, me), 0);
  }
  ck_assert_int_eq(ax_port_close(mine), 0); /* drops what it was sent */
  return NULL;
}

START_TEST(test_group_concurrent) {
  ax_rt_t *rt = test_rt_new(2, AX_RT_KEEP_ALIVE);
  test_rt_start(rt);
  churn_t c = {.rt = rt};
  ck_assert_int_eq(ax_group_new(&c.g), 0);
  pthread_t t[4];
  for (int i = 0; i < 4; i++)
    ck_assert_int_eq(pthread_create(&t[i], NULL, churn_thread, &c), 0);
  for (int i = 0; i < 4; i++)
    pthread_join(t[i], NULL);
  ck_assert_int_ge(atomic_load(&c.delivered), 4 * (long)test_scaled(2000));
  ck_assert_int_eq(ax_group_members(c.g, NULL, 0), 0);
  ax_group_free(c.g);
  test_rt_stop_join_free(rt);
}
END_TEST

/* A broadcast from a thread that is no core waits for the receiving
 * core when that core lags (its ring is full): that wait must not hold
 * the group's lock, or an actor of that core that calls ax_group_has
 * stops its core until the broadcast ends, and the broadcast crawls
 * through the stuck-core gate (a reviewer: 81 ms alone, 271 ms so).  Here
 * an actor of core 1 calls ax_group_has while main broadcasts to 20,000
 * members of core 1: it must return while the broadcast still waits for
 * core 1, which is busy in that very actor. */
typedef struct lock_probe {
  ax_group_t *g;
  atomic_bool started, returned, has_done, returned_at_has;
  _Atomic long got;
} lock_probe_t;

static int probe_counter(ax_actor_t *self, const ax_msg_t *msg) {
  lock_probe_t *p = ax_state(self);
  if (msg->type == MSG_DATA)
    atomic_fetch_add(&p->got, 1);
  return 0;
}

static int probe_caller(ax_actor_t *self, const ax_msg_t *msg) {
  lock_probe_t *p = ax_state(self);
  if (msg->type != MSG_HOLD)
    return 0;
  while (!atomic_load(&p->started))
    test_sleep_ms(1);
  test_sleep_ms(2); /* main is inside ax_group_send, waiting for this core */
  ck_assert(!ax_group_has(p->g, ax_self(self)));
  test_sleep_ms(2);
  atomic_store(&p->returned_at_has, atomic_load(&p->returned));
  atomic_store(&p->has_done, true);
  return 0;
}

START_TEST(test_group_send_waits_unlocked) {
  ax_rt_t *rt = test_rt_new(2, AX_RT_KEEP_ALIVE);
  test_rt_start(rt);
  lock_probe_t p = {0};
  ck_assert_int_eq(ax_group_new(&p.g), 0);
  ax_spawn_opts_t on1 = {.placement = AX_PLACE_CORE, .core = 1};
  enum { MEMBERS = 20000 };
  for (int i = 0; i < MEMBERS; i++) {
    ax_ref_t r;
    ck_assert_int_eq(ax_spawn(rt, probe_counter, &p, &on1, &r), 0);
    ck_assert_int_eq(ax_group_join(p.g, r), 0);
  }
  ax_ref_t caller;
  ck_assert_int_eq(ax_spawn(rt, probe_caller, &p, &on1, &caller), 0);
  ck_assert_int_eq(ax_send(caller, MSG_HOLD, NULL, 0), 0);
  atomic_store(&p.started, true);
  ck_assert_int_eq(ax_group_send(p.g, MSG_DATA, "x", 1), MEMBERS);
  atomic_store(&p.returned, true);
  TEST_WAIT_UNTIL(atomic_load(&p.has_done), 10000);
  ck_assert_msg(!atomic_load(&p.returned_at_has),
                "ax_group_has waited for the whole broadcast (the lock was held while it waited)");
  TEST_WAIT_UNTIL(atomic_load(&p.got) == MEMBERS, 10000);
  ax_group_free(p.g);
  test_rt_stop_join_free(rt);
}
END_TEST

int main(void) {
  Suite *s = suite_create("group");
  TCase *tc = tcase_create("shared");
  tcase_add_test(tc, test_shared_buffers);
  tcase_add_test(tc, test_shared_kept_by_receivers);
  suite_add_tcase(s, tc);
  tc = tcase_create("groups");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_group_membership);
  tcase_add_test(tc, test_group_send_small);
  tcase_add_test(tc, test_group_send_empty);
  tcase_add_test(tc, test_group_send_large);
  tcase_add_test(tc, test_group_stopped_and_full_members);
  tcase_add_test(tc, test_group_many_members);
  tcase_add_test(tc, test_group_concurrent);
  tcase_add_test(tc, test_group_send_waits_unlocked);
  suite_add_tcase(s, tc);
  return test_run_suite(s);
}
