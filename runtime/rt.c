/* The runtime's life cycle: options, core threads, stop, join, free, statistics. */
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/core.h"

#define AX__DEFAULT_BATCH 64u
#define AX__DEFAULT_SPIN_NS (50 * AX_NSEC_PER_USEC)
#define AX__DURATION_MAX (INT64_MAX / 4) /* about 73 years */

/* Runtimes by index, so that a reference (which carries the index) finds
 * its runtime without any global lock: set and cleared with release, read
 * with acquire. */
static _Atomic(ax_rt_t *) runtimes[AX__MAX_RTS];
static _Atomic uint64_t runtime_serial;

ax_rt_t *ax__rt_lookup(unsigned index) {
  return index < AX__MAX_RTS ? atomic_load_explicit(&runtimes[index], memory_order_acquire)
                             : NULL;
}

/* Each thread that is not a core keeps, per runtime index, the epoch record
 * it registered; a destructor releases them when the thread exits. */
typedef struct erec_cache {
  ax_rt_t *rt;
  uint64_t serial;
  ax__erec_t *rec;
} erec_cache_t;

static _Thread_local erec_cache_t erec_cache[AX__MAX_RTS];
static pthread_key_t erec_key;
static pthread_once_t erec_once = PTHREAD_ONCE_INIT;

/* At thread exit: give back every cached record.  The runtimes may be gone
 * already; releasing a record never touches its runtime. */
static void erec_release_all(void *unused) {
  (void)unused;
  for (unsigned i = 0; i < AX__MAX_RTS; i++) {
    erec_cache_t *ce = &erec_cache[i];
    if (ce->rec != NULL)
      ax__epoch_release(ce->rec);
    ce->rec = NULL;
    ce->rt = NULL;
  }
}

static void erec_key_init(void) { pthread_key_create(&erec_key, erec_release_all); }

ax__erec_t *ax__rt_erec(ax_rt_t *rt) {
  ax__core_t *c = ax__tls_core;
  if (c != NULL && c->rt == rt)
    return c->erec;
  erec_cache_t *ce = &erec_cache[rt->index];
  if (ce->rec != NULL && ce->rt == rt && ce->serial == rt->serial)
    return ce->rec;
  if (ce->rec != NULL) {
    ax__epoch_release(ce->rec); /* of a runtime that had this index before */
    ce->rec = NULL;
  }
  pthread_once(&erec_once, erec_key_init);
  ax__erec_t *r = ax__epoch_register(&rt->epoch);
  if (r == NULL)
    return NULL;
  ce->rt = rt;
  ce->serial = rt->serial;
  ce->rec = r;
  pthread_setspecific(erec_key, (void *)1); /* any non-NULL value runs the destructor */
  return r;
}

static unsigned cpu_count(void) {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0) {
    int n = CPU_COUNT(&set);
    if (n > 0)
      return (unsigned)n;
  }
  return 1;
}

/* Frees what ax_rt_new made, in reverse: the features' state, the cores,
 * the runtime's index and tables.  Every feature hook copes with state
 * it never made. */
static void free_parts(ax_rt_t *rt) {
  for (ax__feature_t *f = ax__features; f != NULL; f = f->next)
    if (f->rt_free != NULL)
      f->rt_free(rt);
  if (rt->cores != NULL) {
    for (unsigned i = 0; i < rt->ncores; i++) {
      if (rt->cores[i] == NULL)
        continue;
      for (ax__feature_t *f = ax__features; f != NULL; f = f->next)
        if (f->core_free != NULL)
          f->core_free(rt->cores[i]);
      ax__core_destroy(rt->cores[i]);
    }
    free(rt->cores);
  }
  if (rt->rings != NULL) {
    for (size_t i = 0; i < (size_t)(rt->ncores + AX__FOREIGN_RINGS) * rt->ncores; i++) {
      ax__ring_t *r = atomic_load_explicit(&rt->rings[i], memory_order_relaxed);
      if (r != AX__RING_NONE)
        free(r);
    }
    free(rt->rings);
  }
  if (rt->index < AX__MAX_RTS) /* release: the index is free for reuse */
    atomic_store_explicit(&runtimes[rt->index], NULL, memory_order_release);
  ax__table_destroy(&rt->ports);
  ax__epoch_destroy(&rt->epoch);
  pthread_mutex_destroy(&rt->ready_lock);
  pthread_mutex_destroy(&rt->join_lock);
  pthread_cond_destroy(&rt->ready_cond);
  free(rt);
}

int ax_rt_new(const ax_rt_opts_t *opts, ax_rt_t **out) {
  if (out == NULL)
    return -EINVAL;
  ax_rt_opts_t o = opts != NULL ? *opts : (ax_rt_opts_t){0};
  if (o.cores > AX_MAX_CORES || o.batch > 65536 ||
      (o.flags & ~(unsigned)(AX_RT_NO_PIN | AX_RT_NO_SIGNALS | AX_RT_KEEP_ALIVE)) != 0)
    return -EINVAL;
  if (o.cores == 0) {
    o.cores = cpu_count();
    if (o.cores > AX_MAX_CORES)
      o.cores = AX_MAX_CORES;
  }
  if (o.batch == 0)
    o.batch = AX__DEFAULT_BATCH;
  ax__lazy_init();
  /* Spinning waits for another CPU to hand over work; with one CPU it only
   * steals time from the thread it waits for. */
  if (o.spin_ns == 0)
    o.spin_ns = cpu_count() > 1 ? AX__DEFAULT_SPIN_NS : -1;
  if (o.spill_ns == 0)
    o.spill_ns = AX_PLACE_SPILL_NS;
  /* Durations added to a clock reading (CLOCK_MONOTONIC, below 2^62 for
   * 146 years of uptime) must not overflow: INT64_MAX spun 64 steps, then
   * slept (a reviewer's program; UBSan: signed overflow in idle()). */
  if (o.spin_ns > AX__DURATION_MAX)
    o.spin_ns = AX__DURATION_MAX;
  if (o.spill_ns > AX__DURATION_MAX)
    o.spill_ns = AX__DURATION_MAX;

  ax_rt_t *rt = ax__aligned_alloc(AX__CACHE_LINE, (sizeof *rt + AX__CACHE_LINE - 1) &
                                                  ~(size_t)(AX__CACHE_LINE - 1));
  if (rt == NULL)
    return -ENOMEM;
  memset(rt, 0, sizeof *rt);
  rt->opts = o;
  rt->ncores = o.cores;
  atomic_init(&rt->stopping, 0);
  atomic_init(&rt->live, 0);
  atomic_init(&rt->next_core, 0);
  atomic_init(&rt->nforeign, 0);
  atomic_init(&rt->dead_letters_other, 0);
  pthread_mutex_init(&rt->ready_lock, NULL);
  pthread_mutex_init(&rt->join_lock, NULL);
  pthread_cond_init(&rt->ready_cond, NULL);
  ax__epoch_init(&rt->epoch);
  rt->serial = atomic_fetch_add_explicit(&runtime_serial, 1, memory_order_relaxed) + 1;
  ax__table_init(&rt->ports, (uint32_t)(rt->serial * 2246822519u));

  int rc = -EAGAIN;
  rt->index = AX__MAX_RTS;
  for (unsigned i = 0; i < AX__MAX_RTS; i++) {
    ax_rt_t *none = NULL;
    /* Claims index i; the release half publishes rt->serial to threads
     * that find the runtime through a reference. */
    if (atomic_compare_exchange_strong_explicit(&runtimes[i], &none, rt, memory_order_acq_rel,
                                                memory_order_relaxed)) {
      rt->index = i;
      break;
    }
  }
  if (rt->index == AX__MAX_RTS)
    goto fail;
  rt->cores = ax__calloc(rt->ncores, sizeof *rt->cores);
  rt->rings = ax__calloc((size_t)(rt->ncores + AX__FOREIGN_RINGS) * rt->ncores, sizeof *rt->rings);
  if (rt->cores == NULL || rt->rings == NULL) {
    rc = -ENOMEM;
    goto fail;
  }
  for (unsigned i = 0; i < rt->ncores; i++) {
    rc = ax__core_init(rt, i, &rt->cores[i]);
    if (rc < 0)
      goto fail;
    for (ax__feature_t *f = ax__features; f != NULL && rc == 0; f = f->next)
      if (f->core_init != NULL)
        rc = f->core_init(rt->cores[i]);
    if (rc < 0)
      goto fail;
  }
  for (ax__feature_t *f = ax__features; f != NULL; f = f->next)
    if (f->rt_init != NULL && (rc = f->rt_init(rt)) < 0)
      goto fail;
  pthread_barrier_init(&rt->barrier, NULL, rt->ncores);
  *out = rt;
  return 0;

fail:
  free_parts(rt);
  return rc;
}

/* The CPU a core is pinned to: the index-th CPU of the affinity mask. */
static int nth_cpu(unsigned index) {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) != 0)
    return -1;
  unsigned n = (unsigned)CPU_COUNT(&set);
  if (n == 0)
    return -1;
  index %= n;
  for (int cpu = 0; cpu < CPU_SETSIZE; cpu++)
    if (CPU_ISSET(cpu, &set) && index-- == 0)
      return cpu;
  return -1;
}

static void join_started(ax_rt_t *rt) {
  for (unsigned i = 0; i < rt->ncores; i++)
    if (rt->cores[i]->started) {
      pthread_join(rt->cores[i]->thread, NULL);
      rt->cores[i]->started = false;
    }
}

int ax_rt_start(ax_rt_t *rt) {
  if (rt == NULL || rt->started)
    return -EINVAL;
  /* Core threads block every asynchronous signal (they inherit the mask
   * set here); core 0 reads the runtime's signals (ax__signals_claimed:
   * SIGINT, SIGTERM, SIGHUP, SIGUSR1, ...) through its loop's signalfd.  The calling
   * thread keeps them blocked until ax_rt_join, so that they reach the
   * signalfd instead of their default disposition (which would end the
   * process).  With AX_RT_NO_SIGNALS it gets its own mask back at once. */
  sigset_t all, old;
  sigfillset(&all);
  int sync_signals[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGABRT, SIGSYS};
  for (size_t i = 0; i < sizeof sync_signals / sizeof sync_signals[0]; i++)
    sigdelset(&all, sync_signals[i]);
  pthread_sigmask(SIG_BLOCK, &all, &old);
  rt->caller_mask = old;
  rt->started = true;
  int rc = 0;
  for (unsigned i = 0; i < rt->ncores; i++) {
    ax__core_t *c = rt->cores[i];
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    if (!(rt->opts.flags & AX_RT_NO_PIN)) {
      int cpu = nth_cpu(i);
      if (cpu >= 0) {
        cpu_set_t one;
        CPU_ZERO(&one);
        CPU_SET(cpu, &one);
        pthread_attr_setaffinity_np(&attr, sizeof one, &one);
      }
    }
    int err = pthread_create(&c->thread, &attr, ax__core_main, c);
    pthread_attr_destroy(&attr);
    if (err != 0) {
      rc = -err;
      break;
    }
    c->started = true;
  }
  sigset_t keep = old;
  if (!(rt->opts.flags & AX_RT_NO_SIGNALS)) {
    sigset_t claimed;
    ax__signals_claimed(&claimed);
    sigorset(&keep, &old, &claimed);
  }
  pthread_sigmask(SIG_SETMASK, &keep, NULL);
  if (rc < 0) {
    /* The barrier counts every core: the ones that did start cannot pass
     * it, so shut them down one by one without it. */
    ax_rt_stop(rt);
    pthread_barrier_destroy(&rt->barrier);
    unsigned started = 0;
    for (unsigned i = 0; i < rt->ncores; i++)
      started += rt->cores[i]->started;
    pthread_barrier_init(&rt->barrier, NULL, started > 0 ? started : 1);
    join_started(rt);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    rt->joined = true;
    return rc;
  }
  /* Returns once every core runs (its features started, core 0 reading
   * the signals), so that what the caller does next finds them running. */
  pthread_mutex_lock(&rt->ready_lock);
  while (rt->ready < rt->ncores)
    pthread_cond_wait(&rt->ready_cond, &rt->ready_lock);
  pthread_mutex_unlock(&rt->ready_lock);
  return 0;
}

/* What the dying sent each other (and what other threads sent to a
 * runtime that is not running) waits on the rings, their overflow lists
 * and the inboxes: dropped and counted, each on its core, until dropping
 * sends nothing more.  The core threads have exited: the calling thread
 * consumes their rings. */
static void drop_queued(ax_rt_t *rt) {
  for (bool more = true; more;) {
    more = false;
    for (unsigned i = 0; i < rt->ncores; i++) {
      ax__core_t *c = rt->cores[i];
      ax__tls_core = c;
      if (c->nover > 0) {
        ax__ring_flush(c);
        more = true;
      }
      if (ax__core_drain(c) != 0)
        more = true;
      ax__tls_core = NULL;
    }
  }
}

int ax_rt_join(ax_rt_t *rt) {
  if (rt == NULL || !rt->started)
    return -EINVAL;
  if (ax__tls_core != NULL)
    return -EDEADLK;
  /* A second thread that joins meanwhile waits for the first, then
   * returns 0 with its own signal mask untouched (joining the core threads
   * twice would hang). */
  pthread_mutex_lock(&rt->join_lock);
  if (!rt->joined) {
    join_started(rt);
    /* Messages still on the rings (a core's overflow list waiting for
     * room, more than one drain's worth) are dead letters now, counted
     * before this returns rather than at ax_rt_free. */
    for (unsigned i = 0; i < rt->ncores; i++)
      ax_loop_adopt(rt->cores[i]->loop);
    drop_queued(rt);
    pthread_sigmask(SIG_SETMASK, &rt->caller_mask, NULL);
    rt->joined = true;
  }
  pthread_mutex_unlock(&rt->join_lock);
  return 0;
}

int ax_rt_run(ax_rt_t *rt) {
  int rc = ax_rt_start(rt);
  if (rc < 0)
    return rc;
  /* Acquire: spawns made before this call by this or another thread. */
  if (atomic_load_explicit(&rt->live, memory_order_acquire) == 0 &&
      !(rt->opts.flags & AX_RT_KEEP_ALIVE))
    ax_rt_stop(rt); /* nothing to run */
  return ax_rt_join(rt);
}

void ax_rt_stop(ax_rt_t *rt) {
  if (rt == NULL)
    return;
  /* seq_cst: whatever the stopping thread wrote is visible to cores that
   * see the flag (release), and the store is ordered before the cores'
   * load of `spawning` in their shutdown, against ax__spawn's increment
   * and its load of this flag (either the spawn sees the stop, or the
   * shutdown sees the spawn).  Then every core is woken (a write() each,
   * so this stays async-signal-safe). */
  atomic_store_explicit(&rt->stopping, 1, memory_order_seq_cst);
  for (unsigned i = 0; i < rt->ncores; i++)
    ax_loop_wake(rt->cores[i]->loop);
}

static void die_at_free(void *actor, void *arg) {
  ax__actor_die(arg, actor, AX_REASON_SHUTDOWN);
}

int ax_rt_free(ax_rt_t *rt) {
  if (rt == NULL)
    return -EINVAL;
  if (rt->started && !rt->joined)
    return -EBUSY;
  /* Single-threaded from here: every grace period is over.  Actors still
   * alive (a runtime that never started, spawns that lost the race with
   * the stop) die with AX_REASON_SHUTDOWN, each as if on its own core. */
  for (unsigned i = 0; i < rt->ncores; i++) {
    ax__core_t *c = rt->cores[i];
    ax__tls_core = c;
    ax_loop_adopt(c->loop); /* the core's thread has exited */
    ax__table_each(&c->table, die_at_free, c);
    ax__tls_core = NULL;
  }
  drop_queued(rt);
  for (unsigned i = 0; i < rt->ncores; i++) {
    ax__core_t *c = rt->cores[i];
    ax__tls_core = c;
    ax__reclaim(c, true);
    ax__tls_core = NULL;
  }
  pthread_barrier_destroy(&rt->barrier);
  free_parts(rt);
  /* What the runtime's actors, fibers and messages took from malloc is
   * free now, spread over the arenas of threads that exited: give its
   * pages back (4 x 10^5 fibers spawned by main left 182 MB resident,
   * 3 MB after this). */
  ax__trim_malloc();
  return 0;
}

unsigned ax_rt_cores(const ax_rt_t *rt) { return rt != NULL ? rt->ncores : 0; }

int ax_rt_stats(const ax_rt_t *rt, unsigned core, ax_core_stats_t *out) {
  if (rt == NULL || out == NULL || core >= rt->ncores)
    return -EINVAL;
  const ax__stats_atomic_t *s = &rt->cores[core]->stats;
  out->sent = atomic_load_explicit(&s->sent, memory_order_relaxed);
  out->delivered = atomic_load_explicit(&s->delivered, memory_order_relaxed);
  out->dead_letters = atomic_load_explicit(&s->dead_letters, memory_order_relaxed);
  out->spawned = atomic_load_explicit(&s->spawned, memory_order_relaxed);
  out->actors = atomic_load_explicit(&s->actors, memory_order_relaxed);
  out->wakeups = atomic_load_explicit(&s->wakeups, memory_order_relaxed);
  out->sleeps = atomic_load_explicit(&s->sleeps, memory_order_relaxed);
  out->polls = atomic_load_explicit(&s->polls, memory_order_relaxed);
  out->runq_len = atomic_load_explicit(&s->runq_len, memory_order_relaxed);
  out->turn_max = atomic_load_explicit(&s->turn_max, memory_order_relaxed);
  out->released = atomic_load_explicit(&s->released, memory_order_relaxed);
  out->barriers = atomic_load_explicit(&s->barriers, memory_order_relaxed);
  out->accept_errors = 0;
  for (ax__feature_t *f = ax__features; f != NULL; f = f->next)
    if (f->stats != NULL)
      f->stats(rt->cores[core], out);
  return 0;
}

int ax_rt_stats_total(const ax_rt_t *rt, ax_core_stats_t *out) {
  if (rt == NULL || out == NULL)
    return -EINVAL;
  memset(out, 0, sizeof *out);
  for (unsigned i = 0; i < rt->ncores; i++) {
    ax_core_stats_t s;
    ax_rt_stats(rt, i, &s);
    out->sent += s.sent;
    out->delivered += s.delivered;
    out->dead_letters += s.dead_letters;
    out->spawned += s.spawned;
    out->actors += s.actors;
    out->wakeups += s.wakeups;
    out->sleeps += s.sleeps;
    out->polls += s.polls;
    out->runq_len += s.runq_len;
    out->accept_errors += s.accept_errors;
    out->released += s.released;
    out->barriers += s.barriers;
    if (s.turn_max > out->turn_max)
      out->turn_max = s.turn_max;
  }
  out->dead_letters += atomic_load_explicit(&((ax_rt_t *)rt)->dead_letters_other,
                                            memory_order_relaxed);
  return 0;
}
