/* Source base: messages with references and credit, hand-over between cores, close. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "actors/fiber.h"
#include "actors/io/src.h"

/* Links s into a's list of sources; a's extension exists. */
static void link_owner(ax__src_t *s, ax_actor_t *a) {
  s->owner = a;
  s->core = a->core;
  ax__list_push((ax__link_t **)&a->ext->slot[AX__SLOT_SOURCES], &s->olink);
}

static void unlink_owner(ax__src_t *s) {
  ax_actor_t *a = s->owner;
  if (a == NULL)
    return;
  ax__list_remove((ax__link_t **)&a->ext->slot[AX__SLOT_SOURCES], &s->olink);
  s->owner = NULL;
}

void *ax__src_new(size_t size, const ax__src_ops_t *ops, ax_actor_t *owner, uint32_t window) {
  ax__src_t *s = ax__calloc(1, size);
  if (s == NULL || ax__actor_ext(owner) == NULL) {
    free(s);
    return NULL;
  }
  s->ops = ops;
  s->magic = AX__SRC_OPEN;
  s->refs = 1;
  s->window = window;
  link_owner(s, owner);
  return s;
}

void ax__src_count(ax__src_t *s, bool on) {
  if (s->counted == on)
    return;
  s->counted = on;
  ax__core_count_io(s->core, on);
}

void ax__src_unref(ax__src_t *s) {
  if (--s->refs == 0) {
    ax__fiber_rd_free(s); /* a source finished without ax__src_close (a failed hand-over) */
    s->magic = AX__SRC_FREED;
    s->ops->free(s);
  }
}

ax__msg_t *ax__src_msg(ax__src_t *s, uint32_t type, size_t payload) {
  return ax__msg_new(s->owner->ref, AX__SYS_IO, type, NULL, payload, AX_REF_NONE);
}

void ax__src_post(ax__src_t *s, ax__msg_t *m, unsigned flags) {
  m->sys = AX__SYS_IO;
  m->flags = (uint16_t)flags;
  if (flags & AX__MSG_FINAL)
    s->ended = true;
  m->aux = (uint64_t)(uintptr_t)s;
  s->refs++;
  s->inbox++;
  if (flags & AX__MSG_CREDIT)
    s->inflight++;
  ax__deliver(s->owner, m);
}

int ax__io_want(ax_io_t *io, unsigned *cur, unsigned want) {
  if (*cur == want)
    return 0;
  int rc;
  if (want == 0)
    rc = ax_io_stop(io);
  else if (*cur == 0)
    rc = ax_io_start(io, want);
  else
    rc = ax_io_modify(io, want);
  if (rc == 0) {
    *cur = want;
    return 0;
  }
  if (*cur != 0 && ax_io_stop(io) == 0)
    *cur = 0; /* half-watched is no use: nothing more comes from this fd */
  return rc;
}

int ax__src_watch(ax__src_t *s, ax_io_t *io, unsigned *cur, unsigned want) {
  int rc = ax__io_want(io, cur, want);
  if (rc < 0)
    ax__src_end(s, rc);
  return rc;
}

void ax__src_end(ax__src_t *s, int err) {
  if (s->ended || s->closed || s->owner == NULL)
    return;
  if (s->ops->end != NULL) {
    s->ops->end(s, err);
    return;
  }
  /* The end is news that must not be lost: the pools' reserve serves it
   * when they fail (msg.h, ax__msg_new_vital). */
  ax__msg_t *m = ax__msg_new_vital(s->owner->ref, AX__SYS_IO, AX_MSG_CLOSED, NULL,
                                   sizeof(ax_source_ev_t), AX_REF_NONE);
  if (m == NULL)
    return; /* the reserve is empty too: the source stays silent until closed */
  ax_source_ev_t *ev = (ax_source_ev_t *)(void *)m->payload;
  ev->source = s; /* the handle: every source struct starts with its base */
  ev->err = err;
  ax__src_post(s, m, AX__MSG_FINAL);
}

int ax__src_close_handle(ax__src_t *s) {
  if (s == NULL)
    return -EINVAL;
  AX__SRC_ASSERT(s);
  ax__src_close(s);
  return 0;
}

void ax__src_close(ax__src_t *s) {
  if (s->closed)
    return;
  s->closed = true;
  s->magic = AX__SRC_CLOSED;
  ax__fiber_rd_free(s); /* what a fiber owner read in part goes back */
  /* A fiber keeps aside the messages that came while it waited for
   * another: those of s go now, as a handler's still queued are dropped
   * when popped (no message of a closed source reaches its owner; an
   * ACCEPT's connection closes with its listener). */
  ax_actor_t *owner = s->owner;
  for (ax__msg_t *m; owner != NULL &&
                     (m = ax__fiber_take_sys(owner, AX__SYS_IO, (uint64_t)(uintptr_t)s)) != NULL;) {
    if (s->ops->undelivered != NULL)
      s->ops->undelivered(s, m);
    ax__msg_unkeep(owner, m);
  }
  /* Off the owner's list first: the owner (dying, say) must never meet a
   * closed source there, whatever ops->close does next. */
  unlink_owner(s);
  s->ops->close(s);
  ax__src_count(s, false);
  ax__src_unref(s);
}

void ax__src_linger(ax__src_t *s, bool on) {
  ax__io_core_t *c = ax__io_core(s->core);
  if (s->lingering == on)
    return;
  s->lingering = on;
  if (on) {
    s->refs++;
    ax__list_push(&c->lingering, &s->llink);
    return;
  }
  ax__list_remove(&c->lingering, &s->llink);
  ax__src_unref(s);
}

/* ------------------------------------------------------------------------ */
/* Hand-over.                                                                */

/* The giver's mailbox holds no more messages of s: send the hand-over
 * message (carrying the copies) to the new owner.  If it is gone, the
 * source is closed here. */
static void send_adopt(ax__src_t *s) {
  ax__msg_t *m = s->adopt;
  s->adopt = NULL;
  /* The hand-over message holds a reference; the push below publishes
   * every write the giver made to s (release in the mailbox push, acquire
   * in the new owner's pop), and from here on this core never touches s
   * again unless the push fails. */
  s->refs++;
  if (ax__send_msg(s->to, m) < 0) {
    s->refs--;
    s->closed = true; /* nobody to give it to: finish it here */
    s->magic = AX__SRC_CLOSED;
    while (s->carry_head != NULL) {
      ax__msg_t *c = s->carry_head;
      s->carry_head = (ax__msg_t *)atomic_load_explicit(&c->node.next, memory_order_relaxed);
      ax__msg_free(c);
      s->refs--;
    }
    s->carry_tail = NULL;
    s->ops->close(s);
    ax__src_unref(s);
  }
}

int ax__src_give(ax__src_t *s, ax_ref_t to, ax__msg_t *given) {
  ax__core_t *c = s->core;
  if (to == AX_REF_NONE || s->ops->attach == NULL || ax__ref_core(to) == AX__REF_NO_CORE) {
    ax__msg_free(given);
    return -EINVAL;
  }
  /* Liveness first (a reference to nothing is -ESRCH, whatever runtime
   * bits it carries); a death between here and the hand-over closes it. */
  ax_rt_t *rt;
  ax__erec_t *erec;
  void *e;
  int rc = ax__ref_enter(to, &e, &rt, &erec);
  ax__ref_leave(erec);
  if (rc == 0 && rt != c->rt)
    rc = -EXDEV;
  if (rc == 0) {
    ax__fiber_release(s->owner, s); /* the message of s a fiber's last call returned */
    if (ax__fiber_holds(s->owner, s))
      rc = -EBUSY;
    else
      ax__fiber_rd_free(s); /* nothing unread: the new owner starts afresh */
  }
  if (rc < 0 || to == s->owner->ref) {
    ax__msg_free(given);
    return rc;
  }
  s->ops->detach(s);
  ax__src_count(s, false);
  s->giver = s->owner->ref;
  s->to = to;
  unlink_owner(s);
  given->sys = AX__SYS_IO;
  given->flags = AX__MSG_ADOPT;
  given->aux = (uint64_t)(uintptr_t)s;
  s->adopt = given;
  if (s->inbox == 0 && !s->handling)
    send_adopt(s); /* else ax__src_handle sends it as its last step */
  return 0;
}

/* A message of s popped by its giver: copy it for the new owner. */
static void carry(ax__src_t *s, ax__msg_t *m, unsigned flags) {
  s->inbox--;
  ax__msg_t *c = ax__msg_alloc(s->to, m->m.size);
  if (c == NULL) {
    /* Out of memory while moving: these bytes cannot be kept, so the
     * source is marked lost and the new owner gets it closed with -ENOMEM
     * instead of a silent gap (adopt). */
    s->lost = true;
    if (flags & AX__MSG_CREDIT)
      s->inflight--;
    s->refs--;
    if (s->inbox == 0 && s->adopt != NULL)
      send_adopt(s);
    return;
  }
  memcpy(&c->m, &m->m, sizeof c->m);
  memcpy(c->payload, m->payload, m->m.size);
  c->m.data = m->m.size != 0 ? c->payload : NULL;
  if (s->ops->rebase != NULL)
    s->ops->rebase(c, m);
  c->sys = AX__SYS_IO;
  c->flags = (uint16_t)flags;
  c->aux = m->aux;
  atomic_store_explicit(&c->node.next, NULL, memory_order_relaxed);
  if (s->carry_tail != NULL)
    atomic_store_explicit(&s->carry_tail->node.next, &c->node, memory_order_relaxed);
  else
    s->carry_head = c;
  s->carry_tail = c;
  /* the copy keeps the reference m held */
  if (s->inbox == 0 && s->adopt != NULL)
    send_adopt(s);
}

static void deliver_carry(ax__src_t *s);

/* A source in hand-over that nobody takes (the new owner died first, or
 * has no memory for it) is finished on this core, the new owner's: it
 * moves here first, since a stream that closes with writes queued
 * lingers on its core's loop and list, which only that core's thread may
 * touch (it was still the giver's core). */
static void finish_here(ax__src_t *s) {
  s->giver = AX_REF_NONE;
  s->closed = true;
  s->magic = AX__SRC_CLOSED;
  ax__core_t *c = ax__tls_core;
  if (c != NULL && c != s->core) {
    s->core = c;
    s->ops->attach(s); /* its fds on this core's loop */
    ax__src_count(s, false);
  }
  deliver_carry(s); /* closed: the copies are freed */
  s->ops->close(s);
}

/* The new owner pops the hand-over message: take the source over. */
static void adopt(ax__src_t *s, ax_actor_t *a) {
  s->giver = AX_REF_NONE;
  if (ax__actor_ext(a) == NULL) {
    finish_here(s);
    ax__src_unref(s); /* the open reference (the hand-over's goes with its message) */
    return;
  }
  link_owner(s, a);
  s->ops->attach(s);
  if (s->lost)
    ax__src_end(s, -ENOMEM); /* bytes were lost on the way: no silent gap */
}

static void deliver_carry(ax__src_t *s) {
  ax__msg_t *c = s->carry_head;
  s->carry_head = s->carry_tail = NULL;
  while (c != NULL) {
    ax__msg_t *next = (ax__msg_t *)atomic_load_explicit(&c->node.next, memory_order_relaxed);
    if (s->closed) {
      ax__msg_free(c);
      s->refs--; /* never reaches 0 here: the caller holds the hand-over's */
    } else {
      s->inbox++;
      ax__deliver(s->owner, c);
    }
    c = next;
  }
}

/* ------------------------------------------------------------------------ */
/* Messages reaching the owner.                                              */

/* Drops a reference this core took for a message or a turn of s; when a
 * hand-over waits and nothing of s is queued or handled here any more,
 * sends it instead (the open reference keeps s alive until then). */
static void put_ref(ax__src_t *s) {
  if (s->adopt != NULL && s->inbox == 0 && !s->closed && !s->handling) {
    s->refs--;
    send_adopt(s); /* the last touch of s on this core */
    return;
  }
  ax__src_unref(s);
}

/* What follows a message of s once its owner a has handled it (after the
 * behaviour returned, or when a fiber that kept it gives it back): its
 * credit returns, a CLOSED closes the source (a fiber closes its sources
 * itself), a pending hand-over goes out, and the message's reference
 * goes. */
static void src_finish(ax__src_t *s, ax_actor_t *a, unsigned flags) {
  if (flags & AX__MSG_CREDIT) {
    bool was_full = !ax__src_has_credit(s);
    s->inflight--;
    if (was_full && !s->closed && s->owner == a && s->ops->credit != NULL)
      s->ops->credit(s);
  }
  if ((flags & AX__MSG_FINAL) && !s->closed && !ax__fiber_is(a))
    ax__src_close(s);
  put_ref(s);
}

/* The kind flags a source message carries (AX__MSG_FINISHED aside, which
 * src_unkept sets). */
#define AX__SRC_FLAGS (AX__MSG_CREDIT | AX__MSG_FINAL | AX__MSG_ADOPT)

static int src_handle(ax_actor_t *a, ax__msg_t *m) {
  ax__src_t *s = (ax__src_t *)(uintptr_t)m->aux;
  unsigned flags = m->flags & AX__SRC_FLAGS;
  bool adopting = (flags & AX__MSG_ADOPT) != 0;
  if (adopting) {
    m->flags = 0;
    flags = 0;
    adopt(s, a);
    deliver_carry(s); /* queued behind; AX_MSG_GIVEN is handled now, first */
  } else if (s->giver == a->ref && s->owner == NULL && !s->closed) {
    m->flags = 0;
    carry(s, m, flags); /* the copy keeps the reference */
    return 0;
  } else {
    s->inbox--;
  }
  int rc = 0;
  if (!s->closed && s->owner == a) {
    s->refs++; /* the turn's own: s outlives whatever the behaviour does */
    s->handling = true;
    rc = ax__invoke(a, m);
    s->handling = false;
    /* A fiber may have kept m (it keeps its CREDIT and FINAL for
     * src_unkept), or kept it and given it back already (FINISHED). */
    bool kept = (m->flags & (AX__MSG_KEPT | AX__MSG_FINISHED)) != 0;
    if (!(m->flags & AX__MSG_KEPT))
      m->flags &= (uint16_t)~(AX__SRC_FLAGS | AX__MSG_FINISHED);
    if (adopting && !s->closed && s->owner == a && s->ops->credit != NULL)
      s->ops->credit(s); /* frames buffered before the move, after the carried ones */
    if (kept) {
      put_ref(s); /* the turn's (a hand-over asked for meanwhile goes now) */
      return rc;
    }
    s->refs--; /* never the last: the message's is still held */
  } else if (!adopting) {
    m->flags = 0;
    if (s->closed && s->ops->undelivered != NULL)
      s->ops->undelivered(s, m);
  }
  src_finish(s, a, flags);
  return rc;
}

/* A fiber gives back a message of s it kept: finish it now. */
static void src_unkept(ax_actor_t *a, ax__msg_t *m) {
  ax__src_t *s = (ax__src_t *)(uintptr_t)m->aux;
  unsigned flags = m->flags & (AX__MSG_CREDIT | AX__MSG_FINAL);
  m->flags = (uint16_t)((m->flags & ~AX__SRC_FLAGS) | AX__MSG_FINISHED);
  src_finish(s, a, flags);
}

static bool src_drop(ax_ref_t self, int reason, ax__msg_t *m) {
  (void)reason;
  ax__src_t *s = (ax__src_t *)(uintptr_t)m->aux;
  unsigned flags = m->flags;
  m->flags = 0;
  if (flags & AX__MSG_ADOPT) {
    /* the new owner died before taking it over: finish the source here */
    finish_here(s);
    ax__src_unref(s); /* the open reference */
    ax__src_unref(s); /* the hand-over message's */
    return false;
  }
  if (s->giver == self && s->owner == NULL && !s->closed) {
    carry(s, m, flags);
    return false;
  }
  s->inbox--;
  if (flags & AX__MSG_CREDIT)
    s->inflight--;
  ax__src_unref(s);
  return false;
}

/* ------------------------------------------------------------------------ */
/* The feature                                                               */

/* The owner died: every source it owns closes (a stream with writes still
 * queued lingers on). */
static void sources_on_death(ax_actor_t *a, int reason) {
  (void)reason;
  ax__src_t *s;
  while ((s = ax__src_first(a)) != NULL)
    ax__src_close(s);
}

static int io_core_init(ax__core_t *c) {
  c->slot[AX__CORE_SLOT_IO] = ax__calloc(1, sizeof(ax__io_core_t));
  return c->slot[AX__CORE_SLOT_IO] != NULL ? 0 : -ENOMEM;
}

static void io_core_stop(ax__core_t *c);

static void io_core_free(ax__core_t *c) {
  ax__io_core_t *io = ax__io_core(c);
  if (io == NULL)
    return;
  io_core_stop(c); /* a runtime that never ran still ends what lingers */
  free(io->scratch);
  free(io);
  c->slot[AX__CORE_SLOT_IO] = NULL;
}

/* The runtime stops: end every source of this core that still lingers. */
static void io_core_stop(ax__core_t *c) {
  ax__io_core_t *io = ax__io_core(c);
  io->stop_until = ax_now() + AX__STOP_REAP_NS;
  while (io->lingering != NULL) {
    ax__src_t *s = AX_CONTAINER_OF(io->lingering, ax__src_t, llink);
    s->ops->abort(s);
  }
}

static const ax__kind_t io_kind = {.handle = src_handle, .drop = src_drop, .unkept = src_unkept};

static ax__feature_t sources = {
    .name = "sources",
    .order = AX__ORDER_SOURCES,
    .core_init = io_core_init,
    .core_free = io_core_free,
    .core_stop = io_core_stop,
    .actor_death = sources_on_death,
};

AX__FEATURE_INIT(sources) {
  ax__kind_register(AX__SYS_IO, &io_kind);
  ax__feature_register(&sources);
}
