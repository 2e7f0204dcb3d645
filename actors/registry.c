/* The name registry: one hash index per runtime behind a mutex (names are not a hot path). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <pthread.h>

#include "actors/actors.h"
#include "actors/idmap.h"

/*
 * A name whose actor has stopped is dead: lookups treat it as absent and
 * remove it, a registration may take it over, and a sweep removes the rest
 * once as many registrations as there are names have been made since the
 * last one (at least 64).  So an actor's death costs the registry nothing
 * (no lock, no fence on the hot path of stopping), "the name is removed
 * when the actor stops" holds for everything a caller can observe, and
 * names are found through a hash of their text: a registration or a lookup
 * costs the same among 10^5 names as among ten.
 */
typedef struct ax__name {
  ax__idnode_t node; /* key: name_hash(name) */
  ax_ref_t ref;
  char name[AX_NAME_MAX + 1];
} ax__name_t;

/* A runtime's registry (AX__RT_SLOT_NAMES), made by ax_rt_new. */
typedef struct ax__names {
  pthread_mutex_t lock;
  ax__idmap_t map; /* under lock */
  size_t added;    /* under lock: registrations since the last sweep */
} ax__names_t;

static ax__names_t *names_of(ax_rt_t *rt) { return rt->slot[AX__RT_SLOT_NAMES]; }

#define AX__NAMES_SWEEP_MIN 64u

/* FNV-1a, 64 bits. */
static uint64_t name_hash(const char *name) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (const unsigned char *p = (const unsigned char *)name; *p != '\0'; p++)
    h = (h ^ *p) * 0x100000001b3ull;
  return h;
}

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

/* Finds name; takes it out and frees it (returning NULL) when its actor is
 * dead.  Under the lock. */
static ax__name_t *find(ax__names_t *ns, const char *name) {
  uint64_t h = name_hash(name);
  for (ax__idnode_t *x = ax__idmap_next(&ns->map, h, NULL); x != NULL;
       x = ax__idmap_next(&ns->map, h, x)) {
    ax__name_t *n = AX_CONTAINER_OF(x, ax__name_t, node);
    if (strcmp(n->name, name) != 0)
      continue;
    if (alive(n->ref))
      return n;
    ax__idmap_remove(&ns->map, &n->node);
    free(n);
    return NULL;
  }
  return NULL;
}

static bool keep_alive_name(ax__idnode_t *x, void *arg) {
  (void)arg;
  ax__name_t *n = AX_CONTAINER_OF(x, ax__name_t, node);
  if (alive(n->ref))
    return true;
  free(n);
  return false;
}

static bool drop_name(ax__idnode_t *x, void *arg) {
  (void)arg;
  free(AX_CONTAINER_OF(x, ax__name_t, node));
  return false;
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
  n->node.key = name_hash(name);
  int rc;
  pthread_mutex_lock(&ns->lock);
  if (++ns->added >= AX__NAMES_SWEEP_MIN && ns->added >= ns->map.count) {
    ns->added = 0;
    ax__idmap_filter(&ns->map, keep_alive_name, NULL);
  }
  rc = liveness(ref);
  if (rc == 0 && find(ns, name) != NULL)
    rc = -EEXIST;
  if (rc == 0)
    rc = ax__idmap_add(&ns->map, &n->node);
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
  ax__name_t *n = find(ns, name);
  if (n != NULL)
    ax__idmap_remove(&ns->map, &n->node);
  pthread_mutex_unlock(&ns->lock);
  free(n);
  return n != NULL ? 0 : -ENOENT;
}

ax_ref_t ax_whereis(ax_rt_t *rt, const char *name) {
  if (rt == NULL || !name_ok(name))
    return AX_REF_NONE;
  ax__names_t *ns = names_of(rt);
  pthread_mutex_lock(&ns->lock);
  ax__name_t *n = find(ns, name);
  ax_ref_t ref = n != NULL ? n->ref : AX_REF_NONE;
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
  ax__idmap_filter(&ns->map, drop_name, NULL);
  ax__idmap_destroy(&ns->map);
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
