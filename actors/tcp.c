/* TCP and unix stream sockets: connect (with a resolver pool), listeners, servers across cores. */
#include <errno.h>
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

#include "actors/addr.h"
#include "actors/stream.h"

#define AX__ACCEPT_BURST 64u   /* accepts per readiness event */
#define AX__ACCEPT_WINDOW 64u  /* unhandled AX_MSG_ACCEPT per listener */
#define AX__BACKOFF_MIN (10 * AX_NSEC_PER_MSEC)
#define AX__BACKOFF_MAX (1 * AX_NSEC_PER_SEC)
#define AX__RESOLVERS 4        /* resolver threads at most */

/* ------------------------------------------------------------------------ */
/* The resolver pool: getaddrinfo on a few detached threads.                 */

/*
 * A request is shared by the connecting stream (on its owner's core) and a
 * resolver thread.  Its state decides who frees it: the resolver moves it
 * from PENDING to DONE and sends it back to the owner as an AX__SYS_CALL
 * message (whose handler, or the drop path, frees it); a stream closed
 * first moves it from PENDING to ABANDONED and forgets it, and the resolver
 * frees it when it finishes.  A stream closed after DONE clears req->s
 * (same core as the handler) so the handler knows the stream is gone.
 */
enum { AX__REQ_PENDING, AX__REQ_DONE, AX__REQ_ABANDONED };

struct ax__resolve {
  ax__call_t call;
  _Atomic int state;
  ax_stream_t *s; /* owner core only */
  ax_ref_t owner;
  struct ax__resolve *next; /* the pool's queue */
  char host[AX__HOST_MAX];
  char port[8];
  int err;
  struct addrinfo *res;
};

static struct {
  pthread_mutex_t lock;
  pthread_cond_t cond;
  ax__resolve_t *head, *tail;
  unsigned threads, idle;
} pool = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, NULL, NULL, 0, 0};

static void resolve_free(ax__resolve_t *r) {
  if (r->res != NULL)
    freeaddrinfo(r->res);
  free(r);
}

static void *resolver_main(void *arg) {
  (void)arg;
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, NULL); /* signals belong to the runtime */
  pthread_mutex_lock(&pool.lock);
  for (;;) {
    while (pool.head == NULL) {
      pool.idle++;
      pthread_cond_wait(&pool.cond, &pool.lock);
      pool.idle--;
    }
    ax__resolve_t *r = pool.head;
    pool.head = r->next;
    if (pool.head == NULL)
      pool.tail = NULL;
    pthread_mutex_unlock(&pool.lock);

    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_ADDRCONFIG};
    int eai = getaddrinfo(r->host, r->port, &hints, &r->res);
    r->err = eai != 0 ? ax__eai_err(eai, errno) : 0;
    if (eai != 0)
      r->res = NULL;
    int expect = AX__REQ_PENDING;
    /* acq_rel: release publishes res/err to the owner core; acquire sees
     * the stream's abandonment. */
    if (atomic_compare_exchange_strong_explicit(&r->state, &expect, AX__REQ_DONE,
                                                memory_order_acq_rel, memory_order_acquire))
      ax__call_send(r->owner, &r->call); /* on failure it ran the drop path */
    else
      resolve_free(r);
    pthread_mutex_lock(&pool.lock);
  }
  return NULL;
}

static int resolver_submit(ax__resolve_t *r) {
  pthread_mutex_lock(&pool.lock);
  if (pool.idle == 0 && pool.threads < AX__RESOLVERS) {
    pthread_t t;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    if (pthread_create(&t, &attr, resolver_main, NULL) == 0)
      pool.threads++;
    pthread_attr_destroy(&attr);
    if (pool.threads == 0) {
      pthread_mutex_unlock(&pool.lock);
      return -EAGAIN;
    }
  }
  r->next = NULL;
  if (pool.tail != NULL)
    pool.tail->next = r;
  else
    pool.head = r;
  pool.tail = r;
  pthread_cond_signal(&pool.cond);
  pthread_mutex_unlock(&pool.lock);
  return 0;
}

/* ------------------------------------------------------------------------ */
/* Connecting.                                                               */

static void set_sock_opts(int fd, int family, const ax_stream_opts_t *o) {
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

/* Starts a connect to one address.  Returns 1 when it completed at once,
 * 0 when it is in progress, or -errno. */
static int start_connect(ax_stream_t *s, const struct sockaddr *sa, socklen_t len) {
  int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -errno;
  set_sock_opts(fd, sa->sa_family, &s->o);
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

/* Tries the remaining resolved addresses in order. */
static void try_next(ax_stream_t *s) {
  while (s->ai_next != NULL) {
    struct addrinfo *ai = s->ai_next;
    s->ai_next = ai->ai_next;
    int rc = start_connect(s, ai->ai_addr, ai->ai_addrlen);
    if (rc == 0)
      return;
    if (rc == 1) {
      ax__tcp_connect_cancel(s);
      ax__stream_connected(s);
      return;
    }
    s->last_err = rc;
  }
  ax__stream_fail(s, s->last_err != 0 ? s->last_err : -ECONNREFUSED);
}

void ax__tcp_connect_event(ax_stream_t *s, unsigned revents) {
  (void)revents;
  int err = 0;
  socklen_t len = sizeof err;
  if (getsockopt(s->rfd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
    err = errno;
  if (err == 0) {
    ax__tcp_connect_cancel(s);
    ax__stream_connected(s);
    return;
  }
  /* This address failed: drop its socket, try the next one. */
  ax_io_stop(&s->rio);
  s->rev = 0;
  ax__src_count(&s->src, false);
  close(s->rfd);
  s->rfd = s->wfd = -1;
  s->last_err = -err;
  try_next(s);
}

void ax__tcp_connect_cancel(ax_stream_t *s) {
  ax_timer_stop(&s->ctimer);
  if (s->req != NULL) {
    ax__resolve_t *r = s->req;
    s->req = NULL;
    int expect = AX__REQ_PENDING;
    /* acq_rel: pairs with the resolver's CAS (see struct ax__resolve). */
    if (!atomic_compare_exchange_strong_explicit(&r->state, &expect, AX__REQ_ABANDONED,
                                                 memory_order_acq_rel, memory_order_acquire))
      r->s = NULL; /* DONE: its message is on the way and frees it */
  }
  if (s->ai_list != NULL) {
    freeaddrinfo(s->ai_list);
    s->ai_list = s->ai_next = NULL;
  }
}

/* The resolver's answer reached the owner (or was dropped). */
static void resolved(ax__call_t *call, ax_actor_t *a, bool dropped) {
  ax__resolve_t *r = (ax__resolve_t *)call;
  (void)a;
  ax_stream_t *s = dropped ? NULL : r->s;
  if (s == NULL) {
    resolve_free(r);
    return;
  }
  s->req = NULL;
  if (r->err != 0) {
    int err = r->err;
    resolve_free(r);
    ax__stream_fail(s, err);
    return;
  }
  s->ai_list = s->ai_next = r->res;
  r->res = NULL;
  resolve_free(r);
  try_next(s);
}

static void connect_timeout(ax_timer_t *t) {
  ax_stream_t *s = AX_CONTAINER_OF(t, ax_stream_t, ctimer);
  ax__stream_fail(s, -ETIMEDOUT);
}

/* Starts connecting s to a numeric address or, through the pool, a name. */
static int connect_addr(ax_stream_t *s, const struct sockaddr_storage *ss, socklen_t len,
                        const char *host, unsigned port) {
  ax_timer_init(s->src.core->loop, &s->ctimer, connect_timeout);
  if (s->o.connect_timeout != AX_FOREVER)
    ax_timer_start(&s->ctimer, s->o.connect_timeout, 0);
  if (host == NULL) {
    int rc = start_connect(s, (const struct sockaddr *)ss, len);
    if (rc < 0)
      return rc;
    if (rc == 1)
      ax__stream_connected(s);
    return 0;
  }
  ax__resolve_t *r = ax__calloc(1, sizeof *r);
  if (r == NULL)
    return -ENOMEM;
  r->call.fn = resolved;
  atomic_init(&r->state, AX__REQ_PENDING);
  r->s = s;
  r->owner = s->src.owner->ref;
  snprintf(r->host, sizeof r->host, "%s", host);
  snprintf(r->port, sizeof r->port, "%u", port);
  s->req = r;
  int rc = resolver_submit(r);
  if (rc < 0) {
    s->req = NULL;
    free(r);
  }
  return rc;
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
  socklen_t len;
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
  bool on;           /* io started */
  bool backing_off;  /* accept overload: waiting for the timer */
  int64_t delay;
  ax_timer_t backoff;
  ax_stream_opts_t o;
};

static void listener_update(ax_listener_t *l) {
  bool want = !l->src.closed && !l->backing_off && ax__src_has_credit(&l->src);
  if (want == l->on)
    return;
  if (want)
    l->on = ax_io_start(&l->io, AX_READ) == 0;
  else {
    ax_io_stop(&l->io);
    l->on = false;
  }
}

static void accept_overload(ax_listener_t *l) {
  ax__stat_add(&l->src.core->stats.accept_errors, 1);
  l->backing_off = true;
  listener_update(l);
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
    set_sock_opts(fd, peer.ss_family, &l->o);
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
  l->on = false;
  if (l->fd >= 0)
    close(l->fd);
  l->fd = -1;
}

static void listener_free(ax__src_t *src) { free(src); }

static void listener_credit(ax__src_t *src) { listener_update((ax_listener_t *)src); }

/* The listener was closed with this ACCEPT still queued: its owner never
 * learns of the stream, so close it (the peer sees the connection end).
 * The stream is still alive: its own messages, CLOSED included, are queued
 * behind the ACCEPT, and only its owner, who never saw it, could close it
 * otherwise. */
static void listener_undelivered(ax__src_t *src, ax__msg_t *m) {
  (void)src;
  if (m->m.type == AX_MSG_ACCEPT)
    ax_stream_close(((ax_accept_t *)(void *)m->payload)->stream);
}

static const ax__src_ops_t listener_ops = {
    .close = listener_close,
    .free = listener_free,
    .credit = listener_credit,
    .undelivered = listener_undelivered,
};

/* Makes a listener of self over a listening socket.  On failure the fd
 * stays the caller's. */
static int listener_new(ax_actor_t *self, int fd, int kind, const ax_stream_opts_t *opts,
                        ax_listener_t **out) {
  ax_stream_opts_t o;
  if (ax__stream_opts(opts, &o) < 0)
    return -EINVAL;
  ax_listener_t *l = ax__calloc(1, sizeof *l);
  if (l == NULL)
    return -ENOMEM;
  if (ax__src_init(&l->src, &listener_ops, self, AX__ACCEPT_WINDOW) < 0) {
    free(l);
    return -ENOMEM;
  }
  l->fd = fd;
  l->kind = kind;
  l->o = o;
  l->delay = AX__BACKOFF_MIN;
  ax_io_init(l->src.core->loop, &l->io, fd, accept_cb);
  l->io.data = l;
  ax_timer_init(l->src.core->loop, &l->backoff, backoff_cb);
  listener_update(l);
  if (!l->on) {
    l->fd = -1;
    ax__src_close(&l->src);
    return -ENOMEM;
  }
  ax__src_count(&l->src, true);
  *out = l;
  return 0;
}

/* Opens a listening socket: SO_REUSEADDR, optionally SO_REUSEPORT; an IPv6
 * wildcard also takes IPv4. */
static int listen_socket(const struct sockaddr *sa, socklen_t len, int backlog, bool reuseport) {
  int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -errno;
  int one = 1, zero = 0;
  if (sa->sa_family != AF_UNIX)
    (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (sa->sa_family == AF_INET6)
    (void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
  if (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0)
    goto fail;
  if (bind(fd, sa, len) < 0 || listen(fd, backlog > 0 ? backlog : SOMAXCONN) < 0)
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
  socklen_t len;
  ax_stream_opts_t o;
  if (self == NULL || out == NULL || ax__stream_opts(opts, &o) < 0)
    return -EINVAL;
  AX__ASSERT_OWNER(self);
  int rc = ax__addr_resolve_sync(addr, true, SOCK_STREAM, &ss, &len);
  if (rc < 0)
    return rc;
  int fd = listen_socket((const struct sockaddr *)&ss, len, backlog, false);
  if (fd < 0)
    return fd;
  rc = listener_new(self, fd, AX__STREAM_TCP, opts, out);
  if (rc < 0)
    close(fd);
  return rc;
}

int ax_unix_listen(ax_actor_t *self, const char *path, int backlog,
                   const ax_stream_opts_t *opts, ax_listener_t **out) {
  struct sockaddr_un sun;
  socklen_t len;
  ax_stream_opts_t o;
  if (self == NULL || out == NULL || ax__unix_addr(path, &sun, &len) < 0 ||
      ax__stream_opts(opts, &o) < 0)
    return -EINVAL;
  AX__ASSERT_OWNER(self);
  int fd = listen_socket((const struct sockaddr *)&sun, len, backlog, false);
  if (fd < 0)
    return fd;
  int rc = listener_new(self, fd, AX__STREAM_UNIX, opts, out);
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

int ax_listener_close(ax_listener_t *l) {
  if (l == NULL)
    return -EINVAL;
  AX__SRC_ASSERT(&l->src);
  ax__src_close(&l->src);
  return 0;
}

/* ------------------------------------------------------------------------ */
/* Servers: one SO_REUSEPORT listener per core.                              */

struct ax_server {
  ax_rt_t *rt;
  ax_behaviour_t session;
  ax_serve_opts_t opts;
  int port;
  unsigned n;
  pthread_mutex_t lock;
  pthread_cond_t cond;
  unsigned alive; /* acceptors not yet stopped (under lock) */
  struct ax__acceptor *acc;
};

typedef struct ax__acceptor {
  ax_server_t *srv;
  int fd; /* handed to the listener by the init hook */
  ax_ref_t ref;
  ax_listener_t *l;
} ax__acceptor_t;

static int acceptor(ax_actor_t *self, const ax_msg_t *m) {
  ax__acceptor_t *acc = ax_state(self);
  if (m->type != AX_MSG_ACCEPT)
    return 0;
  const ax_accept_t *a = m->data;
  ax_server_t *srv = acc->srv;
  ax_spawn_opts_t so = {.placement = AX_PLACE_LOCAL, .terminate = srv->opts.terminate};
  ax_ref_t session;
  if (ax_spawn(ax_actor_rt(self), srv->session, srv->opts.state, &so, &session) < 0 ||
      ax_stream_give(a->stream, session) < 0)
    ax_stream_close(a->stream); /* no session: the connection is refused */
  return 0;
}

static void acceptor_init(ax_actor_t *self) {
  ax__acceptor_t *acc = ax_state(self);
  if (listener_new(self, acc->fd, AX__STREAM_TCP, &acc->srv->opts.stream, &acc->l) < 0) {
    close(acc->fd);
    ax_stop(ax_self(self), -ENOMEM);
  }
  acc->fd = -1;
}

static void acceptor_done(ax_actor_t *self, int reason) {
  (void)reason;
  ax__acceptor_t *acc = ax_state(self);
  if (acc->fd >= 0) { /* stopped before its init hook ran */
    close(acc->fd);
    acc->fd = -1;
  }
  if (acc->l != NULL) { /* closed before ax_server_close may return */
    ax_listener_close(acc->l);
    acc->l = NULL;
  }
  ax_server_t *srv = acc->srv;
  pthread_mutex_lock(&srv->lock);
  srv->alive--;
  pthread_cond_broadcast(&srv->cond);
  pthread_mutex_unlock(&srv->lock);
}

int ax_tcp_serve(ax_rt_t *rt, const char *addr, ax_behaviour_t session,
                 const ax_serve_opts_t *opts, ax_server_t **out) {
  ax_serve_opts_t o = opts != NULL ? *opts : (ax_serve_opts_t){0};
  ax_stream_opts_t so;
  if (rt == NULL || session == NULL || out == NULL || ax__stream_opts(&o.stream, &so) < 0 ||
      !rt->started)
    return -EINVAL;
  unsigned n = ax_rt_cores(rt);
  if (o.cores != 0 && o.cores < n)
    n = o.cores;
  struct sockaddr_storage ss;
  socklen_t len;
  int rc = ax__addr_resolve_sync(addr, true, SOCK_STREAM, &ss, &len);
  if (rc < 0)
    return rc;
  ax_server_t *srv = ax__calloc(1, sizeof *srv);
  ax__acceptor_t *acc = ax__calloc(n, sizeof *acc);
  if (srv == NULL || acc == NULL) {
    free(srv);
    free(acc);
    return -ENOMEM;
  }
  srv->rt = rt;
  srv->session = session;
  srv->opts = o;
  srv->n = n;
  srv->acc = acc;
  pthread_mutex_init(&srv->lock, NULL);
  pthread_cond_init(&srv->cond, NULL);
  unsigned opened = 0;
  for (; opened < n; opened++) {
    int fd = listen_socket((const struct sockaddr *)&ss, len, o.backlog, true);
    if (fd < 0) {
      rc = fd;
      goto fail;
    }
    acc[opened].fd = fd;
    acc[opened].srv = srv;
    if (opened == 0) { /* port 0: the others bind the port the first one got */
      srv->port = ax__sock_port(fd);
      if (ss.ss_family == AF_INET)
        ((struct sockaddr_in *)&ss)->sin_port = htons((uint16_t)srv->port);
      else
        ((struct sockaddr_in6 *)&ss)->sin6_port = htons((uint16_t)srv->port);
    }
  }
  for (unsigned i = 0; i < n; i++) {
    ax_spawn_opts_t sp = {.placement = AX_PLACE_CORE, .core = i, .init = acceptor_init,
                          .terminate = acceptor_done};
    pthread_mutex_lock(&srv->lock);
    srv->alive++;
    pthread_mutex_unlock(&srv->lock);
    rc = ax_spawn(rt, acceptor, &acc[i], &sp, &acc[i].ref);
    if (rc < 0) {
      pthread_mutex_lock(&srv->lock);
      srv->alive--;
      pthread_mutex_unlock(&srv->lock);
      for (unsigned j = i; j < n; j++) {
        close(acc[j].fd);
        acc[j].fd = -1;
      }
      srv->n = i;
      ax_server_close(srv);
      return rc;
    }
  }
  *out = srv;
  return 0;
fail:
  for (unsigned j = 0; j < opened; j++)
    close(acc[j].fd);
  pthread_mutex_destroy(&srv->lock);
  pthread_cond_destroy(&srv->cond);
  free(acc);
  free(srv);
  return rc;
}

int ax_server_port(const ax_server_t *srv) { return srv != NULL ? srv->port : -EINVAL; }

int ax_server_close(ax_server_t *srv) {
  if (srv == NULL)
    return -EINVAL;
  for (unsigned i = 0; i < srv->n; i++)
    (void)ax_stop(srv->acc[i].ref, 0); /* -ESRCH: already stopped */
  pthread_mutex_lock(&srv->lock);
  while (srv->alive > 0)
    pthread_cond_wait(&srv->cond, &srv->lock);
  pthread_mutex_unlock(&srv->lock);
  pthread_mutex_destroy(&srv->lock);
  pthread_cond_destroy(&srv->cond);
  free(srv->acc);
  free(srv);
  return 0;
}
