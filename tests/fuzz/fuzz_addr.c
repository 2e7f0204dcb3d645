/* libFuzzer harness for address strings (actors/io/addr.c): ax__addr_parse and ax__unix_addr. */
#include <arpa/inet.h>
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actors/io/addr.h"

/*
 * Input: one byte of flags (bit 0: passive), then the string (a copy with
 * a NUL after it; a NUL inside ends it early, as it would for a caller).
 * Each parse must give one of the documented results, and a numeric
 * address must be a whole sockaddr of its family, with the port parsed,
 * that parses back to itself when printed.  Any violation is
 * __builtin_trap().
 */

#define CHECK(cond)                                                                                \
  do {                                                                                             \
    if (!(cond))                                                                                   \
      __builtin_trap();                                                                            \
  } while (0)

/* Prints a parsed numeric address as an address string and parses it again:
 * the same family, address and port must come back. */
static void round_trip(const struct sockaddr_storage *ss, unsigned port, bool passive) {
  char text[INET6_ADDRSTRLEN], str[INET6_ADDRSTRLEN + 16];
  if (ss->ss_family == AF_INET) {
    const struct sockaddr_in *s4 = (const struct sockaddr_in *)ss;
    CHECK(inet_ntop(AF_INET, &s4->sin_addr, text, sizeof text) != NULL);
    snprintf(str, sizeof str, "%s:%u", text, port);
  } else {
    const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;
    CHECK(inet_ntop(AF_INET6, &s6->sin6_addr, text, sizeof text) != NULL);
    snprintf(str, sizeof str, "[%s]:%u", text, port);
  }
  struct sockaddr_storage again;
  socklen_t len = 0;
  char host[AX__HOST_MAX];
  unsigned port2 = 0;
  CHECK(ax__addr_parse(str, passive, &again, &len, host, &port2) == 0);
  CHECK(port2 == port && again.ss_family == ss->ss_family);
  if (ss->ss_family == AF_INET)
    CHECK(memcmp(&((const struct sockaddr_in *)ss)->sin_addr,
                 &((struct sockaddr_in *)&again)->sin_addr, sizeof(struct in_addr)) == 0);
  else
    CHECK(memcmp(&((const struct sockaddr_in6 *)ss)->sin6_addr,
                 &((struct sockaddr_in6 *)&again)->sin6_addr, sizeof(struct in6_addr)) == 0);
}

static void parse(const char *str, bool passive) {
  struct sockaddr_storage ss;
  memset(&ss, 0xa5, sizeof ss); /* garbage the parse must overwrite */
  socklen_t len = 0;
  char host[AX__HOST_MAX];
  unsigned port = 99999;
  int rc = ax__addr_parse(str, passive, &ss, &len, host, &port);
  CHECK(rc == 0 || rc == 1 || rc == -EINVAL);
  if (rc < 0)
    return;
  CHECK(port <= 65535);
  /* The port is the digits after the last colon, as typed. */
  const char *colon = strrchr(str, ':');
  CHECK(colon != NULL && strtoul(colon + 1, NULL, 10) == port);
  if (rc == 1) { /* a name to resolve: never bracketed, never empty, fits */
    CHECK(str[0] != '[' && host[0] != '\0' && strlen(host) < AX__HOST_MAX);
    CHECK(strlen(host) == (size_t)(colon - str) && memcmp(host, str, strlen(host)) == 0);
    return;
  }
  if (ss.ss_family == AF_INET) {
    const struct sockaddr_in *s4 = (const struct sockaddr_in *)&ss;
    CHECK(len == sizeof *s4 && ntohs(s4->sin_port) == port && str[0] != '[');
  } else {
    CHECK(ss.ss_family == AF_INET6);
    const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&ss;
    CHECK(len == sizeof *s6 && ntohs(s6->sin6_port) == port);
    CHECK(s6->sin6_flowinfo == 0 && s6->sin6_scope_id == 0);
    /* The wildcard (empty host or '*') only for a passive address. */
    if (memcmp(&s6->sin6_addr, &in6addr_any, sizeof in6addr_any) == 0 && str[0] != '[')
      CHECK(passive);
  }
  round_trip(&ss, port, passive);
}

static void unix_addr(const char *path) {
  struct sockaddr_un sun;
  memset(&sun, 0xa5, sizeof sun);
  socklen_t len = 0;
  int rc = ax__unix_addr(path, &sun, &len);
  size_t n = strlen(path);
  /* Refused exactly when empty or too long for sun_path with its NUL. */
  CHECK(rc == ((n == 0 || n >= sizeof sun.sun_path) ? -EINVAL : 0));
  if (rc < 0)
    return;
  CHECK(sun.sun_family == AF_UNIX && len <= sizeof sun);
  if (path[0] == '@') { /* abstract: a NUL first, no NUL counted at the end */
    CHECK(len == offsetof(struct sockaddr_un, sun_path) + n);
    CHECK(sun.sun_path[0] == '\0' && memcmp(sun.sun_path + 1, path + 1, n - 1) == 0);
  } else {
    CHECK(len == offsetof(struct sockaddr_un, sun_path) + n + 1);
    CHECK(strcmp(sun.sun_path, path) == 0);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1)
    return 0;
  bool passive = data[0] & 1;
  char *str = malloc(size); /* size - 1 bytes and a NUL */
  if (str == NULL)
    return 0;
  memcpy(str, data + 1, size - 1);
  str[size - 1] = '\0';
  parse(str, passive);
  unix_addr(str);
  CHECK(ax__addr_parse(NULL, passive, NULL, NULL, NULL, NULL) == -EINVAL);
  CHECK(ax__unix_addr(NULL, NULL, NULL) == -EINVAL);
  free(str);
  return 0;
}
