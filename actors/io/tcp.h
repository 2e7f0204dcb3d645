/* TCP and unix stream sockets inside axon: what listeners and servers share. */
#ifndef AXON_ACTORS_IO_TCP_H
#define AXON_ACTORS_IO_TCP_H

#include <stdbool.h>
#include <sys/socket.h>

#include "actors/io/stream.h"

/* Applies a stream's socket options (nodelay, keepalive, buffer sizes) to
 * a socket; failures are ignored (the options are hints). */
void ax__sock_opts(int fd, int family, const ax_stream_opts_t *o);

/* Opens a listening socket: SO_REUSEADDR, optionally SO_REUSEPORT; an IPv6
 * wildcard also takes IPv4.  Returns the fd or -errno. */
int ax__listen_socket(const struct sockaddr *sa, socklen_t len, int backlog, bool reuseport);

/* Makes a listener of self over a listening socket; accepted streams take
 * opts.  The owner's core.  On failure the fd stays the caller's.
 * Returns 0, or -EINVAL (bad options), -ENOMEM, or the loop's error. */
int ax__listener_new(ax_actor_t *self, int fd, int kind, const ax_stream_opts_t *opts,
                     ax_listener_t **out);

#endif /* AXON_ACTORS_IO_TCP_H */
