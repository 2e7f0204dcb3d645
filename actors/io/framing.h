/* Framing: cutting a byte stream into frames (lines, length-prefixed records), independent of any fd. */
#ifndef AXON_ACTORS_IO_FRAMING_H
#define AXON_ACTORS_IO_FRAMING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "axon/stream.h"

/*
 * A framer buffers the bytes a stream read and hands out complete frames:
 * lines up to a delimiter byte (AX_FRAME_DELIM), records behind a 1, 2 or
 * 4 byte big-endian length (AX_FRAME_LENGTH), or, raw, whatever is
 * buffered (bytes a raw stream could not post at once).  It knows nothing of fds or
 * messages, so what it does with hostile input can be tested (and fuzzed)
 * alone.  A frame is looked at first (ax__framer_next) and dropped from the
 * buffer only when the caller has taken it (ax__framer_consume), so a
 * caller that cannot take it now (out of memory, no credit) loses nothing.
 *
 * Over-long delimited lines are skipped up to the next delimiter and
 * reported once with the count of bytes dropped; an over-long length
 * prefix is fatal (the stream cannot find the next record boundary).
 */
typedef struct ax__framer {
  unsigned char *buf; /* bytes read but not yet cut into frames */
  size_t len, cap;
  size_t take;        /* bytes the last ax__framer_next result spans */
  ax_frame_t frame;   /* AX_FRAME_RAW, AX_FRAME_DELIM or AX_FRAME_LENGTH */
  unsigned char delim;
  unsigned len_bytes;
  size_t max_frame;
  bool skipping;      /* discarding an over-long delimited line */
  uint64_t skipped;   /* bytes discarded so far in it */
} ax__framer_t;

/* What ax__framer_next found. */
enum {
  AX__FRAMER_MORE = 0,   /* no complete frame yet: add more bytes */
  AX__FRAMER_FRAME,      /* a frame: *p, *n */
  AX__FRAMER_SKIPPED,    /* an over-long line was dropped: *n its length with
                            the delimiter (FRAME_ERROR{-EMSGSIZE, n}) */
  AX__FRAMER_TOO_LONG,   /* a length prefix over max_frame: the stream is over */
};

/* Prepares a framer for the (normalised) options o; nothing allocated. */
void ax__framer_init(ax__framer_t *f, const ax_stream_opts_t *o);
/* Frees the buffer. */
void ax__framer_free(ax__framer_t *f);
/* Appends n bytes.  Returns 0 or -ENOMEM (nothing appended). */
int ax__framer_add(ax__framer_t *f, const void *bytes, size_t n);
/* Looks for the next frame; see the AX__FRAMER_* results.  Repeats the
 * same result until ax__framer_consume. */
int ax__framer_next(ax__framer_t *f, const unsigned char **p, size_t *n);
/* Drops what the last ax__framer_next returned (a frame or a skip). */
void ax__framer_consume(ax__framer_t *f);
/* Bytes buffered now. */
static inline size_t ax__framer_buffered(const ax__framer_t *f) { return f->len; }

#endif /* AXON_ACTORS_IO_FRAMING_H */
