/* Validates runtime/mpscq.h under many threads: exactly-once FIFO delivery, one wake per idle period from the empty mark, and take() with its own stub. */
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "runtime/mpscq.h"
#include "validate.h"

/* More producers than the CPUs of a small machine: a producer preempted
 * between its exchange and its link is the case the consumer must live
 * with. */
enum { PRODUCERS = 6 };

#define CHECK_KEY 0x5a5a5a5a5a5a5a5aull

/* A queued item: the node first, then a payload the producer writes with
 * plain stores before the push, which the consumer reads after the pop. */
typedef struct item {
  ax__mpscq_node_t node;
  uint32_t producer;
  uint64_t seq;   /* 0, 1, 2... per producer */
  uint64_t check; /* seq ^ CHECK_KEY: a torn or unpublished payload shows */
} item_t;

static item_t *item_of(ax__mpscq_node_t *n) {
  return AX_CONTAINER_OF(n, item_t, node);
}

/* Checks the payload of an item the consumer took and advances that
 * producer's expected sequence number. */
static void check_item(const item_t *it, uint64_t next[PRODUCERS]) {
  VALIDATE_CHECK(it->producer < PRODUCERS, "item from producer %u", it->producer);
  VALIDATE_CHECK(it->check == (it->seq ^ CHECK_KEY),
                 "producer %u item %llu: payload not visible to the consumer", it->producer,
                 (unsigned long long)it->seq);
  VALIDATE_CHECK(it->seq == next[it->producer],
                 "producer %u: got item %llu, expected %llu (lost, repeated or reordered)",
                 it->producer, (unsigned long long)it->seq, (unsigned long long)next[it->producer]);
  next[it->producer]++;
}

/* ------------------------------------------------------------------------ */
/* FIFO: every item arrives exactly once, in its producer's order.          */

typedef struct fifo {
  ax__mpscq_t q;
  ax__mpscq_node_t stub;
  uint64_t per_producer;
  item_t *items[PRODUCERS];
} fifo_t;

typedef struct producer_arg {
  void *shared;
  uint32_t id;
} producer_arg_t;

static void *fifo_producer(void *arg) {
  producer_arg_t *pa = arg;
  fifo_t *f = pa->shared;
  validate_rng_t rng = validate_rng_new(pa->id);
  for (uint64_t i = 0; i < f->per_producer; i++) {
    item_t *it = &f->items[pa->id][i];
    it->producer = pa->id;
    it->seq = i;
    it->check = i ^ CHECK_KEY;
    ax__mpscq_push(&f->q, &it->node);
    if (validate_rng_below(&rng, 512) == 0)
      sched_yield(); /* vary where producers interleave */
  }
  return NULL;
}

START_TEST(test_mpscq_fifo_exactly_once) {
  fifo_t *f = calloc(1, sizeof *f);
  ck_assert_ptr_nonnull(f);
  f->per_producer = test_scaled(200000);
  for (uint32_t p = 0; p < PRODUCERS; p++) {
    f->items[p] = calloc(f->per_producer, sizeof *f->items[p]);
    ck_assert_ptr_nonnull(f->items[p]);
  }
  ax__mpscq_init(&f->q, &f->stub, false);

  pthread_t threads[PRODUCERS];
  producer_arg_t args[PRODUCERS];
  for (uint32_t p = 0; p < PRODUCERS; p++) {
    args[p] = (producer_arg_t){f, p};
    validate_thread_start(&threads[p], fifo_producer, &args[p]);
  }

  /* The consumer: this thread. */
  uint64_t next[PRODUCERS] = {0};
  uint64_t total = f->per_producer * PRODUCERS, received = 0, spins = 0;
  ax__mpscq_node_t *stub = &f->stub; /* the node the queue holds now */
  int64_t stalled_since = ax_now();
  while (received < total) {
    ax__mpscq_node_t *old = NULL;
    ax__mpscq_node_t *n = ax__mpscq_pop(&f->q, &old);
    if (n == NULL) {
      validate_backoff(&spins);
      if ((spins & 1023) == 0)
        VALIDATE_CHECK(ax_now() - stalled_since < VALIDATE_STALL_NS,
                       "no item for 10 s with %llu of %llu received", (unsigned long long)received,
                       (unsigned long long)total);
      continue;
    }
    stalled_since = ax_now();
    VALIDATE_CHECK(old == stub, "pop handed back a node that was not the stub");
    stub = n;
    check_item(item_of(n), next);
    received++;
  }
  for (uint32_t p = 0; p < PRODUCERS; p++)
    validate_thread_join(threads[p]);

  /* Everything pushed was taken: nothing more, nothing pending. */
  ax__mpscq_node_t *old = NULL;
  ck_assert_ptr_null(ax__mpscq_pop(&f->q, &old));
  ck_assert(!ax__mpscq_pending(&f->q));
  for (uint32_t p = 0; p < PRODUCERS; p++) {
    ck_assert_uint_eq(next[p], f->per_producer);
    free(f->items[p]);
  }
  free(f);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* The empty mark, step by step on one thread.                              */

START_TEST(test_mpscq_mark_sequence) {
  ax__mpscq_t q;
  ax__mpscq_node_t stub, *old = NULL;
  item_t a, b, c;
  ax__mpscq_init(&q, &stub, true);
  ck_assert(ax__mpscq_marked(&q));
  ck_assert(!ax__mpscq_pending(&q));
  ck_assert(ax__mpscq_push(&q, &a.node)); /* turned the idle queue busy: wake */
  ck_assert(!ax__mpscq_marked(&q));
  ck_assert(!ax__mpscq_push(&q, &b.node)); /* already scheduled */
  ck_assert(ax__mpscq_pending(&q));
  ck_assert_ptr_eq(ax__mpscq_last(&q), &b.node);
  ck_assert_ptr_eq(ax__mpscq_pop(&q, &old), &a.node);
  ck_assert_ptr_eq(old, &stub);
  ck_assert_ptr_eq(ax__mpscq_pop(&q, &old), &b.node);
  ck_assert_ptr_eq(old, &a.node);
  ck_assert_ptr_null(ax__mpscq_pop(&q, &old));
  ck_assert(!ax__mpscq_pending(&q));
  /* A push between the empty pop and the mark: the mark must refuse, or
   * c would sit in an idle queue with nobody told to consume it. */
  ck_assert(!ax__mpscq_push(&q, &c.node));
  ck_assert(!ax__mpscq_mark_empty(&q));
  ck_assert(!ax__mpscq_marked(&q));
  ck_assert_ptr_eq(ax__mpscq_pop(&q, &old), &c.node);
  ck_assert_ptr_eq(old, &b.node);
  ck_assert_ptr_null(ax__mpscq_pop(&q, &old));
  ck_assert(ax__mpscq_mark_empty(&q));
  ck_assert(ax__mpscq_marked(&q));
  ck_assert(!ax__mpscq_pending(&q));
  /* The next push after a mark wakes again (a, handed back above, is free). */
  ck_assert(ax__mpscq_push(&q, &a.node));
  ck_assert_ptr_eq(ax__mpscq_pop(&q, &old), &a.node);
  ck_assert_ptr_eq(old, &c.node);
  ck_assert(ax__mpscq_mark_empty(&q));
}
END_TEST

/* ------------------------------------------------------------------------ */
/* The empty mark under threads: the consumer runs only when woken by the   */
/* one producer whose push returned true, and nothing is ever stranded.     */
/* Producers push in rounds; between rounds they stop, and one of them      */
/* checks that the consumer took everything and went idle.                  */

enum { ROUND_MAX = 8 }; /* items a producer pushes per round, at most */

typedef struct marked {
  ax__mpscq_t q;
  ax__mpscq_node_t stub;
  uint64_t rounds;
  item_t *items[PRODUCERS]; /* rounds * ROUND_MAX each */
  pthread_barrier_t barrier; /* producers only */
  sem_t wake; /* posted by the producer whose push returned true */
  /* 1 from a wake until the consumer marks the queue empty again.  Only
   * the producer that got true sets it, and it must find it 0. */
  _Atomic int scheduled;
  _Atomic int idle;          /* the consumer's last mark succeeded */
  _Atomic uint64_t wakes;    /* pushes that returned true */
  _Atomic uint64_t pushed;   /* pushes done, all producers together */
  _Atomic uint64_t received; /* items the consumer took */
  _Atomic int done;          /* the producers are finished */
  uint64_t marks; /* successful marks, the initial one included (consumer) */
  uint64_t next[PRODUCERS]; /* the consumer's expected sequence numbers */
} marked_t;

/* Between rounds: waits until the consumer took everything pushed and
 * went idle.  Fails if it does not: items stranded in an idle queue. */
static void marked_check_round(marked_t *m, uint64_t round) {
  int64_t deadline = ax_now() + VALIDATE_STALL_NS;
  /* Relaxed: every producer added its count before the barrier, which
   * orders those additions before this load. */
  uint64_t pushed = atomic_load_explicit(&m->pushed, memory_order_relaxed);
  for (;;) {
    /* Acquire, both: pair with the consumer's release stores, so the
     * next round starts after the consumer's mark. */
    uint64_t received = atomic_load_explicit(&m->received, memory_order_acquire);
    int idle = atomic_load_explicit(&m->idle, memory_order_acquire);
    if (received == pushed && idle)
      return;
    VALIDATE_CHECK(ax_now() < deadline,
                   "round %llu: %llu of %llu items taken, consumer %s after 10 s: %s",
                   (unsigned long long)round, (unsigned long long)received,
                   (unsigned long long)pushed, idle ? "idle" : "busy",
                   idle ? "items stranded (no push returned true)" : "it never went idle");
    sched_yield();
  }
}

static void *marked_producer(void *arg) {
  producer_arg_t *pa = arg;
  marked_t *m = pa->shared;
  validate_rng_t rng = validate_rng_new(pa->id + 100);
  uint64_t i = 0;
  for (uint64_t round = 0; round < m->rounds; round++) {
    uint32_t burst = 1 + validate_rng_below(&rng, ROUND_MAX);
    for (uint32_t b = 0; b < burst; b++, i++) {
      item_t *it = &m->items[pa->id][i];
      it->producer = pa->id;
      it->seq = i;
      it->check = i ^ CHECK_KEY;
      if (ax__mpscq_push(&m->q, &it->node)) {
        /* acq_rel: acquire pairs with the consumer's store of 0 (ordered
         * before its mark by the mark's release, which this producer's
         * exchange of the head acquired); release hands the 1 to the
         * consumer with the semaphore below.  Finding 1 means a second
         * push returned true in one idle period. */
        int was = atomic_exchange_explicit(&m->scheduled, 1, memory_order_acq_rel);
        VALIDATE_CHECK(was == 0, "two pushes returned true for one idle period");
        /* Relaxed: a counter read after every thread is joined. */
        atomic_fetch_add_explicit(&m->wakes, 1, memory_order_relaxed);
        VALIDATE_CHECK(sem_post(&m->wake) == 0, "sem_post: %s", strerror(errno));
      }
      /* A short random pause: the consumer runs dry and marks the queue
       * empty in the middle of a round too. */
      for (volatile uint32_t spin = validate_rng_below(&rng, 400); spin > 0; spin--) {
      }
    }
    /* Relaxed: the barrier orders it before the check. */
    atomic_fetch_add_explicit(&m->pushed, burst, memory_order_relaxed);
    int rc = pthread_barrier_wait(&m->barrier);
    VALIDATE_CHECK(rc == 0 || rc == PTHREAD_BARRIER_SERIAL_THREAD, "pthread_barrier_wait: %d", rc);
    if (rc == PTHREAD_BARRIER_SERIAL_THREAD)
      marked_check_round(m, round);
    rc = pthread_barrier_wait(&m->barrier);
    VALIDATE_CHECK(rc == 0 || rc == PTHREAD_BARRIER_SERIAL_THREAD, "pthread_barrier_wait: %d", rc);
  }
  return NULL;
}

/* Waits for a wake; returns false when the producers are done and none
 * will come. */
static bool marked_wait(marked_t *m) {
  for (;;) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += 20 * AX_NSEC_PER_MSEC;
    if (ts.tv_nsec >= AX_NSEC_PER_SEC) {
      ts.tv_sec++;
      ts.tv_nsec -= AX_NSEC_PER_SEC;
    }
    if (sem_timedwait(&m->wake, &ts) == 0)
      return true;
    VALIDATE_CHECK(errno == ETIMEDOUT || errno == EINTR, "sem_timedwait: %s", strerror(errno));
    /* Acquire pairs with the test thread's release after joining the
     * producers: every post they made is visible to sem_trywait. */
    if (atomic_load_explicit(&m->done, memory_order_acquire))
      return sem_trywait(&m->wake) == 0;
  }
}

static void *marked_consumer(void *arg) {
  marked_t *m = arg;
  uint64_t spins = 0, received = 0;
  while (marked_wait(m)) {
    /* Relaxed: the wake came through the semaphore, which orders the
     * producer's exchange before this load. */
    VALIDATE_CHECK(atomic_load_explicit(&m->scheduled, memory_order_relaxed) == 1,
                   "consumer woken without a push that returned true");
    /* Relaxed: read by the round check only while producers wait, after
     * a later release store of 1. */
    atomic_store_explicit(&m->idle, 0, memory_order_relaxed);
    for (;;) {
      ax__mpscq_node_t *old = NULL;
      ax__mpscq_node_t *n = ax__mpscq_pop(&m->q, &old);
      if (n != NULL) {
        check_item(item_of(n), m->next);
        /* Release: the round check that sees the count sees this item
         * checked. */
        atomic_store_explicit(&m->received, ++received, memory_order_release);
        continue;
      }
      /* Relaxed: the mark's release below orders this store before the
       * exchange of the producer that finds the mark. */
      atomic_store_explicit(&m->scheduled, 0, memory_order_relaxed);
      if (ax__mpscq_mark_empty(&m->q)) {
        m->marks++;
        /* Release: the round check that sees it sees the mark made. */
        atomic_store_explicit(&m->idle, 1, memory_order_release);
        break; /* idle until a push returns true */
      }
      /* A push is under way: keep the turn.  No producer can have seen a
       * mark since the one that woke us, so none races with this store
       * (relaxed: only this thread touches the flag until the next mark). */
      atomic_store_explicit(&m->scheduled, 1, memory_order_relaxed);
      validate_backoff(&spins);
    }
  }
  return NULL;
}

START_TEST(test_mpscq_mark_wakes_once) {
  marked_t *m = calloc(1, sizeof *m);
  ck_assert_ptr_nonnull(m);
  m->rounds = test_scaled(20000);
  for (uint32_t p = 0; p < PRODUCERS; p++) {
    m->items[p] = calloc(m->rounds * ROUND_MAX, sizeof *m->items[p]);
    ck_assert_ptr_nonnull(m->items[p]);
  }
  ck_assert_int_eq(sem_init(&m->wake, 0, 0), 0);
  ck_assert_int_eq(pthread_barrier_init(&m->barrier, NULL, PRODUCERS), 0);
  ax__mpscq_init(&m->q, &m->stub, true); /* idle: the first push wakes */
  m->marks = 1;
  atomic_init(&m->scheduled, 0);
  atomic_init(&m->idle, 1);

  pthread_t consumer, threads[PRODUCERS];
  producer_arg_t args[PRODUCERS];
  validate_thread_start(&consumer, marked_consumer, m);
  for (uint32_t p = 0; p < PRODUCERS; p++) {
    args[p] = (producer_arg_t){m, p};
    validate_thread_start(&threads[p], marked_producer, &args[p]);
  }
  for (uint32_t p = 0; p < PRODUCERS; p++)
    validate_thread_join(threads[p]);
  /* Release: the producers' posts (joined above) happen before the
   * consumer's acquire of the flag. */
  atomic_store_explicit(&m->done, 1, memory_order_release);
  validate_thread_join(consumer);

  /* Every item arrived once, in order, and the consumer ended idle:
   * marked, nothing pending, no wake left over.  Every mark but the last
   * was answered by exactly one wake, and every round began with one. */
  /* Relaxed, here and below: every thread that wrote them is joined. */
  uint64_t pushed = atomic_load_explicit(&m->pushed, memory_order_relaxed);
  ck_assert_uint_eq(atomic_load_explicit(&m->received, memory_order_relaxed), pushed);
  uint64_t sum = 0;
  for (uint32_t p = 0; p < PRODUCERS; p++)
    sum += m->next[p];
  ck_assert_uint_eq(sum, pushed);
  ck_assert(ax__mpscq_marked(&m->q));
  ck_assert(!ax__mpscq_pending(&m->q));
  int left = -1;
  ck_assert_int_eq(sem_getvalue(&m->wake, &left), 0);
  ck_assert_int_eq(left, 0);
  uint64_t wakes = atomic_load_explicit(&m->wakes, memory_order_relaxed);
  ck_assert_msg(wakes + 1 == m->marks, "%llu wakes for %llu idle periods",
                (unsigned long long)wakes, (unsigned long long)m->marks);
  ck_assert_uint_ge(wakes, m->rounds);
  pthread_barrier_destroy(&m->barrier);
  sem_destroy(&m->wake);
  for (uint32_t p = 0; p < PRODUCERS; p++)
    free(m->items[p]);
  free(m);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* take(): a queue that keeps its own stub, as a core's inject queue does.  */
/* A node is free the moment it is taken, and is pushed again at once,      */
/* by the producers or by the consumer itself.                              */

enum { JOBS = 5 }; /* few: the queue often runs down to its stub */

/* A node that is in the queue at most once at a time, like an actor on the
 * inject queue: whoever flips queued from 0 to 1 pushes it. */
typedef struct job {
  ax__mpscq_node_t link;
  _Atomic int queued;
  uint64_t pushes; /* written by whoever owns the queued flag */
  uint64_t takes;  /* consumer only */
} job_t;

typedef struct inject {
  ax__mpscq_t q;
  ax__mpscq_node_t stub; /* the queue's own, re-inserted by take */
  job_t jobs[JOBS];
  uint64_t per_producer; /* successful pushes per producer */
  _Atomic uint32_t producers_done;
} inject_t;

static void *inject_producer(void *arg) {
  producer_arg_t *pa = arg;
  inject_t *in = pa->shared;
  validate_rng_t rng = validate_rng_new(pa->id + 200);
  uint64_t done = 0, spins = 0;
  while (done < in->per_producer) {
    job_t *j = &in->jobs[validate_rng_below(&rng, JOBS)];
    int idle = 0;
    /* Acquire pairs with the consumer's release of the flag: its last read
     * of j->pushes happens before this thread writes it. */
    if (!atomic_compare_exchange_strong_explicit(&j->queued, &idle, 1, memory_order_acquire,
                                                 memory_order_relaxed)) {
      validate_backoff(&spins);
      continue;
    }
    j->pushes++;
    ax__mpscq_push(&in->q, &j->link);
    done++;
  }
  /* Release: this producer's pushes happen before the consumer's acquire. */
  atomic_fetch_add_explicit(&in->producers_done, 1, memory_order_release);
  return NULL;
}

START_TEST(test_mpscq_take_repush) {
  inject_t *in = calloc(1, sizeof *in);
  ck_assert_ptr_nonnull(in);
  in->per_producer = test_scaled(100000);
  ax__mpscq_init(&in->q, &in->stub, false);
  for (unsigned i = 0; i < JOBS; i++)
    atomic_init(&in->jobs[i].queued, 0);

  pthread_t threads[PRODUCERS];
  producer_arg_t args[PRODUCERS];
  for (uint32_t p = 0; p < PRODUCERS; p++) {
    args[p] = (producer_arg_t){in, p};
    validate_thread_start(&threads[p], inject_producer, &args[p]);
  }

  /* The consumer: this thread.  Every third job it takes it pushes again
   * at once (an actor with more work goes back on the queue). */
  uint64_t taken = 0, repushed = 0, spins = 0;
  uint64_t expected = in->per_producer * PRODUCERS;
  int64_t stalled_since = ax_now();
  for (;;) {
    ax__mpscq_node_t *n = ax__mpscq_take(&in->q, &in->stub);
    if (n == NULL) {
      /* Acquire pairs with the producers' release of the count. */
      if (atomic_load_explicit(&in->producers_done, memory_order_acquire) == PRODUCERS &&
          taken == expected + repushed)
        break;
      validate_backoff(&spins);
      if ((spins & 1023) == 0)
        VALIDATE_CHECK(ax_now() - stalled_since < VALIDATE_STALL_NS,
                       "no job for 10 s with %llu of %llu taken (lost)", (unsigned long long)taken,
                       (unsigned long long)(expected + repushed));
      continue;
    }
    stalled_since = ax_now();
    VALIDATE_CHECK(n != &in->stub, "take returned the queue's own stub");
    job_t *j = AX_CONTAINER_OF(n, job_t, link);
    /* Relaxed: only the consumer changes a queued flag from 1. */
    VALIDATE_CHECK(atomic_load_explicit(&j->queued, memory_order_relaxed) == 1,
                   "job %d taken while not queued (delivered twice)", (int)(j - in->jobs));
    j->takes++;
    VALIDATE_CHECK(j->takes == j->pushes, "job %d: take %llu after %llu pushes (lost or repeated)",
                   (int)(j - in->jobs), (unsigned long long)j->takes,
                   (unsigned long long)j->pushes);
    taken++;
    if (taken % 3 == 0) {
      j->pushes++; /* still owned: the flag stays 1 */
      ax__mpscq_push(&in->q, &j->link);
      repushed++;
    } else {
      /* Release pairs with a producer's acquire CAS: the reads of
       * j->pushes above happen before it writes it. */
      atomic_store_explicit(&j->queued, 0, memory_order_release);
    }
  }
  for (uint32_t p = 0; p < PRODUCERS; p++)
    validate_thread_join(threads[p]);

  ck_assert_ptr_null(ax__mpscq_take(&in->q, &in->stub));
  for (unsigned i = 0; i < JOBS; i++) {
    ck_assert_uint_eq(in->jobs[i].takes, in->jobs[i].pushes);
    /* Relaxed: every producer is joined. */
    ck_assert_int_eq(atomic_load_explicit(&in->jobs[i].queued, memory_order_relaxed), 0);
  }
  free(in);
}
END_TEST

static Suite *mpscq_suite(void) {
  Suite *suite = suite_create("validate_mpscq");
  TCase *tc = tcase_create("fifo");
  tcase_set_timeout(tc, 300);
  tcase_add_test(tc, test_mpscq_fifo_exactly_once);
  suite_add_tcase(suite, tc);
  tc = tcase_create("mark");
  tcase_set_timeout(tc, 300);
  tcase_add_test(tc, test_mpscq_mark_sequence);
  tcase_add_test(tc, test_mpscq_mark_wakes_once);
  suite_add_tcase(suite, tc);
  tc = tcase_create("take");
  tcase_set_timeout(tc, 300);
  tcase_add_test(tc, test_mpscq_take_repush);
  suite_add_tcase(suite, tc);
  return suite;
}

int main(void) {
  return test_run_suite(mpscq_suite());
}
