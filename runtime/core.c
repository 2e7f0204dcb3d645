/* A core: its thread, the scheduler of its actors, idling and the wake protocol, shutdown. */
#include <assert.h>
#include <errno.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/core.h"
#include "runtime/coro.h"

/* While actors are runnable, fds and timers are polled at least this often. */
#define AX__POLL_INTERVAL_NS (50 * AX_NSEC_PER_USEC)
/* How often an idle core that serves no fd polls its loop while it spins
 * (idle()); a due timer is run at once regardless. */
#define AX__IDLE_POLL_NS (1000 * AX_NSEC_PER_USEC)
/* How soon an idle core retries a grace period another thread holds up. */
#define AX__RECLAIM_RETRY_NS (1 * AX_NSEC_PER_MSEC)
/* An idle core whose pools hold at least AX__RECHECK_BYTES in spans, and
 * have no empty span due to go back, wakes after AX__RECHECK_MIN_NS to
 * take what other threads freed meanwhile (their frees wake nobody),
 * doubling up to AX__RECHECK_MAX_NS while nothing changes.  A port's
 * thread that drained 500,000 messages of an actor asleep on its core left
 * 133 MB resident until something woke that core (a newcomer). */
#define AX__RECHECK_BYTES ((size_t)4 << 20)
#define AX__RECHECK_MIN_NS (250 * AX_NSEC_PER_MSEC)
#define AX__RECHECK_MAX_NS (16 * AX_NSEC_PER_SEC)
/* Fd events a core takes per poll.  The actors handle what one poll read
 * before the next poll, so a small batch keeps those bytes in the caches
 * until they are handled and written back.  Measured with bench_tcp -n 1
 * (server CPU per round trip against raw epoll, 1000 connections): 256
 * events 1.29x at 16 KiB; 32: 1.20x; 16: 1.14x; 8: 1.19x, and 64 B
 * messages got dearer (1.04x to 1.14x).  Fds not taken stay ready. */
#define AX__CORE_EVENTS 16u
/* Actor turns at most in a round (between two looks at the inbox and the
 * fds); within one, the messages handled between two looks at the clock. */
#define AX__ROUND_TURNS 64u

_Thread_local ax__core_t *ax__tls_core __attribute__((tls_model("initial-exec")));

/* glibc's malloc, when it is the process's malloc: weak, so that a libc
 * without it links and trims nothing. */
extern void *__libc_malloc(size_t n) __attribute__((weak));

/* Gives glibc's free heap pages back to the kernel, only where glibc's
 * malloc is the one the process uses.  Under another one (a sanitizer's,
 * jemalloc or mimalloc preloaded or linked in) glibc's heap holds nothing,
 * and glibc sets that heap up inside the first malloc_trim: two cores making
 * that first call at once both attach to its main arena, and the second of
 * them to exit aborts the process ("a->attached_threads > 0", glibc 2.36). */
void ax__trim_malloc(void) {
  /* Read through a volatile: the compiler may assume two functions never
   * share an address and fold the comparison away. */
  void *(*volatile process_malloc)(size_t) = malloc;
  if (__libc_malloc == NULL || process_malloc != __libc_malloc)
    return;
  /* malloc_trim gives back the free pages inside free chunks, but not the
   * top of a thread's arena, which is where a burst's memory ends up once
   * freed (its small chunks merge into it): glibc shrinks that top only in
   * a free of 64 KiB or more, after merging the fast chunks.  So this
   * thread (a core: its arena) frees one such block first, below the
   * mmap threshold (128 KiB at least).  10,000 sessions opened and closed
   * left 2.7 MiB in each core's arena for good (a newcomer's closed_rss:
   * 8.5 MB against 2.2 MB before them). */
  void *volatile nudge = malloc(96 * 1024);
  free(nudge);
  malloc_trim(0);
}


/* ------------------------------------------------------------------------ */
/* The run queue: owner only, FIFO through the actors' rq_next.              */

static ax_actor_t *runq_pop(ax__core_t *c) {
  ax_actor_t *a = c->runq_head;
  if (a == NULL)
    return NULL;
  c->runq_head = a->rq_next;
  if (c->runq_head == NULL)
    c->runq_tail = NULL;
  c->runq_len--;
  return a;
}

/* ------------------------------------------------------------------------ */
/* Running actors.                                                           */

/* The runtime's own kinds: INIT runs the init hook, CALL a function on the
 * receiver's core (its drop runs it with no actor).  STOP is handled by
 * handle() itself.  Features add theirs (ax__kind_register). */
static int init_handle(ax_actor_t *a, ax__msg_t *m) {
  ax_init_t init;
  memcpy(&init, &m->aux, sizeof init);
  ax__invoke_init(a, init);
  return 0;
}

static int call_handle(ax_actor_t *a, ax__msg_t *m) {
  ax__call_t *call = (ax__call_t *)(uintptr_t)m->aux;
  call->fn(call, a);
  return 0;
}

static bool call_drop(ax_ref_t self, int reason, ax__msg_t *m) {
  (void)self;
  (void)reason;
  ax__call_t *call = (ax__call_t *)(uintptr_t)m->aux;
  call->fn(call, NULL);
  return false;
}

static const ax__kind_t init_kind = {.handle = init_handle};
static const ax__kind_t call_kind = {.handle = call_handle, .drop = call_drop};

const ax__kind_t *ax__kinds[AX__SYS_KINDS] = {
    [AX__SYS_INIT] = &init_kind,
    [AX__SYS_CALL] = &call_kind,
};

/* Handles one message.  Returns true when the actor must stop, with the
 * reason in *reason. */
static bool handle(ax_actor_t *a, ax__msg_t *m, int *reason) {
  int rc;
  if (m->sys == AX__SYS_NONE) {
    rc = ax__invoke(a, m);
  } else if (m->sys == AX__SYS_STOP) {
    /* Acquire: the reason stored before the STOP message was pushed. */
    int64_t req = atomic_load_explicit(&a->stop_req, memory_order_acquire);
    *reason = (int)((req - 1) / 2);
    return true;
  } else {
    const ax__kind_t *k = ax__kinds[m->sys];
    rc = k != NULL ? k->handle(a, m) : 0;
  }
  /* Most messages have no flags: nothing to release, nothing to write. */
  if (m->flags != 0 && !(m->flags & AX__MSG_KEPT))
    ax__msg_release(m);
  if (rc == 0)
    return false;
  *reason = rc < 0 ? rc : AX_REASON_NORMAL;
  return true;
}

/* Whether c has timed its messages since it last idled (ax__core_t.msg_ns,
 * which only c writes: a relaxed load of its own store). */
static inline bool timed(const ax__core_t *c) {
  return atomic_load_explicit(&c->msg_ns, memory_order_relaxed) != 0;
}

/* The first turn of 16 messages or more since the core idled: its 8th
 * and 16th messages are timed, so that threads that are no core learn how
 * slow the core's messages are (ax__core_t.msg_ns) within 16 of them, not
 * after two whole turns of the looks in run_actor: a thread flooding 1 ms
 * messages queued 92,556 before that, 11,500 since.  Only on the path
 * that counts every 8th message. */
/* Records that c's last `count` messages took `elapsed` ns (msg_ns). */
static inline void set_msg_ns(ax__core_t *c, int64_t elapsed, unsigned count) {
  int64_t per = elapsed / count;
  /* Relaxed: an estimate for the threads that wait for this core (send.c's
   * stuck_window), it orders nothing; at least 1, so that it also says the
   * core is timed. */
  atomic_store_explicit(&c->msg_ns, per > 0 ? per : 1, memory_order_relaxed);
}

static void time_early(ax__core_t *c, unsigned n) {
  int64_t now = ax_now();
  if (n == 8)
    c->early_at = now;
  else
    set_msg_ns(c, now - c->early_at, 8);
}

/* One turn of an actor: at most `batch` messages, and never past the last
 * message that was queued when the turn began, so an actor that keeps
 * sending to itself cannot hold the core.  A message is freed as soon as
 * it is handled (unless kept), so an idle actor holds none.
 *
 * Runs one turn of a.  Returns true when a poll is due now: the turns of
 * more than one message since the last look at the clock have handled
 * AX__ROUND_TURNS messages, and AX__POLL_INTERVAL_NS has passed since the
 * last poll.  The caller polls before the next turn, so fds, timers and
 * other threads' messages wait for one turn at most, not for the 64 turns
 * of a round that one busy actor fills by itself (a newcomer's worker
 * with 3,000 messages of 1 ms held its core's timers and fds for 5.2-5.8
 * s).  Turns of one message, the common case of actors that talk, pay
 * one test; 64 of them end the round anyway. */
static bool run_actor(ax__core_t *c, ax_actor_t *a) {
  c->current = a;
  ax__msg_t *last = a->mq_tail;
  unsigned n = 0, batch = c->rt->opts.batch;
  int reason = 0;
  bool stop = false;
  for (;;) {
    /* ax_stop() pre-empts the queue: its request is checked before each
     * message, not when its STOP message reaches the front.  Acquire pairs
     * with the CAS that stored the reason. */
    int64_t req = atomic_load_explicit(&a->stop_req, memory_order_acquire);
    if (req != 0) {
      reason = (int)((req - 1) / 2);
      stop = true;
      break;
    }
    ax__msg_t *m = ax__mailbox_pop(a);
    if (m == NULL)
      break;
    n++;
    c->handling = m;
    stop = handle(a, m, &reason);
    c->handling = NULL;
    /* Counted every 8 messages, not only at the turn's end: threads that
     * are no core pace by it (fring_pace), and a turn of 64 slow messages
     * may outlast their wait.  (One store per message cost 8 instructions
     * of a same-core message, callgrind.) */
    if (__builtin_expect((n & 7) == 0, 0)) {
      ax__stat_add(&c->stats.delivered, 8);
      if (n <= 16 && !timed(c))
        time_early(c, n);
    }
    if (!(m->flags & AX__MSG_KEPT)) { /* a kept one is its keeper's (ax__msg_unkeep) */
      ax__msg_uncount(a, m);
      ax__msg_free(m);
    }
    if (stop || m == last || n >= batch)
      break;
  }
  ax__stat_add(&c->stats.delivered, n & 7);
  /* Relaxed: a statistic that only this thread writes; readers
   * (ax_rt_stats) take any recent value. */
  if (n > atomic_load_explicit(&c->stats.turn_max, memory_order_relaxed))
    atomic_store_explicit(&c->stats.turn_max, n, memory_order_relaxed);
  if (stop) {
    /* Stopped by ax_stop, which reaches the actor ahead of what its caller
     * sent it before through a ring: take those messages in first, so that
     * they are dropped with the actor's reason (a monitor request answered
     * with the real reason, not "no such actor").  Acquire, as above: the
     * ring slots the stopper published before its request are visible.
     * A stop asked for while the actor ran (from another thread, or by
     * itself) came first, too: its reason wins over what the behaviour
     * returned (a fiber that returns 0 after its -ECANCELED stopped for
     * the stop's reason, not normally). */
    int64_t asked = atomic_load_explicit(&a->stop_req, memory_order_acquire);
    if (asked != 0) {
      reason = (int)((asked - 1) / 2);
      ax__core_drain_sent(c);
    }
    ax__actor_die(c, a, reason);
  } else if (a->mq_tail != NULL)
    ax__runq_push(c, a); /* more messages: run again later (still queued) */
  else
    a->queued = false;
  c->current = NULL;
  if (n > 1 && (c->unlooked += n) >= AX__ROUND_TURNS) {
    int64_t now = ax_now();
    if (c->looked_at != 0)
      set_msg_ns(c, now - c->looked_at, c->unlooked);
    c->looked_at = now;
    c->unlooked = 0;
    return now - c->last_poll >= AX__POLL_INTERVAL_NS;
  }
  return false;
}

/* ------------------------------------------------------------------------ */
/* The core's thread.                                                        */

int ax__core_init(ax_rt_t *rt, unsigned index, ax__core_t **out) {
  ax__core_t *c = ax__aligned_alloc(AX__CACHE_LINE, (sizeof *c + AX__CACHE_LINE - 1) &
                                                    ~(size_t)(AX__CACHE_LINE - 1));
  if (c == NULL)
    return -ENOMEM;
  memset(c, 0, sizeof *c);
  c->rt = rt;
  c->index = index;
  c->next_id = AX__ID_BASE(rt->index, index); /* 2^50 ids per core (core.h): none ever wraps */
  /* KEEP_ALIVE: an idle core sleeps in its loop even with nothing to
   * watch, until another thread wakes it (ax__schedule_remote). */
  ax_loop_opts_t lo = {.backend = rt->opts.backend, .max_events = AX__CORE_EVENTS,
                       .flags = AX_LOOP_KEEP_ALIVE};
  int rc = ax_loop_new(&lo, &c->loop);
  if (rc < 0) {
    free(c);
    return rc;
  }
  ax__heap_init(&c->heap);
  for (unsigned i = 0; i < AX__MSG_CLASSES; i++)
    ax__pool_init(&c->pools[i], &c->heap, c, ax__msg_class_size(i));
  ax__pool_init(&c->pools[AX__ACTOR_POOL], &c->heap, c, sizeof(ax_actor_t));
  ax__pool_init(&c->pools[AX__EXT_POOL], &c->heap, c, sizeof(ax__actor_ext_t));
  ax__mpscq_init(&c->inbox, &c->inbox_stub, false);
  atomic_init(&c->inbox_n, 0);
  atomic_init(&c->inbox_wait, 0);
  atomic_init(&c->stuck_beat, 0);
  atomic_init(&c->stuck_at, 0);
  atomic_init(&c->stuck_left, 0);
  atomic_init(&c->msg_ns, 0);
  atomic_init(&c->sleeping, 0);
  ax__table_init(&c->table, (uint32_t)(rt->serial * 2654435761u) + index * 40503u);
  c->erec = ax__epoch_register(&rt->epoch);
  if (c->erec == NULL) {
    ax_loop_close(c->loop, AX_CLOSE_FORCE);
    free(c);
    return -ENOMEM;
  }
  *out = c;
  return 0;
}

void ax__core_destroy(ax__core_t *c) {
  ax__epoch_release(c->erec);
  ax_loop_adopt(c->loop); /* its thread, if it ran, has exited */
  ax_loop_close(c->loop, AX_CLOSE_FORCE);
  ax__heap_destroy(&c->heap);
  ax__table_destroy(&c->table);
  free(c);
}

/* Acquire pairs with the release in ax_rt_stop. */
static bool stopping(ax_rt_t *rt) {
  return atomic_load_explicit(&rt->stopping, memory_order_acquire) != 0;
}

/* Non-blocking I/O and timers, between rounds.  What other threads sent
 * until now goes into the mailboxes first, ahead of the events this poll
 * reports. */
/* Hands over what a feature batched during the round (ax__core_t.flush). */
static inline void flush_batch(ax__core_t *c) {
  if (c->flush != NULL) {
    void (*fn)(ax__core_t *) = c->flush;
    c->flush = NULL;
    fn(c);
  }
}

/* The floor of ax__core_t.fcredit: AX__FCREDIT_MIN, or what one round can
 * handle when that is less (a small batch: 64 turns of 1 message). */
static inline unsigned fcredit_min(const ax_rt_t *rt) {
  unsigned round = AX__ROUND_TURNS * rt->opts.batch;
  return round < AX__FCREDIT_MIN ? round : AX__FCREDIT_MIN;
}

/* A poll without waiting, after taking what other cores and threads sent
 * (all, or with `in_round` only the other cores' rings: ax__core_drain_cores). */
static void poll_io(ax__core_t *c, bool in_round) {
  if (in_round)
    ax__core_drain_cores(c);
  else
    ax__core_drain_some(c);
  ax_loop_run_once(c->loop, 0);
  ax__stat_add(&c->stats.polls, 1);
  c->last_poll = ax_now();
  c->heap.now = c->last_poll; /* stamps spans that empty until the next poll */
}

/* Whether an idle core must look at its loop before it spins: a timer is
 * due, or AX__IDLE_POLL_NS has passed since it last did.  Otherwise it
 * skips the system call, which would sit on the path of the cross-core
 * hand-off that ends the spin. */
static bool poll_due(ax__core_t *c, int64_t now) {
  return ax_loop_timeout(c->loop) == 0 || now - c->last_poll >= AX__IDLE_POLL_NS;
}

/* A sleep of `wait` ns (AX_FOREVER: unbounded), cut short to end at `at`
 * when that comes sooner (0: no such time). */
static int64_t wait_until(int64_t wait, int64_t at, int64_t now) {
  if (at == 0 || (wait != AX_FOREVER && at - now >= wait))
    return wait;
  return at > now ? at - now : 0;
}

/* Something for c to do: an actor to run, a message from another core or
 * thread, or the runtime's stop.  c's thread. */
static inline bool has_work(ax__core_t *c) {
  return c->runq_head != NULL || ax__core_pending(c) || stopping(c->rt);
}

/* Nothing runnable: poll if needed, spin a while, then sleep until woken. */
static void idle(ax__core_t *c) {
  ax_rt_t *rt = c->rt;
  c->long_since = 0; /* nothing to run: no load to spill (near_or_spill) */
  if (c->looked_at != 0 || timed(c)) { /* and no long turns to time (run_actor) */
    c->looked_at = 0;
    c->unlooked = 0;
    atomic_store_explicit(&c->msg_ns, 0, memory_order_relaxed); /* as in run_actor */
  }
  /* Reclaiming may send (a monitor request that reached a dead actor is
   * answered with DOWN), which can make an actor of this core runnable:
   * look at the run queue again before any decision to wait. */
  ax__reclaim(c, false);
  if (c->runq_head != NULL)
    return;
  flush_batch(c); /* what a loop callback batched: before any wait */
  ax_loop_update_time(c->loop); /* one clock read serves the whole decision */
  int64_t now = ax_loop_now(c->loop);
  /* A core serving fds goes straight to its blocking poll below, which
   * returns at once when events are ready: one epoll_wait per idle period,
   * where a non-blocking poll first would add a second syscall to every
   * round trip of an echo server.
   * It does not spin either: its likeliest next work is an fd event, which
   * only the loop reports, and spinning would take the CPU the kernel needs
   * for the I/O itself. */
  bool serving_fds = c->nio > 0;
  if (!serving_fds && poll_due(c, now)) {
    poll_io(c, false);
    if (c->runq_head != NULL || ax__core_pending(c))
      return;
  }
  if (rt->opts.spin_ns > 0 && !serving_fds) {
    /* Spin until work arrives, the spin time ends, or a timer comes due.
     * A spin that returned to look at the loop, or slept until a timer
     * that made no actor runnable, goes on to the end it had: every look
     * starting a new spin_ns kept an idle core spinning for good once
     * spin_ns was above AX__IDLE_POLL_NS.  The end is forgotten when it
     * passes and when a round runs. */
    if (c->spin_end == 0)
      c->spin_end = now + rt->opts.spin_ns;
    int64_t end = c->spin_end, t = ax_loop_timeout(c->loop);
    if (t != AX_FOREVER && now + t < end)
      end = now + t;
    for (unsigned i = 1;; i++) {
      if (ax__core_pending(c) || stopping(rt))
        return;
      if (c->nover > 0) /* messages wait for room on a ring: move them as it appears */
        ax__ring_flush(c);
      ax__spin_step(i);
      if ((i & 63) == 0) {
        int64_t at = ax_now();
        if (at >= end) {
          if (at >= c->spin_end)
            c->spin_end = 0; /* spun spin_ns: the next idle spell spins anew */
          break;
        }
        if (at - c->last_poll >= AX__IDLE_POLL_NS)
          return; /* a look at the loop is due (poll_due): a spin_ns above
                     it no longer keeps signals waiting as long */
      }
    }
  } else {
    c->spin_end = 0; /* no spin (fds to serve): none goes on later */
  }
  /* About to sleep: what other threads freed into this core's pools goes
   * back to its spans, and spans empty for long enough go back to the
   * kernel (pool.h). */
  c->heap.now = now;
  ax__pool_rfree_flush(&c->rfree);
  for (unsigned i = 0; i < AX__POOLS; i++)
    ax__pool_tidy(&c->pools[i]);
  if (c->heap.purge_at != 0 && now >= c->heap.purge_at) {
    c->heap.purge_at = 0;
    size_t released = 0;
    for (unsigned i = 0; i < AX__POOLS; i++)
      released += ax__pool_purge(&c->pools[i]);
    /* A burst is over (its messages have been unused for a while, or many
     * of its actors died): what went to malloc with it (streams, buffers,
     * actors spawned by other threads) has likely been freed too, its
     * fibers' stacks wait in the cache, and its actors' slots are free:
     * give their pages back as well.  Rare: at most once per purge. */
    if (released != 0 || c->slots_freed >= AX__TRIM_SLOTS || c->malloc_freed >= AX__TRIM_MALLOC) {
      c->slots_freed = 0;
      c->malloc_freed = 0;
      released += ax__table_trim(&c->table);
      ax__trim_malloc();
      ax__coro_cache_trim();
      ax__stat_add(&c->stats.released, released);
    }
  }
  /* What features keep for things idle long enough (parked fibers' deep
   * stack pages): due only once idle, like the purge above. */
  if (c->trim_at != 0 && now >= c->trim_at) {
    c->trim_at = 0;
    for (ax__feature_t *f = ax__features; f != NULL; f = f->next)
      if (f->core_trim != NULL) {
        int64_t next = f->core_trim(c, now);
        if (next != 0)
          ax__core_trim_at(c, next);
      }
  }
  /* The wake protocol, core side (see wake() in send.c). */
  atomic_store_explicit(&c->sleeping, 1, memory_order_relaxed);
  atomic_thread_fence(memory_order_seq_cst);
  /* A look before the barrier of lazy senders, and one after it: work
   * found by the first needs no barrier (a reviewer counted 1,414 barriers
   * for 715 sleeps without it). */
  bool settled = has_work(c) || ax__core_settle(c); /* lazy senders: their slots now seen */
  if (has_work(c)) {
    /* Relaxed: only a hint to senders that a wake-up is needed; a sender
     * that still reads 1 wakes the loop once for nothing. */
    atomic_store_explicit(&c->sleeping, 0, memory_order_relaxed);
    return;
  }
  ax__stat_add(&c->stats.sleeps, 1);
  /* Relaxed: a load report for AX_PLACE_ANY on other cores
   * (near_or_spill), a hint that orders nothing. */
  atomic_store_explicit(&c->stats.runq_len, 0, memory_order_relaxed);
  /* Sleep until fds, a timer or ax_loop_wake say so; but while dead
   * actors wait for their grace period, wake up to finish them (what is
   * still in their mailboxes, a monitor request say, must be answered). */
  int64_t wait = c->retired_head != NULL ? AX__RECLAIM_RETRY_NS : AX_FOREVER;
  if (c->nover > 0 || !settled)
    wait = AX__POLL_INTERVAL_NS; /* messages wait for room on a ring, or a lazy
                                    send may be unseen: look again soon */
  wait = wait_until(wait, c->heap.purge_at, now);
  wait = wait_until(wait, c->trim_at, now);
  if (c->heap.purge_at == 0 && c->heap.pages * AX__PAGE_SIZE >= AX__RECHECK_BYTES) {
    /* Memory lent out (messages in ports, other cores' mailboxes, kept):
     * its frees come back without a wake-up. */
    if (c->heap.pages != c->recheck_pages || c->recheck_ns == 0)
      c->recheck_ns = AX__RECHECK_MIN_NS;
    else if (c->recheck_ns < AX__RECHECK_MAX_NS)
      c->recheck_ns *= 2;
    c->recheck_pages = c->heap.pages;
    wait = wait_until(wait, now + c->recheck_ns, now);
  }
  ax_loop_run_once(c->loop, wait);
  c->last_poll = ax_now();
  c->heap.now = c->last_poll;
  /* A sender that found this core asleep took `sleeping` (exchange to 0)
   * and woke it: count that here, where only this core writes the count. */
  if (atomic_exchange_explicit(&c->sleeping, 0, memory_order_relaxed) == 0)
    ax__stat_add(&c->stats.wakeups, 1);
}

static void die_at_shutdown(void *actor, void *arg) {
  ax__actor_die(arg, actor, AX_REASON_SHUTDOWN);
}

/* The runtime is stopping: once no core runs actors any more, kill every
 * actor of this core with reason AX_REASON_SHUTDOWN, then let the features
 * end what they still run here (core_stop). */
static void shutdown_core(ax__core_t *c) {
  ax_rt_t *rt = c->rt;
  pthread_barrier_wait(&rt->barrier);
  c->runq_head = c->runq_tail = NULL;
  c->runq_len = 0;
  /* Relaxed: a statistic (idle()'s store); exact after the join. */
  atomic_store_explicit(&c->stats.runq_len, 0, memory_order_relaxed);
  /* Spawns that looked at `stopping` before the stop publish their actor
   * first (the cores run no actor any more, so only threads that are no
   * core can be in one); what they send meanwhile is taken in.  seq_cst
   * pairs with ax__spawn's increment (see there). */
  while (atomic_load_explicit(&rt->spawning, memory_order_seq_cst) != 0) {
    ax__core_drain(c);
    sched_yield();
  }
  /* What other threads sent goes to the mailboxes (nothing is scheduled
   * any more), so that each actor's death drops it with its reason. */
  ax__core_drain(c);
  /* Every spawn the stop did not refuse has published its actor by now:
   * all of them die here, their terminate hooks on this core, before the
   * join returns. */
  ax__table_each(&c->table, die_at_shutdown, c);
  if (c->index == 0)
    ax__signals_stop(c);
  for (ax__feature_t *f = ax__features; f != NULL; f = f->next)
    if (f->core_stop != NULL)
      f->core_stop(c);
  /* Every fd a source counted has been given back with its actor or by
   * its feature: a count left over would keep the core from spinning. */
  assert(c->nio == 0);
  pthread_barrier_wait(&rt->barrier);
  if (c->index == 0)
    for (ax__feature_t *f = ax__features; f != NULL; f = f->next)
      if (f->rt_stopped != NULL)
        f->rt_stopped(rt);
}

void *ax__core_main(void *arg) {
  ax__core_t *c = arg;
  ax_rt_t *rt = c->rt;
  ax__tls_core = c;
  ax__tls_rfree = &c->rfree;
  ax_loop_adopt(c->loop);
  ax__vital_fill(c); /* the reserve for news that must not be lost (msg.h) */
  for (ax__feature_t *f = ax__features; f != NULL; f = f->next)
    if (f->core_start != NULL)
      f->core_start(c);
  if (c->index == 0)
    (void)ax__signals_start(c); /* a failure leaves the signals blocked and unread: safe */
  pthread_mutex_lock(&rt->ready_lock);
  rt->ready++;
  pthread_cond_broadcast(&rt->ready_cond);
  pthread_mutex_unlock(&rt->ready_lock);
  while (!stopping(rt)) {
    if (c->nover > 0)
      ax__ring_flush(c);
    if (c->runq_head == NULL && c->fcredit < fcredit_min(rt))
      c->fcredit = fcredit_min(rt); /* nothing to run: take what waits */
    ax__core_drain_some(c);
    if (c->runq_head == NULL) {
      idle(c);
      /* What ends an idle spell is most often another core's message (a
       * reply): its actor runs at once, and the inbox and the rings of
       * threads that are no core are taken at the round's end, before
       * the core can idle again.  Taking them first sat between the
       * message's arrival and its handling in every cross-core hand-off. */
      ax__core_drain_cores(c);
      if (c->runq_head == NULL || stopping(rt))
        continue;
    }
    c->spin_end = 0; /* work: the next idle spell spins spin_ns anew */
    /* A round: up to AX__ROUND_TURNS actor turns in run-queue order (an
     * actor made runnable meanwhile goes to the back, so every runnable actor
     * gets its turn in FIFO order).  Between rounds: actors woken by other
     * threads join the queue, and fds and timers are polled once
     * AX__POLL_INTERVAL_NS has passed since the last poll, so a busy core
     * pays neither a syscall nor a clock read per message; after long
     * turns that poll comes within the round (run_actor), so what it
     * brings waits behind one turn, not behind the rest of the round. */
    uint64_t before = atomic_load_explicit(&c->stats.delivered, memory_order_relaxed);
    for (unsigned turns = 0; turns < AX__ROUND_TURNS && c->runq_head != NULL; turns++) {
      if (run_actor(c, runq_pop(c))) { /* a poll is due after long turns */
        if (stopping(rt))
          break;
        poll_io(c, true);
      }
    }
    /* Until the next round, the core takes as many messages of threads
     * that are no core as this one handled (ax__core_t.fcredit): the
     * delivered count is exact at the end of every turn.  Relaxed: only
     * this thread writes it. */
    unsigned handled = (unsigned)(atomic_load_explicit(&c->stats.delivered,
                                                       memory_order_relaxed) -
                                  before); /* at most 64 turns of 65536 */
    c->fcredit = handled > fcredit_min(rt) ? handled : fcredit_min(rt);
    if (c->runq_len < AX_PLACE_SPILL)
      c->long_since = 0; /* the run queue went short: a later long one starts anew */
    flush_batch(c);
    /* Nothing left to run and nothing arrived: idle() reads the clock and
     * polls when due.  A clock read here as well (23 ns on the 2-vCPU VM)
     * would sit between a reply just sent and the look for the next
     * message.  Whenever work goes on, the clock is read every round. */
    bool more = c->runq_head != NULL || ax__core_drain_some(c) != 0;
    if (more && ax_now() - c->last_poll >= AX__POLL_INTERVAL_NS)
      poll_io(c, false);
    if (c->retired_count >= 256)
      ax__reclaim(c, false);
    atomic_store_explicit(&c->stats.runq_len, c->runq_len, memory_order_relaxed); /* a hint, as in idle() */
  }
  shutdown_core(c);
  ax__pool_rfree_flush(&c->rfree);
  ax__tls_rfree = NULL;
  ax__epoch_exit(c->erec);
  ax__tls_core = NULL;
  return NULL;
}
