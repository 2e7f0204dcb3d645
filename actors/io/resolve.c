/* The resolver pool: getaddrinfo on at most four detached threads, answers sent back to the owner's core. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "actors/io/addr.h"
#include "actors/io/resolve.h"

#define AX__RESOLVERS 4 /* resolver threads at most */

/*
 * A request is shared by its owner's core and a resolver thread.  Its
 * state decides who frees it: the resolver moves it from PENDING to DONE
 * and sends it back to the owner as an AX__SYS_CALL message (whose handler,
 * or the drop path, frees it); an owner that cancels first moves it from
 * PENDING to ABANDONED and forgets it, and the resolver frees it when it
 * finishes.  An owner that cancels after DONE clears `done` (on its own
 * core, where the handler runs too), so the handler only frees it.
 */
enum { AX__REQ_PENDING, AX__REQ_DONE, AX__REQ_ABANDONED };

struct ax__resolve {
  ax__call_t call;
  _Atomic int state;
  ax__resolved_t done; /* owner core only; NULL once cancelled */
  void *arg;
  ax_ref_t owner;
  struct ax__resolve *next; /* the pool's queue */
  char host[AX__HOST_MAX];
  char port[8];
  int err;
  struct addrinfo *res;
};

static struct {
  pthread_mutex_t lock;
  pthread_cond_t cond;
  ax__resolve_t *head, *tail;
  unsigned threads, idle;
} pool = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, NULL, NULL, 0, 0};

static void resolve_free(ax__resolve_t *r) {
  if (r->res != NULL)
    freeaddrinfo(r->res);
  free(r);
}

/* The answer reached the owner (a) or was dropped (a NULL). */
static void answered(ax__call_t *call, ax_actor_t *a) {
  ax__resolve_t *r = (ax__resolve_t *)call;
  if (a != NULL && r->done != NULL) {
    struct addrinfo *res = r->res;
    r->res = NULL;
    r->done(r->arg, res, r->err);
  }
  resolve_free(r);
}

static void *resolver_main(void *arg) {
  (void)arg;
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, NULL); /* signals belong to the runtime */
  pthread_mutex_lock(&pool.lock);
  for (;;) {
    while (pool.head == NULL) {
      pool.idle++;
      pthread_cond_wait(&pool.cond, &pool.lock);
      pool.idle--;
    }
    ax__resolve_t *r = pool.head;
    pool.head = r->next;
    if (pool.head == NULL)
      pool.tail = NULL;
    pthread_mutex_unlock(&pool.lock);

    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_ADDRCONFIG};
    int eai = getaddrinfo(r->host, r->port, &hints, &r->res);
    r->err = eai != 0 ? ax__eai_err(eai, errno) : 0;
    if (eai != 0)
      r->res = NULL;
    int expect = AX__REQ_PENDING;
    /* acq_rel: release publishes res/err to the owner core; acquire sees
     * the owner's abandonment. */
    if (atomic_compare_exchange_strong_explicit(&r->state, &expect, AX__REQ_DONE,
                                                memory_order_acq_rel, memory_order_acquire))
      ax__call_send(r->owner, &r->call); /* on failure it ran the drop path */
    else
      resolve_free(r);
    pthread_mutex_lock(&pool.lock);
  }
  return NULL;
}

/* Queues r, starting a resolver thread when none is idle (up to the
 * limit).  -EAGAIN when no thread exists and none could start. */
static int submit(ax__resolve_t *r) {
  pthread_mutex_lock(&pool.lock);
  if (pool.idle == 0 && pool.threads < AX__RESOLVERS) {
    pthread_t t;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    if (pthread_create(&t, &attr, resolver_main, NULL) == 0)
      pool.threads++;
    pthread_attr_destroy(&attr);
    if (pool.threads == 0) {
      pthread_mutex_unlock(&pool.lock);
      return -EAGAIN;
    }
  }
  r->next = NULL;
  if (pool.tail != NULL)
    pool.tail->next = r;
  else
    pool.head = r;
  pool.tail = r;
  pthread_cond_signal(&pool.cond);
  pthread_mutex_unlock(&pool.lock);
  return 0;
}

int ax__resolve_start(ax_ref_t owner, const char *host, unsigned port, ax__resolved_t done,
                      void *arg, ax__resolve_t **out) {
  ax__resolve_t *r = ax__calloc(1, sizeof *r);
  if (r == NULL)
    return -ENOMEM;
  r->call.fn = answered;
  atomic_init(&r->state, AX__REQ_PENDING);
  r->done = done;
  r->arg = arg;
  r->owner = owner;
  snprintf(r->host, sizeof r->host, "%s", host);
  snprintf(r->port, sizeof r->port, "%u", port);
  int rc = submit(r);
  if (rc < 0) {
    free(r);
    return rc;
  }
  *out = r;
  return 0;
}

void ax__resolve_cancel(ax__resolve_t *r) {
  int expect = AX__REQ_PENDING;
  /* acq_rel: pairs with the resolver's CAS (see above). */
  if (!atomic_compare_exchange_strong_explicit(&r->state, &expect, AX__REQ_ABANDONED,
                                               memory_order_acq_rel, memory_order_acquire))
    r->done = NULL; /* DONE: its message is on the way and frees it */
}
