/* Address strings to socket addresses; resolver error codes. */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actors/io/addr.h"
#include "axon/common.h"

int ax__eai_err(int eai, int saved_errno) {
  if (eai == 0)
    return 0;
  if (eai == EAI_SYSTEM)
    return saved_errno > 0 ? -saved_errno : -EIO;
  if (eai == EAI_MEMORY)
    return -ENOMEM;
  return AX_EAI(eai);
}

static int parse_port(const char *p, unsigned *port) {
  if (*p == '\0')
    return -EINVAL;
  unsigned v = 0;
  for (; *p != '\0'; p++) {
    if (*p < '0' || *p > '9')
      return -EINVAL;
    v = v * 10 + (unsigned)(*p - '0');
    if (v > 65535)
      return -EINVAL;
  }
  *port = v;
  return 0;
}

int ax__addr_parse(const char *str, bool passive, struct sockaddr_storage *ss, socklen_t *len,
                   char host[AX__HOST_MAX], unsigned *port) {
  if (str == NULL)
    return -EINVAL;
  const char *h = str, *colon;
  size_t hlen;
  if (*str == '[') {
    const char *close = strchr(str, ']');
    if (close == NULL || close[1] != ':')
      return -EINVAL;
    h = str + 1;
    hlen = (size_t)(close - h);
    colon = close + 1;
    if (hlen == 0)
      return -EINVAL;
  } else {
    colon = strrchr(str, ':');
    if (colon == NULL)
      return -EINVAL;
    hlen = (size_t)(colon - str);
    if (memchr(str, ':', hlen) != NULL || memchr(str, ']', hlen) != NULL)
      return -EINVAL; /* a bare IPv6 address needs brackets */
  }
  if (hlen >= AX__HOST_MAX || parse_port(colon + 1, port) < 0)
    return -EINVAL;
  memcpy(host, h, hlen);
  host[hlen] = '\0';
  memset(ss, 0, sizeof *ss);
  if (hlen == 0 || strcmp(host, "*") == 0) {
    if (!passive)
      return -EINVAL;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
    s6->sin6_family = AF_INET6;
    s6->sin6_addr = in6addr_any;
    s6->sin6_port = htons((uint16_t)*port);
    *len = sizeof *s6;
    return 0;
  }
  struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
  if (*str != '[' && inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
    s4->sin_family = AF_INET;
    s4->sin_port = htons((uint16_t)*port);
    *len = sizeof *s4;
    return 0;
  }
  struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
  if (inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
    s6->sin6_family = AF_INET6;
    s6->sin6_port = htons((uint16_t)*port);
    *len = sizeof *s6;
    return 0;
  }
  if (*str == '[')
    return -EINVAL; /* brackets hold an IPv6 address, never a name */
  return 1;
}

int ax__addr_resolve_sync(const char *str, bool passive, int socktype,
                          struct sockaddr_storage *ss, socklen_t *len) {
  char host[AX__HOST_MAX];
  unsigned port;
  int rc = ax__addr_parse(str, passive, ss, len, host, &port);
  if (rc <= 0)
    return rc;
  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = socktype,
                           .ai_flags = AI_ADDRCONFIG | (passive ? AI_PASSIVE : 0)};
  struct addrinfo *res = NULL;
  char serv[8];
  snprintf(serv, sizeof serv, "%u", port);
  int eai = getaddrinfo(host, serv, &hints, &res);
  if (eai != 0)
    return ax__eai_err(eai, errno);
  memcpy(ss, res->ai_addr, res->ai_addrlen);
  *len = res->ai_addrlen;
  freeaddrinfo(res);
  return 0;
}

int ax__unix_addr(const char *path, struct sockaddr_un *sun, socklen_t *len) {
  if (path == NULL || *path == '\0')
    return -EINVAL;
  size_t n = strlen(path);
  if (n >= sizeof sun->sun_path)
    return -EINVAL;
  memset(sun, 0, sizeof *sun);
  sun->sun_family = AF_UNIX;
  memcpy(sun->sun_path, path, n);
  if (path[0] == '@') {
    sun->sun_path[0] = '\0'; /* abstract: no terminating NUL counted */
    *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
  } else {
    *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
  }
  return 0;
}

int ax__sock_port(int fd) {
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
    return -errno;
  if (ss.ss_family == AF_INET)
    return ntohs(((struct sockaddr_in *)&ss)->sin_port);
  if (ss.ss_family == AF_INET6)
    return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
  return -EINVAL;
}
