/* Ports: mailboxes for threads that are not actors, the bridge between threads and actors. */
#ifndef AXON_PORT_H
#define AXON_PORT_H

#include <stdint.h>

#include "axon/actor.h"
#include "axon/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * A port is a mailbox owned by an ordinary thread (a GUI thread, a worker
 * pool, a blocking library).  Actors send to ax_port_ref(port) like to any
 * actor; the thread takes messages with ax_port_recv(), blocking until a
 * deadline, or watches ax_port_fd() in its own poll loop.  The thread sends
 * to actors with ax_send() (which works from any thread).
 *
 * Threads: one thread at a time receives from a port (ax_port_recv,
 * ax_port_close); any thread may send to its reference.
 */

typedef struct ax_port ax_port_t;

/* Creates a port on rt with no bound: ax_port_new_opts(rt, NULL, port).
 * Errors: -EINVAL (NULL rt or port), -ENOMEM, -EMFILE/-ENFILE (no fd for
 * the eventfd).  Any thread. */
AX_API int ax_port_new(ax_rt_t *rt, ax_port_t **port);

typedef struct ax_port_opts {
  /* At most this many messages sent with ax_send, ax_send_owned,
   * ax_request or ax_reply wait in the port at once, counted from the
   * send until ax_port_recv takes them; one more send fails with -EAGAIN
   * (an owned buffer is released) and the sender tries again later.
   * axon's own messages do not count.  0: no bound, so a thread that
   * stops receiving lets its senders fill memory. */
  uint32_t max;
} ax_port_opts_t;

/* Creates a port on rt; opts NULL is all defaults (no bound).  Errors:
 * -EINVAL (NULL rt or port), -ENOMEM, -EMFILE/-ENFILE (no fd for the
 * eventfd).  Any thread. */
AX_API int ax_port_new_opts(ax_rt_t *rt, const ax_port_opts_t *opts, ax_port_t **port);

/* The port's reference, to give to actors.  Any thread. */
AX_API ax_ref_t ax_port_ref(const ax_port_t *port);

/* Takes the next message into *msg.  Its data stays valid until the next
 * ax_port_recv() or ax_port_close() on this port.  deadline is an absolute
 * CLOCK_MONOTONIC time in ns (see ax_now()): AX_FOREVER waits as long as it
 * takes, 0 does not wait.  A wait spins first for the runtime's spin_ns
 * (runtime.h; 50 us by default, never past the deadline), then sleeps:
 * a thread that waits often with nothing coming pays up to that much CPU
 * per wait (a 1 kHz poller: about 68 us of CPU a wait, 15 us with
 * spin_ns negative).  Owner thread.
 * Errors: -EINVAL (NULL port or msg, deadline negative and not
 * AX_FOREVER), -EAGAIN (deadline 0 and nothing queued), -ETIMEDOUT (the
 * deadline passed), -EINTR (a signal interrupted the wait), -ESHUTDOWN (the
 * runtime has stopped, every actor has finished, and nothing is queued: a
 * thread waiting here, or polling ax_port_fd, is woken for it, so that
 * Ctrl-C ends a program whose threads wait on ports).  What was queued
 * before is received first, and so is what other threads send later. */
AX_API int ax_port_recv(ax_port_t *port, int64_t deadline, ax_msg_t *msg);

/* An eventfd that is readable whenever messages may be waiting (it stays
 * readable until ax_port_recv() finds the port empty): add it to your own
 * poll/epoll set, and when it is readable call ax_port_recv(port, 0, &m)
 * until it returns -EAGAIN.  It may be readable with nothing queued (a
 * sender rings after it links its message, which a receive may take
 * first): the -EAGAIN receives that follow clear it, within 64 of them.
 * Do not read or close the fd yourself.  Any thread. */
AX_API int ax_port_fd(const ax_port_t *port);

/* Closes the port (its eventfd) and frees it: its reference becomes invalid (sends return -ESRCH) and
 * messages still queued are dropped as dead letters.  Owner thread; before
 * ax_rt_free().  Errors: -EINVAL (NULL port). */
AX_API int ax_port_close(ax_port_t *port);

#ifdef __cplusplus
}
#endif

#endif /* AXON_PORT_H */
