/* Messages: the block a mailbox links, its flags, system-message kinds and their table. */
#ifndef AXON_RUNTIME_MSG_H
#define AXON_RUNTIME_MSG_H

#include <stdalign.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "axon/actor.h"
#include "runtime/mpscq.h"
#include "runtime/pool.h"

/*
 * A message is one block: the queue link, the public ax_msg_t the
 * behaviour sees, and the payload copied inline.  Small ones come from the
 * sending core's pools (size classes below), large ones and those of
 * threads that are not cores from malloc; `home` says which, so any thread
 * can free a message (ax__msg_free).
 *
 * `sys` says who handles it: 0 is an ordinary message for the behaviour;
 * anything else is a system message whose kind (ax__kind_t, registered by
 * the runtime or by a feature of the actor layer) handles it, or drops it
 * when the receiver is dead.
 */
typedef struct ax__msg {
  ax__mpscq_node_t node; /* a core's inbox, then the receiver's mailbox */
  ax_msg_t m;
  ax_ref_t to; /* the receiver, while in a core's inbox */
  ax__pool_t *home; /* NULL: malloc'd */
  union {
    void (*release)(void *); /* AX__MSG_OWNED: frees m.data */
    uint64_t aux;            /* a system message: its kind's own word (a
                                timer id, a source, a call, ...) */
  };
  uint16_t sys;   /* AX__SYS_* or a feature's kind; 0: for the behaviour */
  uint16_t flags; /* AX__MSG_* */
  uint32_t reserved;
  alignas(16) unsigned char payload[]; /* inline copy of the data */
} ax__msg_t;

/* ax__msg_t.flags.  Bits 0-7 are the runtime's (below); bits 8-15 belong
 * to the message's kind, which alone reads them (AX__MSG_KIND_FLAG). */
enum {
  AX__MSG_OWNED = 1u << 0, /* ax_send_owned: release(m.data) after the turn */
  AX__MSG_TAKEN = 1u << 1, /* ax_msg_take() took the buffer: no release */
  AX__MSG_KEPT = 1u << 2,  /* kept beyond its turn (ax__msg_keep) */
  AX__MSG_FIRST = 1u << 3, /* an actor's first message, through the inbox */
  AX__MSG_COUNTED = 1u << 4, /* counted in a bounded mailbox's inflight (ax__msg_uncount) */
};
#define AX__MSG_KIND_FLAG(n) ((uint16_t)(1u << (8 + (n))))

/* The size classes of message pools: 96 B (a payload of up to 16 bytes:
 * an int, a reference, a pair of them), 128 B .. 4 KiB, then 8 .. 128 KiB
 * of payload plus room for the header (a stream reads straight into one). */
#define AX__MSG_CLASSES 12
#define AX__MSG_TINY 96u   /* the first class */
#define AX__MSG_SMALL 128u /* the second: a send of at most this much minus
                              the header takes the inline fast path */
uint32_t ax__msg_class_size(unsigned cls);
_Static_assert(AX__MSG_TINY == sizeof(ax__msg_t) + 16, "the first class holds a 16-byte payload");

/* Allocates a message for `to` with room for `payload` bytes inline: from
 * the calling core's pool when `to` belongs to the same runtime (a pool
 * dies with its runtime, and another runtime may outlive it), from the
 * calling thread's own pools when it is no core (ax__thread_pools), else
 * (more than 128 KiB, or a core of another runtime) from malloc.  sys, flags, release and m.req are zeroed; the rest is the
 * caller's to fill.  NULL when out of memory or when payload is more than
 * ax_msg_t.size can say.  Any thread. */
ax__msg_t *ax__msg_alloc(ax_ref_t to, size_t payload);

/* ax__msg_alloc, then the header filled (sys, type, from, size and data)
 * and `size` bytes copied from data when data is not NULL (left for the
 * caller to fill otherwise).  NULL when out of memory.  Any thread. */
ax__msg_t *ax__msg_new(ax_ref_t to, unsigned sys, uint32_t type, const void *data, size_t size,
                       ax_ref_t from);

/* ax__msg_new for news that must not be lost to an allocation failure (a
 * source's end): on a core, for one of its runtime's actors, with a small
 * payload (at most AX__MSG_SMALL minus the header), a failed allocation is
 * served from the core's reserve of AX__VITAL messages, which successful
 * calls top up again.  NULL only when the reserve is empty too (or the
 * call is not of that kind and fails as ax__msg_new does). */
#define AX__VITAL 32
ax__msg_t *ax__msg_new_vital(ax_ref_t to, unsigned sys, uint32_t type, const void *data,
                             size_t size, ax_ref_t from);

/* Fills the core's reserve (ax__msg_new_vital): at its start, on its own
 * thread. */
void ax__vital_fill(ax__core_t *c);

/* Fills the header of a message from ax__msg_alloc (an ordinary one:
 * type, size, data, from, req) and copies size bytes of payload in (the
 * inline half of ax__msg_new, for the send paths).  Any thread. */
static inline void ax__msg_fill(ax__msg_t *m, uint32_t type, const void *data, size_t size,
                                uint64_t req, ax_ref_t from) {
  m->m.type = type;
  m->m.size = (uint32_t)size;
  m->m.data = size != 0 ? m->payload : NULL;
  m->m.from = from;
  m->m.req = req;
  if (size != 0)
    memcpy(m->payload, data, size);
}

/* Frees a message's memory (nothing else).  Any thread. */
static inline void ax__msg_free(ax__msg_t *m) {
  if (m->home != NULL)
    ax__pool_free(m->home, m);
  else
    free(m);
}

/* Runs an owned message's release function unless the receiver took the
 * buffer, and forgets the ownership so that it can never run twice.  The
 * kind's flags and AX__MSG_KEPT stay. */
static inline void ax__msg_release(ax__msg_t *m) {
  if ((m->flags & (AX__MSG_OWNED | AX__MSG_TAKEN)) == AX__MSG_OWNED && m->release != NULL)
    m->release((void *)m->m.data);
  m->flags &= (uint16_t)~(AX__MSG_OWNED | AX__MSG_TAKEN);
}

/* ------------------------------------------------------------------------ */
/* System-message kinds                                                      */

/* The runtime's own kinds; a feature's kinds are numbered from
 * AX__SYS_FEATURES up (the actor layer lists its own in actors/actors.h). */
enum {
  AX__SYS_NONE = 0, /* an ordinary message, for the behaviour */
  AX__SYS_INIT,     /* aux: the init hook to run */
  AX__SYS_STOP,     /* wakes the actor to stop; the reason is in the actor */
  AX__SYS_CALL,     /* aux: an ax__call_t to run on the receiver's core */
  AX__SYS_FEATURES, /* the first kind a feature may register */
  AX__SYS_KINDS = 16,
};

typedef struct ax__kind {
  /* m reached the front of the mailbox of the live actor a (its core).
   * Returns what a behaviour returns (0 go on, AX_STOP, < 0 a failure); a
   * kind that delivers m to the behaviour calls ax__invoke itself.  The
   * runtime frees m (unless kept) after this returns. */
  int (*handle)(ax_actor_t *a, ax__msg_t *m);
  /* m is dropped unhandled: the receiver `self` died with `reason`, or is
   * a port that was closed.  Release what m holds and tell whoever waits
   * on it.  Returns true when m counts as a dead letter.  The receiver's
   * core (or the port's owner thread); the runtime frees m after. */
  bool (*drop)(ax_ref_t self, int reason, ax__msg_t *m);
  /* m was kept (ax__msg_keep) and is given back now (ax__msg_unkeep):
   * finish what handle() left for after the turn.  Runs once, on the
   * receiver's core, before m is released.  May be NULL. */
  void (*unkept)(ax_actor_t *a, ax__msg_t *m);
} ax__kind_t;

/* The table, indexed by sys; NULL entries are kinds nobody registered. */
extern const ax__kind_t *ax__kinds[AX__SYS_KINDS];

/* Registers the kind `sys` (>= AX__SYS_FEATURES).  From a constructor, so
 * before any runtime exists: the table is read without a lock. */
void ax__kind_register(unsigned sys, const ax__kind_t *k);

#endif /* AXON_RUNTIME_MSG_H */
