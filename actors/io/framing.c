/* Framing: delimited lines with over-long ones skipped, length-prefixed records, taken only when the caller can. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "actors/io/framing.h"
#include "io/alloc.h"

void ax__framer_init(ax__framer_t *f, const ax_stream_opts_t *o) {
  memset(f, 0, sizeof *f);
  f->frame = o->frame;
  f->delim = (unsigned char)(o->delim & 0xff); /* AX_DELIM_NUL's low byte is NUL */
  f->len_bytes = o->len_bytes;
  f->max_frame = o->max_frame;
}

void ax__framer_free(ax__framer_t *f) {
  free(f->buf);
  f->buf = NULL;
  f->len = f->cap = f->take = 0;
}

int ax__framer_add(ax__framer_t *f, const void *bytes, size_t n) {
  if (n > SIZE_MAX / 2 - f->len)
    return -ENOMEM;
  if (f->len + n > f->cap) {
    size_t cap = f->cap != 0 ? f->cap : 4096;
    while (cap < f->len + n)
      cap *= 2;
    unsigned char *b = ax__realloc(f->buf, cap);
    if (b == NULL)
      return -ENOMEM;
    f->buf = b;
    f->cap = cap;
  }
  if (n != 0) /* an empty framer's buf is NULL, and NULL + 0 is undefined (the fuzzer) */
    memcpy(f->buf + f->len, bytes, n);
  f->len += n;
  return 0;
}

/* A delimited line.  An over-long one is skipped as it comes (its bytes
 * are dropped at once, so a peer that never sends the delimiter costs at
 * most max_frame of buffer) and reported when its delimiter arrives. */
static int next_line(ax__framer_t *f, const unsigned char **p, size_t *n) {
  unsigned char *d = f->len != 0 ? memchr(f->buf, f->delim, f->len) : NULL;
  if (d == NULL) {
    if (f->len > f->max_frame) {
      f->skipping = true;
      f->skipped += f->len;
      f->len = 0;
    }
    return AX__FRAMER_MORE;
  }
  size_t line = (size_t)(d - f->buf);
  f->take = line + 1;
  if (f->skipping || line > f->max_frame) {
    *n = (size_t)(f->skipped + line + 1);
    return AX__FRAMER_SKIPPED;
  }
  *p = f->buf;
  *n = line;
  return AX__FRAMER_FRAME;
}

static int next_record(ax__framer_t *f, const unsigned char **p, size_t *n) {
  unsigned lb = f->len_bytes;
  if (f->len < lb)
    return AX__FRAMER_MORE;
  size_t body = 0;
  for (unsigned i = 0; i < lb; i++)
    body = body << 8 | f->buf[i];
  if (body > f->max_frame)
    return AX__FRAMER_TOO_LONG;
  if (f->len - lb < body)
    return AX__FRAMER_MORE;
  f->take = lb + body;
  *p = f->buf + lb;
  *n = body;
  return AX__FRAMER_FRAME;
}

int ax__framer_next(ax__framer_t *f, const unsigned char **p, size_t *n) {
  f->take = 0;
  switch (f->frame) {
  case AX_FRAME_DELIM:
    return next_line(f, p, n);
  case AX_FRAME_LENGTH:
    return next_record(f, p, n);
  default: /* raw: whatever is buffered is one frame */
    if (f->len == 0)
      return AX__FRAMER_MORE;
    f->take = f->len;
    *p = f->buf;
    *n = f->len;
    return AX__FRAMER_FRAME;
  }
}

void ax__framer_consume(ax__framer_t *f) {
  if (f->skipping && f->take != 0) {
    f->skipping = false;
    f->skipped = 0;
  }
  size_t take = f->take;
  f->len -= take;
  f->take = 0;
  if (f->len > 0) {
    memmove(f->buf, f->buf + take, f->len);
  } else if (f->buf != NULL) {
    /* Empty: the buffer goes back, so that an idle connection holds none
     * (a line-framed session kept 4 KiB per connection).  One malloc and
     * free per read that ends on a frame boundary, against a read system
     * call. */
    free(f->buf);
    f->buf = NULL;
    f->cap = 0;
  }
}
