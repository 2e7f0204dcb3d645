/* Name resolution off the core: getaddrinfo as work on the runtime's pool, the answer back on the owner's core. */
#ifndef AXON_ACTORS_IO_RESOLVE_H
#define AXON_ACTORS_IO_RESOLVE_H

#include <netdb.h>

#include "actors/actors.h"

/* What a resolution calls on the owner's core: res (the caller's to free
 * with freeaddrinfo) or err (an AX_EAI_* code, or -errno). */
typedef void (*ax__resolved_t)(void *arg, struct addrinfo *res, int err);

/* Resolves host:port (SOCK_STREAM) on the runtime's work pool (work.h),
 * then runs done(arg, ...) on the core of `owner`: exactly once, unless
 * ax__resolve_cancel comes first, and never if owner dies.  The owner's
 * core.  Returns 0 and the request's id in *id, or the errors of
 * ax_work_submit (-ENOMEM, -EAGAIN: the pool's queue is full, -ESHUTDOWN). */
int ax__resolve_start(ax_actor_t *owner, const char *host, unsigned port, ax__resolved_t done,
                      void *arg, uint64_t *id);

/* Gives up the request id of owner: done will not run; what the lookup
 * made is freed whenever it finishes.  The owner's core, before done ran. */
void ax__resolve_cancel(ax_actor_t *owner, uint64_t id);

#endif /* AXON_ACTORS_IO_RESOLVE_H */
