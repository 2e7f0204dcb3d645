/* Other message sources: datagrams, signals, eventfds, file-system events, raw fds. */
#ifndef AXON_SOURCE_H
#define AXON_SOURCE_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/signalfd.h>
#include <sys/socket.h>

#include "axon/actor.h"
#include "axon/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Each source here is owned by the actor that opened it (`self`, the running
 * actor) and registered on its core.  Threads: every function taking `self`
 * or a source handle belongs to the owner's behaviour or hooks, except where
 * it says otherwise.  A handle is valid until its close call returns or the
 * owner stops (its sources are closed then); after a close returns, no
 * message of that source reaches anyone, and the handle is invalid: any
 * call with it, a second close included, uses freed memory (debug builds
 * assert on a closed or freed handle and on a call from the wrong thread).
 * Messages (AX_MSG_DATAGRAM, AX_MSG_SIGNAL, AX_MSG_EVENT, AX_MSG_FS_EVENT,
 * AX_MSG_FD_READY: numbered in actor.h) carry `from` AX_REF_NONE and a
 * payload struct as named below.
 */

/* AX_MSG_CLOSED of a source here (streams have ax_stream_ev_t, which starts
 * the same way): the source ended on its own, because the loop could no
 * longer watch its fd (err: -ENOMEM, -ENOSPC when the kernel's limit of
 * watched fds is reached, ...).  It is the source's last message; the
 * handle stays valid until the behaviour returns, then the source is
 * closed (calling its close function meanwhile is allowed). */
typedef struct ax_source_ev {
  void *source; /* the handle: ax_dgram_t *, ax_efd_t *, ax_fswatch_t *, ... */
  int err;
} ax_source_ev_t;

/* ------------------------------------------------------------------------ */
/* Datagrams: UDP (v4/v6) and unix datagram sockets                         */

typedef struct ax_dgram ax_dgram_t;

/* AX_MSG_DATAGRAM's payload; bytes valid until the behaviour returns.
 * truncated: the packet was longer than max_packet and was cut. */
typedef struct ax_datagram {
  ax_dgram_t *dgram;
  struct sockaddr_storage from;
  socklen_t from_len;
  bool truncated;
  size_t len;
  const unsigned char *bytes;
} ax_datagram_t;

/* Datagram options; zero-initialise, NULL means defaults. */
typedef struct ax_dgram_opts {
  unsigned window;     /* at most this many unhandled AX_MSG_DATAGRAM (64) */
  unsigned burst;      /* packets read per readiness event (32) */
  size_t max_packet;   /* receive size (65536) */
  int sndbuf, rcvbuf;  /* when > 0 */
  bool broadcast;      /* SO_BROADCAST */
} ax_dgram_opts_t;

/* Binds a UDP socket to addr ("host:port", "[v6]:port", ":port"; numeric
 * or resolved here synchronously).  Errors: -EINVAL, -EADDRINUSE, ... */
AX_API int ax_udp_bind(ax_actor_t *self, const char *addr, const ax_dgram_opts_t *opts,
                       ax_dgram_t **out);

/* Binds a unix datagram socket to path ('@' first: abstract), or to an
 * autobound abstract name when path is NULL.  Errors: -EINVAL (NULL self
 * or out, a path that is empty or too long, bad options), -EADDRINUSE,
 * -EACCES, -EMFILE, -ENOMEM. */
AX_API int ax_unix_dgram(ax_actor_t *self, const char *path, const ax_dgram_opts_t *opts,
                         ax_dgram_t **out);

/* Sends one datagram to addr (NULL: the connected peer).  Never blocks and
 * never queues: a full socket buffer is -EAGAIN (datagrams may be dropped;
 * the caller decides).  Errors: -EINVAL, -EAGAIN, -EMSGSIZE, -ECONNREFUSED
 * (from an earlier send on a connected socket, or a unix peer's socket
 * that nobody reads any more), -ENOENT (a unix path with no socket file),
 * ... (sendto(2)'s error). */
AX_API int ax_dgram_send(ax_dgram_t *d, const struct sockaddr *addr, socklen_t addr_len,
                         const void *data, size_t len);

/* Like ax_dgram_send, to an address string (numeric only for UDP; a path
 * for unix sockets).  Errors: as ax_dgram_send; -EINVAL also for an
 * address that does not parse. */
AX_API int ax_dgram_sendto(ax_dgram_t *d, const char *addr, const void *data, size_t len);

/* Connects the socket to one peer (address string as above): sends
 * without an address go there, and only its packets arrive.  Returns 0.
 * Errors: -EINVAL (NULL, an address that does not parse), or connect(2)'s
 * error (-ECONNREFUSED for a unix path nobody bound, ...). */
AX_API int ax_dgram_connect(ax_dgram_t *d, const char *addr);

/* The bound port of a UDP socket.  Errors: -EINVAL (NULL, a unix
 * socket). */
AX_API int ax_dgram_port(const ax_dgram_t *d);

/* The socket, for setsockopt (multicast membership, ...); do not read,
 * write or close it.  Errors: -EINVAL (NULL). */
AX_API int ax_dgram_fd(const ax_dgram_t *d);

/* Closes the socket; no AX_MSG_DATAGRAM of it is delivered after this
 * returns, not even one already queued.  Returns 0.  Errors: -EINVAL
 * (NULL). */
AX_API int ax_dgram_close(ax_dgram_t *d);

/* ------------------------------------------------------------------------ */
/* Signals                                                                   */

/* AX_MSG_SIGNAL's payload: the kernel's signalfd record (ssi_signo,
 * ssi_pid, ssi_uid, ssi_code, ...). */
typedef struct signalfd_siginfo ax_signal_msg_t;

/* Subscribes self to signo: each time the process receives it, self gets
 * AX_MSG_SIGNAL.  One core of the runtime reads a signalfd and fans each
 * signal out to every subscriber, on any core.  While SIGINT or SIGTERM
 * has a subscriber, it no longer stops the runtime by itself.
 * The runtime blocks the signals it handles in its own threads and in the
 * thread that started it; block them in threads you create yourself, or
 * the kernel may deliver them there.  Watchable: SIGHUP, SIGINT, SIGQUIT,
 * SIGUSR1, SIGUSR2, SIGALRM, SIGTERM, SIGCHLD, SIGWINCH and SIGRTMIN..
 * SIGRTMAX.  Subscriptions end when the actor stops.
 * Errors: -EINVAL (NULL self, a signal outside that set), -ENOTSUP (the
 * runtime was made with AX_RT_NO_SIGNALS), -ENOMEM. */
AX_API int ax_signal_watch(ax_actor_t *self, int signo);

/* Ends a subscription.  Errors: -EINVAL, -ENOENT (not subscribed). */
AX_API int ax_signal_unwatch(ax_actor_t *self, int signo);

/* ------------------------------------------------------------------------ */
/* eventfd                                                                   */

typedef struct ax_efd ax_efd_t;

/* AX_MSG_EVENT's payload. */
typedef struct ax_event_msg {
  ax_efd_t *efd;
  uint64_t count; /* the sum of the values written since the last message */
} ax_event_msg_t;

/* Creates an eventfd owned by self: whatever writes to it (ax_efd_notify,
 * another thread, another process that inherited or received the fd)
 * makes self receive AX_MSG_EVENT with the accumulated count.
 * Errors: -EINVAL, -EMFILE, -ENFILE, -ENOMEM. */
AX_API int ax_efd_open(ax_actor_t *self, ax_efd_t **out);

/* The eventfd (write 8-byte counts to it; do not read or close it).
 * Any thread while the source is open.  Errors: -EINVAL (NULL). */
AX_API int ax_efd_fd(const ax_efd_t *e);

/* Adds n (> 0) to the counter.  Any thread, as long as the source is open
 * (it closes when its owner stops, and the handle is freed: a thread that
 * may outlive the owner writes to a dup of ax_efd_fd instead, see
 * docs/io/eventfd.md).  Errors: -EINVAL, -EAGAIN (counter full). */
AX_API int ax_efd_notify(ax_efd_t *e, uint64_t n);

/* Closes the eventfd; no AX_MSG_EVENT of it is delivered after this
 * returns.  Returns 0.  Errors: -EINVAL (NULL). */
AX_API int ax_efd_close(ax_efd_t *e);

/* ------------------------------------------------------------------------ */
/* File-system events: inotify and fanotify                                  */

typedef struct ax_fswatch ax_fswatch_t;

/* AX_MSG_FS_EVENT's payload.  mask holds IN_* bits (inotify) or FAN_*
 * bits (fanotify).  IN_Q_OVERFLOW in mask: the kernel queue overflowed and
 * events were lost (name empty).  name: the file name inside a watched
 * directory (inotify), or the path of the file (fanotify); "" when none. */
typedef struct ax_fs_event {
  ax_fswatch_t *watch;
  uint32_t mask;
  uint32_t cookie; /* pairs IN_MOVED_FROM with IN_MOVED_TO */
  int32_t pid;     /* fanotify: the process that caused it; 0 for inotify */
  const char *name;
} ax_fs_event_t;

/* Watches path with inotify (mask: IN_* bits, with IN_ONLYDIR,
 * IN_DONT_FOLLOW, IN_EXCL_UNLINK, IN_ONESHOT).  Each watch gets the events
 * of its own mask and flags, even where several of self's watches share
 * one file.  Owner's core.  Errors: -EINVAL (NULL arguments, no IN_*
 * event, other bits), -ENOENT, -EACCES, -ENOTDIR (IN_ONLYDIR), -ENOSPC
 * (the user's inotify watch limit), -EMFILE (an inotify instance was
 * needed: max_user_instances, or no fd), -ENOMEM. */
AX_API int ax_fs_watch(ax_actor_t *self, const char *path, uint32_t mask, ax_fswatch_t **out);

/* Watches path with fanotify (mask: FAN_* bits; flags: FAN_MARK_* such as
 * FAN_MARK_MOUNT, 0 for the inode).  Needs CAP_SYS_ADMIN: -EPERM without
 * it.  Notification events only (no permission events). */
AX_API int ax_fan_watch(ax_actor_t *self, const char *path, uint64_t mask, unsigned flags,
                        ax_fswatch_t **out);

/* Ends an inotify or fanotify watch; no AX_MSG_FS_EVENT of it is
 * delivered after this returns.  Returns 0.  Errors: -EINVAL (NULL). */
AX_API int ax_fswatch_close(ax_fswatch_t *w);

/* ------------------------------------------------------------------------ */
/* Raw fds: how external libraries plug in                                   */

typedef struct ax_fdwatch ax_fdwatch_t;

/* AX_MSG_FD_READY's payload.  revents: AX_READ, AX_WRITE, AX_PRI, AX_HUP,
 * AX_ERR (loop.h). */
typedef struct ax_fd_ready {
  ax_fdwatch_t *watch;
  int fd;
  unsigned revents;
} ax_fd_ready_t;

/* Watches an fd someone else owns (axon never reads, writes or closes it)
 * for events (AX_READ | AX_WRITE | AX_PRI).  One-shot: after one
 * AX_MSG_FD_READY the watch is disarmed until ax_fdwatch_rearm.
 * Errors: -EINVAL (NULL, bad fd, no events), -EEXIST (the fd is watched
 * on this core already), -EPERM (a regular file: always ready). */
AX_API int ax_fd_watch(ax_actor_t *self, int fd, unsigned events, ax_fdwatch_t **out);

/* Arms the watch again, with a possibly different event set (0 disarms).
 * After AX_MSG_FD_READY this is one epoll_ctl; a watch re-armed while
 * still armed, or whose fd number now names another file, is registered
 * afresh.  Returns 0.  Errors: -EINVAL (NULL, unknown bits, a closed
 * watch), -EBADF (the fd is closed; the watch stays disarmed), -EEXIST
 * (another source of this core took the fd), -ENOMEM. */
AX_API int ax_fdwatch_rearm(ax_fdwatch_t *w, unsigned events);

/* Stops watching (the fd stays open: it is not axon's); no
 * AX_MSG_FD_READY of it is delivered after this returns.  Returns 0.
 * Errors: -EINVAL (NULL). */
AX_API int ax_fdwatch_close(ax_fdwatch_t *w);

#ifdef __cplusplus
}
#endif

#endif /* AXON_SOURCE_H */
