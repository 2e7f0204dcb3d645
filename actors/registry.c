/* The name registry: one list per runtime behind a mutex (names are not a hot path). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <pthread.h>

#include "actors/actors.h"

/*
 * A name whose actor has stopped is dead: lookups treat it as absent and
 * remove it, a registration may take it over, and every 64 registrations a
 * sweep removes the rest.  So an actor's death costs the registry nothing
 * (no lock, no fence on the hot path of stopping), and "the name is removed
 * when the actor stops" holds for everything a caller can observe.
 */
typedef struct ax__name ax__name_t;
struct ax__name {
  ax__name_t *next;
  ax_ref_t ref;
  char name[AX_NAME_MAX + 1];
};

/* A runtime's registry (AX__RT_SLOT_NAMES), made by ax_rt_new. */
typedef struct ax__names {
  pthread_mutex_t lock;
  ax__name_t *head;  /* under lock */
  unsigned added;    /* under lock: registrations since the last sweep */
} ax__names_t;

static ax__names_t *names_of(ax_rt_t *rt) { return rt->slot[AX__RT_SLOT_NAMES]; }

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
  void *e;
  int rc = ax__ref_enter(ref, &e, &rt, &erec);
  ax__ref_leave(erec);
  return rc;
}

/* False only for an actor known to be dead. */
static bool alive(ax_ref_t ref) { return liveness(ref) != -ESRCH; }

/* Finds name; unlinks and frees it (returning NULL) when its actor is dead.
 * Returns the link that points at the entry.  Under names_lock. */
static ax__name_t **find(ax__names_t *ns, const char *name) {
  for (ax__name_t **p = &ns->head; *p != NULL; p = &(*p)->next) {
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

static void sweep(ax__names_t *ns) {
  for (ax__name_t **p = &ns->head; *p != NULL;) {
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
  ax__names_t *ns = names_of(rt);
  ax__name_t *n = ax__malloc(sizeof *n);
  if (n == NULL)
    return -ENOMEM;
  strcpy(n->name, name);
  n->ref = ref;
  int rc;
  pthread_mutex_lock(&ns->lock);
  if (++ns->added >= AX__NAMES_SWEEP_EVERY) {
    ns->added = 0;
    sweep(ns);
  }
  rc = liveness(ref);
  if (rc == 0 && find(ns, name) != NULL)
    rc = -EEXIST;
  if (rc == 0) {
    n->next = ns->head;
    ns->head = n;
  }
  pthread_mutex_unlock(&ns->lock);
  if (rc < 0)
    free(n);
  return rc;
}

int ax_unregister(ax_rt_t *rt, const char *name) {
  if (rt == NULL || !name_ok(name))
    return -EINVAL;
  ax__names_t *ns = names_of(rt);
  pthread_mutex_lock(&ns->lock);
  ax__name_t **p = find(ns, name);
  ax__name_t *n = p != NULL ? *p : NULL;
  if (n != NULL)
    *p = n->next;
  pthread_mutex_unlock(&ns->lock);
  free(n);
  return n != NULL ? 0 : -ENOENT;
}

ax_ref_t ax_whereis(ax_rt_t *rt, const char *name) {
  if (rt == NULL || !name_ok(name))
    return AX_REF_NONE;
  ax__names_t *ns = names_of(rt);
  pthread_mutex_lock(&ns->lock);
  ax__name_t **p = find(ns, name);
  ax_ref_t ref = p != NULL ? (*p)->ref : AX_REF_NONE;
  pthread_mutex_unlock(&ns->lock);
  return ref;
}

static int names_init(ax_rt_t *rt) {
  ax__names_t *ns = ax__calloc(1, sizeof *ns);
  if (ns == NULL)
    return -ENOMEM;
  pthread_mutex_init(&ns->lock, NULL);
  rt->slot[AX__RT_SLOT_NAMES] = ns;
  return 0;
}

static void names_free(ax_rt_t *rt) {
  ax__names_t *ns = names_of(rt);
  if (ns == NULL)
    return;
  ax__name_t *n = ns->head;
  while (n != NULL) {
    ax__name_t *next = n->next;
    free(n);
    n = next;
  }
  pthread_mutex_destroy(&ns->lock);
  free(ns);
  rt->slot[AX__RT_SLOT_NAMES] = NULL;
}

static ax__feature_t names = {
    .name = "names",
    .order = AX__ORDER_NAMES,
    .rt_init = names_init,
    .rt_free = names_free,
};

AX__FEATURE_INIT(names) { ax__feature_register(&names); }
