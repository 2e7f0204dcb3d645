/* Links: two actors that stop together on a failure, unless one traps exits. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "actors/idmap.h"
#include "actors/link.h"

/*
 * Each side keeps the other in its own link set (AX__SLOT_LINKS), on its
 * own core, with the exit message it will send the other when it dies:
 * made in advance, so that a death never needs memory to be reported (as
 * with monitors).  ax_link makes both exits: it keeps its own and sends the
 * other's in the AX__SYS_LINK request's aux; the handler keeps it, and a
 * LINK that reaches a dead actor is answered with it at once.  A death
 * sends every kept exit.  An exit is acted on only if the sender is still
 * in the receiver's set, so an ax_unlink also silences an exit already on
 * its way, and an exit is acted on once.
 */
typedef struct link {
  ax_ref_t ref;
  ax__msg_t *exit; /* to ref, from the set's actor, reason written when sent */
} link_t;

/* Past this many links a set indexes them by reference, so that a link,
 * an unlink or an exit costs the same in an actor linked to 10^5 others. */
#define LINK_INDEX_MIN 16u

typedef struct link_set {
  bool trap;
  unsigned n, cap;
  link_t *links;
  ax__idnode_t *nodes; /* nodes[i] indexes links[i]; NULL: not indexed (small, or no memory) */
  ax__idmap_t index;
} link_set_t;

/* a's set, made when make is true (NULL: none, or out of memory). */
static link_set_t *set_of(ax_actor_t *a, bool make) {
  link_set_t *s = ax__slot_get(a, AX__SLOT_LINKS);
  if (s != NULL || !make)
    return s;
  ax__actor_ext_t *ext = ax__actor_ext(a);
  s = ext != NULL ? ax__calloc(1, sizeof *s) : NULL;
  if (s != NULL)
    ext->slot[AX__SLOT_LINKS] = s;
  return s;
}

/* Where r is in s, or -1. */
static int set_find(const link_set_t *s, ax_ref_t r) {
  if (s == NULL)
    return -1;
  if (s->nodes != NULL) {
    for (ax__idnode_t *n = ax__idmap_next(&s->index, r, NULL); n != NULL;
         n = ax__idmap_next(&s->index, r, n))
      if (s->links[n - s->nodes].ref == r)
        return (int)(n - s->nodes);
    return -1;
  }
  for (unsigned i = 0; i < s->n; i++)
    if (s->links[i].ref == r)
      return (int)i;
  return -1;
}

static bool set_has(const link_set_t *s, ax_ref_t r) {
  return set_find(s, r) >= 0;
}

/* Drops the index; the set is searched from end to end again. */
static void unindex(link_set_t *s) {
  ax__idmap_destroy(&s->index);
  free(s->nodes);
  s->nodes = NULL;
}

/* (Re)builds the index for s->cap links; without memory the set stays
 * unindexed, which is slower, never wrong. */
static void reindex(link_set_t *s) {
  unindex(s);
  s->nodes = ax__malloc(s->cap * sizeof *s->nodes);
  if (s->nodes == NULL)
    return;
  for (unsigned i = 0; i < s->n; i++) {
    s->nodes[i].key = s->links[i].ref;
    if (ax__idmap_add(&s->index, &s->nodes[i]) < 0) {
      unindex(s);
      return;
    }
  }
}

/* Adds r with its exit (r must not be there).  Returns 0 or -ENOMEM. */
static int set_add(link_set_t *s, ax_ref_t r, ax__msg_t *exit) {
  if (s->n == s->cap) {
    unsigned cap = s->cap != 0 ? s->cap * 2 : 4;
    link_t *links = ax__realloc(s->links, cap * sizeof *links);
    if (links == NULL)
      return -ENOMEM;
    s->links = links;
    s->cap = cap;
    if (s->nodes != NULL)
      reindex(s); /* the nodes' array grows too, and they are linked by address */
  }
  s->links[s->n] = (link_t){.ref = r, .exit = exit};
  if (s->nodes != NULL) {
    s->nodes[s->n].key = r;
    (void)ax__idmap_add(&s->index, &s->nodes[s->n]); /* has buckets: cannot fail */
  }
  s->n++;
  if (s->nodes == NULL && s->n >= LINK_INDEX_MIN)
    reindex(s);
  return 0;
}

static void msg_free(ax__msg_t *m) {
  if (m != NULL)
    ax__msg_free(m);
}

/* Gives back what a set that has shrunk to a quarter of its capacity no
 * longer needs (an actor once linked to 10^5 others kept their array):
 * half of it, and the index is rebuilt for the new size.  Halving at a
 * quarter keeps a set that grows and shrinks around one size from
 * reallocating at every change. */
static void set_shrink(link_set_t *s) {
  if (s->cap <= 16 || s->n > s->cap / 4)
    return;
  unsigned cap = s->cap / 2;
  link_t *links = ax__realloc(s->links, cap * sizeof *links);
  if (links == NULL)
    return; /* it stays as large: never wrong */
  s->links = links;
  s->cap = cap;
  if (s->nodes == NULL)
    return;
  if (s->n >= LINK_INDEX_MIN)
    reindex(s); /* nodes[] has one node per slot of links[] */
  else
    unindex(s);
}

/* Removes r, freeing its unsent exit; false when it was not there. */
static bool set_remove(link_set_t *s, ax_ref_t r) {
  int i = set_find(s, r);
  if (i < 0)
    return false;
  ax__msg_free(s->links[i].exit);
  unsigned last = --s->n;
  if (s->nodes != NULL) {
    ax__idmap_remove(&s->index, &s->nodes[i]);
    if ((unsigned)i != last)
      ax__idmap_remove(&s->index, &s->nodes[last]);
  }
  if ((unsigned)i != last) {
    s->links[i] = s->links[last];
    if (s->nodes != NULL) {
      s->nodes[i].key = s->links[i].ref;
      (void)ax__idmap_add(&s->index, &s->nodes[i]);
    }
  }
  set_shrink(s);
  return true;
}

static void set_free(ax_actor_t *a, link_set_t *s) {
  for (unsigned i = 0; i < s->n; i++)
    ax__msg_free(s->links[i].exit);
  unindex(s);
  free(s->links);
  free(s);
  a->ext->slot[AX__SLOT_LINKS] = NULL;
}

/* The exit `from` will send `to` when it ends; NULL when out of memory. */
static ax__msg_t *exit_new(ax_ref_t to, ax_ref_t from) {
  ax_link_down_t d = {.ref = from, .reason = 0};
  return ax__msg_new(to, AX__SYS_LINK_EXIT, AX_MSG_LINK_DOWN, &d, sizeof d, from);
}

/* Sends an exit made by exit_new, with its reason. */
static void send_exit(ax__msg_t *m, ax_ref_t to, int reason) {
  ((ax_link_down_t *)(void *)m->payload)->reason = reason; /* published by the send */
  (void)ax__send_msg(to, m); /* an actor that is gone needs no news */
}

int ax_link(ax_actor_t *self, ax_ref_t other) {
  if (self == NULL || other == AX_REF_NONE || other == self->ref ||
      ax__ref_core(other) == AX__REF_NO_CORE || /* a port: nothing to link to */
      ax__ref_other_rt(self->core->rt, other))
    return -EINVAL;
  AX__ASSERT_OWNER(self);
  link_set_t *s = set_of(self, true);
  if (s == NULL)
    return -ENOMEM;
  if (set_has(s, other))
    return 0;
  ax__msg_t *req = ax__msg_new(other, AX__SYS_LINK, AX__SYS_LINK, &self->ref, sizeof self->ref,
                               self->ref);
  ax__msg_t *mine = req != NULL ? exit_new(other, self->ref) : NULL;
  ax__msg_t *theirs = mine != NULL ? exit_new(self->ref, other) : NULL;
  if (theirs == NULL || set_add(s, other, mine) < 0) {
    msg_free(theirs);
    msg_free(mine);
    msg_free(req);
    return -ENOMEM;
  }
  req->aux = (uint64_t)(uintptr_t)theirs; /* the other keeps it, or answers with it */
  int rc = ax__send_msg(other, req);
  if (rc == -ENOMEM) { /* the request never left: no link */
    set_remove(s, other);
    ax__msg_free(theirs);
    return rc;
  }
  if (rc < 0)
    send_exit(theirs, self->ref, -ESRCH); /* no such actor: its "end" at once */
  return 0;
}

int ax_unlink(ax_actor_t *self, ax_ref_t other) {
  if (self == NULL)
    return -EINVAL;
  AX__ASSERT_OWNER(self);
  if (!set_remove(set_of(self, false), other))
    return -ENOENT;
  /* Best effort: should the request not go, the other keeps its side until
   * it dies, and its exit is then ignored here (no longer in the set). */
  ax__msg_t *m = ax__msg_new(other, AX__SYS_UNLINK, AX__SYS_UNLINK, &self->ref, sizeof self->ref,
                             self->ref);
  if (m != NULL)
    (void)ax__send_msg(other, m);
  return 0;
}

int ax_trap_exits(ax_actor_t *self, bool trap) {
  if (self == NULL)
    return -EINVAL;
  AX__ASSERT_OWNER(self);
  link_set_t *s = set_of(self, trap);
  if (s == NULL)
    return trap ? -ENOMEM : 0;
  s->trap = trap;
  return 0;
}

int ax__link_attach(ax_actor_t *parent, ax_actor_t *child) {
  link_set_t *ps = set_of(parent, true), *cs = set_of(child, true);
  ax__msg_t *to_child = ps != NULL && cs != NULL ? exit_new(child->ref, parent->ref) : NULL;
  ax__msg_t *to_parent = to_child != NULL ? exit_new(parent->ref, child->ref) : NULL;
  if (to_parent == NULL || set_add(cs, parent->ref, to_parent) < 0) {
    msg_free(to_parent);
    msg_free(to_child);
    ax__link_detach(parent, child);
    return -ENOMEM;
  }
  if (set_add(ps, child->ref, to_child) < 0) {
    ax__msg_free(to_child);
    ax__link_detach(parent, child); /* frees to_parent with the child's set */
    return -ENOMEM;
  }
  return 0;
}

void ax__link_detach(ax_actor_t *parent, ax_actor_t *child) {
  set_remove(set_of(parent, false), child->ref);
  link_set_t *cs = set_of(child, false); /* the child's whole set: it is about to be discarded */
  if (cs != NULL)
    set_free(child, cs);
}

/* ------------------------------------------------------------------------ */
/* The kinds                                                                 */

/* LINK reaching the other side: remember the requester with the exit
 * it carries (or one side of a link both made at once: that exit is
 * spare), or tell it at once that the link could not be made (as if this
 * side had failed). */
static int link_handle(ax_actor_t *a, ax__msg_t *m) {
  ax_ref_t from;
  memcpy(&from, m->payload, sizeof from);
  ax__msg_t *exit = (ax__msg_t *)(uintptr_t)m->aux;
  link_set_t *s = set_of(a, true);
  if (s != NULL && set_has(s, from))
    ax__msg_free(exit);
  else if (s == NULL || set_add(s, from, exit) < 0)
    send_exit(exit, from, -ENOMEM);
  return 0;
}

/* LINK reaching a dead actor: its end, with its reason. */
static bool link_drop(ax_ref_t self, int reason, ax__msg_t *m) {
  (void)self;
  ax_ref_t from;
  memcpy(&from, m->payload, sizeof from);
  send_exit((ax__msg_t *)(uintptr_t)m->aux, from, reason);
  return false;
}

static int unlink_handle(ax_actor_t *a, ax__msg_t *m) {
  ax_ref_t from;
  memcpy(&from, m->payload, sizeof from);
  set_remove(set_of(a, false), from);
  return 0;
}

/* An exit reaching a live actor: nothing if the link is gone; the message
 * for one that traps; otherwise the same end on a failure. */
static int exit_handle(ax_actor_t *a, ax__msg_t *m) {
  ax_link_down_t d;
  memcpy(&d, m->payload, sizeof d);
  link_set_t *s = set_of(a, false);
  if (!set_remove(s, d.ref))
    return 0;
  if (s->trap)
    return ax__invoke(a, m);
  return d.reason < 0 ? d.reason : 0;
}

/* An exit for an actor that died meanwhile: a dead letter. */
static bool exit_drop(ax_ref_t self, int reason, ax__msg_t *m) {
  (void)self;
  (void)reason;
  (void)m;
  return true;
}

/* The actor died: every linked actor hears of it. */
static void links_on_death(ax_actor_t *a, int reason) {
  link_set_t *s = set_of(a, false);
  if (s == NULL)
    return;
  for (unsigned i = 0; i < s->n; i++) {
    send_exit(s->links[i].exit, s->links[i].ref, reason);
    s->links[i].exit = NULL; /* sent: no longer the set's */
  }
  s->n = 0;
  set_free(a, s);
}

static const ax__kind_t link_kind = {.handle = link_handle, .drop = link_drop};
static const ax__kind_t unlink_kind = {.handle = unlink_handle};
static const ax__kind_t exit_kind = {.handle = exit_handle, .drop = exit_drop};

static ax__feature_t links = {
    .name = "links",
    .order = AX__ORDER_LINKS,
    .actor_death = links_on_death,
    .announces = true,
};

AX__FEATURE_INIT(links) {
  ax__kind_register(AX__SYS_LINK, &link_kind);
  ax__kind_register(AX__SYS_UNLINK, &unlink_kind);
  ax__kind_register(AX__SYS_LINK_EXIT, &exit_kind);
  ax__feature_register(&links);
}
