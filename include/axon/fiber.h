/* Fibers: actors written as straight-line code whose waits park the fiber, never the core. */
#ifndef AXON_FIBER_H
#define AXON_FIBER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "axon/actor.h"
#include "axon/common.h"
#include "axon/source.h"
#include "axon/stream.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * A fiber is an actor whose code is one function running on a stack of
 * its own.  Where a handler actor returns to wait for its next message, a
 * fiber calls a function that waits (ax_recv, ax_stream_read_until,
 * ax_sleep, ...): the fiber parks, its core runs other actors, and the call
 * returns when what it waits for arrived.  Nothing else changes: the fiber
 * has a reference, is sent to, monitored, named and stopped as any actor;
 * `self` is an ax_actor_t * that every call taking an owner accepts (a
 * stream, timer or monitor it opens reports to it).
 *
 * Threads.  Every function here may be called only by the fiber itself,
 * on its own stack: from its function or what that calls.  Called from a
 * handler actor, a hook or another thread, they return -EPERM.
 *
 * Deadlines are absolute times on ax_now()'s clock (ax_deadline(ns) makes
 * one from a duration); AX_FOREVER waits without limit and 0 does not
 * wait: the call returns what is already there (every message sent before
 * the call is looked at), else -ETIMEDOUT.
 *
 * Messages.  The messages a call did not ask for stay queued in the order
 * they came, for a later call: nothing that arrives while a fiber waits for
 * something else is lost or reordered.  A message a call returns (and the
 * bytes it points to) stays valid until the fiber's next waiting call or
 * its return; ax_msg_take works on it as in a behaviour.
 *
 * Sources a fiber owns.  Their messages come to the fiber like any other
 * (ax_recv returns them), but the calls below read them for you.  Unlike a
 * handler actor's, a fiber's stream or socket stays valid after its
 * AX_MSG_CLOSED until the fiber closes it (its calls then return the
 * error); whatever the fiber still owns when it returns is closed.
 *
 * Cancellation.  When the fiber is stopped (ax_stop, runtime shutdown),
 * the call it waits in returns -ECANCELED, and so does every later waiting
 * call at once; calls that do not wait (ax_send, ax_stream_write,
 * ax_stream_close) still work, so the fiber can say goodbye, clean up and
 * return.  A fiber must return once it sees -ECANCELED: it is stopping, and
 * its core runs nothing else until it does.  A fiber stopped before it ever
 * ran does not run at all (its terminate hook still runs).
 *
 * Never call what blocks the thread (sleep(), blocking read(), a
 * synchronous getaddrinfo, pthread_mutex_lock on a lock held long, ...):
 * the whole core, with every other actor on it, would wait.
 */

/* A fiber's function: runs once, on the fiber's stack.  Its return value is
 * the fiber's stop reason: 0 stops it normally (AX_REASON_NORMAL), a
 * negative code is a failure reported as that reason (as a behaviour's). */
typedef int (*ax_fiber_fn)(ax_actor_t *self, void *arg);

/* The smallest stack accepted; the default is documented in fibers.md. */
#define AX_FIBER_STACK_MIN ((size_t)16 * 1024)

/* Fiber options; zero-initialise, NULL means all defaults. */
typedef struct ax_fiber_opts {
  ax_placement_t placement; /* as ax_spawn_opts_t */
  unsigned core;            /* with AX_PLACE_CORE */
  ax_terminate_t terminate; /* runs on the fiber's core once it has stopped */
  ax_actor_t *monitor;      /* as ax_spawn_opts_t.monitor */
  uint64_t *monitor_id;
  ax_actor_t *link;         /* as ax_spawn_opts_t.link */
  /* Usable stack bytes (0: the default, 64 KiB), rounded up to pages; a
   * 64 KiB guard below it (address space only) catches an overflow, even
   * by a frame up to 64 KiB larger than what is left, which is reported
   * and aborts the process.  Only the pages the fiber touches take
   * memory. */
  size_t stack_size;
  ax_ref_t near; /* with AX_PLACE_NEAR, as ax_spawn_opts_t.near */
  /* As ax_spawn_opts_t.mailbox_max; a message the fiber has not received
   * yet (kept aside while it waits for another) still counts. */
  uint32_t mailbox_max;
} ax_fiber_opts_t;

/* Spawns a fiber running fn(self, arg); ax_state(self) is arg.  It starts
 * on its core as soon as that core gets to it.  Stores its reference in
 * *ref when ref is not NULL.  Any thread, as ax_spawn.  Errors: -EINVAL
 * (NULL rt or fn, a bad placement or core, stack_size below
 * AX_FIBER_STACK_MIN or above 1 GiB, a monitor of another runtime),
 * -ENOMEM, -ESHUTDOWN.  Its stack is made on its core when it starts
 * (taken from that core's cache of freed stacks when one is there): a
 * fiber whose stack cannot be mapped (out of memory, vm.max_map_count on
 * old kernels) never runs and stops with reason -ENOMEM, which a monitor
 * (opts.monitor) reports. */
AX_API int ax_spawn_fiber(ax_rt_t *rt, ax_fiber_fn fn, void *arg, const ax_fiber_opts_t *opts,
                          ax_ref_t *ref);

/* True when self is a fiber (self: a valid actor pointer).  Any thread. */
AX_API bool ax_is_fiber(const ax_actor_t *self);

/* The deadline ns nanoseconds from now: AX_FOREVER stays AX_FOREVER, and
 * so does a duration too long to add to now; a negative one is now. */
static inline int64_t ax_deadline(int64_t ns) {
  if (ns == AX_FOREVER)
    return AX_FOREVER;
  int64_t now = ax_now();
  if (ns < 0)
    return now;
  return ns > INT64_MAX - now ? AX_FOREVER : now + ns;
}

/* ------------------------------------------------------------------------ */
/* Messages                                                                  */

/* Waits for the next message and stores it in *msg.  Returns 0.  Errors:
 * -ETIMEDOUT, -ECANCELED, -EINVAL (NULL msg), -EPERM (self NULL or not the
 * calling fiber), -ENOMEM (no memory for the deadline's timer, or for the
 * message a deadline of 0 sends the fiber itself).  A deadline is an
 * absolute time (ax_deadline); AX_FOREVER (-1) waits without limit, and
 * every other value not after now (0, any other negative one) polls.  A
 * stream's AX_MSG_EOF or AX_MSG_CLOSED taken here is taken for the stream
 * calls too: they report that end from then on. */
AX_API int ax_recv(ax_actor_t *self, int64_t deadline, const ax_msg_t **msg);

/* Waits for the next message of the given type; the others stay queued in
 * order.  Errors: as ax_recv, -EINVAL for type 0. */
AX_API int ax_recv_type(ax_actor_t *self, uint32_t type, int64_t deadline,
                        const ax_msg_t **msg);

/* Waits for the reply to the request req (ax_request's id): the message
 * whose ax_msg_t.req is req.  Errors: as ax_recv, -EINVAL for req 0. */
AX_API int ax_recv_reply(ax_actor_t *self, uint64_t req, int64_t deadline,
                         const ax_msg_t **msg);

/* Request and reply in one call, Erlang's gen_server:call: monitors `to`,
 * sends it the request (ax_request: type, a copy of data) and waits for
 * its reply (the message whose req is the request's id, sent with
 * ax_reply), the other messages staying queued in order.  A target that
 * stops before it replies, or did not exist, ends the wait at once with
 * -ESRCH instead of the deadline (its DOWN is taken; use ax_monitor and
 * ax_request yourself for the reason).  The monitor is gone when the call
 * returns, its DOWN with it.  A reply that comes after the call returned
 * without it (-ETIMEDOUT, -ESRCH, -ECANCELED) is dropped on arrival,
 * however many calls gave up: ax_reply marks the reply to a call (its
 * ax_msg_t.req differs from the request's).  A fiber asked to stop sends nothing
 * (-ECANCELED).  Stores the reply in *reply (valid until the
 * fiber's next waiting call).  Returns 0.  Errors: -ESRCH, -ETIMEDOUT,
 * -ECANCELED, -EPERM (self NULL or not the calling fiber), -EINVAL (reply
 * NULL, to AX_REF_NONE, self, a port's reference or an actor of another runtime,
 * type 0, size over AX_MSG_MAX), -EAGAIN (to's mailbox is full:
 * mailbox_max), -ENOMEM (out of memory here or on the target's core, which
 * could not watch the call: the request may have reached the target and
 * been handled, so do not take -ENOMEM for "not done"). */
AX_API int ax_call(ax_actor_t *self, ax_ref_t to, uint32_t type, const void *data, size_t size,
                   int64_t deadline, const ax_msg_t **reply);

/* A predicate for ax_recv_match: true for the message wanted.  It runs on
 * the fiber's core, on the scheduler's stack: it must not wait or send. */
typedef bool (*ax_match_fn)(const ax_msg_t *msg, void *arg);

/* Waits for the first message match(msg, arg) accepts; the others stay
 * queued in order.  Errors: as ax_recv, -EINVAL for a NULL match. */
AX_API int ax_recv_match(ax_actor_t *self, ax_match_fn match, void *arg, int64_t deadline,
                         const ax_msg_t **msg);

/* Parks the fiber for ns nanoseconds (ax_sleep_until: until deadline);
 * messages arriving meanwhile stay queued.  AX_FOREVER parks it until it
 * is stopped (-ECANCELED); a duration of 0 or below is ax_yield.  Returns
 * 0.  Errors: -ECANCELED, -EPERM, -ENOMEM (no memory for the wake-up). */
AX_API int ax_sleep(ax_actor_t *self, int64_t ns);
AX_API int ax_sleep_until(ax_actor_t *self, int64_t deadline);

/* Lets every other runnable actor of the core run once, then goes on.
 * Returns 0.  Errors: -ECANCELED, -EPERM, -ENOMEM. */
AX_API int ax_yield(ax_actor_t *self);

/* ------------------------------------------------------------------------ */
/* Streams (TCP, unix, pipes, serial ports) owned by the fiber               */

/* These read the bytes of AX_MSG_DATA, so the stream must use
 * AX_FRAME_RAW (the default).  Errors common to all: -EINVAL (NULL
 * arguments, a framed stream), -EPERM (the stream is not this fiber's, or
 * the caller is no fiber), -ENOMEM (the stream's read state, made by the
 * first call), -ETIMEDOUT, -ECANCELED, and the stream's end
 * reason once it ended with an error (-ECONNRESET, -EIO, ...).  A call that
 * fails consumes nothing: the bytes it had read are read again by the next
 * call. */

/* Reads at least 1 and at most len bytes.  Returns the count, or 0 at the
 * end of the stream (the peer closed its side; every later read returns 0
 * too).  A len of 0 is -EINVAL: 0 means the end. */
AX_API ssize_t ax_stream_read(ax_stream_t *s, void *buf, size_t len, int64_t deadline);

/* Reads exactly len bytes.  Returns len; fewer when the stream ended first
 * (0 when it ended before any byte). */
AX_API ssize_t ax_stream_read_exact(ax_stream_t *s, void *buf, size_t len, int64_t deadline);

/* Reads up to and including the byte delim (0..255), at most max bytes.
 * Returns the length with the delimiter (a line "ok\n" is 3; an empty line
 * is 1).  At the end of the stream the last bytes come without delimiter
 * (check buf[n - 1]), then 0.  A line longer than max: -EMSGSIZE, with its
 * first max bytes consumed into buf; the rest of the line is what the next
 * call reads. */
AX_API ssize_t ax_stream_read_until(ax_stream_t *s, void *buf, size_t max, int delim,
                                    int64_t deadline);

/* Writes len bytes, waiting while the stream's write queue is at its
 * high-water mark (the peer reads slowly).  Returns 0 once every byte was
 * written or queued.  Errors: as ax_stream_write (-EPIPE, -ECONNRESET,
 * ...), -ETIMEDOUT, -ECANCELED: then a prefix of data may have been queued
 * already, and the stream is best closed.  Once the stream has ended (a
 * read of this fiber met its AX_MSG_CLOSED, or this call did), the end's
 * reason comes instead of ax_stream_write's -EPIPE: -EIO for a serial
 * device that hung up, -ECONNRESET for a peer that reset, -EPIPE for an
 * end without one. */
AX_API int ax_stream_write_all(ax_stream_t *s, const void *data, size_t len, int64_t deadline);

/* Waits for the next connection of l (owned by the fiber), which then
 * belongs to the fiber.  Stores the stream in *out and, when peer is not
 * NULL, the peer's address in *peer (*peer_len its length).  Errors:
 * -EINVAL, -EPERM, -ETIMEDOUT, -ECANCELED, or the listener's end reason. */
AX_API int ax_listener_accept(ax_listener_t *l, int64_t deadline, ax_stream_t **out,
                              struct sockaddr_storage *peer, socklen_t *peer_len);

/* Connects (as ax_tcp_connect / ax_unix_connect: host names resolve on a
 * thread of the work pool, never blocking the core) and waits until connected.
 * Stores the stream in *out.  Errors: as ax_tcp_connect, -ECONNREFUSED,
 * -ETIMEDOUT (the deadline or opts.connect_timeout), -ECANCELED,
 * AX_EAI(...) for a name that does not resolve. */
AX_API int ax_tcp_dial(ax_actor_t *self, const char *addr, const ax_stream_opts_t *opts,
                       int64_t deadline, ax_stream_t **out);
AX_API int ax_unix_dial(ax_actor_t *self, const char *path, const ax_stream_opts_t *opts,
                        int64_t deadline, ax_stream_t **out);

/* ------------------------------------------------------------------------ */
/* Datagrams and any fd                                                      */

/* Waits for the next datagram of d, copies at most cap bytes of it into
 * buf and, when from is not NULL, its sender into *from (*from_len its
 * length).  Returns the datagram's length as the socket received it: more
 * than cap when buf was too small (the rest is dropped).  A datagram
 * longer than the socket's max_packet (ax_dgram_opts_t) was already cut to
 * max_packet, which this call cannot tell: give max_packet room for the
 * largest datagram you expect.  Errors: as the stream calls.  Send with ax_dgram_send /
 * ax_dgram_sendto, which never wait. */
AX_API ssize_t ax_dgram_recv(ax_dgram_t *d, void *buf, size_t cap,
                             struct sockaddr_storage *from, socklen_t *from_len,
                             int64_t deadline);

/* Waits until fd (someone else's: axon never reads or closes it) is ready
 * for events (AX_READ | AX_WRITE | AX_PRI).  Returns the events that
 * happened (AX_HUP and AX_ERR included).  Errors: -EINVAL, -EPERM,
 * -EEXIST (the fd is watched on this core already), -ETIMEDOUT,
 * -ECANCELED, the loop's error. */
AX_API int ax_fd_wait(ax_actor_t *self, int fd, unsigned events, int64_t deadline);

#ifdef __cplusplus
}
#endif

#endif /* AXON_FIBER_H */
