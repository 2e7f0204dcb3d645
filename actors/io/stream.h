/* Streams inside axon: the constructor that TCP, unix sockets, pipes and serial ports share. */
#ifndef AXON_ACTORS_IO_STREAM_H
#define AXON_ACTORS_IO_STREAM_H

#include <stdbool.h>
#include <stddef.h>

#include "axon/stream.h"
#include "actors/io/framing.h"
#include "actors/io/src.h"

enum ax__stream_kind {
  AX__STREAM_TCP = 1,
  AX__STREAM_UNIX,
  AX__STREAM_PIPE,
  AX__STREAM_TTY, /* serial ports and ttys: EOF, EIO and hang-up end it with -EIO */
};

/* A queued write: bytes [off, len) of data are still to be written. */
typedef struct ax__wchunk {
  struct ax__wchunk *next;
  size_t off, len, cap;
  unsigned char data[];
} ax__wchunk_t;

enum { AX__ST_CONNECTING = 1, AX__ST_OPEN, AX__ST_DONE };

/* A stream still connecting: tcp.c's state (resolver request, addresses,
 * timeout) behind two entry points, so that the generic stream code (and
 * with it pipes and serial ports) never reaches into TCP. */
typedef struct ax__connecting ax__connecting_t;
struct ax__connecting {
  /* The socket being connected became writable or failed. */
  void (*event)(ax_stream_t *s, unsigned revents);
  /* Give up: drop the request, the addresses and the timer, free this
   * and clear s->conn. */
  void (*cancel)(ax_stream_t *s);
};

/* A stream.  Owner core only (src.core), like every source. */
struct ax_stream {
  ax__src_t src; /* first */
  int kind;      /* enum ax__stream_kind */
  int state;     /* AX__ST_* */
  int rfd, wfd;
  ax_io_t rio;   /* rfd, and its write interest when wfd == rfd */
  ax_io_t wio;   /* wfd when it is a different fd */
  unsigned rev, wev; /* the events requested on rio and wio now (0: stopped) */
  ax_stream_opts_t o;
  int active;    /* AX_MSG_DATA still allowed by ax_stream_active, -1: no count */
  bool paused;   /* ax_stream_pause, or the active count is used up */
  bool rd_eof;   /* the read side reached its end */
  bool nomem;    /* a read found no memory: reading waits for ltimer (NOMEM_RETRY_NS) */
  bool nomem_moved; /* nomem when the stream left its core: the new core waits again */
  bool eof_done; /* its end was reported (AX_MSG_EOF, or AX_MSG_CLOSED queued) */
  bool peer_end; /* CLOSED{0} for the peer's end (not half-open): the write side still
                    works, so the close flushes the queue as from an open stream */
  bool want_writable; /* a write was refused with -ENOBUFS */
  bool shut_req, shut_done; /* ax_stream_shutdown */
  size_t hint;   /* raw framing: the size of the next message read into */
  ax__framer_t framer; /* delimited and length-prefixed framing */
  ax__wchunk_t *wq_head, *wq_tail; /* queued writes */
  size_t queued;
  ax__connecting_t *conn; /* while connecting (tcp.c) */
  ax_timer_t ltimer; /* the linger limit; while open, the retry after no memory */
  void *udata;
};
_Static_assert(offsetof(struct ax_stream, src) == 0, "a handle is its source (ax__src_close_handle)");

/* Makes a stream owned by self over non-blocking fds rfd/wfd (either may be
 * -1; the same fd for a socket or a tty), already connected: it starts
 * reading at once (unless AX_STREAM_PAUSED).  On failure the fds stay the
 * caller's.  Errors: -EINVAL (bad options), -ENOMEM, or the loop's error. */
int ax__stream_new(ax_actor_t *self, int rfd, int wfd, int kind, const ax_stream_opts_t *opts,
                   ax_stream_t **out);

/* Makes a stream in the connecting state with no fd yet (tcp.c attaches
 * one with ax__stream_watch_connect).  Errors: -EINVAL, -ENOMEM. */
int ax__stream_alloc(ax_actor_t *self, int kind, const ax_stream_opts_t *opts,
                     ax_stream_t **out);

/* Sets a connecting stream's socket and starts watching it for
 * writability (the connect's completion).  Errors: the loop's. */
int ax__stream_watch_connect(ax_stream_t *s, int fd);

/* Stops watching a failed connect attempt's socket and closes it. */
void ax__stream_drop_connect(ax_stream_t *s);

/* The connect finished: start reading, post AX_MSG_CONNECTED. */
void ax__stream_connected(ax_stream_t *s);

/* Ends the stream with AX_MSG_CLOSED{err} (once). */
void ax__stream_fail(ax_stream_t *s, int err);

/* Closes a stream nobody was ever told of (an accepted connection whose
 * ACCEPT was never delivered): a TCP peer is reset, so that it cannot take
 * the cut for an orderly end of a served connection.  Owner's core. */
void ax__stream_abort(ax_stream_t *s);

/* The stream's kind (enum ax__stream_kind). */
int ax__stream_kind(const ax_stream_t *s);

/* True when source s is a stream (a fiber's stream calls keep its read
 * state). */
bool ax__src_is_stream(const ax__src_t *s);

/* Validates opts and fills in the defaults.  Errors: -EINVAL. */
int ax__stream_opts(const ax_stream_opts_t *in, ax_stream_opts_t *out);

#endif /* AXON_ACTORS_IO_STREAM_H */
