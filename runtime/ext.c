/* The registries features plug into: their hooks and their system-message kinds; actor extensions. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/core.h"

ax__feature_t *ax__features;

void ax__feature_register(ax__feature_t *f) {
  ax__feature_t **p = &ax__features;
  while (*p != NULL && (*p)->order <= f->order)
    p = &(*p)->next;
  f->next = *p;
  *p = f;
}

void ax__kind_register(unsigned sys, const ax__kind_t *k) {
  assert(sys >= AX__SYS_FEATURES && sys < AX__SYS_KINDS && ax__kinds[sys] == NULL);
  ax__kinds[sys] = k;
}

ax__actor_ext_t *ax__actor_ext(ax_actor_t *a) {
  if (a->ext != NULL)
    return a->ext;
  /* From the calling core's pool when it is a core of the actor's
   * runtime (given back like the actor, from whichever core), else malloc. */
  ax__core_t *cur = ax__tls_core;
  if (cur != NULL && cur->rt == a->core->rt && (a->ext = ax__pool_alloc(&cur->pools[AX__EXT_POOL])) != NULL) {
    a->ext_pooled = true;
    memset(a->ext, 0, sizeof *a->ext);
  } else {
    a->ext = ax__calloc(1, sizeof *a->ext);
  }
  return a->ext;
}

void ax__actor_ext_free(ax_actor_t *a) {
  if (a->ext == NULL)
    return;
  if (a->ext_pooled)
    ax__pool_free(ax__page_of(a->ext)->pool, a->ext);
  else
    free(a->ext);
  a->ext = NULL;
  a->ext_pooled = false;
}
