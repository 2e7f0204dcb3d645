/* Name resolution off the core: getaddrinfo on a few resolver threads, the answer back as a call on the owner's core. */
#ifndef AXON_ACTORS_IO_RESOLVE_H
#define AXON_ACTORS_IO_RESOLVE_H

#include <netdb.h>

#include "actors/actors.h"

typedef struct ax__resolve ax__resolve_t;

/* What a resolution calls on the owner's core: res (the caller's to free
 * with freeaddrinfo) or err (an AX_EAI_* code, or -errno). */
typedef void (*ax__resolved_t)(void *arg, struct addrinfo *res, int err);

/* Resolves host:port (SOCK_STREAM) on a resolver thread, then runs
 * done(arg, ...) on the core of `owner` (an AX__SYS_CALL message): exactly
 * once, unless ax__resolve_cancel comes first, and never if owner dies.
 * The owner's core.  Returns 0 and the request in *out, or -ENOMEM,
 * -EAGAIN (no resolver thread could start). */
int ax__resolve_start(ax_ref_t owner, const char *host, unsigned port, ax__resolved_t done,
                      void *arg, ax__resolve_t **out);

/* Gives up a request: done will not run; its memory is freed whenever the
 * resolver thread or the answer's message is done with it.  The owner's
 * core, before done ran. */
void ax__resolve_cancel(ax__resolve_t *r);

#endif /* AXON_ACTORS_IO_RESOLVE_H */
