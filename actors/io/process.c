/* Child processes: posix_spawn, stdio pipes as the owner's streams, a pidfd on its core, one AX_MSG_EXIT. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "actors/fiber.h"
#include "actors/io/src.h"
#include "actors/io/stream.h"
#include "axon/fiber.h"
#include "axon/process.h"

extern char **environ;

/*
 * A process is a source whose fd is a pidfd of the child (pidfd_open right
 * after posix_spawn: the child cannot be reaped before that, so its pid
 * cannot name anyone else yet).  The owner's core watches the pidfd for
 * AX_READ, which the kernel reports once the child has ended; the core
 * then reaps exactly that child with waitid(P_PIDFD) and posts the
 * AX_MSG_EXIT, which was allocated at the spawn so that posting it cannot
 * fail for want of memory.  Nothing here installs a SIGCHLD handler or
 * waits for any other child.
 *
 * Closing the handle (the user, or the owner stopping) while the child
 * runs keeps the pidfd watched: the closed source lingers on its core
 * (ax__src_linger) until the child ends and is reaped without a message,
 * so no zombie stays behind while the runtime runs.  When the runtime
 * stops first, op_abort reaps it if it has ended and otherwise lets it
 * go, unwatched.
 *
 * The stdio pipes are ordinary streams of the owner (ax_pipe_open); the
 * process keeps their pointers for ax_process_stream only, never touches
 * them after the spawn, and so has no say in their lifetime.
 *
 * Fields are the owner core's, like every source's.
 */
struct ax_process {
  ax__src_t src; /* first */
  pid_t pid;
  int pidfd;       /* -1 before the child exists and once reaped or let go */
  ax_io_t io;      /* the pidfd: readable once the child has ended */
  int kill_signal; /* sent at close while the child runs (0: none) */
  bool signalled;  /* kill_signal was sent at the close */
  bool group;      /* it leads its own process group: signals go to the group */
  bool reaped;     /* waitid took its status (status holds it) */
  /* new_group: it ended and status holds how, but it is kept a zombie
   * until the handle closes, so that its pid, the group's id, cannot be
   * reused while the handle may still signal the group. */
  bool held;
  ax_stream_t *stream[3];
  ax__msg_t *exit_msg; /* AX_MSG_EXIT, made at the spawn, posted at the reap */
  ax_process_exit_t status;
};
_Static_assert(offsetof(struct ax_process, src) == 0, "a handle is its source");
_Static_assert(AX_MSG_EXIT == 37, "AX_MSG_EXIT is numbered 37 (actor.h): never renumbered");

/* ------------------------------------------------------------------------ */
/* Reaping                                                                   */

/* Stops watching and closes the pidfd. */
static void unwatch(ax_process_t *p) {
  if (p->pidfd < 0)
    return;
  if (ax_io_active(&p->io))
    (void)ax_io_stop(&p->io);
  close(p->pidfd);
  p->pidfd = -1;
}

/* Takes the child's status if it has ended (never waiting): true when it
 * is reaped now, with p->status filled and the pidfd closed.  A child
 * that someone else reaped (ECHILD: a waitpid(-1) elsewhere) counts as
 * reaped with its status lost. */
static bool reap(ax_process_t *p) {
  if (p->pidfd < 0)
    return false;
  siginfo_t si;
  memset(&si, 0, sizeof si);
  /* A group leader whose handle is open: its status only (WNOWAIT). */
  bool keep = p->group && !p->src.closed;
  int rc;
  do
    rc = waitid(P_PIDFD, (id_t)p->pidfd, &si, WEXITED | WNOHANG | (keep ? WNOWAIT : 0));
  while (rc < 0 && errno == EINTR);
  if (rc == 0 && si.si_pid == 0)
    return false; /* still running */
  ax_process_exit_t *st = &p->status;
  st->process = p;
  st->pid = p->pid;
  st->code = -1;
  st->signo = 0;
  st->core_dumped = false;
  if (rc == 0 && si.si_code == CLD_EXITED) {
    st->code = si.si_status;
  } else if (rc == 0) { /* CLD_KILLED or CLD_DUMPED */
    st->signo = si.si_status;
    st->core_dumped = si.si_code == CLD_DUMPED;
  }
  if (keep && rc == 0)
    p->held = true; /* reaped by release_held at the close */
  else
    p->reaped = true;
  unwatch(p);
  return true;
}

/* Whether a process other than a zombie is in process group pgid, read
 * from /proc (no other interface lists a group's members): the kernel
 * signals a group that holds only zombies, the kept leader among them.
 * Without /proc, true (the caller signals, as before).  About 7 us per
 * process on the system (100 processes: 0.74 ms, the 2-vCPU VM). */
static bool group_has_live(pid_t pgid) {
  DIR *d = opendir("/proc");
  if (d == NULL)
    return true;
  bool live = false;
  struct dirent *e;
  while (!live && (e = readdir(d)) != NULL) {
    if (e->d_name[0] < '1' || e->d_name[0] > '9')
      continue;
    char path[sizeof e->d_name + 16], buf[512];
    snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
      continue; /* gone meanwhile */
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
      continue;
    buf[n] = '\0';
    /* "pid (comm) state ppid pgrp ...": comm may hold ')' and spaces. */
    const char *r = strrchr(buf, ')');
    char state;
    int ppid, pgrp;
    if (r != NULL && sscanf(r + 1, " %c %d %d", &state, &ppid, &pgrp) == 3 && pgrp == pgid &&
        state != 'Z' && state != 'X')
      live = true;
  }
  closedir(d);
  return live;
}

/* Reaps a group leader kept a zombie (held). */
static void release_held(ax_process_t *p) {
  while (waitpid(p->pid, NULL, 0) < 0 && errno == EINTR) {
  }
  p->held = false;
  p->reaped = true;
}

/* The pidfd is readable: the child has ended.  An open process tells its
 * owner; a closed one (lingering) is freed by dropping the linger's
 * reference, which may be the last. */
static void io_cb(ax_io_t *io, unsigned revents) {
  (void)revents;
  ax_process_t *p = io->data;
  if (!reap(p))
    return; /* not yet after all: the next report brings it */
  ax__src_count(&p->src, false);
  if (p->src.closed) {
    ax__src_linger(&p->src, false); /* p may be freed here */
    return;
  }
  ax__msg_t *m = p->exit_msg;
  p->exit_msg = NULL;
  memcpy(m->payload, &p->status, sizeof p->status);
  ax__src_post(&p->src, m, 0);
}

/* ------------------------------------------------------------------------ */
/* Source operations                                                         */

/* Signals the child, not reaped yet: through its pidfd, or its whole
 * process group (whose id the unreaped child keeps from reuse).  Returns 0
 * or -errno. */
static int send_signal(ax_process_t *p, int signo) {
  int rc = p->group ? kill(-p->pid, signo) : (int)syscall(SYS_pidfd_send_signal, p->pidfd, signo,
                                                            NULL, 0);
  return rc < 0 ? -errno : 0;
}

/* Closed by the user or the owner's death.  A child still running gets
 * kill_signal (if any) and stays watched, lingering, until it ends. */
static void op_close(ax__src_t *s) {
  ax_process_t *p = (ax_process_t *)s;
  if (p->exit_msg != NULL) {
    ax__msg_free(p->exit_msg);
    p->exit_msg = NULL;
  }
  if (p->held) { /* the leader ended; what it started may run on */
    if (p->kill_signal != 0)
      (void)kill(-p->pid, p->kill_signal);
    release_held(p);
    return;
  }
  /* A group is signalled before the reap: its leader may have just ended,
   * leaving the others (its zombie still holds the group's id). */
  if (p->pidfd >= 0 && p->group && p->kill_signal != 0)
    p->signalled = send_signal(p, p->kill_signal) == 0;
  if (p->pidfd < 0 || reap(p))
    return; /* never started, reaped already, or it just ended */
  if (p->kill_signal != 0 && !p->group)
    p->signalled = send_signal(p, p->kill_signal) == 0;
  ax__src_linger(s, true);
}

/* Waits until `until` (CLOCK_MONOTONIC ns) at most for the child to end,
 * then reaps it if it has: true when reaped. */
static bool reap_by(ax_process_t *p, int64_t until) {
  for (;;) {
    if (reap(p))
      return true;
    int64_t left = until - ax_now();
    if (left <= 0)
      return false;
    struct pollfd pfd = {.fd = p->pidfd, .events = POLLIN};
    int ms = (int)((left + AX_NSEC_PER_MSEC - 1) / AX_NSEC_PER_MSEC);
    if (poll(&pfd, 1, ms) < 0 && errno != EINTR)
      return false;
  }
}

/* The runtime stops while the child of a closed process still runs: reap
 * it if it has ended by now.  One sent kill_signal is about to end (a
 * SIGKILL takes microseconds to milliseconds): the core waits for it, up
 * to AX__STOP_REAP_NS for all such children of the core together, so that
 * the kill_signal that process.h offers to end children with the runtime
 * leaves no zombie (a newcomer's 30 children killed at ax_rt_stop left 1
 * to 4).  Else the child is let go unwatched. */
static void op_abort(ax__src_t *s) {
  ax_process_t *p = (ax_process_t *)s;
  if (!reap(p) && !(p->signalled && reap_by(p, ax__io_core(s->core)->stop_until)))
    unwatch(p);
  ax__src_count(s, false);
  ax__src_linger(s, false); /* the last reference: p is freed */
}

static void op_free(ax__src_t *s) {
  ax_process_t *p = (ax_process_t *)s;
  unwatch(p); /* nothing left open by now; kept as a safety net */
  free(p);
}

static const ax__src_ops_t process_ops = {
    .close = op_close,
    .free = op_free,
    .abort = op_abort,
};

/* ------------------------------------------------------------------------ */
/* Spawning                                                                  */

/* Moves fd to a number above 2 (keeping close-on-exec) so that a dup2 onto
 * 0, 1 or 2 in the child never meets itself.  Returns the fd, or -errno
 * (fd is closed either way on failure). */
static int above_stdio(int fd) {
  if (fd > 2)
    return fd;
  int d = fcntl(fd, F_DUPFD_CLOEXEC, 3);
  int err = errno;
  close(fd);
  return d >= 0 ? d : -err;
}

/* Makes the pipe of the child's fd i: the child's end in *child (close-on-
 * exec, above 2), the other end a stream of the owner in p->stream[i].
 * Returns 0 or -errno (nothing left open then). */
static int open_pipe(ax_actor_t *self, ax_process_t *p, int i, const ax_stream_opts_t *so,
                     int *child) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) < 0)
    return -errno;
  int mine = i == 0 ? fds[1] : fds[0];
  int theirs = above_stdio(i == 0 ? fds[0] : fds[1]);
  if (theirs < 0) {
    close(mine);
    return theirs;
  }
  /* ax_pipe_open owns `mine` from now on, also when it fails. */
  int rc = i == 0 ? ax_pipe_open(self, -1, mine, so, &p->stream[i])
                  : ax_pipe_open(self, mine, -1, so, &p->stream[i]);
  if (rc < 0) {
    p->stream[i] = NULL;
    close(theirs);
    return rc;
  }
  *child = theirs;
  return 0;
}

/* posix_spawn's file actions and attributes for the child, then the
 * spawn itself.  Returns 0 with *pid, or -errno (the exec's error too:
 * glibc reports it from the child). */
static int do_spawn(const ax_process_opts_t *o, const ax_stdio_t mode[3], const int child[3],
                    const char *const argv[], pid_t *pid) {
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t attr;
  int rc = posix_spawn_file_actions_init(&fa);
  if (rc != 0)
    return -rc;
  rc = posix_spawnattr_init(&attr);
  if (rc != 0) {
    posix_spawn_file_actions_destroy(&fa);
    return -rc;
  }
  for (int i = 0; i < 3 && rc == 0; i++) {
    if (mode[i] == AX_STDIO_PIPE)
      rc = posix_spawn_file_actions_adddup2(&fa, child[i], i);
    else if (mode[i] == AX_STDIO_NULL)
      rc = posix_spawn_file_actions_addopen(&fa, i, "/dev/null", i == 0 ? O_RDONLY : O_WRONLY,
                                            0);
  }
  /* Whatever else the program has open, close-on-exec or not (fds it
   * inherited itself), stays out of the child. */
  if (rc == 0)
    rc = posix_spawn_file_actions_addclosefrom_np(&fa, 3);
  if (rc == 0 && o->cwd != NULL)
    rc = posix_spawn_file_actions_addchdir_np(&fa, o->cwd);
  /* The core threads block nearly every signal and the program may ignore
   * some (SIGPIPE): the child starts with none blocked and all at their
   * default action. */
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  if (rc == 0)
    rc = posix_spawnattr_setsigmask(&attr, &none);
  if (rc == 0)
    rc = posix_spawnattr_setsigdefault(&attr, &all);
  short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
  if (o->new_group) {
    flags |= POSIX_SPAWN_SETPGROUP;
    if (rc == 0)
      rc = posix_spawnattr_setpgroup(&attr, 0); /* a group of its own, named by its pid */
  }
  if (rc == 0)
    rc = posix_spawnattr_setflags(&attr, flags);
  if (rc == 0) {
    const char *file = o->file != NULL ? o->file : argv[0];
    char *const *env = o->env != NULL ? o->env : environ;
    /* posix_spawnp searches PATH for a name without '/' and runs a path
     * as it is; the argv strings are not written to. */
    rc = posix_spawnp(pid, file, &fa, &attr, (char *const *)(uintptr_t)argv, env);
  }
  posix_spawnattr_destroy(&attr);
  posix_spawn_file_actions_destroy(&fa);
  return -rc;
}

/* The child runs but cannot be watched (no fd for its pidfd, the loop
 * refused it): end it now, so that the failed spawn leaves nothing. */
static void discard_child(pid_t pid) {
  (void)kill(pid, SIGKILL);
  while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
  }
}

/* Undoes a spawn that failed: the streams made so far, then the source. */
static int spawn_failed(ax_process_t *p, const int child[3], int reserve, int rc) {
  for (int i = 0; i < 3; i++) {
    if (child[i] >= 0)
      close(child[i]);
    if (p->stream[i] != NULL)
      (void)ax_stream_close(p->stream[i]);
  }
  if (reserve >= 0)
    close(reserve);
  ax__src_close(&p->src); /* frees the unsent AX_MSG_EXIT and p */
  return rc;
}

/* Spawns a child owned by self (see process.h).  The owner's core.
 * Returns 0 with *out, or -errno (no child runs then, nothing is left
 * open, no message follows). */
int ax_process_spawn(ax_actor_t *self, const char *const argv[], const ax_process_opts_t *opts,
                     ax_process_t **out) {
  ax_process_opts_t o = opts != NULL ? *opts : (ax_process_opts_t){0};
  if (self == NULL || argv == NULL || out == NULL || argv[0] == NULL || argv[0][0] == '\0' ||
      (o.file != NULL && o.file[0] == '\0') || o.kill_signal < 0 || o.kill_signal > SIGRTMAX)
    return -EINVAL;
  ax_stdio_t mode[3] = {o.in, o.out, o.err};
  bool pipes = false;
  for (int i = 0; i < 3; i++) {
    if ((unsigned)mode[i] > (unsigned)AX_STDIO_NULL)
      return -EINVAL;
    if (mode[i] == AX_STDIO_DEFAULT)
      mode[i] = i == 0 ? AX_STDIO_NULL : AX_STDIO_INHERIT;
    pipes |= mode[i] == AX_STDIO_PIPE;
  }
  ax_stream_opts_t checked;
  if (pipes && ax__stream_opts(&o.stream, &checked) < 0)
    return -EINVAL;
  AX__ASSERT_OWNER(self);
  ax_process_t *p = ax__src_new(sizeof *p, &process_ops, self, 0);
  if (p == NULL)
    return -ENOMEM;
  p->pidfd = -1;
  p->kill_signal = o.kill_signal;
  p->group = o.new_group;
  int child[3] = {-1, -1, -1};
  p->exit_msg = ax__src_msg(&p->src, AX_MSG_EXIT, sizeof(ax_process_exit_t));
  if (p->exit_msg == NULL)
    return spawn_failed(p, child, -1, -ENOMEM);
  for (int i = 0; i < 3; i++) {
    int rc = mode[i] == AX_STDIO_PIPE ? open_pipe(self, p, i, &o.stream, &child[i]) : 0;
    if (rc < 0)
      return spawn_failed(p, child, -1, rc);
  }
  /* An fd held for the pidfd, so that a full fd table fails the call
   * before a child exists rather than after (another thread may still
   * take the number in between: discard_child covers that). */
  int reserve = eventfd(0, EFD_CLOEXEC);
  if (reserve < 0)
    return spawn_failed(p, child, -1, -errno);
  pid_t pid;
  int rc = do_spawn(&o, mode, child, argv, &pid);
  if (rc < 0)
    return spawn_failed(p, child, reserve, rc);
  for (int i = 0; i < 3; i++) {
    if (child[i] >= 0)
      close(child[i]);
    child[i] = -1;
  }
  close(reserve);
  p->pid = pid;
  /* The child is ours to reap and nobody has, so pid names it still. */
  int fd = (int)syscall(SYS_pidfd_open, pid, 0); /* close-on-exec always */
  if (fd < 0) {
    rc = -errno;
    discard_child(pid);
    return spawn_failed(p, child, -1, rc);
  }
  p->pidfd = fd;
  ax_io_init(p->src.core->loop, &p->io, fd, io_cb);
  p->io.data = p;
  rc = ax_io_start(&p->io, AX_READ);
  if (rc < 0) {
    unwatch(p);
    discard_child(pid);
    return spawn_failed(p, child, -1, rc);
  }
  ax__src_count(&p->src, true);
  *out = p;
  return 0;
}

/* ------------------------------------------------------------------------ */
/* Using a process                                                           */

/* The child's pid.  The owner's core.  Returns it, or -EINVAL for NULL. */
pid_t ax_process_pid(const ax_process_t *p) {
  if (p == NULL)
    return -EINVAL;
  AX__SRC_ASSERT_OPEN(&p->src);
  return p->pid;
}

/* The stream of the child's fd 0, 1 or 2, or NULL (not a pipe, a bad fd,
 * NULL p).  The owner's core. */
ax_stream_t *ax_process_stream(const ax_process_t *p, int fd) {
  if (p == NULL || fd < 0 || fd > 2)
    return NULL;
  AX__SRC_ASSERT_OPEN(&p->src);
  return p->stream[fd];
}

/* Signals the child through its pidfd.  The owner's core.  Returns 0, or
 * -EINVAL (NULL, signo out of range), -ESRCH (reaped), -EPERM. */
int ax_process_kill(ax_process_t *p, int signo) {
  if (p == NULL || signo < 0 || signo > SIGRTMAX)
    return -EINVAL;
  AX__SRC_ASSERT(&p->src);
  if (p->reaped || (p->pidfd < 0 && !p->held))
    return -ESRCH;
  if (p->held && !group_has_live(p->pid))
    return -ESRCH; /* only the kept leader's zombie is left */
  return send_signal(p, signo); /* a held leader: its group (kill -pgid) */
}

/* ax_recv_match's test: the AX_MSG_EXIT of the process arg. */
static bool is_exit_of(const ax_msg_t *m, void *arg) {
  return m->type == AX_MSG_EXIT && m->from == AX_REF_NONE &&
         m->size == sizeof(ax_process_exit_t) &&
         ((const ax_process_exit_t *)m->data)->process == arg;
}

/* Waits, in the fiber that owns p, for the child's end.  Returns 0 with
 * *out, or -EINVAL, -EPERM (not that fiber), -ETIMEDOUT, -ECANCELED,
 * -ENOMEM. */
int ax_process_wait(ax_process_t *p, int64_t deadline, ax_process_exit_t *out) {
  if (p == NULL || out == NULL)
    return -EINVAL;
  /* Another thread may not even read p's owner: its core first. */
  ax__core_t *c = ax__tls_core;
  if (c == NULL || c != p->src.core)
    return -EPERM;
  ax_actor_t *owner = p->src.owner;
  if (owner == NULL || c->current != owner || !ax_is_fiber(owner))
    return -EPERM;
  AX__SRC_ASSERT(&p->src);
  /* Once reaped, its AX_MSG_EXIT is queued or was received already: look
   * without waiting, and fall back on the status kept here. */
  bool reaped = p->reaped || p->held; /* ended: its status is known */
  const ax_msg_t *m;
  int rc = ax_recv_match(owner, is_exit_of, p, reaped ? 0 : deadline, &m);
  if (rc == -ETIMEDOUT && reaped) {
    *out = p->status;
    return 0;
  }
  if (rc < 0)
    return rc;
  memcpy(out, m->data, sizeof *out);
  return 0;
}

/* Closes the handle (see process.h).  The owner's core.  Returns 0, or
 * -EINVAL for NULL. */
int ax_process_close(ax_process_t *p) {
  if (p == NULL)
    return -EINVAL;
  AX__SRC_ASSERT(&p->src);
  /* A fiber keeps messages aside until it asks for them: its AX_MSG_EXIT
   * of p goes now, as a handler actor's queued one is dropped. */
  ax_actor_t *owner = p->src.owner;
  for (ax__msg_t *m; owner != NULL &&
                     (m = ax__fiber_take_sys(owner, AX__SYS_IO, (uint64_t)(uintptr_t)p)) != NULL;)
    ax__msg_unkeep(owner, m);
  ax__src_close(&p->src);
  return 0;
}
