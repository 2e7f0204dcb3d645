/* Streams inside axon: the constructor that TCP, unix sockets, pipes and serial ports share. */
#ifndef AXON_ACTORS_STREAM_H
#define AXON_ACTORS_STREAM_H

#include <netdb.h>
#include <stdbool.h>

#include "axon/stream.h"
#include "actors/src.h"
#include "runtime/internal.h"

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

typedef struct ax__resolve ax__resolve_t;

enum { AX__ST_CONNECTING = 1, AX__ST_OPEN, AX__ST_DONE };

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
  size_t hint;   /* raw framing: the size of the next message read into */
  bool rd_eof;   /* the read side reached its end */
  bool closed_posted; /* AX_MSG_CLOSED is queued */
  bool want_writable; /* a write was refused with -ENOBUFS */
  bool shut_req, shut_done; /* ax_stream_shutdown */
  /* framing: bytes read but not yet cut into messages */
  unsigned char *fbuf;
  size_t flen, fcap;
  bool skipping;   /* discarding an over-long delimited frame */
  uint64_t skipped;
  /* writes */
  ax__wchunk_t *wq_head, *wq_tail;
  size_t queued;
  /* connecting (tcp.c) */
  ax__resolve_t *req;
  struct addrinfo *ai_list, *ai_next;
  int last_err;
  ax_timer_t ctimer; /* the connect timeout */
  ax_timer_t ltimer; /* the linger limit */
  void *udata;
};

/* Makes a stream owned by self over non-blocking fds rfd/wfd (either may be
 * -1; the same fd for a socket or a tty), already connected: it starts
 * reading at once (unless AX_STREAM_PAUSED).  On failure the fds stay the
 * caller's.  Errors: -EINVAL (bad options), -ENOMEM, or the loop's error. */
int ax__stream_new(ax_actor_t *self, int rfd, int wfd, int kind, const ax_stream_opts_t *opts,
                   ax_stream_t **out);

/* Makes a stream in the connecting state with no fd yet (tcp.c attaches
 * one with ax__stream_set_fd).  Errors: -EINVAL, -ENOMEM. */
int ax__stream_alloc(ax_actor_t *self, int kind, const ax_stream_opts_t *opts,
                     ax_stream_t **out);

/* Sets a connecting stream's socket and starts watching it for
 * writability (the connect's completion).  Errors: the loop's. */
int ax__stream_watch_connect(ax_stream_t *s, int fd);

/* The connect finished: start reading, post AX_MSG_CONNECTED. */
void ax__stream_connected(ax_stream_t *s);

/* Ends the stream with AX_MSG_CLOSED{err} (once). */
void ax__stream_fail(ax_stream_t *s, int err);

/* tcp.c: the connect attempt's fd became writable, or failed. */
void ax__tcp_connect_event(ax_stream_t *s, unsigned revents);
/* tcp.c: drop whatever a connecting stream holds (resolver request,
 * address list, timer). */
void ax__tcp_connect_cancel(ax_stream_t *s);

/* The stream's kind (enum ax__stream_kind). */
int ax__stream_kind(const ax_stream_t *s);

/* Validates opts and fills in the defaults.  Errors: -EINVAL. */
int ax__stream_opts(const ax_stream_opts_t *in, ax_stream_opts_t *out);

#endif /* AXON_ACTORS_STREAM_H */
