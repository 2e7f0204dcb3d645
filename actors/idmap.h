/* An index of records by a 64-bit key: a core's timers and monitors by id, so that finding one costs the same among a million as among one. */
#ifndef AXON_ACTORS_IDMAP_H
#define AXON_ACTORS_IDMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Intrusive and chained: a record embeds an ax__idnode_t per index it is
 * in, with the key set before it is added.  Keys need not be unique: a
 * lookup walks the members with its key (ax__idmap_next) and the caller
 * checks the record's own fields.  The bucket array doubles past one member
 * per bucket and halves below one per eight, so an index costs about
 * 8 bytes per member at most, plus the nodes (24 bytes each).  Adding and
 * removing cost O(1) whatever the keys; a lookup walks one chain.  One thread (the owner core)
 * uses an index: nothing here is atomic.
 */
typedef struct ax__idnode {
  struct ax__idnode *next;
  /* The link that points to this node (the bucket or the previous node's
   * next): a removal unlinks at once, however many members share its key
   * (a newcomer's 80,000 monitors of one target, each removal a walk of
   * the chain). */
  struct ax__idnode **pprev;
  uint64_t key;
} ax__idnode_t;

typedef struct ax__idmap {
  ax__idnode_t **bucket; /* NULL until the first add */
  size_t count;
  unsigned bits; /* log2 of the number of buckets */
} ax__idmap_t;

/* Adds n, whose key is set.  Returns 0, or -ENOMEM when the index has no
 * buckets yet and none can be had (n is not added then).  A failed growth
 * is no error: the chains only get longer. */
int ax__idmap_add(ax__idmap_t *m, ax__idnode_t *n);

/* Takes n, a member, out of the index. */
void ax__idmap_remove(ax__idmap_t *m, ax__idnode_t *n);

/* The member with key `key` that follows `after` in its chain (NULL: the
 * first one), or NULL. */
ax__idnode_t *ax__idmap_next(const ax__idmap_t *m, uint64_t key, const ax__idnode_t *after);

/* Calls visit(n, arg) for every member; a member for which it returns
 * false is taken out first (visit may then free it).  The index may
 * shrink afterwards. */
void ax__idmap_filter(ax__idmap_t *m, bool (*visit)(ax__idnode_t *n, void *arg), void *arg);

/* Frees the buckets of an index that must be empty. */
void ax__idmap_destroy(ax__idmap_t *m);

#endif /* AXON_ACTORS_IDMAP_H */
