/* Streams as messages: TCP, unix stream sockets, pipes and serial ports owned by an actor. */
#ifndef AXON_STREAM_H
#define AXON_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "axon/actor.h"
#include "axon/common.h"
#include "axon/runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * A stream is a byte pipe (a connected socket, a pipe pair, a tty) owned by
 * one actor and registered on that actor's core.  Everything the kernel says
 * about it arrives as a message to the owner; the owner writes, pauses,
 * closes or gives it away.  A listener is a listening socket that delivers
 * AX_MSG_ACCEPT.
 *
 * Threads.  Every function here taking an ax_stream_t or ax_listener_t may
 * only be called by the owning actor, from its behaviour or hooks; those
 * that open a source take the owner as `self` (the running actor).
 * ax_tcp_serve, ax_server_port and ax_server_close may be called from any
 * thread.
 *
 * Lifetime.  A stream handle is valid from the call that opened it (or the
 * message that delivered it) until the owner calls ax_stream_close(), or
 * until the behaviour returns from the stream's AX_MSG_CLOSED message, or
 * until the owner stops (its streams are closed then).  After
 * ax_stream_close() returns, no message of that stream reaches anyone, not
 * even one already queued.  Listeners likewise.  A closed handle is
 * invalid: any call with it, a second ax_stream_close() included, uses
 * freed memory.  Debug builds (no NDEBUG) assert on a closed or freed
 * handle and on a call from a thread other than the owner's core. 
 *
 * Messages (ax_msg_t.type, numbered in actor.h; `from` is AX_REF_NONE,
 * `data` points at the payload struct named):
 *   AX_MSG_ACCEPT       ax_accept_t: a listener accepted a connection
 *   AX_MSG_CONNECTED    ax_stream_ev_t: an ax_tcp_connect/ax_unix_connect
 *                       finished (err 0)
 *   AX_MSG_DATA         ax_data_t: bytes (one frame with framing on)
 *   AX_MSG_PASSIVE      ax_stream_ev_t: the count given to
 *                       ax_stream_active() is used up; reading stopped
 *   AX_MSG_WRITABLE     ax_stream_ev_t: the write queue, which had refused
 *                       a write with -ENOBUFS, drained below half the
 *                       high watermark
 *   AX_MSG_EOF          ax_stream_ev_t: the peer closed its side while the
 *                       stream is half-open (AX_STREAM_HALF_OPEN); the
 *                       stream can still be written.  It ends with
 *                       CLOSED{0} once its own side is shut too
 *                       (ax_stream_shutdown, its queue written), or with
 *                       CLOSED{err} when a write fails; a peer that
 *                       resets is noticed only by a write, so close a
 *                       half-open stream you no longer write to
 *   AX_MSG_FRAME_ERROR  ax_stream_ev_t: err -EMSGSIZE, a delimited frame
 *                       longer than max_frame was discarded (count: bytes
 *                       dropped, its delimiter included); reading goes on
 *                       after the next delimiter
 *   AX_MSG_CLOSED       ax_stream_ev_t: the stream is finished; err tells
 *                       why: 0 end of file / orderly close by the peer,
 *                       -ECONNRESET reset, -EPIPE write to a closed peer,
 *                       -EIO device hang-up or unplug, -ETIMEDOUT connect
 *                       timeout, -ECONNREFUSED, -EMSGSIZE length-prefixed
 *                       frame over max_frame, an AX_EAI_* resolver error, or
 *                       another -errno.  Sent once; the handle dies when the
 *                       behaviour returns.  After err 0, what was queued
 *                       for the peer still goes out, as at a close with
 *                       queued writes (linger).
 *   AX_MSG_GIVEN        ax_stream_ev_t: ax_stream_give() made this actor
 *                       the owner (also the first message of an
 *                       ax_tcp_serve session)
 */

typedef struct ax_stream ax_stream_t;
typedef struct ax_listener ax_listener_t;
typedef struct ax_server ax_server_t;

/* AX_MSG_DATA's payload.  bytes stay valid until the behaviour returns; with
 * delimiter framing they exclude the delimiter, with length-prefixed framing
 * the prefix. */
typedef struct ax_data {
  ax_stream_t *stream;
  size_t len;
  const unsigned char *bytes;
} ax_data_t;

/* The payload of the other stream messages. */
typedef struct ax_stream_ev {
  ax_stream_t *stream;
  int err;        /* AX_MSG_CLOSED, AX_MSG_FRAME_ERROR: the reason */
  uint64_t count; /* AX_MSG_FRAME_ERROR: bytes discarded (the delimiter included) */
} ax_stream_ev_t;

/* AX_MSG_ACCEPT's payload.  The new stream belongs to the listener's owner
 * and is already reading (hand it on with ax_stream_give, which keeps any
 * DATA it already read in order). */
typedef struct ax_accept {
  ax_listener_t *listener;
  ax_stream_t *stream;
  struct sockaddr_storage peer;
  socklen_t peer_len;
} ax_accept_t;

/* Framing: how received bytes are cut into AX_MSG_DATA messages. */
typedef enum ax_frame {
  AX_FRAME_RAW = 0, /* whatever one read returned (at most read_max) */
  AX_FRAME_DELIM,   /* up to a delimiter byte (lines by default) */
  AX_FRAME_LENGTH,  /* a 1, 2 or 4 byte big-endian length, then that many bytes */
} ax_frame_t;

enum { /* ax_stream_opts_t.flags */
  AX_STREAM_HALF_OPEN = 1 << 0, /* EOF from the peer is AX_MSG_EOF, not CLOSED */
  AX_STREAM_NODELAY = 1 << 1,   /* TCP_NODELAY (TCP only) */
  AX_STREAM_KEEPALIVE = 1 << 2, /* SO_KEEPALIVE (sockets only) */
  AX_STREAM_PAUSED = 1 << 3,    /* opened or accepted paused: ax_stream_resume */
};

/* ax_stream_opts_t.delim for a NUL delimiter (0 means the default, '\n'). */
#define AX_DELIM_NUL 0x100
/* ax_stream_opts_t.linger: drop queued writes at close, flush nothing. */
#define AX_LINGER_NONE ((int64_t)-2)

/* Stream options; zero-initialise, NULL means all defaults.  A zero field
 * takes its default (in brackets); where zero is a real value too (a NUL
 * delimiter, no linger), a named constant asks for it. */
typedef struct ax_stream_opts {
  unsigned flags;          /* AX_STREAM_* (another bit is -EINVAL) */
  unsigned window;         /* at most this many unhandled AX_MSG_DATA (8) */
  size_t read_max;         /* bytes read per readiness event (64 KiB) */
  size_t high_water;       /* queued write bytes refusing more writes (1 MiB) */
  ax_frame_t frame;        /* AX_FRAME_RAW */
  int delim;               /* AX_FRAME_DELIM: the delimiter byte 1..255 ('\n'),
                              or AX_DELIM_NUL */
  unsigned len_bytes;      /* AX_FRAME_LENGTH: 1, 2 or 4 (4) */
  size_t max_frame;        /* longest frame (64 KiB; at most 16 MiB) */
  int64_t connect_timeout; /* ns for resolve + connect (AX_FOREVER: none) */
  int64_t linger;          /* ns a closed stream keeps flushing queued writes (5 s);
                              AX_FOREVER: until written or the peer goes;
                              AX_LINGER_NONE: queued writes are dropped.
                              A TCP stream that drops queued bytes (here
                              or when the time ends) resets the
                              connection, so the peer sees ECONNRESET,
                              not an end of file after a cut */
  int sndbuf, rcvbuf;      /* SO_SNDBUF / SO_RCVBUF when > 0 */
} ax_stream_opts_t;

/* ------------------------------------------------------------------------ */
/* Opening                                                                   */

/* Address strings: "host:port", "[v6addr]:port", "v4addr:port", ":port" or
 * "*:port" (every address), where host may be a name, resolved without
 * blocking the core.  Bad syntax (no port, port > 65535, unbalanced
 * brackets, empty host for a connect) is -EINVAL at once. */

/* Connects to a TCP address.  On success *out is the stream, and
 * AX_MSG_CONNECTED or AX_MSG_CLOSED{err} follows.  A host name is resolved
 * on a thread of the work pool (work.h); every address it yields is tried in order.
 * opts.connect_timeout counts from this call.
 * Errors: -EINVAL (NULL argument, bad address), -ENOMEM, -EMFILE, -EAGAIN
 * (a host name, and the work pool's queue is full: work_queue names
 * waiting at once), ... */
AX_API int ax_tcp_connect(ax_actor_t *self, const char *addr, const ax_stream_opts_t *opts,
                          ax_stream_t **out);

/* Listens on a TCP address (numeric or a name, resolved synchronously
 * here: a listener is opened once).  backlog <= 0 means SOMAXCONN.  Each
 * connection arrives as AX_MSG_ACCEPT; accepted streams take opts.
 * Accept overload (EMFILE, ENFILE, ENOBUFS) pauses accepting with a growing
 * back-off (10 ms to 1 s) instead of spinning, and is counted in the core's
 * accept_errors statistic.  Errors: -EINVAL, -EADDRINUSE, -EACCES, ... */
AX_API int ax_tcp_listen(ax_actor_t *self, const char *addr, int backlog,
                         const ax_stream_opts_t *opts, ax_listener_t **out);

/* Unix stream sockets.  A path starting with '@' names an abstract socket
 * (Linux: no file).  ax_unix_listen unlinks nothing: remove a stale socket
 * file yourself.  Messages and errors as for TCP. */
AX_API int ax_unix_connect(ax_actor_t *self, const char *path, const ax_stream_opts_t *opts,
                           ax_stream_t **out);
AX_API int ax_unix_listen(ax_actor_t *self, const char *path, int backlog,
                          const ax_stream_opts_t *opts, ax_listener_t **out);

/* Adopts an fd pair as one stream: reads come from rfd, writes go to wfd
 * (either may be -1; they may be the same fd, e.g. a connected socket or a
 * tty).  The fds are made non-blocking and belong to the stream from now on
 * (ax_stream_close closes them), also when this call fails.
 * Errors: -EINVAL (NULL argument, both fds -1, an fd that is not open, bad
 * options), -EPERM (an fd epoll cannot watch: a regular file or a
 * directory; file.h reads files), -ENOMEM. */
AX_API int ax_pipe_open(ax_actor_t *self, int rfd, int wfd, const ax_stream_opts_t *opts,
                        ax_stream_t **out);

/* The bound port of a TCP listener (useful after listening on port 0).
 * Errors: -EINVAL (NULL, a unix listener, a closed one). */
AX_API int ax_listener_port(const ax_listener_t *l);

/* Stops listening and closes the socket; no AX_MSG_ACCEPT of it reaches
 * anyone afterwards.  Connections it had accepted whose AX_MSG_ACCEPT was
 * still queued are reset (their peers see ECONNRESET, as those still in
 * the kernel's backlog do: never served).
 * Errors: -EINVAL (NULL). */
AX_API int ax_listener_close(ax_listener_t *l);

/* ------------------------------------------------------------------------ */
/* Using a stream                                                            */

/* Writes len bytes: as much as the kernel takes now, the rest queued and
 * written in order as the fd becomes writable.  Nothing is lost or
 * reordered.  When the queue already holds high_water bytes or more, the
 * write is refused whole with -ENOBUFS and AX_MSG_WRITABLE follows when the
 * queue has drained below half of it.  Returns 0 (everything written or
 * queued).  Errors: -EINVAL (NULL stream, data NULL with len > 0, len >
 * AX_MSG_MAX: split larger writes), -ENOBUFS,
 * -EPIPE (the write side is shut down, or the stream has ended), -ENOMEM
 * (nothing written; or, when the kernel had already taken a part and the
 * rest found no memory to wait in, the stream ends as below, since that
 * part cannot be taken back), or the kernel's error for the immediate
 * write (-ECONNRESET, -EPIPE; -EIO for a tty), in which case the stream
 * ends and AX_MSG_CLOSED with the same error follows. */
AX_API int ax_stream_write(ax_stream_t *s, const void *data, size_t len);

/* Bytes written with ax_stream_write and not yet taken by the kernel (0
 * for NULL). */
AX_API size_t ax_stream_queued(const ax_stream_t *s);

/* Half-close: once the queued bytes are written, shuts the write side down
 * (shutdown(SHUT_WR); for a pipe pair, closes wfd).  Reading goes on; a
 * half-open stream whose peer's EOF has come ends then with CLOSED{0}.
 * Errors: -EINVAL, -ENOTCONN (not connected yet). */
AX_API int ax_stream_shutdown(ax_stream_t *s);

/* Closes the stream.  Queued writes are still flushed in the background
 * for up to opts.linger, then the fd is closed; no message of the stream
 * reaches anyone after this returns.  Errors: -EINVAL (NULL). */
AX_API int ax_stream_close(ax_stream_t *s);

/* Flow control.  A stream delivers at most `window` AX_MSG_DATA messages
 * that the owner has not handled yet; each one handled gives its credit back
 * automatically, so a slow owner pushes back on the kernel buffer (and the
 * TCP window) instead of growing its mailbox.
 *   ax_stream_pause    stop reading until ax_stream_resume (a paused
 *                      stream does not watch its fd: a peer that closes
 *                      or resets meanwhile is noticed once it reads
 *                      again, or by a write)
 *   ax_stream_resume   read again, without a count
 *   ax_stream_active   deliver n (> 0) more AX_MSG_DATA, then send
 *                      AX_MSG_PASSIVE and stop reading until called again
 *                      (Erlang's {active, N})
 * They govern reading: DATA already queued for the owner when they are
 * called (up to the window) still come, ahead of the n new ones or the
 * pause.  Owner's core.  Errors: -EINVAL (NULL stream, n <= 0). */
AX_API int ax_stream_pause(ax_stream_t *s);
AX_API int ax_stream_resume(ax_stream_t *s);
AX_API int ax_stream_active(ax_stream_t *s, int n);

/* Hands the stream to another actor, maybe on another core: the fd moves
 * to that core's loop, bytes already read (AX_MSG_DATA still in this
 * actor's mailbox, a partial frame) go with it in order, and the new owner
 * receives AX_MSG_GIVEN before any of them.  The handle stays the same
 * pointer, but after this returns only the new owner may use it.  If the
 * new owner stops before taking it, the stream is closed.  From a fiber:
 * the message of this stream its last call returned ends here, and a
 * fiber still holding bytes of it (read in part, or DATA kept while it
 * waited for something else) gets -EBUSY: read them first.
 * Errors: -EINVAL (NULL stream, to AX_REF_NONE or a port, a stream that is
 * still connecting), -ESRCH (no such actor), -EXDEV (another runtime),
 * -EBUSY. */
AX_API int ax_stream_give(ax_stream_t *s, ax_ref_t to);

/* Socket options (sockets only; -ENOTSOCK otherwise).  keepalive idle is
 * in seconds (0: the system's default).  Return 0.  Errors: -EINVAL (NULL,
 * a negative size or idle time), -ENOTSOCK (set_nodelay: not TCP), or
 * setsockopt's error. */
AX_API int ax_stream_set_nodelay(ax_stream_t *s, bool on);
AX_API int ax_stream_set_keepalive(ax_stream_t *s, bool on, int idle_s);
AX_API int ax_stream_set_bufsize(ax_stream_t *s, int sndbuf, int rcvbuf);

/* The read fd (or the write fd for a write-only pipe), for ioctls and
 * getsockopt.  Do not read, write or close it.  Errors: -EINVAL (NULL),
 * -EBADF (the stream has no fd: still resolving, or ended). */
AX_API int ax_stream_fd(const ax_stream_t *s);

/* Stores the peer's address in *addr and its length in *len; returns 0.
 * Errors: -EINVAL (NULL argument), -ENOTSOCK (not a socket), or
 * getpeername's error (-ENOTCONN). */
AX_API int ax_stream_peer(const ax_stream_t *s, struct sockaddr_storage *addr, socklen_t *len);

/* A pointer for the owner's use, kept with the stream (NULL at first; it
 * moves with ax_stream_give).  NULL stream: set does nothing, get returns
 * NULL. */
AX_API void ax_stream_set_data(ax_stream_t *s, void *data);
AX_API void *ax_stream_data(const ax_stream_t *s);

/* ------------------------------------------------------------------------ */
/* Servers across cores                                                      */

/* ax_tcp_serve options; zero-initialise, NULL means all defaults. */
typedef struct ax_serve_opts {
  ax_stream_opts_t stream;  /* for each session's stream */
  int backlog;              /* per listener (SOMAXCONN) */
  unsigned cores;           /* listen on the first `cores` cores (all) */
  /* Without session_size: every session's state pointer (shared by all).
   * With it: what session_init is given. */
  void *state;
  ax_terminate_t terminate; /* every session's terminate hook */
  /* Per-connection state.  When > 0, each session's state (ax_state) is a
   * block of its own of this many bytes, zeroed, made when the connection
   * is accepted and freed by axon right after the session's terminate hook
   * (which may free what the block points to).  A connection that cannot
   * get one is closed, as for a failed spawn. */
  size_t session_size;
  /* With session_size: runs on the session's core before its first
   * message (AX_MSG_GIVEN), with `shared` = opts.state; fills the block. */
  void (*session_init)(ax_actor_t *self, void *shared);
  /* Sessions as fibers (<axon/fiber.h>), with ax_tcp_serve's session NULL:
   * each connection gets a fiber running fiber(self, state), state as
   * above, whose first message is AX_MSG_GIVEN with the stream (take it
   * with ax_recv_type(self, AX_MSG_GIVEN, ...)).  session_init runs in the
   * fiber before fiber does; terminate is the fiber's terminate hook.  The
   * fiber's return value is its stop reason, as for any fiber.  The stream
   * calls of fiber.h (ax_stream_read, ...) need stream.frame AX_FRAME_RAW,
   * the default; with framing, the fiber takes each frame's AX_MSG_DATA
   * with ax_recv or ax_recv_type instead (the stream calls say -EINVAL). */
  int (*fiber)(ax_actor_t *self, void *state);
  size_t fiber_stack; /* each fiber's stack (0: the default, 64 KiB) */
  /* Each session's mailbox bound, as ax_spawn_opts_t.mailbox_max (0:
   * none).  Sessions that other actors feed (a broker's subscribers fed by
   * ax_group_send, which skips a member whose mailbox is full) need one:
   * a stream's window and high_water bound what the peer sends and what
   * waits for it, not what actors send the session, which otherwise
   * queues without limit while its peer reads slower than they send. */
  uint32_t mailbox_max;
} ax_serve_opts_t;

/* Listens on addr with one listener per core on one port, so the kernel
 * spreads connections over the cores; each connection gets a new session
 * actor running `session` on the core that accepted it, whose first message
 * is AX_MSG_GIVEN with the stream.  The port is this server's alone: if
 * any other socket already has it, even one with SO_REUSEPORT (another
 * process, a second copy of this program), the call fails with
 * -EADDRINUSE, and a program of the same user that joins the port's
 * SO_REUSEPORT group later gets none of its connections.  Any thread,
 * before or after ax_rt_start (sockets listen at once; connections wait in
 * the backlog until the cores run), so it combines with ax_rt_run.
 * With opts->fiber, session is NULL and each session is a fiber instead.
 * Errors: -EINVAL (NULL argument, bad address or options, session_init
 * without session_size, session_size over SIZE_MAX / 2, both or neither
 * of session and opts->fiber, a fiber_stack ax_spawn_fiber refuses), -EADDRINUSE,
 * -EACCES, -ESHUTDOWN (the runtime is stopping), -ENOMEM, ... */
AX_API int ax_tcp_serve(ax_rt_t *rt, const char *addr, ax_behaviour_t session,
                        const ax_serve_opts_t *opts, ax_server_t **out);

/* The port the server listens on (the one the kernel chose for port 0).
 * Any thread.  Errors: -EINVAL (NULL). */
AX_API int ax_server_port(const ax_server_t *srv);

/* AX_MSG_SERVER_CLOSED's payload (see ax_server_close). */
typedef struct ax_server_closed {
  const ax_server_t *server; /* the server closed: an identifier only, it is freed */
} ax_server_closed_t;

/* Stops accepting on every core and frees the server; sessions already
 * running go on.  A connection accepted but not yet given a session is
 * reset, as one still in the kernel's backlog is (ax_listener_close).
 * Any thread.  From a thread that is not a core (main,
 * say), it returns once every listener is closed; before ax_rt_start too
 * (it closes them itself).  From an actor it cannot wait (the listener of
 * its own core closes only after it returns): it returns at once, and
 * AX_MSG_SERVER_CLOSED reaches the calling actor when every listener is
 * closed and the port is free.  srv is invalid after the call either way.
 * Every server needs this call, also once the runtime has stopped (after
 * ax_rt_join or ax_rt_run, before ax_rt_free): its memory is the caller's
 * until then.  Returns 0.  Errors: -EINVAL (NULL). */
AX_API int ax_server_close(ax_server_t *srv);

/* ------------------------------------------------------------------------ */
/* Serial ports                                                              */

typedef enum ax_parity { AX_PARITY_NONE = 0, AX_PARITY_ODD, AX_PARITY_EVEN } ax_parity_t;
typedef enum ax_flow {
  AX_FLOW_NONE = 0,
  AX_FLOW_RTSCTS, /* hardware */
  AX_FLOW_XONXOFF /* software */
} ax_flow_t;

/* Serial options; zero-initialise, NULL means 115200 8N1, no flow control,
 * raw mode, exclusive. */
typedef struct ax_serial_opts {
  unsigned baud;      /* any rate: standard ones by Bxxx, others via termios2 BOTHER (115200) */
  unsigned data_bits; /* 5..8 (8) */
  ax_parity_t parity;
  unsigned stop_bits; /* 1 or 2 (1) */
  ax_flow_t flow;
  bool cooked;        /* keep the tty's line discipline instead of raw mode */
  bool shared;        /* do not take TIOCEXCL (exclusive open) */
  ax_stream_opts_t stream; /* framing, window, ... */
} ax_serial_opts_t;

/* Opens a serial port or tty as a stream: O_NOCTTY, configured as opts
 * say, exclusive unless opts.shared.  Hang-up or unplug ends the stream
 * with AX_MSG_CLOSED{-EIO}.  Errors: -EINVAL (NULL argument, a setting out
 * of range), -ENOTTY (not a terminal), -EBUSY (opened exclusively
 * elsewhere), -ENOENT, -EACCES, ... */
AX_API int ax_serial_open(ax_actor_t *self, const char *path, const ax_serial_opts_t *opts,
                          ax_stream_t **out);

/* Changes the line settings of an open serial stream (stream options are
 * kept).  Errors: -EINVAL, -ENOTTY, -EIO (the device hung up or is gone:
 * its CLOSED{-EIO} follows or has come). */
AX_API int ax_serial_configure(ax_stream_t *s, const ax_serial_opts_t *opts);

#ifdef __cplusplus
}
#endif

#endif /* AXON_STREAM_H */
