/* The name registry: one table per runtime behind a mutex (names are not a hot path). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/internal.h"

struct ax__name {
  ax__name_t *next;
  ax_ref_t ref;
  char name[AX_NAME_MAX + 1];
};

static bool name_ok(const char *name) {
  if (name == NULL)
    return false;
  size_t n = strnlen(name, AX_NAME_MAX + 1);
  return n > 0 && n <= AX_NAME_MAX;
}

int ax_register(ax_rt_t *rt, const char *name, ax_ref_t ref) {
  if (rt == NULL || !name_ok(name) || ref == AX_REF_NONE || ax__ref_rt(ref) != rt->index ||
      ax__ref_core(ref) >= rt->ncores)
    return -EINVAL;
  ax__name_t *n = malloc(sizeof *n);
  if (n == NULL)
    return -ENOMEM;
  strcpy(n->name, name);
  n->ref = ref;
  pthread_mutex_lock(&rt->names_lock);
  /* Counted before the liveness check (see the fence in ax__actor_die):
   * an actor dying concurrently then always looks for its names. */
  atomic_fetch_add_explicit(&rt->nnames, 1, memory_order_seq_cst);
  ax_rt_t *unused;
  ax__erec_t *erec;
  ax__entity_t *e = ax__resolve(ref, &unused, &erec);
  ax__resolve_done(erec);
  int rc = 0;
  if (e == NULL) {
    rc = -ESRCH;
  } else {
    for (ax__name_t *p = rt->names; p != NULL; p = p->next)
      if (strcmp(p->name, name) == 0) {
        rc = -EEXIST;
        break;
      }
  }
  if (rc == 0) {
    n->next = rt->names;
    rt->names = n;
  } else {
    atomic_fetch_sub_explicit(&rt->nnames, 1, memory_order_relaxed);
  }
  pthread_mutex_unlock(&rt->names_lock);
  if (rc < 0)
    free(n);
  return rc;
}

int ax_unregister(ax_rt_t *rt, const char *name) {
  if (rt == NULL || !name_ok(name))
    return -EINVAL;
  int rc = -ENOENT;
  pthread_mutex_lock(&rt->names_lock);
  for (ax__name_t **p = &rt->names; *p != NULL; p = &(*p)->next) {
    if (strcmp((*p)->name, name) == 0) {
      ax__name_t *n = *p;
      *p = n->next;
      free(n);
      atomic_fetch_sub_explicit(&rt->nnames, 1, memory_order_relaxed);
      rc = 0;
      break;
    }
  }
  pthread_mutex_unlock(&rt->names_lock);
  return rc;
}

ax_ref_t ax_whereis(ax_rt_t *rt, const char *name) {
  if (rt == NULL || !name_ok(name))
    return AX_REF_NONE;
  ax_ref_t ref = AX_REF_NONE;
  pthread_mutex_lock(&rt->names_lock);
  for (ax__name_t *p = rt->names; p != NULL; p = p->next)
    if (strcmp(p->name, name) == 0) {
      ref = p->ref;
      break;
    }
  pthread_mutex_unlock(&rt->names_lock);
  return ref;
}

/* Removes every name of an actor that died (its slot already fails). */
void ax__names_on_death(ax_rt_t *rt, ax_ref_t ref) {
  pthread_mutex_lock(&rt->names_lock);
  for (ax__name_t **p = &rt->names; *p != NULL;) {
    if ((*p)->ref == ref) {
      ax__name_t *n = *p;
      *p = n->next;
      free(n);
      atomic_fetch_sub_explicit(&rt->nnames, 1, memory_order_relaxed);
    } else {
      p = &(*p)->next;
    }
  }
  pthread_mutex_unlock(&rt->names_lock);
}

void ax__names_destroy(ax_rt_t *rt) {
  ax__name_t *n = rt->names;
  while (n != NULL) {
    ax__name_t *next = n->next;
    free(n);
    n = next;
  }
  rt->names = NULL;
}
