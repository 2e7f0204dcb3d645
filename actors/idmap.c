/* An index of records by a 64-bit key (idmap.h). */
#include <errno.h>
#include <stdlib.h>

#include "actors/idmap.h"
#include "io/alloc.h"

#define IDMAP_MIN_BITS 4u

/* Fibonacci hashing: ids count up, references differ in their high bits;
 * the multiply spreads both over the top bits, which pick the bucket. */
static size_t slot_of(uint64_t key, unsigned bits) {
  return (size_t)((key * 0x9e3779b97f4a7c15ull) >> (64u - bits));
}

/* Puts n at the head of the chain at *head. */
static inline void link_head(ax__idnode_t **head, ax__idnode_t *n) {
  n->next = *head;
  if (n->next != NULL)
    n->next->pprev = &n->next;
  n->pprev = head;
  *head = n;
}

/* Takes n out of its chain. */
static inline void unlink_node(ax__idnode_t *n) {
  *n->pprev = n->next;
  if (n->next != NULL)
    n->next->pprev = n->pprev;
}

/* Rehashes into 2^bits buckets; nothing changes when that memory is not
 * to be had. */
static void resize(ax__idmap_t *m, unsigned bits) {
  ax__idnode_t **b = ax__calloc((size_t)1 << bits, sizeof *b);
  if (b == NULL)
    return;
  for (size_t i = 0; i < ((size_t)1 << m->bits); i++) {
    for (ax__idnode_t *n = m->bucket[i], *next; n != NULL; n = next) {
      next = n->next;
      link_head(&b[slot_of(n->key, bits)], n);
    }
  }
  free(m->bucket);
  m->bucket = b;
  m->bits = bits;
}

/* Halves the buckets while fewer than one in eight holds a member. */
static void shrink(ax__idmap_t *m) {
  while (m->bits > IDMAP_MIN_BITS && m->count < ((size_t)1 << m->bits) / 8) {
    unsigned bits = m->bits;
    resize(m, bits - 1);
    if (m->bits == bits)
      return; /* no memory for the smaller array: keep the larger one */
  }
}

int ax__idmap_add(ax__idmap_t *m, ax__idnode_t *n) {
  if (m->bucket == NULL) {
    m->bucket = ax__calloc((size_t)1 << IDMAP_MIN_BITS, sizeof *m->bucket);
    if (m->bucket == NULL)
      return -ENOMEM;
    m->bits = IDMAP_MIN_BITS;
    m->count = 0;
  }
  if (m->count >= ((size_t)1 << m->bits) && m->bits < 40)
    resize(m, m->bits + 1);
  link_head(&m->bucket[slot_of(n->key, m->bits)], n);
  m->count++;
  return 0;
}

void ax__idmap_remove(ax__idmap_t *m, ax__idnode_t *n) {
  unlink_node(n);
  m->count--;
  shrink(m);
}

ax__idnode_t *ax__idmap_next(const ax__idmap_t *m, uint64_t key, const ax__idnode_t *after) {
  if (m->bucket == NULL)
    return NULL;
  ax__idnode_t *n = after != NULL ? after->next : m->bucket[slot_of(key, m->bits)];
  while (n != NULL && n->key != key)
    n = n->next;
  return n;
}

void ax__idmap_filter(ax__idmap_t *m, bool (*visit)(ax__idnode_t *n, void *arg), void *arg) {
  if (m->bucket == NULL)
    return;
  for (size_t i = 0; i < ((size_t)1 << m->bits); i++) {
    for (ax__idnode_t **p = &m->bucket[i]; *p != NULL;) {
      ax__idnode_t *n = *p;
      unlink_node(n); /* out first: visit may free n */
      if (visit(n, arg)) {
        link_head(p, n); /* kept, where it was */
        p = &n->next;
      } else {
        m->count--;
      }
    }
  }
  shrink(m);
}

void ax__idmap_destroy(ax__idmap_t *m) {
  free(m->bucket);
  m->bucket = NULL;
  m->count = 0;
}
