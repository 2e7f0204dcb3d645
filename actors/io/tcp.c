/* TCP and unix stream sockets: connect (names looked up on the work pool), listeners, servers across cores. */
#include <errno.h>
#include <stddef.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "actors/io/addr.h"
#include "actors/io/resolve.h"
#include "actors/io/stream.h"
#include "actors/io/tcp.h"

#define AX__ACCEPT_BURST 64u   /* accepts per readiness event */
#define AX__ACCEPT_WINDOW 64u  /* unhandled AX_MSG_ACCEPT per listener */
#define AX__BACKOFF_MIN (10 * AX_NSEC_PER_MSEC)
#define AX__BACKOFF_MAX (1 * AX_NSEC_PER_SEC)

/* ------------------------------------------------------------------------ */
/* Connecting.                                                               */

/* A TCP or unix stream while it connects: the resolver request, the
 * addresses still to try, the timeout.  Owner core only; freed when the
 * connect ends either way. */
typedef struct ax__tcp_conn {
  ax__connecting_t base; /* first: s->conn points here */
  ax_actor_t *owner; /* whose work the lookup is */
  uint64_t req;      /* the lookup's id while it runs, else 0 */
  struct addrinfo *ai_list, *ai_next;
  int last_err;
  ax_timer_t timer;
  ax_stream_t *s;
} ax__tcp_conn_t;

void ax__sock_opts(int fd, int family, const ax_stream_opts_t *o) {
  int one = 1;
  if ((o->flags & AX_STREAM_NODELAY) && family != AF_UNIX)
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (o->flags & AX_STREAM_KEEPALIVE)
    (void)setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
  if (o->sndbuf > 0)
    (void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &o->sndbuf, sizeof o->sndbuf);
  if (o->rcvbuf > 0)
    (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &o->rcvbuf, sizeof o->rcvbuf);
}

static void conn_cancel(ax_stream_t *s) {
  ax__tcp_conn_t *c = (ax__tcp_conn_t *)s->conn;
  s->conn = NULL;
  ax_timer_stop(&c->timer);
  if (c->req != 0)
    ax__resolve_cancel(c->owner, c->req);
  if (c->ai_list != NULL)
    freeaddrinfo(c->ai_list);
  free(c);
}

/* Starts a connect to one address.  Returns 1 when it completed at once,
 * 0 when it is in progress, or -errno. */
static int start_connect(ax_stream_t *s, const struct sockaddr *sa, socklen_t len) {
  int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -errno;
  ax__sock_opts(fd, sa->sa_family, &s->o);
  int rc;
  do
    rc = connect(fd, sa, len);
  while (rc < 0 && errno == EINTR);
  if (rc < 0 && errno != EINPROGRESS && errno != EAGAIN) {
    rc = -errno;
    close(fd);
    return rc;
  }
  int done = rc == 0;
  rc = ax__stream_watch_connect(s, fd);
  if (rc < 0) {
    close(fd);
    s->rfd = s->wfd = -1;
    return rc;
  }
  return done;
}

/* The connect is made: the stream opens. */
static void connected(ax_stream_t *s) {
  conn_cancel(s);
  ax__stream_connected(s);
}

/* Tries the remaining resolved addresses in order. */
static void try_next(ax_stream_t *s) {
  ax__tcp_conn_t *c = (ax__tcp_conn_t *)s->conn;
  while (c->ai_next != NULL) {
    struct addrinfo *ai = c->ai_next;
    c->ai_next = ai->ai_next;
    int rc = start_connect(s, ai->ai_addr, ai->ai_addrlen);
    if (rc == 0)
      return;
    if (rc == 1) {
      connected(s);
      return;
    }
    c->last_err = rc;
  }
  ax__stream_fail(s, c->last_err != 0 ? c->last_err : -ECONNREFUSED);
}

/* The socket being connected became writable (or failed). */
static void conn_event(ax_stream_t *s, unsigned revents) {
  (void)revents;
  int err = 0;
  socklen_t len = sizeof err;
  if (getsockopt(s->rfd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
    err = errno;
  if (err == 0) {
    connected(s);
    return;
  }
  /* This address failed: drop its socket, try the next one. */
  ax__stream_drop_connect(s);
  ((ax__tcp_conn_t *)s->conn)->last_err = -err;
  try_next(s);
}

/* The resolver answered (on the owner's core). */
static void resolved(void *arg, struct addrinfo *res, int err) {
  ax_stream_t *s = arg;
  ax__tcp_conn_t *c = (ax__tcp_conn_t *)s->conn;
  c->req = 0;
  if (err != 0) {
    ax__stream_fail(s, err);
    return;
  }
  c->ai_list = c->ai_next = res;
  try_next(s);
}

static void conn_timeout(ax_timer_t *t) {
  ax__tcp_conn_t *c = AX_CONTAINER_OF(t, ax__tcp_conn_t, timer);
  ax__stream_fail(c->s, -ETIMEDOUT);
}

/* Starts connecting s to a numeric address or, through the resolver, a
 * name.  Returns 0 or -errno (s is the caller's to discard then). */
static int connect_addr(ax_stream_t *s, const struct sockaddr_storage *ss, socklen_t len,
                        const char *host, unsigned port) {
  ax__tcp_conn_t *c = ax__calloc(1, sizeof *c);
  if (c == NULL)
    return -ENOMEM;
  c->base.event = conn_event;
  c->base.cancel = conn_cancel;
  c->s = s;
  s->conn = &c->base;
  ax_timer_init(s->src.core->loop, &c->timer, conn_timeout);
  if (s->o.connect_timeout != AX_FOREVER) {
    /* From this call, not from the loop's cached time: the turn that
     * connects may have run long since the core last read the clock. */
    ax_loop_update_time(s->src.core->loop);
    ax_timer_start(&c->timer, s->o.connect_timeout, 0);
  }
  if (host == NULL) {
    int rc = start_connect(s, (const struct sockaddr *)ss, len);
    if (rc == 1)
      connected(s);
    return rc < 0 ? rc : 0;
  }
  c->owner = s->src.owner;
  return ax__resolve_start(c->owner, host, port, resolved, s, &c->req);
}

/* A failed open: the stream never existed for the owner. */
static int discard(ax_stream_t *s, int rc) {
  ax__src_close(&s->src);
  return rc;
}

int ax_tcp_connect(ax_actor_t *self, const char *addr, const ax_stream_opts_t *opts,
                   ax_stream_t **out) {
  struct sockaddr_storage ss;
  socklen_t len = 0;
  char host[AX__HOST_MAX];
  unsigned port;
  if (self == NULL || out == NULL)
    return -EINVAL;
  AX__ASSERT_OWNER(self);
  int kind = ax__addr_parse(addr, false, &ss, &len, host, &port);
  if (kind < 0)
    return kind;
  ax_stream_t *s;
  int rc = ax__stream_alloc(self, AX__STREAM_TCP, opts, &s);
  if (rc < 0)
    return rc;
  rc = connect_addr(s, &ss, len, kind == 1 ? host : NULL, port);
  if (rc < 0)
    return discard(s, rc);
  *out = s;
  return 0;
}

int ax_unix_connect(ax_actor_t *self, const char *path, const ax_stream_opts_t *opts,
                    ax_stream_t **out) {
  struct sockaddr_un sun;
  socklen_t len = 0;
  if (self == NULL || out == NULL || ax__unix_addr(path, &sun, &len) < 0)
    return -EINVAL;
  AX__ASSERT_OWNER(self);
  ax_stream_t *s;
  int rc = ax__stream_alloc(self, AX__STREAM_UNIX, opts, &s);
  if (rc < 0)
    return rc;
  struct sockaddr_storage ss;
  memset(&ss, 0, sizeof ss);
  memcpy(&ss, &sun, len);
  rc = connect_addr(s, &ss, len, NULL, 0);
  if (rc < 0)
    return discard(s, rc);
  *out = s;
  return 0;
}

/* ------------------------------------------------------------------------ */
/* Listeners.                                                                */

struct ax_listener {
  ax__src_t src; /* first */
  int fd;
  int kind;
  ax_io_t io;
  unsigned ev;       /* the events io requests now (ax__src_watch) */
  bool backing_off;  /* accept overload: waiting for the timer */
  int64_t delay;
  ax_timer_t backoff;
  ax_stream_opts_t o;
};
_Static_assert(offsetof(struct ax_listener, src) == 0, "a handle is its source (ax__src_close_handle)");

/* Watches the listening socket while it may accept: open, not backing off
 * from an overload, with credit for another AX_MSG_ACCEPT.  A refusal of
 * the loop ends the listener with AX_MSG_CLOSED{err}. */
static void listener_update(ax_listener_t *l) {
  bool want = ax__src_may_post(&l->src) && !l->backing_off;
  (void)ax__src_watch(&l->src, &l->io, &l->ev, want ? AX_READ : 0);
}

/* The accept errors of each core (AX__CORE_SLOT_TCP): written by the core
 * (relaxed add), read by ax_rt_stats from any thread. */
static _Atomic uint64_t *accept_errors(ax__core_t *c) { return c->slot[AX__CORE_SLOT_TCP]; }

static void accept_overload(ax_listener_t *l) {
  ax__stat_add(accept_errors(l->src.core), 1);
  l->backing_off = true;
  listener_update(l);
  ax_loop_update_time(l->src.core->loop); /* the delay counts from now */
  ax_timer_start(&l->backoff, l->delay, 0);
  l->delay = l->delay * 2 < AX__BACKOFF_MAX ? l->delay * 2 : AX__BACKOFF_MAX;
}

static void accept_cb(ax_io_t *io, unsigned revents) {
  (void)revents;
  ax_listener_t *l = io->data;
  for (unsigned i = 0; i < AX__ACCEPT_BURST && ax__src_has_credit(&l->src); i++) {
    struct sockaddr_storage peer;
    socklen_t plen = sizeof peer;
    int fd = accept4(l->fd, (struct sockaddr *)&peer, &plen, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK)
        break;
      if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO || errno == EPERM)
        continue; /* that connection is gone; the next may be fine */
      accept_overload(l); /* EMFILE, ENFILE, ENOBUFS, ENOMEM: no busy loop */
      return;
    }
    l->delay = AX__BACKOFF_MIN;
    ax__sock_opts(fd, peer.ss_family, &l->o);
    ax_stream_t *s;
    ax__msg_t *m = ax__src_msg(&l->src, AX_MSG_ACCEPT, sizeof(ax_accept_t));
    if (m == NULL || ax__stream_new(l->src.owner, fd, fd, l->kind, &l->o, &s) < 0) {
      if (m != NULL)
        ax__msg_free(m);
      close(fd);
      accept_overload(l);
      return;
    }
    ax_accept_t *acc = (ax_accept_t *)(void *)m->payload;
    acc->listener = l;
    acc->stream = s;
    acc->peer = peer;
    acc->peer_len = plen;
    /* The ACCEPT goes into the mailbox before any DATA of the stream. */
    ax__src_post(&l->src, m, AX__MSG_CREDIT);
  }
  listener_update(l);
}

static void backoff_cb(ax_timer_t *t) {
  ax_listener_t *l = AX_CONTAINER_OF(t, ax_listener_t, backoff);
  l->backing_off = false;
  listener_update(l);
}

static void listener_close(ax__src_t *src) {
  ax_listener_t *l = (ax_listener_t *)src;
  ax_timer_stop(&l->backoff);
  ax_io_stop(&l->io);
  l->ev = 0;
  if (l->fd >= 0)
    close(l->fd);
  l->fd = -1;
}

static void listener_free(ax__src_t *src) { free(src); }

static void listener_credit(ax__src_t *src) { listener_update((ax_listener_t *)src); }

/* The listener was closed with this ACCEPT still queued: its owner never
 * learns of the stream, so close it (the peer is reset: never served, it
 * must not read an orderly end).
 * The stream is still alive: its own messages, CLOSED included, are queued
 * behind the ACCEPT, and only its owner, who never saw it, could close it
 * otherwise. */
static void listener_undelivered(ax__src_t *src, ax__msg_t *m) {
  (void)src;
  if (m->m.type == AX_MSG_ACCEPT)
    ax__stream_abort(((ax_accept_t *)(void *)m->payload)->stream);
}

static const ax__src_ops_t listener_ops = {
    .close = listener_close,
    .free = listener_free,
    .credit = listener_credit,
    .undelivered = listener_undelivered,
};

int ax__listener_new(ax_actor_t *self, int fd, int kind, const ax_stream_opts_t *opts,
                     ax_listener_t **out) {
  ax_stream_opts_t o;
  if (ax__stream_opts(opts, &o) < 0)
    return -EINVAL;
  ax_listener_t *l = ax__src_new(sizeof *l, &listener_ops, self, AX__ACCEPT_WINDOW);
  if (l == NULL)
    return -ENOMEM;
  l->fd = fd;
  l->kind = kind;
  l->o = o;
  l->delay = AX__BACKOFF_MIN;
  ax_io_init(l->src.core->loop, &l->io, fd, accept_cb);
  l->io.data = l;
  ax_timer_init(l->src.core->loop, &l->backoff, backoff_cb);
  int rc = ax_io_start(&l->io, AX_READ); /* its error is this call's, not a message */
  if (rc < 0) {
    l->fd = -1; /* the fd stays the caller's */
    ax__src_close(&l->src);
    return rc;
  }
  l->ev = AX_READ;
  ax__src_count(&l->src, true);
  *out = l;
  return 0;
}

/* Opens a listening socket: SO_REUSEADDR, SO_REUSEPORT as share says; an
 * IPv6 wildcard also takes IPv4.  A SHARE_FIRST socket binds without
 * SO_REUSEPORT, so the bind fails if any socket holds the port (with
 * SO_REUSEPORT or not), and sets it after the bind: the kernel checks a
 * joiner's bind against the flag as it is then, and makes the group when
 * the socket listens. */
int ax__listen_socket(const struct sockaddr *sa, socklen_t len, int backlog, ax__share_t share) {
  int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -errno;
  int one = 1, zero = 0;
  if (sa->sa_family != AF_UNIX)
    (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (sa->sa_family == AF_INET6)
    (void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
  if (share == AX__SHARE_JOIN && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0)
    goto fail;
  if (bind(fd, sa, len) < 0)
    goto fail;
  if (share == AX__SHARE_FIRST && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0)
    goto fail;
  if (listen(fd, backlog > 0 ? backlog : SOMAXCONN) < 0)
    goto fail;
  return fd;
fail:;
  int rc = -errno;
  close(fd);
  return rc;
}

int ax_tcp_listen(ax_actor_t *self, const char *addr, int backlog, const ax_stream_opts_t *opts,
                  ax_listener_t **out) {
  struct sockaddr_storage ss;
  socklen_t len = 0;
  ax_stream_opts_t o;
  if (self == NULL || out == NULL || ax__stream_opts(opts, &o) < 0)
    return -EINVAL;
  AX__ASSERT_OWNER(self);
  int rc = ax__addr_resolve_sync(addr, true, SOCK_STREAM, &ss, &len);
  if (rc < 0)
    return rc;
  int fd = ax__listen_socket((const struct sockaddr *)&ss, len, backlog, AX__SHARE_NONE);
  if (fd < 0)
    return fd;
  rc = ax__listener_new(self, fd, AX__STREAM_TCP, opts, out);
  if (rc < 0)
    close(fd);
  return rc;
}

int ax_unix_listen(ax_actor_t *self, const char *path, int backlog,
                   const ax_stream_opts_t *opts, ax_listener_t **out) {
  struct sockaddr_un sun;
  socklen_t len = 0;
  ax_stream_opts_t o;
  if (self == NULL || out == NULL || ax__unix_addr(path, &sun, &len) < 0 ||
      ax__stream_opts(opts, &o) < 0)
    return -EINVAL;
  AX__ASSERT_OWNER(self);
  int fd = ax__listen_socket((const struct sockaddr *)&sun, len, backlog, AX__SHARE_NONE);
  if (fd < 0)
    return fd;
  int rc = ax__listener_new(self, fd, AX__STREAM_UNIX, opts, out);
  if (rc < 0)
    close(fd);
  return rc;
}

int ax_listener_port(const ax_listener_t *l) {
  if (l == NULL)
    return -EINVAL;
  AX__SRC_ASSERT(&l->src);
  if (l->fd < 0 || l->kind != AX__STREAM_TCP)
    return -EINVAL;
  return ax__sock_port(l->fd);
}

int ax_listener_close(ax_listener_t *l) { return ax__src_close_handle((ax__src_t *)l); }

/* ------------------------------------------------------------------------ */
/* The feature: per-core accept error counts.                                */

static int tcp_core_init(ax__core_t *c) {
  _Atomic uint64_t *n = ax__malloc(sizeof *n);
  if (n == NULL)
    return -ENOMEM;
  atomic_init(n, 0);
  c->slot[AX__CORE_SLOT_TCP] = (void *)n;
  return 0;
}

static void tcp_core_free(ax__core_t *c) {
  free((void *)c->slot[AX__CORE_SLOT_TCP]);
  c->slot[AX__CORE_SLOT_TCP] = NULL;
}

static void tcp_stats(const ax__core_t *c, ax_core_stats_t *out) {
  const _Atomic uint64_t *n = c->slot[AX__CORE_SLOT_TCP];
  if (n != NULL)
    out->accept_errors += atomic_load_explicit(n, memory_order_relaxed);
}

static ax__feature_t tcp = {
    .name = "tcp",
    .order = AX__ORDER_SOURCES,
    .core_init = tcp_core_init,
    .core_free = tcp_core_free,
    .stats = tcp_stats,
};

AX__FEATURE_INIT(tcp) { ax__feature_register(&tcp); }
