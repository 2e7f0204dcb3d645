/* Check suite for multi-core stress: a message exchange with sequence checks, stale references, stops during send storms, sends from threads that are no core, many actors. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "axon_test.h"

enum {
  MSG_GO = AX_MSG_USER,
  MSG_DATA,  /* test_seq_msg_t */
  MSG_ACK,   /* ack_t */
  MSG_STOP,
  MSG_STALE, /* sent to stale references only: must never arrive */
  MSG_PING,
};

/* ------------------------------------------------------------------------ */
/* The exchange: 2 actors (one per core) and 2 threads (with ports), every  */
/* one sending a numbered sequence to each of the other three.              */

enum {
  PARTIES = 4,
  WINDOW = 256,   /* unacknowledged messages per sender and receiver */
  ACK_EVERY = 64, /* a receiver acknowledges every ACK_EVERY messages */
};

typedef struct ack {
  uint32_t receiver;
  uint32_t pad;
  uint64_t count; /* messages received so far from the acknowledged sender */
} ack_t;

typedef struct exchange exchange_t;

/* One party's bookkeeping; touched only by the party itself (its actor or
 * its thread) until the test thread reads it after the end. */
typedef struct party {
  uint32_t id;
  exchange_t *ex;
  uint64_t sent[PARTIES];
  uint64_t acked[PARTIES];
  uint64_t received[PARTIES];
  uint64_t bad_seq, bad_from, bad_ack, bad_send, bad_other;
  atomic_int done; /* everything sent and received */
} party_t;

struct exchange {
  ax_ref_t refs[PARTIES]; /* parties 0, 1: actors; 2, 3: ports */
  uint64_t per_pair;
  party_t parties[PARTIES];
  ax_port_t *ports[PARTIES];
};

static bool party_finished(const party_t *p) {
  for (uint32_t r = 0; r < PARTIES; r++) {
    if (r == p->id)
      continue;
    if (p->sent[r] < p->ex->per_pair || p->received[r] < p->ex->per_pair)
      return false;
  }
  return true;
}

/* Sends to party r as far as the window allows.  Returns how many. */
static int party_pump(party_t *p, uint32_t r) {
  int n = 0;
  while (p->sent[r] < p->ex->per_pair && p->sent[r] - p->acked[r] < WINDOW) {
    test_seq_msg_t m = {p->id, 0, p->sent[r]};
    if (ax_send(p->ex->refs[r], MSG_DATA, &m, sizeof m) != 0) {
      p->bad_send++;
      return n;
    }
    p->sent[r]++;
    n++;
  }
  return n;
}

static void party_handle(party_t *p, const ax_msg_t *msg) {
  if (msg->type == MSG_DATA && msg->size == sizeof(test_seq_msg_t)) {
    test_seq_msg_t m;
    memcpy(&m, msg->data, sizeof m);
    if (m.sender >= PARTIES || m.sender == p->id) {
      p->bad_other++;
      return;
    }
    /* None lost, none duplicated, order kept: exactly the next number. */
    if (m.seq != p->received[m.sender])
      p->bad_seq++;
    ax_ref_t want_from = m.sender < 2 ? p->ex->refs[m.sender] : AX_REF_NONE;
    if (msg->from != want_from)
      p->bad_from++;
    uint64_t count = ++p->received[m.sender];
    if (count % ACK_EVERY == 0 || count == p->ex->per_pair) {
      ack_t a = {p->id, 0, count};
      if (ax_send(p->ex->refs[m.sender], MSG_ACK, &a, sizeof a) != 0)
        p->bad_send++;
    }
  } else if (msg->type == MSG_ACK && msg->size == sizeof(ack_t)) {
    ack_t a;
    memcpy(&a, msg->data, sizeof a);
    if (a.receiver >= PARTIES || a.count <= p->acked[a.receiver] ||
        a.count > p->sent[a.receiver]) {
      p->bad_ack++;
      return;
    }
    p->acked[a.receiver] = a.count;
    party_pump(p, a.receiver);
  } else if (msg->type != MSG_GO) {
    p->bad_other++;
  }
}

static int party_behaviour(ax_actor_t *self, const ax_msg_t *msg) {
  party_t *p = ax_state(self);
  party_handle(p, msg);
  if (msg->type == MSG_GO) {
    for (uint32_t r = 0; r < PARTIES; r++)
      if (r != p->id)
        party_pump(p, r);
  }
  if (!atomic_load_explicit(&p->done, memory_order_relaxed) && party_finished(p))
    atomic_store(&p->done, 1);
  return 0;
}

static void *party_thread(void *arg) {
  party_t *p = arg;
  ax_port_t *port = p->ex->ports[p->id];
  int64_t last_progress = ax_now();
  while (!party_finished(p)) {
    int pumped = 0;
    for (uint32_t r = 0; r < PARTIES; r++)
      if (r != p->id)
        pumped += party_pump(p, r);
    if (p->bad_send != 0)
      break;
    /* Take what is there; block only when nothing can be sent. */
    int64_t deadline = pumped > 0 ? 0 : ax_now() + 100 * AX_NSEC_PER_MSEC;
    for (int k = 0; k < 256; k++) {
      ax_msg_t msg;
      int rc = ax_port_recv(port, k == 0 ? deadline : 0, &msg);
      if (rc == 0) {
        party_handle(p, &msg);
        last_progress = ax_now();
        continue;
      }
      if (rc != -EAGAIN && rc != -ETIMEDOUT && rc != -EINTR)
        p->bad_other++;
      break;
    }
    if (pumped > 0)
      last_progress = ax_now();
    if (ax_now() - last_progress > 60 * AX_NSEC_PER_SEC) {
      p->bad_other++; /* stalled for a minute: something was lost */
      break;
    }
  }
  atomic_store(&p->done, 1);
  return NULL;
}

START_TEST(test_stress_exchange) {
  uint64_t total = test_scaled(10000000);
  exchange_t *ex = calloc(1, sizeof *ex);
  ck_assert_ptr_nonnull(ex);
  ex->per_pair = (total + PARTIES * (PARTIES - 1) - 1) / (PARTIES * (PARTIES - 1));
  ax_rt_t *rt = test_rt_new(2, 0);
  for (uint32_t i = 0; i < PARTIES; i++) {
    ex->parties[i].id = i;
    ex->parties[i].ex = ex;
  }
  for (uint32_t i = 0; i < 2; i++)
    ex->refs[i] = test_spawn(rt, party_behaviour, &ex->parties[i], AX_PLACE_CORE, i, NULL, NULL);
  for (uint32_t i = 2; i < PARTIES; i++) {
    ck_assert_int_eq(ax_port_new(rt, &ex->ports[i]), 0);
    ex->refs[i] = ax_port_ref(ex->ports[i]);
  }
  int64_t start = ax_now();
  test_rt_start(rt);
  pthread_t threads[PARTIES];
  for (uint32_t i = 2; i < PARTIES; i++)
    ck_assert_int_eq(pthread_create(&threads[i], NULL, party_thread, &ex->parties[i]), 0);
  for (uint32_t i = 0; i < 2; i++)
    test_send(ex->refs[i], MSG_GO, NULL, 0);
  for (uint32_t i = 2; i < PARTIES; i++)
    ck_assert_int_eq(pthread_join(threads[i], NULL), 0);
  for (uint32_t i = 0; i < 2; i++)
    TEST_WAIT_UNTIL(atomic_load(&ex->parties[i].done) == 1, 120000);
  ax_rt_stop(rt);
  ck_assert_int_eq(ax_rt_join(rt), 0);
  double seconds = (double)(ax_now() - start) / 1e9;

  uint64_t delivered = 0;
  for (uint32_t i = 0; i < PARTIES; i++) {
    const party_t *p = &ex->parties[i];
    ck_assert_msg(p->bad_seq == 0 && p->bad_from == 0 && p->bad_ack == 0 && p->bad_send == 0 &&
                      p->bad_other == 0,
                  "party %u: %llu out of sequence, %llu wrong sender, %llu bad acks, "
                  "%llu failed sends, %llu other",
                  i, (unsigned long long)p->bad_seq, (unsigned long long)p->bad_from,
                  (unsigned long long)p->bad_ack, (unsigned long long)p->bad_send,
                  (unsigned long long)p->bad_other);
    for (uint32_t r = 0; r < PARTIES; r++) {
      if (r == i)
        continue;
      ck_assert_uint_eq(p->sent[r], ex->per_pair);
      ck_assert_uint_eq(p->received[r], ex->per_pair);
      delivered += p->received[r];
    }
  }
  ck_assert_uint_ge(delivered, total);
  ax_core_stats_t stats;
  ck_assert_int_eq(ax_rt_stats_total(rt, &stats), 0);
  /* Actors sent their data and acks; they handled what reached them. */
  ck_assert_uint_ge(stats.sent, 2 * 3 * ex->per_pair);
  ck_assert_uint_ge(stats.delivered, 2 * 3 * ex->per_pair);
  printf("exchange: %llu messages in %.2f s (%.2f M/s), %llu wakeups, %llu sleeps\n",
         (unsigned long long)delivered, seconds, (double)delivered / seconds / 1e6,
         (unsigned long long)stats.wakeups, (unsigned long long)stats.sleeps);
  for (uint32_t i = 2; i < PARTIES; i++)
    ck_assert_int_eq(ax_port_close(ex->ports[i]), 0);
  ck_assert_int_eq(ax_rt_free(rt), 0);
  free(ex);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Stale references                                                          */

static atomic_long stale_arrived;    /* MSG_STALE that reached an actor: must stay 0 */
static atomic_long stale_terminated; /* actors of the stale test that stopped */

static int stale_behaviour(ax_actor_t *self, const ax_msg_t *msg) {
  (void)self;
  if (msg->type == MSG_STALE)
    atomic_fetch_add(&stale_arrived, 1);
  return msg->type == MSG_STOP ? AX_STOP : 0;
}

static void stale_terminate(ax_actor_t *self, int reason) {
  (void)self;
  (void)reason;
  atomic_fetch_add(&stale_terminated, 1);
}

/* References known to be dead, published for the hammering thread. */
typedef struct stale_list {
  ax_ref_t *refs;
  atomic_long count;
  atomic_int stop;
  long sends, wrong; /* the thread's results */
} stale_list_t;

/* Sends to random published stale references until told to stop. */
static void *stale_hammer(void *arg) {
  stale_list_t *list = arg;
  uint64_t state = 0x2545f4914f6cdd1dULL;
  while (!atomic_load(&list->stop)) {
    long n = atomic_load(&list->count);
    if (n == 0)
      continue;
    for (int k = 0; k < 64; k++) {
      state ^= state << 13;
      state ^= state >> 7;
      state ^= state << 17;
      ax_ref_t ref = list->refs[state % (uint64_t)n];
      int rc = ax_send(ref, MSG_STALE, &ref, sizeof ref);
      if (rc != -ESRCH)
        list->wrong++;
      list->sends++;
    }
  }
  return NULL;
}

START_TEST(test_stress_stale_refs) {
  enum { BATCH = 200 };
  int rounds = (int)test_scaled(100);
  ax_rt_t *rt = test_rt_new(2, AX_RT_KEEP_ALIVE);
  test_rt_start(rt);
  stale_list_t list;
  list.refs = calloc((size_t)rounds * BATCH, sizeof *list.refs);
  ck_assert_ptr_nonnull(list.refs);
  atomic_init(&list.count, 0);
  atomic_init(&list.stop, 0);
  list.sends = list.wrong = 0;
  atomic_store(&stale_arrived, 0);
  atomic_store(&stale_terminated, 0);
  pthread_t hammer;
  ck_assert_int_eq(pthread_create(&hammer, NULL, stale_hammer, &list), 0);

  ax_ref_t live[BATCH];
  long stopped = 0;
  for (int round = 0; round < rounds; round++) {
    /* New actors (reusing the slots of the old ones), then stop them. */
    for (int i = 0; i < BATCH; i++) {
      live[i] = test_spawn(rt, stale_behaviour, NULL, i % 3 == 0 ? AX_PLACE_LOCAL : AX_PLACE_ANY,
                           0, NULL, stale_terminate);
      test_send(live[i], MSG_PING, NULL, 0);
    }
    for (int i = 0; i < BATCH; i++) {
      if (i % 2 == 0)
        test_send(live[i], MSG_STOP, NULL, 0);
      else
        ck_assert_int_eq(ax_stop(live[i], 0), 0);
    }
    stopped += BATCH;
    TEST_WAIT_UNTIL(atomic_load(&stale_terminated) == stopped, 30000);
    /* Once a reference fails, it fails forever: publish it. */
    for (int i = 0; i < BATCH; i++) {
      TEST_WAIT_UNTIL(ax_send(live[i], MSG_PING, NULL, 0) == -ESRCH, 10000);
      long n = atomic_load(&list.count);
      list.refs[n] = live[i];
      atomic_store(&list.count, n + 1);
    }
    /* Every stale reference so far, from this thread too. */
    long n = atomic_load(&list.count);
    for (long i = round * BATCH % 7; i < n; i += 7) {
      ck_assert_int_eq(ax_send(list.refs[i], MSG_STALE, NULL, 0), -ESRCH);
      ck_assert_int_eq(ax_stop(list.refs[i], 0), -ESRCH);
    }
  }
  atomic_store(&list.stop, 1);
  ck_assert_int_eq(pthread_join(hammer, NULL), 0);
  test_rt_stop_join_free(rt);
  ck_assert_int_eq(list.wrong, 0);
  ck_assert_int_gt(list.sends, 0);
  ck_assert_int_eq(atomic_load(&stale_arrived), 0);
  ck_assert_int_eq(atomic_load(&stale_terminated), stopped);
  free(list.refs);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Stopping during a send storm                                              */

typedef struct victim {
  long limit;            /* AX_STOP on this message */
  atomic_long received;
} victim_t;

static int victim_behaviour(ax_actor_t *self, const ax_msg_t *msg) {
  victim_t *v = ax_state(self);
  (void)msg;
  long n = atomic_fetch_add(&v->received, 1) + 1;
  return n == v->limit ? AX_STOP : 0;
}

/* One sender's view: every result is 0 or -ESRCH, and -ESRCH for good
 * once it has come. */
typedef struct storm_sender {
  ax_ref_t to;
  long count;
  bool owned;
  long ok, srch, other, flip_back;
  bool dead;
} storm_sender_t;

static atomic_long storm_owned_sent; /* ax_send_owned calls */
static atomic_long storm_released;   /* release calls */

static void storm_release(void *buf) {
  atomic_fetch_add(&storm_released, 1);
  free(buf);
}

static void storm_note(storm_sender_t *s, int rc) {
  if (rc == 0) {
    s->ok++;
    if (s->dead)
      s->flip_back++;
  } else if (rc == -ESRCH) {
    s->srch++;
    s->dead = true;
  } else {
    s->other++;
  }
}

static void storm_send_one(storm_sender_t *s, long i) {
  if (s->owned) {
    long *buf = malloc(sizeof *buf);
    ck_assert_ptr_nonnull(buf);
    *buf = i;
    atomic_fetch_add(&storm_owned_sent, 1);
    storm_note(s, ax_send_owned(s->to, MSG_DATA, buf, sizeof *buf, storm_release));
  } else {
    storm_note(s, ax_send(s->to, MSG_DATA, &i, sizeof i));
  }
}

static void *storm_thread(void *arg) {
  storm_sender_t *s = arg;
  for (long i = 0; i < s->count; i++)
    storm_send_one(s, i);
  return NULL;
}

/* The actor sender: 256 sends per turn, then a message to itself. */
typedef struct storm_actor {
  storm_sender_t s;
  long next;
} storm_actor_t;

static int storm_actor_behaviour(ax_actor_t *self, const ax_msg_t *msg) {
  (void)msg;
  storm_actor_t *a = ax_state(self);
  for (int k = 0; k < 256 && a->next < a->s.count; k++, a->next++)
    storm_send_one(&a->s, a->next);
  if (a->next == a->s.count)
    return AX_STOP;
  if (ax_send(ax_self(self), MSG_GO, NULL, 0) != 0)
    a->s.other++;
  return 0;
}

START_TEST(test_stress_stop_during_storm) {
  long per_sender = (long)test_scaled(400000);
  for (int round = 0; round < 3; round++) {
    ax_rt_t *rt = test_rt_new(2, 0);
    victim_t victim;
    victim.limit = per_sender / 2 + round * (per_sender / 3);
    atomic_init(&victim.received, 0);
    ax_ref_t v = test_spawn(rt, victim_behaviour, &victim, AX_PLACE_CORE, 1, NULL, NULL);
    atomic_store(&storm_owned_sent, 0);
    atomic_store(&storm_released, 0);

    storm_actor_t actor;
    memset(&actor, 0, sizeof actor);
    actor.s.to = v;
    actor.s.count = per_sender;
    actor.s.owned = round == 2;
    ax_ref_t a = test_spawn(rt, storm_actor_behaviour, &actor, AX_PLACE_CORE, 0, NULL, NULL);
    storm_sender_t threads[2];
    memset(threads, 0, sizeof threads);
    pthread_t tids[2];
    test_rt_start(rt);
    for (int i = 0; i < 2; i++) {
      threads[i].to = v;
      threads[i].count = per_sender;
      threads[i].owned = i == 1;
      ck_assert_int_eq(pthread_create(&tids[i], NULL, storm_thread, &threads[i]), 0);
    }
    test_send(a, MSG_GO, NULL, 0);
    for (int i = 0; i < 2; i++)
      ck_assert_int_eq(pthread_join(tids[i], NULL), 0);
    /* The victim and the actor sender both stop by themselves. */
    ck_assert_int_eq(ax_rt_join(rt), 0);

    storm_sender_t *all[3] = {&threads[0], &threads[1], &actor.s};
    long ok = 0;
    for (int i = 0; i < 3; i++) {
      ck_assert_msg(all[i]->other == 0, "sender %d: %ld results other than 0 and -ESRCH", i,
                    all[i]->other);
      ck_assert_msg(all[i]->flip_back == 0,
                    "sender %d: %ld sends succeeded after one had failed with -ESRCH", i,
                    all[i]->flip_back);
      ck_assert_int_eq(all[i]->ok + all[i]->srch, per_sender);
      ok += all[i]->ok;
    }
    /* The victim handled exactly its limit, each one a successful send;
     * every other successful send was dropped, and counted, by the join. */
    ck_assert_int_eq(atomic_load(&victim.received), victim.limit);
    ck_assert_int_ge(ok, victim.limit);
    ck_assert_int_eq(ax_send(v, MSG_DATA, NULL, 0), -ESRCH);
    ax_core_stats_t stats;
    ck_assert_int_eq(ax_rt_stats_total(rt, &stats), 0);
    ck_assert_uint_ge(stats.delivered, (uint64_t)victim.limit);
    ck_assert_msg(stats.dead_letters + (uint64_t)victim.limit >= (uint64_t)ok,
                  "round %d: %ld sends accepted, %ld handled, only %llu dead letters", round, ok,
                  victim.limit, (unsigned long long)stats.dead_letters);
    ck_assert_int_eq(ax_rt_free(rt), 0);
    /* Every owned buffer was released once: delivered, dropped or refused. */
    ck_assert_int_eq(atomic_load(&storm_released), atomic_load(&storm_owned_sent));
  }
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Many actors                                                               */

static atomic_long many_handled;
static atomic_long many_terminated;

static int many_behaviour(ax_actor_t *self, const ax_msg_t *msg) {
  (void)self;
  (void)msg;
  atomic_fetch_add(&many_handled, 1);
  return AX_STOP;
}

static void many_terminate(ax_actor_t *self, int reason) {
  (void)self;
  atomic_fetch_add(&many_terminated, reason == AX_REASON_NORMAL ? 1 : 1000000000L);
}

/* A tree: each node spawns `fanout` children down to depth 0, sends each
 * a message with its depth, and stops. */
static int tree_behaviour(ax_actor_t *self, const ax_msg_t *msg) {
  int depth;
  memcpy(&depth, msg->data, sizeof depth);
  atomic_fetch_add(&many_handled, 1);
  for (int i = 0; depth > 0 && i < 4; i++) {
    ax_spawn_opts_t opts;
    memset(&opts, 0, sizeof opts);
    opts.placement = i % 2 == 0 ? AX_PLACE_LOCAL : AX_PLACE_ANY;
    opts.terminate = many_terminate;
    ax_ref_t child;
    ck_assert_int_eq(ax_spawn(ax_actor_rt(self), tree_behaviour, NULL, &opts, &child), 0);
    int below = depth - 1;
    ck_assert_int_eq(ax_send(child, MSG_PING, &below, sizeof below), 0);
  }
  return AX_STOP;
}

typedef struct spawner_thread {
  ax_rt_t *rt;
  long count;
} spawner_thread_t;

static void *spawner_main(void *arg) {
  spawner_thread_t *s = arg;
  for (long i = 0; i < s->count; i++) {
    ax_spawn_opts_t opts;
    memset(&opts, 0, sizeof opts);
    opts.placement = i % 2 == 0 ? AX_PLACE_LOCAL : AX_PLACE_ANY;
    opts.terminate = many_terminate;
    ax_ref_t ref;
    ck_assert_int_eq(ax_spawn(s->rt, many_behaviour, NULL, &opts, &ref), 0);
    ck_assert_int_eq(ax_send(ref, MSG_PING, NULL, 0), 0);
  }
  return NULL;
}

START_TEST(test_stress_many_actors) {
  long n = (long)test_scaled(100000);
  /* All spawned before the start, all alive at once. */
  atomic_store(&many_handled, 0);
  atomic_store(&many_terminated, 0);
  ax_rt_t *rt = test_rt_new(2, 0);
  for (long i = 0; i < n; i++) {
    ax_spawn_opts_t opts;
    memset(&opts, 0, sizeof opts);
    opts.terminate = many_terminate;
    ax_ref_t ref;
    ck_assert_int_eq(ax_spawn(rt, many_behaviour, NULL, &opts, &ref), 0);
    test_send(ref, MSG_PING, NULL, 0);
  }
  ck_assert_int_eq(ax_rt_run(rt), 0);
  ck_assert_int_eq(atomic_load(&many_handled), n);
  ck_assert_int_eq(atomic_load(&many_terminated), n);
  ax_core_stats_t stats;
  ck_assert_int_eq(ax_rt_stats_total(rt, &stats), 0);
  ck_assert_uint_ge(stats.spawned, (uint64_t)n);
  ck_assert_uint_eq(stats.actors, 0);
  ck_assert_int_eq(ax_rt_free(rt), 0);

  /* Spawned while running, from two threads at once and from actors. */
  atomic_store(&many_handled, 0);
  atomic_store(&many_terminated, 0);
  rt = test_rt_new(2, AX_RT_KEEP_ALIVE);
  test_rt_start(rt);
  spawner_thread_t spawners[2] = {{rt, n / 2}, {rt, n / 2}};
  pthread_t tids[2];
  for (int i = 0; i < 2; i++)
    ck_assert_int_eq(pthread_create(&tids[i], NULL, spawner_main, &spawners[i]), 0);
  /* A tree of 1 + 4 + ... + 4^6 = 5461 actors. */
  ax_spawn_opts_t opts;
  memset(&opts, 0, sizeof opts);
  opts.terminate = many_terminate;
  ax_ref_t root;
  ck_assert_int_eq(ax_spawn(rt, tree_behaviour, NULL, &opts, &root), 0);
  int depth = 6;
  test_send(root, MSG_PING, &depth, sizeof depth);
  for (int i = 0; i < 2; i++)
    ck_assert_int_eq(pthread_join(tids[i], NULL), 0);
  long want = 2 * (n / 2) + 5461;
  TEST_WAIT_UNTIL(atomic_load(&many_terminated) == want, 120000);
  ck_assert_int_eq(atomic_load(&many_handled), want);
  test_rt_stop_join_free(rt);
  ck_assert_int_eq(atomic_load(&many_terminated), want);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Threads that are no core: their rings (the first 16 such threads), the    */
/* inbox (the others), the wait while a ring is full, the overflow queue     */
/* after a wait in vain, and rings passed on when threads exit.               */

enum {
  FOREIGN_SENDERS = 24, /* more than the 16 threads that get rings */
  FOREIGN_BIG = 100,    /* payload bytes of every 7th message: no room in a slot */
};

/* One receiver: per-sender counts and what went wrong; its actor only. */
typedef struct foreign_rx {
  uint64_t next[FOREIGN_SENDERS];
  _Atomic uint64_t total;
  uint64_t bad_seq, bad_size, bad_from;
  uint64_t stall_every; /* busy 2 ms every this many messages (0: never) */
  int64_t max_queued;   /* the longest mailbox it saw */
} foreign_rx_t;

static int foreign_rx_behaviour(ax_actor_t *self, const ax_msg_t *msg) {
  foreign_rx_t *rx = ax_state(self);
  test_seq_msg_t m;
  if (msg->type != MSG_DATA || msg->size < sizeof m) {
    rx->bad_size++;
    return 0;
  }
  memcpy(&m, msg->data, sizeof m);
  if (m.sender >= FOREIGN_SENDERS) {
    rx->bad_size++;
    return 0;
  }
  /* Exactly the next number of that sender: none lost, none twice, in order. */
  if (m.seq != rx->next[m.sender])
    rx->bad_seq++;
  rx->next[m.sender] = m.seq + 1;
  if (msg->size != (m.seq % 7 == 0 ? FOREIGN_BIG : sizeof m))
    rx->bad_size++;
  if (msg->from != AX_REF_NONE)
    rx->bad_from++;
  int64_t queued = ax_mailbox_len(self);
  if (queued > rx->max_queued)
    rx->max_queued = queued;
  uint64_t total = atomic_load_explicit(&rx->total, memory_order_relaxed) + 1;
  /* A core that stops draining for longer than a sender waits: the
   * senders' overflow queues fill, and must keep the order. */
  if (rx->stall_every != 0 && total % rx->stall_every == 0)
    test_spin_ms(2);
  atomic_store_explicit(&rx->total, total, memory_order_release);
  return 0;
}

typedef struct foreign_tx {
  uint32_t id;
  uint64_t count; /* to each receiver */
  const ax_ref_t *to;
  unsigned nto;
  uint64_t failed;
} foreign_tx_t;

static void foreign_send_seq(foreign_tx_t *tx, ax_ref_t to, uint64_t seq) {
  unsigned char big[FOREIGN_BIG];
  test_seq_msg_t m = {tx->id, 0, seq};
  int rc;
  if (seq % 7 == 0) {
    memset(big, 0xa5, sizeof big);
    memcpy(big, &m, sizeof m);
    rc = ax_send(to, MSG_DATA, big, sizeof big);
  } else {
    rc = ax_send(to, MSG_DATA, &m, sizeof m);
  }
  if (rc != 0)
    tx->failed++;
}

static void *foreign_tx_main(void *arg) {
  foreign_tx_t *tx = arg;
  for (uint64_t i = 0; i < tx->count; i++)
    for (unsigned r = 0; r < tx->nto; r++)
      foreign_send_seq(tx, tx->to[r], i);
  return NULL;
}

/* Waits until rx has received n messages in all. */
static void foreign_rx_wait(foreign_rx_t *rx, uint64_t n, int64_t within_ms) {
  TEST_WAIT_UNTIL(atomic_load_explicit(&rx->total, memory_order_acquire) == n, within_ms);
}

static void foreign_rx_check(foreign_rx_t *rx, unsigned senders, uint64_t each) {
  for (unsigned t = 0; t < senders; t++)
    ck_assert_msg(rx->next[t] == each, "sender %u: %llu of %llu arrived", t,
                  (unsigned long long)rx->next[t], (unsigned long long)each);
  ck_assert_uint_eq(rx->bad_seq, 0);
  ck_assert_uint_eq(rx->bad_size, 0);
  ck_assert_uint_eq(rx->bad_from, 0);
}

/* 24 threads at once, each to an actor on each core, while the
 * receivers stall now and then: per-sender order and every message, for
 * senders with rings and senders on the inbox alike. */
START_TEST(test_stress_foreign_senders) {
  ax_rt_t *rt = test_rt_new(2, AX_RT_KEEP_ALIVE | AX_RT_NO_SIGNALS);
  static foreign_rx_t rx[2];
  memset(rx, 0, sizeof rx);
  uint64_t each = test_scaled(20000);
  rx[0].stall_every = each * FOREIGN_SENDERS / 4;
  ax_ref_t to[2];
  for (unsigned r = 0; r < 2; r++)
    to[r] = test_spawn(rt, foreign_rx_behaviour, &rx[r], AX_PLACE_CORE, r, NULL, NULL);
  test_rt_start(rt);
  pthread_t tids[FOREIGN_SENDERS];
  foreign_tx_t tx[FOREIGN_SENDERS];
  for (uint32_t t = 0; t < FOREIGN_SENDERS; t++) {
    tx[t] = (foreign_tx_t){t, each, to, 2, 0};
    ck_assert_int_eq(pthread_create(&tids[t], NULL, foreign_tx_main, &tx[t]), 0);
  }
  for (uint32_t t = 0; t < FOREIGN_SENDERS; t++) {
    ck_assert_int_eq(pthread_join(tids[t], NULL), 0);
    ck_assert_uint_eq(tx[t].failed, 0);
  }
  for (unsigned r = 0; r < 2; r++)
    foreign_rx_wait(&rx[r], each * FOREIGN_SENDERS, 120000);
  test_rt_stop_join_free(rt);
  for (unsigned r = 0; r < 2; r++)
    foreign_rx_check(&rx[r], FOREIGN_SENDERS, each);
}
END_TEST

/* More threads than CPUs flood actors on both cores: they send at the pace
 * the actors handle messages.  Each core used to move whatever the threads'
 * rings and queues held into the mailboxes at every drain, faster than the
 * actors took them, and threads whose core was descheduled for 200 us went
 * on in their overflow queues without waiting again (a newcomer's four
 * threads peaked at 0.4-0.9 GB; 12 threads queued 1.1 million messages in
 * one mailbox).  A mailbox now stays within a few thousand. */
enum { PACED_SENDERS = 8, PACED_RECEIVERS = 4, PACED_MAX_QUEUED = 200000 };

START_TEST(test_stress_foreign_paced) {
  ax_rt_t *rt = test_rt_new(2, AX_RT_KEEP_ALIVE | AX_RT_NO_SIGNALS);
  static foreign_rx_t rx[PACED_RECEIVERS];
  memset(rx, 0, sizeof rx);
  ax_ref_t to[PACED_RECEIVERS];
  for (unsigned r = 0; r < PACED_RECEIVERS; r++)
    to[r] = test_spawn(rt, foreign_rx_behaviour, &rx[r], AX_PLACE_CORE, r % 2, NULL, NULL);
  test_rt_start(rt);
  uint64_t each = test_scaled(125000);
  foreign_tx_t tx[PACED_SENDERS];
  pthread_t tid[PACED_SENDERS];
  for (uint32_t t = 0; t < PACED_SENDERS; t++) {
    tx[t] = (foreign_tx_t){t, each, to, PACED_RECEIVERS, 0};
    ck_assert_int_eq(pthread_create(&tid[t], NULL, foreign_tx_main, &tx[t]), 0);
  }
  for (uint32_t t = 0; t < PACED_SENDERS; t++) {
    ck_assert_int_eq(pthread_join(tid[t], NULL), 0);
    ck_assert_uint_eq(tx[t].failed, 0);
  }
  for (unsigned r = 0; r < PACED_RECEIVERS; r++)
    foreign_rx_wait(&rx[r], each * PACED_SENDERS, 120000);
  test_rt_stop_join_free(rt);
  for (unsigned r = 0; r < PACED_RECEIVERS; r++) {
    foreign_rx_check(&rx[r], PACED_SENDERS, each);
    ck_assert_msg(rx[r].max_queued < PACED_MAX_QUEUED,
                  "receiver %u saw %lld messages queued in its mailbox", r,
                  (long long)rx[r].max_queued);
  }
}
END_TEST

/* FOREIGN_SENDERS threads flood one slowish actor (about 1 us a message)
 * of a one-core runtime: those past the first 16 have no ring and push to
 * the core's inbox, which is paced as the rings are.  The backlog (sent
 * and not yet handled: rings, overflow queues, inbox, mailbox) stays at a
 * few rings' worth; unpaced, each inbox thread sent its whole share at
 * once (24 threads flooding 4 actors peaked at 633 MB). */
static _Atomic uint64_t ib_sent, ib_handled;
static _Atomic int64_t ib_max_backlog;

static int inbox_rx_behaviour(ax_actor_t *self, const ax_msg_t *msg) {
  int rc = foreign_rx_behaviour(self, msg);
  test_spin_ns(1000);
  uint64_t handled = atomic_fetch_add(&ib_handled, 1) + 1;
  int64_t backlog = (int64_t)(atomic_load(&ib_sent) - handled);
  if (backlog > atomic_load(&ib_max_backlog))
    atomic_store(&ib_max_backlog, backlog);
  return rc;
}

static void *inbox_tx_main(void *arg) {
  foreign_tx_t *tx = arg;
  for (uint64_t i = 0; i < tx->count; i++) {
    /* Counted first: the backlog the receiver sees is never short. */
    atomic_fetch_add(&ib_sent, 1);
    foreign_send_seq(tx, tx->to[0], i);
  }
  return NULL;
}

START_TEST(test_stress_foreign_inbox_paced) {
  ax_rt_t *rt = test_rt_new(1, AX_RT_KEEP_ALIVE | AX_RT_NO_SIGNALS);
  static foreign_rx_t rx;
  memset(&rx, 0, sizeof rx);
  atomic_store(&ib_sent, 0);
  atomic_store(&ib_handled, 0);
  atomic_store(&ib_max_backlog, 0);
  ax_ref_t to = test_spawn(rt, inbox_rx_behaviour, &rx, AX_PLACE_CORE, 0, NULL, NULL);
  test_rt_start(rt);
  /* Not scaled down for slow builds: the rings and the inbox hold about
   * 14,000 messages when every wait is kept (16 rings and their queues of
   * 256 each, the inbox's 1,024, a round's credit in the mailbox), a core
   * descheduled by a loaded machine lets more through its gate (52,134
   * once in 15 runs beside other work; 223,371 once at a load average of
   * 9 on 2 CPUs), and the 8 threads on the inbox queue about 240,000
   * unpaced. */
  uint64_t each = 20000;
  pthread_t tids[FOREIGN_SENDERS];
  foreign_tx_t tx[FOREIGN_SENDERS];
  for (uint32_t t = 0; t < FOREIGN_SENDERS; t++) {
    tx[t] = (foreign_tx_t){t, each, &to, 1, 0};
    ck_assert_int_eq(pthread_create(&tids[t], NULL, inbox_tx_main, &tx[t]), 0);
  }
  for (uint32_t t = 0; t < FOREIGN_SENDERS; t++) {
    ck_assert_int_eq(pthread_join(tids[t], NULL), 0);
    ck_assert_uint_eq(tx[t].failed, 0);
  }
  foreign_rx_wait(&rx, each * FOREIGN_SENDERS, 120000);
  test_rt_stop_join_free(rt);
  foreign_rx_check(&rx, FOREIGN_SENDERS, each);
  int64_t backlog = atomic_load(&ib_max_backlog);
#if !defined(__SANITIZE_THREAD__)
  /* Not under ThreadSanitizer, which slows every thread several times
   * over: with 24 senders on 2 CPUs its core often handles fewer than 8
   * messages in 200 us, counts as stuck, and its gate lets 256 messages
   * through per wait (222,557 waiting in one run).  The other builds
   * keep the bound; this one checks the order and the count. */
  ck_assert_msg(backlog < 150000,
                "%lld of %llu messages were waiting at once", (long long)backlog,
                (unsigned long long)(each * FOREIGN_SENDERS));
#endif
  (void)backlog;
}
END_TEST

/* Sends before the runtime runs: the ring fills, the thread waits in
 * vain and goes on in its overflow queue, so ax_send still returns at
 * once (well under a second for all of them); once the core drains the
 * queue, the thread uses its ring again, and the order holds across.
 * The queue's messages outgrow what the thread's message pools may hold
 * (1 MiB a class, msg.c): the rest come from malloc, in the same order. */
START_TEST(test_stress_foreign_before_start) {
  ax_rt_t *rt = test_rt_new(1, AX_RT_KEEP_ALIVE | AX_RT_NO_SIGNALS);
  static foreign_rx_t rx;
  memset(&rx, 0, sizeof rx);
  ax_ref_t to = test_spawn(rt, foreign_rx_behaviour, &rx, AX_PLACE_CORE, 0, NULL, NULL);
  foreign_tx_t tx = {0, 0, &to, 1, 0};
  uint64_t n = 20000; /* 2.5 MB of 128-byte messages */
  int64_t t0 = ax_now();
  for (uint64_t i = 0; i < n; i++)
    foreign_send_seq(&tx, to, i);
  int64_t took = ax_now() - t0;
  ck_assert_uint_eq(tx.failed, 0);
  ck_assert_msg(took < AX_NSEC_PER_SEC, "%llu sends to a core not running took %lld ms",
                (unsigned long long)n, (long long)(took / AX_NSEC_PER_MSEC));
  test_rt_start(rt);
  foreign_rx_wait(&rx, n, 60000);
  for (uint64_t i = n; i < 3 * n; i++)
    foreign_send_seq(&tx, to, i);
  ck_assert_uint_eq(tx.failed, 0);
  foreign_rx_wait(&rx, 3 * n, 60000);
  test_rt_stop_join_free(rt);
  foreign_rx_check(&rx, 1, 3 * n);
}
END_TEST

/* Threads one after another, each sending then exiting: the next thread
 * takes over the last one's ring (and message heap), with what it left
 * in flight still ahead of it. */
START_TEST(test_stress_foreign_thread_after_thread) {
  ax_rt_t *rt = test_rt_new(2, AX_RT_KEEP_ALIVE | AX_RT_NO_SIGNALS);
  static foreign_rx_t rx;
  memset(&rx, 0, sizeof rx);
  ax_ref_t to = test_spawn(rt, foreign_rx_behaviour, &rx, AX_PLACE_CORE, 1, NULL, NULL);
  test_rt_start(rt);
  uint64_t each = test_scaled(3000);
  foreign_tx_t tx[FOREIGN_SENDERS];
  for (uint32_t t = 0; t < FOREIGN_SENDERS; t++) {
    pthread_t tid;
    tx[t] = (foreign_tx_t){t, each, &to, 1, 0};
    ck_assert_int_eq(pthread_create(&tid, NULL, foreign_tx_main, &tx[t]), 0);
    ck_assert_int_eq(pthread_join(tid, NULL), 0);
    ck_assert_uint_eq(tx[t].failed, 0);
  }
  foreign_rx_wait(&rx, each * FOREIGN_SENDERS, 60000);
  test_rt_stop_join_free(rt);
  foreign_rx_check(&rx, FOREIGN_SENDERS, each);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* A long turn that floods another core                                      */

/* An actor of core 0 sends to one of core 1 in a single long turn, far more
 * than the ring between the cores holds.  The rest waits on the sender's
 * overflow list, which only the end of the sender's round used to move on:
 * core 1 took one ring's worth (256) and slept while millions waited (a
 * newcomer saw 2,048 of 7.8 million handled after 2 s, 739 MiB resident).
 * The sender now moves its overflow into the ring as room appears, at each
 * send, and wakes the core: the receiver works while the turn goes on. */
enum { FLOOD_MAX = 2000000, FLOOD_SEEN = 100000, AX_TEST_RING = 256 /* AX__RING_SLOTS */ };
static atomic_ullong flood_handled;
static atomic_ullong flood_sent;

static int flood_sink(ax_actor_t *self, const ax_msg_t *m) {
  (void)self;
  if (m->type == MSG_DATA) {
    /* Slower than the sender: the ring between the cores fills. */
    for (volatile int i = 0; i < 200; i++) {
    }
    atomic_fetch_add_explicit(&flood_handled, 1, memory_order_relaxed);
  }
  return 0;
}

static int flood_source(ax_actor_t *self, const ax_msg_t *m) {
  (void)self;
  if (m->type != MSG_GO)
    return 0;
  ax_ref_t sink;
  memcpy(&sink, m->data, sizeof sink);
  uint64_t n = 0;
  /* One turn: until the sink has handled a few rings' worth, or a bound. */
  while (n < FLOOD_MAX && ((n & 4095) != 0 || atomic_load_explicit(&flood_handled,
                                                                   memory_order_relaxed) < FLOOD_SEEN)) {
    if (ax_send(sink, MSG_DATA, &n, sizeof n) != 0) /* no ck_assert: it writes a file each */
      break;
    n++;
  }
  atomic_store(&flood_sent, n);
  return AX_STOP;
}

/* The overflow list moved at a send fills the ring exactly and empties
 * the list: the core must still be woken (a reviewer found it asleep for
 * good with 256 messages in its ring).  Core 1 is held while core 0 sends
 * 512 (a ring and a list of 256 each), then sleeps after taking the ring;
 * core 0's next send moves the list. */
static atomic_int lw_release;
static atomic_ullong lw_got;
static ax_ref_t lw_sink;

static int lw_blocker(ax_actor_t *self, const ax_msg_t *m) {
  (void)self;
  (void)m;
  while (!atomic_load(&lw_release))
    ;
  return 0;
}

static int lw_count(ax_actor_t *self, const ax_msg_t *m) {
  (void)self;
  if (m->type == MSG_DATA)
    atomic_fetch_add(&lw_got, 1);
  return 0;
}

static int lw_source(ax_actor_t *self, const ax_msg_t *m) {
  (void)self;
  if (m->type != MSG_GO)
    return 0;
  uint64_t n = 0;
  for (int i = 0; i < 2 * (int)AX_TEST_RING; i++, n++)
    if (ax_send(lw_sink, MSG_DATA, &n, sizeof n) != 0)
      return -EIO;
  atomic_store(&lw_release, 1);
  /* Core 1 takes the ring's 256, handles them and goes to sleep. */
  TEST_WAIT_UNTIL(atomic_load(&lw_got) == AX_TEST_RING, 10000);
  test_sleep_ms(100);
  return ax_send(lw_sink, MSG_DATA, &n, sizeof n) == 0 ? 0 : -EIO;
}

START_TEST(test_stress_overflow_wakes) {
  atomic_store(&lw_release, 0);
  atomic_store(&lw_got, 0);
  ax_rt_t *rt = test_rt_new(2, AX_RT_KEEP_ALIVE | AX_RT_NO_SIGNALS);
  ax_ref_t blocker = test_spawn(rt, lw_blocker, NULL, AX_PLACE_CORE, 1, NULL, NULL);
  lw_sink = test_spawn(rt, lw_count, NULL, AX_PLACE_CORE, 1, NULL, NULL);
  ax_ref_t source = test_spawn(rt, lw_source, NULL, AX_PLACE_CORE, 0, NULL, NULL);
  test_rt_start(rt);
  test_send(blocker, MSG_GO, NULL, 0);
  test_sleep_ms(20);
  test_send(source, MSG_GO, NULL, 0);
  TEST_WAIT_UNTIL(atomic_load(&lw_got) == 2 * AX_TEST_RING + 1, 10000);
  test_rt_stop_join_free(rt);
}
END_TEST

/* Threads that are no core flood an actor that takes about a microsecond
 * per message: its core is alive but its rounds last longer than the
 * 200 us after which a thread calls a core stuck and stops waiting.  The
 * threads judged by what the core took from their own queue, which the
 * credit held back, and appended 256 per 200 us each (1.3 million queued
 * after a second with four threads); they now wait while the core handles
 * anything at all. */
static atomic_ullong sp_got;
static ax_ref_t sp_sink;
static int sp_spin; /* the actor's work per message */

static int sp_slow(ax_actor_t *self, const ax_msg_t *m) {
  (void)self;
  if (m->type == MSG_DATA) {
    for (volatile int i = 0; i < sp_spin; i++) {
    }
    atomic_fetch_add_explicit(&sp_got, 1, memory_order_relaxed);
  }
  return 0;
}

static void *sp_tx(void *arg) {
  uint64_t *sent = arg, x = 0;
  int64_t end = ax_now() + 300 * AX_NSEC_PER_MSEC;
  while (ax_now() < end)
    for (int i = 0; i < 256; i++, x++)
      if (ax_send(sp_sink, MSG_DATA, &x, sizeof x) != 0)
        return NULL;
  *sent = x;
  return NULL;
}

/* spin: the actor's work per message; batch: the runtime's. */
static void sp_run(int spin, unsigned batch) {
  atomic_store(&sp_got, 0);
  sp_spin = spin;
  ax_rt_opts_t o = {.cores = 1, .batch = batch, .flags = AX_RT_KEEP_ALIVE | AX_RT_NO_SIGNALS};
  ax_rt_t *rt;
  ck_assert_int_eq(ax_rt_new(&o, &rt), 0);
  sp_sink = test_spawn(rt, sp_slow, NULL, AX_PLACE_CORE, 0, NULL, NULL);
  test_rt_start(rt);
  enum { THREADS = 4 };
  pthread_t t[THREADS];
  uint64_t sent[THREADS] = {0};
  for (int i = 0; i < THREADS; i++)
    ck_assert_int_eq(pthread_create(&t[i], NULL, sp_tx, &sent[i]), 0);
  uint64_t total = 0;
  for (int i = 0; i < THREADS; i++) {
    ck_assert_int_eq(pthread_join(t[i], NULL), 0);
    total += sent[i];
  }
  uint64_t waiting = total - atomic_load(&sp_got);
  ck_assert_msg(waiting < 50000, "spin %d, batch %u: %llu of %llu messages still waited",
                spin, batch, (unsigned long long)waiting, (unsigned long long)total);
  TEST_WAIT_UNTIL(atomic_load(&sp_got) == total, 60000);
  test_rt_stop_join_free(rt);
}

/* A fiber that takes its messages with zero-deadline polls while main
 * floods it: main still sends at its pace.  Each poll took the rings
 * whole, so every message the fiber handled pulled hundreds more into its
 * mailbox (a reviewer saw 7.5-12 million queued after 2 s; here 223,520
 * in 0.5 s, and under 1,000 now); a poll now
 * takes what the rings held only once nothing in the mailbox matched. */
static atomic_int fp_quit;
static atomic_llong fp_max_queued;
static atomic_ullong fp_handled;

static int fp_fiber(ax_actor_t *self, void *arg) {
  (void)arg;
  while (!atomic_load(&fp_quit)) {
    const ax_msg_t *m;
    int rc = ax_recv_type(self, MSG_DATA, 0, &m);
    if (rc == -ETIMEDOUT)
      continue;
    if (rc != 0)
      return rc;
    int64_t q = ax_mailbox_len(self);
    if (q > atomic_load(&fp_max_queued))
      atomic_store(&fp_max_queued, q);
    int64_t until = ax_now() + 2000; /* the work of a message: 2 us */
    while (ax_now() < until)
      ;
    atomic_fetch_add_explicit(&fp_handled, 1, memory_order_relaxed);
  }
  return 0;
}

START_TEST(test_stress_foreign_fiber_poll) {
  atomic_store(&fp_quit, 0);
  atomic_store(&fp_max_queued, 0);
  atomic_store(&fp_handled, 0);
  ax_rt_t *rt = test_rt_new(1, AX_RT_KEEP_ALIVE | AX_RT_NO_SIGNALS);
  ax_ref_t to;
  ck_assert_int_eq(ax_spawn_fiber(rt, fp_fiber, NULL, NULL, &to), 0);
  test_rt_start(rt);
  int64_t end = ax_now() + 500 * AX_NSEC_PER_MSEC;
  uint64_t x = 0;
  while (ax_now() < end)
    for (int i = 0; i < 64; i++, x++)
      ck_assert_int_eq(ax_send(to, MSG_DATA, &x, sizeof x), 0);
  atomic_store(&fp_quit, 1);
  ck_assert_int_eq(ax_send(to, MSG_DATA, &x, sizeof x), 0); /* ends its last poll */
  long long q = atomic_load(&fp_max_queued);
  ck_assert_msg(q < 50000, "%lld messages queued for the fiber (%llu handled, %llu sent)", q,
                (unsigned long long)atomic_load(&fp_handled), (unsigned long long)x);
  test_rt_stop_join_free(rt);
}
END_TEST

/* One thread floods an actor whose messages take 100 us each (a device
 * actor fed by a polling thread): the core counts its progress every 8
 * messages, 800 us apart, and the thread, which called a core stuck after
 * 200 us without progress, let 256 messages through per 200 us: 1.1
 * million waiting after 2 s (a newcomer's gateway).  It now waits 16 of
 * the core's recent messages' time (ax__core_t.msg_ns). */
static atomic_ullong s100_got;

static int s100_slow(ax_actor_t *self, const ax_msg_t *m) {
  (void)self;
  if (m->type == MSG_DATA) {
    test_spin_ns(100 * 1000);
    atomic_fetch_add_explicit(&s100_got, 1, memory_order_relaxed);
  }
  return 0;
}

START_TEST(test_stress_foreign_paced_slow_messages) {
  atomic_store(&s100_got, 0);
  ax_rt_t *rt = test_rt_new(1, AX_RT_KEEP_ALIVE | AX_RT_NO_SIGNALS);
  ax_ref_t to = test_spawn(rt, s100_slow, NULL, AX_PLACE_CORE, 0, NULL, NULL);
  test_rt_start(rt);
  uint64_t sent = 0;
  int64_t end = ax_now() + 500 * AX_NSEC_PER_MSEC;
  while (ax_now() < end) {
    ck_assert_int_eq(ax_send(to, MSG_DATA, &sent, sizeof sent), 0);
    sent++;
  }
  uint64_t waiting = sent - atomic_load(&s100_got);
  test_rt_stop_join_free(rt);
  /* About 5,000 handled in 0.5 s; the ring, the queue, the mailbox and
   * the first 64 messages' spell before the core has timed any hold
   * about 10,000.  Unpaced: 200,000 and more. */
  ck_assert_msg(waiting < 60000, "%llu of %llu messages waited", (unsigned long long)waiting,
                (unsigned long long)sent);
}
END_TEST

START_TEST(test_stress_foreign_paced_slow_core) {
  /* Sanitizers slow the actor's loop about tenfold: a tenth of it. */
  sp_run((int)test_scaled(1000), 0); /* about 1 us a message: rounds outlast the 200 us */
  /* Not run here: about 10 us a message, where a turn of 64 outlasts the
   * 200 us too (the core's count of handled messages moved only at a
   * turn's end: 0.5 million waiting after 2 s with one thread at 5 us).
   * It failed on c35457b and passes alone, but a loaded machine that
   * deschedules the core for longer than 200 us makes the threads call
   * it stuck all the same (105,320 of 157,184 waiting under ctest -j2). */
  /* batch 1: a round handles 64 messages, and the core took 4,096 of the
   * threads' at each (8 million waiting after 2 s with eight threads). */
  sp_run(0, 1);
}
END_TEST

START_TEST(test_stress_long_turn_flood) {
  atomic_store(&flood_handled, 0);
  atomic_store(&flood_sent, 0);
  ax_rt_t *rt = test_rt_new(2, 0);
  ax_ref_t sink = test_spawn(rt, flood_sink, NULL, AX_PLACE_CORE, 1, NULL, NULL);
  ax_ref_t source = test_spawn(rt, flood_source, NULL, AX_PLACE_CORE, 0, NULL, NULL);
  test_rt_start(rt);
  test_send(source, MSG_GO, &sink, sizeof sink);
  TEST_WAIT_UNTIL(atomic_load(&flood_sent) != 0, 60000);
  uint64_t sent = atomic_load(&flood_sent);
  ck_assert_msg(sent < FLOOD_MAX,
                "core 1 handled %llu of %llu messages sent in one turn of core 0",
                (unsigned long long)atomic_load(&flood_handled), (unsigned long long)sent);
  TEST_WAIT_UNTIL(atomic_load(&flood_handled) == sent, 60000); /* and nothing is lost */
  ck_assert_int_eq(ax_stop(sink, 0), 0);
  test_rt_join_free(rt);
}
END_TEST

static Suite *stress_suite(void) {
  Suite *suite = suite_create("stress");

  TCase *tc = tcase_create("exchange");
  tcase_set_timeout(tc, 300);
  tcase_add_test(tc, test_stress_exchange);
  suite_add_tcase(suite, tc);

  tc = tcase_create("stale");
  tcase_set_timeout(tc, 300);
  tcase_add_test(tc, test_stress_stale_refs);
  tcase_add_test(tc, test_stress_stop_during_storm);
  suite_add_tcase(suite, tc);

  tc = tcase_create("foreign");
  tcase_set_timeout(tc, 300);
  tcase_add_test(tc, test_stress_foreign_senders);
  tcase_add_test(tc, test_stress_foreign_before_start);
  tcase_add_test(tc, test_stress_foreign_paced);
  tcase_add_test(tc, test_stress_foreign_paced_slow_core);
  tcase_add_test(tc, test_stress_foreign_paced_slow_messages);
  tcase_add_test(tc, test_stress_foreign_inbox_paced);
  tcase_add_test(tc, test_stress_foreign_fiber_poll);
  tcase_add_test(tc, test_stress_foreign_thread_after_thread);
  suite_add_tcase(suite, tc);

  tc = tcase_create("flood");
  tcase_set_timeout(tc, 300);
  tcase_add_test(tc, test_stress_long_turn_flood);
  tcase_add_test(tc, test_stress_overflow_wakes);
  suite_add_tcase(suite, tc);

  tc = tcase_create("many");
  tcase_set_timeout(tc, 300);
  tcase_add_test(tc, test_stress_many_actors);
  suite_add_tcase(suite, tc);

  return suite;
}

int main(void) {
  return test_run_suite(stress_suite());
}
