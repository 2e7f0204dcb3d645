/* Name resolution: getaddrinfo as work on the runtime's pool, answers run on the owner's core. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "actors/io/addr.h"
#include "actors/io/resolve.h"
#include "actors/work.h"
#include "io/alloc.h"

/* A lookup: filled on the owner's core, resolved on a pool thread (which
 * the pool's hand-over orders), answered on the owner's core again. */
typedef struct resolve_req {
  ax__resolved_t done;
  void *arg;
  char host[AX__HOST_MAX];
  char port[8];
  int err;
  struct addrinfo *res;
} resolve_req_t;

/* On a pool thread. */
static int64_t lookup(void *arg) {
  resolve_req_t *r = arg;
  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                           .ai_flags = AI_ADDRCONFIG};
  int eai = getaddrinfo(r->host, r->port, &hints, &r->res);
  r->err = eai != 0 ? ax__eai_err(eai, errno) : 0;
  if (eai != 0)
    r->res = NULL;
  return r->err;
}

/* The answer, on the owner's core: the addresses go to done. */
static void answered(void *arg, int64_t result) {
  (void)result;
  resolve_req_t *r = arg;
  r->done(r->arg, r->res, r->err);
  free(r);
}

/* Cancelled, or the owner died: nobody takes the addresses. */
static void discard(void *arg) {
  resolve_req_t *r = arg;
  if (r->res != NULL)
    freeaddrinfo(r->res);
  free(r);
}

int ax__resolve_start(ax_actor_t *owner, const char *host, unsigned port, ax__resolved_t done,
                      void *arg, uint64_t *id) {
  resolve_req_t *r = ax__calloc(1, sizeof *r);
  if (r == NULL)
    return -ENOMEM;
  r->done = done;
  r->arg = arg;
  snprintf(r->host, sizeof r->host, "%s", host);
  snprintf(r->port, sizeof r->port, "%u", port);
  int rc = ax__work_start(owner, lookup, r, discard, answered, id);
  if (rc < 0)
    free(r);
  return rc;
}

void ax__resolve_cancel(ax_actor_t *owner, uint64_t id) { (void)ax__work_cancel(owner, id); }
