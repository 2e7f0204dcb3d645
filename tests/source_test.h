/* Helpers shared by the suites of datagrams, signals, eventfds, fs events and fd watches: a scriptable source-owning actor. */
#ifndef AXON_SOURCE_TEST_H
#define AXON_SOURCE_TEST_H

#include <stdatomic.h>
#include <stdio.h>
#include <sys/socket.h>

#include "axon_test.h"

/*
 * A test drives a "scripted actor" (sa_actor_t) from its own thread:
 *  - sa_cmd() sends a command (CMD_*) as a message; the actor makes the
 *    matching call on its core and answers with an sa_reply_t on the
 *    reply port (rc: the call's result; value: a slot or a number);
 *  - every source message the actor receives is forwarded, in order, as an
 *    sa_event_t to the event port (datagram bytes and names included).
 * Handles live in numbered slots per kind, so commands can name them.
 */

enum { SA_SLOTS = 16, SA_MAX_BYTES = 70000 };

enum {
  CMD_NOP = AX_MSG_USER + 100, /* just reply: a barrier */
  CMD_SPIN,       /* i1: busy-wait that many ms */
  CMD_STOP,       /* reply, then stop */
  CMD_FD_WATCH,   /* i1: fd, u: events -> slot */
  CMD_FD_REARM,   /* slot, u: events */
  CMD_FD_UNWATCH, /* slot */
  CMD_EFD_NEW,    /* -> slot */
  CMD_EFD_NOTIFY, /* slot, u: n */
  CMD_EFD_CLOSE,  /* slot */
  CMD_FS_WATCH,   /* s: path, u: mask -> slot */
  CMD_FAN_WATCH,  /* s: path, u: mask, i1: flags -> slot */
  CMD_FS_UNWATCH, /* slot */
  CMD_UDP_BIND,   /* s: addr, opts -> value: port << 8 | slot */
  CMD_UNIX_DGRAM, /* s: path ("" = autobind), opts -> slot */
  CMD_DG_SENDTO,  /* slot, s: addr ("" = the connected peer), data */
  CMD_DG_SEND,    /* slot, sa/sa_len (0 = none), data */
  CMD_DG_CONNECT, /* slot, s: addr */
  CMD_DG_PORT,    /* slot -> value */
  CMD_DG_CLOSE,   /* slot */
  CMD_SIG_WATCH,  /* i1: signo */
  CMD_SIG_UNWATCH,/* i1: signo */
  CMD_HOLD,       /* busy-wait while sa_actor_t.hold is set (at most 10 s) */
  CMD_EFD_PTR,    /* slot -> value: the ax_efd_t pointer (for other threads) */
};

typedef struct sa_cmd {
  uint32_t op;
  int slot;
  int i1;
  uint64_t u;
  int has_opts;
  ax_dgram_opts_t opts;
  struct sockaddr_storage sa;
  socklen_t sa_len;
  char s[256];
  size_t len; /* bytes of data following the struct */
  unsigned char data[];
} sa_cmd_t;

typedef struct sa_reply {
  uint32_t op;
  int rc;
  int64_t value;
} sa_reply_t;

typedef struct sa_event {
  uint32_t type; /* AX_MSG_* of source.h */
  int tag;       /* the reporting actor's tag */
  int core;      /* its core */
  int slot;      /* the source's slot in its kind, -1 if unknown */
  int fd;
  unsigned revents;
  uint64_t count;
  uint32_t mask, cookie;
  int32_t pid;
  int signo;
  int32_t ssi_code;
  int32_t ssi_int;
  bool truncated;
  struct sockaddr_storage from;
  socklen_t from_len;
  char name[256];
  size_t len;
  unsigned char bytes[];
} sa_event_t;

typedef struct sa_actor {
  /* set by the test before spawning */
  ax_ref_t evport, rcport;
  int tag;
  atomic_int slow_ms; /* busy-wait this long on each source message */
  atomic_int hold;    /* CMD_HOLD spins while this is set */
  atomic_int held;    /* set while CMD_HOLD spins */
  /* owner core only */
  void *fdw[SA_SLOTS]; /* ax_fdwatch_t * */
  void *efd[SA_SLOTS]; /* ax_efd_t * */
  void *fsw[SA_SLOTS]; /* ax_fswatch_t * */
  void *dg[SA_SLOTS];  /* ax_dgram_t * */
  /* read by the test thread */
  atomic_int events;     /* source messages received */
  atomic_int violations; /* a message the contract forbids */
  atomic_int terminated;
} sa_actor_t;

/* The slot holding handle p, or -1. */
static inline int sa_find(void *const *arr, const void *p) {
  for (int i = 0; i < SA_SLOTS; i++)
    if (arr[i] != NULL && arr[i] == p)
      return i;
  return -1;
}

/* The first free slot (the test never fills them all). */
static inline int sa_free_slot(void *const *arr) {
  for (int i = 0; i < SA_SLOTS; i++)
    if (arr[i] == NULL)
      return i;
  return 0;
}

static inline void sa_forward(ax_actor_t *self, sa_actor_t *a, const ax_msg_t *m) {
  size_t extra = 0;
  const ax_datagram_t *d = NULL;
  if (m->type == AX_MSG_DATAGRAM) {
    d = m->data;
    extra = d->len < SA_MAX_BYTES ? d->len : SA_MAX_BYTES;
  }
  sa_event_t *ev = calloc(1, sizeof *ev + extra);
  if (ev == NULL) {
    atomic_fetch_add(&a->violations, 1);
    return;
  }
  ev->type = m->type;
  ev->tag = a->tag;
  ev->core = (int)ax_core(self);
  ev->slot = -1;
  if (m->from != AX_REF_NONE)
    atomic_fetch_add(&a->violations, 1); /* source messages come from nobody */
  switch (m->type) {
  case AX_MSG_FD_READY: {
    const ax_fd_ready_t *r = m->data;
    ev->slot = sa_find(a->fdw, r->watch);
    ev->fd = r->fd;
    ev->revents = r->revents;
    break;
  }
  case AX_MSG_EVENT: {
    const ax_event_msg_t *e = m->data;
    ev->slot = sa_find(a->efd, e->efd);
    ev->count = e->count;
    break;
  }
  case AX_MSG_FS_EVENT: {
    const ax_fs_event_t *f = m->data;
    ev->slot = sa_find(a->fsw, f->watch);
    ev->mask = f->mask;
    ev->cookie = f->cookie;
    ev->pid = f->pid;
    if (f->name == NULL)
      atomic_fetch_add(&a->violations, 1);
    else
      snprintf(ev->name, sizeof ev->name, "%s", f->name);
    break;
  }
  case AX_MSG_DATAGRAM: {
    ev->slot = sa_find(a->dg, d->dgram);
    ev->truncated = d->truncated;
    ev->from = d->from;
    ev->from_len = d->from_len;
    ev->len = d->len;
    /* the bytes live inside the message */
    if (d->len > 0 && ((const unsigned char *)d->bytes < (const unsigned char *)m->data ||
                       (const unsigned char *)d->bytes + d->len >
                           (const unsigned char *)m->data + m->size))
      atomic_fetch_add(&a->violations, 1);
    memcpy(ev->bytes, d->bytes, extra);
    break;
  }
  case AX_MSG_SIGNAL: {
    const ax_signal_msg_t *si = m->data;
    if (m->size != sizeof *si)
      atomic_fetch_add(&a->violations, 1);
    ev->signo = (int)si->ssi_signo;
    ev->pid = (int32_t)si->ssi_pid;
    ev->ssi_code = si->ssi_code;
    ev->ssi_int = si->ssi_int;
    break;
  }
  default:
    break;
  }
  atomic_fetch_add(&a->events, 1);
  if (ax_send(a->evport, m->type, ev, sizeof *ev + extra) != 0)
    atomic_fetch_add(&a->violations, 1);
  free(ev);
}

static inline int64_t sa_run_cmd(ax_actor_t *self, sa_actor_t *a, const sa_cmd_t *c, int *rc) {
  const ax_dgram_opts_t *o = c->has_opts ? &c->opts : NULL;
  int slot;
  switch (c->op) {
  case CMD_NOP:
  case CMD_STOP:
    *rc = 0;
    return 0;
  case CMD_SPIN:
    test_spin_ms(c->i1);
    *rc = 0;
    return 0;
  case CMD_FD_WATCH:
    slot = sa_free_slot(a->fdw);
    {
      ax_fdwatch_t *w = NULL;
      *rc = ax_fd_watch(self, c->i1, (unsigned)c->u, &w);
      a->fdw[slot] = w;
    }
    return slot;
  case CMD_FD_REARM:
    *rc = ax_fdwatch_rearm(a->fdw[c->slot], (unsigned)c->u);
    return 0;
  case CMD_FD_UNWATCH:
    *rc = ax_fdwatch_close(a->fdw[c->slot]);
    a->fdw[c->slot] = NULL;
    return 0;
  case CMD_HOLD: {
    int64_t end = ax_now() + 10 * AX_NSEC_PER_SEC;
    atomic_store(&a->held, 1);
    while (atomic_load(&a->hold) && ax_now() < end) {
    }
    atomic_store(&a->held, 0);
    *rc = 0;
    return 0;
  }
  case CMD_EFD_PTR:
    *rc = 0;
    return (int64_t)(uintptr_t)a->efd[c->slot];
  case CMD_EFD_NEW:
    slot = sa_free_slot(a->efd);
    {
      ax_efd_t *e = NULL;
      *rc = ax_efd_open(self, &e);
      a->efd[slot] = e;
    }
    return slot;
  case CMD_EFD_NOTIFY:
    *rc = ax_efd_notify(a->efd[c->slot], c->u);
    return 0;
  case CMD_EFD_CLOSE:
    *rc = ax_efd_close(a->efd[c->slot]);
    a->efd[c->slot] = NULL;
    return 0;
  case CMD_FS_WATCH:
    slot = sa_free_slot(a->fsw);
    {
      ax_fswatch_t *w = NULL;
      *rc = ax_fs_watch(self, c->s, (uint32_t)c->u, &w);
      a->fsw[slot] = w;
    }
    return slot;
  case CMD_FAN_WATCH:
    slot = sa_free_slot(a->fsw);
    {
      ax_fswatch_t *w = NULL;
      *rc = ax_fan_watch(self, c->s, c->u, (unsigned)c->i1, &w);
      a->fsw[slot] = w;
    }
    return slot;
  case CMD_FS_UNWATCH:
    *rc = ax_fswatch_close(a->fsw[c->slot]);
    a->fsw[c->slot] = NULL;
    return 0;
  case CMD_UDP_BIND:
    slot = sa_free_slot(a->dg);
    {
      ax_dgram_t *d = NULL;
      *rc = ax_udp_bind(self, c->s, o, &d);
      a->dg[slot] = d;
    }
    return *rc == 0 ? ((int64_t)ax_dgram_port(a->dg[slot]) << 8 | slot) : slot;
  case CMD_UNIX_DGRAM:
    slot = sa_free_slot(a->dg);
    {
      ax_dgram_t *d = NULL;
      *rc = ax_unix_dgram(self, c->s[0] != '\0' ? c->s : NULL, o, &d);
      a->dg[slot] = d;
    }
    return slot;
  case CMD_DG_SENDTO:
    *rc = c->s[0] != '\0' ? ax_dgram_sendto(a->dg[c->slot], c->s, c->data, c->len)
                          : ax_dgram_send(a->dg[c->slot], NULL, 0, c->data, c->len);
    return 0;
  case CMD_DG_SEND:
    *rc = ax_dgram_send(a->dg[c->slot], c->sa_len ? (const struct sockaddr *)&c->sa : NULL,
                        c->sa_len, c->data, c->len);
    return 0;
  case CMD_DG_CONNECT:
    *rc = ax_dgram_connect(a->dg[c->slot], c->s);
    return 0;
  case CMD_DG_PORT:
    *rc = 0;
    return ax_dgram_port(a->dg[c->slot]);
  case CMD_DG_CLOSE:
    *rc = ax_dgram_close(a->dg[c->slot]);
    a->dg[c->slot] = NULL;
    return 0;
  case CMD_SIG_WATCH:
    *rc = ax_signal_watch(self, c->i1);
    return 0;
  case CMD_SIG_UNWATCH:
    *rc = ax_signal_unwatch(self, c->i1);
    return 0;
  default:
    *rc = -ENOSYS;
    return 0;
  }
}

static inline int sa_behaviour(ax_actor_t *self, const ax_msg_t *m) {
  sa_actor_t *a = ax_state(self);
  if (m->type >= AX_MSG_DATAGRAM && m->type <= AX_MSG_FD_READY) {
    int slow = atomic_load(&a->slow_ms);
    if (slow > 0)
      test_spin_ms(slow);
    sa_forward(self, a, m);
    return 0;
  }
  if (m->type < CMD_NOP || m->size < sizeof(sa_cmd_t)) {
    atomic_fetch_add(&a->violations, 1);
    return 0;
  }
  const sa_cmd_t *c = m->data;
  sa_reply_t r = {c->op, 0, 0};
  r.value = sa_run_cmd(self, a, c, &r.rc);
  if (ax_send(a->rcport, c->op, &r, sizeof r) != 0)
    atomic_fetch_add(&a->violations, 1);
  return c->op == CMD_STOP ? AX_STOP : 0;
}

static inline void sa_terminate(ax_actor_t *self, int reason) {
  (void)reason;
  sa_actor_t *a = ax_state(self);
  atomic_fetch_add(&a->terminated, 1);
}

/* A test's environment: the runtime and the two ports. */
typedef struct sa_env {
  ax_rt_t *rt;
  ax_port_t *ev, *rc;
} sa_env_t;

static inline void sa_env_new(sa_env_t *env, unsigned cores, unsigned flags) {
  env->rt = test_rt_new(cores, flags | AX_RT_KEEP_ALIVE);
  ck_assert_int_eq(ax_port_new(env->rt, &env->ev), 0);
  ck_assert_int_eq(ax_port_new(env->rt, &env->rc), 0);
  test_rt_start(env->rt);
}

static inline void sa_env_free(sa_env_t *env) {
  ax_rt_stop(env->rt);
  ck_assert_int_eq(ax_rt_join(env->rt), 0);
  ck_assert_int_eq(ax_port_close(env->ev), 0);
  ck_assert_int_eq(ax_port_close(env->rc), 0);
  ck_assert_int_eq(ax_rt_free(env->rt), 0);
}

static inline ax_ref_t sa_spawn(sa_env_t *env, sa_actor_t *a, int tag, unsigned core) {
  memset(a, 0, sizeof *a);
  a->evport = ax_port_ref(env->ev);
  a->rcport = ax_port_ref(env->rc);
  a->tag = tag;
  ax_spawn_opts_t o;
  memset(&o, 0, sizeof o);
  o.placement = AX_PLACE_CORE;
  o.core = core;
  o.terminate = sa_terminate;
  ax_ref_t ref = AX_REF_NONE;
  int rc = ax_spawn(env->rt, sa_behaviour, a, &o, &ref);
  ck_assert_msg(rc == 0, "ax_spawn: %s", ax_strerror(rc));
  return ref;
}

/* Sends a command and waits for its reply; returns the call's result and
 * stores the value in *value when value is not NULL. */
static inline int sa_cmd_full(sa_env_t *env, ax_ref_t to, const sa_cmd_t *c, size_t len,
                              int64_t *value) {
  int rc = ax_send(to, c->op, c, sizeof *c + len);
  ck_assert_msg(rc == 0, "sending command %u: %s", c->op, ax_strerror(rc));
  ax_msg_t m;
  rc = ax_port_recv(env->rc, ax_now() + 10 * AX_NSEC_PER_SEC, &m);
  ck_assert_msg(rc == 0, "reply to command %u: %s", c->op, ax_strerror(rc));
  const sa_reply_t *r = m.data;
  ck_assert_uint_eq(r->op, c->op);
  if (value != NULL)
    *value = r->value;
  return r->rc;
}

/* The common case: a command with a slot, an int, a number and a string. */
static inline int sa_cmd(sa_env_t *env, ax_ref_t to, uint32_t op, int slot, int i1, uint64_t u,
                         const char *s, int64_t *value) {
  sa_cmd_t c;
  memset(&c, 0, sizeof c);
  c.op = op;
  c.slot = slot;
  c.i1 = i1;
  c.u = u;
  if (s != NULL)
    snprintf(c.s, sizeof c.s, "%s", s);
  return sa_cmd_full(env, to, &c, 0, value);
}

/* Makes actor `a` hold its core (CMD_HOLD) and returns once it does:
 * until sa_release, nothing else runs there, not even the core's loop. */
static inline void sa_hold(ax_ref_t ref, sa_actor_t *a) {
  atomic_store(&a->hold, 1);
  sa_cmd_t c;
  memset(&c, 0, sizeof c);
  c.op = CMD_HOLD;
  ck_assert_int_eq(ax_send(ref, CMD_HOLD, &c, sizeof c), 0);
  TEST_WAIT_UNTIL(atomic_load(&a->held) == 1, 10000);
}

/* Ends the hold and takes the `n` replies now due (the hold's and those of
 * commands sent meanwhile with sa_send), checking that each succeeded. */
static inline void sa_release(sa_env_t *env, sa_actor_t *a, int n) {
  atomic_store(&a->hold, 0);
  for (int i = 0; i < n; i++) {
    ax_msg_t m;
    int rc = ax_port_recv(env->rc, ax_now() + 10 * AX_NSEC_PER_SEC, &m);
    ck_assert_msg(rc == 0, "reply after a hold: %s", ax_strerror(rc));
    const sa_reply_t *r = m.data;
    ck_assert_msg(r->rc == 0, "command %u: %s", r->op, ax_strerror(r->rc));
  }
}

/* Sends a command without waiting for its reply (see sa_release). */
static inline void sa_send(ax_ref_t to, uint32_t op, int slot, int i1, uint64_t u) {
  sa_cmd_t c;
  memset(&c, 0, sizeof c);
  c.op = op;
  c.slot = slot;
  c.i1 = i1;
  c.u = u;
  ck_assert_int_eq(ax_send(to, op, &c, sizeof c), 0);
}

/* Receives the next event within timeout_ms; the caller frees nothing
 * (the message is valid until the next receive on the port). */
static inline const sa_event_t *sa_event(sa_env_t *env, int timeout_ms) {
  ax_msg_t m;
  int rc = ax_port_recv(env->ev, ax_now() + (int64_t)timeout_ms * AX_NSEC_PER_MSEC, &m);
  ck_assert_msg(rc == 0, "waiting %d ms for a source message: %s", timeout_ms,
                ax_strerror(rc));
  return m.data;
}

/* True when no event arrives within ms. */
static inline bool sa_no_event(sa_env_t *env, int ms) {
  ax_msg_t m;
  int rc = ax_port_recv(env->ev, ax_now() + (int64_t)ms * AX_NSEC_PER_MSEC, &m);
  return rc == -ETIMEDOUT || rc == -ESHUTDOWN; /* -ESHUTDOWN: the runtime stopped (a signal) */
}

/* Files and directories for the tests that need them. */

/* A fresh temporary directory under /tmp (removed by the caller). */
static inline void temp_dir(char *buf, size_t cap) {
  snprintf(buf, cap, "/tmp/axon-src-XXXXXX");
  ck_assert_ptr_nonnull(mkdtemp(buf));
}

static inline void remove_tree(const char *dir) {
  char cmd[512];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  ck_assert_int_eq(system(cmd), 0);
}

static inline void touch(const char *dir, const char *name) {
  char path[512];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  int fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
  ck_assert_int_ge(fd, 0);
  close(fd);
}

#endif /* AXON_SOURCE_TEST_H */
