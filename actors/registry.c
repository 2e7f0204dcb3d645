/* The name registry: one list per runtime behind a mutex (names are not a hot path). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/internal.h"

/*
 * A name whose actor has stopped is dead: lookups treat it as absent and
 * remove it, a registration may take it over, and every 64 registrations a
 * sweep removes the rest.  So an actor's death costs the registry nothing
 * (no lock, no fence on the hot path of stopping), and "the name is removed
 * when the actor stops" holds for everything a caller can observe.
 */
struct ax__name {
  ax__name_t *next;
  ax_ref_t ref;
  char name[AX_NAME_MAX + 1];
};

#define AX__NAMES_SWEEP_EVERY 64u

static bool name_ok(const char *name) {
  if (name == NULL)
    return false;
  size_t n = strnlen(name, AX_NAME_MAX + 1);
  return n > 0 && n <= AX_NAME_MAX;
}

/* 0 when ref is alive, -ESRCH when it is not, -ENOMEM when that cannot be
 * told (the calling thread's epoch record could not be allocated). */
static int liveness(ax_ref_t ref) {
  ax_rt_t *rt;
  ax__erec_t *erec;
  ax__entity_t *e;
  int rc = ax__ref_enter(ref, &e, &rt, &erec);
  ax__ref_leave(erec);
  return rc;
}

/* False only for an actor known to be dead. */
static bool alive(ax_ref_t ref) { return liveness(ref) != -ESRCH; }

/* Finds name; unlinks and frees it (returning NULL) when its actor is dead.
 * Returns the link that points at the entry.  Under names_lock. */
static ax__name_t **find(ax_rt_t *rt, const char *name) {
  for (ax__name_t **p = &rt->names; *p != NULL; p = &(*p)->next) {
    if (strcmp((*p)->name, name) == 0) {
      if (alive((*p)->ref))
        return p;
      ax__name_t *dead = *p;
      *p = dead->next;
      free(dead);
      return NULL;
    }
  }
  return NULL;
}

static void sweep(ax_rt_t *rt) {
  for (ax__name_t **p = &rt->names; *p != NULL;) {
    if (alive((*p)->ref)) {
      p = &(*p)->next;
    } else {
      ax__name_t *dead = *p;
      *p = dead->next;
      free(dead);
    }
  }
}

int ax_register(ax_rt_t *rt, const char *name, ax_ref_t ref) {
  if (rt == NULL || !name_ok(name) || ref == AX_REF_NONE || ax__ref_rt(ref) != rt->index ||
      ax__ref_core(ref) >= rt->ncores)
    return -EINVAL;
  ax__name_t *n = ax__malloc(sizeof *n);
  if (n == NULL)
    return -ENOMEM;
  strcpy(n->name, name);
  n->ref = ref;
  int rc;
  pthread_mutex_lock(&rt->names_lock);
  if (++rt->names_added >= AX__NAMES_SWEEP_EVERY) {
    rt->names_added = 0;
    sweep(rt);
  }
  rc = liveness(ref);
  if (rc == 0 && find(rt, name) != NULL)
    rc = -EEXIST;
  if (rc == 0) {
    n->next = rt->names;
    rt->names = n;
  }
  pthread_mutex_unlock(&rt->names_lock);
  if (rc < 0)
    free(n);
  return rc;
}

int ax_unregister(ax_rt_t *rt, const char *name) {
  if (rt == NULL || !name_ok(name))
    return -EINVAL;
  pthread_mutex_lock(&rt->names_lock);
  ax__name_t **p = find(rt, name);
  ax__name_t *n = p != NULL ? *p : NULL;
  if (n != NULL)
    *p = n->next;
  pthread_mutex_unlock(&rt->names_lock);
  free(n);
  return n != NULL ? 0 : -ENOENT;
}

ax_ref_t ax_whereis(ax_rt_t *rt, const char *name) {
  if (rt == NULL || !name_ok(name))
    return AX_REF_NONE;
  pthread_mutex_lock(&rt->names_lock);
  ax__name_t **p = find(rt, name);
  ax_ref_t ref = p != NULL ? (*p)->ref : AX_REF_NONE;
  pthread_mutex_unlock(&rt->names_lock);
  return ref;
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
