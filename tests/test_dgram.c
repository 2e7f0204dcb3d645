/* Check suite for datagram sources: UDP v4/v6 and unix sockets, truncation, window, connect, errors, close. */
#include <arpa/inet.h>
#include <dlfcn.h>
#include <netinet/in.h>
#include <sys/un.h>

#include "source_test.h"

/* ------------------------------------------------------------------------ */
/* Helpers                                                                   */

/* A blocking UDP socket of the test thread bound to host (port 0); its
 * port in *port. */
static int test_udp(int family, int *port) {
  int fd = socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  ck_assert_int_ge(fd, 0);
  struct sockaddr_storage ss;
  memset(&ss, 0, sizeof ss);
  socklen_t len;
  if (family == AF_INET) {
    struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
    s4->sin_family = AF_INET;
    s4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    len = sizeof *s4;
  } else {
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
    s6->sin6_family = AF_INET6;
    s6->sin6_addr = in6addr_loopback;
    len = sizeof *s6;
  }
  ck_assert_int_eq(bind(fd, (struct sockaddr *)&ss, len), 0);
  len = sizeof ss;
  ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&ss, &len), 0);
  *port = ntohs(family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
                                  : ((struct sockaddr_in6 *)&ss)->sin6_port);
  struct timeval tv = {10, 0}; /* a lost datagram fails the test instead of hanging it */
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return fd;
}

/* Sends len bytes from the test socket fd to 127.0.0.1:port (or [::1]). */
static void send_to_port(int fd, int family, int port, const void *data, size_t len) {
  struct sockaddr_storage ss;
  memset(&ss, 0, sizeof ss);
  socklen_t sl;
  if (family == AF_INET) {
    struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
    s4->sin_family = AF_INET;
    s4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    s4->sin_port = htons((uint16_t)port);
    sl = sizeof *s4;
  } else {
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
    s6->sin6_family = AF_INET6;
    s6->sin6_addr = in6addr_loopback;
    s6->sin6_port = htons((uint16_t)port);
    sl = sizeof *s6;
  }
  ck_assert_int_eq((int)sendto(fd, data, len, 0, (struct sockaddr *)&ss, sl), (int)len);
}

/* Binds a datagram socket in the actor: UDP (udp true) or unix. */
static int bind_cmd(sa_env_t *env, ax_ref_t ref, bool udp, const char *addr,
                    const ax_dgram_opts_t *opts, int *slot, int *port) {
  sa_cmd_t c;
  memset(&c, 0, sizeof c);
  c.op = udp ? CMD_UDP_BIND : CMD_UNIX_DGRAM;
  if (addr != NULL)
    snprintf(c.s, sizeof c.s, "%s", addr);
  if (opts != NULL) {
    c.has_opts = 1;
    c.opts = *opts;
  }
  int64_t v = -1;
  int rc = sa_cmd_full(env, ref, &c, 0, &v);
  if (udp && rc == 0) {
    *slot = (int)(v & 0xff);
    if (port != NULL)
      *port = (int)(v >> 8);
  } else {
    *slot = (int)v;
  }
  return rc;
}

/* Makes the actor send data from its slot: to an address string, to a
 * sockaddr (sa non-NULL), or to the connected peer (both NULL). */
static int send_cmd(sa_env_t *env, ax_ref_t ref, int slot, const char *addr,
                    const struct sockaddr_storage *sa, socklen_t sa_len, const void *data,
                    size_t len) {
  sa_cmd_t *c = calloc(1, sizeof *c + len);
  ck_assert_ptr_nonnull(c);
  c->op = sa != NULL ? CMD_DG_SEND : CMD_DG_SENDTO;
  c->slot = slot;
  if (addr != NULL)
    snprintf(c->s, sizeof c->s, "%s", addr);
  if (sa != NULL) {
    c->sa = *sa;
    c->sa_len = sa_len;
  }
  c->len = len;
  memcpy(c->data, data, len);
  int rc = sa_cmd_full(env, ref, c, len, NULL);
  free(c);
  return rc;
}

static const sa_event_t *expect_datagram(sa_env_t *env, const void *bytes, size_t len) {
  const sa_event_t *ev = sa_event(env, 10000);
  ck_assert_uint_eq(ev->type, AX_MSG_DATAGRAM);
  ck_assert_uint_eq(ev->len, len);
  ck_assert(memcmp(ev->bytes, bytes, len) == 0);
  ck_assert(!ev->truncated);
  return ev;
}

/* The "ipv6" group's test (test_group_t): NULL when a UDP socket can be
 * bound to ::1 here. */
static const char *ipv6_missing(void) {
  int fd = socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return "no IPv6 sockets (socket(AF_INET6) failed)";
  struct sockaddr_in6 s6 = {.sin6_family = AF_INET6, .sin6_addr = in6addr_loopback};
  bool ok = bind(fd, (struct sockaddr *)&s6, sizeof s6) == 0;
  close(fd);
  return ok ? NULL : "no IPv6 loopback (cannot bind a UDP socket to ::1)";
}

/* ------------------------------------------------------------------------ */
/* UDP                                                                       */

START_TEST(test_dgram_errors) {
  ax_dgram_t *d = NULL;
  ck_assert_int_eq(ax_udp_bind(NULL, "127.0.0.1:0", NULL, &d), -EINVAL);
  ck_assert_int_eq(ax_unix_dgram(NULL, NULL, NULL, &d), -EINVAL);
  ck_assert_int_eq(ax_dgram_send(NULL, NULL, 0, "x", 1), -EINVAL);
  ck_assert_int_eq(ax_dgram_sendto(NULL, "127.0.0.1:1", "x", 1), -EINVAL);
  ck_assert_int_eq(ax_dgram_connect(NULL, "127.0.0.1:1"), -EINVAL);
  ck_assert_int_eq(ax_dgram_port(NULL), -EINVAL);
  ck_assert_int_eq(ax_dgram_fd(NULL), -EINVAL);
  ck_assert_int_eq(ax_dgram_close(NULL), -EINVAL);

  sa_env_t env;
  sa_env_new(&env, 1, 0);
  sa_actor_t a;
  ax_ref_t ref = sa_spawn(&env, &a, 0, 0);
  int slot, port;
  const char *bad[] = {"", "127.0.0.1", "127.0.0.1:70000", "[::1:80", "::1:80", "1.2.3.4:x"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    ck_assert_int_eq(bind_cmd(&env, ref, true, bad[i], NULL, &slot, NULL), -EINVAL);
  ax_dgram_opts_t o = {.max_packet = (size_t)17 << 20};
  ck_assert_int_eq(bind_cmd(&env, ref, true, "127.0.0.1:0", &o, &slot, NULL), -EINVAL);
  o = (ax_dgram_opts_t){.sndbuf = -1};
  ck_assert_int_eq(bind_cmd(&env, ref, true, "127.0.0.1:0", &o, &slot, NULL), -EINVAL);
  ck_assert_int_eq(bind_cmd(&env, ref, false, "", &o, &slot, NULL), -EINVAL);

  ck_assert_int_eq(bind_cmd(&env, ref, true, "127.0.0.1:0", NULL, &slot, &port), 0);
  ck_assert_int_gt(port, 0);
  /* The same port again: in use. */
  char addr[64];
  snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
  int other;
  ck_assert_int_eq(bind_cmd(&env, ref, true, addr, NULL, &other, NULL), -EADDRINUSE);
  /* sendto takes numeric addresses only; no address and no peer. */
  ck_assert_int_eq(send_cmd(&env, ref, slot, "localhost:9", NULL, 0, "x", 1), -EINVAL);
  ck_assert_int_eq(send_cmd(&env, ref, slot, "nonsense", NULL, 0, "x", 1), -EINVAL);
  ck_assert_int_eq(send_cmd(&env, ref, slot, NULL, NULL, 0, "x", 1), -EDESTADDRREQ);
  /* Too big for UDP. */
  size_t big = 70000;
  char *buf = calloc(1, big);
  ck_assert_int_eq(send_cmd(&env, ref, slot, "127.0.0.1:9", NULL, 0, buf, big), -EMSGSIZE);
  free(buf);
  ck_assert_int_eq(sa_cmd(&env, ref, CMD_DG_CLOSE, slot, 0, 0, NULL, NULL), 0);
  ck_assert_int_eq(atomic_load(&a.violations), 0);
  sa_env_free(&env);
}
END_TEST

START_TEST(test_dgram_udp_v4) {
  sa_env_t env;
  sa_env_new(&env, 2, 0);
  sa_actor_t a;
  ax_ref_t ref = sa_spawn(&env, &a, 4, 1);
  int slot, port, tport;
  ck_assert_int_eq(bind_cmd(&env, ref, true, "127.0.0.1:0", NULL, &slot, &port), 0);
  int64_t p2;
  ck_assert_int_eq(sa_cmd(&env, ref, CMD_DG_PORT, slot, 0, 0, NULL, &p2), 0);
  ck_assert_int_eq((int)p2, port);
  int t = test_udp(AF_INET, &tport);

  for (int i = 0; i < 10; i++) {
    char text[32];
    int n = snprintf(text, sizeof text, "packet %d", i);
    send_to_port(t, AF_INET, port, text, (size_t)n);
    const sa_event_t *ev = expect_datagram(&env, text, (size_t)n);
    ck_assert_int_eq(ev->slot, slot);
    ck_assert_int_eq(ev->core, 1);
    ck_assert_uint_eq(ev->from_len, sizeof(struct sockaddr_in));
    const struct sockaddr_in *from = (const struct sockaddr_in *)&ev->from;
    ck_assert_int_eq(from->sin_family, AF_INET);
    ck_assert_int_eq(ntohs(from->sin_port), tport);
  }
  /* An empty datagram is a datagram. */
  send_to_port(t, AF_INET, port, "", 0);
  expect_datagram(&env, "", 0);

  /* Replies: to an address string, and to the sender's sockaddr. */
  char addr[64];
  snprintf(addr, sizeof addr, "127.0.0.1:%d", tport);
  ck_assert_int_eq(send_cmd(&env, ref, slot, addr, NULL, 0, "pong", 4), 0);
  char buf[64];
  ck_assert_int_eq((int)recv(t, buf, sizeof buf, 0), 4);
  ck_assert(memcmp(buf, "pong", 4) == 0);
  send_to_port(t, AF_INET, port, "hi", 2);
  const sa_event_t *ev = expect_datagram(&env, "hi", 2);
  struct sockaddr_storage from = ev->from;
  socklen_t from_len = ev->from_len;
  ck_assert_int_eq(send_cmd(&env, ref, slot, NULL, &from, from_len, "back", 4), 0);
  ck_assert_int_eq((int)recv(t, buf, sizeof buf, 0), 4);
  ck_assert(memcmp(buf, "back", 4) == 0);

  ck_assert_int_eq(sa_cmd(&env, ref, CMD_DG_CLOSE, slot, 0, 0, NULL, NULL), 0);
  close(t);
  ck_assert_int_eq(atomic_load(&a.violations), 0);
  sa_env_free(&env);
}
END_TEST

/* Group "ipv6": runs only where ipv6_missing() finds nothing missing. */
START_TEST(test_dgram_udp_v6_dual) {
  sa_env_t env;
  sa_env_new(&env, 1, 0);
  sa_actor_t a;
  ax_ref_t ref = sa_spawn(&env, &a, 0, 0);
  int slot, port, tport;
  ck_assert_int_eq(bind_cmd(&env, ref, true, "[::1]:0", NULL, &slot, &port), 0);
  int t6 = test_udp(AF_INET6, &tport);
  send_to_port(t6, AF_INET6, port, "six", 3);
  const sa_event_t *ev = expect_datagram(&env, "six", 3);
  ck_assert_int_eq(((const struct sockaddr_in6 *)&ev->from)->sin6_family, AF_INET6);
  char addr[64];
  snprintf(addr, sizeof addr, "[::1]:%d", tport);
  ck_assert_int_eq(send_cmd(&env, ref, slot, addr, NULL, 0, "v6", 2), 0);
  char buf[16];
  ck_assert_int_eq((int)recv(t6, buf, sizeof buf, 0), 2);
  ck_assert_int_eq(sa_cmd(&env, ref, CMD_DG_CLOSE, slot, 0, 0, NULL, NULL), 0);

  /* ":0" is dual stack: IPv4 peers arrive mapped, and IPv4 strings work. */
  int dslot, dport, t4port;
  ck_assert_int_eq(bind_cmd(&env, ref, true, ":0", NULL, &dslot, &dport), 0);
  int t4 = test_udp(AF_INET, &t4port);
  send_to_port(t4, AF_INET, dport, "four", 4);
  ev = expect_datagram(&env, "four", 4);
  const struct sockaddr_in6 *m = (const struct sockaddr_in6 *)&ev->from;
  ck_assert_int_eq(m->sin6_family, AF_INET6);
  ck_assert(IN6_IS_ADDR_V4MAPPED(&m->sin6_addr));
  snprintf(addr, sizeof addr, "127.0.0.1:%d", t4port);
  ck_assert_int_eq(send_cmd(&env, ref, dslot, addr, NULL, 0, "mapped", 6), 0);
  ck_assert_int_eq((int)recv(t4, buf, sizeof buf, 0), 6);
  send_to_port(t6, AF_INET6, dport, "6to:", 4);
  expect_datagram(&env, "6to:", 4);
  close(t4);
  close(t6);
  ck_assert_int_eq(atomic_load(&a.violations), 0);
  sa_env_free(&env); /* closes dslot with its owner */
}
END_TEST

START_TEST(test_dgram_truncated) {
  sa_env_t env;
  sa_env_new(&env, 1, 0);
  sa_actor_t a;
  ax_ref_t ref = sa_spawn(&env, &a, 0, 0);
  ax_dgram_opts_t o = {.max_packet = 16};
  int slot, port, tport;
  ck_assert_int_eq(bind_cmd(&env, ref, true, "127.0.0.1:0", &o, &slot, &port), 0);
  int t = test_udp(AF_INET, &tport);
  unsigned char big[100];
  for (int i = 0; i < 100; i++)
    big[i] = (unsigned char)i;
  send_to_port(t, AF_INET, port, big, sizeof big);
  send_to_port(t, AF_INET, port, big, 16);
  send_to_port(t, AF_INET, port, big, 5);
  const sa_event_t *ev = sa_event(&env, 10000);
  ck_assert(ev->truncated);
  ck_assert_uint_eq(ev->len, 16);
  ck_assert(memcmp(ev->bytes, big, 16) == 0);
  expect_datagram(&env, big, 16);
  expect_datagram(&env, big, 5);
  close(t);
  ck_assert_int_eq(atomic_load(&a.violations), 0);
  sa_env_free(&env);
}
END_TEST

/* The window (the most unhandled AX_MSG_DATAGRAM of one socket) checked
 * from inside its owner: a burst larger than the window is queued in the
 * kernel while the owner holds its core, then handled slowly; the owner
 * counts the datagrams in flight at each one (test_inflight_t). */
enum { WIN_MARKER = AX_MSG_USER + 1, WIN_HOLD };

typedef struct win_owner {
  ax_dgram_opts_t opts; /* set before spawning */
  int slow_ms;          /* busy-wait this long on each datagram */
  atomic_int port;      /* the bound port, or a negative error; 0 until bound */
  atomic_int hold;      /* WIN_HOLD spins while this is set (at most 10 s) */
  atomic_int held;      /* set while WIN_HOLD spins */
  atomic_int violations; /* a packet out of order or of the wrong size, a failed call */
  /* copies of inflight, for the test thread */
  _Atomic uint64_t handled, markers, max_in_flight;
  /* owner core only */
  ax_dgram_t *d;
  test_inflight_t inflight;
} win_owner_t;

static void win_bind(ax_actor_t *self) {
  win_owner_t *w = ax_state(self);
  int rc = ax_udp_bind(self, "127.0.0.1:0", &w->opts, &w->d);
  atomic_store(&w->port, rc == 0 ? ax_dgram_port(w->d) : rc);
}

static int win_behaviour(ax_actor_t *self, const ax_msg_t *m) {
  win_owner_t *w = ax_state(self);
  switch (m->type) {
  case AX_MSG_DATAGRAM: {
    const ax_datagram_t *dg = m->data;
    uint32_t seq;
    if (dg->dgram != w->d || dg->len != sizeof seq) {
      atomic_fetch_add(&w->violations, 1);
      break;
    }
    memcpy(&seq, dg->bytes, sizeof seq);
    if (seq != w->inflight.handled) /* each packet once, in order */
      atomic_fetch_add(&w->violations, 1);
    if (test_inflight_seen(&w->inflight, self, WIN_MARKER) != 0)
      atomic_fetch_add(&w->violations, 1);
    test_spin_ms(w->slow_ms);
    atomic_store(&w->handled, w->inflight.handled);
    break;
  }
  case WIN_MARKER:
    test_inflight_marker(&w->inflight, m);
    atomic_store(&w->max_in_flight, w->inflight.max);
    atomic_store(&w->markers, w->inflight.markers);
    break;
  case WIN_HOLD: {
    int64_t end = ax_now() + 10 * AX_NSEC_PER_SEC;
    atomic_store(&w->held, 1);
    while (atomic_load(&w->hold) && ax_now() < end) {
    }
    atomic_store(&w->held, 0);
    break;
  }
  default:
    atomic_fetch_add(&w->violations, 1);
    break;
  }
  return 0;
}

/* Sends `packets` numbered packets to a slow owner bound with options *o
 * while it holds its core, and checks that each arrived once, in order,
 * and that the most datagrams in flight at once was exactly `window`:
 * never more, and reached (so the check was not passed by a burst too
 * small to fill the window). */
static void flood(const ax_dgram_opts_t *o, unsigned window, int packets) {
  ax_rt_t *rt = test_rt_new(2, AX_RT_KEEP_ALIVE);
  test_rt_start(rt);
  win_owner_t w;
  memset(&w, 0, sizeof w);
  w.opts = *o;
  w.slow_ms = 1;
  atomic_store(&w.hold, 1);
  ax_spawn_opts_t so = {.placement = AX_PLACE_CORE, .core = 1, .init = win_bind};
  ax_ref_t ref = AX_REF_NONE;
  ck_assert_int_eq(ax_spawn(rt, win_behaviour, &w, &so, &ref), 0);
  TEST_WAIT_UNTIL(atomic_load(&w.port) != 0, 10000);
  int port = atomic_load(&w.port);
  ck_assert_msg(port > 0, "ax_udp_bind: %s", ax_strerror(port));
  /* The owner holds its core: its loop reads nothing until the whole
   * burst waits in the kernel (the big rcvbuf keeps all of it). */
  ck_assert_int_eq(ax_send(ref, WIN_HOLD, NULL, 0), 0);
  TEST_WAIT_UNTIL(atomic_load(&w.held) == 1, 10000);
  int tport;
  int t = test_udp(AF_INET, &tport);
  for (int i = 0; i < packets; i++) {
    uint32_t seq = (uint32_t)i;
    send_to_port(t, AF_INET, port, &seq, sizeof seq);
  }
  atomic_store(&w.hold, 0);
  TEST_WAIT_UNTIL(atomic_load(&w.markers) == (uint64_t)packets, 20000);
  test_sleep_ms(50); /* nothing more comes */
  ck_assert_uint_eq(atomic_load(&w.handled), (uint64_t)packets);
  ck_assert_int_eq(atomic_load(&w.violations), 0);
  ck_assert_msg(atomic_load(&w.max_in_flight) == window,
                "window %u (burst %u): at most %llu datagrams were in flight, expected %u",
                o->window, o->burst, (unsigned long long)atomic_load(&w.max_in_flight),
                window);
  close(t);
  test_rt_stop_join_free(rt); /* closes the socket with its owner */
}

START_TEST(test_dgram_window) {
  /* Each burst is larger than the window, and a readiness event may read
   * more than the window, so only the window can keep the count down. */
  ax_dgram_opts_t small = {.window = 4, .burst = 32, .max_packet = 512, .rcvbuf = 1 << 20};
  flood(&small, 4, 150);
  ax_dgram_opts_t one = {.window = 1, .burst = 8, .rcvbuf = 1 << 20};
  flood(&one, 1, 60);
  ax_dgram_opts_t dflt = {.burst = 256, .max_packet = 512, .rcvbuf = 1 << 20};
  flood(&dflt, 64, 150); /* the default window (source.h) */
}
END_TEST

START_TEST(test_dgram_connect) {
  sa_env_t env;
  sa_env_new(&env, 1, 0);
  sa_actor_t a;
  ax_ref_t ref = sa_spawn(&env, &a, 0, 0);
  int slot, port, tport, oport;
  ck_assert_int_eq(bind_cmd(&env, ref, true, "127.0.0.1:0", NULL, &slot, &port), 0);
  int t = test_udp(AF_INET, &tport);
  int other = test_udp(AF_INET, &oport);
  char addr[64];
  snprintf(addr, sizeof addr, "127.0.0.1:%d", tport);
  ck_assert_int_eq(sa_cmd(&env, ref, CMD_DG_CONNECT, slot, 0, 0, addr, NULL), 0);
  ck_assert_int_eq(sa_cmd(&env, ref, CMD_DG_CONNECT, slot, 0, 0, "localhost:1", NULL),
                   -EINVAL);
  ck_assert_int_eq(send_cmd(&env, ref, slot, NULL, NULL, 0, "to peer", 7), 0);
  char buf[64];
  ck_assert_int_eq((int)recv(t, buf, sizeof buf, 0), 7);
  /* Only the peer's packets arrive. */
  send_to_port(other, AF_INET, port, "stranger", 8);
  send_to_port(t, AF_INET, port, "peer", 4);
  expect_datagram(&env, "peer", 4);
  ck_assert(sa_no_event(&env, 50));

  /* A peer with no socket: the ICMP error comes back on a later send. */
  int gone_port;
  int gone = test_udp(AF_INET, &gone_port);
  close(gone);
  snprintf(addr, sizeof addr, "127.0.0.1:%d", gone_port);
  ck_assert_int_eq(sa_cmd(&env, ref, CMD_DG_CONNECT, slot, 0, 0, addr, NULL), 0);
  int rc = 0;
  for (int i = 0; i < 200 && rc != -ECONNREFUSED; i++) {
    rc = send_cmd(&env, ref, slot, NULL, NULL, 0, "x", 1);
    ck_assert_msg(rc == 0 || rc == -ECONNREFUSED, "send: %s", ax_strerror(rc));
    test_sleep_ms(5);
  }
  ck_assert_int_eq(rc, -ECONNREFUSED);
  ck_assert(sa_no_event(&env, 20)); /* an error is no datagram */
  close(t);
  close(other);
  ck_assert_int_eq(atomic_load(&a.violations), 0);
  sa_env_free(&env);
}
END_TEST

/* An ICMP error queued on the socket's error queue (IP_RECVERR, set on the
 * fd as ax_dgram_fd allows) keeps the socket reporting an error at every
 * poll until it is read from that queue.  The source empties the queue,
 * keeps the error for the next send, and its core goes back to sleep: it
 * used to read nothing and be called again at once, forever (recvmmsg is
 * interposed to count its calls). */
static atomic_ulong recvmmsg_calls;
static int (*real_recvmmsg)(int, struct mmsghdr *, unsigned, int, struct timespec *);

/* Resolved before any thread runs: the cores call it at once. */
__attribute__((constructor)) static void find_recvmmsg(void) {
  real_recvmmsg = (int (*)(int, struct mmsghdr *, unsigned, int, struct timespec *))dlsym(
      RTLD_NEXT, "recvmmsg");
}

__attribute__((visibility("default"))) int recvmmsg(int fd, struct mmsghdr *v, unsigned n,
                                                    int flags, struct timespec *t);
__attribute__((visibility("default"))) int recvmmsg(int fd, struct mmsghdr *v, unsigned n,
                                                    int flags, struct timespec *t) {
  atomic_fetch_add(&recvmmsg_calls, 1);
  return real_recvmmsg(fd, v, n, flags, t);
}

enum { ERRQ_SEND = AX_MSG_USER + 50, ERRQ_RESEND };
static _Atomic int errq_sent = 1, errq_resent = 1;
static ax_dgram_t *errq_d;

static int errq_actor(ax_actor_t *self, const ax_msg_t *m) {
  if (m->type == ERRQ_SEND) {
    ck_assert_int_eq(ax_udp_bind(self, "127.0.0.1:0", NULL, &errq_d), 0);
    int on = 1;
    ck_assert_int_eq(setsockopt(ax_dgram_fd(errq_d), IPPROTO_IP, IP_RECVERR, &on, sizeof on), 0);
    atomic_store(&errq_sent, ax_dgram_sendto(errq_d, m->data, "x", 1));
  } else if (m->type == ERRQ_RESEND) {
    atomic_store(&errq_resent, ax_dgram_sendto(errq_d, m->data, "x", 1));
  }
  return 0;
}

START_TEST(test_dgram_error_queue) {
  ax_rt_opts_t o = {.cores = 1, .spin_ns = -1, .flags = AX_RT_NO_SIGNALS | AX_RT_KEEP_ALIVE};
  ax_rt_t *rt;
  ck_assert_int_eq(ax_rt_new(&o, &rt), 0);
  ck_assert_int_eq(ax_rt_start(rt), 0);
  ax_ref_t a = test_spawn(rt, errq_actor, NULL, AX_PLACE_ANY, 0, NULL, NULL);
  int gone_port;
  close(test_udp(AF_INET, &gone_port)); /* a port nobody listens on: ICMP comes back */
  char addr[64];
  snprintf(addr, sizeof addr, "127.0.0.1:%d", gone_port);
  test_send(a, ERRQ_SEND, addr, strlen(addr) + 1);
  TEST_WAIT_UNTIL(atomic_load(&errq_sent) != 1, 10000);
  ck_assert_int_eq(atomic_load(&errq_sent), 0);
  test_sleep_ms(100); /* the ICMP error arrives, is taken */
  unsigned long before = atomic_load(&recvmmsg_calls);
  test_sleep_ms(300);
  unsigned long calls = atomic_load(&recvmmsg_calls) - before;
  ck_assert_msg(calls < 20, "recvmmsg called %lu times in 300 ms: the core spins", calls);
  /* The error is the next send's answer. */
  test_send(a, ERRQ_RESEND, addr, strlen(addr) + 1);
  TEST_WAIT_UNTIL(atomic_load(&errq_resent) != 1, 10000);
  ck_assert_int_eq(atomic_load(&errq_resent), -ECONNREFUSED);
  test_rt_stop_join_free(rt);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Unix datagram sockets                                                     */

START_TEST(test_dgram_unix) {
  sa_env_t env;
  sa_env_new(&env, 2, 0);
  sa_actor_t a, b;
  ax_ref_t ra = sa_spawn(&env, &a, 1, 0);
  ax_ref_t rb = sa_spawn(&env, &b, 2, 1);
  char dir[64] = "/tmp/axon-dg-XXXXXX";
  ck_assert_ptr_nonnull(mkdtemp(dir));
  char path[128];
  snprintf(path, sizeof path, "%s/sock", dir);
  int sa_slot, sb_slot, sc_slot;
  ck_assert_int_eq(bind_cmd(&env, ra, false, path, NULL, &sa_slot, NULL), 0);
  ck_assert_int_eq(bind_cmd(&env, ra, false, path, NULL, &sc_slot, NULL), -EADDRINUSE);
  ck_assert_int_eq(bind_cmd(&env, rb, false, "", NULL, &sb_slot, NULL), 0); /* autobind */
  int64_t port;
  ck_assert_int_eq(sa_cmd(&env, rb, CMD_DG_PORT, sb_slot, 0, 0, NULL, &port), 0);
  ck_assert_int_eq((int)port, -EINVAL);

  /* b -> a by path; a answers to the autobound address it saw. */
  ck_assert_int_eq(send_cmd(&env, rb, sb_slot, path, NULL, 0, "hello", 5), 0);
  const sa_event_t *ev = expect_datagram(&env, "hello", 5);
  ck_assert_int_eq(ev->tag, 1);
  ck_assert_int_eq(((const struct sockaddr_un *)&ev->from)->sun_family, AF_UNIX);
  ck_assert_uint_gt(ev->from_len, sizeof(sa_family_t));
  struct sockaddr_storage from = ev->from;
  socklen_t from_len = ev->from_len;
  ck_assert_int_eq(send_cmd(&env, ra, sa_slot, NULL, &from, from_len, "hi b", 4), 0);
  ev = expect_datagram(&env, "hi b", 4);
  ck_assert_int_eq(ev->tag, 2);

  /* Abstract names. */
  char abstract[64];
  snprintf(abstract, sizeof abstract, "@axon-test-%d", (int)getpid());
  ck_assert_int_eq(bind_cmd(&env, ra, false, abstract, NULL, &sc_slot, NULL), 0);
  ck_assert_int_eq(send_cmd(&env, rb, sb_slot, abstract, NULL, 0, "abs", 3), 0);
  ev = expect_datagram(&env, "abs", 3);
  ck_assert_int_eq(ev->slot, sc_slot);

  /* A connected pair whose receiver never reads: sends end in -EAGAIN. */
  ck_assert_int_eq(sa_cmd(&env, rb, CMD_DG_CONNECT, sb_slot, 0, 0, abstract, NULL), 0);
  ck_assert_int_eq(sa_cmd(&env, ra, CMD_DG_CLOSE, sc_slot, 0, 0, NULL, NULL), 0);
  ck_assert_int_eq(send_cmd(&env, rb, sb_slot, NULL, NULL, 0, "x", 1), -ECONNREFUSED);
  int sink = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  struct sockaddr_un sun = {.sun_family = AF_UNIX};
  snprintf(sun.sun_path + 1, sizeof sun.sun_path - 1, "axon-sink-%d", (int)getpid());
  socklen_t sl = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 +
                             strlen(sun.sun_path + 1));
  ck_assert_int_eq(bind(sink, (struct sockaddr *)&sun, sl), 0);
  char sink_name[64];
  snprintf(sink_name, sizeof sink_name, "@%s", sun.sun_path + 1);
  ck_assert_int_eq(sa_cmd(&env, rb, CMD_DG_CONNECT, sb_slot, 0, 0, sink_name, NULL), 0);
  int rc = 0, sent = 0;
  while (rc == 0 && sent < 100000) {
    rc = send_cmd(&env, rb, sb_slot, NULL, NULL, 0, "fill", 4);
    sent += rc == 0;
  }
  ck_assert_int_eq(rc, -EAGAIN);
  ck_assert_int_gt(sent, 0);
  close(sink);

  ck_assert_int_eq(atomic_load(&a.violations) + atomic_load(&b.violations), 0);
  sa_env_free(&env);
  unlink(path);
  rmdir(dir);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Close                                                                     */

START_TEST(test_dgram_close) {
  sa_env_t env;
  sa_env_new(&env, 1, 0);
  sa_actor_t a, b;
  ax_ref_t ra = sa_spawn(&env, &a, 1, 0);
  ax_ref_t rb = sa_spawn(&env, &b, 2, 0);
  int t, tport;
  t = test_udp(AF_INET, &tport);
  /* A datagram queued when the close runs is dropped: b holds the core
   * while it arrives and the close is queued (see test_sources). */
  for (int i = 0; i < 5; i++) {
    int slot, port;
    ck_assert_int_eq(bind_cmd(&env, ra, true, "127.0.0.1:0", NULL, &slot, &port), 0);
    sa_hold(rb, &b);
    send_to_port(t, AF_INET, port, "late", 4);
    sa_send(ra, CMD_DG_CLOSE, slot, 0, 0);
    sa_release(&env, &b, 2);
    ck_assert(sa_no_event(&env, 50));
  }
  /* The owner stops: its socket closes, so its port can be bound again. */
  int slot, port;
  ck_assert_int_eq(bind_cmd(&env, ra, true, "127.0.0.1:0", NULL, &slot, &port), 0);
  ck_assert_int_eq(sa_cmd(&env, ra, CMD_STOP, 0, 0, 0, NULL, NULL), 0);
  TEST_WAIT_UNTIL(atomic_load(&a.terminated) == 1, 5000);
  char addr[64];
  snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
  int again;
  ck_assert_int_eq(bind_cmd(&env, rb, true, addr, NULL, &again, NULL), 0);
  send_to_port(t, AF_INET, port, "new owner", 9);
  ck_assert_int_eq(expect_datagram(&env, "new owner", 9)->tag, 2);
  close(t);
  ck_assert_int_eq(atomic_load(&a.violations) + atomic_load(&b.violations), 0);
  sa_env_free(&env);
}
END_TEST

static Suite *dgram_suite(void) {
  Suite *s = suite_create("dgram");
  TCase *tc = tcase_create("udp");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_dgram_errors);
  tcase_add_test(tc, test_dgram_udp_v4);
  tcase_add_test(tc, test_dgram_truncated);
  tcase_add_test(tc, test_dgram_window);
  tcase_add_test(tc, test_dgram_connect);
  tcase_add_test(tc, test_dgram_error_queue);
  suite_add_tcase(s, tc);
  tc = tcase_create("ipv6"); /* a CTest entry of its own: sources_dgram_ipv6 */
  tcase_set_tags(tc, "ipv6");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_dgram_udp_v6_dual);
  suite_add_tcase(s, tc);
  tc = tcase_create("unix");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_dgram_unix);
  suite_add_tcase(s, tc);
  tc = tcase_create("close");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_dgram_close);
  suite_add_tcase(s, tc);
  return s;
}

/* Without an argument: every TCase but the groups'; "ipv6": that group,
 * or SKIP (77) without an IPv6 loopback (test_run_groups). */
int main(int argc, char **argv) {
  static const test_group_t groups[] = {{"ipv6", ipv6_missing}};
  return test_run_groups(dgram_suite(), argc, argv, groups, sizeof groups / sizeof groups[0]);
}
