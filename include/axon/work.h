/* Blocking work on the runtime's pool of threads, its result back as a message to the actor that asked. */
#ifndef AXON_WORK_H
#define AXON_WORK_H

#include <stdint.h>

#include "axon/actor.h"
#include "axon/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Some work cannot be done without blocking a thread: a library call with
 * no non-blocking form (getaddrinfo, a database client, a compression
 * routine), a long computation.  An actor hands it to the runtime's work
 * pool instead of running it on its core: the function runs on one of the
 * pool's threads, and its result comes back to the actor, on the actor's
 * core, as an AX_MSG_WORK message.  A fiber can call ax_work_call instead
 * and read the result as a return value.
 *
 * The pool.  Each runtime has one, bounded in threads and in work queued
 * (ax_rt_opts_t.work_threads and .work_queue: 4 threads and 1024 queued
 * by default).  Threads start when work arrives and none is idle, up to
 * the bound, and stay until the runtime is freed.  A thread that finds
 * nothing to do spins for the runtime's spin_ns (runtime.h) before it
 * sleeps, one thread at a time, so that work submitted meanwhile starts
 * without a wake-up.  Work runs in the order it was submitted.  A submit
 * that finds the queue full fails with -EAGAIN: nothing grows without
 * bound behind a slow pool, and the caller decides whether to retry
 * later, shed the work or run it elsewhere.
 *
 * What runs on the pool.  fn runs on a thread that is no core: it may
 * block, but it must not call what belongs to an actor (ax_self, ax_after,
 * a source's calls, ...).  ax_send works from it, as from any thread.
 * Every asynchronous signal is blocked on the pool's threads.  arg is the
 * caller's: it must stay valid until the result is handled, or until
 * dispose has run for it.
 *
 * Nothing is lost, nothing arrives late.  The result message is allocated
 * when the work is submitted, so once ax_work_submit returned 0 the actor
 * gets exactly one AX_MSG_WORK for it, unless it cancels the work or
 * stops first.  Then the result is never delivered, and dispose(arg), when
 * given, runs exactly once instead: where the work is when that happens
 * decides where (the canceller's core if fn had not started or had
 * finished, the pool thread just after fn returns if it was running).
 *
 * Stopping.  An actor that stops cancels its work: what had not started
 * never runs, what runs finishes on its thread and its result is dropped.
 * When the runtime stops, it waits for the functions still running before
 * ax_rt_join returns (a function that never returns keeps the runtime from
 * stopping).
 */

/* A function run on the pool: its return value is the result (by
 * convention >= 0 on success, a negative errno value on failure). */
typedef int64_t (*ax_work_fn)(void *arg);

/* Frees or releases arg when its result will not be delivered. */
typedef void (*ax_work_dispose_fn)(void *arg);

/* The payload of AX_MSG_WORK. */
typedef struct ax_work_done {
  uint64_t id;    /* what ax_work_submit stored in *id */
  void *arg;      /* the arg given to ax_work_submit */
  int64_t result; /* fn's return value */
} ax_work_done_t;

/* Queues fn(arg) on the runtime's work pool; its result comes back to
 * self as an AX_MSG_WORK message (ax_work_done_t) on self's core.  Stores
 * the work's id (never 0, unique within the runtime) in *id when id is
 * not NULL.  dispose may be NULL.  self's own core (a behaviour, a hook or
 * a fiber).  Returns 0.  Errors: -EINVAL (NULL self or fn), -EPERM (not on
 * self's core), -EAGAIN (the queue is full, or no pool thread could
 * start), -ENOMEM, -ESHUTDOWN (the runtime is stopping).  When it fails,
 * neither fn nor dispose runs. */
AX_API int ax_work_submit(ax_actor_t *self, ax_work_fn fn, void *arg, ax_work_dispose_fn dispose,
                          uint64_t *id);

/* Cancels the work id of self: its result will not be delivered (an
 * AX_MSG_WORK for id already in the mailbox is dropped), and its dispose
 * runs (here, or on the pool thread once fn returns).  self's own core.
 * Returns 0 when fn had not started (it never runs), 1 when it is running
 * or has finished (a running fn is not interrupted).  Errors: -EINVAL
 * (NULL self, id 0), -EPERM (not on self's core), -ENOENT (no such work
 * of self: its result was handled already, or handed to a fiber that has
 * not received it yet; or the id is one of axon's own requests, such as a
 * file request's: file.h has no cancel, ax_file_close waits for it). */
AX_API int ax_work_cancel(ax_actor_t *self, uint64_t id);

/* From a fiber: runs fn(arg) on the pool and parks the fiber (not its
 * core) until it returns; returns fn's return value.  arg may point into
 * the fiber's stack: if the fiber is stopped while fn runs, this call
 * waits for fn to return before it returns -ECANCELED, and the fiber's
 * core waits with it (keep such functions short, or give them a way to be
 * interrupted); work that had not started is dropped at once.  Messages
 * arriving meanwhile stay queued.  Errors (when fn did not run, or was
 * interrupted by a stop): -EINVAL (NULL fn), -EPERM (not this fiber),
 * -ECANCELED (also where ax_work_submit would say -ESHUTDOWN: the runtime
 * is stopping, and this fiber with it), and ax_work_submit's others. */
AX_API int64_t ax_work_call(ax_actor_t *self, ax_work_fn fn, void *arg);

/* The pool of rt: threads started and idle, work queued and running,
 * results sent (done: a function that returned while its work was still
 * wanted; a result the owner cancelled or left unhandled after it was
 * sent counts in cancelled too, while a function cancelled as it ran
 * returns unseen and counts in cancelled only), work cancelled or
 * abandoned (queued, running or sent), submits refused with -EAGAIN. */
typedef struct ax_work_stats {
  unsigned threads, idle;
  unsigned queued, running;
  uint64_t done, cancelled, refused;
} ax_work_stats_t;

/* Copies rt's pool counters into *out.  Any thread.  Returns 0.  Errors:
 * -EINVAL (NULL argument). */
AX_API int ax_work_stats(ax_rt_t *rt, ax_work_stats_t *out);

#ifdef __cplusplus
}
#endif

#endif /* AXON_WORK_H */
