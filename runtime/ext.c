/* The registries features plug into: their hooks and their system-message kinds; actor extensions. */
#include <errno.h>
#include <stdlib.h>

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
  if (a->ext == NULL)
    a->ext = ax__calloc(1, sizeof *a->ext);
  return a->ext;
}
