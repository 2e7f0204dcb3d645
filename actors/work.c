/* The work pool: blocking functions on a bounded set of threads per runtime, results back as messages. */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "actors/fiber.h"
#include "axon/fiber.h"
#include "actors/work.h"
#include "io/alloc.h"

#define WORK_THREADS_DEFAULT 4
#define WORK_QUEUE_DEFAULT 1024

/*
 * A piece of work is shared by its owner's core and the pool.  Its state,
 * under the pool's lock, says who holds it:
 *
 *   HELD       made, but kept out of the queue until ax__work_release
 *              (a file's close, which waits for the file's other
 *              requests); cancelled and freed like QUEUED.
 *   QUEUED     in the pool's queue; a cancel or the owner's death takes it
 *              out and frees it (fn never runs).
 *   RUNNING    a pool thread runs fn.  Then the thread sends the result
 *              message it was given at submit (state SENT).
 *   ABANDONED  cancelled (or its owner died) while fn ran: the thread
 *              disposes of arg and frees the work when fn returns.
 *   SENT       the result message is on its way or in the mailbox: the
 *              message's handler (delivered) or drop (the owner died)
 *              frees the work; a cancel only marks it, so the handler
 *              drops the result.  If the send fails (the owner is gone),
 *              the thread frees it.
 *
 * The owner's core also keeps every work of the actor that is not yet
 * handled in a list (the actor's AX__SLOT_WORK), so that a cancel finds it
 * by id and a death finds all of it.  The list is the owner core's alone:
 * the pool never touches it.
 */
enum { W_HELD, W_QUEUED, W_RUNNING, W_ABANDONED, W_SENT };

typedef struct work_pool work_pool_t;

typedef struct ax__work {
  /* owner core only */
  struct ax__work *oprev, *onext; /* the owner's list */
  bool linked;
  bool cancelled; /* SENT, then cancelled: the handler drops the result */
  /* set at submit, read-only after */
  ax_work_fn fn;
  void *arg;
  ax_work_dispose_fn dispose;
  ax__work_done_fn done;          /* runs instead of the behaviour, or NULL */
  ax__work_delivered_fn delivered; /* a caller's message: runs before the behaviour */
  bool custom;                    /* the message is the caller's: fn fills it */
  ax_ref_t owner;
  uint64_t id;
  ax__msg_t *msg; /* the result message, made at submit */
  work_pool_t *pool;
  /* under the pool's lock, but state: HELD and QUEUED change under the
   * lock only; RUNNING ends by a compare-and-swap, to SENT by the pool
   * thread (without the lock) or to ABANDONED by a cancel (under it) */
  struct ax__work *qprev, *qnext; /* the queue, while QUEUED */
  _Atomic int state;
  bool *finished; /* a canceller that waits for fn to return */
} ax__work_t;

/* The owner's list of works (the actor's slot). */
typedef struct work_list {
  ax__work_t *head;
} work_list_t;

struct work_pool {
  pthread_mutex_t lock;
  pthread_cond_t wake;   /* threads wait for work (or quit) */
  pthread_cond_t idle;   /* a running fn returned: for cancel_wait and the stop */
  ax__work_t *head, *tail; /* the queue, oldest first */
  unsigned nqueued, busy; /* busy: fns running, results being sent */
  unsigned threads, waiting; /* started; waiting for work */
  unsigned max_threads, max_queue;
  unsigned idle_waiters; /* threads waiting on `idle` (cancel_wait, the stop) */
  /* Threads whose fn has returned and that have not taken the lock again:
   * each looks at the queue before it waits, so a submit that sees one
   * neither wakes nor starts a thread for its work.  Raised by the thread
   * without the lock, lowered by it under the lock. */
  _Atomic unsigned returning;
  /* A thread that finds the queue empty spins up to spin_ns (the
   * runtime's idle spin; 0: never) before it sleeps, one thread at a
   * time (`spinning`, under the lock): a submit meanwhile wakes nobody,
   * and the spinner takes the work within a cache line's trip instead of
   * a futex wake-up and a context switch. */
  int64_t spin_ns;
  unsigned spinning;
  _Atomic unsigned backlog; /* nqueued, for the spinner (written under the lock) */
  cpu_set_t cpus;         /* the process's CPUs when the runtime was made */
  bool have_cpus;
  bool closed; /* the runtime stops: no more work */
  bool quit;   /* the runtime is freed: threads exit */
  uint64_t done, cancelled, refused;
  _Atomic uint64_t next_id; /* ids, also for requests that do not use the pool */
  pthread_t *tids; /* max_threads */
};

static inline work_pool_t *pool_of(ax_rt_t *rt) { return rt->slot[AX__RT_SLOT_WORK]; }

/* ------------------------------------------------------------------------ */
/* The owner's list (owner core)                                             */

static work_list_t *list_of(ax_actor_t *a, bool make) {
  work_list_t *l = ax__slot_get(a, AX__SLOT_WORK);
  if (l != NULL || !make)
    return l;
  ax__actor_ext_t *ext = ax__actor_ext(a);
  if (ext == NULL || (l = ax__calloc(1, sizeof *l)) == NULL)
    return NULL;
  ext->slot[AX__SLOT_WORK] = l;
  return l;
}

static void list_add(work_list_t *l, ax__work_t *w) {
  w->oprev = NULL;
  w->onext = l->head;
  if (l->head != NULL)
    l->head->oprev = w;
  l->head = w;
  w->linked = true;
}

static void list_remove(work_list_t *l, ax__work_t *w) {
  if (!w->linked)
    return;
  if (w->oprev != NULL)
    w->oprev->onext = w->onext;
  else
    l->head = w->onext;
  if (w->onext != NULL)
    w->onext->oprev = w->oprev;
  w->linked = false;
}

static ax__work_t *list_find(work_list_t *l, uint64_t id) {
  for (ax__work_t *w = l != NULL ? l->head : NULL; w != NULL; w = w->onext)
    if (w->id == id && !w->cancelled)
      return w;
  return NULL;
}

/* ------------------------------------------------------------------------ */
/* The pool's queue (under its lock)                                         */

static void queue_push(work_pool_t *p, ax__work_t *w) {
  w->qnext = NULL;
  w->qprev = p->tail;
  if (p->tail != NULL)
    p->tail->qnext = w;
  else
    p->head = w;
  p->tail = w;
  p->nqueued++;
  atomic_store_explicit(&p->backlog, p->nqueued, memory_order_relaxed); /* see spin */
}

/* Queues w and wakes a waiting thread for it, unless a thread about to
 * look at the queue (one returning from its fn, or the spinner) will take
 * it: that costs no wake-up (a futex call here, and a thread woken for
 * nothing there).  A busy pool finds the work when it looks.  Under the
 * lock. */
static void enqueue(work_pool_t *p, ax__work_t *w) {
  /* Relaxed: see `returning`. */
  unsigned soon = atomic_load_explicit(&p->returning, memory_order_relaxed);
  queue_push(p, w);
  if (p->waiting > 0 && soon + p->spinning < p->nqueued)
    pthread_cond_signal(&p->wake);
}

static void queue_remove(work_pool_t *p, ax__work_t *w) {
  if (w->qprev != NULL)
    w->qprev->qnext = w->qnext;
  else
    p->head = w->qnext;
  if (w->qnext != NULL)
    w->qnext->qprev = w->qprev;
  else
    p->tail = w->qprev;
  p->nqueued--;
  atomic_store_explicit(&p->backlog, p->nqueued, memory_order_relaxed); /* see spin */
}

/* A work whose result will never be delivered: arg disposed of, memory
 * freed (the result message too when it was never sent). */
static void work_discard(ax__work_t *w, bool free_msg) {
  if (w->dispose != NULL)
    w->dispose(w->arg);
  if (free_msg)
    ax__msg_free(w->msg);
  free(w);
}

/* ------------------------------------------------------------------------ */
/* The pool's threads                                                        */

/* The spinner (see spin_ns): until work is queued or spin_ns has passed.
 * Without the lock. */
static void spin(work_pool_t *p) {
  int64_t end = ax_now() + p->spin_ns;
  for (unsigned i = 1;; i++) {
    /* Relaxed: a hint; the thread takes the lock before it looks at the
     * queue itself. */
    if (atomic_load_explicit(&p->backlog, memory_order_relaxed) != 0)
      return;
    ax__spin_step(i);
    if ((i & 63) == 0 && ax_now() >= end)
      return;
  }
}

static void *work_main(void *arg) {
  work_pool_t *p = arg;
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, NULL); /* signals belong to the runtime */
  pthread_mutex_lock(&p->lock);
  for (;;) {
    bool spun = false; /* once each time the queue runs dry */
    while (p->head == NULL && !p->quit) {
      if (!spun && p->spin_ns > 0 && p->spinning == 0) {
        p->spinning = 1;
        pthread_mutex_unlock(&p->lock);
        spin(p);
        pthread_mutex_lock(&p->lock);
        p->spinning = 0;
        spun = true;
        continue;
      }
      p->waiting++;
      pthread_cond_wait(&p->wake, &p->lock);
      p->waiting--;
    }
    if (p->head == NULL)
      break; /* quit, and nothing left */
    ax__work_t *w = p->head;
    queue_remove(p, w);
    atomic_store_explicit(&w->state, W_RUNNING, memory_order_relaxed); /* under the lock */
    p->busy++;
    pthread_mutex_unlock(&p->lock);

    int64_t result = w->fn(w->arg);
    /* Relaxed: only a hint for submitters (start), which read it under the
     * lock; this thread lowers it under the lock, so a submitter that sees
     * it raised runs before that, and this thread finds its work. */
    atomic_fetch_add_explicit(&p->returning, 1, memory_order_relaxed);

    int expect = W_RUNNING;
    /* Relaxed: the lock orders what a cancel wrote (it takes the lock
     * around its own swap), and the send below publishes the result. */
    if (atomic_compare_exchange_strong_explicit(&w->state, &expect, W_SENT, memory_order_relaxed,
                                                memory_order_relaxed)) {
      if (!w->custom)
        ((ax_work_done_t *)(void *)w->msg->payload)->result = result;
      /* The send publishes the result (the mailbox's release/acquire);
       * from here the message owns w, unless the send fails. */
      if (ax__send_msg(w->owner, w->msg) < 0) /* the owner is gone; m is freed */
        work_discard(w, false);
      pthread_mutex_lock(&p->lock);
      p->done++;
    } else { /* abandoned while fn ran: dispose of it here */
      pthread_mutex_lock(&p->lock);
      bool *finished = w->finished; /* set with the swap, under the lock */
      pthread_mutex_unlock(&p->lock);
      work_discard(w, true);
      pthread_mutex_lock(&p->lock);
      if (finished != NULL)
        *finished = true;
    }
    p->busy--;
    atomic_fetch_sub_explicit(&p->returning, 1, memory_order_relaxed); /* under the lock */
    if (p->idle_waiters > 0)
      pthread_cond_broadcast(&p->idle);
  }
  pthread_mutex_unlock(&p->lock);
  return NULL;
}

/* Starts a thread when the work about to be queued would find none idle
 * (waiting, returning or spinning).  Under the lock.  Returns 0, or
 * -EAGAIN when no thread runs at all. */
static int grow(work_pool_t *p) {
  /* Relaxed: see `returning`. */
  unsigned soon = atomic_load_explicit(&p->returning, memory_order_relaxed);
  if (p->waiting + soon + p->spinning > p->nqueued || p->threads == p->max_threads)
    return 0;
  /* The creator is a core, pinned to one CPU: a new thread would inherit
   * that, and every pool thread would share the core's CPU.  They get the
   * process's CPUs instead. */
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  if (p->have_cpus)
    (void)pthread_attr_setaffinity_np(&attr, sizeof p->cpus, &p->cpus);
  if (pthread_create(&p->tids[p->threads], &attr, work_main, p) == 0)
    p->threads++;
  pthread_attr_destroy(&attr);
  return p->threads > 0 ? 0 : -EAGAIN;
}

/* ------------------------------------------------------------------------ */
/* Submitting and cancelling (owner core)                                    */

static inline bool on_own_core(const ax_actor_t *self) { return self->core == ax__tls_core; }

unsigned ax__work_queue_max(ax_rt_t *rt) { return pool_of(rt)->max_queue; }

uint64_t ax__work_next_id(ax_rt_t *rt) {
  /* Relaxed: an id only has to be unique. */
  return atomic_fetch_add_explicit(&pool_of(rt)->next_id, 1, memory_order_relaxed) + 1;
}

/* Queues w with its message m (made for the owner, its payload opening
 * with the id).  Returns 0, or an error with nothing queued (w and m are
 * the caller's again). */
static int start(ax_actor_t *owner, ax__work_t *w, ax__msg_t *m, bool held, uint64_t *id) {
  work_pool_t *p = pool_of(owner->core->rt);
  work_list_t *l = list_of(owner, true);
  if (l == NULL)
    return -ENOMEM;
  m->aux = (uint64_t)(uintptr_t)w;
  w->owner = owner->ref;
  w->msg = m;
  w->pool = p;
  pthread_mutex_lock(&p->lock);
  /* A runtime that is stopping would only drop the result (a terminate
   * hook at shutdown). */
  int rc = p->closed || ax__rt_stopping(owner->core->rt) ? -ESHUTDOWN
           : held               ? 0
           : p->nqueued >= p->max_queue ? -EAGAIN
                                        : grow(p);
  if (rc < 0) {
    if (rc == -EAGAIN)
      p->refused++;
    pthread_mutex_unlock(&p->lock);
    return rc;
  }
  w->id = ax__work_next_id(owner->core->rt);
  memcpy(m->payload, &w->id, sizeof w->id); /* before fn can run: it may read it */
  if (held) {
    atomic_store_explicit(&w->state, W_HELD, memory_order_relaxed); /* under the lock */
  } else {
    atomic_store_explicit(&w->state, W_QUEUED, memory_order_relaxed);
    enqueue(p, w);
  }
  pthread_mutex_unlock(&p->lock);
  list_add(l, w);
  if (id != NULL)
    *id = w->id;
  return 0;
}

int ax__work_start(ax_actor_t *owner, ax_work_fn fn, void *arg, ax_work_dispose_fn dispose,
                   ax__work_done_fn done, uint64_t *id) {
  if (owner == NULL || fn == NULL)
    return -EINVAL;
  if (!on_own_core(owner))
    return -EPERM;
  ax__work_t *w = ax__calloc(1, sizeof *w);
  ax__msg_t *m = w != NULL ? ax__msg_new(owner->ref, AX__SYS_WORK, AX_MSG_WORK, NULL,
                                         sizeof(ax_work_done_t), owner->ref)
                           : NULL;
  if (m == NULL) {
    free(w);
    return -ENOMEM;
  }
  *(ax_work_done_t *)(void *)m->payload = (ax_work_done_t){.arg = arg};
  w->fn = fn;
  w->arg = arg;
  w->dispose = dispose;
  w->done = done;
  int rc = start(owner, w, m, false, id);
  if (rc < 0) {
    ax__msg_free(m);
    free(w);
  }
  return rc;
}

ax__msg_t *ax__work_msg(ax_actor_t *owner, uint32_t type, size_t size) {
  return ax__msg_new(owner->ref, AX__SYS_WORK, type, NULL, size, owner->ref);
}

int ax__work_start_msg(ax_actor_t *owner, ax_work_fn fn, void *arg, ax_work_dispose_fn dispose,
                       ax__work_delivered_fn delivered, ax__msg_t *m, bool held, uint64_t *id) {
  if (!on_own_core(owner))
    return -EPERM;
  ax__work_t *w = ax__calloc(1, sizeof *w);
  if (w == NULL)
    return -ENOMEM;
  w->fn = fn;
  w->arg = arg;
  w->dispose = dispose;
  w->delivered = delivered;
  w->custom = true;
  int rc = start(owner, w, m, held, id);
  if (rc < 0)
    free(w);
  return rc;
}

int ax_work_submit(ax_actor_t *self, ax_work_fn fn, void *arg, ax_work_dispose_fn dispose,
                   uint64_t *id) {
  return ax__work_start(self, fn, arg, dispose, NULL, id);
}

/* Cancels w (in the owner's list l); with wait, a running fn is waited
 * for.  Returns 0 (fn never runs) or 1. */
static int cancel(work_list_t *l, ax__work_t *w, bool wait) {
  work_pool_t *p = w->pool;
  pthread_mutex_lock(&p->lock);
  int state = atomic_load_explicit(&w->state, memory_order_relaxed);
  int expect = W_RUNNING;
  /* Relaxed: see work_main; a running fn that returned meanwhile made it
   * SENT, which the swap sees. */
  if (state == W_RUNNING &&
      !atomic_compare_exchange_strong_explicit(&w->state, &expect, W_ABANDONED,
                                               memory_order_relaxed, memory_order_relaxed))
    state = expect; /* SENT */
  switch (state) {
  case W_HELD:
  case W_QUEUED:
    if (state == W_QUEUED)
      queue_remove(p, w);
    p->cancelled++;
    pthread_mutex_unlock(&p->lock);
    list_remove(l, w);
    work_discard(w, true);
    return 0;
  case W_RUNNING: { /* now ABANDONED */
    bool finished = false;
    p->cancelled++;
    list_remove(l, w);
    if (wait) {
      w->finished = &finished;
      p->idle_waiters++;
      while (!finished)
        pthread_cond_wait(&p->idle, &p->lock);
      p->idle_waiters--;
    }
    pthread_mutex_unlock(&p->lock); /* from here the thread may free w */
    return 1;
  }
  default: /* SENT: the handler drops the result */
    p->cancelled++;
    pthread_mutex_unlock(&p->lock);
    w->cancelled = true;
    return 1;
  }
}

/* Cancels owner's work id (see cancel); users_only: not axon's own work
 * (ax__work_start with a done hook, ax__work_start_msg), which is then
 * -ENOENT. */
static int cancel_id(ax_actor_t *owner, uint64_t id, bool wait, bool users_only) {
  work_list_t *l = list_of(owner, false);
  ax__work_t *w = list_find(l, id);
  if (w == NULL || (users_only && (w->custom || w->done != NULL)))
    return -ENOENT;
  return cancel(l, w, wait);
}

int ax_work_cancel(ax_actor_t *self, uint64_t id) {
  if (self == NULL || id == 0)
    return -EINVAL;
  if (!on_own_core(self))
    return -EPERM;
  /* axon's own work (a file request on the pool, a name lookup) is none of
   * the caller's: cancelled here, its owner's bookkeeping would be skipped
   * (a file's close then waited forever for the request). */
  return cancel_id(self, id, false, true);
}

void ax__work_release(ax_actor_t *owner, uint64_t id) {
  ax__work_t *w = list_find(list_of(owner, false), id);
  if (w == NULL)
    return;
  work_pool_t *p = w->pool;
  pthread_mutex_lock(&p->lock);
  if (atomic_load_explicit(&w->state, memory_order_relaxed) == W_HELD) {
    (void)grow(p); /* no thread at all: the next submit starts one */
    atomic_store_explicit(&w->state, W_QUEUED, memory_order_relaxed); /* under the lock */
    enqueue(p, w);
  }
  pthread_mutex_unlock(&p->lock);
}

int ax__work_cancel_wait(ax_actor_t *owner, uint64_t id) {
  return cancel_id(owner, id, true, false);
}

int ax__work_cancel(ax_actor_t *owner, uint64_t id) { return cancel_id(owner, id, false, false); }

/* ------------------------------------------------------------------------ */
/* A fiber's call                                                            */

static bool match_work(const ax_msg_t *m, void *arg) {
  return m->type == AX_MSG_WORK && ((const ax_work_done_t *)m->data)->id == *(uint64_t *)arg;
}

int64_t ax_work_call(ax_actor_t *self, ax_work_fn fn, void *arg) {
  if (fn == NULL)
    return -EINVAL;
  if (!ax__fiber_running(self))
    return -EPERM;
  uint64_t id;
  int rc = ax__work_start(self, fn, arg, NULL, NULL, &id);
  if (rc < 0)
    return ax__fiber_refused(rc);
  const ax_msg_t *m;
  rc = ax_recv_match(self, match_work, &id, AX_FOREVER, &m);
  if (rc == 0)
    return ((const ax_work_done_t *)m->data)->result;
  /* Stopped (or out of memory): arg may live on this stack, so fn must
   * be done with it before the fiber unwinds. */
  (void)ax__work_cancel_wait(self, id);
  return rc;
}

/* ------------------------------------------------------------------------ */
/* The result message                                                        */

/* The result reached the front of its owner's mailbox. */
static int work_handle(ax_actor_t *a, ax__msg_t *m) {
  ax__work_t *w = (ax__work_t *)(uintptr_t)m->aux;
  list_remove(list_of(a, false), w);
  if (w->cancelled) {
    work_discard(w, false);
    return 0;
  }
  ax__work_done_fn done = w->done;
  ax__work_delivered_fn delivered = w->delivered;
  void *arg = w->arg;
  free(w);
  if (delivered != NULL)
    delivered(arg);
  if (done != NULL) {
    const ax_work_done_t *d = (const ax_work_done_t *)m->m.data;
    done(d->arg, d->result);
    return 0;
  }
  return ax__invoke(a, m);
}

/* The owner died before it got the result (its death hook has unlinked
 * the work already). */
static bool work_drop(ax_ref_t self, int reason, ax__msg_t *m) {
  (void)self;
  (void)reason;
  work_discard((ax__work_t *)(uintptr_t)m->aux, false);
  return false;
}

static const ax__kind_t work_kind = {.handle = work_handle, .drop = work_drop};

/* ------------------------------------------------------------------------ */
/* The feature                                                               */

/* The owner dies: work not started is dropped, running work abandoned;
 * results on their way are dropped when they arrive (work_drop). */
static void work_on_death(ax_actor_t *a, int reason) {
  (void)reason;
  work_list_t *l = list_of(a, false);
  if (l == NULL)
    return;
  while (l->head != NULL) {
    ax__work_t *w = l->head;
    list_remove(l, w);
    if (!w->cancelled) /* a cancelled result is dropped on arrival already */
      (void)cancel(l, w, false);
  }
  free(l);
  a->ext->slot[AX__SLOT_WORK] = NULL;
}

static int work_rt_init(ax_rt_t *rt) {
  unsigned threads = rt->opts.work_threads, queue = rt->opts.work_queue;
  if (threads > AX_WORK_THREADS_MAX || queue > AX_WORK_QUEUE_MAX)
    return -EINVAL;
  work_pool_t *p = ax__calloc(1, sizeof *p);
  if (p == NULL)
    return -ENOMEM;
  p->max_threads = threads != 0 ? threads : WORK_THREADS_DEFAULT;
  p->max_queue = queue != 0 ? queue : WORK_QUEUE_DEFAULT;
  atomic_init(&p->returning, 0);
  atomic_init(&p->backlog, 0);
  p->spin_ns = rt->opts.spin_ns > 0 ? rt->opts.spin_ns : 0;
  p->tids = ax__calloc(p->max_threads, sizeof *p->tids);
  if (p->tids == NULL) {
    free(p);
    return -ENOMEM;
  }
  p->have_cpus = sched_getaffinity(0, sizeof p->cpus, &p->cpus) == 0;
  /* An adaptive mutex spins a little before it sleeps.  The lock is held
   * for a few instructions, by the submitting core and by threads that
   * outnumber the CPUs; a plain mutex sent them to sleep on every
   * collision, and the futex wake-ups were most of the pool's cost
   * (bench_work: 256 outstanding 4.12x -> 1.97x libuv's time per result,
   * 32 outstanding 1.68x -> 1.00x, on 2 CPUs). */
  pthread_mutexattr_t ma;
  pthread_mutexattr_init(&ma);
  pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_ADAPTIVE_NP);
  pthread_mutex_init(&p->lock, &ma);
  pthread_mutexattr_destroy(&ma);
  pthread_cond_init(&p->wake, NULL);
  pthread_cond_init(&p->idle, NULL);
  rt->slot[AX__RT_SLOT_WORK] = p;
  return 0;
}

/* Every actor of the core has died: no new work, and none of it runs or
 * is being sent once this returns (each core waits, so that ax_rt_join
 * returns with the pool quiet: what it sent is in the inboxes, which
 * ax_rt_free drains). */
static void work_core_stop(ax__core_t *c) {
  work_pool_t *p = pool_of(c->rt);
  pthread_mutex_lock(&p->lock);
  p->closed = true;
  p->idle_waiters++;
  while (p->busy > 0)
    pthread_cond_wait(&p->idle, &p->lock);
  p->idle_waiters--;
  pthread_mutex_unlock(&p->lock);
}

static void work_rt_free(ax_rt_t *rt) {
  work_pool_t *p = pool_of(rt);
  if (p == NULL)
    return;
  pthread_mutex_lock(&p->lock);
  p->closed = p->quit = true;
  pthread_cond_broadcast(&p->wake);
  pthread_mutex_unlock(&p->lock);
  for (unsigned i = 0; i < p->threads; i++)
    pthread_join(p->tids[i], NULL);
  pthread_mutex_destroy(&p->lock);
  pthread_cond_destroy(&p->wake);
  pthread_cond_destroy(&p->idle);
  free(p->tids);
  free(p);
  rt->slot[AX__RT_SLOT_WORK] = NULL;
}

int ax_work_stats(ax_rt_t *rt, ax_work_stats_t *out) {
  if (rt == NULL || out == NULL)
    return -EINVAL;
  work_pool_t *p = pool_of(rt);
  pthread_mutex_lock(&p->lock);
  *out = (ax_work_stats_t){
      .threads = p->threads,
      .idle = p->waiting + p->spinning,
      .queued = p->nqueued,
      .running = p->busy,
      .done = p->done,
      .cancelled = p->cancelled,
      .refused = p->refused,
  };
  pthread_mutex_unlock(&p->lock);
  return 0;
}

static ax__feature_t work = {
    .name = "work",
    .order = AX__ORDER_WORK,
    .rt_init = work_rt_init,
    .rt_free = work_rt_free,
    .core_stop = work_core_stop,
    .actor_death = work_on_death,
};

AX__FEATURE_INIT(work) {
  ax__kind_register(AX__SYS_WORK, &work_kind);
  ax__feature_register(&work);
}
