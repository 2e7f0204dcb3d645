/* Helpers shared by the stream and TCP suites: a scriptable stream-owning actor, reports through ports, byte patterns. */
#ifndef AXON_STREAM_TEST_H
#define AXON_STREAM_TEST_H

#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include "axon_test.h"

/*
 * A test drives "scripted actors" (st_actor_t) from the test thread:
 *  - commands (CMD_*) go to the actor as messages; the actor runs the
 *    matching stream call on its core and answers with an st_reply_t on
 *    the environment's reply port;
 *  - every stream message the actor receives (ACCEPT, CONNECTED, DATA, ...)
 *    is forwarded as an st_report_t to the event port, in order, unless a
 *    test hook consumes it or the actor checks a byte pattern itself.
 * The actor keeps its streams in numbered slots so that commands can name
 * them; ACCEPT and GIVEN put the new stream into the first free slot.
 */

enum {
  ST_SLOTS = 64,
  ST_MAX_REPORT = 1 << 20, /* the largest DATA copied into a report */
};

enum {
  CMD_NOP = AX_MSG_USER + 1000, /* just reply: a barrier */
  CMD_PIPE_OPEN,    /* rfd, wfd, opts -> slot */
  CMD_TCP_LISTEN,   /* addr, backlog, opts -> lslot; value: port */
  CMD_UNIX_LISTEN,  /* addr, backlog, opts -> lslot */
  CMD_TCP_CONNECT,  /* addr, opts -> slot */
  CMD_UNIX_CONNECT, /* addr, opts -> slot */
  CMD_LISTENER_CLOSE, /* lslot */
  CMD_WRITE,        /* slot, data; value: ax_stream_queued afterwards */
  CMD_WRITE_PATTERN,/* slot, total, chunk, then: see st_actor_t.pw_* */
  CMD_SHUTDOWN,     /* slot */
  CMD_CLOSE,        /* slot */
  CMD_PAUSE,        /* slot */
  CMD_RESUME,       /* slot */
  CMD_ACTIVE,       /* slot, n */
  CMD_GIVE,         /* slot, ref */
  CMD_QUEUED,       /* slot; value: ax_stream_queued */
  CMD_FD,           /* slot; value: ax_stream_fd */
  CMD_STOP,         /* reply, then stop (AX_STOP) */
  CMD_USER,         /* handled by the test's hook only */
};

enum {
  REP_PW_NOBUFS = AX_MSG_USER + 2000, /* the pattern writer met -ENOBUFS; count: queued */
  REP_PW_DONE,      /* the pattern writer wrote (queued) everything */
  REP_PW_FAILED,    /* the pattern writer got an error (err) */
  REP_USER,         /* anything a hook reports */
};

/* Then-actions of the pattern writer once everything is queued. */
enum { PW_NONE = 0, PW_SHUTDOWN, PW_CLOSE };

typedef struct st_cmd {
  int slot;
  int n;
  int rfd, wfd;
  int backlog;
  int has_opts;
  int then;
  ax_ref_t ref;
  uint64_t total, chunk;
  ax_stream_opts_t opts;
  char addr[120];
  size_t len;               /* bytes of data following the struct */
  unsigned char data[];
} st_cmd_t;

typedef struct st_reply {
  uint32_t cmd;
  int rc;
  int64_t value;
} st_reply_t;

typedef struct st_report {
  uint32_t type; /* the stream message type, or REP_* */
  int slot;      /* the stream's slot in the reporting actor, -1 if none */
  int err;
  int core;      /* ax_core() of the reporting actor */
  int tag;       /* st_actor_t.tag of the reporting actor */
  uint64_t count;
  int64_t value;
  size_t len;    /* DATA: bytes that follow (at most ST_MAX_REPORT) */
  unsigned char bytes[];
} st_report_t;

typedef struct st_actor st_actor_t;

/* A hook sees every message first.  Returns ST_NEXT to let the actor do
 * its default handling, anything else to end the message there (the value
 * is the behaviour's result). */
#define ST_NEXT 1000
typedef int (*st_hook_t)(ax_actor_t *self, st_actor_t *a, const ax_msg_t *m);

struct st_actor {
  /* set by the test before spawning */
  ax_ref_t evport, rcport;
  int tag;
  st_hook_t hook;
  void *user;
  bool check_pattern;   /* DATA bytes are checked against st_pattern, not reported */
  bool quiet_data;      /* DATA is not reported (counted only) */
  /* owner core only */
  ax_stream_t *s[ST_SLOTS];
  ax_listener_t *l[8];
  uint64_t pw_total, pw_off, pw_chunk;
  int pw_slot, pw_then;
  bool pw_on;
  /* read by the test thread */
  atomic_uint_fast64_t rx_bytes;  /* DATA bytes received (all slots) */
  atomic_uint_fast64_t rx_msgs;   /* DATA messages received */
  atomic_int pattern_errors;      /* check_pattern mismatches */
  atomic_int violations;          /* contract breaches a hook saw */
  atomic_int terminated;          /* the terminate hook ran */
  atomic_int closed;              /* AX_MSG_CLOSED messages received */
  atomic_int last_closed_err;
};

/* The byte at offset i of a test stream: position dependent, so a lost,
 * doubled or reordered chunk shows. */
static inline unsigned char st_pattern(uint64_t i) {
  return (unsigned char)(((i ^ (i >> 8) ^ (i >> 16) ^ (i >> 24)) * 31u + 7u) & 0xffu);
}

static inline void st_fill_pattern(unsigned char *buf, uint64_t off, size_t len) {
  for (size_t k = 0; k < len; k++)
    buf[k] = st_pattern(off + k);
}

/* The number of bytes of buf that do not match the pattern at off. */
static inline size_t st_check_pattern(const unsigned char *buf, uint64_t off, size_t len) {
  size_t bad = 0;
  for (size_t k = 0; k < len; k++)
    bad += buf[k] != st_pattern(off + k);
  return bad;
}

/* ------------------------------------------------------------------------ */
/* Inside the actor                                                          */

static inline int st_slot_of(const st_actor_t *a, const ax_stream_t *s) {
  for (int i = 0; i < ST_SLOTS; i++)
    if (a->s[i] == s && s != NULL)
      return i;
  return -1;
}

static inline int st_slot_add(st_actor_t *a, ax_stream_t *s) {
  int i = st_slot_of(a, s);
  if (i >= 0)
    return i;
  for (i = 0; i < ST_SLOTS; i++)
    if (a->s[i] == NULL) {
      a->s[i] = s;
      return i;
    }
  return -1;
}

/* Sends a report to the event port. */
static inline void st_report(ax_actor_t *self, st_actor_t *a, uint32_t type, int slot, int err,
                             uint64_t count, int64_t value, const void *bytes, size_t len) {
  if (len > ST_MAX_REPORT)
    len = ST_MAX_REPORT;
  st_report_t *r = malloc(sizeof *r + len);
  if (r == NULL) {
    atomic_fetch_add(&a->violations, 1);
    return;
  }
  memset(r, 0, sizeof *r);
  r->type = type;
  r->slot = slot;
  r->err = err;
  r->core = (int)ax_core(self);
  r->tag = a->tag;
  r->count = count;
  r->value = value;
  r->len = len;
  if (len > 0)
    memcpy(r->bytes, bytes, len);
  if (ax_send(a->evport, type, r, sizeof *r + len) != 0)
    atomic_fetch_add(&a->violations, 1);
  free(r);
}

static inline void st_reply(st_actor_t *a, uint32_t cmd, int rc, int64_t value) {
  st_reply_t r = {cmd, rc, value};
  if (ax_send(a->rcport, cmd, &r, sizeof r) != 0)
    atomic_fetch_add(&a->violations, 1);
}

/* Writes pattern bytes until everything is queued or the queue is full. */
static inline void st_pw_run(ax_actor_t *self, st_actor_t *a) {
  ax_stream_t *s = a->s[a->pw_slot];
  unsigned char *buf = malloc(a->pw_chunk);
  if (buf == NULL || s == NULL) {
    free(buf);
    a->pw_on = false;
    st_report(self, a, REP_PW_FAILED, a->pw_slot, -ENOMEM, 0, 0, NULL, 0);
    return;
  }
  while (a->pw_off < a->pw_total) {
    uint64_t n = a->pw_total - a->pw_off;
    if (n > a->pw_chunk)
      n = a->pw_chunk;
    st_fill_pattern(buf, a->pw_off, (size_t)n);
    size_t before = ax_stream_queued(s);
    int rc = ax_stream_write(s, buf, (size_t)n);
    if (rc == -ENOBUFS) {
      st_report(self, a, REP_PW_NOBUFS, a->pw_slot, rc, before, (int64_t)a->pw_off, NULL, 0);
      free(buf);
      return; /* AX_MSG_WRITABLE resumes */
    }
    if (rc != 0) {
      a->pw_on = false;
      st_report(self, a, REP_PW_FAILED, a->pw_slot, rc, 0, (int64_t)a->pw_off, NULL, 0);
      free(buf);
      return;
    }
    a->pw_off += n;
  }
  free(buf);
  a->pw_on = false;
  int rc = 0;
  size_t queued = ax_stream_queued(s); /* before the then-action */
  if (a->pw_then == PW_SHUTDOWN)
    rc = ax_stream_shutdown(s);
  else if (a->pw_then == PW_CLOSE) {
    rc = ax_stream_close(s);
    a->s[a->pw_slot] = NULL;
  }
  st_report(self, a, REP_PW_DONE, a->pw_slot, rc, queued, (int64_t)a->pw_off, NULL, 0);
}

static inline int st_command(ax_actor_t *self, st_actor_t *a, const ax_msg_t *m) {
  const st_cmd_t *c = m->data;
  const ax_stream_opts_t *o = c->has_opts ? &c->opts : NULL;
  ax_stream_t *s = c->slot >= 0 && c->slot < ST_SLOTS ? a->s[c->slot] : NULL;
  int rc = 0;
  int64_t value = 0;
  switch (m->type) {
  case CMD_NOP:
    break;
  case CMD_PIPE_OPEN:
    rc = ax_pipe_open(self, c->rfd, c->wfd, o, &a->s[c->slot]);
    break;
  case CMD_TCP_CONNECT:
    rc = ax_tcp_connect(self, c->addr, o, &a->s[c->slot]);
    break;
  case CMD_UNIX_CONNECT:
    rc = ax_unix_connect(self, c->addr, o, &a->s[c->slot]);
    break;
  case CMD_TCP_LISTEN:
    rc = ax_tcp_listen(self, c->addr, c->backlog, o, &a->l[c->slot]);
    if (rc == 0)
      value = ax_listener_port(a->l[c->slot]);
    break;
  case CMD_UNIX_LISTEN:
    rc = ax_unix_listen(self, c->addr, c->backlog, o, &a->l[c->slot]);
    break;
  case CMD_LISTENER_CLOSE:
    rc = ax_listener_close(a->l[c->slot]);
    a->l[c->slot] = NULL;
    break;
  case CMD_WRITE:
    rc = ax_stream_write(s, c->data, c->len);
    value = (int64_t)ax_stream_queued(s);
    break;
  case CMD_WRITE_PATTERN:
    a->pw_slot = c->slot;
    a->pw_total = c->total;
    a->pw_chunk = c->chunk;
    a->pw_off = 0;
    a->pw_then = c->then;
    a->pw_on = true;
    st_reply(a, m->type, s != NULL ? 0 : -EINVAL, 0);
    if (s != NULL)
      st_pw_run(self, a);
    return 0;
  case CMD_SHUTDOWN:
    rc = ax_stream_shutdown(s);
    break;
  case CMD_CLOSE:
    rc = ax_stream_close(s);
    a->s[c->slot] = NULL;
    break;
  case CMD_PAUSE:
    rc = ax_stream_pause(s);
    break;
  case CMD_RESUME:
    rc = ax_stream_resume(s);
    break;
  case CMD_ACTIVE:
    rc = ax_stream_active(s, c->n);
    break;
  case CMD_GIVE:
    rc = ax_stream_give(s, c->ref);
    if (rc == 0)
      a->s[c->slot] = NULL;
    break;
  case CMD_QUEUED:
    value = (int64_t)ax_stream_queued(s);
    break;
  case CMD_FD:
    rc = ax_stream_fd(s);
    break;
  case CMD_STOP:
    st_reply(a, m->type, 0, 0);
    return AX_STOP;
  default:
    return 0;
  }
  st_reply(a, m->type, rc, value);
  return 0;
}

/* The scripted actor's behaviour. */
static inline int st_behaviour(ax_actor_t *self, const ax_msg_t *m) {
  st_actor_t *a = ax_state(self);
  if (a->hook != NULL) {
    int rc = a->hook(self, a, m);
    if (rc != ST_NEXT)
      return rc;
  }
  if (m->type >= CMD_NOP && m->type < CMD_USER)
    return st_command(self, a, m);
  switch (m->type) {
  case AX_MSG_ACCEPT: {
    const ax_accept_t *acc = m->data;
    int slot = st_slot_add(a, acc->stream);
    int lslot = -1;
    for (int i = 0; i < 8; i++)
      if (a->l[i] == acc->listener)
        lslot = i;
    st_report(self, a, m->type, slot, 0, acc->peer.ss_family, lslot, NULL, 0);
    return 0;
  }
  case AX_MSG_DATA: {
    const ax_data_t *d = m->data;
    int slot = st_slot_of(a, d->stream);
    if (slot < 0)
      atomic_fetch_add(&a->violations, 1); /* DATA of a stream we do not own */
    uint64_t off = atomic_load(&a->rx_bytes);
    if (a->check_pattern && st_check_pattern(d->bytes, off, d->len) != 0)
      atomic_fetch_add(&a->pattern_errors, 1);
    atomic_fetch_add(&a->rx_bytes, d->len);
    atomic_fetch_add(&a->rx_msgs, 1);
    if (!a->check_pattern && !a->quiet_data)
      st_report(self, a, m->type, slot, 0, 0, 0, d->bytes, d->len);
    return 0;
  }
  case AX_MSG_GIVEN:
  case AX_MSG_CONNECTED:
  case AX_MSG_PASSIVE:
  case AX_MSG_WRITABLE:
  case AX_MSG_EOF:
  case AX_MSG_FRAME_ERROR:
  case AX_MSG_CLOSED: {
    const ax_stream_ev_t *ev = m->data;
    int slot = m->type == AX_MSG_GIVEN ? st_slot_add(a, ev->stream) : st_slot_of(a, ev->stream);
    if (slot < 0)
      atomic_fetch_add(&a->violations, 1);
    /* value: the queued bytes (WRITABLE must find less than half the mark) */
    st_report(self, a, m->type, slot, ev->err, ev->count, (int64_t)ax_stream_queued(ev->stream),
              NULL, 0);
    if (m->type == AX_MSG_CLOSED) {
      atomic_store(&a->last_closed_err, ev->err);
      atomic_fetch_add(&a->closed, 1);
      if (a->pw_on && a->pw_slot == slot)
        a->pw_on = false;
      if (slot >= 0)
        a->s[slot] = NULL; /* the handle dies when we return */
    }
    if (m->type == AX_MSG_WRITABLE && a->pw_on && a->pw_slot == slot)
      st_pw_run(self, a);
    return 0;
  }
  default:
    return 0;
  }
}

static inline void st_terminate(ax_actor_t *self, int reason) {
  (void)reason;
  st_actor_t *a = ax_state(self);
  atomic_fetch_add(&a->terminated, 1);
}

/* ------------------------------------------------------------------------ */
/* On the test thread                                                        */

typedef struct st_env {
  ax_rt_t *rt;
  ax_port_t *ev, *rc;
  st_report_t *last; /* the last report taken (owned, freed by the next) */
} st_env_t;

/* A started two-core runtime (kept alive without actors) and its ports. */
static inline void st_env_init(st_env_t *env) {
  memset(env, 0, sizeof *env);
  env->rt = test_rt_new(2, AX_RT_KEEP_ALIVE);
  test_rt_start(env->rt);
  ck_assert_int_eq(ax_port_new(env->rt, &env->ev), 0);
  ck_assert_int_eq(ax_port_new(env->rt, &env->rc), 0);
}

/* Stops the runtime, frees ports and runtime, all asserted. */
static inline void st_env_done(st_env_t *env) {
  ax_rt_stop(env->rt);
  ck_assert_int_eq(ax_rt_join(env->rt), 0);
  ck_assert_int_eq(ax_port_close(env->ev), 0);
  ck_assert_int_eq(ax_port_close(env->rc), 0);
  ck_assert_int_eq(ax_rt_free(env->rt), 0);
  free(env->last);
  env->last = NULL;
}

/* Prepares an actor's state (everything zero, ports set). */
static inline void st_actor_init(st_env_t *env, st_actor_t *a, int tag) {
  memset(a, 0, sizeof *a);
  a->evport = ax_port_ref(env->ev);
  a->rcport = ax_port_ref(env->rc);
  a->tag = tag;
}

static inline ax_ref_t st_spawn(st_env_t *env, st_actor_t *a, unsigned core) {
  return test_spawn(env->rt, st_behaviour, a, AX_PLACE_CORE, core, NULL, st_terminate);
}

/* A command with the given fields; free it with free(). */
static inline st_cmd_t *st_cmd_new(int slot, const void *data, size_t len) {
  st_cmd_t *c = calloc(1, sizeof *c + len);
  ck_assert_ptr_nonnull(c);
  c->slot = slot;
  c->rfd = c->wfd = -1;
  c->len = len;
  if (len > 0)
    memcpy(c->data, data, len);
  return c;
}

/* Sends a command and waits (10 s at most) for its reply; returns rc and
 * stores the value when value is not NULL. */
static inline int st_call_cmd(st_env_t *env, ax_ref_t to, uint32_t type, st_cmd_t *c,
                              int64_t *value) {
  test_send(to, type, c, sizeof *c + c->len);
  ax_msg_t m;
  int rc = ax_port_recv(env->rc, ax_now() + 10 * AX_NSEC_PER_SEC, &m);
  ck_assert_msg(rc == 0, "no reply to command %u: %s", (unsigned)type, ax_strerror(rc));
  ck_assert_uint_eq(m.type, type);
  st_reply_t r;
  memcpy(&r, m.data, sizeof r);
  if (value != NULL)
    *value = r.value;
  return r.rc;
}

/* A command that only names a slot (and n). */
static inline int st_call(st_env_t *env, ax_ref_t to, uint32_t type, int slot, int n) {
  st_cmd_t *c = st_cmd_new(slot, NULL, 0);
  c->n = n;
  int rc = st_call_cmd(env, to, type, c, NULL);
  free(c);
  return rc;
}

static inline int st_pipe_open(st_env_t *env, ax_ref_t to, int slot, int rfd, int wfd,
                               const ax_stream_opts_t *o) {
  st_cmd_t *c = st_cmd_new(slot, NULL, 0);
  c->rfd = rfd;
  c->wfd = wfd;
  if (o != NULL) {
    c->has_opts = 1;
    c->opts = *o;
  }
  int rc = st_call_cmd(env, to, CMD_PIPE_OPEN, c, NULL);
  free(c);
  return rc;
}

static inline int st_write(st_env_t *env, ax_ref_t to, int slot, const void *data, size_t len) {
  st_cmd_t *c = st_cmd_new(slot, data, len);
  int rc = st_call_cmd(env, to, CMD_WRITE, c, NULL);
  free(c);
  return rc;
}

static inline int st_give(st_env_t *env, ax_ref_t to, int slot, ax_ref_t new_owner) {
  st_cmd_t *c = st_cmd_new(slot, NULL, 0);
  c->ref = new_owner;
  int rc = st_call_cmd(env, to, CMD_GIVE, c, NULL);
  free(c);
  return rc;
}

/* Starts the actor's pattern writer on slot: total bytes in chunk-sized
 * writes, then `then` (PW_*). */
static inline void st_write_pattern(st_env_t *env, ax_ref_t to, int slot, uint64_t total,
                                    uint64_t chunk, int then) {
  st_cmd_t *c = st_cmd_new(slot, NULL, 0);
  c->total = total;
  c->chunk = chunk;
  c->then = then;
  ck_assert_int_eq(st_call_cmd(env, to, CMD_WRITE_PATTERN, c, NULL), 0);
  free(c);
}

/* Takes the next report (waiting up to timeout_ms); NULL on timeout.  The
 * report stays valid until the next call. */
static inline st_report_t *st_next_wait(st_env_t *env, int timeout_ms) {
  free(env->last);
  env->last = NULL;
  ax_msg_t m;
  int rc = ax_port_recv(env->ev, ax_now() + (int64_t)timeout_ms * AX_NSEC_PER_MSEC, &m);
  if (rc == -ETIMEDOUT)
    return NULL;
  ck_assert_msg(rc == 0, "ax_port_recv: %s", ax_strerror(rc));
  env->last = malloc(m.size);
  ck_assert_ptr_nonnull(env->last);
  memcpy(env->last, m.data, m.size);
  return env->last;
}

/* The next report, which must come within 10 s. */
static inline st_report_t *st_next(st_env_t *env) {
  st_report_t *r = st_next_wait(env, 10000);
  ck_assert_msg(r != NULL, "no report within 10 s");
  return r;
}

/* The next report, which must be of the given type. */
static inline st_report_t *st_expect(st_env_t *env, uint32_t type) {
  st_report_t *r = st_next(env);
  ck_assert_msg(r->type == type, "expected report %u, got %u (err %d %s)", (unsigned)type,
                (unsigned)r->type, r->err, ax_strerror(r->err));
  return r;
}

/* Asserts that no report arrives within ms milliseconds (for "nothing
 * happens" checks only: it cannot prove a negative, only catch it). */
static inline void st_expect_none(st_env_t *env, int ms) {
  st_report_t *r = st_next_wait(env, ms);
  ck_assert_msg(r == NULL, "unexpected report %u (slot %d, err %d)", r ? (unsigned)r->type : 0,
                r ? r->slot : 0, r ? r->err : 0);
}

/* Collects DATA reports until `len` bytes arrived, into buf; other reports
 * fail the test. */
static inline void st_expect_bytes(st_env_t *env, const void *want, size_t len) {
  unsigned char *got = malloc(len + 1);
  ck_assert_ptr_nonnull(got);
  size_t have = 0;
  while (have < len) {
    st_report_t *r = st_expect(env, AX_MSG_DATA);
    ck_assert_uint_le(have + r->len, len);
    memcpy(got + have, r->bytes, r->len);
    have += r->len;
  }
  ck_assert_msg(memcmp(got, want, len) == 0, "received bytes differ");
  free(got);
}

/* A connected AF_UNIX stream socketpair (close-on-exec). */
static inline void st_socketpair(int sv[2]) {
  ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
}

/* Writes everything (blocking fd, or polls a non-blocking one). */
static inline void st_write_all(int fd, const void *data, size_t len) {
  const unsigned char *p = data;
  while (len > 0) {
    ssize_t n = write(fd, p, len);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      struct pollfd pfd = {fd, POLLOUT, 0};
      (void)poll(&pfd, 1, 100);
      continue;
    }
    ck_assert_msg(n > 0, "write: %s", strerror(errno));
    p += n;
    len -= (size_t)n;
  }
}

/* Reads from fd until EOF or `max` bytes, each read waiting at most
 * timeout_ms; checks the bytes against st_pattern from offset 0.  Returns
 * the byte count; *eof says whether EOF was seen. */
static inline uint64_t st_read_pattern(int fd, uint64_t max, int timeout_ms, bool *eof,
                                       int delay_every_ms) {
  static unsigned char buf[64 * 1024];
  uint64_t off = 0;
  *eof = false;
  while (off < max) {
    struct pollfd pfd = {fd, POLLIN, 0};
    int pr = poll(&pfd, 1, timeout_ms);
    ck_assert_msg(pr == 1, "no bytes within %d ms after %llu", timeout_ms,
                  (unsigned long long)off);
    size_t want = sizeof buf;
    if (max - off < want)
      want = (size_t)(max - off);
    ssize_t n = read(fd, buf, want);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
      continue;
    ck_assert_msg(n >= 0, "read: %s", strerror(errno));
    if (n == 0) {
      *eof = true;
      break;
    }
    ck_assert_msg(st_check_pattern(buf, off, (size_t)n) == 0, "pattern broken near %llu",
                  (unsigned long long)off);
    off += (uint64_t)n;
    if (delay_every_ms > 0)
      test_sleep_ms(delay_every_ms);
  }
  return off;
}

/* Reads fd (discarding the bytes) until EOF or an error within
 * timeout_ms: returns 1 for EOF, -errno for an error, 0 on timeout. */
static inline int st_wait_eof(int fd, int timeout_ms) {
  int64_t end = ax_now() + (int64_t)timeout_ms * AX_NSEC_PER_MSEC;
  char buf[4096];
  while (ax_now() < end) {
    struct pollfd pfd = {fd, POLLIN, 0};
    if (poll(&pfd, 1, 10) != 1)
      continue;
    ssize_t n = read(fd, buf, sizeof buf);
    if (n == 0)
      return 1;
    if (n < 0 && errno != EAGAIN && errno != EINTR)
      return -errno;
  }
  return 0;
}

/* Bytes waiting to be read on fd (FIONREAD). */
static inline int st_inq(int fd) {
  int n = -1;
  ck_assert_int_eq(ioctl(fd, FIONREAD, &n), 0);
  return n;
}

#endif /* AXON_STREAM_TEST_H */
