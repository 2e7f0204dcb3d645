/* Streams: reading into framed messages under a credit window, queued writes, close, hand-over. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <termios.h>
#include <unistd.h>

#include "actors/io/stream.h"

#define AX__SCRATCH (64 * 1024)
#define AX__CHUNK_MIN (16 * 1024)
#define AX__IOV_MAX 64
#define AX__DIRECT_MIN 512              /* the smallest message read into */
#define AX__DIRECT_MAX (128 * 1024)     /* the largest (the largest pool class) */

static int update_interest(ax_stream_t *s);
static void finish_linger(ax_stream_t *s);
static void frame_out(ax_stream_t *s, bool force);
static void nomem_pause(ax_stream_t *s);
static void finish_eof(ax_stream_t *s);

/* ------------------------------------------------------------------------ */
/* Options.                                                                  */

int ax__stream_opts(const ax_stream_opts_t *in, ax_stream_opts_t *o) {
  *o = in != NULL ? *in : (ax_stream_opts_t){0};
  const unsigned known =
      AX_STREAM_HALF_OPEN | AX_STREAM_NODELAY | AX_STREAM_KEEPALIVE | AX_STREAM_PAUSED;
  if ((o->flags & ~known) != 0 || o->frame > AX_FRAME_LENGTH || o->max_frame > ((size_t)16 << 20) ||
      (o->frame == AX_FRAME_LENGTH && o->len_bytes != 0 && o->len_bytes != 1 &&
       o->len_bytes != 2 && o->len_bytes != 4) ||
      (o->connect_timeout < 0 && o->connect_timeout != AX_FOREVER) ||
      (o->linger < 0 && o->linger != AX_FOREVER && o->linger != AX_LINGER_NONE) ||
      o->delim < 0 || o->delim > AX_DELIM_NUL || o->sndbuf < 0 || o->rcvbuf < 0)
    return -EINVAL;
  if (o->window == 0)
    o->window = 8;
  if (o->read_max == 0)
    o->read_max = AX__SCRATCH;
  if (o->high_water == 0)
    o->high_water = (size_t)1 << 20;
  if (o->delim == 0)
    o->delim = '\n'; /* AX_DELIM_NUL stays: its low byte is the NUL (idempotent) */
  if (o->len_bytes == 0)
    o->len_bytes = 4;
  if (o->max_frame == 0)
    o->max_frame = AX__SCRATCH;
  if (o->connect_timeout == 0)
    o->connect_timeout = AX_FOREVER;
  if (o->linger == 0)
    o->linger = 5 * AX_NSEC_PER_SEC;
  return 0;
}

/* ------------------------------------------------------------------------ */
/* Messages.                                                                 */

static void post_ev(ax_stream_t *s, uint32_t type, int err, uint64_t count, unsigned flags) {
  if (s->src.closed || s->src.owner == NULL)
    return;
  ax_stream_ev_t ev = {.stream = s, .err = err, .count = count};
  /* The final event (CLOSED) must not be lost: it comes from the core's
   * reserve when the pools fail (msg.h, ax__msg_new_vital). */
  ax__msg_t *m =
      (flags & AX__MSG_FINAL)
          ? ax__msg_new_vital(s->src.owner->ref, AX__SYS_IO, type, &ev, sizeof ev, AX_REF_NONE)
          : ax__msg_new(s->src.owner->ref, AX__SYS_IO, type, &ev, sizeof ev, AX_REF_NONE);
  if (m == NULL)
    return; /* out of memory (the reserve too, for CLOSED): nothing better to do */
  ax__src_post(&s->src, m, flags);
}

/* Posts a filled AX_MSG_DATA and counts it against ax_stream_active. */
static void post_msg(ax_stream_t *s, ax__msg_t *m) {
  ax__src_post(&s->src, m, AX__MSG_CREDIT);
  if (s->active > 0 && --s->active == 0) {
    s->paused = true;
    post_ev(s, AX_MSG_PASSIVE, 0, 0, 0);
  }
}

/* Posts one AX_MSG_DATA holding a copy of len bytes.  False when out of
 * memory (the caller keeps the bytes and retries on the next event). */
static bool post_data(ax_stream_t *s, const unsigned char *bytes, size_t len) {
  if (s->src.closed || s->src.owner == NULL)
    return true; /* closed by its owner: nobody may see these any more */
  size_t head = (sizeof(ax_data_t) + 15) & ~(size_t)15;
  ax__msg_t *m = ax__src_msg(&s->src, AX_MSG_DATA, head + len);
  if (m == NULL)
    return false;
  ax_data_t *d = (ax_data_t *)(void *)m->payload;
  d->stream = s;
  d->len = len;
  d->bytes = m->payload + head;
  memcpy(m->payload + head, bytes, len);
  post_msg(s, m);
  return true;
}

/* True while another AX_MSG_DATA may be posted. */
static bool may_post(const ax_stream_t *s) { return !s->paused && ax__src_may_post(&s->src); }

/* Drops every queued write. */
static void free_chunks(ax_stream_t *s) {
  size_t freed = 0;
  while (s->wq_head != NULL) {
    ax__wchunk_t *c = s->wq_head;
    s->wq_head = c->next;
    freed += sizeof *c + c->cap;
    free(c);
  }
  if (freed != 0 && s->src.core != NULL)
    ax__core_malloc_freed(s->src.core, freed);
  s->wq_tail = NULL;
  s->queued = 0;
}

void ax__stream_fail(ax_stream_t *s, int err) {
  if (s->state == AX__ST_DONE)
    return;
  if (s->conn != NULL)
    s->conn->cancel(s);
  s->eof_done = true; /* before frame_out: it must not end the stream again */
  frame_out(s, true); /* bytes already received are delivered first */
  if (s->state == AX__ST_DONE)
    return; /* framing itself ended the stream (an oversize length prefix) */
  s->state = AX__ST_DONE;
  s->rd_eof = true;
  free_chunks(s); /* the peer or the device is gone: queued writes cannot be written */
  update_interest(s);
  post_ev(s, AX_MSG_CLOSED, err, 0, AX__MSG_FINAL);
}

/* A half-open stream whose two sides are both shut (the peer's EOF was
 * posted, and ax_stream_shutdown's queue was written and the write side
 * shut) is finished: nothing more can come or go.  CLOSED{0} then, as for
 * a stream that is not half-open, so an owner that waits for CLOSED does
 * not keep it forever. */
static void finish_both_shut(ax_stream_t *s) {
  if (s->state != AX__ST_OPEN || s->src.closed || !s->eof_done || !s->shut_done)
    return;
  s->state = AX__ST_DONE;
  update_interest(s);
  post_ev(s, AX_MSG_CLOSED, 0, 0, AX__MSG_FINAL);
}

/* The read side ended with every complete frame posted. */
static void finish_eof(ax_stream_t *s) {
  if (s->eof_done)
    return;
  ax__framer_t *f = &s->framer;
  if (f->skipping) { /* an over-long last line, cut by the end: all of it is dropped */
    post_ev(s, AX_MSG_FRAME_ERROR, -EMSGSIZE, f->skipped + f->len, 0);
    f->skipping = false;
    f->len = 0; /* its tail, buffered since the last overflow, is no line of its own */
  }
  if (f->len > 0 && s->o.frame == AX_FRAME_DELIM) {
    post_data(s, f->buf, f->len); /* the last line had no delimiter */
    f->len = 0;
  }
  if (s->kind == AX__STREAM_TTY) {
    ax__stream_fail(s, -EIO);
  } else if (f->len > 0) {
    ax__stream_fail(s, -EPROTO); /* a length-prefixed frame was cut short */
  } else if (s->o.flags & AX_STREAM_HALF_OPEN) {
    /* EOF: the stream still writes.  CLOSED comes once the write side is
     * shut too, or a write fails, or with ax_stream_close. */
    s->eof_done = true;
    post_ev(s, AX_MSG_EOF, 0, 0, 0);
    finish_both_shut(s);
  } else {
    /* The stream ends, but what it queued for the peer still goes out at
     * the close (op_close): a peer that half-closed (shutdown(SHUT_WR))
     * is still reading, and one that has gone resets the flush. */
    s->eof_done = true;
    s->peer_end = true;
    s->state = AX__ST_DONE;
    update_interest(s);
    post_ev(s, AX_MSG_CLOSED, 0, 0, AX__MSG_FINAL);
  }
}

/* ------------------------------------------------------------------------ */
/* Framing (framing.c cuts, this posts).                                     */

/* Posts complete frames while credit lasts (all of them when force).  Once
 * the read side has ended and no complete frame is left, ends the stream
 * (finish_eof). */
static void frame_out(ax_stream_t *s, bool force) {
  ax__framer_t *f = &s->framer;
  int r = AX__FRAMER_MORE;
  bool stuck = false; /* stopped by credit or memory, not by a partial frame */
  while (ax__framer_buffered(f) > 0 && s->state != AX__ST_DONE) {
    if (!force && !may_post(s)) {
      stuck = true;
      break;
    }
    const unsigned char *p = NULL;
    size_t n = 0;
    r = ax__framer_next(f, &p, &n);
    if (r == AX__FRAMER_MORE)
      break;
    if (r == AX__FRAMER_TOO_LONG) {
      f->len = 0;
      ax__stream_fail(s, -EMSGSIZE);
      return;
    }
    if (r == AX__FRAMER_SKIPPED) {
      post_ev(s, AX_MSG_FRAME_ERROR, -EMSGSIZE, n, 0);
    } else if (!post_data(s, p, n)) {
      /* Out of memory: the frame stays, and the stream retries after a
       * short wait (the peer may send nothing more to cause an event). */
      stuck = true;
      if (!force)
        nomem_pause(s);
      break;
    }
    ax__framer_consume(f);
  }
  if (s->rd_eof && !s->eof_done && s->state != AX__ST_DONE && !stuck)
    finish_eof(s);
}

/* Hands freshly read bytes to the framer.  Raw bytes go straight into a
 * message when nothing waits before them. */
static void take_bytes(ax_stream_t *s, const unsigned char *b, size_t n) {
  /* may_post: after a read that spilled, the first message may have used
   * up ax_stream_active's count (PASSIVE is posted); the rest then waits in
   * the framer for the next call, as a framed stream's frames do. */
  if (s->o.frame == AX_FRAME_RAW && ax__framer_buffered(&s->framer) == 0 && may_post(s) &&
      post_data(s, b, n))
    return;
  if (ax__framer_add(&s->framer, b, n) < 0) {
    ax__stream_fail(s, -ENOMEM);
    return;
  }
  frame_out(s, false);
}

/* ------------------------------------------------------------------------ */
/* Reading and writing.                                                      */

static bool wants_read(const ax_stream_t *s) {
  return s->state == AX__ST_OPEN && s->rfd >= 0 && !s->rd_eof && !s->nomem && may_post(s) &&
         !(s->o.frame != AX_FRAME_RAW && ax__framer_buffered(&s->framer) > s->o.max_frame + 4);
}

/* Raw framing reads straight into a message: the bytes are copied once,
 * by the kernel.  The message is sized from what the previous reads
 * returned (s->hint), and the read spills into the core's scratch buffer
 * when there was more (that part is copied into a second message, and the
 * hint grows).  Returns the bytes read, 0 at end of file, or -errno. */
static ssize_t read_direct(ax_stream_t *s, size_t want) {
  size_t head = (sizeof(ax_data_t) + 15) & ~(size_t)15;
  size_t first = s->hint < want ? s->hint : want;
  ax__msg_t *m = ax__src_msg(&s->src, AX_MSG_DATA, head + first);
  if (m == NULL)
    return -ENOMEM;
  /* Spill into scratch only when the window has room for a second message. */
  bool spill = want > first && (s->src.window == 0 || s->src.inflight + 2 <= s->src.window);
  unsigned char *scratch = ax__io_core(s->src.core)->scratch;
  struct iovec iov[2] = {{m->payload + head, first}, {scratch, want - first}};
  /* One buffer: read(), which skips readv's copy and check of the iovec
   * array (1-2% of a 16 KiB echo server's CPU). */
  ssize_t n = spill ? readv(s->rfd, iov, 2) : read(s->rfd, iov[0].iov_base, first);
  if (n <= 0) {
    int err = n < 0 ? -errno : 0;
    ax__msg_free(m);
    return err;
  }
  size_t in_msg = (size_t)n < first ? (size_t)n : first;
  ax_data_t *d = (ax_data_t *)(void *)m->payload;
  d->stream = s;
  d->len = in_msg;
  d->bytes = m->payload + head;
  m->m.size = (uint32_t)(head + in_msg);
  post_msg(s, m);
  if ((size_t)n > first)
    take_bytes(s, scratch, (size_t)n - first);
  /* Adapt: double after a full message, halve after a mostly empty one. */
  if ((size_t)n >= first && s->hint < AX__DIRECT_MAX)
    s->hint *= 2;
  else if ((size_t)n * 4 <= first && s->hint > AX__DIRECT_MIN)
    s->hint /= 2;
  return n;
}

/* How long a stream that found no memory to read into waits before it
 * reads again. */
#define NOMEM_RETRY_NS (10 * AX_NSEC_PER_MSEC)

static void nomem_cb(ax_timer_t *t) {
  ax_stream_t *s = AX_CONTAINER_OF(t, ax_stream_t, ltimer);
  s->nomem = false;
  frame_out(s, false); /* complete frames that found no memory first */
  update_interest(s);
}

/* A read found no memory (the core's buffer, a message): the stream stops
 * reading for NOMEM_RETRY_NS rather than being called again at once by its
 * level-triggered watcher, for as long as memory stays short.  What the
 * kernel holds waits there meanwhile.  The caller updates the interest. */
static void nomem_pause(ax_stream_t *s) {
  if (s->nomem)
    return;
  s->nomem = true;
  ax_timer_init(s->src.core->loop, &s->ltimer, nomem_cb);
  ax_timer_start(&s->ltimer, NOMEM_RETRY_NS, 0);
}

/* The retry ends (the stream moves or closes: ltimer has other work). */
static void nomem_end(ax_stream_t *s) {
  if (s->nomem) {
    ax_timer_stop(&s->ltimer);
    s->nomem = false;
  }
}

static void do_read(ax_stream_t *s) {
  ax__io_core_t *c = ax__io_core(s->src.core);
  if (c->scratch == NULL && (c->scratch = ax__malloc(AX__SCRATCH)) == NULL) {
    nomem_pause(s);
    return;
  }
  size_t budget = s->o.read_max;
  while (budget > 0 && wants_read(s)) {
    size_t want = budget < AX__SCRATCH ? budget : AX__SCRATCH;
    ssize_t n;
    if (s->o.frame == AX_FRAME_RAW && ax__framer_buffered(&s->framer) == 0) {
      n = read_direct(s, want);
      if (n < 0)
        errno = (int)-n;
    } else {
      n = read(s->rfd, c->scratch, want);
      if (n > 0)
        take_bytes(s, c->scratch, (size_t)n);
    }
    if (n > 0) {
      budget -= (size_t)n;
      if ((size_t)n < want)
        break; /* drained (level-triggered: more comes as an event) */
      continue;
    }
    if (n == 0) {
      s->rd_eof = true;
      frame_out(s, false);
      break;
    }
    if (errno == EINTR)
      continue;
    if (errno == ENOMEM) {
      nomem_pause(s);
      break;
    }
    if (errno == EAGAIN)
      break;
    ax__stream_fail(s, s->kind == AX__STREAM_TTY ? -EIO : -errno);
    return;
  }
}

/* One buffer goes by send() or write(), which skip the copy and check of
 * an iovec array that sendmsg() and writev() make. */
static ssize_t write_fd(ax_stream_t *s, const struct iovec *iov, int n) {
  if (s->kind == AX__STREAM_TCP || s->kind == AX__STREAM_UNIX) {
    if (n == 1)
      return send(s->wfd, iov[0].iov_base, iov[0].iov_len, MSG_NOSIGNAL); /* EPIPE, not SIGPIPE */
    struct msghdr mh = {.msg_iov = (struct iovec *)(uintptr_t)iov, .msg_iovlen = (size_t)n};
    return sendmsg(s->wfd, &mh, MSG_NOSIGNAL);
  }
  return n == 1 ? write(s->wfd, iov[0].iov_base, iov[0].iov_len) : writev(s->wfd, iov, n);
}

/* Writes queued chunks until the kernel refuses more. */
static void do_write(ax_stream_t *s) {
  while (s->wq_head != NULL) {
    struct iovec iov[AX__IOV_MAX];
    int n = 0;
    for (ax__wchunk_t *c = s->wq_head; c != NULL && n < AX__IOV_MAX; c = c->next, n++) {
      iov[n].iov_base = c->data + c->off;
      iov[n].iov_len = c->len - c->off;
    }
    ssize_t w = write_fd(s, iov, n);
    if (w < 0) {
      if (errno == EINTR)
        continue;
      if (errno == EAGAIN)
        break;
      int err = s->kind == AX__STREAM_TTY ? -EIO : -errno;
      if (s->src.closed) {
        free_chunks(s);
        break;
      }
      ax__stream_fail(s, err);
      return;
    }
    s->queued -= (size_t)w;
    while (w > 0) {
      ax__wchunk_t *c = s->wq_head;
      size_t left = c->len - c->off;
      if ((size_t)w < left) {
        c->off += (size_t)w;
        break;
      }
      w -= (ssize_t)left;
      s->wq_head = c->next;
      ax__core_malloc_freed(s->src.core, sizeof *c + c->cap);
      free(c);
    }
    if (s->wq_head == NULL)
      s->wq_tail = NULL;
  }
  if (s->wq_head == NULL && s->shut_req && !s->shut_done) {
    s->shut_done = true;
    if (s->rfd == s->wfd)
      (void)shutdown(s->wfd, SHUT_WR); /* ENOTCONN on a dead socket: nothing to do */
    else if (s->wfd >= 0) {
      ax_io_stop(&s->wio);
      s->wev = 0;
      close(s->wfd);
      s->wfd = -1;
    }
  }
  if (s->want_writable && s->queued < s->o.high_water / 2) {
    s->want_writable = false;
    post_ev(s, AX_MSG_WRITABLE, 0, 0, 0);
  }
  finish_both_shut(s);
}

static void io_cb(ax_io_t *io, unsigned revents) {
  ax_stream_t *s = io->data;
  if (s->src.closed) { /* lingering: only flushing is left */
    if (s->wq_head != NULL && !(revents & (AX_HUP | AX_ERR)))
      do_write(s);
    if (s->wq_head == NULL || (revents & (AX_HUP | AX_ERR)))
      finish_linger(s); /* frees s */
    else
      update_interest(s);
    return;
  }
  if (s->state == AX__ST_CONNECTING) {
    s->conn->event(s, revents);
    return;
  }
  if ((revents & (AX_READ | AX_HUP | AX_ERR)) && io == &s->rio && (s->rev & AX_READ))
    do_read(s);
  if ((revents & (AX_WRITE | AX_HUP | AX_ERR)) && s->wq_head != NULL && s->state != AX__ST_DONE)
    do_write(s);
  update_interest(s);
}

/* Requests exactly the events the stream needs now.  When the loop
 * refuses, an open stream ends with CLOSED{err} (ax__src_watch) and a
 * lingering one gives up flushing (its fd is closed; it may be freed).
 * Returns 0 or the loop's error. */
static int update_interest(ax_stream_t *s) {
  if (s->state == AX__ST_CONNECTING)
    return 0; /* the connect's own write watch stays until it completes */
  unsigned r = 0, w = 0;
  bool open = s->state == AX__ST_OPEN && !(s->src.owner == NULL && !s->src.closed);
  if (open && wants_read(s))
    r = AX_READ;
  if ((open || (s->src.closed && s->src.lingering)) && s->wq_head != NULL && s->wfd >= 0)
    w = AX_WRITE;
  int rc = 0;
  if (s->rfd >= 0 && s->rfd == s->wfd) {
    rc = ax__src_watch(&s->src, &s->rio, &s->rev, r | w);
  } else {
    if (s->rfd >= 0)
      rc = ax__src_watch(&s->src, &s->rio, &s->rev, r);
    if (rc == 0 && s->wfd >= 0)
      rc = ax__src_watch(&s->src, &s->wio, &s->wev, w);
  }
  if (rc < 0 && s->src.closed && s->src.lingering)
    finish_linger(s);
  return rc;
}

/* ------------------------------------------------------------------------ */
/* The source operations.                                                    */

static void close_fds(ax_stream_t *s) {
  ax_io_stop(&s->rio);
  ax_io_stop(&s->wio);
  s->rev = s->wev = 0;
  if (s->rfd >= 0)
    close(s->rfd);
  if (s->wfd >= 0 && s->wfd != s->rfd)
    close(s->wfd);
  s->rfd = s->wfd = -1;
}

/* Queued bytes are about to be dropped (the linger time ended, or
 * AX_LINGER_NONE): a TCP peer is reset rather than sent a FIN, so that it
 * cannot take the cut for an orderly end; a tty's output still in the
 * kernel is discarded too, since close() would otherwise wait for it to
 * go out (a UART held by RTS/CTS: up to the port's closing_wait, 30 s by
 * default, with the core's thread in close).  Before the fd is closed. */
static void reset_if_dropping(ax_stream_t *s) {
  if (s->wq_head == NULL || s->wfd < 0)
    return;
  if (s->kind == AX__STREAM_TTY) {
    (void)tcflush(s->wfd, TCOFLUSH);
    return;
  }
  if (s->kind != AX__STREAM_TCP)
    return;
  struct linger lg = {.l_onoff = 1, .l_linger = 0};
  (void)setsockopt(s->wfd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg); /* close() then sends RST */
}

static void finish_linger(ax_stream_t *s) {
  ax_timer_stop(&s->ltimer);
  reset_if_dropping(s);
  close_fds(s);
  free_chunks(s);
  ax__src_linger(&s->src, false); /* may free s */
}

static void linger_cb(ax_timer_t *t) {
  finish_linger(AX_CONTAINER_OF(t, ax_stream_t, ltimer));
}

static void op_close(ax__src_t *src) {
  ax_stream_t *s = (ax_stream_t *)src;
  nomem_end(s);
  if (s->conn != NULL)
    s->conn->cancel(s);
  s->framer.len = 0;
  if (s->wq_head != NULL && (s->state == AX__ST_OPEN || s->peer_end) && s->wfd >= 0 &&
      s->src.core != NULL && s->o.linger != AX_LINGER_NONE) {
    /* Flush in the background: the fd stays until the queue is written,
     * the peer goes away or the linger time ends. */
    s->state = AX__ST_DONE;
    ax__src_linger(src, true);
    ax_timer_init(s->src.core->loop, &s->ltimer, linger_cb);
    if (s->o.linger != AX_FOREVER) {
      ax_loop_update_time(s->src.core->loop); /* from the close, not the turn's start */
      ax_timer_start(&s->ltimer, s->o.linger, 0);
    }
    update_interest(s);
    return;
  }
  s->state = AX__ST_DONE;
  reset_if_dropping(s);
  close_fds(s);
  free_chunks(s);
}

static void op_abort(ax__src_t *src) { finish_linger((ax_stream_t *)src); }

static void op_free(ax__src_t *src) {
  ax_stream_t *s = (ax_stream_t *)src;
  free_chunks(s);
  ax__framer_free(&s->framer);
  free(s);
}

static void op_credit(ax__src_t *src) {
  ax_stream_t *s = (ax_stream_t *)src;
  frame_out(s, false);
  update_interest(s);
}

static void op_detach(ax__src_t *src) {
  ax_stream_t *s = (ax_stream_t *)src;
  s->nomem_moved = s->nomem; /* a frame may wait for memory: the new core retries it */
  nomem_end(s); /* its timer is on this core's loop */
  ax_io_stop(&s->rio);
  ax_io_stop(&s->wio);
  s->rev = s->wev = 0;
}

static void op_attach(ax__src_t *src) {
  ax_stream_t *s = (ax_stream_t *)src;
  ax_loop_t *loop = s->src.core->loop;
  if (s->rfd >= 0)
    ax_io_init(loop, &s->rio, s->rfd, io_cb);
  if (s->wfd >= 0 && s->wfd != s->rfd)
    ax_io_init(loop, &s->wio, s->wfd, io_cb);
  s->rio.data = s->wio.data = s;
  ax__src_count(src, true);
  if (s->nomem_moved) {
    s->nomem_moved = false;
    nomem_pause(s); /* a timer on this core's loop now */
  }
  update_interest(s);
}

static void op_rebase(ax__msg_t *copy, const ax__msg_t *orig) {
  if (copy->m.type != AX_MSG_DATA)
    return;
  ax_data_t *d = (ax_data_t *)(void *)copy->payload;
  const ax_data_t *od = (const ax_data_t *)(const void *)orig->payload;
  d->bytes = copy->payload + (od->bytes - orig->payload);
}

static void op_end(ax__src_t *src, int err) { ax__stream_fail((ax_stream_t *)src, err); }

static const ax__src_ops_t stream_ops = {
    .close = op_close,
    .free = op_free,
    .credit = op_credit,
    .detach = op_detach,
    .attach = op_attach,
    .rebase = op_rebase,
    .end = op_end,
    .abort = op_abort,
};

/* ------------------------------------------------------------------------ */
/* Making streams.                                                           */

int ax__stream_alloc(ax_actor_t *self, int kind, const ax_stream_opts_t *opts,
                     ax_stream_t **out) {
  ax_stream_opts_t o;
  if (self == NULL || out == NULL || ax__stream_opts(opts, &o) < 0)
    return -EINVAL;
  ax_stream_t *s = ax__src_new(sizeof *s, &stream_ops, self, o.window);
  if (s == NULL)
    return -ENOMEM;
  s->kind = kind;
  s->state = AX__ST_CONNECTING;
  s->rfd = s->wfd = -1;
  s->o = o;
  s->active = -1;
  s->hint = 4096;
  s->paused = (o.flags & AX_STREAM_PAUSED) != 0;
  ax__framer_init(&s->framer, &o);
  s->rio.data = s->wio.data = s;
  *out = s;
  return 0;
}

int ax__stream_watch_connect(ax_stream_t *s, int fd) {
  s->rfd = s->wfd = fd;
  ax_io_init(s->src.core->loop, &s->rio, fd, io_cb);
  s->rio.data = s;
  int rc = ax_io_start(&s->rio, AX_WRITE);
  s->rev = rc == 0 ? AX_WRITE : 0;
  if (rc == 0)
    ax__src_count(&s->src, true);
  return rc;
}

void ax__stream_drop_connect(ax_stream_t *s) {
  ax_io_stop(&s->rio);
  s->rev = 0;
  ax__src_count(&s->src, false);
  if (s->rfd >= 0)
    close(s->rfd);
  s->rfd = s->wfd = -1;
}

void ax__stream_connected(ax_stream_t *s) {
  s->state = AX__ST_OPEN;
  post_ev(s, AX_MSG_CONNECTED, 0, 0, 0);
  if (s->wq_head != NULL)
    do_write(s);
  update_interest(s);
}

int ax__stream_new(ax_actor_t *self, int rfd, int wfd, int kind, const ax_stream_opts_t *opts,
                   ax_stream_t **out) {
  if (rfd < 0 && wfd < 0)
    return -EINVAL;
  ax_stream_t *s;
  int rc = ax__stream_alloc(self, kind, opts, &s);
  if (rc < 0)
    return rc;
  s->state = AX__ST_OPEN;
  s->rfd = rfd;
  s->wfd = wfd;
  ax_loop_t *loop = s->src.core->loop;
  if (rfd >= 0)
    ax_io_init(loop, &s->rio, rfd, io_cb);
  if (wfd >= 0 && wfd != rfd)
    ax_io_init(loop, &s->wio, wfd, io_cb);
  s->rio.data = s->wio.data = s;
  s->src.ended = true; /* a refusal now is this call's error, not a message */
  rc = update_interest(s);
  s->src.ended = false;
  if (rc < 0) { /* -EPERM for a regular file, -EEXIST, -ENOSPC, -ENOMEM */
    s->rfd = s->wfd = -1; /* the fds stay the caller's */
    ax__src_close(&s->src);
    return rc;
  }
  ax__src_count(&s->src, true);
  *out = s;
  return 0;
}

int ax__stream_kind(const ax_stream_t *s) { return s->kind; }

bool ax__src_is_stream(const ax__src_t *s) { return s->ops == &stream_ops; }

/* ------------------------------------------------------------------------ */
/* The public calls.                                                         */

int ax_pipe_open(ax_actor_t *self, int rfd, int wfd, const ax_stream_opts_t *opts,
                 ax_stream_t **out) {
  int rc = -EINVAL;
  if (self == NULL || out == NULL || (rfd < 0 && wfd < 0))
    goto fail;
  AX__ASSERT_OWNER(self);
  for (int i = 0; i < 2; i++) {
    int fd = i == 0 ? rfd : wfd;
    if (fd < 0)
      continue;
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
      goto fail;
  }
  rc = ax__stream_new(self, rfd, wfd, AX__STREAM_PIPE, opts, out);
  if (rc == 0)
    return 0;
fail:
  if (rfd >= 0)
    close(rfd);
  if (wfd >= 0 && wfd != rfd)
    close(wfd);
  return rc;
}

int ax_stream_write(ax_stream_t *s, const void *data, size_t len) {
  /* AX_MSG_MAX bounds len so that no size below can wrap. */
  if (s == NULL || (data == NULL && len > 0) || len > AX_MSG_MAX)
    return -EINVAL;
  AX__SRC_ASSERT(&s->src);
  if (s->state == AX__ST_DONE || s->shut_req || (s->wfd < 0 && s->state == AX__ST_OPEN) ||
      s->src.closed)
    return -EPIPE;
  if (s->queued >= s->o.high_water) {
    s->want_writable = true;
    return -ENOBUFS;
  }
  if (len == 0)
    return 0;
  const unsigned char *p = data;
  if (s->wq_head == NULL && s->state == AX__ST_OPEN) {
    struct iovec iov = {.iov_base = (void *)(uintptr_t)p, .iov_len = len};
    ssize_t w;
    do
      w = write_fd(s, &iov, 1);
    while (w < 0 && errno == EINTR);
    if (w < 0 && errno != EAGAIN) {
      int err = s->kind == AX__STREAM_TTY ? -EIO : -errno;
      ax__stream_fail(s, err);
      return err;
    }
    if (w > 0) {
      p += w;
      len -= (size_t)w;
    }
    if (len == 0)
      return 0;
  }
  ax__wchunk_t *t = s->wq_tail;
  if (t != NULL && t->cap - t->len >= len) {
    memcpy(t->data + t->len, p, len);
    t->len += len;
  } else {
    size_t cap = len > AX__CHUNK_MIN ? len : AX__CHUNK_MIN;
    ax__wchunk_t *c = ax__malloc(sizeof *c + cap);
    if (c == NULL) {
      if (p != data) {
        /* The kernel took a part that cannot be taken back: the peer
         * would see the rest missing, and a retry would send that part
         * twice.  The stream ends instead, as after a kernel error. */
        ax__stream_fail(s, -ENOMEM);
      }
      return -ENOMEM;
    }
    c->next = NULL;
    c->off = 0;
    c->len = len;
    c->cap = cap;
    memcpy(c->data, p, len);
    if (t != NULL)
      t->next = c;
    else
      s->wq_head = c;
    s->wq_tail = c;
  }
  s->queued += len;
  update_interest(s);
  return 0;
}

size_t ax_stream_queued(const ax_stream_t *s) {
  if (s == NULL)
    return 0;
  AX__SRC_ASSERT(&s->src);
  return s->queued;
}

int ax_stream_shutdown(ax_stream_t *s) {
  if (s == NULL)
    return -EINVAL;
  AX__SRC_ASSERT(&s->src);
  if (s->state == AX__ST_CONNECTING)
    return -ENOTCONN;
  if (s->shut_req || s->state == AX__ST_DONE)
    return 0;
  s->shut_req = true;
  if (s->wq_head == NULL)
    do_write(s); /* nothing queued: shut down now */
  update_interest(s);
  return 0;
}

int ax_stream_close(ax_stream_t *s) { return ax__src_close_handle((ax__src_t *)s); }

void ax__stream_abort(ax_stream_t *s) {
  if (s->kind == AX__STREAM_TCP && s->wfd >= 0) {
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    (void)setsockopt(s->wfd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg); /* close() then sends RST */
  }
  ax__src_close(&s->src);
}

int ax_stream_pause(ax_stream_t *s) {
  if (s == NULL)
    return -EINVAL;
  AX__SRC_ASSERT(&s->src);
  s->paused = true;
  update_interest(s);
  return 0;
}

int ax_stream_resume(ax_stream_t *s) {
  if (s == NULL)
    return -EINVAL;
  AX__SRC_ASSERT(&s->src);
  s->paused = false;
  s->active = -1;
  frame_out(s, false);
  update_interest(s);
  return 0;
}

int ax_stream_active(ax_stream_t *s, int n) {
  if (s == NULL || n <= 0)
    return -EINVAL;
  AX__SRC_ASSERT(&s->src);
  s->paused = false;
  s->active = n;
  frame_out(s, false);
  update_interest(s);
  return 0;
}

int ax_stream_give(ax_stream_t *s, ax_ref_t to) {
  if (s == NULL)
    return -EINVAL;
  AX__SRC_ASSERT(&s->src);
  if (s->state == AX__ST_CONNECTING || s->src.owner == NULL)
    return -EINVAL;
  ax_stream_ev_t ev = {.stream = s};
  ax__msg_t *m = ax__msg_new(to, AX__SYS_IO, AX_MSG_GIVEN, &ev, sizeof ev, s->src.owner->ref);
  if (m == NULL)
    return -ENOMEM;
  return ax__src_give(&s->src, to, m);
}

static bool is_socket(const ax_stream_t *s) {
  return (s->kind == AX__STREAM_TCP || s->kind == AX__STREAM_UNIX) && s->rfd >= 0;
}

int ax_stream_set_nodelay(ax_stream_t *s, bool on) {
  if (s == NULL)
    return -EINVAL;
  AX__SRC_ASSERT(&s->src);
  if (s->kind != AX__STREAM_TCP || s->rfd < 0)
    return -ENOTSOCK;
  int v = on;
  return setsockopt(s->rfd, IPPROTO_TCP, TCP_NODELAY, &v, sizeof v) < 0 ? -errno : 0;
}

int ax_stream_set_keepalive(ax_stream_t *s, bool on, int idle_s) {
  if (s == NULL || idle_s < 0)
    return -EINVAL;
  AX__SRC_ASSERT(&s->src);
  if (!is_socket(s))
    return -ENOTSOCK;
  int v = on;
  if (setsockopt(s->rfd, SOL_SOCKET, SO_KEEPALIVE, &v, sizeof v) < 0)
    return -errno;
  if (on && idle_s > 0 && s->kind == AX__STREAM_TCP &&
      setsockopt(s->rfd, IPPROTO_TCP, TCP_KEEPIDLE, &idle_s, sizeof idle_s) < 0)
    return -errno;
  return 0;
}

int ax_stream_set_bufsize(ax_stream_t *s, int sndbuf, int rcvbuf) {
  if (s == NULL || sndbuf < 0 || rcvbuf < 0)
    return -EINVAL;
  AX__SRC_ASSERT(&s->src);
  if (!is_socket(s))
    return -ENOTSOCK;
  if (sndbuf > 0 && setsockopt(s->rfd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf) < 0)
    return -errno;
  if (rcvbuf > 0 && setsockopt(s->rfd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf) < 0)
    return -errno;
  return 0;
}

int ax_stream_fd(const ax_stream_t *s) {
  if (s == NULL)
    return -EINVAL;
  AX__SRC_ASSERT(&s->src);
  return s->rfd >= 0 ? s->rfd : (s->wfd >= 0 ? s->wfd : -EBADF);
}

int ax_stream_peer(const ax_stream_t *s, struct sockaddr_storage *addr, socklen_t *len) {
  if (s == NULL || addr == NULL || len == NULL)
    return -EINVAL;
  AX__SRC_ASSERT(&s->src);
  if (!is_socket(s))
    return -ENOTSOCK;
  *len = sizeof *addr;
  return getpeername(s->rfd, (struct sockaddr *)addr, len) < 0 ? -errno : 0;
}

void ax_stream_set_data(ax_stream_t *s, void *data) {
  if (s == NULL)
    return;
  AX__SRC_ASSERT(&s->src);
  s->udata = data;
}

void *ax_stream_data(const ax_stream_t *s) {
  if (s == NULL)
    return NULL;
  AX__SRC_ASSERT(&s->src);
  return s->udata;
}
