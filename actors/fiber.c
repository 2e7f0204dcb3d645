/* Fiber actors: a behaviour that hands messages to code on its own stack, waiting calls that park it, I/O read from source messages. */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "axon/fiber.h"
#include "actors/fiber.h"
#include "actors/io/src.h"
#include "actors/io/stream.h"
#include "runtime/coro.h"

/*
 * A fiber is an actor whose behaviour is ax__fiber_behaviour and whose
 * code runs on a coroutine (runtime/coro.h).  The behaviour is the only
 * way in: the core calls it with each message, as for any actor, and it
 * either resumes the fiber (the fiber waits for this message) or keeps the
 * message aside (saved) for a later call, in the order it came.  Either
 * way the message is kept (ax__msg_keep): it outlives the turn, and is
 * given back (ax__msg_unkeep) when the fiber is done with it, which is
 * when a source's credit returns (a fiber that does not read does not get
 * more).
 *
 * Waiting: the fiber records what it waits for (a match function and its
 * argument), parks (switches back to the behaviour that resumed it, which
 * returns to the core) and is resumed by the behaviour with a matching
 * message, by its deadline (a timer message, or for a deadline of 0 a
 * message it sent itself, which arrives after every message sent before
 * the call), or by its stop (the terminate hook, with -ECANCELED).
 * A wake-up that comes late (its wait is over) carries an old sequence
 * number and is ignored.
 */

/* The fiber's own message types (below AX_MSG_USER, see actor.h), from
 * itself: its first message, a deadline's wake-up (a timer), and a poll's
 * wake-up (a deadline of 0 or past: a message to itself behind everything
 * queued, which no mailbox bound counts and ax_mailbox_len leaves out).
 * The wake-ups' payload is the wait's sequence number. */
enum { AX__FIBER_START = 250, AX__FIBER_WAKE = 251, AX__FIBER_POLL = 252 };

enum { FIBER_NEW, FIBER_LIVE, FIBER_DONE };

typedef bool (*match_fn)(const ax__msg_t *m, const void *arg);

typedef struct ax__fiber {
  ax__coro_t co;
  ax_actor_t *a;
  ax_fiber_fn fn;           /* run with the actor's state (the spawn's arg) */
  ax_terminate_t terminate; /* the user's hook */
  size_t stack_size;        /* asked for at spawn (0: the default) */
  int state;                /* FIBER_* */
  int result;               /* fn's return value, once FIBER_DONE */
  bool cancelled;           /* stopped: every wait returns -ECANCELED */
  /* the wait in progress */
  bool waiting;
  match_fn match;   /* NULL: any message */
  const void *marg;
  uint64_t seq;     /* the wait's number, in its wake-up messages */
  uint32_t polls;   /* its poll wake-ups still in the mailbox */
  bool poll_drained; /* the current poll took what the core's rings held */
  ax__msg_t *got;   /* the matching message the behaviour hands in */
  int wake;         /* why it was resumed: 0 (got), -ETIMEDOUT, -ECANCELED */
  ax__msg_t *held;  /* the message the last call returned, given back at the next */
  /* The reply ax_call waits for (its request's id with AX__ID_REPLY), 0
   * outside a call: any other reply to a call of this fiber comes after
   * its call returned, and is dropped on arrival. */
  uint64_t call_reply;
  /* kept messages nobody asked for yet, oldest first: a ring */
  ax__msg_t **saved;
  uint32_t shead, scount, scap; /* scap: 0 or a power of two */
  /* on its core's list of parked fibers not trimmed yet (parked_t) */
  struct ax__fiber *pnext, *pprev;
  int64_t parked_at; /* when it last parked (the core's clock, heap.now) */
} ax__fiber_t;

static inline ax__fiber_t *fiber_of(const ax_actor_t *a) {
  return a->ext->slot[AX__SLOT_FIBER];
}

/* The fiber self is, when the caller runs on its stack; else NULL. */
static ax__fiber_t *running(const ax_actor_t *self) {
  if (self == NULL || !ax__fiber_is(self))
    return NULL;
  ax__fiber_t *f = fiber_of(self);
  return ax__coro_current() == &f->co ? f : NULL;
}

bool ax_is_fiber(const ax_actor_t *self) { return self != NULL && ax__fiber_is(self); }

bool ax__fiber_running(const ax_actor_t *self) { return running(self) != NULL; }

/* ------------------------------------------------------------------------ */
/* Saved messages                                                            */

static int save(ax__fiber_t *f, ax__msg_t *m) {
  if (f->scount == f->scap) {
    uint32_t cap = f->scap != 0 ? f->scap * 2 : 8;
    ax__msg_t **r = ax__malloc(cap * sizeof *r);
    if (r == NULL)
      return -ENOMEM;
    for (uint32_t i = 0; i < f->scount; i++)
      r[i] = f->saved[(f->shead + i) & (f->scap - 1)];
    free(f->saved);
    f->saved = r;
    f->shead = 0;
    f->scap = cap;
  }
  ax__msg_keep(&m->m);
  f->saved[(f->shead + f->scount) & (f->scap - 1)] = m;
  f->scount++;
  return 0;
}

/* The position (from shead) of the oldest saved message that matches, or
 * f->scount when none does. */
static uint32_t find_saved(const ax__fiber_t *f, match_fn match, const void *arg) {
  uint32_t mask = f->scap - 1, i = 0;
  while (i < f->scount && match != NULL && !match(f->saved[(f->shead + i) & mask], arg))
    i++;
  return i;
}

/* The oldest saved message that matches, taken out of the ring (the
 * others keep their order); NULL when none does. */
static ax__msg_t *take_saved(ax__fiber_t *f, match_fn match, const void *arg) {
  uint32_t mask = f->scap - 1, i = find_saved(f, match, arg);
  if (i == f->scount)
    return NULL;
  ax__msg_t *m = f->saved[(f->shead + i) & mask];
  if (i == 0) {
    f->shead = (f->shead + 1) & mask;
  } else {
    for (uint32_t j = i; j + 1 < f->scount; j++)
      f->saved[(f->shead + j) & mask] = f->saved[(f->shead + j + 1) & mask];
  }
  f->scount--;
  return m;
}

/* ------------------------------------------------------------------------ */
/* Stack pages of fibers that wait long                                      */

/*
 * A fiber's stack keeps every page its calls ever touched: one that went
 * 40 KiB deep for one request holds 40 KiB while it waits for the next.
 * Each core lists its fibers in the order they last parked; once a fiber
 * has waited FIBER_TRIM_NS and its core is idle, the pages below its
 * frames go back to the kernel (ax__coro_trim), one madvise per fiber
 * and wait.  A fiber that runs and parks again keeps its place with a new
 * time; the trim moves it to the list's end when it gets there.
 */

/* As long as an empty pool span waits (AX__PURGE_NS): what a burst used
 * goes back at about the same time. */
#define FIBER_TRIM_NS AX__PURGE_NS

typedef struct parked {
  ax__fiber_t *head, *tail; /* oldest parked first */
} parked_t;

static void parked_unlink(parked_t *l, ax__fiber_t *f) {
  if (f->pprev != NULL)
    f->pprev->pnext = f->pnext;
  else
    l->head = f->pnext;
  if (f->pnext != NULL)
    f->pnext->pprev = f->pprev;
  else
    l->tail = f->pprev;
  f->pnext = f->pprev = NULL;
}

/* Whether f is on l (its links say so, or it is l's only fiber). */
static inline bool parked_on(const parked_t *l, const ax__fiber_t *f) {
  return f->pprev != NULL || l->head == f;
}

/* f parks now.  A fiber already on its core's list keeps its place, and
 * only its time changes: parking, once per message a fiber waits for,
 * moves nothing (the trim puts it where it belongs when it gets there).
 * Else it goes to the end, and the core is asked to trim when the oldest
 * fiber there is due. */
static inline void parked_now(ax__fiber_t *f) {
  ax__core_t *c = f->a->core;
  parked_t *l = c->slot[AX__CORE_SLOT_FIBERS];
  f->parked_at = c->heap.now;
  if (parked_on(l, f))
    return;
  f->pprev = l->tail;
  if (l->tail != NULL)
    l->tail->pnext = f;
  else
    l->head = f;
  l->tail = f;
  ax__core_trim_at(c, l->head->parked_at + FIBER_TRIM_NS);
}

/* The core is idle: trim the fibers that have waited long enough. */
static int64_t fibers_trim(ax__core_t *c, int64_t now) {
  parked_t *l = c->slot[AX__CORE_SLOT_FIBERS];
  ax__fiber_t *f, *first_moved = NULL;
  while ((f = l->head) != NULL && f != first_moved) {
    if (now - f->parked_at >= FIBER_TRIM_NS) {
      parked_unlink(l, f);
      if (f->waiting) /* still parked: nothing runs on its stack */
        (void)ax__coro_trim(&f->co);
      continue;
    }
    /* Parked again since it was listed (parked_now leaves it in place):
     * to the end.  Each fiber moves at most once per call. */
    if (f == l->tail)
      break;
    parked_unlink(l, f);
    f->pprev = l->tail;
    l->tail->pnext = f;
    l->tail = f;
    if (first_moved == NULL)
      first_moved = f;
  }
  /* The head's time: the oldest but for those moved above, which parked
   * within the last FIBER_TRIM_NS; a trim at most that late. */
  return f != NULL ? l->head->parked_at + FIBER_TRIM_NS : 0;
}

static int fibers_core_init(ax__core_t *c) {
  c->slot[AX__CORE_SLOT_FIBERS] = ax__calloc(1, sizeof(parked_t));
  return c->slot[AX__CORE_SLOT_FIBERS] != NULL ? 0 : -ENOMEM;
}

static void fibers_core_free(ax__core_t *c) {
  free(c->slot[AX__CORE_SLOT_FIBERS]);
  c->slot[AX__CORE_SLOT_FIBERS] = NULL;
}

static ax__feature_t fibers = {
    .name = "fibers",
    .order = AX__ORDER_FIBERS,
    .core_init = fibers_core_init,
    .core_free = fibers_core_free,
    .core_trim = fibers_trim,
};

AX__FEATURE_INIT(fibers) { ax__feature_register(&fibers); }

/* ------------------------------------------------------------------------ */
/* The behaviour and the fiber's life                                        */

/* Gives back the message the previous call returned. */
static inline void release_held(ax__fiber_t *f) {
  ax__msg_t *m = f->held;
  if (m == NULL)
    return;
  f->held = NULL;
  /* The common case, a plain message of this very turn (the fiber waits
   * again before its behaviour returns): the turn frees it as any other,
   * only the mark goes.  What ax__msg_unkeep does for it, without the call
   * and its tests. */
  if (m->flags == AX__MSG_KEPT && m->sys == AX__SYS_NONE && m == f->a->core->handling)
    m->flags = 0;
  else
    ax__msg_unkeep(f->a, m);
}

/* What the behaviour returns once the fiber has run: go on, or stop with
 * the fiber's result as the reason. */
static inline int verdict(const ax__fiber_t *f) {
  if (f->state != FIBER_DONE)
    return 0;
  return f->result < 0 ? f->result : AX_STOP;
}

static void resume(ax__fiber_t *f, int wake) {
  f->wake = wake;
  f->waiting = false;
  ax__coro_resume(&f->co);
}

static void fiber_entry(void *arg);
static int post_poll(ax__fiber_t *f);

/* Whether req is the id of a reply to one of f's ax_call calls that
 * returned without it (a fiber waits in one call at a time; the ids are
 * the fiber core's, which no other core's requests share). */
static inline bool late_reply(const ax__fiber_t *f, uint64_t req) {
  return (req & (AX__ID_CALL | AX__ID_REPLY)) == (AX__ID_CALL | AX__ID_REPLY) &&
         req != f->call_reply;
}

int ax__fiber_behaviour(ax_actor_t *a, const ax_msg_t *msg) {
  ax__fiber_t *f = fiber_of(a);
  ax__msg_t *m = AX_CONTAINER_OF(msg, ax__msg_t, m);
  /* A reply to an ax_call that gave up on it: nobody asks for it. */
  if (__builtin_expect(late_reply(f, msg->req), 0))
    return verdict(f);
  /* The fiber's own messages come from itself (a source's from nobody). */
  if (__builtin_expect(msg->type >= AX__FIBER_START && msg->type <= AX__FIBER_POLL &&
                           msg->from == a->ref,
                       0)) {
    if (msg->type == AX__FIBER_START) {
      if (f->state == FIBER_NEW) {
        /* The stack is made here, on the fiber's core, which frees it
         * too: stacks come from and go back to the same thread's cache,
         * whichever thread spawned the fiber. */
        int rc = ax__coro_init(&f->co, f->stack_size, fiber_entry, f);
        if (rc < 0) {
          f->state = FIBER_DONE; /* never ran: it stops with -ENOMEM */
          f->result = rc;
          return rc;
        }
        f->state = FIBER_LIVE;
        f->co.label = a->ref; /* named in an overflow report */
        resume(f, 0);
      }
    } else {
      if (msg->type == AX__FIBER_POLL)
        f->polls--;
      uint64_t seq;
      memcpy(&seq, msg->data, sizeof seq);
      if (f->waiting && seq == f->seq) {
        /* A poll's wake-up reached with nothing matched: what the rings
         * held goes in now, and the wake-up once more behind it. */
        if (msg->type == AX__FIBER_POLL && !f->poll_drained) {
          f->poll_drained = true;
          if (ax__core_drain_sent(a->core) != 0 && post_poll(f) == 0)
            return verdict(f);
        }
        resume(f, -ETIMEDOUT);
      }
    }
    return verdict(f);
  }
  if (f->waiting && (f->match == NULL || f->match(m, f->marg))) {
    ax__msg_keep(msg);
    f->got = m;
    resume(f, 0);
    return verdict(f);
  }
  if (f->state == FIBER_DONE)
    return verdict(f);
  /* Out of memory to keep it: the fiber cannot go on without losing a
   * message, so it stops with -ENOMEM (its monitors hear why). */
  return save(f, m) == 0 ? 0 : -ENOMEM;
}

static void fiber_entry(void *arg) {
  ax__fiber_t *f = arg;
  ax__coro_enter(&f->co);
  int r = f->fn(f->a, f->a->state); /* ax_state(self): the spawn's arg */
  release_held(f);
  f->result = r > 0 ? 0 : r;
  f->state = FIBER_DONE;
  ax__coro_exit(&f->co);
}

/* Frees the fiber's own state and unhooks it from its actor. */
static void fiber_free(ax_actor_t *a, ax__fiber_t *f) {
  free(f->saved);
  free(f);
  a->ext->slot[AX__SLOT_FIBER] = NULL;
  a->ext->terminate = NULL;
}

/* The fiber's actor stops (its core, on the core's stack): a fiber that is
 * parked is resumed with -ECANCELED and runs to its return (every wait
 * fails at once from now on); then its messages go back, its stack is
 * freed and the user's hook runs.  Its sources close after this (the
 * sources feature's death hook). */
static void fiber_terminate(ax_actor_t *a, int reason) {
  ax__fiber_t *f = fiber_of(a);
  f->cancelled = true;
  if (f->state == FIBER_LIVE)
    resume(f, -ECANCELED);
  f->state = FIBER_DONE;
  parked_t *parked = a->core->slot[AX__CORE_SLOT_FIBERS];
  if (parked_on(parked, f))
    parked_unlink(parked, f);
  release_held(f);
  while (f->scount > 0) {
    ax__msg_t *m = f->saved[f->shead];
    f->shead = (f->shead + 1) & (f->scap - 1);
    f->scount--;
    ax__msg_unkeep(a, m);
  }
  ax__coro_free(&f->co);
  ax_terminate_t hook = f->terminate;
  fiber_free(a, f);
  if (hook != NULL)
    hook(a, reason);
}

typedef struct spawn_args {
  ax_fiber_fn fn;
  const ax_fiber_opts_t *o;
} spawn_args_t;

static int fiber_setup(ax_actor_t *a, void *arg) {
  spawn_args_t *sa = arg;
  ax__actor_ext_t *ext = ax__actor_ext(a);
  ax__fiber_t *f = ax__calloc(1, sizeof *f);
  if (ext == NULL || f == NULL) {
    free(f);
    return -ENOMEM;
  }
  f->a = a;
  f->stack_size = sa->o->stack_size;
  f->fn = sa->fn;
  f->terminate = sa->o->terminate;
  ext->slot[AX__SLOT_FIBER] = f;
  ext->terminate = fiber_terminate;
  return 0;
}

/* The spawn failed after fiber_setup: nothing ran, no stack was made. */
static void fiber_undo(ax_actor_t *a, void *arg) {
  (void)arg;
  fiber_free(a, fiber_of(a));
}

int ax_spawn_fiber(ax_rt_t *rt, ax_fiber_fn fn, void *arg, const ax_fiber_opts_t *opts,
                   ax_ref_t *ref) {
  ax_fiber_opts_t o = opts != NULL ? *opts : (ax_fiber_opts_t){0};
  if (fn == NULL || (o.stack_size != 0 && (o.stack_size < AX_FIBER_STACK_MIN ||
                                           o.stack_size > AX__STACK_MAX)))
    return -EINVAL;
  ax_spawn_opts_t so = {.placement = o.placement, .core = o.core, .monitor = o.monitor,
                        .monitor_id = o.monitor_id, .near = o.near,
                        .mailbox_max = o.mailbox_max, .link = o.link};
  spawn_args_t sa = {.fn = fn, .o = &o};
  ax__spawn_extra_t x = {.setup = fiber_setup, .undo = fiber_undo, .arg = &sa,
                         .first_type = AX__FIBER_START};
  return ax__spawn(rt, ax__fiber_behaviour, arg, &so, &x, ref);
}

/* ------------------------------------------------------------------------ */
/* Waiting                                                                   */

/* Asks for a wake-up at the deadline (a deadline passed or 0: a message to
 * itself, behind every message already sent, straight into its mailbox so
 * that a bound (mailbox_max) never refuses it); *timer is the timer's id
 * (0: none).  Returns 0 or -ENOMEM. */
static int arm(ax__fiber_t *f, int64_t deadline, uint64_t *timer) {
  *timer = 0;
  if (deadline == AX_FOREVER)
    return 0;
  int64_t ns = deadline > 0 ? deadline - ax_now() : 0;
  if (ns > 0)
    return ax_after(f->a, ns, AX__FIBER_WAKE, &f->seq, sizeof f->seq, timer);
  /* What other cores and threads sent before this call may wait on the
   * core's rings and inbox: it must be looked at before the poll says
   * -ETIMEDOUT (fibers.md).  With the mailbox empty it goes in now, ahead
   * of the wake-up; otherwise only once the wake-up is reached
   * (ax__fiber_behaviour), if nothing in the mailbox matched: a fiber that polls in a loop while
   * threads flood it used to take their rings whole at every call, and its
   * mailbox grew to millions.  Either way, only what was there (not what
   * threads add meanwhile) and beyond the core's credit. */
  ax__core_t *c = f->a->core;
  f->poll_drained = f->a->mq_len <= f->polls;
  if (f->poll_drained)
    ax__core_drain_sent(c);
  return post_poll(f);
}

/* Appends the fiber's poll wake-up (its wait's sequence number) to its
 * mailbox, behind every message there; no bound refuses it. */
static int post_poll(ax__fiber_t *f) {
  ax__core_t *c = f->a->core;
  ax__msg_t *m = ax__msg_new_vital(f->a->ref, AX__SYS_NONE, AX__FIBER_POLL, &f->seq,
                                   sizeof f->seq, f->a->ref);
  if (m == NULL)
    return -ENOMEM;
  ax__mailbox_push(c, f->a, m);
  ax__stat_add(&c->stats.sent, 1);
  f->polls++;
  return 0;
}

/* The next message that matches (match NULL: any), from those saved or,
 * when park is true, the ones still to come until the deadline.  It is
 * the fiber's held message until its next call.  Returns 0 with *out,
 * -EAGAIN (none saved and park false), -ETIMEDOUT, -ECANCELED, -ENOMEM. */
static inline __attribute__((always_inline)) int get(ax__fiber_t *f, match_fn match,
                                                     const void *arg, int64_t deadline, bool park,
               ax__msg_t **out) {
  release_held(f);
  /* Acquire pairs with the CAS in ax_stop: a stop asked for is seen. */
  if (f->cancelled || atomic_load_explicit(&f->a->stop_req, memory_order_acquire) != 0) {
    f->cancelled = true;
    return -ECANCELED;
  }
  ax__msg_t *m = f->scount != 0 ? take_saved(f, match, arg) : NULL;
  if (m == NULL) {
    if (!park)
      return -EAGAIN;
    f->seq++;
    uint64_t timer = 0;
    /* AX_FOREVER asks for nothing: tested here, so that the common wait
     * pays no call (arm is not inlined). */
    if (deadline != AX_FOREVER && arm(f, deadline, &timer) < 0)
      return -ENOMEM;
    f->match = match;
    f->marg = arg;
    f->waiting = true;
    parked_now(f);
    ax__coro_suspend(&f->co);
    if (timer != 0 && f->wake != -ETIMEDOUT)
      (void)ax_timer_cancel(f->a, timer); /* -ENOENT: it fired meanwhile */
    if (f->wake < 0)
      return f->wake;
    m = f->got;
    f->got = NULL;
  }
  f->held = m;
  *out = m;
  return 0;
}

static bool match_type(const ax__msg_t *m, const void *arg) {
  return m->m.type == *(const uint32_t *)arg;
}

static bool match_req(const ax__msg_t *m, const void *arg) {
  return m->m.req == *(const uint64_t *)arg;
}

typedef struct user_match {
  ax_match_fn fn;
  void *arg;
} user_match_t;

static bool match_user(const ax__msg_t *m, const void *arg) {
  const user_match_t *u = arg;
  return u->fn(&m->m, u->arg);
}

static void note_end(const ax__msg_t *m);

static int recv_common(ax_actor_t *self, match_fn match, const void *arg, int64_t deadline,
                       const ax_msg_t **msg) {
  ax__fiber_t *f = running(self);
  if (f == NULL)
    return -EPERM;
  ax__msg_t *m;
  int rc = get(f, match, arg, deadline, true, &m);
  if (rc == 0) {
    if (m->sys == AX__SYS_IO)
      note_end(m);
    *msg = &m->m;
  }
  return rc;
}

int ax_recv(ax_actor_t *self, int64_t deadline, const ax_msg_t **msg) {
  if (msg == NULL)
    return -EINVAL;
  return recv_common(self, NULL, NULL, deadline, msg);
}

int ax_recv_type(ax_actor_t *self, uint32_t type, int64_t deadline, const ax_msg_t **msg) {
  if (msg == NULL || type == 0)
    return -EINVAL;
  return recv_common(self, match_type, &type, deadline, msg);
}

int ax_recv_reply(ax_actor_t *self, uint64_t req, int64_t deadline, const ax_msg_t **msg) {
  if (msg == NULL || req == 0)
    return -EINVAL;
  return recv_common(self, match_req, &req, deadline, msg);
}

/* ax_call's wait: the reply to req, or the DOWN of the monitor mon. */
typedef struct call_wait {
  uint64_t req, mon;
} call_wait_t;

static bool match_down(const ax__msg_t *m, const void *arg) {
  uint64_t id;
  if (m->m.type != AX_MSG_DOWN || m->sys != AX__SYS_DOWN || m->m.size != sizeof(ax_down_t))
    return false;
  memcpy(&id, (const char *)m->m.data + offsetof(ax_down_t, id), sizeof id);
  return id == *(const uint64_t *)arg;
}

static bool match_call(const ax__msg_t *m, const void *arg) {
  const call_wait_t *w = arg;
  return (m->m.req == (w->req | AX__ID_REPLY) && m->sys != AX__SYS_DOWN) ||
         match_down(m, &w->mon);
}

int ax_call(ax_actor_t *self, ax_ref_t to, uint32_t type, const void *data, size_t size,
            int64_t deadline, const ax_msg_t **reply) {
  ax__fiber_t *f = running(self);
  if (f == NULL)
    return -EPERM;
  if (reply == NULL || to == self->ref)
    return -EINVAL; /* a call to itself could never be answered */
  /* Stopped: nothing is sent (its side effects would come for nothing). */
  if (f->cancelled || atomic_load_explicit(&self->stop_req, memory_order_acquire) != 0) {
    f->cancelled = true;
    return -ECANCELED;
  }
  /* Watched from before the request leaves: a target that stops before it
   * answers (or was gone already) ends the wait with its DOWN. */
  call_wait_t w;
  int rc = ax_monitor(self, to, &w.mon);
  if (rc < 0)
    return rc;
  rc = ax__request(self, to, type, data, size, AX__ID_CALL, &w.req);
  if (rc < 0) { /* -ESRCH for a target gone already: its DOWN is dropped with the monitor */
    (void)ax_demonitor(self, w.mon);
    return rc;
  }
  const ax_msg_t *m;
  f->call_reply = w.req | AX__ID_REPLY;
  rc = recv_common(self, match_call, &w, deadline, &m);
  f->call_reply = 0; /* from now on its reply, if it still comes, is dropped on arrival */
  bool down = rc == 0 && match_down(AX_CONTAINER_OF(m, ax__msg_t, m), &w.mon);
  if (down) { /* the monitor is spent with its DOWN */
    ax_down_t d;
    memcpy(&d, m->data, sizeof d);
    /* -ENOMEM: the target's core could not record the monitor, and the
     * target may well be alive and have handled the request (a reviewer:
     * a caller that failed over on -ESRCH ran the request twice). */
    return d.reason == -ENOMEM ? -ENOMEM : -ESRCH;
  }
  /* The monitor goes.  Its DOWN, if the target stopped meanwhile, may be
   * among the messages the fiber keeps aside already: dropped there. */
  if (ax_demonitor(self, w.mon) == -ENOENT) {
    ax__msg_t *kept = f->scount != 0 ? take_saved(f, match_down, &w.mon) : NULL;
    if (kept != NULL)
      ax__msg_unkeep(self, kept);
  }
  if (rc == 0)
    *reply = m;
  return rc;
}

int ax_recv_match(ax_actor_t *self, ax_match_fn match, void *arg, int64_t deadline,
                  const ax_msg_t **msg) {
  if (msg == NULL || match == NULL)
    return -EINVAL;
  user_match_t u = {.fn = match, .arg = arg};
  return recv_common(self, match_user, &u, deadline, msg);
}

static bool match_none(const ax__msg_t *m, const void *arg) {
  (void)m;
  (void)arg;
  return false;
}

int ax_sleep_until(ax_actor_t *self, int64_t deadline) {
  ax__fiber_t *f = running(self);
  if (f == NULL)
    return -EPERM;
  ax__msg_t *m;
  int rc = get(f, match_none, NULL, deadline, true, &m);
  return rc == -ETIMEDOUT ? 0 : rc;
}

int ax_sleep(ax_actor_t *self, int64_t ns) {
  return ax_sleep_until(self, ns == AX_FOREVER ? AX_FOREVER : ns <= 0 ? 0 : ax_deadline(ns));
}

int ax_yield(ax_actor_t *self) { return ax_sleep_until(self, 0); }

/* ------------------------------------------------------------------------ */
/* Sources                                                                   */

/* Messages of one source, of the types in a mask (bit t & 63 for type t:
 * every source message type is below 64). */
typedef struct src_match {
  const ax__src_t *s;
  uint64_t types;
} src_match_t;

#define TYPE_BIT(t) ((uint64_t)1 << ((t) & 63))

static bool match_src(const ax__msg_t *m, const void *arg) {
  const src_match_t *sm = arg;
  return m->sys == AX__SYS_IO && (const ax__src_t *)(uintptr_t)m->aux == sm->s &&
         (sm->types & TYPE_BIT(m->m.type)) != 0;
}

bool ax__fiber_holds(const ax_actor_t *a, const ax__src_t *s) {
  if (s->rd != NULL && (s->rd->held != NULL || s->rd->unread_len != 0))
    return true;
  if (a == NULL || !ax__fiber_is(a) || fiber_of(a) == NULL)
    return false;
  const ax__fiber_t *f = fiber_of(a);
  for (uint32_t i = 0; i < f->scount; i++) {
    const ax__msg_t *m = f->saved[(f->shead + i) & (f->scap - 1)];
    if (m->sys == AX__SYS_IO && (const ax__src_t *)(uintptr_t)m->aux == s)
      return true;
  }
  return false;
}

static bool sys_matches(const ax__msg_t *m, const void *arg) {
  const uint64_t *want = arg; /* {sys, aux} */
  return m->sys == want[0] && m->aux == want[1];
}

int64_t ax__fiber_mailbox_delta(const ax_actor_t *a) {
  if (a == NULL || !ax__fiber_is(a) || fiber_of(a) == NULL)
    return 0;
  const ax__fiber_t *f = fiber_of(a);
  return (int64_t)f->scount - (int64_t)f->polls;
}

const ax__msg_t *ax__fiber_find_sys(const ax_actor_t *a, unsigned sys, uint64_t aux) {
  if (a == NULL || !ax__fiber_is(a) || fiber_of(a) == NULL)
    return NULL;
  const ax__fiber_t *f = fiber_of(a);
  const uint64_t want[2] = {sys, aux};
  uint32_t i = find_saved(f, sys_matches, want);
  return i < f->scount ? f->saved[(f->shead + i) & (f->scap - 1)] : NULL;
}

ax__msg_t *ax__fiber_take_sys(ax_actor_t *a, unsigned sys, uint64_t aux) {
  if (a == NULL || !ax__fiber_is(a) || fiber_of(a) == NULL)
    return NULL;
  const uint64_t want[2] = {sys, aux};
  return take_saved(fiber_of(a), sys_matches, want);
}

void ax__fiber_release(ax_actor_t *a, const ax__src_t *s) {
  if (a == NULL || !ax__fiber_is(a) || fiber_of(a) == NULL)
    return;
  ax__fiber_t *f = fiber_of(a);
  if (f->held != NULL && f->held->sys == AX__SYS_IO &&
      (const ax__src_t *)(uintptr_t)f->held->aux == s)
    release_held(f);
}

void ax__fiber_rd_free(ax__src_t *s) {
  ax__src_rd_t *rd = s->rd;
  if (rd == NULL)
    return;
  s->rd = NULL;
  if (rd->held != NULL && s->owner != NULL)
    ax__msg_unkeep(s->owner, rd->held);
  free(rd->unread);
  free(rd);
}

/* The fiber that owns source s and runs now, or NULL (-EPERM). */
static ax__fiber_t *owner_fiber(const ax__src_t *s) {
  if (s->closed || s->owner == NULL)
    return NULL;
  return running(s->owner);
}

/* The reason a source's CLOSED message carries (streams and the others
 * put it at different places). */
static int closed_err(const ax__msg_t *m, bool stream) {
  if (stream)
    return ((const ax_stream_ev_t *)m->m.data)->err;
  return ((const ax_source_ev_t *)m->m.data)->err;
}

/* A stream's CLOSED, taken by a call that does not read: reads still get
 * the bytes before it, then this end. */
static void rd_closed(ax__src_rd_t *rd, const ax__msg_t *m) {
  rd->end = true;
  if (rd->err == 0)
    rd->err = closed_err(m, true);
}

/* A stream's EOF or CLOSED that the fiber took itself (ax_recv and its
 * kin): the stream calls report that end from now on, as if they had read
 * it (they would otherwise wait for an end that already came).  Without
 * memory for the read state nothing is noted, and a later stream call
 * waits until its deadline. */
static void note_end(const ax__msg_t *m) {
  if (m->m.type != AX_MSG_EOF && m->m.type != AX_MSG_CLOSED)
    return;
  ax__src_t *s = (ax__src_t *)(uintptr_t)m->aux;
  if (!ax__src_is_stream(s))
    return;
  if (s->rd == NULL && (s->rd = ax__calloc(1, sizeof *s->rd)) == NULL)
    return;
  s->rd->end = true;
  if (m->m.type == AX_MSG_CLOSED)
    rd_closed(s->rd, m);
}

#define READ_TYPES \
  (TYPE_BIT(AX_MSG_DATA) | TYPE_BIT(AX_MSG_EOF) | TYPE_BIT(AX_MSG_CLOSED))

/* Makes bytes of the stream ready to read (in rd's unread buffer or held
 * message).  Returns 1 (bytes ready), 0 (the stream's end: no bytes will
 * come), or -errno for the wait. */
static int fill(ax__fiber_t *f, ax__src_t *s, ax__src_rd_t *rd, int64_t deadline) {
  src_match_t sm = {.s = s, .types = READ_TYPES};
  for (;;) {
    if (rd->unread_len != 0 || rd->held != NULL)
      return 1;
    ax__msg_t *m;
    int rc = get(f, match_src, &sm, deadline, false, &m);
    if (rc == -EAGAIN) {
      if (rd->end)
        return 0;
      rc = get(f, match_src, &sm, deadline, true, &m);
    }
    if (rc < 0)
      return rc;
    if (m->m.type == AX_MSG_DATA) {
      if (((const ax_data_t *)m->m.data)->len == 0)
        continue;
      f->held = NULL; /* the stream holds it now, until its bytes are read */
      rd->held = m;
      rd->held_off = 0;
      return 1;
    }
    rd->end = true; /* EOF or CLOSED */
    if (m->m.type == AX_MSG_CLOSED)
      rd_closed(rd, m);
  }
}

/* Copies from [p, p + avail) into dst at most len bytes, stopping after
 * delim (-1: none; *found tells).  Returns the count. */
static size_t copy_upto(unsigned char *dst, const unsigned char *p, size_t avail, size_t len,
                        int delim, bool *found) {
  size_t k = len < avail ? len : avail;
  const unsigned char *hit = delim >= 0 ? memchr(p, delim, k) : NULL;
  if (hit != NULL) {
    k = (size_t)(hit - p) + 1;
    *found = true;
  }
  memcpy(dst, p, k);
  return k;
}

/* Copies at most len ready bytes into dst, stopping after delim (-1:
 * none); *found tells whether it did.  Returns the count. */
static size_t pull(ax__fiber_t *f, ax__src_rd_t *rd, unsigned char *dst, size_t len, int delim,
                   bool *found) {
  size_t n = 0;
  *found = false;
  if (rd->unread_len != 0) {
    n = copy_upto(dst, rd->unread, rd->unread_len, len, delim, found);
    rd->unread_len -= n;
    memmove(rd->unread, rd->unread + n, rd->unread_len);
    if (rd->unread_len == 0) {
      free(rd->unread);
      rd->unread = NULL;
    }
    if (*found || n == len)
      return n;
  }
  if (rd->held != NULL) {
    const ax_data_t *d = rd->held->m.data;
    size_t k = copy_upto(dst + n, d->bytes + rd->held_off, d->len - rd->held_off, len - n,
                         delim, found);
    n += k;
    rd->held_off += k;
    if (rd->held_off == d->len) {
      ax__msg_t *m = rd->held;
      rd->held = NULL;
      ax__msg_unkeep(f->a, m); /* its credit returns: the stream reads on */
    }
  }
  return n;
}

/* Puts n bytes a failed call had read back in front of what is unread.
 * Returns 0, or -ENOMEM (then the bytes stay in the caller's buffer and
 * the call reports -ENOMEM instead of its own error). */
static int put_back(ax__src_rd_t *rd, const unsigned char *buf, size_t n) {
  if (n == 0)
    return 0;
  unsigned char *u = ax__malloc(n + rd->unread_len);
  if (u == NULL)
    return -ENOMEM;
  memcpy(u, buf, n);
  if (rd->unread_len != 0)
    memcpy(u + n, rd->unread, rd->unread_len);
  free(rd->unread);
  rd->unread = u;
  rd->unread_len += n;
  return 0;
}

/* The fiber that owns stream st and calls now, and st's read state (made
 * on first use); NULL with *err (-EINVAL, -EPERM, -ENOMEM) otherwise.
 * reading: the call reads bytes (a framed stream is -EINVAL). */
static ax__fiber_t *stream_fiber(ax_stream_t *st, const void *buf, bool reading,
                                 ax__src_rd_t **rd, int *err) {
  if (st == NULL || buf == NULL || (reading && st->o.frame != AX_FRAME_RAW)) {
    *err = -EINVAL;
    return NULL;
  }
  ax__fiber_t *f = owner_fiber(&st->src);
  if (f == NULL) {
    *err = -EPERM;
    return NULL;
  }
  if (st->src.rd == NULL && (st->src.rd = ax__calloc(1, sizeof *st->src.rd)) == NULL) {
    *err = -ENOMEM;
    return NULL;
  }
  *rd = st->src.rd;
  return f;
}

ssize_t ax_stream_read(ax_stream_t *st, void *buf, size_t len, int64_t deadline) {
  int err;
  ax__src_rd_t *rd;
  ax__fiber_t *f = stream_fiber(st, buf, true, &rd, &err);
  if (f == NULL)
    return err;
  if (len == 0)
    return -EINVAL; /* 0 would read as the stream's end */
  int rc = fill(f, &st->src, rd, deadline);
  if (rc <= 0)
    return rc < 0 ? rc : (rd->err < 0 ? rd->err : 0);
  bool found;
  return (ssize_t)pull(f, rd, buf, len, -1, &found);
}

/* Reads into buf until len bytes or (delim >= 0) the delimiter.  Returns
 * the count, with *found; a wait that fails puts the bytes back. */
static ssize_t read_upto(ax__fiber_t *f, ax_stream_t *st, ax__src_rd_t *rd, unsigned char *buf,
                         size_t len, int delim, int64_t deadline, bool *found) {
  size_t n = 0;
  *found = false;
  while (n < len) {
    int rc = fill(f, &st->src, rd, deadline);
    if (rc < 0) {
      int pb = put_back(rd, buf, n);
      return pb < 0 ? pb : rc;
    }
    if (rc == 0) {
      if (n == 0 && rd->err < 0)
        return rd->err;
      break;
    }
    n += pull(f, rd, buf + n, len - n, delim, found);
    if (*found)
      break;
  }
  return (ssize_t)n;
}

ssize_t ax_stream_read_exact(ax_stream_t *st, void *buf, size_t len, int64_t deadline) {
  int err;
  ax__src_rd_t *rd;
  ax__fiber_t *f = stream_fiber(st, buf, true, &rd, &err);
  if (f == NULL)
    return err;
  bool found;
  return read_upto(f, st, rd, buf, len, -1, deadline, &found);
}

ssize_t ax_stream_read_until(ax_stream_t *st, void *buf, size_t max, int delim,
                             int64_t deadline) {
  if (delim < 0 || delim > 255 || max == 0)
    return -EINVAL;
  int err;
  ax__src_rd_t *rd;
  ax__fiber_t *f = stream_fiber(st, buf, true, &rd, &err);
  if (f == NULL)
    return err;
  bool found;
  ssize_t n = read_upto(f, st, rd, buf, max, delim, deadline, &found);
  if (n == (ssize_t)max && !found)
    return -EMSGSIZE;
  return n;
}

int ax_stream_write_all(ax_stream_t *st, const void *data, size_t len, int64_t deadline) {
  if (data == NULL && len == 0)
    data = ""; /* nothing to write is fine */
  int err;
  ax__src_rd_t *rd; /* made before anything is taken: a CLOSED met here is kept there */
  ax__fiber_t *f = stream_fiber(st, data, false, &rd, &err);
  if (f == NULL)
    return err;
  const unsigned char *p = data;
  size_t chunk = st->o.high_water != 0 ? st->o.high_water : len;
  src_match_t sm = {.s = &st->src,
                    .types = TYPE_BIT(AX_MSG_WRITABLE) | TYPE_BIT(AX_MSG_CLOSED)};
  while (len > 0) {
    size_t n = len < chunk ? len : chunk;
    int rc = ax_stream_write(st, p, n);
    if (rc == 0) {
      p += n;
      len -= n;
      continue;
    }
    if (rc != -ENOBUFS) /* the stream's end reason when a read met it (a hang-up's -EIO) */
      return rc == -EPIPE && rd->end && rd->err < 0 ? rd->err : rc;
    ax__msg_t *m;
    rc = get(f, match_src, &sm, deadline, true, &m);
    if (rc < 0)
      return rc;
    if (m->m.type == AX_MSG_CLOSED) {
      rd_closed(rd, m);
      return rd->err < 0 ? rd->err : -EPIPE;
    }
  }
  return 0;
}

/* Waits in f for the next message of s of the given type, or its CLOSED.
 * Returns 0 with *out (of that type), the CLOSED's error (`clean` when it
 * carries none: the source ended without one), or the wait's error. */
static int wait_src(ax__fiber_t *f, const ax__src_t *s, uint32_t type, bool stream, int clean,
                    int64_t deadline, ax__msg_t **out) {
  src_match_t sm = {.s = s, .types = TYPE_BIT(type) | TYPE_BIT(AX_MSG_CLOSED)};
  int rc = get(f, match_src, &sm, deadline, true, out);
  if (rc < 0)
    return rc;
  if ((*out)->m.type == AX_MSG_CLOSED) {
    int err = closed_err(*out, stream);
    return err < 0 ? err : clean;
  }
  return 0;
}

int ax_listener_accept(ax_listener_t *l, int64_t deadline, ax_stream_t **out,
                       struct sockaddr_storage *peer, socklen_t *peer_len) {
  if (l == NULL || out == NULL)
    return -EINVAL;
  ax__src_t *s = (ax__src_t *)(void *)l;
  ax__fiber_t *f = owner_fiber(s);
  if (f == NULL)
    return -EPERM;
  ax__msg_t *m;
  int rc = wait_src(f, s, AX_MSG_ACCEPT, false, -ECONNABORTED, deadline, &m);
  if (rc < 0)
    return rc;
  const ax_accept_t *acc = m->m.data;
  *out = acc->stream;
  if (peer != NULL)
    *peer = acc->peer;
  if (peer_len != NULL)
    *peer_len = acc->peer_len;
  return 0;
}

static int dial(ax_actor_t *self, bool tcp, const char *addr, const ax_stream_opts_t *opts,
                int64_t deadline, ax_stream_t **out) {
  if (addr == NULL || out == NULL)
    return -EINVAL;
  ax__fiber_t *f = running(self);
  if (f == NULL)
    return -EPERM;
  ax_stream_t *st;
  int rc = tcp ? ax_tcp_connect(self, addr, opts, &st) : ax_unix_connect(self, addr, opts, &st);
  if (rc < 0)
    return ax__fiber_refused(rc);
  ax__msg_t *m;
  rc = wait_src(f, &st->src, AX_MSG_CONNECTED, true, -ECONNRESET, deadline, &m);
  if (rc < 0) {
    ax_stream_close(st);
    return rc;
  }
  *out = st;
  return 0;
}

int ax_tcp_dial(ax_actor_t *self, const char *addr, const ax_stream_opts_t *opts,
                int64_t deadline, ax_stream_t **out) {
  return dial(self, true, addr, opts, deadline, out);
}

int ax_unix_dial(ax_actor_t *self, const char *path, const ax_stream_opts_t *opts,
                 int64_t deadline, ax_stream_t **out) {
  return dial(self, false, path, opts, deadline, out);
}

ssize_t ax_dgram_recv(ax_dgram_t *d, void *buf, size_t cap, struct sockaddr_storage *from,
                      socklen_t *from_len, int64_t deadline) {
  if (d == NULL || (buf == NULL && cap > 0))
    return -EINVAL;
  ax__src_t *s = (ax__src_t *)(void *)d;
  ax__fiber_t *f = owner_fiber(s);
  if (f == NULL)
    return -EPERM;
  ax__msg_t *m;
  int rc = wait_src(f, s, AX_MSG_DATAGRAM, false, -EPIPE, deadline, &m);
  if (rc < 0)
    return rc;
  const ax_datagram_t *dg = m->m.data;
  memcpy(buf, dg->bytes, dg->len < cap ? dg->len : cap);
  if (from != NULL)
    *from = dg->from;
  if (from_len != NULL)
    *from_len = dg->from_len;
  return (ssize_t)dg->len;
}

int ax_fd_wait(ax_actor_t *self, int fd, unsigned events, int64_t deadline) {
  ax__fiber_t *f = running(self);
  if (f == NULL)
    return fd < 0 ? -EINVAL : -EPERM;
  ax_fdwatch_t *w;
  int rc = ax_fd_watch(self, fd, events, &w);
  if (rc < 0)
    return rc;
  ax__msg_t *m;
  rc = wait_src(f, (ax__src_t *)(void *)w, AX_MSG_FD_READY, false, -EBADF, deadline, &m);
  if (rc == 0)
    rc = (int)((const ax_fd_ready_t *)m->m.data)->revents;
  release_held(f); /* before the watch it names goes */
  ax_fdwatch_close(w);
  return rc;
}
