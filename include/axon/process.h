/* Child processes: spawn a program, its stdio as streams of the owner, its exit as one message. */
#ifndef AXON_PROCESS_H
#define AXON_PROCESS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "axon/actor.h"
#include "axon/common.h"
#include "axon/stream.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * A process is a source like the others (source.h): it is owned by the
 * actor that spawned it (`self`, the running actor) and served by that
 * actor's core, whose loop watches a pidfd of the child.  When the child
 * ends, axon reaps it there (waitid on that pidfd: only that child, never
 * another) and the owner gets one AX_MSG_EXIT whose payload is an
 * ax_process_exit_t.  No SIGCHLD handler is involved, and a child axon did
 * not start is never reaped by axon.
 *
 * Each of the child's stdin, stdout and stderr is a pipe, the program's
 * own fd (inherited), or /dev/null.  A pipe is an ordinary stream of the
 * owner (stream.h, as ax_pipe_open makes): the child's output arrives as
 * AX_MSG_DATA, its end as AX_MSG_CLOSED{0}, and the owner writes the
 * child's stdin with ax_stream_write and ends it with ax_stream_close (or
 * ax_stream_shutdown).  Each stream lives by the stream rules,
 * independently of the process handle: closing the process closes no
 * stream, and a stream may end (and, in a handler actor, be freed) before
 * or after the AX_MSG_EXIT.
 *
 * Threads.  Every function here belongs to the owner (its behaviour or
 * hooks, or the fiber itself for ax_process_wait).  A handle is valid
 * from the spawn until ax_process_close returns or the owner stops;
 * after that no message of it reaches anyone, and any call with it, a
 * second close included, uses freed memory (debug builds assert on a
 * closed handle and on a call from the wrong thread).
 *
 * The owner stopping, or ax_process_close, while the child still runs:
 * axon does not kill it (unless ax_process_opts_t.kill_signal asks for a
 * signal), but the owner's streams close with it, so the child sees the
 * end of its stdin and EPIPE (or SIGPIPE) when it writes to a closed
 * stdout.  axon keeps watching it on the core and reaps it silently when
 * it ends, so it never stays a zombie while the runtime runs.  When the
 * runtime stops, children that were sent kill_signal are waited for (200
 * ms in all per core) and reaped; other children still running are left
 * running, unwatched: reap or kill them yourself first if that matters
 * (see docs/io/process.md).
 */

typedef struct ax_process ax_process_t;

/* AX_MSG_EXIT's payload.  code and signo: exactly one of them says how
 * the child ended; both are 0 after exit(0).  code -1 with signo 0 means
 * the status was lost: someone else in the program reaped the child
 * (waitpid(-1, ...) elsewhere). */
typedef struct ax_process_exit {
  ax_process_t *process; /* the handle (still valid: close it when done) */
  pid_t pid;
  int code;          /* the exit status 0..255, or -1 when a signal ended it */
  int signo;         /* the signal that ended it, or 0 */
  bool core_dumped;  /* signo's default action dumped core */
} ax_process_exit_t;

/* What becomes of one of the child's fds 0, 1, 2. */
typedef enum ax_stdio {
  AX_STDIO_DEFAULT = 0, /* stdin: AX_STDIO_NULL; stdout, stderr: AX_STDIO_INHERIT */
  AX_STDIO_PIPE,        /* a pipe whose other end is a stream of the owner */
  AX_STDIO_INHERIT,     /* the calling program's own fd 0, 1 or 2 */
  AX_STDIO_NULL,        /* /dev/null */
} ax_stdio_t;

/* Spawn options; zero-initialise, NULL means all defaults: the program is
 * argv[0], looked up in PATH; the environment and the working directory
 * are the program's own; stdin is /dev/null, stdout and stderr are
 * inherited; nothing is signalled at close. */
typedef struct ax_process_opts {
  /* The program to run (NULL: argv[0]).  A name without '/' is looked up
   * in the PATH of the calling program's environment (not of env). */
  const char *file;
  /* The child's environment, "NAME=value" strings ending with NULL
   * (NULL: the calling program's environ, read during the call). */
  char *const *env;
  const char *cwd;     /* the child's working directory (NULL: the caller's) */
  ax_stdio_t in, out, err; /* the child's fds 0, 1, 2 (see ax_stdio_t) */
  ax_stream_opts_t stream; /* for the pipes' streams (framing, window, ...) */
  /* A signal sent to the child when the handle is closed (ax_process_close,
   * or the owner stopping) while the child still runs: SIGTERM, SIGKILL,
   * ...; 0 sends none. */
  int kill_signal;
  /* The child leads a process group of its own (its pid is the group's
   * id), which what it starts joins: kill_signal and ax_process_kill then
   * signal the whole group, so that a shell's children end with it (a
   * `sh -c` job), also once the child itself has ended: axon then keeps
   * it a zombie (its AX_MSG_EXIT sent) until the handle closes, so that
   * its pid, the group's id, is not reused meanwhile.  Out of the
   * terminal's foreground group, it no longer gets the terminal's Ctrl-C. */
  bool new_group;
} ax_process_opts_t;

/* Runs argv[0] (or opts->file) with the arguments argv (ending with NULL)
 * as a child of the program, owned by self and watched on self's core.
 * The child starts with an empty signal mask and every signal at its
 * default action, whatever the runtime blocks or ignores (glibc leaves
 * its two internal signals, 32 and 33, ignored), and with fds 0, 1 and 2
 * as opts say and no other: every other fd of the program is closed in
 * the child, close-on-exec or not.  It is made with posix_spawn, which
 * reports a failed exec here: a program that cannot run is this call's
 * error, never a child exiting with 127.  On success *out is the handle,
 * the pipes' streams are open (ax_process_stream), and one AX_MSG_EXIT
 * follows when the child ends.  On failure no child runs, nothing was
 * opened, and no message follows.  The owner's core, which the call
 * blocks until the child has called exec (see docs/io/process.md for
 * figures).
 * Errors: -EINVAL (NULL self, argv or out, argv[0] NULL or "", an
 * ax_stdio_t out of range, bad stream options, a kill_signal out of
 * range), -ENOENT (no such program, or no such cwd), -EACCES, -ENOEXEC,
 * -ENOTDIR, -E2BIG, -EMFILE / -ENFILE (no fd for a pipe or the pidfd),
 * -EAGAIN (a process limit), -ENOMEM, -ENOSYS (no pidfds: Linux < 5.4,
 * or valgrind 3.19). */
AX_API int ax_process_spawn(ax_actor_t *self, const char *const argv[],
                            const ax_process_opts_t *opts, ax_process_t **out);

/* The child's process id.  It names the child until axon has reaped it
 * (until its AX_MSG_EXIT); after that the kernel may give the number to
 * another process.  Errors: -EINVAL (NULL). */
AX_API pid_t ax_process_pid(const ax_process_t *p);

/* The stream of the child's fd (0: its stdin, which the owner writes; 1
 * and 2: its stdout and stderr, which the owner reads), or NULL when that
 * fd is not AX_STDIO_PIPE, fd is not 0, 1 or 2, or p is NULL.  It is the
 * pointer the spawn made, whatever became of the stream since: after the
 * stream was closed or ended (stream.h) it must not be used. */
AX_API ax_stream_t *ax_process_stream(const ax_process_t *p, int fd);

/* Sends signo to the child through its pidfd (never to a process that
 * took over its number), or, with new_group, to its whole process group,
 * even after the child ended (kept a zombie while the handle is open, it
 * keeps the group's id from being reused; -ESRCH once no member but that
 * zombie is left, which the call then finds in /proc: a few microseconds
 * per process on the system).  0 checks that it can be signalled: poll
 * with it to wait for a job's last process.  Returns 0.
 * Errors: -EINVAL (NULL, signo out of range), -ESRCH (the child was
 * reaped: its AX_MSG_EXIT is posted), -EPERM. */
AX_API int ax_process_kill(ax_process_t *p, int signo);

/* In a fiber that owns p: waits until the child ends and stores how in
 * *out.  It takes p's AX_MSG_EXIT out of the fiber's messages (other
 * messages stay queued in order); if the fiber received that message
 * already, it returns the same status at once.  Returns 0.  Errors:
 * -EINVAL (NULL p or out), -EPERM (the caller is not the fiber that owns
 * p: a handler actor, another thread), -ETIMEDOUT (deadline, on ax_now()'s
 * clock; AX_FOREVER waits without limit, 0 does not wait), -ECANCELED
 * (the fiber is stopping), -ENOMEM. */
AX_API int ax_process_wait(ax_process_t *p, int64_t deadline, ax_process_exit_t *out);

/* Stops watching the child and frees the handle; no AX_MSG_EXIT of it is
 * delivered after this returns, not even one already queued.  Closes no
 * stream.  A child still running is not killed (unless opts.kill_signal
 * was given: then it gets that signal now); axon reaps it silently when
 * it ends.  Returns 0.  Errors: -EINVAL (NULL). */
AX_API int ax_process_close(ax_process_t *p);

#ifdef __cplusplus
}
#endif

#endif /* AXON_PROCESS_H */
