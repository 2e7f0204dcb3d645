/* The base of every I/O source: ownership, messages with credit, watching, moving, two-phase close. */
#ifndef AXON_ACTORS_IO_SRC_H
#define AXON_ACTORS_IO_SRC_H

#include <assert.h>
#include <stdbool.h>
#include <stdint.h>

#include "actors/actors.h"
#include "actors/list.h"
#include "axon/source.h"

/*
 * A source is an fd (or a subscription) owned by one actor and served by
 * that actor's core: its watchers live on the core's loop, its events become
 * messages in the owner's mailbox, and only that core touches it.  When it
 * is given to an actor of another core, the old core stops touching it
 * before the hand-over message is pushed, and the new core starts when it
 * pops that message (the mailbox's release/acquire orders the two).
 *
 * Messages of a source are system messages (AX__SYS_IO) whose aux points at
 * the source.  Each one holds a reference, so the source's memory outlives
 * every message that names it; a message of a closed source is dropped
 * instead of delivered, which is what makes close two-phase: after close
 * returns, the fd is out of the loop (no new event) and nothing already
 * queued reaches the behaviour.
 *
 * A source that cannot go on by itself (its peer went away, or the loop
 * refused to watch its fd any more) ends: AX_MSG_CLOSED{err} is posted as
 * its last message (ops->end), and it is closed once the owner has handled
 * that.
 */
typedef struct ax__src ax__src_t;
typedef struct ax__src_rd ax__src_rd_t;

typedef struct ax__src_ops {
  /* The owner stopped, or the user closed the source: stop watching and
   * release the fd (the source may keep a reference while it lingers). */
  void (*close)(ax__src_t *s);
  /* The last reference is gone: free the memory. */
  void (*free)(ax__src_t *s);
  /* Credit came back after the window had been full: read again.  May be
   * NULL for sources that never fill their window. */
  void (*credit)(ax__src_t *s);
  /* The source cannot go on: post its AX_MSG_CLOSED{err}, once.  NULL:
   * ax__src_end posts the generic one (ax_source_ev_t). */
  void (*end)(ax__src_t *s, int err);
  /* Moving: stop watching on the old core (detach) and start on the new
   * one (attach); fix up pointers into a copied message (rebase).  NULL
   * for sources that cannot move. */
  void (*detach)(ax__src_t *s);
  void (*attach)(ax__src_t *s);
  void (*rebase)(ax__msg_t *copy, const ax__msg_t *orig);
  /* A message of the closed source reached its live owner and was dropped
   * instead of delivered (a listener closes the stream an undelivered
   * ACCEPT carried).  May be NULL. */
  void (*undelivered)(ax__src_t *s, ax__msg_t *m);
  /* The runtime stops while the closed source lingers (still flushing):
   * give up now and drop the linger reference.  NULL if it never lingers. */
  void (*abort)(ax__src_t *s);
} ax__src_ops_t;

/* ax__src_t.magic: what a handle the user passes in must hold (checked by
 * AX__SRC_ASSERT in debug builds).  A source gets CLOSED when closed and
 * FREED just before its memory goes back, so a call through a stale handle
 * trips the assertion instead of reading or writing freed memory quietly. */
enum {
  AX__SRC_OPEN = 0x6f70656eu,
  AX__SRC_CLOSED = 0x636c6f73u,
  AX__SRC_FREED = 0xdeadf7eeu,
};

struct ax__src {
  const ax__src_ops_t *ops;
  ax_actor_t *owner; /* NULL once closed or while moving */
  ax__core_t *core;  /* the core whose loop serves it */
  uint32_t magic;    /* AX__SRC_*: past the allocator's free-list words */
  ax__link_t olink; /* the owner's list of sources (while open) */
  ax__link_t llink; /* the core's list of lingering sources (while closed
                       and flushing): a link of its own, as a closing
                       source is on both lists for a moment */
  uint32_t refs;     /* 1 while open, plus one per queued message and linger */
  uint32_t inflight; /* credited messages not handled yet */
  uint32_t window;   /* the most credited messages in flight (0: no limit) */
  uint32_t inbox;    /* messages of this source in the owner's mailbox */
  bool closed;       /* closed by the user, the owner's death or CLOSED */
  bool ended;        /* its AX_MSG_CLOSED is posted */
  bool counted;      /* counted in the core's fds (ax__core_count_io) */
  bool lost;         /* moving dropped a message (out of memory) */
  bool lingering;    /* on the core's lingering list */
  bool handling;     /* the owner's behaviour is handling a message of it */
  /* moving (ax__src_give) */
  ax_ref_t giver, to;
  ax__msg_t *carry_head, *carry_tail; /* copies of the giver's queued messages */
  ax__msg_t *adopt;  /* the hand-over message, sent when inbox reaches 0 */
  ax__src_rd_t *rd;  /* what a fiber owner has read of it (made by its first read) */
};

/* What a fiber has read of a stream it owns (actors/fiber.c), freed when
 * the stream closes (ax__fiber_rd_free). */
struct ax__src_rd {
  ax__msg_t *held;       /* a kept AX_MSG_DATA read in part */
  size_t held_off;       /* the bytes of it already read */
  unsigned char *unread; /* bytes a failed call read, to be read again (malloc) */
  size_t unread_len;
  bool end;              /* the fiber read the stream's end (EOF or CLOSED) */
  int err;               /* and its reason: 0 for EOF */
};

/* Kind flags of AX__SYS_IO messages (ax__msg_t.flags). */
enum {
  AX__MSG_CREDIT = AX__MSG_KIND_FLAG(0), /* counts against the window */
  AX__MSG_FINAL = AX__MSG_KIND_FLAG(1),  /* CLOSED: the source is closed once handled */
  AX__MSG_ADOPT = AX__MSG_KIND_FLAG(2),  /* the hand-over message (AX_MSG_GIVEN) */
  AX__MSG_FINISHED = AX__MSG_KIND_FLAG(3), /* kept and given back while being handled */
};

/* A core's source state (AX__CORE_SLOT_IO), made with the core. */
typedef struct ax__io_core {
  ax__link_t *lingering;  /* closed sources still flushing writes (llink) */
  unsigned char *scratch; /* the read buffer of stream sources, made on first use */
  /* While the runtime stops (io_core_stop): until when the aborts of
   * lingering sources may wait for what they asked to end (process.c:
   * children sent kill_signal), all of them together. */
  int64_t stop_until;
} ax__io_core_t;

/* How long a stopping core waits, in all, for the children it signalled
 * (process.c's op_abort) before it lets the rest go unreaped. */
#define AX__STOP_REAP_NS (200 * AX_NSEC_PER_MSEC)

static inline ax__io_core_t *ax__io_core(ax__core_t *c) { return c->slot[AX__CORE_SLOT_IO]; }

/* Misuse checks of the public calls (debug builds; nothing in Release):
 * the handle names an open source, and the calling thread runs the core
 * that serves it (AX__SRC_ASSERT) or, for the few calls any thread may
 * make, only the former (AX__SRC_ASSERT_OPEN). */
#define AX__SRC_ASSERT_OPEN(s) assert((s)->magic == AX__SRC_OPEN)
#define AX__SRC_ASSERT(s) assert((s)->magic == AX__SRC_OPEN && (s)->core == ax__tls_core)

/* Allocates a zeroed source object of `size` bytes (the source's struct,
 * whose first member is its ax__src_t) owned by `owner` (on its core), with
 * one reference and linked into the owner's list.  NULL when out of
 * memory.  The owner's core. */
void *ax__src_new(size_t size, const ax__src_ops_t *ops, ax_actor_t *owner, uint32_t window);

/* A message for the owner with `payload` bytes of room, or NULL. */
ax__msg_t *ax__src_msg(ax__src_t *s, uint32_t type, size_t payload);

/* Posts m (from ax__src_msg) to the owner.  flags: AX__MSG_CREDIT and/or
 * AX__MSG_FINAL.  The owner core only. */
void ax__src_post(ax__src_t *s, ax__msg_t *m, unsigned flags);

/* True when another credited message may be posted now. */
static inline bool ax__src_has_credit(const ax__src_t *s) {
  return s->window == 0 || s->inflight < s->window;
}

/* True when the source is open, owned (not moving) and has credit: what
 * every source asks before it reads more. */
static inline bool ax__src_may_post(const ax__src_t *s) {
  return !s->closed && s->owner != NULL && ax__src_has_credit(s);
}

/* Makes io request exactly `want` (0: stopped), starting, modifying or
 * stopping it; *cur holds what io requests now.  Returns 0 or the loop's
 * error (-ENOMEM, -ENOSPC: too many watches, -EBADF, ...); a watcher the
 * loop refused to change is stopped (*cur 0).  Loop thread. */
int ax__io_want(ax_io_t *io, unsigned *cur, unsigned want);

/* ax__io_want for a source's watcher: when the loop refuses
 * (-ENOMEM, -ENOSPC: too many watches, -EBADF, ...), the source ends with
 * AX_MSG_CLOSED{err} (ax__src_end) and that error is returned.  Owner
 * core. */
int ax__src_watch(ax__src_t *s, ax_io_t *io, unsigned *cur, unsigned want);

/* Ends the source: posts its AX_MSG_CLOSED{err} once (ops->end, or the
 * generic ax_source_ev_t) with AX__MSG_FINAL.  Owner core. */
void ax__src_end(ax__src_t *s, int err);

/* Counts the source in its core's fds (an idle core with fds polls its
 * loop instead of spinning).  Idempotent. */
void ax__src_count(ax__src_t *s, bool on);

/* Closes the source as the user's close call does: marks it closed, unlinks
 * it from the owner, calls ops->close and drops the open reference.
 * Idempotent. */
void ax__src_close(ax__src_t *s);

/* The public close calls (ax_dgram_close, ax_efd_close, ...): -EINVAL for
 * NULL, else (debug builds asserting an open handle on its owner's core)
 * ax__src_close and 0.  s is the handle: every source struct starts with
 * its ax__src_t. */
int ax__src_close_handle(ax__src_t *s);

/* A closed source that keeps flushing holds a reference and sits on its
 * core's lingering list, so that a stopping runtime can end it. */
void ax__src_linger(ax__src_t *s, bool on);

/* Drops a reference; the last one frees the source (ops->free). */
void ax__src_unref(ax__src_t *s);

/* The sources owned by an actor (its AX__SLOT_SOURCES list), first one or
 * NULL; follow onext. */
static inline ax__src_t *ax__src_first(const ax_actor_t *a) {
  return AX__LIST_ENTRY((ax__link_t *)ax__slot_get(a, AX__SLOT_SOURCES), ax__src_t, olink);
}

/* The next source of the same owner, or NULL. */
static inline ax__src_t *ax__src_next(const ax__src_t *s) {
  return AX__LIST_ENTRY(s->olink.next, ax__src_t, olink);
}

/* Gives the source to the actor `to`; `given` is the hand-over message
 * (AX_MSG_GIVEN) the new owner gets first.  Errors: -EINVAL (AX_REF_NONE,
 * a port, moving unsupported), -ESRCH (no such actor), -EXDEV (another
 * runtime's), -EBUSY (a fiber owner holds bytes of it it has not read),
 * -ENOMEM. */
int ax__src_give(ax__src_t *s, ax_ref_t to, ax__msg_t *given);

#endif /* AXON_ACTORS_IO_SRC_H */
