/* The runtime: one thread per core, each owning a loop, a run queue and its actors. */
#ifndef AXON_RUNTIME_H
#define AXON_RUNTIME_H

#include <stdbool.h>
#include <stdint.h>

#include "axon/common.h"
#include "axon/loop.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * A runtime starts one thread per core.  Each core owns an ax_loop_t, a run
 * queue of actors that have messages, and the actors spawned on it: an
 * actor never moves, so its state needs no locks.  Cores hand work to each
 * other only through lock-free queues, and a core that has nothing to do
 * spins for a while, then sleeps in its loop until a message, an fd event or
 * a timer wakes it.
 *
 * Threads: ax_rt_stop() and ax_rt_stats() may be called from any thread;
 * ax_rt_new/run/start/join/free from one controlling thread (normally
 * main), never from a runtime thread.
 */

typedef struct ax_rt ax_rt_t;

/* Flags for ax_rt_opts_t.flags. */
enum {
  AX_RT_NO_PIN = 0x1,     /* do not pin core threads to CPUs */
  AX_RT_NO_SIGNALS = 0x2, /* claim no signal: no graceful stop on SIGINT/SIGTERM,
                             ax_signal_watch returns -ENOTSUP */
  AX_RT_KEEP_ALIVE = 0x4, /* keep running when no actor is left */
};

/* Runtime options.  Zero-initialise and set what you need; every zero field
 * means its default, and NULL options mean all defaults. */
typedef struct ax_rt_opts {
  unsigned cores;   /* threads; 0 = one per CPU in the process affinity mask */
  unsigned batch;   /* messages an actor handles per turn; 0 = 64 */
  int64_t spin_ns;  /* how long an idle core (and one idle thread of the
                       work pool, and a thread waiting in ax_port_recv)
                       spins before sleeping; 0 = 50 us (no
                       spinning when the process may run on one CPU
                       only), negative = never spin; at most INT64_MAX / 4
                       (larger is taken as that) */
  unsigned flags;   /* AX_RT_* */
  ax_backend_t backend; /* each core's loop backend; 0 = AXON_BACKEND or epoll */
  unsigned work_threads; /* the work pool's threads at most (work.h); 0 = 4 */
  unsigned work_queue;   /* work queued and not yet running at most; 0 = 1024 */
  int64_t spill_ns;      /* how long AX_PLACE_SPILL or more actors must have
                            waited to run on a core before AX_PLACE_ANY from
                            that core puts a spawn on another one (actor.h);
                            0 = AX_PLACE_SPILL_NS (200 us), negative = never */
} ax_rt_opts_t;

/* The largest work_threads and work_queue accepted. */
#define AX_WORK_THREADS_MAX 1024u
#define AX_WORK_QUEUE_MAX (1u << 24)

/* The most cores a runtime can have. */
#define AX_MAX_CORES 64

/* Creates a runtime (no thread starts yet).  Up to 16 runtimes may exist at
 * once in a process.
 * Errors: -EINVAL (NULL rt, cores > AX_MAX_CORES, batch > 65536,
 * work_threads > AX_WORK_THREADS_MAX, work_queue > AX_WORK_QUEUE_MAX),
 * -ENOMEM, -EMFILE (no fd for a loop), -EAGAIN (16 runtimes exist). */
AX_API int ax_rt_new(const ax_rt_opts_t *opts, ax_rt_t **rt);

/* Starts the core threads and returns once every one of them runs (and
 * core 0 reads the claimed signals).  Actors may be spawned before or
 * after.  Core threads block every asynchronous signal.
 * Signals: unless AX_RT_NO_SIGNALS is set, the runtime claims SIGHUP,
 * SIGINT, SIGQUIT, SIGUSR1, SIGUSR2, SIGALRM, SIGTERM, SIGCHLD, SIGWINCH
 * and SIGRTMIN..SIGRTMAX: core 0 reads them through one signalfd and
 * sends each to the actors that subscribed with ax_signal_watch
 * (source.h).  A signal with no subscriber gets the runtime's default:
 * SIGHUP, SIGINT, SIGQUIT, SIGUSR1, SIGUSR2, SIGALRM and SIGTERM stop the
 * runtime gracefully (as ax_rt_stop; their own default would end the
 * process), SIGCHLD, SIGWINCH and the realtime signals are ignored.
 * Handlers installed with sigaction for these signals do not run while
 * the runtime claims them.  The calling thread keeps the set blocked from
 * here until ax_rt_join() returns (threads it creates meanwhile inherit
 * that).  Threads created before this call should block the set too, or
 * the kernel may deliver a signal there instead.  A signal sent to one
 * thread (raise, pthread_kill) reaches the runtime only when that thread
 * is core 0; send to the process (kill(getpid(), sig)) instead.  Only one runtime of a
 * process should claim signals: give the others AX_RT_NO_SIGNALS (every
 * runtime still saves the caller's mask here and restores it at its join:
 * join runtimes started from one thread in the reverse order of their
 * starts, so that the last join restores the mask of before the first).
 * Errors: -EINVAL (NULL rt, or already started), -EAGAIN/-ENOMEM (thread
 * creation failed; the threads started so far are stopped and joined, the
 * actors stopped with AX_REASON_SHUTDOWN: such a runtime cannot be started
 * again, only freed; ax_rt_join returns 0 on it). */
AX_API int ax_rt_start(ax_rt_t *rt);

/* Waits until the runtime has stopped: ax_rt_stop() was called, a signal
 * that stops it arrived (see ax_rt_start), or no actor is left (unless
 * AX_RT_KEEP_ALIVE).  Actors still alive are then stopped with reason
 * AX_REASON_SHUTDOWN (their terminate hooks run, on their cores) and the
 * threads exit; messages still queued between the cores are dropped and
 * counted as dead letters before this returns (ax_rt_stats is complete).  Then the calling thread's signal mask is restored as it
 * was before ax_rt_start.  A second thread that calls it meanwhile waits
 * for the first join and returns 0, its own mask untouched; a later call
 * returns 0 at once.  Returns 0.  Errors: -EINVAL (NULL rt, never started),
 * -EDEADLK (called from a core thread). */
AX_API int ax_rt_join(ax_rt_t *rt);

/* ax_rt_start() then ax_rt_join(): runs the runtime on the calling thread's
 * behalf until it stops.  Errors: those of ax_rt_start and ax_rt_join. */
AX_API int ax_rt_run(ax_rt_t *rt);

/* Asks the runtime to stop.  Any thread; async-signal-safe.  Returns at
 * once; ax_rt_join() waits for the stop to complete. */
AX_API void ax_rt_stop(ax_rt_t *rt);

/* Frees a runtime that was never started or has been joined.  Messages
 * still queued (for ports, or sent after the stop) are dropped and counted
 * as dead letters.  No other thread may use the runtime or its refs during
 * or after the call.  Errors: -EINVAL (NULL rt), -EBUSY (started and not
 * joined). */
AX_API int ax_rt_free(ax_rt_t *rt);

/* The number of cores (threads) of the runtime.  Any thread. */
AX_API unsigned ax_rt_cores(const ax_rt_t *rt);

/* Per-core statistics.  Each counter is written by its core and read here
 * without stopping it, so a snapshot is approximate while the runtime runs
 * and exact after ax_rt_join(): messages still queued in ports then are in
 * neither delivered nor dead_letters (ax_port_recv may take them yet).
 * sent and dead_letters count axon's own messages too (a DOWN, a
 * LINK_DOWN: a DOWN for a watcher that stopped first is a dead letter),
 * except timer ticks and source events (I/O), which are counted in
 * delivered only. */
typedef struct ax_core_stats {
  uint64_t sent;         /* messages sent by code running on this core */
  uint64_t delivered;    /* messages handled by this core's actors */
  uint64_t dead_letters; /* messages accepted, then dropped: the receiver stopped before
                            handling them (a send refused with -ESRCH is not one) */
  uint64_t spawned;      /* actors spawned onto this core */
  uint64_t actors;       /* actors alive on this core */
  uint64_t wakeups;      /* times another thread woke this core (eventfd) */
  uint64_t sleeps;       /* times this core went to sleep in its loop */
  uint64_t polls;        /* non-blocking I/O polls between rounds */
  uint64_t runq_len;     /* actors waiting in the run queue now */
  uint64_t turn_max;  /* most messages one actor handled in one turn */
  uint64_t accept_errors; /* accepts refused by overload (EMFILE, ENFILE, ...): each one
                             pauses that listener with a back-off */
  uint64_t released; /* bytes this core gave back to the kernel once idle after a burst
                        (empty message and actor pages, slots of stopped actors) */
  uint64_t barriers; /* times this core, going to sleep after a thread or core had sent it
                        many messages without a fence, made the process's threads fence
                        (membarrier(2); actors.md, "Threads that are no core") */
} ax_core_stats_t;

/* Copies the statistics of core `core` (0 .. ax_rt_cores()-1) into *out.
 * Any thread.  Errors: -EINVAL (NULL rt or out, core out of range). */
AX_API int ax_rt_stats(const ax_rt_t *rt, unsigned core, ax_core_stats_t *out);

/* The same, summed over every core. */
AX_API int ax_rt_stats_total(const ax_rt_t *rt, ax_core_stats_t *out);

#ifdef __cplusplus
}
#endif

#endif /* AXON_RUNTIME_H */
