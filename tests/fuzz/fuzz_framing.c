/* libFuzzer harness for the framer (actors/io/framing.c): arbitrary options, bytes and split points. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "actors/io/framing.h"
#include "actors/io/stream.h"

/*
 * Input: 5 bytes of options (framing mode, delimiter, length-prefix size,
 * max_frame, number of split points), that many chunk lengths, then the
 * stream itself.  The options go through ax__stream_opts first, as a
 * stream's do; options it accepts drive the framer twice: once with the
 * stream cut at the chunk lengths (draining frames after every piece, as
 * stream.c does after every read), once with the stream in one piece.
 * Both runs must match a model computed here from the header's description
 * of framing (so they match each other): the same frames and skips in the
 * same order, which concatenated with their delimiters or prefixes are the
 * stream up to what is left buffered.  Any difference is __builtin_trap().
 */

#define CHECK(cond)                                                                                \
  do {                                                                                             \
    if (!(cond))                                                                                   \
      __builtin_trap();                                                                            \
  } while (0)

/* What one run saw: each result with its length, and the frames' bytes. */
typedef struct run {
  int *type;
  size_t *len;
  size_t events;
  unsigned char *bytes; /* frames' contents, one after another */
  size_t nbytes;
  size_t left;          /* bytes buffered or being skipped at the end */
  bool over;            /* a length prefix over max_frame ended the stream */
} run_t;

static void record(run_t *r, int type, const unsigned char *p, size_t n) {
  r->type[r->events] = type;
  r->len[r->events] = n;
  r->events++;
  if (type == AX__FRAMER_FRAME) {
    memcpy(r->bytes + r->nbytes, p, n);
    r->nbytes += n;
  }
}

/* Takes every complete frame, as stream.c's frame_out does, checking what
 * the framer promises of each result. */
static void drain(ax__framer_t *f, const ax_stream_opts_t *o, run_t *r) {
  for (;;) {
    const unsigned char *p = NULL, *p2 = NULL;
    size_t n = 0, n2 = 0;
    int rc = ax__framer_next(f, &p, &n);
    /* Until consumed, the same result again. */
    CHECK(ax__framer_next(f, &p2, &n2) == rc);
    if (rc == AX__FRAMER_MORE) {
      /* What waits is a partial frame: a line of at most max_frame (longer
       * ones are dropped as they come), or less than one record. */
      if (o->frame == AX_FRAME_DELIM)
        CHECK(ax__framer_buffered(f) <= o->max_frame);
      if (o->frame == AX_FRAME_LENGTH)
        CHECK(ax__framer_buffered(f) < o->len_bytes + o->max_frame);
      if (o->frame == AX_FRAME_RAW)
        CHECK(ax__framer_buffered(f) == 0);
      return;
    }
    if (rc == AX__FRAMER_TOO_LONG) {
      CHECK(o->frame == AX_FRAME_LENGTH);
      record(r, rc, NULL, 0);
      r->over = true;
      return;
    }
    CHECK(rc == AX__FRAMER_FRAME || rc == AX__FRAMER_SKIPPED);
    CHECK(p2 == p && n2 == n);
    if (rc == AX__FRAMER_FRAME) {
      CHECK(p >= f->buf && n <= f->len && (size_t)(p - f->buf) <= f->len - n);
      CHECK(o->frame == AX_FRAME_RAW || n <= o->max_frame);
    } else {
      CHECK(o->frame == AX_FRAME_DELIM && n > o->max_frame + 1);
    }
    record(r, rc, p, n);
    size_t before = ax__framer_buffered(f);
    ax__framer_consume(f);
    CHECK(ax__framer_buffered(f) < before); /* every result takes a byte at least */
  }
}

/* Feeds data cut at the chunk lengths (all of it at once when nchunks is 0). */
static void feed(const ax_stream_opts_t *o, const uint8_t *chunks, size_t nchunks,
                 const uint8_t *data, size_t size, run_t *r) {
  ax__framer_t f;
  ax__framer_init(&f, o);
  size_t off = 0;
  for (size_t i = 0; off < size && !r->over; i++) {
    size_t n = i < nchunks ? chunks[i] : size - off; /* a zero-length piece too */
    if (n > size - off)
      n = size - off;
    CHECK(ax__framer_add(&f, data + off, n) == 0);
    off += n;
    drain(&f, o, r);
  }
  /* After a fatal prefix the stream drops what is left (stream.c). */
  r->left = r->over ? 0 : ax__framer_buffered(&f) + (f.skipping ? (size_t)f.skipped : 0);
  ax__framer_free(&f);
}

/* The model: frames as the header describes them, from the whole stream. */
static void model(const ax_stream_opts_t *o, const uint8_t *data, size_t size, run_t *r) {
  size_t pos = 0;
  if (o->frame == AX_FRAME_RAW) {
    if (size > 0)
      record(r, AX__FRAMER_FRAME, data, size);
    pos = size;
  } else if (o->frame == AX_FRAME_DELIM) {
    unsigned char delim = (unsigned char)(o->delim & 0xff);
    const uint8_t *d;
    while (pos < size && (d = memchr(data + pos, delim, size - pos)) != NULL) {
      size_t line = (size_t)(d - (data + pos));
      if (line <= o->max_frame)
        record(r, AX__FRAMER_FRAME, data + pos, line);
      else
        record(r, AX__FRAMER_SKIPPED, NULL, line + 1); /* with its delimiter */
      pos += line + 1;
    }
  } else {
    for (;;) {
      if (size - pos < o->len_bytes)
        break;
      size_t body = 0;
      for (unsigned i = 0; i < o->len_bytes; i++)
        body = body << 8 | data[pos + i]; /* big-endian */
      if (body > o->max_frame) {
        record(r, AX__FRAMER_TOO_LONG, NULL, 0);
        r->over = true;
        break;
      }
      if (size - pos - o->len_bytes < body)
        break;
      record(r, AX__FRAMER_FRAME, data + pos + o->len_bytes, body);
      pos += o->len_bytes + body;
    }
  }
  r->left = r->over ? 0 : size - pos;
}

static bool same(const run_t *a, const run_t *b) {
  return a->events == b->events && a->nbytes == b->nbytes && a->over == b->over &&
         memcmp(a->type, b->type, a->events * sizeof *a->type) == 0 &&
         memcmp(a->len, b->len, a->events * sizeof *a->len) == 0 &&
         memcmp(a->bytes, b->bytes, a->nbytes) == 0;
}

static void run_init(run_t *r, size_t size) {
  memset(r, 0, sizeof *r);
  r->type = malloc((size + 2) * sizeof *r->type);
  r->len = malloc((size + 2) * sizeof *r->len);
  r->bytes = malloc(size + 1);
  CHECK(r->type != NULL && r->len != NULL && r->bytes != NULL);
}

static void run_free(run_t *r) {
  free(r->type);
  free(r->len);
  free(r->bytes);
}

/* max_frame from one byte: mostly small (so lines and records go over it),
 * sometimes the default, the limit, or just past it. */
static size_t pick_max(uint8_t b) {
  static const size_t big[] = {0, 4096, (size_t)16 << 20, ((size_t)16 << 20) + 1, SIZE_MAX};
  return b < 0xf0 ? b : big[(b - 0xf0) % 5];
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 5)
    return 0;
  ax_stream_opts_t in = {0};
  in.frame = (ax_frame_t)(data[0] & 3); /* 3: not a framing */
  in.delim = data[1] == 0xff ? AX_DELIM_NUL : data[1] == 0xfe ? -1 : data[1] == 0xfd ? 0x101 : data[1];
  in.len_bytes = data[2] % 6; /* 0 (default 4), 1, 2, 4; 3 and 5 are refused */
  in.max_frame = pick_max(data[3]);
  size_t nchunks = data[4] % 16;
  data += 5;
  size -= 5;
  if (size < nchunks)
    return 0;
  const uint8_t *chunks = data;
  data += nchunks;
  size -= nchunks;

  /* The options: refused exactly when the header says they are out of range. */
  ax_stream_opts_t o;
  bool valid = in.frame <= AX_FRAME_LENGTH && in.max_frame <= ((size_t)16 << 20) &&
               (in.delim >= 0 && in.delim <= AX_DELIM_NUL) &&
               (in.frame != AX_FRAME_LENGTH || in.len_bytes == 0 || in.len_bytes == 1 ||
                in.len_bytes == 2 || in.len_bytes == 4);
  int rc = ax__stream_opts(&in, &o);
  CHECK(rc == (valid ? 0 : -EINVAL));
  if (rc < 0)
    return 0;
  CHECK(o.delim != 0 && o.len_bytes != 0 && o.max_frame != 0); /* defaults filled in */

  run_t split, whole, want;
  run_init(&split, size);
  run_init(&whole, size);
  run_init(&want, size);
  feed(&o, chunks, nchunks, data, size, &split);
  feed(&o, NULL, 0, data, size, &whole);
  model(&o, data, size, &want);
  if (o.frame == AX_FRAME_RAW) {
    /* Raw frames are whatever was buffered: only the bytes must match. */
    CHECK(split.nbytes == size && memcmp(split.bytes, data, size) == 0 && split.left == 0);
  } else {
    CHECK(same(&split, &want) && split.left == want.left);
  }
  CHECK(same(&whole, &want) && whole.left == want.left);
  run_free(&split);
  run_free(&whole);
  run_free(&want);
  return 0;
}
