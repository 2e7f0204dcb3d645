/* Intrusive doubly linked lists: the one list code of the actor layer's features. */
#ifndef AXON_ACTORS_LIST_H
#define AXON_ACTORS_LIST_H

#include <stddef.h>

#include "axon/common.h" /* AX_CONTAINER_OF */

/*
 * A member embeds an ax__link_t; a list is a pointer to its first link
 * (NULL: empty), kept wherever its owner likes (an extension slot, a struct
 * field).  Push and remove are O(1) and need no search.  The owner of the
 * list synchronises: these functions do nothing atomic.
 */
typedef struct ax__link {
  struct ax__link *next, *prev;
} ax__link_t;

/* Adds l at the front of the list whose first link is *head. */
static inline void ax__list_push(ax__link_t **head, ax__link_t *l) {
  l->prev = NULL;
  l->next = *head;
  if (l->next != NULL)
    l->next->prev = l;
  *head = l;
}

/* Takes l (a member of the list *head) out of it. */
static inline void ax__list_remove(ax__link_t **head, ax__link_t *l) {
  if (l->prev != NULL)
    l->prev->next = l->next;
  else
    *head = l->next;
  if (l->next != NULL)
    l->next->prev = l->prev;
  l->next = l->prev = NULL;
}

/* The member of type T whose link field `field` is l, or NULL for NULL. */
#define AX__LIST_ENTRY(l, T, field) ((l) != NULL ? AX_CONTAINER_OF(l, T, field) : (T *)NULL)

#endif /* AXON_ACTORS_LIST_H */
