/* Check suite for TCP and unix stream sockets: listen/connect/accept, addresses, resolving, connect errors, serving across cores, accept overload. */
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/un.h>
#include <sys/wait.h>

#include "stream_test.h"

enum { CORE_S = 0, CORE_C = 1 };

static ax_stream_opts_t opts_zero(void) {
  ax_stream_opts_t o;
  memset(&o, 0, sizeof o);
  return o;
}

/* Listens in actor `to` (listener slot lslot); returns the port (TCP) or 0. */
static int st_listen(st_env_t *env, ax_ref_t to, int lslot, uint32_t cmd, const char *addr,
                     int backlog, const ax_stream_opts_t *o, int *rc_out) {
  st_cmd_t *c = st_cmd_new(lslot, NULL, 0);
  snprintf(c->addr, sizeof c->addr, "%s", addr);
  c->backlog = backlog;
  if (o != NULL) {
    c->has_opts = 1;
    c->opts = *o;
  }
  int64_t port = 0;
  int rc = st_call_cmd(env, to, cmd, c, &port);
  free(c);
  if (rc_out != NULL)
    *rc_out = rc;
  else
    ck_assert_msg(rc == 0, "listen %s: %s", addr, ax_strerror(rc));
  return (int)port;
}

static int st_connect(st_env_t *env, ax_ref_t to, int slot, uint32_t cmd, const char *addr,
                      const ax_stream_opts_t *o) {
  st_cmd_t *c = st_cmd_new(slot, NULL, 0);
  snprintf(c->addr, sizeof c->addr, "%s", addr);
  if (o != NULL) {
    c->has_opts = 1;
    c->opts = *o;
  }
  int rc = st_call_cmd(env, to, cmd, c, NULL);
  free(c);
  return rc;
}

static int stream_fd(st_env_t *env, ax_ref_t to, int slot) {
  int fd = st_call(env, to, CMD_FD, slot, 0);
  ck_assert_int_ge(fd, 0);
  return fd;
}

/* Takes the CONNECTED of tag ctag and the ACCEPT of tag stag, in either
 * order (two senders); returns the ACCEPT's family and stores the accepted
 * slot. */
static int expect_connected_accepted(st_env_t *env, int ctag, int *accepted_slot) {
  int family = -1;
  bool connected = false, accepted = false;
  while (!connected || !accepted) {
    st_report_t *r = st_next(env);
    if (r->type == AX_MSG_CONNECTED && r->tag == ctag && !connected) {
      connected = true;
    } else if (r->type == AX_MSG_ACCEPT && !accepted) {
      accepted = true;
      family = (int)r->count;
      *accepted_slot = r->slot;
    } else {
      ck_abort_msg("unexpected report %u (tag %d, err %d: %s)", (unsigned)r->type, r->tag,
                   r->err, ax_strerror(r->err));
    }
  }
  return family;
}

/* A free TCP port on 127.0.0.1 (bound and closed again: connects to it are
 * refused). */
static int free_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
  socklen_t len = sizeof a;
  ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
  close(fd);
  return ntohs(a.sin_port);
}

/* A blocking client socket connected to 127.0.0.1:port. */
static int client_v4(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ck_assert_int_ge(fd, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  int rc = connect(fd, (struct sockaddr *)&a, sizeof a);
  ck_assert_msg(rc == 0, "connect to %d: %s", port, strerror(errno));
  return fd;
}

/* Runs a connect / accept / echo / close round between a server actor and a
 * client actor over `addr` (the listen address) and `caddr` (the connect
 * address; "%d" is replaced by the port). */
static void round_trip(st_env_t *env, ax_ref_t sr, ax_ref_t cr, uint32_t lcmd, uint32_t ccmd,
                       const char *addr, const char *caddr_fmt, int want_family, int slot) {
  int port = st_listen(env, sr, slot, lcmd, addr, 0, NULL, NULL);
  char caddr[120];
  snprintf(caddr, sizeof caddr, caddr_fmt, port);
  ck_assert_int_eq(st_connect(env, cr, slot, ccmd, caddr, NULL), 0);
  int as = -1;
  int family = expect_connected_accepted(env, 2, &as);
  ck_assert_int_eq(family, want_family);
  ck_assert_int_eq(st_write(env, cr, slot, "hello", 5), 0);
  st_expect_bytes(env, "hello", 5);
  ck_assert_int_eq(st_write(env, sr, as, "back", 4), 0);
  st_expect_bytes(env, "back", 4);
  ck_assert_int_eq(st_call(env, cr, CMD_CLOSE, slot, 0), 0);
  st_report_t *r = st_expect(env, AX_MSG_CLOSED);
  ck_assert_int_eq(r->tag, 1);
  ck_assert_int_eq(r->err, 0);
  ck_assert_int_eq(st_call(env, sr, CMD_LISTENER_CLOSE, slot, 0), 0);
}

/* ------------------------------------------------------------------------ */
/* Listen, connect, accept                                                   */

START_TEST(test_tcp_v4_v6_wildcard) {
  st_env_t env;
  st_env_init(&env);
  st_actor_t s, c;
  st_actor_init(&env, &s, 1);
  st_actor_init(&env, &c, 2);
  ax_ref_t sr = st_spawn(&env, &s, CORE_S);
  ax_ref_t cr = st_spawn(&env, &c, CORE_C);
  round_trip(&env, sr, cr, CMD_TCP_LISTEN, CMD_TCP_CONNECT, "127.0.0.1:0", "127.0.0.1:%d",
             AF_INET, 0);
  round_trip(&env, sr, cr, CMD_TCP_LISTEN, CMD_TCP_CONNECT, "[::1]:0", "[::1]:%d", AF_INET6,
             1);
  /* Wildcards take IPv4 and IPv6 (dual stack): v4 clients appear mapped. */
  round_trip(&env, sr, cr, CMD_TCP_LISTEN, CMD_TCP_CONNECT, ":0", "[::1]:%d", AF_INET6, 2);
  round_trip(&env, sr, cr, CMD_TCP_LISTEN, CMD_TCP_CONNECT, "*:0", "127.0.0.1:%d", AF_INET6,
             3);
  ck_assert_int_eq(atomic_load(&s.violations) + atomic_load(&c.violations), 0);
  st_env_done(&env);
}
END_TEST

START_TEST(test_tcp_unix_path_and_abstract) {
  st_env_t env;
  st_env_init(&env);
  st_actor_t s, c;
  st_actor_init(&env, &s, 1);
  st_actor_init(&env, &c, 2);
  ax_ref_t sr = st_spawn(&env, &s, CORE_S);
  ax_ref_t cr = st_spawn(&env, &c, CORE_C);
  char path[108];
  snprintf(path, sizeof path, "/tmp/axon-test-%d.sock", (int)getpid());
  unlink(path);
  round_trip(&env, sr, cr, CMD_UNIX_LISTEN, CMD_UNIX_CONNECT, path, path, AF_UNIX, 0);
  /* The socket file stays (ax_unix_listen unlinks nothing): listening again
   * fails until it is removed. */
  int rc = 0;
  st_listen(&env, sr, 1, CMD_UNIX_LISTEN, path, 0, NULL, &rc);
  ck_assert_int_eq(rc, -EADDRINUSE);
  ck_assert_int_eq(unlink(path), 0);

  char abstract[64];
  snprintf(abstract, sizeof abstract, "@axon-test-%d", (int)getpid());
  round_trip(&env, sr, cr, CMD_UNIX_LISTEN, CMD_UNIX_CONNECT, abstract, abstract, AF_UNIX, 1);
  /* No file for an abstract name; and the name is free again once closed. */
  ck_assert_int_eq(access(abstract, F_OK), -1);
  round_trip(&env, sr, cr, CMD_UNIX_LISTEN, CMD_UNIX_CONNECT, abstract, abstract, AF_UNIX, 2);

  /* Nobody listening: refused, at once or as CLOSED (the header allows
   * either). */
  int crc = st_connect(&env, cr, 5, CMD_UNIX_CONNECT, "@axon-test-nobody", NULL);
  if (crc == 0) {
    st_report_t *r = st_expect(&env, AX_MSG_CLOSED);
    ck_assert_int_eq(r->err, -ECONNREFUSED);
  } else {
    ck_assert_int_eq(crc, -ECONNREFUSED);
  }
  st_env_done(&env);
}
END_TEST

/* Inside an actor: every malformed address and NULL argument. */
typedef struct addr_check {
  int fails;
  char what[256];
} addr_check_t;

static int addr_hook(ax_actor_t *self, st_actor_t *a, const ax_msg_t *m) {
  if (m->type != CMD_USER)
    return ST_NEXT;
  addr_check_t *chk = a->user;
  static const char *bad_connect[] = {
      "127.0.0.1",       /* no port */
      "127.0.0.1:",      /* empty port */
      "127.0.0.1:65536", /* port too big */
      "127.0.0.1:8x",    /* not a number */
      "127.0.0.1:-1",
      "[::1:80",         /* unbalanced */
      "::1]:80",
      "::1:80",          /* bare IPv6 */
      "[::1]80",
      "[]:80",
      ":80",             /* empty host: only for listening */
      "*:80",
      "",
      "[not-v6]:80",
  };
  ax_stream_t *s = NULL;
  ax_listener_t *l = NULL;
  for (size_t i = 0; i < sizeof bad_connect / sizeof *bad_connect; i++) {
    int rc = ax_tcp_connect(self, bad_connect[i], NULL, &s);
    if (rc != -EINVAL && chk->fails++ == 0)
      snprintf(chk->what, sizeof chk->what, "connect '%s': %d", bad_connect[i], rc);
  }
  static const char *bad_listen[] = {"127.0.0.1", "127.0.0.1:99999", "[::1:0", "::1:0", "",
                                     "127.0.0.1:a"};
  for (size_t i = 0; i < sizeof bad_listen / sizeof *bad_listen; i++) {
    int rc = ax_tcp_listen(self, bad_listen[i], 0, NULL, &l);
    if (rc != -EINVAL && chk->fails++ == 0)
      snprintf(chk->what, sizeof chk->what, "listen '%s': %d", bad_listen[i], rc);
  }
  char longpath[200];
  memset(longpath, 'p', sizeof longpath - 1);
  longpath[sizeof longpath - 1] = '\0';
  struct {
    int got;
    const char *what;
  } cases[] = {
      {ax_tcp_connect(self, NULL, NULL, &s), "connect NULL addr"},
      {ax_tcp_connect(self, "127.0.0.1:1", NULL, NULL), "connect NULL out"},
      {ax_tcp_connect(NULL, "127.0.0.1:1", NULL, &s), "connect NULL self"},
      {ax_tcp_listen(self, NULL, 0, NULL, &l), "listen NULL addr"},
      {ax_tcp_listen(self, "127.0.0.1:0", 0, NULL, NULL), "listen NULL out"},
      {ax_tcp_listen(NULL, "127.0.0.1:0", 0, NULL, &l), "listen NULL self"},
      {ax_unix_connect(self, "", NULL, &s), "unix connect empty"},
      {ax_unix_connect(self, NULL, NULL, &s), "unix connect NULL"},
      {ax_unix_connect(self, longpath, NULL, &s), "unix connect too long"},
      {ax_unix_connect(self, "@x", NULL, NULL), "unix connect NULL out"},
      {ax_unix_listen(self, "", 0, NULL, &l), "unix listen empty"},
      {ax_unix_listen(self, NULL, 0, NULL, &l), "unix listen NULL"},
      {ax_unix_listen(self, longpath, 0, NULL, &l), "unix listen too long"},
      {ax_unix_listen(NULL, "@x", 0, NULL, &l), "unix listen NULL self"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
    if (cases[i].got != -EINVAL && chk->fails++ == 0)
      snprintf(chk->what, sizeof chk->what, "%s: %d", cases[i].what, cases[i].got);
  /* Bad stream options refuse the open too. */
  ax_stream_opts_t o = opts_zero();
  o.len_bytes = 3;
  o.frame = AX_FRAME_LENGTH;
  int rc = ax_tcp_connect(self, "127.0.0.1:1", &o, &s);
  if (rc != -EINVAL && chk->fails++ == 0)
    snprintf(chk->what, sizeof chk->what, "connect with bad options: %d", rc);
  rc = ax_tcp_listen(self, "127.0.0.1:0", 0, &o, &l);
  if (rc != -EINVAL && chk->fails++ == 0)
    snprintf(chk->what, sizeof chk->what, "listen with bad options: %d", rc);
  /* A unix listener has no port. */
  char name[64];
  snprintf(name, sizeof name, "@axon-test-port-%d", (int)getpid());
  if (ax_unix_listen(self, name, 0, NULL, &l) == 0) {
    if (ax_listener_port(l) != -EINVAL && chk->fails++ == 0)
      snprintf(chk->what, sizeof chk->what, "unix listener port");
    ax_listener_close(l);
  } else if (chk->fails++ == 0) {
    snprintf(chk->what, sizeof chk->what, "unix listen %s failed", name);
  }
  st_reply(a, CMD_USER, chk->fails, 0);
  return 0;
}

START_TEST(test_tcp_address_errors) {
  st_env_t env;
  st_env_init(&env);
  addr_check_t chk;
  memset(&chk, 0, sizeof chk);
  st_actor_t a;
  st_actor_init(&env, &a, 1);
  a.hook = addr_hook;
  a.user = &chk;
  ax_ref_t ar = st_spawn(&env, &a, CORE_C);
  int fails = st_call(&env, ar, CMD_USER, -1, 0);
  ck_assert_msg(fails == 0, "%d address checks failed, first: %s", fails, chk.what);
  st_expect_none(&env, 50); /* refused opens send nothing */

  /* A port in use. */
  st_actor_t s;
  st_actor_init(&env, &s, 2);
  ax_ref_t sr = st_spawn(&env, &s, CORE_S);
  int port = st_listen(&env, sr, 0, CMD_TCP_LISTEN, "127.0.0.1:0", 0, NULL, NULL);
  ck_assert_int_gt(port, 0);
  char addr[64];
  snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
  int rc = 0;
  st_listen(&env, sr, 1, CMD_TCP_LISTEN, addr, 0, NULL, &rc);
  ck_assert_int_eq(rc, -EADDRINUSE);
  st_env_done(&env);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Names and connect failures                                                */

/* Closes slot n of the actor on CMD_USER and reports REP_USER. */
static int close_mark_hook(ax_actor_t *self, st_actor_t *a, const ax_msg_t *m) {
  if (m->type != CMD_USER)
    return ST_NEXT;
  const st_cmd_t *c = m->data;
  int rc = ax_stream_close(a->s[c->slot]);
  a->s[c->slot] = NULL;
  st_report(self, a, REP_USER, c->slot, rc, 0, 0, NULL, 0);
  st_reply(a, CMD_USER, rc, 0);
  return 0;
}

START_TEST(test_tcp_resolve) {
  st_env_t env;
  st_env_init(&env);
  st_actor_t s, c;
  st_actor_init(&env, &s, 1);
  st_actor_init(&env, &c, 2);
  ax_ref_t sr = st_spawn(&env, &s, CORE_S);
  c.hook = close_mark_hook;
  ax_ref_t cr = st_spawn(&env, &c, CORE_C);
  /* A listener may take a name (resolved there and then). */
  int port = st_listen(&env, sr, 0, CMD_TCP_LISTEN, "localhost:0", 0, NULL, NULL);
  char addr[64];
  snprintf(addr, sizeof addr, "localhost:%d", port);
  ck_assert_int_eq(st_connect(&env, cr, 0, CMD_TCP_CONNECT, addr, NULL), 0);
  int as;
  expect_connected_accepted(&env, 2, &as);
  ck_assert_int_eq(st_write(&env, cr, 0, "named", 5), 0);
  st_expect_bytes(&env, "named", 5);

  /* A name that does not resolve (answered at once here, no DNS needed:
   * ".invalid" is reserved) ends in CLOSED with a resolver error that
   * ax_strerror explains. */
  ck_assert_int_eq(st_connect(&env, cr, 1, CMD_TCP_CONNECT, "no-such-host.invalid:80", NULL), 0);
  st_report_t *r = st_expect(&env, AX_MSG_CLOSED);
  ck_assert_int_eq(r->slot, 1);
  int err = r->err;
  ck_assert_msg(AX_IS_EAI(err), "resolver error %d (%s) is not an AX_EAI code", err,
                ax_strerror(err));
  ck_assert_str_eq(ax_strerror(err), gai_strerror(err + AX_EAI_BASE));
  ck_assert_str_ne(ax_strerror(err), "unknown error");
  ck_assert_str_ne(ax_err_name(err), "UNKNOWN");
  ck_assert_str_ne(ax_err_name(err), "EAI_UNKNOWN");
  /* The same name for a listener fails synchronously with a resolver error. */
  int rc = 0;
  st_listen(&env, sr, 1, CMD_TCP_LISTEN, "no-such-host.invalid:0", 0, NULL, &rc);
  ck_assert_msg(AX_IS_EAI(rc), "listen on a bad name: %d", rc);

  /* Closing while the name is (probably) being resolved: nothing of that
   * stream arrives after the close.  The hook closes slot 2 and marks the
   * moment in the event stream. */
  ck_assert_int_eq(st_connect(&env, cr, 2, CMD_TCP_CONNECT, addr, NULL), 0);
  ck_assert_int_eq(st_call(&env, cr, CMD_USER, 2, 0), 0);
  bool marked = false;
  for (st_report_t *x; (x = st_next_wait(&env, 200)) != NULL;) {
    if (x->tag == 1)
      continue; /* the listener may still accept it and see it close */
    if (x->type == REP_USER) {
      marked = true;
      continue;
    }
    ck_assert_msg(!marked && x->type == AX_MSG_CONNECTED,
                  "client report %u after close (err %d)", (unsigned)x->type, x->err);
  }
  ck_assert(marked);
  ck_assert_int_eq(atomic_load(&c.violations), 0);
  st_env_done(&env);
}
END_TEST

/* A loopback listener with a backlog of one, taken by *filler: it drops
 * the SYNs of later connects, which hang until their timeout.  Returns
 * the listener; *port is its port. */
static int full_listener(int *port, int *filler) {
  int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  ck_assert_int_eq(bind(l, (struct sockaddr *)&sa, sizeof sa), 0);
  ck_assert_int_eq(listen(l, 0), 0);
  socklen_t len = sizeof sa;
  ck_assert_int_eq(getsockname(l, (struct sockaddr *)&sa, &len), 0);
  *port = ntohs(sa.sin_port);
  *filler = client_v4(*port);
  return l;
}

START_TEST(test_tcp_connect_refused_timeout) {
  st_env_t env;
  st_env_init(&env);
  st_actor_t c;
  st_actor_init(&env, &c, 2);
  ax_ref_t cr = st_spawn(&env, &c, CORE_C);
  char addr[64];
  snprintf(addr, sizeof addr, "127.0.0.1:%d", free_port());
  ck_assert_int_eq(st_connect(&env, cr, 0, CMD_TCP_CONNECT, addr, NULL), 0);
  st_report_t *r = st_expect(&env, AX_MSG_CLOSED);
  ck_assert_int_eq(r->err, -ECONNREFUSED);

  /* A listener whose backlog is full drops SYNs: the connect hangs until
   * connect_timeout. */
  int port, filler;
  int l = full_listener(&port, &filler);
  snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
  ax_stream_opts_t o = opts_zero();
  /* Long enough for the three calls below to run while it still connects,
   * even on a loaded machine under ThreadSanitizer. */
  o.connect_timeout = 2 * AX_NSEC_PER_SEC;
  ck_assert_int_eq(st_connect(&env, cr, 1, CMD_TCP_CONNECT, addr, &o), 0);
  /* Still connecting: shutdown and give refuse, a write is queued. */
  ck_assert_int_eq(st_call(&env, cr, CMD_SHUTDOWN, 1, 0), -ENOTCONN);
  ck_assert_int_eq(st_give(&env, cr, 1, cr), -EINVAL);
  ck_assert_int_eq(st_write(&env, cr, 1, "early", 5), 0);
  r = st_expect(&env, AX_MSG_CLOSED);
  ck_assert_int_eq(r->slot, 1);
  ck_assert_int_eq(r->err, -ETIMEDOUT);
  /* A timeout through a name too (resolve + connect). */
  o.connect_timeout = 200 * AX_NSEC_PER_MSEC;
  snprintf(addr, sizeof addr, "localhost:%d", port);
  ck_assert_int_eq(st_connect(&env, cr, 2, CMD_TCP_CONNECT, addr, &o), 0);
  r = st_expect(&env, AX_MSG_CLOSED);
  ck_assert_int_eq(r->err, -ETIMEDOUT);
  /* A write while connecting must not stop the connect's watch: once the
   * backlog has room again (the SYN is retried), CONNECTED comes and the
   * early bytes are sent. */
  o.connect_timeout = 30 * AX_NSEC_PER_SEC;
  snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
  ck_assert_int_eq(st_connect(&env, cr, 3, CMD_TCP_CONNECT, addr, &o), 0);
  ck_assert_int_eq(st_write(&env, cr, 3, "early", 5), 0);
  ck_assert_int_eq(st_call(&env, cr, CMD_PAUSE, 3, 0), 0);
  ck_assert_int_eq(st_call(&env, cr, CMD_RESUME, 3, 0), 0);
  int first = accept4(l, NULL, NULL, SOCK_CLOEXEC); /* the filler's: room again */
  ck_assert_int_ge(first, 0);
  int late = accept4(l, NULL, NULL, SOCK_CLOEXEC);
  ck_assert_int_ge(late, 0);
  r = st_expect(&env, AX_MSG_CONNECTED);
  ck_assert_int_eq(r->slot, 3);
  char early[8];
  ck_assert_int_eq((int)read(late, early, sizeof early), 5);
  ck_assert_int_eq(memcmp(early, "early", 5), 0);
  ck_assert_int_eq(st_call(&env, cr, CMD_CLOSE, 3, 0), 0);
  close(late);
  close(first);
  close(filler);
  close(l);
  st_expect_none(&env, 50);
  st_env_done(&env);
}
END_TEST

/* A plain listening socket on the test thread. */
static int raw_listener(int *port) {
  int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  ck_assert_int_eq(bind(l, (struct sockaddr *)&sa, sizeof sa), 0);
  ck_assert_int_eq(listen(l, 16), 0);
  socklen_t len = sizeof sa;
  ck_assert_int_eq(getsockname(l, (struct sockaddr *)&sa, &len), 0);
  *port = ntohs(sa.sin_port);
  return l;
}

/* connect_timeout counts from the call, not from when the core last read
 * the clock: an actor that computes for 300 ms, then connects with a
 * 400 ms timeout to a listener that drops SYNs, hears CLOSED{-ETIMEDOUT}
 * no sooner than 400 ms after the call (before, 100 ms after it). */
typedef struct late_connect {
  char addr[64];
  int64_t called;           /* when ax_tcp_connect was called */
  _Atomic int64_t elapsed;  /* from the call to CLOSED, or -1 */
  atomic_int err, rc, done;
} late_connect_t;

static int late_connect_actor(ax_actor_t *self, const ax_msg_t *m) {
  late_connect_t *lc = ax_state(self);
  if (m->type == AX_MSG_USER) {
    test_spin_ms(300); /* a long turn: the loop's cached time falls behind */
    ax_stream_opts_t o = opts_zero();
    o.connect_timeout = 400 * AX_NSEC_PER_MSEC;
    ax_stream_t *s;
    lc->called = ax_now();
    atomic_store(&lc->rc, ax_tcp_connect(self, lc->addr, &o, &s));
    return 0;
  }
  if (m->type == AX_MSG_CLOSED || m->type == AX_MSG_CONNECTED) {
    atomic_store(&lc->elapsed, ax_now() - lc->called);
    atomic_store(&lc->err, m->type == AX_MSG_CLOSED ? ((const ax_stream_ev_t *)m->data)->err : 1);
    atomic_store(&lc->done, 1);
    return AX_STOP;
  }
  return 0;
}

START_TEST(test_tcp_connect_timeout_from_call) {
  int port, filler;
  int l = full_listener(&port, &filler);
  static late_connect_t lc;
  memset(&lc, 0, sizeof lc);
  snprintf(lc.addr, sizeof lc.addr, "127.0.0.1:%d", port);
  atomic_store(&lc.elapsed, -1);
  ax_rt_t *rt = test_rt_new(1, AX_RT_KEEP_ALIVE);
  test_rt_start(rt);
  test_sleep_ms(100); /* the core sleeps: its clock was read a while ago */
  ax_ref_t a = test_spawn(rt, late_connect_actor, &lc, AX_PLACE_ANY, 0, NULL, NULL);
  test_send(a, AX_MSG_USER, NULL, 0);
  TEST_WAIT_UNTIL(atomic_load(&lc.done) != 0, 10000);
  ck_assert_int_eq(atomic_load(&lc.rc), 0);
  ck_assert_int_eq(atomic_load(&lc.err), -ETIMEDOUT);
  int64_t ms = atomic_load(&lc.elapsed) / AX_NSEC_PER_MSEC;
  ck_assert_msg(ms >= 400, "CLOSED{-ETIMEDOUT} %lld ms after the call, before its 400 ms",
                (long long)ms);
  test_rt_stop_join_free(rt);
  close(filler);
  close(l);
}
END_TEST

START_TEST(test_tcp_reset_eof_half_open) {
  st_env_t env;
  st_env_init(&env);
  st_actor_t c;
  st_actor_init(&env, &c, 2);
  ax_ref_t cr = st_spawn(&env, &c, CORE_C);
  int port;
  int l = raw_listener(&port);
  char addr[64];
  snprintf(addr, sizeof addr, "127.0.0.1:%d", port);

  /* Written before CONNECTED: sent once connected. */
  ck_assert_int_eq(st_connect(&env, cr, 0, CMD_TCP_CONNECT, addr, NULL), 0);
  ck_assert_int_eq(st_write(&env, cr, 0, "early", 5), 0);
  int peer = accept4(l, NULL, NULL, SOCK_CLOEXEC);
  ck_assert_int_ge(peer, 0);
  st_expect(&env, AX_MSG_CONNECTED);
  char buf[16];
  ck_assert_int_eq((int)read(peer, buf, sizeof buf), 5);
  ck_assert(memcmp(buf, "early", 5) == 0);
  /* Reset by the peer (SO_LINGER 0). */
  struct linger lg = {1, 0};
  ck_assert_int_eq(setsockopt(peer, SOL_SOCKET, SO_LINGER, &lg, sizeof lg), 0);
  close(peer);
  st_report_t *r = st_expect(&env, AX_MSG_CLOSED);
  ck_assert_int_eq(r->err, -ECONNRESET);

  /* An orderly close: CLOSED{0} after the last bytes. */
  ck_assert_int_eq(st_connect(&env, cr, 1, CMD_TCP_CONNECT, addr, NULL), 0);
  peer = accept4(l, NULL, NULL, SOCK_CLOEXEC);
  st_expect(&env, AX_MSG_CONNECTED);
  st_write_all(peer, "last", 4);
  close(peer);
  st_expect_bytes(&env, "last", 4);
  r = st_expect(&env, AX_MSG_CLOSED);
  ck_assert_int_eq(r->err, 0);

  /* Half-open: the peer's FIN is AX_MSG_EOF and the stream still writes;
   * once our side is shut too, the stream is finished: CLOSED{0}. */
  ax_stream_opts_t o = opts_zero();
  o.flags = AX_STREAM_HALF_OPEN;
  ck_assert_int_eq(st_connect(&env, cr, 2, CMD_TCP_CONNECT, addr, &o), 0);
  peer = accept4(l, NULL, NULL, SOCK_CLOEXEC);
  st_expect(&env, AX_MSG_CONNECTED);
  ck_assert_int_eq(shutdown(peer, SHUT_WR), 0);
  st_expect(&env, AX_MSG_EOF);
  st_expect_none(&env, 50); /* still open: nothing ends it yet */
  ck_assert_int_eq(st_write(&env, cr, 2, "answer", 6), 0);
  ck_assert_int_eq((int)read(peer, buf, sizeof buf), 6);
  ck_assert_int_eq(st_call(&env, cr, CMD_SHUTDOWN, 2, 0), 0);
  ck_assert_int_eq((int)read(peer, buf, sizeof buf), 0);
  r = st_expect(&env, AX_MSG_CLOSED);
  ck_assert_int_eq(r->slot, 2);
  ck_assert_int_eq(r->err, 0);
  close(peer);

  /* The other order: our side shut first (with bytes queued behind it),
   * then the peer's FIN: EOF, then CLOSED{0}. */
  ck_assert_int_eq(st_connect(&env, cr, 3, CMD_TCP_CONNECT, addr, &o), 0);
  peer = accept4(l, NULL, NULL, SOCK_CLOEXEC);
  st_expect(&env, AX_MSG_CONNECTED);
  ck_assert_int_eq(st_write(&env, cr, 3, "bye", 3), 0);
  ck_assert_int_eq(st_call(&env, cr, CMD_SHUTDOWN, 3, 0), 0);
  ck_assert_int_eq((int)read(peer, buf, sizeof buf), 3);
  ck_assert_int_eq((int)read(peer, buf, sizeof buf), 0);
  st_expect_none(&env, 50); /* reading goes on */
  st_write_all(peer, "tail", 4);
  ck_assert_int_eq(shutdown(peer, SHUT_WR), 0);
  st_expect_bytes(&env, "tail", 4);
  st_expect(&env, AX_MSG_EOF);
  r = st_expect(&env, AX_MSG_CLOSED);
  ck_assert_int_eq(r->slot, 3);
  ck_assert_int_eq(r->err, 0);
  close(peer);
  close(l);
  st_expect_none(&env, 50);
  st_env_done(&env);
}
END_TEST

/* Socket options: flags at open time and the setters. */
typedef struct sockopt_check {
  int fails;
  char what[128];
} sockopt_check_t;

static int sockopt_hook(ax_actor_t *self, st_actor_t *a, const ax_msg_t *m) {
  (void)self;
  if (m->type != CMD_USER)
    return ST_NEXT;
  sockopt_check_t *chk = a->user;
  ax_stream_t *s = a->s[0];
  int fd = ax_stream_fd(s), v = -1;
  socklen_t len = sizeof v;
#define SO_CHECK(cond)                                                                  \
  do {                                                                                  \
    if (!(cond) && chk->fails++ == 0)                                                   \
      snprintf(chk->what, sizeof chk->what, "line %d: %s", __LINE__, #cond);          \
  } while (0)
  SO_CHECK(ax_stream_set_nodelay(s, false) == 0);
  SO_CHECK(getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &v, &len) == 0 && v == 0);
  SO_CHECK(ax_stream_set_nodelay(s, true) == 0);
  SO_CHECK(getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &v, &len) == 0 && v != 0);
  SO_CHECK(ax_stream_set_keepalive(s, true, 30) == 0);
  SO_CHECK(getsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &v, &len) == 0 && v != 0);
  SO_CHECK(getsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &v, &len) == 0 && v == 30);
  SO_CHECK(ax_stream_set_keepalive(s, false, 0) == 0);
  SO_CHECK(getsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &v, &len) == 0 && v == 0);
  SO_CHECK(ax_stream_set_keepalive(s, true, -1) == -EINVAL);
  SO_CHECK(ax_stream_set_bufsize(s, 65536, 32768) == 0);
  SO_CHECK(getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &v, &len) == 0 && v >= 65536);
  SO_CHECK(getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &v, &len) == 0 && v >= 32768);
  SO_CHECK(ax_stream_set_bufsize(s, -1, 0) == -EINVAL);
  struct sockaddr_storage ss;
  socklen_t sl = 0;
  SO_CHECK(ax_stream_peer(s, &ss, &sl) == 0);
  SO_CHECK(ss.ss_family == AF_INET && sl == sizeof(struct sockaddr_in));
  SO_CHECK(((struct sockaddr_in *)&ss)->sin_addr.s_addr == htonl(INADDR_LOOPBACK));
#undef SO_CHECK
  st_reply(a, CMD_USER, chk->fails, 0);
  return 0;
}

START_TEST(test_tcp_socket_options) {
  st_env_t env;
  st_env_init(&env);
  sockopt_check_t chk;
  memset(&chk, 0, sizeof chk);
  st_actor_t s, c;
  st_actor_init(&env, &s, 1);
  st_actor_init(&env, &c, 2);
  c.hook = sockopt_hook;
  c.user = &chk;
  ax_ref_t sr = st_spawn(&env, &s, CORE_S);
  ax_ref_t cr = st_spawn(&env, &c, CORE_C);
  ax_stream_opts_t o = opts_zero();
  o.flags = AX_STREAM_NODELAY | AX_STREAM_KEEPALIVE;
  o.rcvbuf = 100000;
  o.sndbuf = 120000;
  int port = st_listen(&env, sr, 0, CMD_TCP_LISTEN, "127.0.0.1:0", 0, &o, NULL);
  char addr[64];
  snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
  ck_assert_int_eq(st_connect(&env, cr, 0, CMD_TCP_CONNECT, addr, &o), 0);
  int as;
  expect_connected_accepted(&env, 2, &as);
  /* Both ends got the options (flags, then buffer sizes: the kernel
   * doubles what it is given). */
  int fds[2] = {stream_fd(&env, cr, 0), stream_fd(&env, sr, as)};
  for (int i = 0; i < 2; i++) {
    int v = 0;
    socklen_t len = sizeof v;
    ck_assert_int_eq(getsockopt(fds[i], IPPROTO_TCP, TCP_NODELAY, &v, &len), 0);
    ck_assert_int_ne(v, 0);
    ck_assert_int_eq(getsockopt(fds[i], SOL_SOCKET, SO_KEEPALIVE, &v, &len), 0);
    ck_assert_int_ne(v, 0);
    ck_assert_int_eq(getsockopt(fds[i], SOL_SOCKET, SO_RCVBUF, &v, &len), 0);
    ck_assert_int_ge(v, 100000);
    ck_assert_int_eq(getsockopt(fds[i], SOL_SOCKET, SO_SNDBUF, &v, &len), 0);
    ck_assert_int_ge(v, 120000);
  }
  int fails = st_call(&env, cr, CMD_USER, 0, 0);
  ck_assert_msg(fails == 0, "%d socket option checks failed, first: %s", fails, chk.what);
  st_env_done(&env);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Giving accepted streams to another core                                   */

typedef struct conn_state {
  int index;
  uint64_t next; /* the next line number */
  int owner_tag;
} conn_state_t;

typedef struct spread {
  ax_ref_t workers[2];
  int accepted;
  atomic_int lines_ok, lines_bad, closed, given, unknown, give_errors;
  int lines;
} spread_t;

static void check_line(st_actor_t *a, spread_t *sp, conn_state_t *cs, const ax_data_t *d) {
  char want[16];
  int n = snprintf(want, sizeof want, "%06llu", (unsigned long long)cs->next);
  if (d->len == (size_t)n && memcmp(d->bytes, want, (size_t)n) == 0)
    atomic_fetch_add(&sp->lines_ok, 1);
  else
    atomic_fetch_add(&sp->lines_bad, 1);
  cs->next++;
  (void)a;
}

/* The acceptor (tag 1): even connections are given away on ACCEPT, odd
 * ones after their first line (so that DATA is queued in its mailbox). */
static int acceptor_hook(ax_actor_t *self, st_actor_t *a, const ax_msg_t *m) {
  (void)self;
  spread_t *sp = a->user;
  if (m->type == AX_MSG_ACCEPT) {
    const ax_accept_t *acc = m->data;
    conn_state_t *cs = calloc(1, sizeof *cs);
    cs->index = sp->accepted++;
    ax_stream_set_data(acc->stream, cs);
    if (cs->index % 2 == 0) {
      if (ax_stream_give(acc->stream, sp->workers[cs->index / 2 % 2]) != 0)
        atomic_fetch_add(&sp->give_errors, 1);
    }
    return 0;
  }
  if (m->type == AX_MSG_DATA) {
    const ax_data_t *d = m->data;
    conn_state_t *cs = ax_stream_data(d->stream);
    if (cs == NULL || cs->index % 2 == 0) {
      atomic_fetch_add(&sp->unknown, 1); /* DATA of a stream given away */
      return 0;
    }
    check_line(a, sp, cs, d);
    if (cs->next == 1 && ax_stream_give(d->stream, sp->workers[cs->index / 2 % 2]) != 0)
      atomic_fetch_add(&sp->give_errors, 1);
    return 0;
  }
  if (m->type == AX_MSG_CLOSED) {
    atomic_fetch_add(&sp->unknown, 1);
    return 0;
  }
  return ST_NEXT;
}

/* The workers (tags 2, 3): GIVEN first, then the lines in order. */
static int worker_hook(ax_actor_t *self, st_actor_t *a, const ax_msg_t *m) {
  (void)self;
  spread_t *sp = a->user;
  if (m->type == AX_MSG_GIVEN) {
    const ax_stream_ev_t *ev = m->data;
    conn_state_t *cs = ax_stream_data(ev->stream);
    if (cs == NULL)
      atomic_fetch_add(&sp->unknown, 1);
    else
      cs->owner_tag = a->tag; /* the pointer came with the stream */
    atomic_fetch_add(&sp->given, 1);
    return 0;
  }
  if (m->type == AX_MSG_DATA) {
    const ax_data_t *d = m->data;
    conn_state_t *cs = ax_stream_data(d->stream);
    if (cs == NULL || cs->owner_tag != a->tag) {
      atomic_fetch_add(&sp->unknown, 1); /* DATA before GIVEN */
      return 0;
    }
    check_line(a, sp, cs, d);
    return 0;
  }
  if (m->type == AX_MSG_CLOSED) {
    const ax_stream_ev_t *ev = m->data;
    conn_state_t *cs = ax_stream_data(ev->stream);
    if (cs == NULL || cs->owner_tag != a->tag || cs->next != (uint64_t)sp->lines || ev->err != 0)
      atomic_fetch_add(&sp->lines_bad, 1000000);
    free(cs);
    atomic_fetch_add(&sp->closed, 1);
    return 0;
  }
  return ST_NEXT;
}

START_TEST(test_tcp_give_accepted_across_cores) {
  enum { CONNS = 16 };
  st_env_t env;
  st_env_init(&env);
  spread_t sp;
  memset(&sp, 0, sizeof sp);
  sp.lines = (int)test_scaled(3000);
  st_actor_t acc, w1, w2;
  st_actor_init(&env, &acc, 1);
  st_actor_init(&env, &w1, 2);
  st_actor_init(&env, &w2, 3);
  acc.hook = acceptor_hook;
  w1.hook = w2.hook = worker_hook;
  acc.user = w1.user = w2.user = &sp;
  ax_ref_t ar = st_spawn(&env, &acc, 0);
  sp.workers[0] = st_spawn(&env, &w1, 1);
  sp.workers[1] = st_spawn(&env, &w2, 1);
  ax_stream_opts_t o = opts_zero();
  o.frame = AX_FRAME_DELIM;
  o.window = 8;
  int port = st_listen(&env, ar, 0, CMD_TCP_LISTEN, "127.0.0.1:0", 0, &o, NULL);
  /* Each client sends its numbered lines right after connecting. */
  char *buf = malloc((size_t)sp.lines * 7 + 1);
  for (int i = 0; i < sp.lines; i++)
    snprintf(buf + i * 7, 8, "%06d\n", i % 1000000);
  int fds[CONNS];
  for (int c = 0; c < CONNS; c++) {
    fds[c] = client_v4(port);
    st_write_all(fds[c], buf, (size_t)sp.lines * 7);
  }
  for (int c = 0; c < CONNS; c++)
    close(fds[c]);
  TEST_WAIT_UNTIL(atomic_load(&sp.closed) == CONNS || atomic_load(&sp.unknown) != 0 ||
                      atomic_load(&sp.lines_bad) != 0,
                  20000);
  ck_assert_int_eq(atomic_load(&sp.give_errors), 0);
  ck_assert_int_eq(atomic_load(&sp.unknown), 0);
  ck_assert_msg(atomic_load(&sp.lines_bad) == 0, "%d lines out of order or lost",
                atomic_load(&sp.lines_bad));
  ck_assert_int_eq(atomic_load(&sp.given), CONNS);
  ck_assert_int_eq(atomic_load(&sp.lines_ok), CONNS * sp.lines);
  free(buf);
  st_env_done(&env);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* ax_tcp_serve                                                              */

typedef struct serve_state {
  atomic_int sessions[2];   /* GIVEN per core */
  atomic_int terminated;
  atomic_int first_not_given;
  atomic_int echoed;
} serve_state_t;

static int echo_session(ax_actor_t *self, const ax_msg_t *m) {
  serve_state_t *st = ax_state(self);
  switch (m->type) {
  case AX_MSG_GIVEN: {
    const ax_stream_ev_t *ev = m->data;
    atomic_fetch_add(&st->sessions[ax_core(self) % 2], 1);
    ax_stream_set_data(ev->stream, st); /* marks "GIVEN seen" */
    return 0;
  }
  case AX_MSG_DATA: {
    const ax_data_t *d = m->data;
    if (ax_stream_data(d->stream) != st)
      atomic_fetch_add(&st->first_not_given, 1);
    char line[80];
    int n = snprintf(line, sizeof line, "%.*s core %u\n", (int)d->len, d->bytes, ax_core(self));
    atomic_fetch_add(&st->echoed, 1);
    return ax_stream_write(d->stream, line, (size_t)n) == 0 ? 0 : -EIO;
  }
  case AX_MSG_CLOSED:
    return AX_STOP;
  default:
    return 0;
  }
}

static void echo_terminate(ax_actor_t *self, int reason) {
  (void)reason;
  serve_state_t *st = ax_state(self);
  atomic_fetch_add(&st->terminated, 1);
}

/* Sends "msg" on fd and reads one line back; returns the core it names. */
static int echo_once(int fd, const char *msg) {
  st_write_all(fd, msg, strlen(msg));
  st_write_all(fd, "\n", 1);
  char line[128];
  size_t len = 0;
  while (len < sizeof line - 1) {
    struct pollfd pfd = {fd, POLLIN, 0};
    ck_assert_int_eq(poll(&pfd, 1, 10000), 1);
    ssize_t n = read(fd, line + len, 1);
    ck_assert_int_eq((int)n, 1);
    if (line[len] == '\n')
      break;
    len++;
  }
  line[len] = '\0';
  size_t ml = strlen(msg);
  ck_assert_msg(strncmp(line, msg, ml) == 0 && strncmp(line + ml, " core ", 6) == 0,
                "echo '%s' for '%s'", line, msg);
  return atoi(line + ml + 6);
}

START_TEST(test_tcp_serve_across_cores) {
  enum { CLIENTS = 64 };
  ax_rt_t *rt = test_rt_new(2, AX_RT_KEEP_ALIVE);
  serve_state_t st;
  memset(&st, 0, sizeof st);
  ax_serve_opts_t so;
  memset(&so, 0, sizeof so);
  so.stream.frame = AX_FRAME_DELIM;
  so.state = &st;
  so.terminate = echo_terminate;
  ax_server_t *srv = NULL;
  /* (Serving before the start is allowed: test_serve.c checks it.) */
  test_rt_start(rt);
  ck_assert_int_eq(ax_tcp_serve(NULL, "127.0.0.1:0", echo_session, &so, &srv), -EINVAL);
  ck_assert_int_eq(ax_tcp_serve(rt, NULL, echo_session, &so, &srv), -EINVAL);
  ck_assert_int_eq(ax_tcp_serve(rt, "127.0.0.1:0", NULL, &so, &srv), -EINVAL);
  ck_assert_int_eq(ax_tcp_serve(rt, "127.0.0.1:0", echo_session, &so, NULL), -EINVAL);
  ck_assert_int_eq(ax_tcp_serve(rt, "127.0.0.1", echo_session, &so, &srv), -EINVAL);
  ck_assert_int_eq(ax_server_port(NULL), -EINVAL);
  ck_assert_int_eq(ax_server_close(NULL), -EINVAL);
  /* A port held by a listener without SO_REUSEPORT. */
  int held_port;
  int held = raw_listener(&held_port);
  char addr[64];
  snprintf(addr, sizeof addr, "127.0.0.1:%d", held_port);
  ck_assert_int_eq(ax_tcp_serve(rt, addr, echo_session, &so, &srv), -EADDRINUSE);
  close(held);

  ck_assert_int_eq(ax_tcp_serve(rt, "127.0.0.1:0", echo_session, &so, &srv), 0);
  int port = ax_server_port(srv);
  ck_assert_int_gt(port, 0);
  int fds[CLIENTS];
  int per_core[2] = {0, 0};
  for (int i = 0; i < CLIENTS; i++) {
    fds[i] = client_v4(port);
    char msg[32];
    snprintf(msg, sizeof msg, "client %d", i);
    int core = echo_once(fds[i], msg);
    ck_assert(core == 0 || core == 1);
    per_core[core]++;
  }
  /* The kernel spread 64 connections over both listeners. */
  ck_assert_int_gt(per_core[0], 0);
  ck_assert_int_gt(per_core[1], 0);
  ck_assert_int_eq(atomic_load(&st.sessions[0]), per_core[0]);
  ck_assert_int_eq(atomic_load(&st.sessions[1]), per_core[1]);
  ck_assert_int_eq(atomic_load(&st.first_not_given), 0);

  /* Closing the server stops accepting; running sessions go on. */
  ck_assert_int_eq(ax_server_close(srv), 0);
  int late = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  ck_assert_int_eq(connect(late, (struct sockaddr *)&sa, sizeof sa), -1);
  ck_assert_int_eq(errno, ECONNREFUSED);
  close(late);
  for (int i = 0; i < CLIENTS; i++) {
    echo_once(fds[i], "again");
    close(fds[i]);
  }
  TEST_WAIT_UNTIL(atomic_load(&st.terminated) == CLIENTS, 10000);

  /* cores = 1: every session on core 0. */
  so.cores = 1;
  ck_assert_int_eq(ax_tcp_serve(rt, "[::1]:0", echo_session, &so, &srv), 0);
  port = ax_server_port(srv);
  for (int i = 0; i < 8; i++) {
    int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in6 s6 = {.sin6_family = AF_INET6, .sin6_port = htons((uint16_t)port),
                              .sin6_addr = in6addr_loopback};
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&s6, sizeof s6), 0);
    ck_assert_int_eq(echo_once(fd, "one core"), 0);
    close(fd);
  }
  TEST_WAIT_UNTIL(atomic_load(&st.terminated) == CLIENTS + 8, 10000);
  ck_assert_int_eq(ax_server_close(srv), 0);
  test_rt_stop_join_free(rt);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Accept overload                                                           */

/* Runs in a child process (its own fd limit): a listener whose accepts hit
 * EMFILE.  Reports through the exit status; prints why on failure. */
typedef struct overload {
  atomic_int accepted;
  atomic_int release; /* 1: close the held streams, then close every new one */
  ax_stream_t *held[256];
  int nheld;
} overload_t;

static int overload_hook(ax_actor_t *self, st_actor_t *a, const ax_msg_t *m) {
  (void)self;
  overload_t *ov = a->user;
  if (m->type == CMD_USER) { /* release */
    for (int i = 0; i < ov->nheld; i++)
      ax_stream_close(ov->held[i]);
    ov->nheld = 0;
    atomic_store(&ov->release, 1);
    st_reply(a, CMD_USER, 0, 0);
    return 0;
  }
  if (m->type == AX_MSG_ACCEPT) {
    const ax_accept_t *acc = m->data;
    atomic_fetch_add(&ov->accepted, 1);
    if (atomic_load(&ov->release) || ov->nheld == 256)
      ax_stream_close(acc->stream);
    else
      ov->held[ov->nheld++] = acc->stream;
    return 0;
  }
  if (m->type >= AX_MSG_CONNECTED && m->type <= AX_MSG_GIVEN)
    return 0; /* the clients say nothing */
  return ST_NEXT;
}

static double cpu_seconds(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

#define CHILD_CHECK(cond, code)                                                          \
  do {                                                                                   \
    if (!(cond)) {                                                                       \
      fprintf(stderr, "overload child: %s (line %d)\n", #cond, __LINE__);             \
      exit(code);                                                                        \
    }                                                                                    \
  } while (0)

enum { OVERLOAD_CLIENTS = 24 };

static void overload_child(int to_parent, int from_parent) {
  ax_rt_opts_t ro;
  memset(&ro, 0, sizeof ro);
  ro.cores = 2;
  ro.flags = AX_RT_KEEP_ALIVE | AX_RT_NO_SIGNALS;
  ax_rt_t *rt = NULL;
  CHILD_CHECK(ax_rt_new(&ro, &rt) == 0, 10);
  CHILD_CHECK(ax_rt_start(rt) == 0, 11);
  ax_port_t *ev = NULL, *rc = NULL;
  CHILD_CHECK(ax_port_new(rt, &ev) == 0 && ax_port_new(rt, &rc) == 0, 12);
  overload_t *ov = calloc(1, sizeof *ov);
  st_actor_t *a = calloc(1, sizeof *a);
  a->evport = ax_port_ref(ev);
  a->rcport = ax_port_ref(rc);
  a->hook = overload_hook;
  a->user = ov;
  ax_spawn_opts_t so = {.placement = AX_PLACE_CORE, .core = 1};
  ax_ref_t ar;
  CHILD_CHECK(ax_spawn(rt, st_behaviour, a, &so, &ar) == 0, 13);
  st_cmd_t c;
  memset(&c, 0, sizeof c);
  snprintf(c.addr, sizeof c.addr, "127.0.0.1:0");
  CHILD_CHECK(ax_send(ar, CMD_TCP_LISTEN, &c, sizeof c) == 0, 14);
  ax_msg_t m;
  CHILD_CHECK(ax_port_recv(rc, ax_now() + 10 * AX_NSEC_PER_SEC, &m) == 0, 15);
  st_reply_t rep;
  memcpy(&rep, m.data, sizeof rep);
  CHILD_CHECK(rep.rc == 0 && rep.value > 0, 16);
  /* Only a few fds left: holes below the highest open fd are filled, and
   * the limit is that fd plus five. */
  int maxfd = 0, holes = 0;
  for (int fd = 0; fd < 4096; fd++)
    if (fcntl(fd, F_GETFD) != -1)
      maxfd = fd;
  for (int fd = 0; fd < maxfd; fd++)
    if (fcntl(fd, F_GETFD) == -1) {
      CHILD_CHECK(open("/dev/null", O_RDONLY | O_CLOEXEC) == fd, 31);
      holes++;
    }
  struct rlimit rl;
  CHILD_CHECK(getrlimit(RLIMIT_NOFILE, &rl) == 0, 17);
  rl.rlim_cur = (rlim_t)maxfd + 5;
  CHILD_CHECK(setrlimit(RLIMIT_NOFILE, &rl) == 0, 18);
  int port = (int)rep.value;
  CHILD_CHECK(write(to_parent, &port, sizeof port) == sizeof port, 19);
  char go;
  CHILD_CHECK(read(from_parent, &go, 1) == 1, 20); /* the clients are connected */

  /* Overload: accepts fail and are counted; the listener backs off. */
  ax_core_stats_t st0, st1;
  int64_t deadline = ax_now() + 10 * AX_NSEC_PER_SEC;
  do {
    test_sleep_ms(5);
    ax_rt_stats(rt, 1, &st0);
  } while (st0.accept_errors == 0 && ax_now() < deadline);
  if (st0.accept_errors == 0)
    fprintf(stderr, "overload child: maxfd %d (%d holes), accepted %d\n", maxfd, holes,
            atomic_load(&ov->accepted));
  CHILD_CHECK(st0.accept_errors > 0, 21);
  int accepted0 = atomic_load(&ov->accepted);
  CHILD_CHECK(accepted0 < OVERLOAD_CLIENTS, 22);
  double cpu0 = cpu_seconds();
  int64_t t0 = ax_now();
  test_sleep_ms(1000);
  double cpu = cpu_seconds() - cpu0;
  double wall = (double)(ax_now() - t0) / 1e9;
  ax_rt_stats(rt, 1, &st1);
  fprintf(stderr, "overload child: %.3f s CPU in %.3f s, accept_errors %llu -> %llu\n", cpu,
          wall, (unsigned long long)st0.accept_errors, (unsigned long long)st1.accept_errors);
  CHILD_CHECK(st1.accept_errors > st0.accept_errors, 23);
  CHILD_CHECK(cpu < 0.5 * wall, 24); /* no busy loop (a sanity bound) */
  /* Recovery: freeing the fds lets every pending connection be accepted. */
  CHILD_CHECK(ax_send(ar, CMD_USER, &c, sizeof c) == 0, 25);
  CHILD_CHECK(ax_port_recv(rc, ax_now() + 10 * AX_NSEC_PER_SEC, &m) == 0, 26);
  deadline = ax_now() + 20 * AX_NSEC_PER_SEC;
  while (atomic_load(&ov->accepted) < OVERLOAD_CLIENTS && ax_now() < deadline)
    test_sleep_ms(5);
  CHILD_CHECK(atomic_load(&ov->accepted) == OVERLOAD_CLIENTS, 27);
  ax_rt_stop(rt);
  CHILD_CHECK(ax_rt_join(rt) == 0, 28);
  CHILD_CHECK(ax_port_close(ev) == 0 && ax_port_close(rc) == 0, 29);
  CHILD_CHECK(ax_rt_free(rt) == 0, 30);
  free(a);
  free(ov);
  exit(0);
}

START_TEST(test_tcp_accept_emfile) {
  int up[2], down[2];
  ck_assert_int_eq(pipe2(up, O_CLOEXEC), 0);
  ck_assert_int_eq(pipe2(down, O_CLOEXEC), 0);
  fflush(NULL);
  pid_t pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) {
    close(up[0]);
    close(down[1]);
    overload_child(up[1], down[0]);
  }
  close(up[1]);
  close(down[0]);
  int port = 0;
  ck_assert_int_eq((int)read(up[0], &port, sizeof port), (int)sizeof port);
  /* The connections complete in the kernel (backlog) even when the child
   * cannot accept them. */
  int fds[OVERLOAD_CLIENTS];
  for (int i = 0; i < OVERLOAD_CLIENTS; i++)
    fds[i] = client_v4(port);
  ck_assert_int_eq((int)write(down[1], "g", 1), 1);
  int status = 0;
  ck_assert_int_eq(waitpid(pid, &status, 0), pid);
  for (int i = 0; i < OVERLOAD_CLIENTS; i++)
    close(fds[i]);
  close(up[0]);
  close(down[1]);
  ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                "the overload child failed (status %d, exit code %d)", status,
                WIFEXITED(status) ? WEXITSTATUS(status) : -1);
}
END_TEST

/* Closing a listener drops the ACCEPT messages still queued for it; the
 * streams they carried are reset, so those clients see ECONNRESET, as the
 * ones still in the kernel's backlog do, rather than a connection nobody
 * serves or an orderly end of file (which reads as a served connection
 * that finished).  The acceptor is held inside its
 * behaviour while the clients connect, so that the core accepts them all in
 * one poll afterwards and queues their ACCEPTs together. */
typedef struct {
  sem_t ready, go;
  _Atomic int port;
  ax_listener_t *l;
  int accepted;
} drop_state_t;

enum { DROP_LISTEN = AX_MSG_USER + 700 };

static int drop_acceptor(ax_actor_t *self, const ax_msg_t *m) {
  drop_state_t *st = ax_state(self);
  if (m->type == DROP_LISTEN) {
    int rc = ax_tcp_listen(self, "127.0.0.1:0", 16, NULL, &st->l);
    atomic_store(&st->port, rc == 0 ? ax_listener_port(st->l) : rc);
    sem_post(&st->ready);
    while (sem_wait(&st->go) != 0) { /* EINTR */
    }
    return 0;
  }
  if (m->type == AX_MSG_ACCEPT) { /* only the first is delivered */
    st->accepted++;
    ax_listener_close(st->l);
    return 0;
  }
  if (m->type == AX_MSG_DATA) { /* echo on the one stream it kept */
    const ax_data_t *d = m->data;
    return ax_stream_write(d->stream, d->bytes, d->len) < 0 ? AX_STOP : 0;
  }
  return 0;
}

START_TEST(test_tcp_listener_close_drops_accepts) {
  drop_state_t st;
  memset(&st, 0, sizeof st);
  ck_assert_int_eq(sem_init(&st.ready, 0, 0), 0);
  ck_assert_int_eq(sem_init(&st.go, 0, 0), 0);
  ax_rt_t *rt = test_rt_new(1, AX_RT_KEEP_ALIVE);
  ax_ref_t a;
  ck_assert_int_eq(ax_spawn(rt, drop_acceptor, &st, NULL, &a), 0);
  test_rt_start(rt);
  ck_assert_int_eq(ax_send(a, DROP_LISTEN, NULL, 0), 0);
  while (sem_wait(&st.ready) != 0) {
  }
  int port = atomic_load(&st.port);
  ck_assert_int_gt(port, 0);
  int fds[5];
  for (int i = 0; i < 5; i++)
    fds[i] = client_v4(port); /* completed in the kernel's backlog */
  sem_post(&st.go);

  /* The first connection was delivered and is served. */
  ck_assert_int_eq((int)write(fds[0], "ping", 4), 4);
  char buf[8];
  struct pollfd pfd = {.fd = fds[0], .events = POLLIN};
  ck_assert_int_eq(poll(&pfd, 1, 10000), 1);
  ck_assert_int_eq((int)read(fds[0], buf, sizeof buf), 4);
  ck_assert_int_eq(memcmp(buf, "ping", 4), 0);
  /* The others were accepted with it, never delivered, and reset. */
  for (int i = 1; i < 5; i++) {
    pfd.fd = fds[i];
    ck_assert_int_eq(poll(&pfd, 1, 10000), 1);
    errno = 0;
    ck_assert_int_eq((int)read(fds[i], buf, sizeof buf), -1);
    ck_assert_int_eq(errno, ECONNRESET);
  }
  ax_rt_stop(rt);
  ck_assert_int_eq(ax_rt_join(rt), 0);
  ck_assert_int_eq(st.accepted, 1);
  ck_assert_int_eq(ax_rt_free(rt), 0);
  for (int i = 0; i < 5; i++)
    close(fds[i]);
  sem_destroy(&st.ready);
  sem_destroy(&st.go);
}
END_TEST

static Suite *tcp_suite(void) {
  Suite *s = suite_create("tcp");
  TCase *tc = tcase_create("connect");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_tcp_v4_v6_wildcard);
  tcase_add_test(tc, test_tcp_unix_path_and_abstract);
  tcase_add_test(tc, test_tcp_address_errors);
  tcase_add_test(tc, test_tcp_resolve);
  tcase_add_test(tc, test_tcp_connect_refused_timeout);
  tcase_add_test(tc, test_tcp_connect_timeout_from_call);
  tcase_add_test(tc, test_tcp_reset_eof_half_open);
  tcase_add_test(tc, test_tcp_socket_options);
  tcase_add_test(tc, test_tcp_listener_close_drops_accepts);
  suite_add_tcase(s, tc);

  tc = tcase_create("cores");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_tcp_give_accepted_across_cores);
  tcase_add_test(tc, test_tcp_serve_across_cores);
  suite_add_tcase(s, tc);

  tc = tcase_create("overload");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_tcp_accept_emfile);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  return test_run_suite(tcp_suite());
}
