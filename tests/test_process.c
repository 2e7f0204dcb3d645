/* Check suite for child processes: exit codes and signals, stdio pipes, cwd and env, owner stop, fiber waits, reaping only our own. */
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include "axon_test.h"

/*
 * A scripted handler actor (pa_actor_t) owns the processes: the test
 * thread sends it commands (PCMD_*) and gets each call's result on the
 * reply port; every AX_MSG_EXIT, AX_MSG_DATA and AX_MSG_CLOSED it receives
 * is forwarded, in order, as a pa_event_t to the event port.  Processes
 * live in numbered slots so that commands can name them.  The fiber tests
 * run straight-line code in a fiber and record what they saw for the test
 * thread to check.
 */

enum { PA_SLOTS = 8, PA_ARGS = 8, PA_BYTES = 4096 };

enum {
  PCMD_SPAWN = AX_MSG_USER + 200, /* spec -> value: slot */
  PCMD_KILL,         /* slot, i1: signo */
  PCMD_CLOSE,        /* slot */
  PCMD_WRITE,        /* slot, data: to the child's stdin */
  PCMD_CLOSE_STDIN,  /* slot */
  PCMD_PID,          /* slot -> value */
  PCMD_STOP,         /* reply, then stop */
  PCMD_WAIT_EPERM,   /* slot: ax_process_wait from a handler actor */
  PCMD_CLOSE_QUEUED, /* spec (/bin/true): spawn, let it end, close with its EXIT queued */
  PCMD_BAD,          /* the -EINVAL cases, each checked here; value: cases that failed */
  PCMD_FORK,         /* fork a child here, not through axon, that exits with slot after i1 ms */
};

typedef struct pa_spec {
  int argc;
  char argv[PA_ARGS][128];
  int envc; /* -1: inherit */
  char env[4][128];
  char cwd[256];
  char file[128];
  int in, out, err;
  int kill_signal;
  bool lines; /* AX_FRAME_DELIM on the pipes */
} pa_spec_t;

typedef struct pa_cmd {
  uint32_t op;
  int slot, i1;
  pa_spec_t spec;
  size_t len;
  char data[256];
} pa_cmd_t;

typedef struct pa_reply {
  uint32_t op;
  int rc;
  int64_t value;
} pa_reply_t;

typedef struct pa_event {
  uint32_t type; /* AX_MSG_EXIT, AX_MSG_DATA, AX_MSG_CLOSED */
  int slot, fd;  /* fd: the child's fd of a stream message */
  int pid, code, signo, err;
  size_t len;
  char bytes[PA_BYTES];
} pa_event_t;

typedef struct pa_actor {
  ax_ref_t evport, rcport;
  /* owner core only */
  ax_process_t *proc[PA_SLOTS];
  ax_stream_t *st[PA_SLOTS][3]; /* cleared when the stream ends */
  /* read by the test thread */
  atomic_int violations;
  atomic_int terminated;
} pa_actor_t;

typedef struct pa_env {
  ax_rt_t *rt;
  ax_port_t *ev, *rc;
} pa_env_t;

static void pa_violation(pa_actor_t *a, const char *what) {
  fprintf(stderr, "test_process: violation: %s\n", what);
  atomic_fetch_add(&a->violations, 1);
}

/* argv and options from a spec; argv points into spec. */
static void pa_opts(const pa_spec_t *sp, const char *argv[PA_ARGS + 1], char *env[5],
                    ax_process_opts_t *o) {
  memset(o, 0, sizeof *o);
  for (int i = 0; i < sp->argc; i++)
    argv[i] = sp->argv[i];
  argv[sp->argc] = NULL;
  if (sp->envc >= 0) {
    for (int i = 0; i < sp->envc; i++)
      env[i] = (char *)(uintptr_t)sp->env[i];
    env[sp->envc] = NULL;
    o->env = env;
  }
  o->cwd = sp->cwd[0] != '\0' ? sp->cwd : NULL;
  o->file = sp->file[0] != '\0' ? sp->file : NULL;
  o->in = (ax_stdio_t)sp->in;
  o->out = (ax_stdio_t)sp->out;
  o->err = (ax_stdio_t)sp->err;
  o->kill_signal = sp->kill_signal;
  if (sp->lines)
    o->stream.frame = AX_FRAME_DELIM;
  o->stream.read_max = PA_BYTES; /* what a pa_event_t holds */
}

static int pa_free_slot(pa_actor_t *a) {
  for (int i = 0; i < PA_SLOTS; i++)
    if (a->proc[i] == NULL)
      return i;
  return -1;
}

static int pa_spawn(ax_actor_t *self, pa_actor_t *a, const pa_spec_t *sp, int *slot) {
  const char *argv[PA_ARGS + 1];
  char *env[5];
  ax_process_opts_t o;
  pa_opts(sp, argv, env, &o);
  *slot = pa_free_slot(a);
  if (*slot < 0)
    return -ENOSPC;
  ax_process_t *p = NULL;
  int rc = ax_process_spawn(self, argv, &o, &p);
  if (rc < 0) {
    if (p != NULL)
      pa_violation(a, "a failed spawn stored a handle");
    return rc;
  }
  a->proc[*slot] = p;
  for (int fd = 0; fd < 3; fd++) {
    a->st[*slot][fd] = ax_process_stream(p, fd);
    int mode = fd == 0 ? sp->in : fd == 1 ? sp->out : sp->err;
    if ((a->st[*slot][fd] != NULL) != (mode == AX_STDIO_PIPE))
      pa_violation(a, "a stream where there is no pipe, or none where there is");
  }
  if (ax_process_stream(p, 3) != NULL || ax_process_stream(p, -1) != NULL)
    pa_violation(a, "a stream for fd 3 or -1");
  return 0;
}

/* The -EINVAL cases; returns how many did not give -EINVAL. */
static int pa_bad(ax_actor_t *self) {
  int bad = 0;
  ax_process_t *p = NULL;
  const char *ok[] = {"/bin/true", NULL};
  const char *nul[] = {NULL};
  const char *empty[] = {"", NULL};
  bad += ax_process_spawn(self, NULL, NULL, &p) != -EINVAL;
  bad += ax_process_spawn(self, ok, NULL, NULL) != -EINVAL;
  bad += ax_process_spawn(self, nul, NULL, &p) != -EINVAL;
  bad += ax_process_spawn(self, empty, NULL, &p) != -EINVAL;
  ax_process_opts_t o = {.out = (ax_stdio_t)99};
  bad += ax_process_spawn(self, ok, &o, &p) != -EINVAL;
  o = (ax_process_opts_t){.in = (ax_stdio_t)-1};
  bad += ax_process_spawn(self, ok, &o, &p) != -EINVAL;
  o = (ax_process_opts_t){.kill_signal = -1};
  bad += ax_process_spawn(self, ok, &o, &p) != -EINVAL;
  o = (ax_process_opts_t){.kill_signal = 1000};
  bad += ax_process_spawn(self, ok, &o, &p) != -EINVAL;
  o = (ax_process_opts_t){.file = ""};
  bad += ax_process_spawn(self, ok, &o, &p) != -EINVAL;
  o = (ax_process_opts_t){.out = AX_STDIO_PIPE, .stream.frame = (ax_frame_t)99};
  bad += ax_process_spawn(self, ok, &o, &p) != -EINVAL;
  bad += p != NULL;
  bad += ax_process_kill(NULL, SIGTERM) != -EINVAL;
  bad += ax_process_close(NULL) != -EINVAL;
  bad += ax_process_pid(NULL) != -EINVAL;
  bad += ax_process_stream(NULL, 1) != NULL;
  ax_process_exit_t ex;
  bad += ax_process_wait(NULL, AX_FOREVER, &ex) != -EINVAL;
  return bad;
}

/* Runs one command; *value gets its value. */
static int pa_run(ax_actor_t *self, pa_actor_t *a, const pa_cmd_t *c, int64_t *value) {
  ax_process_t *p = c->slot >= 0 && c->slot < PA_SLOTS ? a->proc[c->slot] : NULL;
  int slot, rc;
  switch (c->op) {
  case PCMD_SPAWN:
    rc = pa_spawn(self, a, &c->spec, &slot);
    *value = slot;
    return rc;
  case PCMD_KILL:
    return ax_process_kill(p, c->i1);
  case PCMD_CLOSE:
    rc = ax_process_close(p);
    a->proc[c->slot] = NULL;
    return rc;
  case PCMD_WRITE:
    return ax_stream_write(a->st[c->slot][0], c->data, c->len);
  case PCMD_CLOSE_STDIN:
    rc = ax_stream_close(a->st[c->slot][0]);
    a->st[c->slot][0] = NULL;
    return rc;
  case PCMD_PID:
    *value = ax_process_pid(p);
    return 0;
  case PCMD_WAIT_EPERM: {
    ax_process_exit_t ex;
    return ax_process_wait(p, 0, &ex);
  }
  case PCMD_CLOSE_QUEUED: {
    rc = pa_spawn(self, a, &c->spec, &slot);
    if (rc < 0)
      return rc;
    p = a->proc[slot];
    /* The core is busy here, so the child ends unreaped: wait for it to be
     * a zombie, then queue the close ahead of the AX_MSG_EXIT that the
     * loop will post as soon as this turn ends. */
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)ax_process_pid(p));
    int64_t end = ax_now() + 5 * AX_NSEC_PER_SEC;
    for (;;) {
      FILE *f = fopen(path, "r");
      char state = '?';
      if (f != NULL) {
        if (fscanf(f, "%*d (%*[^)]) %c", &state) != 1)
          state = '?';
        fclose(f);
      }
      if (state == 'Z' || ax_now() > end)
        break;
    }
    pa_cmd_t close_cmd = {.op = PCMD_CLOSE, .slot = slot};
    *value = ax_process_pid(p);
    return ax_send(ax_self(self), PCMD_CLOSE, &close_cmd, sizeof close_cmd);
  }
  case PCMD_BAD:
    *value = pa_bad(self);
    return 0;
  case PCMD_FORK: {
    /* From the core's own thread: the kernel looks at the children of the
     * thread that waits first, so these are the ones a careless reaper
     * would take. */
    pid_t pid = fork();
    if (pid == 0) {
      usleep((useconds_t)c->i1 * 1000);
      _exit(c->slot);
    }
    *value = pid;
    return pid < 0 ? -errno : 0;
  }
  default:
    return 0;
  }
}

/* The slot and fd of stream s, or -1. */
static int pa_find_stream(pa_actor_t *a, const ax_stream_t *s, int *fd) {
  for (int i = 0; i < PA_SLOTS; i++)
    for (int k = 0; k < 3; k++)
      if (s != NULL && a->st[i][k] == s) {
        *fd = k;
        return i;
      }
  return -1;
}

static int pa_behaviour(ax_actor_t *self, const ax_msg_t *m) {
  pa_actor_t *a = ax_state(self);
  if (m->type == AX_MSG_EXIT || m->type == AX_MSG_DATA || m->type == AX_MSG_CLOSED) {
    pa_event_t ev;
    memset(&ev, 0, sizeof ev);
    ev.type = m->type;
    ev.slot = ev.fd = -1;
    if (m->from != AX_REF_NONE)
      pa_violation(a, "a source message from an actor");
    if (m->type == AX_MSG_EXIT) {
      const ax_process_exit_t *x = m->data;
      for (int i = 0; i < PA_SLOTS; i++)
        if (a->proc[i] != NULL && a->proc[i] == x->process)
          ev.slot = i;
      if (ev.slot < 0 || m->size != sizeof *x || x->pid != ax_process_pid(x->process))
        pa_violation(a, "an AX_MSG_EXIT of no open process of ours");
      ev.pid = x->pid;
      ev.code = x->code;
      ev.signo = x->signo;
    } else if (m->type == AX_MSG_DATA) {
      const ax_data_t *d = m->data;
      ev.slot = pa_find_stream(a, d->stream, &ev.fd);
      ev.len = d->len < PA_BYTES ? d->len : PA_BYTES;
      memcpy(ev.bytes, d->bytes, ev.len);
    } else {
      const ax_stream_ev_t *s = m->data;
      ev.slot = pa_find_stream(a, s->stream, &ev.fd);
      ev.err = s->err;
      if (ev.slot >= 0)
        a->st[ev.slot][ev.fd] = NULL; /* freed once this returns */
    }
    if (ev.slot < 0)
      pa_violation(a, "a message of an unknown source");
    if (ax_send(a->evport, m->type, &ev, sizeof ev) != 0)
      pa_violation(a, "forwarding an event");
    return 0;
  }
  if (m->type < PCMD_SPAWN || m->size < sizeof(pa_cmd_t)) {
    pa_violation(a, "an unexpected message");
    return 0;
  }
  const pa_cmd_t *c = m->data;
  pa_reply_t r = {c->op, 0, 0};
  r.rc = pa_run(self, a, c, &r.value);
  if (c->op == PCMD_CLOSE && m->from == ax_self(self))
    return 0; /* PCMD_CLOSE_QUEUED's own: already answered */
  if (ax_send(a->rcport, c->op, &r, sizeof r) != 0)
    pa_violation(a, "replying");
  return c->op == PCMD_STOP ? AX_STOP : 0;
}

static void pa_terminate(ax_actor_t *self, int reason) {
  (void)reason;
  atomic_fetch_add(&((pa_actor_t *)ax_state(self))->terminated, 1);
}

static void pa_env_new(pa_env_t *env, unsigned cores) {
  env->rt = test_rt_new(cores, AX_RT_KEEP_ALIVE);
  ck_assert_int_eq(ax_port_new(env->rt, &env->ev), 0);
  ck_assert_int_eq(ax_port_new(env->rt, &env->rc), 0);
  test_rt_start(env->rt);
}

static void pa_env_free(pa_env_t *env) {
  ax_rt_stop(env->rt);
  ck_assert_int_eq(ax_rt_join(env->rt), 0);
  ck_assert_int_eq(ax_port_close(env->ev), 0);
  ck_assert_int_eq(ax_port_close(env->rc), 0);
  ck_assert_int_eq(ax_rt_free(env->rt), 0);
}

static ax_ref_t pa_spawn_actor(pa_env_t *env, pa_actor_t *a, unsigned core) {
  memset(a, 0, sizeof *a);
  a->evport = ax_port_ref(env->ev);
  a->rcport = ax_port_ref(env->rc);
  ax_spawn_opts_t o;
  memset(&o, 0, sizeof o);
  o.placement = AX_PLACE_CORE;
  o.core = core;
  o.terminate = pa_terminate;
  ax_ref_t ref = AX_REF_NONE;
  int rc = ax_spawn(env->rt, pa_behaviour, a, &o, &ref);
  ck_assert_msg(rc == 0, "ax_spawn: %s", ax_strerror(rc));
  return ref;
}

static int pa_cmd_full(pa_env_t *env, ax_ref_t to, const pa_cmd_t *c, int64_t *value) {
  int rc = ax_send(to, c->op, c, sizeof *c);
  ck_assert_msg(rc == 0, "sending command %u: %s", c->op, ax_strerror(rc));
  ax_msg_t m;
  rc = ax_port_recv(env->rc, ax_now() + 20 * AX_NSEC_PER_SEC, &m);
  ck_assert_msg(rc == 0, "reply to command %u: %s", c->op, ax_strerror(rc));
  const pa_reply_t *r = m.data;
  ck_assert_uint_eq(r->op, c->op);
  if (value != NULL)
    *value = r->value;
  return r->rc;
}

static int pa_cmd(pa_env_t *env, ax_ref_t to, uint32_t op, int slot, int i1) {
  pa_cmd_t c;
  memset(&c, 0, sizeof c);
  c.op = op;
  c.slot = slot;
  c.i1 = i1;
  return pa_cmd_full(env, to, &c, NULL);
}

/* A spec running argv (NULL-terminated), with the other fields zero
 * (defaults) and the environment inherited. */
static pa_spec_t pa_argv(const char *arg0, ...) {
  pa_spec_t sp;
  memset(&sp, 0, sizeof sp);
  sp.envc = -1;
  va_list ap;
  va_start(ap, arg0);
  for (const char *s = arg0; s != NULL && sp.argc < PA_ARGS; s = va_arg(ap, const char *))
    snprintf(sp.argv[sp.argc++], sizeof sp.argv[0], "%s", s);
  va_end(ap);
  return sp;
}

/* Spawns sp; returns the call's result and the slot in *slot. */
static int pa_start(pa_env_t *env, ax_ref_t to, const pa_spec_t *sp, int *slot) {
  pa_cmd_t c;
  memset(&c, 0, sizeof c);
  c.op = PCMD_SPAWN;
  c.spec = *sp;
  int64_t v = -1;
  int rc = pa_cmd_full(env, to, &c, &v);
  *slot = (int)v;
  return rc;
}

static const pa_event_t *pa_event(pa_env_t *env, int timeout_ms) {
  ax_msg_t m;
  int rc = ax_port_recv(env->ev, ax_now() + (int64_t)timeout_ms * AX_NSEC_PER_MSEC, &m);
  ck_assert_msg(rc == 0, "waiting %d ms for an event: %s", timeout_ms, ax_strerror(rc));
  return m.data;
}

static bool pa_no_event(pa_env_t *env, int ms) {
  ax_msg_t m;
  return ax_port_recv(env->ev, ax_now() + (int64_t)ms * AX_NSEC_PER_MSEC, &m) == -ETIMEDOUT;
}

/* What one process produced: its stdout and stderr bytes (each delimited
 * frame followed by '|' when the spec asked for lines), how they ended,
 * and its exit. */
typedef struct pa_result {
  char out[PA_BYTES], err[PA_BYTES];
  size_t out_len, err_len;
  int out_end, err_end; /* 1 + the CLOSED's err: 1 for end of file, 0 while open */
  bool exited;
  int pid, code, signo;
} pa_result_t;

/* Collects slot's events until it exited and each pipe in `pipes` (bit fd)
 * ended. */
static void pa_collect(pa_env_t *env, int slot, unsigned pipes, bool lines, pa_result_t *r) {
  memset(r, 0, sizeof *r);
  while (!r->exited || ((pipes & 2) && r->out_end == 0) || ((pipes & 4) && r->err_end == 0)) {
    const pa_event_t *ev = pa_event(env, 10000);
    ck_assert_int_eq(ev->slot, slot);
    if (ev->type == AX_MSG_EXIT) {
      ck_assert(!r->exited);
      r->exited = true;
      r->pid = ev->pid;
      r->code = ev->code;
      r->signo = ev->signo;
    } else if (ev->type == AX_MSG_DATA || ev->type == AX_MSG_CLOSED) {
      ck_assert(ev->fd == 1 || ev->fd == 2);
      char *buf = ev->fd == 1 ? r->out : r->err;
      size_t *len = ev->fd == 1 ? &r->out_len : &r->err_len;
      if (ev->type == AX_MSG_CLOSED) {
        *(ev->fd == 1 ? &r->out_end : &r->err_end) = 1 + ev->err;
        continue;
      }
      ck_assert_uint_lt(*len + ev->len + 1, PA_BYTES);
      memcpy(buf + *len, ev->bytes, ev->len);
      *len += ev->len;
      if (lines)
        buf[(*len)++] = '|';
    }
  }
}

/* /proc/pid/stat's state letter, or 0 when there is no such process. */
static char proc_state(pid_t pid) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  FILE *f = fopen(path, "r");
  if (f == NULL)
    return 0;
  char state = '?';
  if (fscanf(f, "%*d (%*[^)]) %c", &state) != 1)
    state = '?';
  fclose(f);
  return state;
}

/* Nothing is left for this process to reap: no child at all, zombie or
 * running.  (waitpid would reap a zombie, so this runs only where none
 * may be left.) */
static void assert_no_children(void) {
  errno = 0;
  int st;
  pid_t w = waitpid(-1, &st, WNOHANG);
  ck_assert_msg(w == -1 && errno == ECHILD, "waitpid(-1) returned %d (errno %d): a child is left",
                (int)w, errno);
}

/* The number of fds this process has open. */
static int fd_count(void) {
  int n = 0;
  for (int fd = 0; fd < 4096; fd++)
    n += test_fd_open(fd);
  return n;
}

/* ------------------------------------------------------------------------ */
/* Exit codes, signals, bad input                                            */

START_TEST(test_process_errors) {
  const char *argv[] = {"/bin/true", NULL};
  ax_process_t *p = NULL;
  ck_assert_int_eq(ax_process_spawn(NULL, argv, NULL, &p), -EINVAL);
  ck_assert_ptr_null(p);

  pa_env_t env;
  pa_env_new(&env, 1);
  pa_actor_t a;
  ax_ref_t ref = pa_spawn_actor(&env, &a, 0);
  int before = fd_count();
  pa_cmd_t c;
  memset(&c, 0, sizeof c);
  c.op = PCMD_BAD;
  int64_t failed = -1;
  ck_assert_int_eq(pa_cmd_full(&env, ref, &c, &failed), 0);
  ck_assert_int_eq(failed, 0);

  /* A program that cannot run is the spawn's error, not an exit 127. */
  int slot;
  pa_spec_t sp = pa_argv("/nonexistent/axon-no-such-program", NULL);
  sp.out = AX_STDIO_PIPE;
  sp.in = AX_STDIO_PIPE;
  ck_assert_int_eq(pa_start(&env, ref, &sp, &slot), -ENOENT);
  sp = pa_argv("axon-no-such-program-on-path", NULL);
  ck_assert_int_eq(pa_start(&env, ref, &sp, &slot), -ENOENT);
  sp = pa_argv("/etc/passwd", NULL); /* not executable, even for root */
  ck_assert_int_eq(pa_start(&env, ref, &sp, &slot), -EACCES);
  sp = pa_argv("/bin/true", NULL);
  snprintf(sp.cwd, sizeof sp.cwd, "/nonexistent/axon-dir");
  ck_assert_int_eq(pa_start(&env, ref, &sp, &slot), -ENOENT);
  sp = pa_argv("/bin/true", NULL);
  snprintf(sp.file, sizeof sp.file, "/nonexistent/axon-file");
  ck_assert_int_eq(pa_start(&env, ref, &sp, &slot), -ENOENT);
  /* Nothing ran, nothing stays open, no message follows. */
  ck_assert(pa_no_event(&env, 100));
  assert_no_children();
  ck_assert_int_eq(fd_count(), before);

  /* ax_process_wait outside the owning fiber. */
  sp = pa_argv("/bin/sleep", "10", NULL);
  sp.kill_signal = SIGKILL;
  ck_assert_int_eq(pa_start(&env, ref, &sp, &slot), 0);
  ck_assert_int_eq(pa_cmd(&env, ref, PCMD_WAIT_EPERM, slot, 0), -EPERM);
  ax_process_exit_t ex;
  ck_assert_int_eq(ax_process_wait((ax_process_t *)(uintptr_t)&ex, 0, &ex), -EPERM);
  ck_assert_int_eq(pa_cmd(&env, ref, PCMD_KILL, slot, -1), -EINVAL);
  ck_assert_int_eq(pa_cmd(&env, ref, PCMD_KILL, slot, 1000), -EINVAL);
  ck_assert_int_eq(pa_cmd(&env, ref, PCMD_KILL, slot, 0), 0); /* it can be signalled */
  ck_assert_int_eq(pa_cmd(&env, ref, PCMD_CLOSE, slot, 0), 0);
  ck_assert(pa_no_event(&env, 50));
  ck_assert_int_eq(atomic_load(&a.violations), 0);
  pa_env_free(&env);
  assert_no_children();
}
END_TEST

START_TEST(test_process_exit_code) {
  pa_env_t env;
  pa_env_new(&env, 2);
  pa_actor_t a;
  ax_ref_t ref = pa_spawn_actor(&env, &a, 1);
  int codes[] = {0, 1, 7, 255};
  for (int i = 0; i < 4; i++) {
    char script[64];
    snprintf(script, sizeof script, "exit %d", codes[i]);
    pa_spec_t sp = pa_argv("sh", "-c", script, NULL);
    int slot;
    ck_assert_int_eq(pa_start(&env, ref, &sp, &slot), 0);
    int64_t pid;
    pa_cmd_t c = {.op = PCMD_PID, .slot = slot};
    ck_assert_int_eq(pa_cmd_full(&env, ref, &c, &pid), 0);
    ck_assert_int_gt(pid, 0);
    const pa_event_t *ev = pa_event(&env, 10000);
    ck_assert_uint_eq(ev->type, AX_MSG_EXIT);
    ck_assert_int_eq(ev->slot, slot);
    ck_assert_int_eq(ev->pid, (int)pid);
    ck_assert_int_eq(ev->code, codes[i]);
    ck_assert_int_eq(ev->signo, 0);
    /* Reaped: gone from /proc, and it cannot be signalled any more. */
    ck_assert_int_eq(proc_state((pid_t)pid), 0);
    ck_assert_int_eq(pa_cmd(&env, ref, PCMD_KILL, slot, SIGTERM), -ESRCH);
    ck_assert_int_eq(pa_cmd(&env, ref, PCMD_KILL, slot, 0), -ESRCH);
    ck_assert_int_eq(pa_cmd(&env, ref, PCMD_CLOSE, slot, 0), 0);
    ck_assert(pa_no_event(&env, 20)); /* one AX_MSG_EXIT only */
  }
  ck_assert_int_eq(atomic_load(&a.violations), 0);
  pa_env_free(&env);
  assert_no_children();
}
END_TEST

START_TEST(test_process_signal) {
  pa_env_t env;
  pa_env_new(&env, 1);
  pa_actor_t a;
  ax_ref_t ref = pa_spawn_actor(&env, &a, 0);
  /* Killed through the handle. */
  pa_spec_t sp = pa_argv("sleep", "100", NULL);
  int slot;
  ck_assert_int_eq(pa_start(&env, ref, &sp, &slot), 0);
  ck_assert(pa_no_event(&env, 50));
  ck_assert_int_eq(pa_cmd(&env, ref, PCMD_KILL, slot, SIGTERM), 0);
  const pa_event_t *ev = pa_event(&env, 10000);
  ck_assert_uint_eq(ev->type, AX_MSG_EXIT);
  ck_assert_int_eq(ev->code, -1);
  ck_assert_int_eq(ev->signo, SIGTERM);
  ck_assert_int_eq(pa_cmd(&env, ref, PCMD_KILL, slot, SIGTERM), -ESRCH);
  ck_assert_int_eq(pa_cmd(&env, ref, PCMD_CLOSE, slot, 0), 0);

  /* Killed by itself. */
  sp = pa_argv("sh", "-c", "kill -KILL $$", NULL);
  ck_assert_int_eq(pa_start(&env, ref, &sp, &slot), 0);
  ev = pa_event(&env, 10000);
  ck_assert_uint_eq(ev->type, AX_MSG_EXIT);
  ck_assert_int_eq(ev->code, -1);
  ck_assert_int_eq(ev->signo, SIGKILL);
  ck_assert_int_eq(pa_cmd(&env, ref, PCMD_CLOSE, slot, 0), 0);

  /* The runtime blocks signals in its threads and this program ignores
   * SIGPIPE: the child starts with nothing blocked and nothing ignored. */
  ck_assert(signal(SIGPIPE, SIG_IGN) != SIG_ERR);
  sp = pa_argv("grep", "-E", "^(SigBlk|SigIgn)", "/proc/self/status", NULL);
  sp.out = AX_STDIO_PIPE;
  ck_assert_int_eq(pa_start(&env, ref, &sp, &slot), 0);
  pa_result_t r;
  pa_collect(&env, slot, 2, false, &r);
  ck_assert_int_eq(r.code, 0);
  r.out[r.out_len] = '\0';
  unsigned long long blocked = ~0ull, ignored = ~0ull;
  ck_assert_int_eq(sscanf(r.out, "SigBlk: %llx SigIgn: %llx", &blocked, &ignored), 2);
  ck_assert_uint_eq(blocked, 0);
  /* glibc's posix_spawn leaves its own two internal signals (32 and 33,
   * below SIGRTMIN) ignored in every child; all others are at default. */
  ck_assert_uint_eq(ignored & ~(3ull << 31), 0);
  ck_assert_int_eq(pa_cmd(&env, ref, PCMD_CLOSE, slot, 0), 0);
  ck_assert_int_eq(atomic_load(&a.violations), 0);
  pa_env_free(&env);
  assert_no_children();
}
END_TEST

/* ------------------------------------------------------------------------ */
/* stdio                                                                     */

START_TEST(test_process_stdout_lines) {
  pa_env_t env;
  pa_env_new(&env, 2);
  pa_actor_t a;
  ax_ref_t ref = pa_spawn_actor(&env, &a, 1);
  pa_spec_t sp = pa_argv("sh", "-c", "echo one; echo two; echo three >&2; printf four", NULL);
  sp.out = sp.err = AX_STDIO_PIPE;
  sp.lines = true;
  int slot;
  ck_assert_int_eq(pa_start(&env, ref, &sp, &slot), 0);
  pa_result_t r;
  pa_collect(&env, slot, 6, true, &r);
  r.out[r.out_len] = r.err[r.err_len] = '\0';
  ck_assert_str_eq(r.out, "one|two|four|");
  ck_assert_str_eq(r.err, "three|");
  ck_assert_int_eq(r.out_end, 1); /* end of file: CLOSED{0} */
  ck_assert_int_eq(r.err_end, 1);
  ck_assert_int_eq(r.code, 0);
  ck_assert_int_eq(pa_cmd(&env, ref, PCMD_CLOSE, slot, 0), 0);

  /* More than a pipe holds, raw: every byte, in order. */
  sp = pa_argv("sh", "-c", "i=0; while [ $i -lt 2000 ]; do echo 0123456789abcdef; i=$((i+1)); done",
               NULL);
  sp.out = AX_STDIO_PIPE;
  ck_assert_int_eq(pa_start(&env, ref, &sp, &slot), 0);
  size_t total = 0;
  bool exited = false, ended = false;
  while (!exited || !ended) {
    const pa_event_t *ev = pa_event(&env, 10000);
    if (ev->type == AX_MSG_EXIT) {
      ck_assert_int_eq(ev->code, 0);
      exited = true;
    } else if (ev->type == AX_MSG_CLOSED) {
      ck_assert_int_eq(ev->err, 0);
      ended = true;
    } else {
      for (size_t i = 0; i < ev->len; i++)
        ck_assert_int_eq(ev->bytes[i], "0123456789abcdef\n"[(total + i) % 17]);
      total += ev->len;
    }
  }
  ck_assert_uint_eq(total, 2000 * 17);
  ck_assert_int_eq(pa_cmd(&env, ref, PCMD_CLOSE, slot, 0), 0);
  ck_assert_int_eq(atomic_load(&a.violations), 0);
  pa_env_free(&env);
  assert_no_children();
}
END_TEST

START_TEST(test_process_stdin_cat) {
  pa_env_t env;
  pa_env_new(&env, 1);
  pa_actor_t a;
  ax_ref_t ref = pa_spawn_actor(&env, &a, 0);
  pa_spec_t sp = pa_argv("cat", NULL);
  sp.in = sp.out = AX_STDIO_PIPE;
  int slot;
  ck_assert_int_eq(pa_start(&env, ref, &sp, &slot), 0);
  pa_cmd_t c = {.op = PCMD_WRITE, .slot = slot};
  c.len = (size_t)snprintf(c.data, sizeof c.data, "hello\nworld\n");
  ck_assert_int_eq(pa_cmd_full(&env, ref, &c, NULL), 0);
  c.len = (size_t)snprintf(c.data, sizeof c.data, "no newline");
  ck_assert_int_eq(pa_cmd_full(&env, ref, &c, NULL), 0);
  ck_assert_int_eq(pa_cmd(&env, ref, PCMD_CLOSE_STDIN, slot, 0), 0); /* cat sees EOF */
  pa_result_t r;
  memset(&r, 0, sizeof r);
  while (!r.exited || r.out_end == 0) {
    const pa_event_t *ev = pa_event(&env, 10000);
    if (ev->type == AX_MSG_EXIT) {
      r.exited = true;
      r.code = ev->code;
    } else if (ev->type == AX_MSG_CLOSED) {
      ck_assert_int_eq(ev->fd, 1);
      r.out_end = 1 + ev->err;
    } else {
      memcpy(r.out + r.out_len, ev->bytes, ev->len);
      r.out_len += ev->len;
    }
  }
  r.out[r.out_len] = '\0';
  ck_assert_str_eq(r.out, "hello\nworld\nno newline");
  ck_assert_int_eq(r.code, 0);
  ck_assert_int_eq(r.out_end, 1);
  ck_assert_int_eq(pa_cmd(&env, ref, PCMD_CLOSE, slot, 0), 0);
  ck_assert_int_eq(atomic_load(&a.violations), 0);
  pa_env_free(&env);
  assert_no_children();
}
END_TEST

START_TEST(test_process_cwd_env) {
  ck_assert_int_eq(setenv("AXON_TEST_INHERITED", "from the parent", 1), 0);
  pa_env_t env;
  pa_env_new(&env, 1);
  pa_actor_t a;
  ax_ref_t ref = pa_spawn_actor(&env, &a, 0);
  char dir[64];
  snprintf(dir, sizeof dir, "/tmp/axon-proc-XXXXXX");
  ck_assert_ptr_nonnull(mkdtemp(dir));
  char real[PATH_MAX];
  ck_assert_ptr_nonnull(realpath(dir, real));

  pa_spec_t sp = pa_argv("sh", "-c", "pwd; echo \"$AXON_T\"; echo \"${AXON_TEST_INHERITED-unset}\"",
                         NULL);
  sp.out = AX_STDIO_PIPE;
  sp.lines = true;
  snprintf(sp.cwd, sizeof sp.cwd, "%s", dir);
  sp.envc = 2;
  snprintf(sp.env[0], sizeof sp.env[0], "AXON_T=42");
  snprintf(sp.env[1], sizeof sp.env[1], "PATH=/usr/bin:/bin");
  int slot;
  ck_assert_int_eq(pa_start(&env, ref, &sp, &slot), 0);
  pa_result_t r;
  pa_collect(&env, slot, 2, true, &r);
  r.out[r.out_len] = '\0';
  char want[PATH_MAX + 32];
  snprintf(want, sizeof want, "%s|42|unset|", real);
  ck_assert_str_eq(r.out, want);
  ck_assert_int_eq(pa_cmd(&env, ref, PCMD_CLOSE, slot, 0), 0);

  /* No env: the program's own, cwd too. */
  char here[PATH_MAX];
  ck_assert_ptr_nonnull(getcwd(here, sizeof here));
  sp.envc = -1;
  sp.cwd[0] = '\0';
  ck_assert_int_eq(pa_start(&env, ref, &sp, &slot), 0);
  pa_collect(&env, slot, 2, true, &r);
  r.out[r.out_len] = '\0';
  snprintf(want, sizeof want, "%s||from the parent|", here);
  ck_assert_str_eq(r.out, want);
  ck_assert_int_eq(pa_cmd(&env, ref, PCMD_CLOSE, slot, 0), 0);
  ck_assert_int_eq(atomic_load(&a.violations), 0);
  pa_env_free(&env);
  ck_assert_int_eq(rmdir(dir), 0);
  assert_no_children();
}
END_TEST

START_TEST(test_process_inherit_null) {
  /* The child's inherited stdout is this program's fd 1: point it at a
   * file for the test. */
  char path[] = "/tmp/axon-proc-out-XXXXXX";
  int file = mkstemp(path);
  ck_assert_int_ge(file, 0);
  fflush(stdout);
  int saved = dup(1);
  ck_assert_int_ge(saved, 0);
  ck_assert_int_eq(dup2(file, 1), 1);
  /* An fd without close-on-exec: the child must not get it all the same. */
  int leaky = dup(file);
  ck_assert_int_ge(leaky, 3);

  pa_env_t env;
  pa_env_new(&env, 1);
  pa_actor_t a;
  ax_ref_t ref = pa_spawn_actor(&env, &a, 0);
  /* Defaults: stdin /dev/null, stdout and stderr inherited. */
  pa_spec_t sp = pa_argv("sh", "-c", "cat; echo inherited; readlink /proc/$$/fd/0", NULL);
  int slot;
  ck_assert_int_eq(pa_start(&env, ref, &sp, &slot), 0);
  const pa_event_t *ev = pa_event(&env, 10000);
  ck_assert_uint_eq(ev->type, AX_MSG_EXIT);
  ck_assert_int_eq(ev->code, 0);
  ck_assert_int_eq(pa_cmd(&env, ref, PCMD_CLOSE, slot, 0), 0);
  /* Explicit /dev/null for stdout: nothing reaches the file. */
  sp = pa_argv("echo", "hidden", NULL);
  sp.out = AX_STDIO_NULL;
  ck_assert_int_eq(pa_start(&env, ref, &sp, &slot), 0);
  ev = pa_event(&env, 10000);
  ck_assert_uint_eq(ev->type, AX_MSG_EXIT);
  ck_assert_int_eq(pa_cmd(&env, ref, PCMD_CLOSE, slot, 0), 0);
  /* The child has fds 0, 1 and 2 only: stderr /dev/null, stdout a pipe. */
  sp = pa_argv("sh", "-c", "readlink /proc/$$/fd/2; ls /proc/$$/fd", NULL);
  sp.in = AX_STDIO_INHERIT;
  sp.out = AX_STDIO_PIPE;
  sp.err = AX_STDIO_NULL;
  ck_assert_int_eq(pa_start(&env, ref, &sp, &slot), 0);
  pa_result_t r;
  pa_collect(&env, slot, 2, false, &r);
  r.out[r.out_len] = '\0';
  ck_assert_str_eq(r.out, "/dev/null\n0\n1\n2\n");
  ck_assert_int_eq(pa_cmd(&env, ref, PCMD_CLOSE, slot, 0), 0);
  ck_assert_int_eq(atomic_load(&a.violations), 0);
  pa_env_free(&env);

  ck_assert_int_eq(dup2(saved, 1), 1);
  close(saved);
  close(leaky);
  char buf[256] = "";
  ssize_t n = pread(file, buf, sizeof buf - 1, 0);
  ck_assert_int_ge(n, 0);
  buf[n] = '\0';
  ck_assert_str_eq(buf, "inherited\n/dev/null\n");
  close(file);
  unlink(path);
  assert_no_children();
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Closing, the owner stopping, the runtime stopping                         */

START_TEST(test_process_close_running) {
  pa_env_t env;
  pa_env_new(&env, 2);
  pa_actor_t a, b;
  ax_ref_t ref = pa_spawn_actor(&env, &a, 0);
  ax_ref_t rb = pa_spawn_actor(&env, &b, 1);
  int64_t pid;
  int slot;

  /* Closed while running: not killed, and reaped when it ends, with no
   * message. */
  pa_spec_t sp = pa_argv("sleep", "1", NULL);
  ck_assert_int_eq(pa_start(&env, ref, &sp, &slot), 0);
  pa_cmd_t c = {.op = PCMD_PID, .slot = slot};
  ck_assert_int_eq(pa_cmd_full(&env, ref, &c, &pid), 0);
  ck_assert_int_eq(pa_cmd(&env, ref, PCMD_CLOSE, slot, 0), 0);
  char st = proc_state((pid_t)pid);
  ck_assert_msg(st != 0 && st != 'Z', "closed child state '%c': it should still run", st);
  TEST_WAIT_UNTIL(proc_state((pid_t)pid) == 0, 10000);
  ck_assert(pa_no_event(&env, 50));

  /* Closed with its AX_MSG_EXIT queued: the message is dropped, the child
   * reaped. */
  memset(&c, 0, sizeof c);
  c.op = PCMD_CLOSE_QUEUED;
  c.spec = pa_argv("/bin/true", NULL);
  ck_assert_int_eq(pa_cmd_full(&env, ref, &c, &pid), 0);
  ck_assert_int_eq(pa_cmd(&env, ref, PCMD_PID, 0, 0), 0); /* a barrier behind the close */
  ck_assert_int_eq(proc_state((pid_t)pid), 0);
  ck_assert(pa_no_event(&env, 100));

  /* The owner stops: its pipes close (cat sees the end of its input and
   * exits), its children are reaped; with kill_signal they are signalled
   * too.  And a child that outlives its owner runs on until it ends. */
  sp = pa_argv("cat", NULL);
  sp.in = AX_STDIO_PIPE;
  ck_assert_int_eq(pa_start(&env, ref, &sp, &slot), 0);
  int64_t cat_pid, sleep_pid, killed_pid;
  c = (pa_cmd_t){.op = PCMD_PID, .slot = slot};
  ck_assert_int_eq(pa_cmd_full(&env, ref, &c, &cat_pid), 0);
  sp = pa_argv("sleep", "1.5", NULL);
  ck_assert_int_eq(pa_start(&env, ref, &sp, &slot), 0);
  c.slot = slot;
  ck_assert_int_eq(pa_cmd_full(&env, ref, &c, &sleep_pid), 0);
  sp = pa_argv("sleep", "100", NULL);
  sp.kill_signal = SIGKILL;
  ck_assert_int_eq(pa_start(&env, ref, &sp, &slot), 0);
  c.slot = slot;
  ck_assert_int_eq(pa_cmd_full(&env, ref, &c, &killed_pid), 0);
  ck_assert_int_eq(pa_cmd(&env, ref, PCMD_STOP, 0, 0), 0);
  TEST_WAIT_UNTIL(atomic_load(&a.terminated) == 1, 5000);
  st = proc_state((pid_t)sleep_pid);
  ck_assert_msg(st != 0 && st != 'Z', "sleep's state '%c' after its owner stopped", st);
  TEST_WAIT_UNTIL(proc_state((pid_t)cat_pid) == 0, 10000);
  TEST_WAIT_UNTIL(proc_state((pid_t)killed_pid) == 0, 10000);
  TEST_WAIT_UNTIL(proc_state((pid_t)sleep_pid) == 0, 10000);
  ck_assert(pa_no_event(&env, 50));

  /* The runtime stops while a closed child still runs: it is left running
   * and unwatched, ours to reap. */
  sp = pa_argv("sleep", "2", NULL);
  ck_assert_int_eq(pa_start(&env, rb, &sp, &slot), 0);
  c = (pa_cmd_t){.op = PCMD_PID, .slot = slot};
  ck_assert_int_eq(pa_cmd_full(&env, rb, &c, &pid), 0);
  ck_assert_int_eq(atomic_load(&a.violations) + atomic_load(&b.violations), 0);
  pa_env_free(&env);
  st = proc_state((pid_t)pid);
  ck_assert_msg(st != 0, "the child was reaped by a runtime that stopped");
  int status;
  ck_assert_int_eq(waitpid((pid_t)pid, &status, 0), (pid_t)pid);
  ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  assert_no_children();
}
END_TEST

/* The runtime stops with 32 children running whose handles have
 * kill_signal: ending the owners signals them, and the stop waits for
 * them to end, so none is left to reap, zombie or running (a newcomer's 30
 * killed at ax_rt_stop left 1 to 4 zombies: the stop reaped only what had
 * ended within the microseconds after the signal).  Three times over. */
START_TEST(test_process_stop_reaps_killed) {
  for (int round = 0; round < 3; round++) {
    pa_env_t env;
    pa_env_new(&env, 2);
    pa_actor_t a[4];
    for (int i = 0; i < 4; i++) {
      ax_ref_t ref = pa_spawn_actor(&env, &a[i], (unsigned)i % 2);
      for (int k = 0; k < PA_SLOTS; k++) {
        pa_spec_t sp = pa_argv("sleep", "100", NULL);
        sp.kill_signal = i == 3 ? SIGTERM : SIGKILL;
        int slot;
        ck_assert_int_eq(pa_start(&env, ref, &sp, &slot), 0);
      }
    }
    for (int i = 0; i < 4; i++)
      ck_assert_int_eq(atomic_load(&a[i].violations), 0);
    pa_env_free(&env);
    assert_no_children();
  }
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Many children; children axon did not start                                */

START_TEST(test_process_many) {
  /* Children of this program that axon did not start, one a zombie
   * already and one ending meanwhile: axon must never reap them. */
  pa_env_t env;
  pa_env_new(&env, 2);
  enum { ACTORS = 4, EACH = 50 };
  pa_actor_t a[ACTORS];
  ax_ref_t ref[ACTORS];
  for (int i = 0; i < ACTORS; i++)
    ref[i] = pa_spawn_actor(&env, &a[i], (unsigned)i % 2);
  pid_t foreign[3];
  for (int i = 0; i < 3; i++) {
    pa_cmd_t c = {.op = PCMD_FORK, .slot = 5 + i, .i1 = i == 0 ? 0 : 50};
    int64_t pid;
    ck_assert_int_eq(pa_cmd_full(&env, ref[i % 2], &c, &pid), 0);
    foreign[i] = (pid_t)pid;
  }
  TEST_WAIT_UNTIL(proc_state(foreign[0]) == 'Z', 5000);
  /* Each actor keeps PA_SLOTS children at once; 200 in all, ended by
   * /bin/true (0) and /bin/false (1) in turn. */
  int started = 0, exited = 0, fails = 0;
  int running[ACTORS] = {0};
  int64_t deadline = ax_now() + 60 * AX_NSEC_PER_SEC;
  while (exited < ACTORS * EACH && ax_now() < deadline) {
    for (int i = 0; i < ACTORS; i++)
      while (running[i] < PA_SLOTS && started < ACTORS * EACH &&
             (started % ACTORS == i || true)) {
        pa_spec_t sp = pa_argv(started % 2 == 0 ? "/bin/true" : "/bin/false", NULL);
        int slot;
        ck_assert_int_eq(pa_start(&env, ref[i], &sp, &slot), 0);
        running[i]++;
        started++;
      }
    ax_msg_t m;
    int rc = ax_port_recv(env.ev, ax_now() + 10 * AX_NSEC_PER_SEC, &m);
    ck_assert_int_eq(rc, 0);
    const pa_event_t *ev = m.data;
    ck_assert_uint_eq(ev->type, AX_MSG_EXIT);
    ck_assert(ev->code == 0 || ev->code == 1);
    fails += ev->code;
    exited++;
    /* Which actor: the one whose slot holds it; close it there. */
    bool found = false;
    for (int i = 0; i < ACTORS && !found; i++) {
      pa_cmd_t c = {.op = PCMD_PID, .slot = ev->slot};
      int64_t pid;
      if (running[i] == 0)
        continue;
      ck_assert_int_eq(pa_cmd_full(&env, ref[i], &c, &pid), 0);
      if (pid == ev->pid) {
        ck_assert_int_eq(pa_cmd(&env, ref[i], PCMD_CLOSE, ev->slot, 0), 0);
        running[i]--;
        found = true;
      }
    }
    ck_assert(found);
  }
  ck_assert_int_eq(exited, ACTORS * EACH);
  ck_assert_int_eq(fails, ACTORS * EACH / 2);
  for (int i = 0; i < ACTORS; i++)
    ck_assert_int_eq(atomic_load(&a[i].violations), 0);
  pa_env_free(&env);
  /* The foreign children are still there to be reaped, by us. */
  for (int i = 0; i < 3; i++) {
    int status;
    ck_assert_int_eq(waitpid(foreign[i], &status, 0), foreign[i]);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 5 + i);
  }
  assert_no_children();
}
END_TEST

/* The fd table full: -EMFILE, no child, nothing left open; room again:
 * it works. */
START_TEST(test_process_emfile) {
  pa_env_t env;
  pa_env_new(&env, 1);
  pa_actor_t a;
  ax_ref_t ref = pa_spawn_actor(&env, &a, 0);
  struct rlimit rl;
  ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
  int base = fd_count();
  struct rlimit low = {(rlim_t)base + 64, rl.rlim_max};
  ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
  int hog[128], n = 0;
  while (n < 128 && (hog[n] = dup(0)) >= 0)
    n++;
  ck_assert_int_lt(n, 128);
  int full = fd_count();
  for (int spare = 0; spare <= 4; spare++) {
    if (spare > 0)
      close(hog[--n]);
    pa_spec_t sp = pa_argv("/bin/true", NULL);
    sp.in = sp.out = sp.err = AX_STDIO_PIPE;
    int slot;
    ck_assert_int_eq(pa_start(&env, ref, &sp, &slot), -EMFILE);
    ck_assert_int_eq(fd_count(), full - spare);
    assert_no_children();
  }
  while (n > 0)
    close(hog[--n]);
  pa_spec_t sp = pa_argv("/bin/true", NULL);
  sp.in = sp.out = sp.err = AX_STDIO_PIPE;
  int slot;
  ck_assert_int_eq(pa_start(&env, ref, &sp, &slot), 0);
  pa_result_t r;
  pa_collect(&env, slot, 6, false, &r);
  ck_assert_int_eq(r.code, 0);
  ck_assert_int_eq(pa_cmd(&env, ref, PCMD_CLOSE_STDIN, slot, 0), 0);
  ck_assert_int_eq(pa_cmd(&env, ref, PCMD_CLOSE, slot, 0), 0);
  ck_assert_int_eq(atomic_load(&a.violations), 0);
  pa_env_free(&env);
  ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
  assert_no_children();
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Fibers                                                                    */

typedef struct fib {
  int scenario;
  atomic_int done;
  int step;            /* the last step reached */
  int rc[8];           /* results, per scenario */
  ax_process_exit_t ex[2];
  char line[3][64];
  int64_t waited_ns;
  int pid;
} fib_t;

enum {
  FIB_WAIT,
  FIB_LINES,
  FIB_RECEIVED,
  FIB_CLOSE_SAVED,
  FIB_CANCEL,
  FIB_GROUP,
  FIB_GROUP_LEFT,
  FIB_GROUP_EMPTY
};

static int fib_main(ax_actor_t *self, void *arg) {
  fib_t *t = arg;
  ax_process_t *p = NULL;
  ax_process_opts_t o;
  memset(&o, 0, sizeof o);
  const ax_msg_t *m;
  switch (t->scenario) {
  case FIB_WAIT: {
    const char *argv[] = {"sh", "-c", "sleep 1; exit 3", NULL};
    t->rc[0] = ax_process_spawn(self, argv, NULL, &p);
    if (t->rc[0] < 0)
      break;
    t->rc[1] = ax_process_wait(p, 0, &t->ex[0]);
    int64_t t0 = ax_now();
    t->rc[2] = ax_process_wait(p, ax_deadline(20 * AX_NSEC_PER_MSEC), &t->ex[0]);
    t->waited_ns = ax_now() - t0;
    t->rc[3] = ax_process_wait(p, ax_deadline(10 * AX_NSEC_PER_SEC), &t->ex[0]);
    t->rc[4] = ax_process_wait(p, 0, &t->ex[1]); /* again: the same status */
    t->rc[5] = ax_process_kill(p, SIGTERM);
    t->rc[6] = ax_process_close(p);
    break;
  }
  case FIB_LINES: {
    const char *argv[] = {"sh", "-c", "echo alpha; echo beta; echo gamma; exit 2", NULL};
    o.out = AX_STDIO_PIPE;
    t->rc[0] = ax_process_spawn(self, argv, &o, &p);
    if (t->rc[0] < 0)
      break;
    ax_stream_t *out = ax_process_stream(p, 1);
    for (int i = 0; i < 3; i++) {
      ssize_t n = ax_stream_read_until(out, t->line[i], sizeof t->line[i] - 1, '\n',
                                       ax_deadline(10 * AX_NSEC_PER_SEC));
      t->rc[1 + i] = (int)n;
      if (n > 0)
        t->line[i][n] = '\0';
    }
    char c;
    t->rc[4] = (int)ax_stream_read(out, &c, 1, ax_deadline(10 * AX_NSEC_PER_SEC)); /* end: 0 */
    t->rc[5] = ax_process_wait(p, ax_deadline(10 * AX_NSEC_PER_SEC), &t->ex[0]);
    t->rc[6] = ax_stream_close(out);
    t->rc[7] = ax_process_close(p);
    break;
  }
  case FIB_RECEIVED: {
    const char *argv[] = {"/bin/false", NULL};
    t->rc[0] = ax_process_spawn(self, argv, NULL, &p);
    if (t->rc[0] < 0)
      break;
    t->rc[1] = ax_recv_type(self, AX_MSG_EXIT, ax_deadline(10 * AX_NSEC_PER_SEC), &m);
    if (t->rc[1] == 0)
      t->ex[0] = *(const ax_process_exit_t *)m->data;
    /* The message is gone: the wait answers from the kept status. */
    t->rc[2] = ax_process_wait(p, AX_FOREVER, &t->ex[1]);
    t->rc[3] = ax_process_close(p);
    break;
  }
  case FIB_CLOSE_SAVED: {
    const char *argv[] = {"/bin/true", NULL};
    t->rc[0] = ax_process_spawn(self, argv, NULL, &p);
    if (t->rc[0] < 0)
      break;
    t->pid = ax_process_pid(p);
    /* Its AX_MSG_EXIT arrives while the fiber sleeps and is kept aside
     * (axon has reaped the child once it is gone from /proc); closing
     * drops it, so nothing of p is received afterwards. */
    int64_t end = ax_deadline(10 * AX_NSEC_PER_SEC);
    do
      t->rc[1] = ax_sleep(self, 5 * AX_NSEC_PER_MSEC);
    while (t->rc[1] == 0 && proc_state(t->pid) != 0 && ax_now() < end);
    t->rc[2] = ax_process_close(p);
    t->rc[3] = ax_recv(self, 0, &m);
    break;
  }
  case FIB_CANCEL: {
    const char *argv[] = {"sleep", "100", NULL};
    o.kill_signal = SIGKILL;
    t->rc[0] = ax_process_spawn(self, argv, &o, &p);
    if (t->rc[0] < 0)
      break;
    t->pid = ax_process_pid(p);
    atomic_store(&t->done, 2); /* running: the test stops us now */
    t->rc[1] = ax_process_wait(p, AX_FOREVER, &t->ex[0]);
    break; /* p is closed as the fiber returns: its child is killed */
  }
  case FIB_GROUP:
  case FIB_GROUP_LEFT: {
    /* A shell job: the shell starts a sleep, says its pid and waits (or,
     * FIB_GROUP_LEFT, exits at once and leaves the sleep behind). */
    const char *argv[] = {"sh", "-c",
                          t->scenario == FIB_GROUP ? "sleep 30 & echo $!; wait"
                                                   : "sleep 30 & echo $!; exit 0",
                          NULL};
    o.out = AX_STDIO_PIPE;
    o.kill_signal = SIGTERM;
    o.new_group = true;
    t->rc[0] = ax_process_spawn(self, argv, &o, &p);
    if (t->rc[0] < 0)
      break;
    ax_stream_t *out = ax_process_stream(p, 1);
    ssize_t n = ax_stream_read_until(out, t->line[0], sizeof t->line[0] - 1, '\n',
                                     ax_deadline(10 * AX_NSEC_PER_SEC));
    t->rc[1] = (int)n;
    if (n > 0)
      t->line[0][n] = '\0';
    t->pid = (int)strtol(t->line[0], NULL, 10);
    if (t->scenario == FIB_GROUP_LEFT) /* the shell has ended: its group lives on */
      t->rc[5] = ax_process_wait(p, ax_deadline(10 * AX_NSEC_PER_SEC), &t->ex[0]);
    t->rc[2] = ax_process_kill(p, 0); /* the group can be signalled */
    t->rc[3] = ax_stream_close(out);
    t->rc[4] = ax_process_close(p); /* SIGTERM to the whole group */
    break;
  }
  case FIB_GROUP_EMPTY: {
    /* A leader that leaves nothing behind: once it ended, its group has no
     * member but its zombie, which axon keeps (and the kernel signals). */
    const char *argv[] = {"sh", "-c", "exit 0", NULL};
    o.new_group = true;
    t->rc[0] = ax_process_spawn(self, argv, &o, &p);
    if (t->rc[0] < 0)
      break;
    t->pid = ax_process_pid(p);
    t->rc[1] = ax_process_wait(p, ax_deadline(10 * AX_NSEC_PER_SEC), &t->ex[0]);
    t->rc[2] = ax_process_kill(p, 0);
    t->rc[3] = ax_process_kill(p, SIGTERM);
    t->rc[4] = ax_process_close(p);
    break;
  }
  default:
    break;
  }
  atomic_store(&t->done, 1);
  return 0;
}

static void fib_run(fib_t *t, int scenario) {
  memset(t, 0, sizeof *t);
  t->scenario = scenario;
  ax_rt_t *rt = test_rt_new(1, 0);
  ax_ref_t ref;
  ck_assert_int_eq(ax_spawn_fiber(rt, fib_main, t, NULL, &ref), 0);
  test_rt_start(rt);
  if (scenario == FIB_CANCEL) {
    TEST_WAIT_UNTIL(atomic_load(&t->done) == 2, 10000);
    test_sleep_ms(50);
    ck_assert_int_eq(ax_stop(ref, 0), 0);
  }
  test_rt_join_free(rt); /* the runtime ends when its fiber does */
  ck_assert_int_eq(atomic_load(&t->done), 1);
}

START_TEST(test_process_fiber_wait) {
  fib_t t;
  fib_run(&t, FIB_WAIT);
  ck_assert_int_eq(t.rc[0], 0);
  ck_assert_int_eq(t.rc[1], -ETIMEDOUT); /* deadline 0: still running */
  ck_assert_int_eq(t.rc[2], -ETIMEDOUT);
  ck_assert_int_ge(t.waited_ns, 20 * AX_NSEC_PER_MSEC);
  ck_assert_int_eq(t.rc[3], 0);
  ck_assert_int_eq(t.ex[0].code, 3);
  ck_assert_int_eq(t.ex[0].signo, 0);
  ck_assert_int_eq(t.rc[4], 0);
  ck_assert_int_eq(t.ex[1].code, 3);
  ck_assert_int_eq(t.ex[1].pid, t.ex[0].pid);
  ck_assert_int_eq(t.rc[5], -ESRCH);
  ck_assert_int_eq(t.rc[6], 0);

  fib_run(&t, FIB_LINES);
  ck_assert_int_eq(t.rc[0], 0);
  ck_assert_int_eq(t.rc[1], 6);
  ck_assert_str_eq(t.line[0], "alpha\n");
  ck_assert_str_eq(t.line[1], "beta\n");
  ck_assert_str_eq(t.line[2], "gamma\n");
  ck_assert_int_eq(t.rc[4], 0);
  ck_assert_int_eq(t.rc[5], 0);
  ck_assert_int_eq(t.ex[0].code, 2);
  ck_assert_int_eq(t.rc[6], 0);
  ck_assert_int_eq(t.rc[7], 0);

  fib_run(&t, FIB_RECEIVED);
  ck_assert_int_eq(t.rc[0], 0);
  ck_assert_int_eq(t.rc[1], 0);
  ck_assert_int_eq(t.ex[0].code, 1);
  ck_assert_int_eq(t.rc[2], 0);
  ck_assert_int_eq(t.ex[1].code, 1);
  ck_assert_int_eq(t.ex[1].pid, t.ex[0].pid);
  ck_assert_int_eq(t.rc[3], 0);

  fib_run(&t, FIB_CLOSE_SAVED);
  ck_assert_int_eq(t.rc[0], 0);
  ck_assert_int_eq(t.rc[1], 0);
  ck_assert_int_eq(t.rc[2], 0);
  ck_assert_int_eq(t.rc[3], -ETIMEDOUT);
  ck_assert_int_eq(proc_state(t.pid), 0);
  assert_no_children();
}
END_TEST

START_TEST(test_process_fiber_cancel) {
  fib_t t;
  fib_run(&t, FIB_CANCEL);
  ck_assert_int_eq(t.rc[0], 0);
  ck_assert_int_eq(t.rc[1], -ECANCELED);
  /* Killed at close (kill_signal); the runtime stopped right after and
   * waited for it to end (op_abort): reaped. */
  assert_no_children();
}
END_TEST

/* ------------------------------------------------------------------------ */

/* With new_group, kill_signal reaches what the child started: a shell's
 * sleep ends with the shell when the handle is closed.  Without it, only
 * the shell got the signal and the sleep ran on. */
static void group_kill(int scenario) {
  fib_t t;
  fib_run(&t, scenario);
  ck_assert_int_eq(t.rc[0], 0);
  ck_assert_int_gt(t.rc[1], 0);
  ck_assert_int_gt(t.pid, 1);
  ck_assert_int_eq(t.rc[2], 0);
  ck_assert_int_eq(t.rc[3], 0);
  ck_assert_int_eq(t.rc[4], 0);
  if (scenario == FIB_GROUP_LEFT) {
    ck_assert_int_eq(t.rc[5], 0);
    ck_assert_int_eq(t.ex[0].code, 0);
  }
  /* Gone, or a zombie of whoever adopted it (a container's init may not
   * reap): not running. */
  TEST_WAIT_UNTIL(proc_state(t.pid) == 0 || proc_state(t.pid) == 'Z', 10000);
}

START_TEST(test_process_group_kill) { group_kill(FIB_GROUP); }
END_TEST

/* The same when the shell has ended first and left its sleep: the ended
 * leader is kept a zombie while the handle is open, so its group, which
 * bears its pid, can still be signalled (kill and close). */
START_TEST(test_process_group_kill_leader_gone) { group_kill(FIB_GROUP_LEFT); }
END_TEST

/* ax_process_kill says -ESRCH once no member of the group is left, though
 * the leader's zombie (kept while the handle is open) is still in it: a
 * program that polls with signal 0 until the job is gone must see the end. */
START_TEST(test_process_group_kill_empty) {
  fib_t t;
  fib_run(&t, FIB_GROUP_EMPTY);
  ck_assert_int_eq(t.rc[0], 0);
  ck_assert_int_eq(t.rc[1], 0);
  ck_assert_int_eq(t.ex[0].code, 0);
  ck_assert_int_eq(t.rc[2], -ESRCH);
  ck_assert_int_eq(t.rc[3], -ESRCH);
  ck_assert_int_eq(t.rc[4], 0);
}
END_TEST

static Suite *process_suite(void) {
  Suite *s = suite_create("process");
  TCase *tc = tcase_create("basics");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_process_errors);
  tcase_add_test(tc, test_process_exit_code);
  tcase_add_test(tc, test_process_signal);
  suite_add_tcase(s, tc);

  tc = tcase_create("stdio");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_process_stdout_lines);
  tcase_add_test(tc, test_process_stdin_cat);
  tcase_add_test(tc, test_process_cwd_env);
  tcase_add_test(tc, test_process_inherit_null);
  suite_add_tcase(s, tc);

  tc = tcase_create("lifetime");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_process_close_running);
  tcase_add_test(tc, test_process_stop_reaps_killed);
  tcase_add_test(tc, test_process_many);
  tcase_add_test(tc, test_process_emfile);
  suite_add_tcase(s, tc);

  tc = tcase_create("fiber");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_process_fiber_wait);
  tcase_add_test(tc, test_process_fiber_cancel);
  tcase_add_test(tc, test_process_group_kill);
  tcase_add_test(tc, test_process_group_kill_leader_gone);
  tcase_add_test(tc, test_process_group_kill_empty);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return test_run_suite(process_suite()); }
