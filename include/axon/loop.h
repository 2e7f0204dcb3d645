/* The callback-level event loop: one loop per thread, intrusive watchers, no allocation. */
#ifndef AXON_LOOP_H
#define AXON_LOOP_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "axon/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Threading rule.  A loop belongs to one thread at a time: the thread that
 * calls ax_loop_run().  Every function in this header must be called from
 * that thread (or, while the loop is not running, from the thread that owns
 * it), except those that say "any thread": ax_loop_stop(),
 * ax_loop_wake(), ax_event_notify(), ax_loop_backend() and ax_loop_fd().
 * Debug builds assert on misuse.  A second thread that calls ax_loop_run
 * or ax_loop_run_once while the loop runs gets -EBUSY.
 *
 * Watchers.  ax_io_t, ax_timer_t, ax_signal_t and ax_event_t are structs the
 * caller allocates, usually embedded in its own struct, and gets back to with
 * AX_CONTAINER_OF() inside the callback.  The loop never allocates or frees
 * them.  A watcher must be stopped before its memory is freed or reused.
 * Callbacks may start, stop, modify or free any watcher, including the one
 * being dispatched.
 *
 * Errors.  Functions return >= 0 on success and -errno on failure.  Bad
 * arguments are -EINVAL and change nothing.  A function that fails never
 * calls the callback it was given.
 *
 * The field groups in the watcher structs are marked "public" (yours to read
 * and write), "read-only" (read them, never write) and "private" (do not
 * touch: they may change between versions).
 */

typedef struct ax_loop ax_loop_t;
typedef struct ax_io ax_io_t;
typedef struct ax_timer ax_timer_t;
typedef struct ax_signal ax_signal_t;
typedef struct ax_event ax_event_t;

/* ------------------------------------------------------------------------ */
/* The loop                                                                  */

/* Backends.  AX_BACKEND_DEFAULT picks the AXON_BACKEND environment variable
 * ("epoll", "poll" or "io_uring") when set, epoll otherwise.  io_uring
 * (poll requests on a ring, with epoll's semantics) is probed when a loop
 * is made: where the kernel refuses it, or axon was built without
 * liburing, the loop uses epoll and says so once on stderr. */
typedef enum ax_backend {
  AX_BACKEND_DEFAULT = 0,
  AX_BACKEND_EPOLL = 1,
  AX_BACKEND_POLL = 2,
  AX_BACKEND_IO_URING = 3,
} ax_backend_t;

/* Flags for ax_loop_opts_t.flags. */
enum {
  /* ax_loop_run() and ax_loop_run_once() wait even when no watcher is
   * active (until their timeout, ax_loop_stop() or ax_loop_wake()) instead
   * of returning AX_RUN_IDLE: for a loop that other threads hand work to. */
  AX_LOOP_KEEP_ALIVE = 1,
};

/* Options for ax_loop_new().  Zero-initialise and set what you need; NULL
 * options mean all defaults. */
typedef struct ax_loop_opts {
  ax_backend_t backend; /* default: AXON_BACKEND, else epoll */
  unsigned max_events;  /* fd events taken per poll; 0 = 256; at most 4096 */
  unsigned flags;       /* AX_LOOP_* */
} ax_loop_opts_t;

/* Creates a loop.  On success stores it in *loop and returns 0.  The
 * calling thread is the loop's thread until another one runs it (or calls
 * ax_loop_adopt).  Errors: -EINVAL (NULL loop, unknown backend, max_events
 * > 4096, unknown flags, or an unknown AXON_BACKEND value), -ENOMEM, -EMFILE/-ENFILE (no fd for the
 * backend), or another errno from epoll_create1/eventfd. */
AX_API int ax_loop_new(const ax_loop_opts_t *opts, ax_loop_t **loop);

/* Why ax_loop_run() returned. */
enum {
  AX_RUN_IDLE = 0,    /* no active watcher was left to wait for */
  AX_RUN_STOPPED = 1, /* ax_loop_stop() was called */
  AX_RUN_TIMEOUT = 2, /* the timeout elapsed (or the one pass ended) */
};

/* Runs the loop: waits for events and calls the watchers' callbacks.
 * Returns when ax_loop_stop() is called (AX_RUN_STOPPED), when no active
 * watcher is left (AX_RUN_IDLE), or when timeout_ns nanoseconds have passed
 * (AX_RUN_TIMEOUT).  timeout_ns AX_FOREVER means no timeout; 0 means one
 * non-blocking pass: run due timers, take the events that are ready, call
 * their callbacks, and return AX_RUN_TIMEOUT (AX_RUN_IDLE if no active
 * watcher is left).  A stop requested before the call makes run
 * do one non-blocking pass and return AX_RUN_STOPPED; the request is consumed.
 * Errors: -EINVAL (NULL loop, timeout_ns < 0 other than AX_FOREVER), -EBUSY
 * (the loop is already running: run is not reentrant), or an errno from the
 * backend's wait call (EINTR is handled and never returned). */
AX_API int ax_loop_run(ax_loop_t *loop, int64_t timeout_ns);

/* Runs one pass: runs the timers that are due, waits at most timeout_ns
 * (AX_FOREVER: until an event or a timer is due; 0: not at all) for fd
 * events, calls their callbacks, runs the timers that became due, and
 * returns.  If a timer fired before the wait, the pass does not wait at
 * all (its callback may have made work for the caller).  This is the building block for
 * embedding the loop in another scheduler (axon's runtime does).  Returns
 * AX_RUN_STOPPED if a stop was requested (the request is consumed),
 * AX_RUN_IDLE if no active watcher is left (without waiting), AX_RUN_TIMEOUT
 * otherwise.  Errors: as ax_loop_run(). */
AX_API int ax_loop_run_once(ax_loop_t *loop, int64_t timeout_ns);

/* Asks the loop to return from ax_loop_run().  A sleeping loop wakes at
 * once; a loop in the middle of a pass first finishes the callbacks for the
 * events it has already taken from the kernel (so no edge-triggered event is
 * lost), then returns AX_RUN_STOPPED.  Any thread, and async-signal-safe:
 * it is an atomic store plus one write() to an eventfd. */
AX_API void ax_loop_stop(ax_loop_t *loop);

/* Wakes the loop from its wait, if it waits, without stopping it: the
 * current (or the next) wait of ax_loop_run()/ax_loop_run_once() returns at
 * once, and a run goes on with its next pass.  For a thread that hands the
 * loop's thread work through memory of its own (axon's runtime does).
 * Any thread, and async-signal-safe: one write() to an eventfd. */
AX_API void ax_loop_wake(ax_loop_t *loop);

/* Makes the calling thread the loop's thread.  Every call marked "loop
 * thread" must come from it; debug builds assert so.  ax_loop_new() and
 * each ax_loop_run()/ax_loop_run_once() make their caller the loop's
 * thread; call this to hand a loop to another thread without running it
 * (say, back to the thread that frees it after its runner has exited). */
AX_API void ax_loop_adopt(ax_loop_t *loop);

/* Flags for ax_loop_close(). */
enum {
  AX_CLOSE_FORCE = 1, /* stop every active watcher first, then close */
};

/* Frees the loop.  Fails with -EBUSY (and frees nothing) while watchers are
 * active, unless flags has AX_CLOSE_FORCE, which stops them all (their
 * memory stays the caller's; an ax_event_t still needs ax_event_close()).
 * Errors: -EINVAL (NULL loop, unknown flags), -EBUSY (watchers active, or
 * called while the loop is running). */
AX_API int ax_loop_close(ax_loop_t *loop, unsigned flags);

/* The loop's cached time: CLOCK_MONOTONIC nanoseconds read when the current
 * iteration woke up (and again before a wait that has a deadline, so that
 * long callbacks do not make the loop oversleep).  Relative timer timeouts
 * count from it.  Loop thread. */
AX_API int64_t ax_loop_now(const ax_loop_t *loop);

/* Re-reads the clock into the loop's cached time, for callbacks that ran a
 * long time before starting a timer.  Loop thread. */
AX_API void ax_loop_update_time(ax_loop_t *loop);

/* Nanoseconds until the earliest active timer is due, counted from the
 * cached time: 0 if one is due now, AX_FOREVER if there is none.  Lets a
 * caller that embeds the loop decide how long it may block.  Loop thread. */
AX_API int64_t ax_loop_timeout(const ax_loop_t *loop);

/* The backend in use: "epoll", "poll" or "io_uring".  Loop thread or any thread that
 * knows the loop is alive. */
AX_API const char *ax_loop_backend(const ax_loop_t *loop);

/* The number of active watchers of every kind (what keeps run going). */
AX_API unsigned ax_loop_active(const ax_loop_t *loop);

/* One fd for a host's own poll loop (libuv's uv_backend_fd): it is
 * readable whenever the loop has fd events to take, and that covers every
 * watcher, signals and events included, and ax_loop_stop/ax_loop_wake.
 * Timers are not on it: a host waits at most ax_loop_timeout() (rounded up
 * to its own clock's unit), then calls ax_loop_run_once(loop, 0), which
 * runs what is due and returns without blocking.  Only watch it for
 * reading, level-triggered: one ax_loop_run_once takes at most max_events
 * events, and the fd stays readable while more are ready without a new
 * edge, so a host that watches it edge-triggered (EPOLLET) must call
 * ax_loop_run_once until it is no longer readable.  Never read it, close
 * it or add it to the loop itself.  Valid
 * until ax_loop_close.  Any thread that knows the loop is alive.  Returns
 * the fd (on io_uring, the ring's: from then on that backend hands each
 * poll request to the kernel at once instead of with the next wait; its
 * completions reach the thread as task work, which interrupts a blocking
 * epoll_wait on that thread with EINTR: treat EINTR as "look again", and
 * call ax_loop_run_once then too, or wait with poll(), which restarts).
 * Errors: -EINVAL (NULL loop), -ENOTSUP (the poll backend keeps no such
 * fd: use epoll, the default, or io_uring to embed). */
AX_API int ax_loop_fd(const ax_loop_t *loop);

/* ------------------------------------------------------------------------ */
/* fd watchers                                                               */

/* Event bits.  Request AX_READ, AX_WRITE and/or AX_PRI, optionally with
 * AX_EDGE; the callback receives any of the first five.
 *  AX_READ   readable (or EOF, or a pending connection on a listener)
 *  AX_WRITE  writable
 *  AX_PRI    priority data: TCP urgent data (MSG_OOB), a GPIO sysfs "value"
 *            file's edge, a PSI trigger.  An error flag that the kernel
 *            reports together with the priority flag (as sysfs files do) is
 *            folded into AX_PRI, not reported as AX_ERR.
 *  AX_HUP    hang-up (both directions closed, pipe writer gone, tty hang-up);
 *            always reported, never requested
 *  AX_ERR    an error is pending on the fd (read it with SO_ERROR or by the
 *            next read/write); always reported, never requested
 *  AX_EDGE   edge-triggered: report a readiness change once, not every pass
 *            while it lasts.  Drain the fd (read until EAGAIN) after each
 *            event.  The poll backend has no edge mode and treats this flag
 *            as level-triggered, which is safe for code that drains.
 *  AX_ONESHOT one-shot: after one callback the watcher is disarmed (it stays
 *            started, and the fd stays registered) until ax_io_modify arms
 *            it again, with the same events or others: one system call per
 *            event instead of the two that stop + start would cost. */
enum {
  AX_READ = 0x01,
  AX_WRITE = 0x02,
  AX_PRI = 0x04,
  AX_HUP = 0x08,
  AX_ERR = 0x10,
  AX_EDGE = 0x100,
  AX_ONESHOT = 0x1000,
};

/* Called with the events that happened (a subset of the requested ones plus
 * AX_HUP/AX_ERR). */
typedef void (*ax_io_cb)(ax_io_t *io, unsigned revents);

struct ax_io {
  /* public */
  void *data;
  /* read-only */
  ax_loop_t *loop;
  int fd;
  unsigned events; /* the requested events, while active */
  /* private */
  ax_io_cb cb_;
  ax_io_t *next_, *prev_; /* the loop's list of active fd watchers */
  unsigned flags_;
  int slot_; /* the poll and io_uring backends' index; epoll's registration generation */
};

/* Initialises io to watch fd on loop; it starts inactive.  The fd stays the
 * caller's: axon never closes it.  The fd should be non-blocking.  Stop the
 * watcher before closing the fd (docs/loop.md says what a close under an
 * active watcher does on each backend).
 * Initialising an active watcher is undefined: stop it first.
 * Errors: -EINVAL (NULL loop, io or cb; fd < 0). */
AX_API int ax_io_init(ax_loop_t *loop, ax_io_t *io, int fd, ax_io_cb cb);

/* Starts watching for events (AX_READ | AX_WRITE | AX_PRI, optionally
 * | AX_EDGE).  Errors: -EINVAL (NULL io, no event or an unknown bit, io
 * already active), -EEXIST (another watcher of this loop watches the same
 * fd number, even if its fd was closed under it since), -EPERM (the fd cannot be polled, e.g. a regular file under epoll),
 * -EBADF (the fd is closed), -ENOMEM (also: io_uring's kernel refused to
 * take the loop's queued requests). */
AX_API int ax_io_start(ax_io_t *io, unsigned events);

/* Changes the requested events of an active watcher.  What the old request
 * reported in the pass being dispatched is not delivered; the new one
 * reports what is ready now, at the next wait.  A failed modify leaves the
 * watcher watching its old events.  It also
 * re-arms an AX_ONESHOT watcher that has fired (even with the same events).
 * A call that changes nothing (the same events, an AX_ONESHOT that has not
 * fired) returns 0 without looking at the fd.  Errors: -EINVAL (NULL io,
 * bad events, io not active), -EBADF (the fd was closed under it), or
 * another errno of the backend. */
AX_API int ax_io_modify(ax_io_t *io, unsigned events);

/* Stops watching.  No callback for this watcher runs after it returns, even
 * for events already taken from the kernel in the same pass; the fd may then
 * be closed and its number reused safely.  Stopping an inactive watcher
 * does nothing and returns 0.  Errors: -EINVAL (NULL io). */
AX_API int ax_io_stop(ax_io_t *io);

/* True while the watcher is started.  A NULL io is not active. */
AX_API bool ax_io_active(const ax_io_t *io);

/* ------------------------------------------------------------------------ */
/* Timers                                                                    */

typedef void (*ax_timer_cb)(ax_timer_t *timer);

struct ax_timer {
  /* public */
  void *data;
  /* read-only */
  ax_loop_t *loop;
  int64_t deadline; /* absolute CLOCK_MONOTONIC ns, while active (a stop
                       leaves the last one, and repeat, as they were) */
  int64_t repeat;   /* 0 = one-shot */
  /* private */
  ax_timer_cb cb_;
  uint64_t seq_; /* start order: equal deadlines fire first-started first */
  ax_timer_t *child_, *sibling_, *prev_; /* pairing-heap links */
  unsigned flags_;
};

/* Initialises a timer; it starts inactive (initialising an active timer is
 * undefined: stop it first).  Errors: -EINVAL (NULL loop, timer or cb). */
AX_API int ax_timer_init(ax_loop_t *loop, ax_timer_t *timer, ax_timer_cb cb);

/* Starts the timer: it fires timeout_ns after the loop's cached time
 * (ax_loop_now), then every repeat_ns if repeat_ns > 0.  A repeating timer's
 * next deadline is the previous deadline plus repeat_ns; if the loop fell
 * further behind than that, the next deadline is now + repeat_ns (missed
 * periods are skipped, never fired in a burst).  Timers with equal deadlines
 * fire in the order they were started.  Start is O(1); stop is O(1) for a
 * timer that has no later timers below it in the heap (the usual case for a
 * timeout reset before it fires) and O(log n) amortised otherwise; firing is
 * O(log n) amortised.
 * Errors: -EINVAL (NULL timer, timeout_ns < 0, repeat_ns < 0, timer active). */
AX_API int ax_timer_start(ax_timer_t *timer, int64_t timeout_ns, int64_t repeat_ns);

/* Like ax_timer_start(), with an absolute CLOCK_MONOTONIC deadline (see
 * ax_now()); a deadline in the past fires on the next pass.
 * Errors: -EINVAL (NULL timer, deadline_ns < 0, repeat_ns < 0, active). */
AX_API int ax_timer_start_at(ax_timer_t *timer, int64_t deadline_ns, int64_t repeat_ns);

/* Stops the timer if it is active, then starts it as ax_timer_start() does.
 * Errors: -EINVAL (NULL timer, timeout_ns < 0, repeat_ns < 0). */
AX_API int ax_timer_restart(ax_timer_t *timer, int64_t timeout_ns, int64_t repeat_ns);

/* Stops the timer; its callback will not run.  Stopping an inactive timer
 * does nothing and returns 0.  Errors: -EINVAL (NULL timer). */
AX_API int ax_timer_stop(ax_timer_t *timer);

/* True while the timer is started.  A repeating timer stays active inside
 * its own callback; a one-shot timer is inactive there (restart it freely). */
AX_API bool ax_timer_active(const ax_timer_t *timer);

/* ------------------------------------------------------------------------ */
/* Signals                                                                   */

/* Called once per delivered signal with the kernel's description of it
 * (ssi_signo, ssi_pid, ssi_uid, ssi_code, ...). */
struct signalfd_siginfo;
typedef void (*ax_signal_cb)(ax_signal_t *sig, const struct signalfd_siginfo *info);

struct ax_signal {
  /* public */
  void *data;
  /* read-only */
  ax_loop_t *loop;
  int signo; /* while active */
  /* private */
  ax_signal_cb cb_;
  ax_signal_t *next_, *prev_; /* the loop's list for this signal */
  uint64_t seq_;
  unsigned flags_;
};

/* Initialises a signal watcher; it starts inactive (initialising an active
 * one is undefined: stop it first).  Errors: -EINVAL (NULL loop, sig or cb). */
AX_API int ax_signal_init(ax_loop_t *loop, ax_signal_t *sig, ax_signal_cb cb);

/* Starts delivering signal signo to the callback.  Several watchers, on the
 * same loop, may watch one signal: each gets every delivery.  The loop reads
 * signals through a signalfd; the first watcher of a signal blocks it in the
 * calling thread, and the last one to stop restores the thread's previous
 * mask for it (a signal still pending then gets its normal disposition).  In
 * a program with other threads, block the signal in all of them (before
 * creating them, with pthread_sigmask) or they may receive it instead.  A
 * process-directed signal goes to one reader only: watch a signal on one
 * loop per process.  Watchers started inside a signal callback see the next
 * delivery, not the current one.
 * Errors: -EINVAL (NULL sig, signo not in 1..SIGRTMAX, SIGKILL or SIGSTOP,
 * or sig active), -EMFILE/-ENFILE/-ENOMEM (creating the signalfd). */
AX_API int ax_signal_start(ax_signal_t *sig, int signo);

/* Stops the watcher.  Stopping an inactive watcher does nothing and returns
 * 0.  Errors: -EINVAL (NULL sig). */
AX_API int ax_signal_stop(ax_signal_t *sig);

/* True while the watcher is started. */
AX_API bool ax_signal_active(const ax_signal_t *sig);

/* ------------------------------------------------------------------------ */
/* Events (eventfd)                                                          */

/* Called with the number of notifications since the previous call (notifies
 * coalesce: ten ax_event_notify() calls before the loop wakes give one call
 * with count 10). */
typedef void (*ax_event_cb)(ax_event_t *ev, uint64_t count);

struct ax_event {
  /* public */
  void *data;
  /* read-only */
  ax_loop_t *loop;
  int fd; /* the eventfd: other threads and processes may write to it */
  /* private */
  ax_event_cb cb_;
  ax_io_t io_;
};

/* Initialises an event watcher and creates its eventfd (non-blocking,
 * close-on-exec); it starts inactive.  Release it with ax_event_close().
 * Errors: -EINVAL (NULL loop, ev or cb), -EMFILE/-ENFILE/-ENOMEM. */
AX_API int ax_event_init(ax_loop_t *loop, ax_event_t *ev, ax_event_cb cb);

/* Starts delivering notifications.  Notifications made while the watcher
 * was stopped are kept and delivered once it starts.
 * Errors: -EINVAL (NULL ev, closed, already active). */
AX_API int ax_event_start(ax_event_t *ev);

/* Stops delivering notifications (they keep accumulating in the eventfd).
 * Stopping an inactive watcher returns 0.  Errors: -EINVAL (NULL ev). */
AX_API int ax_event_stop(ax_event_t *ev);

/* Adds one to the event's count and wakes its loop.  Any thread, and
 * async-signal-safe (one write() to the eventfd).
 * Errors: -EINVAL (NULL or closed ev), -EAGAIN (the counter would overflow:
 * 2^64-2 notifications pending). */
AX_API int ax_event_notify(ax_event_t *ev);

/* Stops the watcher if needed and closes its eventfd.  Returns 0; closing a
 * closed event does nothing.  Errors: -EINVAL (NULL ev).  Loop thread; no
 * other thread may notify the event any more. */
AX_API int ax_event_close(ax_event_t *ev);

/* True while the watcher is started. */
AX_API bool ax_event_active(const ax_event_t *ev);

#ifdef __cplusplus
}
#endif

#endif /* AXON_LOOP_H */
