/* ax_tcp_serve: an SO_REUSEPORT listener and an acceptor actor per core, a session actor per connection. */
#include <errno.h>
#include <linux/filter.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "actors/io/addr.h"
#include "actors/io/stream.h"
#include "axon/fiber.h"
#include "actors/io/tcp.h"

/*
 * A server is one hidden acceptor actor per core, each owning an
 * SO_REUSEPORT listener opened by ax_tcp_serve (so that errors such as
 * -EADDRINUSE come back synchronously).  The server's memory lives until
 * the last acceptor has stopped: ax_server_close from an ordinary thread
 * waits for that; from a core thread (an actor) it cannot wait, since the
 * acceptor of its own core runs only after it returns, so it returns at
 * once and the caller gets AX_MSG_SERVER_CLOSED when every listener is
 * closed.
 */
struct ax_server {
  ax_rt_t *rt;
  ax_behaviour_t session;
  ax_serve_opts_t opts;
  int port;
  unsigned n;
  pthread_mutex_t lock;
  pthread_cond_t cond;
  unsigned alive;   /* acceptors not yet stopped (under lock) */
  bool detached;    /* closed from a core: the last acceptor frees it (under lock) */
  ax_ref_t notify;  /* who gets AX_MSG_SERVER_CLOSED then (under lock) */
  struct ax__acceptor *acc;
};

typedef struct ax__acceptor {
  ax_server_t *srv;
  int fd; /* handed to the listener by the init hook */
  ax_ref_t ref;
  ax_listener_t *l;
} ax__acceptor_t;

/* What a session with a block of its own (opts.session_size) keeps in
 * front of the block: its server may be closed and freed while it runs. */
typedef struct ax__session_hdr {
  ax_terminate_t terminate;
  void (*init)(ax_actor_t *self, void *shared);
  void *shared;
  int (*fiber)(ax_actor_t *self, void *state); /* a fiber session's function */
} ax__session_hdr_t;

/* The header rounded up so the block after it is aligned for any type. */
#define SESSION_HDR \
  ((sizeof(ax__session_hdr_t) + _Alignof(max_align_t) - 1) & ~(_Alignof(max_align_t) - 1))

static ax__session_hdr_t *session_hdr(ax_actor_t *self) {
  return (ax__session_hdr_t *)((char *)ax_state(self) - SESSION_HDR);
}

static void session_block_init(ax_actor_t *self) {
  ax__session_hdr_t *h = session_hdr(self);
  if (h->init != NULL)
    h->init(self, h->shared);
}

static void session_block_free(ax_actor_t *self, int reason) {
  ax__session_hdr_t *h = session_hdr(self);
  if (h->terminate != NULL)
    h->terminate(self, reason);
  free(h);
}

/* A fiber session with a block of its own: session_init first, as the
 * init hook of a handler session, then the user's function. */
static int session_fiber(ax_actor_t *self, void *state) {
  ax__session_hdr_t *h = session_hdr(self);
  if (h->init != NULL)
    h->init(self, h->shared);
  return h->fiber(self, state);
}

static int acceptor(ax_actor_t *self, const ax_msg_t *m) {
  ax__acceptor_t *acc = ax_state(self);
  if (m->type != AX_MSG_ACCEPT)
    return 0;
  const ax_accept_t *a = m->data;
  ax_server_t *srv = acc->srv;
  ax_spawn_opts_t so = {.placement = AX_PLACE_LOCAL, .terminate = srv->opts.terminate,
                        .mailbox_max = srv->opts.mailbox_max};
  void *state = srv->opts.state;
  ax__session_hdr_t *h = NULL;
  if (srv->opts.session_size > 0) {
    h = ax__calloc(1, SESSION_HDR + srv->opts.session_size);
    if (h == NULL) {
      ax__stream_abort(a->stream); /* no state for it: the connection is refused (reset) */
      return 0;
    }
    *h = (ax__session_hdr_t){srv->opts.terminate, srv->opts.session_init, srv->opts.state,
                             srv->opts.fiber};
    state = (char *)h + SESSION_HDR;
    so.init = session_block_init;
    so.terminate = session_block_free;
  }
  ax_ref_t session;
  int rc;
  if (srv->opts.fiber != NULL) {
    ax_fiber_opts_t fo = {.placement = AX_PLACE_LOCAL, .terminate = so.terminate,
                          .stack_size = srv->opts.fiber_stack,
                          .mailbox_max = srv->opts.mailbox_max};
    rc = ax_spawn_fiber(ax_actor_rt(self), h != NULL ? session_fiber : srv->opts.fiber, state,
                        &fo, &session);
  } else {
    rc = ax_spawn(ax_actor_rt(self), srv->session, state, &so, &session);
  }
  if (rc < 0) {
    free(h);
    ax__stream_abort(a->stream); /* no session: the connection is refused (reset) */
    return 0;
  }
  rc = ax_stream_give(a->stream, session);
  if (rc < 0) {
    ax__stream_abort(a->stream);
    (void)ax_stop(session, rc); /* its terminate hook frees its block */
  }
  return 0;
}

static void acceptor_init(ax_actor_t *self) {
  ax__acceptor_t *acc = ax_state(self);
  if (acc->fd < 0)
    return; /* closed before the runtime started (server_close): stopping */
  int rc = ax__listener_new(self, acc->fd, AX__STREAM_TCP, &acc->srv->opts.stream, &acc->l);
  if (rc < 0) {
    close(acc->fd);
    ax_stop(ax_self(self), rc);
  }
  acc->fd = -1;
}

static int server_close(ax_server_t *srv, bool tell);

static void server_free(ax_server_t *srv) {
  pthread_mutex_destroy(&srv->lock);
  pthread_cond_destroy(&srv->cond);
  free(srv->acc);
  free(srv);
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
  bool last = --srv->alive == 0;
  bool detached = srv->detached;
  ax_ref_t notify = srv->notify;
  pthread_cond_broadcast(&srv->cond);
  pthread_mutex_unlock(&srv->lock);
  if (last && detached) { /* nobody waits: tell the closer, free it here */
    ax_server_closed_t ev = {.server = srv};
    if (notify != AX_REF_NONE)
      (void)ax_send(notify, AX_MSG_SERVER_CLOSED, &ev, sizeof ev);
    server_free(srv);
  }
}

/* Keeps the port's connections for this server's n listeners: a classic
 * BPF program on the SO_REUSEPORT group picks one of the group's first n
 * sockets (ours: they joined first, in order) at random.  Without it the
 * kernel would hash connections over every member, and a program of the
 * same user that joined the group later (with SO_REUSEPORT of its own)
 * would silently take its share.  Best effort: a kernel without the option
 * (before 4.5) keeps its default spreading. */
static void keep_port(int fd, unsigned n) {
  struct sock_filter code[] = {
      /* A = a random 32-bit number; A %= n; return A (the socket's index) */
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, (uint32_t)(SKF_AD_OFF + SKF_AD_RANDOM)),
      BPF_STMT(BPF_ALU | BPF_MOD | BPF_K, n),
      BPF_STMT(BPF_RET | BPF_A, 0),
  };
  struct sock_fprog prog;
  memset(&prog, 0, sizeof prog); /* its padding goes to the kernel too */
  prog.len = sizeof code / sizeof code[0];
  prog.filter = code;
  (void)setsockopt(fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, &prog, sizeof prog);
}

int ax_tcp_serve(ax_rt_t *rt, const char *addr, ax_behaviour_t session,
                 const ax_serve_opts_t *opts, ax_server_t **out) {
  ax_serve_opts_t o = opts != NULL ? *opts : (ax_serve_opts_t){0};
  ax_stream_opts_t so;
  if (rt == NULL || (session == NULL) == (o.fiber == NULL) || out == NULL ||
      ax__stream_opts(&o.stream, &so) < 0 || (o.session_init != NULL && o.session_size == 0) ||
      o.session_size > SIZE_MAX / 2 ||
      (o.fiber_stack != 0 && (o.fiber_stack < AX_FIBER_STACK_MIN || o.fiber_stack > ((size_t)1 << 30))))
    return -EINVAL;
  unsigned n = ax_rt_cores(rt);
  if (o.cores != 0 && o.cores < n)
    n = o.cores;
  struct sockaddr_storage ss;
  socklen_t len = 0;
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
    /* The first listener takes the port alone, so a port that another
     * server (another process, or a stale copy of this one) already
     * serves is -EADDRINUSE here, never silently shared; the others join
     * its SO_REUSEPORT group. */
    int fd = ax__listen_socket((const struct sockaddr *)&ss, len, o.backlog,
                               opened == 0 ? AX__SHARE_FIRST : AX__SHARE_JOIN);
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
  keep_port(acc[0].fd, n);
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
      server_close(srv, false);
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

/* Stops every acceptor; from a core, or before the runtime runs, returns
 * at once (and, from an actor when tell, the caller gets
 * AX_MSG_SERVER_CLOSED), else waits and frees. */
static int server_close(ax_server_t *srv, bool tell) {
  ax__core_t *c = ax__tls_core;
  /* Before ax_rt_start the acceptors cannot run, so nobody could wait for
   * them: they close their sockets when the runtime starts and stops them,
   * or when ax_rt_free ends them, and the last one frees the server. */
  bool nowait = c != NULL || !srv->rt->started;
  pthread_mutex_lock(&srv->lock);
  if (nowait) { /* a core cannot wait for its own acceptor: detach */
    srv->detached = true;
    srv->notify = tell && c != NULL && c->current != NULL ? c->current->ref : AX_REF_NONE;
  }
  bool none = srv->alive == 0;
  pthread_mutex_unlock(&srv->lock);
  if (!srv->rt->started) /* the port is free when this returns, as after a wait */
    for (unsigned i = 0; i < srv->n; i++)
      if (srv->acc[i].fd >= 0) {
        close(srv->acc[i].fd);
        srv->acc[i].fd = -1;
      }
  if (nowait && none) {
    server_free(srv); /* no acceptor left to do it (nothing to tell) */
    return 0;
  }
  /* Detached, srv is freed by the last acceptor to end, which may be on
   * another core and end during this loop: the loop reads copies. */
  unsigned n = srv->n;
  ax_ref_t refs[AX_MAX_CORES];
  for (unsigned i = 0; i < n; i++)
    refs[i] = srv->acc[i].ref;
  for (unsigned i = 0; i < n; i++)
    (void)ax_stop(refs[i], 0); /* -ESRCH: already stopped */
  if (nowait)
    return 0; /* the last acceptor frees it and sends AX_MSG_SERVER_CLOSED */
  pthread_mutex_lock(&srv->lock);
  while (srv->alive > 0)
    pthread_cond_wait(&srv->cond, &srv->lock);
  pthread_mutex_unlock(&srv->lock);
  server_free(srv);
  return 0;
}

int ax_server_close(ax_server_t *srv) {
  if (srv == NULL)
    return -EINVAL;
  return server_close(srv, true);
}
