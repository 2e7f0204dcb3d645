/* Address strings: "host:port", "[v6]:port", ":port", unix paths with '@' for abstract names. */
#ifndef AXON_ACTORS_ADDR_H
#define AXON_ACTORS_ADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/un.h>

#define AX__HOST_MAX 256

/* Splits and parses an address string.  Returns 0 with a numeric address
 * in ss and len, 1 when the host is a name to resolve (copied into host,
 * the port in *port), or -EINVAL for bad syntax: no port, a port that is not
 * a number in 0..65535, unbalanced brackets, a host that is too long, or an
 * empty host when !passive.  With passive, an empty host or a star is the
 * wildcard (IPv6 any, which also accepts IPv4 on a dual-stack socket). */
int ax__addr_parse(const char *str, bool passive, struct sockaddr_storage *ss, socklen_t *len,
                   char host[AX__HOST_MAX], unsigned *port);

/* Parses, then resolves a name with getaddrinfo in the calling thread (the
 * first address).  Errors: -EINVAL, an AX_EAI_* code. */
int ax__addr_resolve_sync(const char *str, bool passive, int socktype,
                          struct sockaddr_storage *ss, socklen_t *len);

/* A unix socket address; '@' first makes it abstract.  Errors: -EINVAL
 * (NULL, empty, too long). */
int ax__unix_addr(const char *path, struct sockaddr_un *sun, socklen_t *len);

/* getaddrinfo's EAI_* code as an axon error (AX_EAI_*, see common.h);
 * EAI_SYSTEM becomes -errno. */
int ax__eai_err(int eai, int saved_errno);

/* The port of a bound socket, or -errno. */
int ax__sock_port(int fd);

#endif /* AXON_ACTORS_ADDR_H */
