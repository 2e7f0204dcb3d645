/* TCP and unix stream sockets inside axon: what listeners and servers share. */
#ifndef AXON_ACTORS_IO_TCP_H
#define AXON_ACTORS_IO_TCP_H

#include <stdbool.h>
#include <sys/socket.h>

#include "actors/io/stream.h"

/* Applies a stream's socket options (nodelay, keepalive, buffer sizes) to
 * a socket; failures are ignored (the options are hints). */
void ax__sock_opts(int fd, int family, const ax_stream_opts_t *o);

/* How a listening socket shares its port (ax__listen_socket). */
typedef enum ax__share {
  AX__SHARE_NONE,  /* the port is this socket's alone */
  AX__SHARE_FIRST, /* bound alone (-EADDRINUSE if anyone has the port, even
                      with SO_REUSEPORT), then opened to SO_REUSEPORT joiners */
  AX__SHARE_JOIN,  /* SO_REUSEPORT: joins the group a SHARE_FIRST socket made */
} ax__share_t;

/* Opens a listening socket: SO_REUSEADDR, SO_REUSEPORT as `share` says;
 * an IPv6 wildcard also takes IPv4.  Returns the fd or -errno. */
int ax__listen_socket(const struct sockaddr *sa, socklen_t len, int backlog, ax__share_t share);

/* Makes a listener of self over a listening socket; accepted streams take
 * opts.  The owner's core.  On failure the fd stays the caller's.
 * Returns 0, or -EINVAL (bad options), -ENOMEM, or the loop's error. */
int ax__listener_new(ax_actor_t *self, int fd, int kind, const ax_stream_opts_t *opts,
                     ax_listener_t **out);

#endif /* AXON_ACTORS_IO_TCP_H */
