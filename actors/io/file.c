/* Files and paths as requests on the work pool, each completing as one AX_MSG_FILE to its owner. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "actors/fiber.h"
#include "actors/io/uring.h"
#include "actors/work.h"
#include "axon/fiber.h"
#include "axon/file.h"
#include "io/alloc.h"

#ifdef AX_HAVE_URING
#include <liburing.h>
#endif

/*
 * A file is an fd and two counts.  `refs` counts who still needs the fd:
 * the owner's handle, and every request made on the file that has not
 * been handled or dropped yet; the last one to let go (on the owner's
 * core, or on a pool thread that dropped an abandoned request) closes the
 * fd if no close request did, and frees the file.  `pending` counts, on
 * the owner's core only, the requests whose message has not been handled:
 * a close waits for it to reach 0 before its own request starts, so every
 * earlier message comes before the close's and no request runs on an fd
 * that is closed (or reused by another open).
 *
 * A request's message is made when it is requested, with room for what a
 * read brings back (or a write's bytes, copied then): the pool thread or
 * the kernel fills it, and nothing of the caller's is touched after the
 * call.
 *
 * Two ways to run a request.  Where the core has an io_uring (uring.h),
 * every request but a stat goes to it: the entry is prepared now and
 * submitted with the round's batch, and its completion, reaped on this
 * core, is accounted for and its message pushed to the owner's mailbox
 * there and then.  Otherwise, and for stats, the request is work on the
 * pool (work.h) whose message the pool sends, accounted for when the
 * behaviour gets it.  Either way `pending` drops before the message is
 * seen, and a close held behind the file's other requests starts then.
 * An owner that dies marks its requests on the ring orphans: their
 * completions free them (the kernel may write into their buffers until
 * then); the pool drops its own.
 */

#define FILE_MAGIC 0x66696c65u /* "file" */

struct ax_file {
  uint32_t magic;
  int fd;              /* set by the open (before its message); -1 once closed */
  bool stream;         /* not a regular file (a FIFO, a device): a short transfer is
                          what it gave, not a part of what it will give */
  bool nowait;         /* a stream the pool made non-blocking (run_req's open): its
                          EAGAIN means "poll again", not an error (do_read) */
  _Atomic bool orphaned; /* the owner died: a pool thread waiting on a stream gives up */
  ax_actor_t *owner;
  struct ax_file *prev, *next; /* the owner's list (owner core) */
  unsigned pending;            /* owner core */
  bool closing;                /* owner core */
  uint64_t close_id;           /* owner core: the held close on the pool, while others run */
  struct file_req *close_req;  /* owner core: the held close for the ring, likewise */
  /* A stream's transfers on the pool (owner core): each waits, held, for
   * its fd to be ready on the owner's loop, reads and writes each in
   * order, one at a time (stream_next), so that a FIFO or a tty nobody
   * writes holds no pool thread.  [0]: reads, [1]: writes. */
  ax_io_t io;
  bool counted; /* io counted in the core's fds while it watches (stream_count) */
  struct {
    struct file_req *head, *tail; /* held, in order */
    struct file_req *run;         /* released, its message not handled yet */
  } dir[2];
  unsigned waiting; /* held on either list */
  _Atomic unsigned refs;
};

/* A request: what the pool thread needs, and where its answer goes. */
typedef struct file_req {
  ax__uring_req_t ureq; /* on the ring: its completion */
  ax__uring_t *ring;    /* the ring it goes to, or NULL: the pool */
  ax_actor_t *owner;
  ax__msg_t *msg;
  struct file_req *prev, *next; /* on the ring: the owner's list (orphaned when it dies) */
  bool orphan;
  uint64_t work_id;           /* a stream's held transfer on the pool (ax_file_t.wait_head) */
  struct file_req *wait_next; /* likewise */
  size_t moved; /* on the ring: bytes read or written so far (short transfers go on) */
  ax_file_t *file; /* NULL for path requests */
  ax_file_done_t *done; /* in the message */
  unsigned char *buf;   /* the message's bytes after the header */
  uint32_t op;
  bool data_only;
  int flags;
  mode_t mode;
  uint64_t off;
  size_t len;
  char *path, *path2;
} file_req_t;

/* The header, then the bytes (16-byte aligned: a struct stat lands there). */
#define HDR ((sizeof(ax_file_done_t) + 15) & ~(size_t)15)

typedef struct file_list {
  ax_file_t *head;
  struct file_req *ring_head; /* requests on the ring */
} file_list_t;

/* ------------------------------------------------------------------------ */
/* References and the owner's list                                           */

static void file_unref(ax_file_t *f) {
  /* acq_rel: the last one to let go sees every write to f (the fd a close
   * request reset on its pool thread) before it closes and frees. */
  if (atomic_fetch_sub_explicit(&f->refs, 1, memory_order_acq_rel) != 1)
    return;
  if (f->fd >= 0)
    close(f->fd);
  f->magic = 0;
  free(f);
}

static file_list_t *list_of(ax_actor_t *a, bool make) {
  file_list_t *l = ax__slot_get(a, AX__SLOT_FILES);
  if (l != NULL || !make)
    return l;
  ax__actor_ext_t *ext = ax__actor_ext(a);
  if (ext == NULL || (l = ax__calloc(1, sizeof *l)) == NULL)
    return NULL;
  ext->slot[AX__SLOT_FILES] = l;
  return l;
}

static void list_unlink(ax_file_t *f) {
  file_list_t *l = list_of(f->owner, false);
  if (f->prev != NULL)
    f->prev->next = f->next;
  else if (l != NULL && l->head == f)
    l->head = f->next;
  if (f->next != NULL)
    f->next->prev = f->prev;
  f->prev = f->next = NULL;
}

/* ------------------------------------------------------------------------ */
/* On a pool thread                                                          */

/* How often a pool thread waiting on a stream looks whether its owner died. */
#define STREAM_WAIT_MS 100

/* A stream (a FIFO, a device) on a pool thread: waits until fd is ready
 * for ev, and gives up with -ECANCELED once the owner died.  The ring
 * cancels such a transfer when the owner dies; the pool cannot interrupt
 * a read or write that blocks, so it only starts one that will not (a
 * FIFO's read nobody writes to would keep the thread, and with it
 * ax_rt_join, forever).  Returns 0 or -ECANCELED. */
static int stream_ready(ax_file_t *f, short ev) {
  /* Relaxed: a flag polled, that orders nothing (f itself stays alive: the
   * request holds a reference). */
  while (!atomic_load_explicit(&f->orphaned, memory_order_relaxed)) {
    struct pollfd p = {.fd = f->fd, .events = ev};
    int n = poll(&p, 1, STREAM_WAIT_MS);
    if (n > 0 || (n < 0 && errno != EINTR))
      return 0; /* ready, hung up, or an error the transfer reports itself */
  }
  return -ECANCELED;
}

/* A stream's fd is non-blocking on the pool (run_req's open): ready by
 * stream_ready's poll, it may be empty (or full) again by the time of the
 * transfer, another reader having taken the bytes (another actor's
 * request on another pool thread, another process), and a blocking read
 * then kept the thread, and ax_rt_join, for good (a newcomer: 3 runs of
 * 6).  Such a transfer says EAGAIN, and the thread polls again. */
static int64_t do_read(file_req_t *r) {
  size_t got = 0;
  while (got < r->len && (got == 0 || !r->file->stream)) {
    if (r->file->stream && stream_ready(r->file, POLLIN) < 0)
      return -ECANCELED;
    ssize_t n = pread(r->file->fd, r->buf + got, r->len - got, (off_t)(r->off + got));
    if (n < 0 && errno == ESPIPE) /* a FIFO or a socket: no offset, as on the ring */
      n = read(r->file->fd, r->buf + got, r->len - got);
    if (n < 0 && (errno == EINTR || (errno == EAGAIN && r->file->nowait)))
      continue;
    if (n < 0)
      return got > 0 ? (int64_t)got : -errno;
    if (n == 0)
      break; /* the end of the file */
    got += (size_t)n;
  }
  r->done->len = got;
  return (int64_t)got;
}

/* A stream the pool made non-blocking is written until all of it went,
 * as a blocking write would, polling in between (stream_ready), so that a
 * peer that stops reading keeps the thread only until the owner dies. */
static int64_t do_write(file_req_t *r) {
  size_t put = 0;
  while (put < r->len && (put == 0 || !r->file->stream || r->file->nowait)) {
    if (r->file->stream && stream_ready(r->file, POLLOUT) < 0)
      return put > 0 ? (int64_t)put : -ECANCELED;
    ssize_t n = pwrite(r->file->fd, r->buf + put, r->len - put, (off_t)(r->off + put));
    if (n < 0 && errno == ESPIPE) /* a FIFO or a socket: no offset, as on the ring */
      n = write(r->file->fd, r->buf + put, r->len - put);
    if (n < 0 && (errno == EINTR || (errno == EAGAIN && r->file->nowait)))
      continue;
    if (n < 0)
      return put > 0 ? (int64_t)put : -errno;
    if (n == 0)
      break; /* a file that takes nothing (some devices, FUSE): a short count, as on the ring */
    put += (size_t)n;
  }
  return (int64_t)put;
}

static int64_t sys(int rc) { return rc < 0 ? -errno : rc; }

static int64_t run_req(void *arg) {
  file_req_t *r = arg;
  ax_file_t *f = r->file;
  int64_t res;
  switch (r->op) {
  case AX_FILE_OPEN: {
    int fd = open(r->path, r->flags | O_CLOEXEC, r->mode);
    res = fd < 0 ? -errno : 0;
    if (fd >= 0) {
      struct stat st;
      f->stream = fstat(fd, &st) == 0 && !S_ISREG(st.st_mode);
      /* A stream's transfers must not block past stream_ready (do_read).
       * A fd that cannot be made so stays a blocking one, as before. */
      int fl;
      f->nowait = f->stream && !(r->flags & O_NONBLOCK) && (fl = fcntl(fd, F_GETFL)) >= 0 &&
                  fcntl(fd, F_SETFL, fl | O_NONBLOCK) == 0;
      f->fd = fd; /* published by the message (and by refs to a last unref) */
      r->done->file = f;
    }
    break;
  }
  case AX_FILE_READ:
    res = do_read(r);
    break;
  case AX_FILE_WRITE:
    res = do_write(r);
    break;
  case AX_FILE_SYNC:
    res = sys(r->data_only ? fdatasync(f->fd) : fsync(f->fd));
    break;
  case AX_FILE_STAT:
  case AX_FILE_STAT_PATH:
    res = sys(r->op == AX_FILE_STAT ? fstat(f->fd, (struct stat *)(void *)r->buf)
                                    : stat(r->path, (struct stat *)(void *)r->buf));
    if (res == 0)
      r->done->len = sizeof(struct stat);
    break;
  case AX_FILE_CLOSE:
    /* Linux frees the descriptor even when close fails (EINTR, EIO). */
    res = sys(close(f->fd));
    f->fd = -1;
    break;
  case AX_FILE_UNLINK:
    res = sys(unlink(r->path));
    break;
  case AX_FILE_RENAME:
    res = sys(rename(r->path, r->path2));
    break;
  case AX_FILE_MKDIR:
    res = sys(mkdir(r->path, r->mode));
    break;
  default: /* AX_FILE_RMDIR */
    res = sys(rmdir(r->path));
    break;
  }
  r->done->result = res;
  return res;
}

static void req_dispose(void *arg);
static void req_done(struct file_req *r);

/* ------------------------------------------------------------------------ */
/* On the core's ring                                                        */

#ifdef AX_HAVE_URING
/* Fills r's entry (the rest of it, after a short transfer). */
static void ring_fill(ax__uring_req_t *ur, struct io_uring_sqe *sqe) {
  file_req_t *r = AX_CONTAINER_OF(ur, file_req_t, ureq);
  ax_file_t *f = r->file;
  switch (r->op) {
  case AX_FILE_OPEN:
    io_uring_prep_openat(sqe, AT_FDCWD, r->path, r->flags | O_CLOEXEC, r->mode);
    break;
  case AX_FILE_READ:
    io_uring_prep_read(sqe, f->fd, r->buf + r->moved, (unsigned)(r->len - r->moved),
                       r->off + r->moved);
    break;
  case AX_FILE_WRITE:
    io_uring_prep_write(sqe, f->fd, r->buf + r->moved, (unsigned)(r->len - r->moved),
                        r->off + r->moved);
    break;
  case AX_FILE_SYNC:
    io_uring_prep_fsync(sqe, f->fd, r->data_only ? IORING_FSYNC_DATASYNC : 0);
    break;
  case AX_FILE_CLOSE:
    io_uring_prep_close(sqe, f->fd);
    break;
  case AX_FILE_UNLINK:
  case AX_FILE_RMDIR:
    io_uring_prep_unlinkat(sqe, AT_FDCWD, r->path, r->op == AX_FILE_RMDIR ? AT_REMOVEDIR : 0);
    break;
  case AX_FILE_RENAME:
    io_uring_prep_renameat(sqe, AT_FDCWD, r->path, AT_FDCWD, r->path2, 0);
    break;
  default: /* AX_FILE_MKDIR */
    io_uring_prep_mkdirat(sqe, AT_FDCWD, r->path, r->mode);
    break;
  }
}
#else
static void ring_fill(ax__uring_req_t *ur, struct io_uring_sqe *sqe) { /* never: no ring */
  (void)ur;
  (void)sqe;
}
#endif

/* Submits r's entry (the rest of it, after a short transfer). */
static void ring_prep(file_req_t *r) { ax__uring_submit(r->ring, &r->ureq); }

static void ring_complete(ax__uring_req_t *ur, int res);

/* Sends r to the ring, and files it with its owner (for orphaning). */
static void ring_submit(file_req_t *r) {
  file_list_t *l = list_of(r->owner, false); /* made by the open, or below */
  if (l == NULL)
    l = list_of(r->owner, true);
  r->ureq.complete = ring_complete;
  r->ureq.prep = ring_fill;
  if (l != NULL) {
    r->next = l->ring_head;
    if (l->ring_head != NULL)
      l->ring_head->prev = r;
    l->ring_head = r;
  } else {
    r->orphan = true; /* no memory to track it: its result is lost, never its buffer */
  }
  ring_prep(r);
}

/* r's completion, on its owner's core. */
static void ring_complete(ax__uring_req_t *ur, int res) {
  file_req_t *r = AX_CONTAINER_OF(ur, file_req_t, ureq);
  /* A close the ring never ran (the kernel refused the batch): done here,
   * since the fd must go either way (a close does not wait for a disk). */
  if (ur->refused && r->op == AX_FILE_CLOSE && r->file->fd >= 0)
    res = close(r->file->fd) == 0 ? 0 : -errno;
  /* A short transfer is not the end of the file (or of the room) until a
   * transfer moves nothing: ask for the rest. */
  if ((r->op == AX_FILE_READ || r->op == AX_FILE_WRITE) && res > 0) {
    r->moved += (size_t)res;
    if (r->moved < r->len && !r->file->stream) {
      ring_prep(r);
      return;
    }
  }
  if (r->orphan) { /* the owner died: nobody takes the result */
    if (r->op == AX_FILE_OPEN && res >= 0)
      close(res);
    if (r->op == AX_FILE_CLOSE && res != -ECANCELED)
      r->file->fd = -1; /* the kernel closed it: the last unref must not, again */
    ax__msg_free(r->msg);
    req_dispose(r);
    return;
  }
  file_list_t *l = list_of(r->owner, false);
  if (r->prev != NULL)
    r->prev->next = r->next;
  else if (l != NULL && l->ring_head == r)
    l->ring_head = r->next;
  if (r->next != NULL)
    r->next->prev = r->prev;
  int64_t result = res;
  switch (r->op) {
  case AX_FILE_OPEN:
    if (res >= 0) {
      struct stat st; /* an open fd's inode: no disk wait */
      r->file->stream = fstat(res, &st) == 0 && !S_ISREG(st.st_mode);
      r->file->fd = res;
      r->done->file = r->file;
      result = 0;
    }
    break;
  case AX_FILE_READ:
  case AX_FILE_WRITE:
    /* An error after some bytes: the bytes.  But not when the ring refused
     * the rest, which would read as the end of the file. */
    if ((r->moved > 0 && !ur->refused) || res == 0)
      result = (int64_t)r->moved;
    if (r->op == AX_FILE_READ)
      r->done->len = r->moved;
    break;
  case AX_FILE_CLOSE:
    r->file->fd = -1;
    break;
  default:
    break;
  }
  r->done->result = result;
  ax_actor_t *owner = r->owner;
  ax__msg_t *m = r->msg;
  req_done(r);
  ax__mailbox_push(owner->core, owner, m);
}

/* The owner died: its requests on the ring become orphans.  Opens and
 * reads are cancelled (nobody takes their result; an open of a FIFO or a
 * read of one may wait for a writer forever), and so is anything on a
 * FIFO or a device (a write to a pipe nobody reads would never end);
 * writes and the rest on regular files and paths finish, as they would
 * on the pool. */
static void ring_orphan(file_list_t *l) {
  for (file_req_t *r = l->ring_head; r != NULL; r = r->next) {
    r->orphan = true;
    if (r->op == AX_FILE_OPEN || r->op == AX_FILE_READ || (r->file != NULL && r->file->stream))
      ax__uring_cancel(r->ring, &r->ureq);
  }
  l->ring_head = NULL;
}

/* ------------------------------------------------------------------------ */
/* A stream's transfers on the pool (owner core)                             */

/* The list of f that r waits on: 0 reads, 1 writes. */
static inline int wait_dir(const file_req_t *r) { return r->op == AX_FILE_READ ? 0 : 1; }

/* The first waiting transfer of direction d goes to the pool: its fd is
 * ready, or cannot be watched (it then waits on its pool thread,
 * stream_ready). */
static void stream_release(ax_file_t *f, int d) {
  file_req_t *r = f->dir[d].head;
  f->dir[d].head = r->wait_next;
  if (f->dir[d].head == NULL)
    f->dir[d].tail = NULL;
  f->waiting--;
  f->dir[d].run = r;
  ax__work_release(f->owner, r->work_id);
}

/* What f's watcher asks for: each direction with a transfer waiting and
 * none running. */
static unsigned stream_events(const ax_file_t *f) {
  unsigned ev = 0;
  if (f->dir[0].head != NULL && f->dir[0].run == NULL)
    ev |= AX_READ;
  if (f->dir[1].head != NULL && f->dir[1].run == NULL)
    ev |= AX_WRITE;
  return ev;
}

/* Counts f's watcher in its core's fds while it watches, as every other
 * source counts its fd: a core with an fd to serve sleeps in its poll
 * rather than spinning, and a spinning core looks at its loop only once
 * per millisecond (core.c), which capped a FIFO's reads at one per
 * millisecond while messages kept the core from sleeping (a reviewer). */
static void stream_count(ax_file_t *f) {
  bool on = ax_io_active(&f->io);
  if (on != f->counted) {
    f->counted = on;
    ax__core_count_io(f->owner->core, on);
  }
}

/* Stops f's watcher (if it watches). */
static void stream_unwatch(ax_file_t *f) {
  (void)ax_io_stop(&f->io);
  stream_count(f);
}

/* Watches f's fd for the first waiting transfer of each direction that
 * has none running; stops watching when there is nothing to watch for. */
static void stream_next(ax_file_t *f) {
  unsigned ev = stream_events(f);
  if (ev == 0) {
    stream_unwatch(f);
    return;
  }
  int rc = ax_io_active(&f->io) ? ax_io_modify(&f->io, ev) : ax_io_start(&f->io, ev);
  stream_count(f);
  if (rc < 0) { /* -EPERM (a device that cannot be polled), -EEXIST (the user watches it) */
    stream_unwatch(f);
    for (int d = 0; d < 2; d++)
      if (ev & (d == 0 ? AX_READ : AX_WRITE))
        stream_release(f, d);
  }
}

static void stream_ready_cb(ax_io_t *io, unsigned revents) {
  ax_file_t *f = io->data;
  /* A hang-up or an error comes with the bits asked for (io.c): the
   * transfer reports it. */
  unsigned ev = stream_events(f) & revents;
  if (ev & AX_READ)
    stream_release(f, 0);
  if (ev & AX_WRITE)
    stream_release(f, 1);
  stream_next(f);
}

/* r, a read or write of stream f on the pool, was made held: it waits its
 * turn and its fd's readiness.  Returns 0, or -EAGAIN when as many wait as
 * the pool's queue may hold (r is then the caller's to cancel). */
static int stream_wait(ax_file_t *f, file_req_t *r) {
  if (f->waiting >= ax__work_queue_max(f->owner->core->rt))
    return -EAGAIN;
  if (!ax_io_active(&f->io)) {
    ax_io_init(f->owner->core->loop, &f->io, f->fd, stream_ready_cb);
    f->io.data = f;
  }
  int d = wait_dir(r);
  r->wait_next = NULL;
  if (f->dir[d].tail != NULL)
    f->dir[d].tail->wait_next = r;
  else
    f->dir[d].head = r;
  f->dir[d].tail = r;
  f->waiting++;
  stream_next(f);
  return 0;
}

/* ------------------------------------------------------------------------ */
/* Requests (owner core)                                                     */

static void req_free(file_req_t *r) {
  free(r->path);
  free(r->path2);
  free(r);
}

/* The request completed for a live owner, just before its message is
 * seen: the file's accounting, then the request goes (owner core). */
static void req_done(file_req_t *r) {
  ax_file_t *f = r->file;
  uint32_t op = r->op;
  bool failed_open = op == AX_FILE_OPEN && r->done->result < 0;
  int ran = f == NULL ? -1 : f->dir[0].run == r ? 0 : f->dir[1].run == r ? 1 : -1;
  req_free(r);
  if (f == NULL)
    return;
  if (ran >= 0) {
    f->dir[ran].run = NULL;
    stream_next(f);
  }
  if (op == AX_FILE_CLOSE || failed_open) {
    list_unlink(f); /* the handle is gone: the owner's reference goes too */
    file_unref(f);
  } else if (--f->pending == 0 && f->close_req != NULL) { /* the last before the close */
    file_req_t *c = f->close_req;
    f->close_req = NULL;
    ring_submit(c);
  } else if (f->pending == 0 && f->close_id != 0) {
    ax__work_release(f->owner, f->close_id);
    f->close_id = 0;
  }
  file_unref(f);
}

/* The pool's message reaches the behaviour. */
static void req_delivered(void *arg) { req_done(arg); }

/* The request will not be delivered (its owner died): any thread (the
 * ring's: its core). */
static void req_dispose(void *arg) {
  file_req_t *r = arg;
  ax_file_t *f = r->file;
  req_free(r);
  if (f != NULL)
    file_unref(f);
}

/* Makes a request of op for owner (on file f, or a path request) with
 * `extra` bytes after the header; *out gets it with its message. */
static int req_new(ax_actor_t *owner, ax_file_t *f, uint32_t op, uint64_t tag, size_t extra,
                   file_req_t **out, ax__msg_t **msg) {
  /* A stat's struct stat would need converting from io_uring's statx:
   * stats go to the pool. */
  ax__uring_t *ring = op == AX_FILE_STAT || op == AX_FILE_STAT_PATH ? NULL
                                                                     : ax__uring_of(owner->core);
  /* The ring shares the pool's bound, per core: requests in flight on it
   * (each holds its message, a read's buffer included) stop at work_queue,
   * as queued work does on the pool.  A close is never refused: it frees. */
  if (ring != NULL && op != AX_FILE_CLOSE &&
      ax__uring_inflight(ring) >= ax__work_queue_max(owner->core->rt))
    return -EAGAIN;
  file_req_t *r = ax__calloc(1, sizeof *r);
  ax__msg_t *m = r == NULL ? NULL
                 : ring != NULL
                     ? ax__msg_new(owner->ref, 0, AX_MSG_FILE, NULL, HDR + extra, owner->ref)
                     : ax__work_msg(owner, AX_MSG_FILE, HDR + extra);
  if (m == NULL) {
    free(r);
    return -ENOMEM;
  }
  r->ring = ring;
  r->owner = owner;
  r->msg = m;
  r->file = f;
  r->op = op;
  r->done = (ax_file_done_t *)(void *)m->payload;
  r->buf = m->payload + HDR;
  *r->done = (ax_file_done_t){.tag = tag, .file = f, .op = op,
                              .data = extra > 0 ? r->buf : NULL};
  if (ring != NULL) /* the pool numbers its own when it queues them */
    r->done->id = ax__work_next_id(owner->core->rt);
  *out = r;
  *msg = m;
  return 0;
}

/* Queues r (held: a close that waits); on failure frees it and its
 * message. */
static int req_submit(ax_actor_t *owner, file_req_t *r, ax__msg_t *m, bool held, uint64_t *id) {
  ax_file_t *f = r->file;
  if (f != NULL) /* relaxed: the owner holds one, so this is never the first */
    atomic_fetch_add_explicit(&f->refs, 1, memory_order_relaxed);
  if (r->ring != NULL) { /* cannot fail from here */
    if (f != NULL && r->op != AX_FILE_CLOSE)
      f->pending++;
    if (id != NULL)
      *id = r->done->id;
    if (held)
      f->close_req = r;
    else
      ring_submit(r);
    return 0;
  }
  /* A stream's transfer waits, held, for its fd on this core's loop. */
  bool wait = f != NULL && f->stream && (r->op == AX_FILE_READ || r->op == AX_FILE_WRITE);
  int rc = ax__work_start_msg(owner, run_req, r, req_dispose, req_delivered, m, held || wait,
                              wait ? &r->work_id : id);
  if (rc == 0 && wait && (rc = stream_wait(f, r)) < 0) {
    (void)ax__work_cancel(owner, r->work_id); /* disposes of r, its reference included */
    return rc;
  }
  if (rc < 0) {
    if (f != NULL) /* relaxed: nor the last */
      atomic_fetch_sub_explicit(&f->refs, 1, memory_order_relaxed);
    ax__msg_free(m);
    req_free(r);
    return rc;
  }
  if (wait && id != NULL)
    *id = r->work_id;
  if (f != NULL && r->op != AX_FILE_CLOSE)
    f->pending++;
  return 0;
}

static int check_file(const ax_file_t *f) {
  if (f == NULL || f->magic != FILE_MAGIC)
    return -EINVAL;
  if (f->owner->core != ax__tls_core)
    return -EPERM;
  return f->closing ? -EBADF : 0;
}

/* A request on f; data (len bytes) is a write's, copied now. */
static int file_req(ax_file_t *f, uint32_t op, uint64_t off, size_t len, const void *data,
                    bool data_only, uint64_t tag, uint64_t *id) {
  int rc = check_file(f);
  if (rc < 0)
    return rc;
  if (off > (uint64_t)INT64_MAX - len)
    return -EINVAL; /* past off_t: the ring would read -1 as "the file position" */
  size_t extra = op == AX_FILE_READ || op == AX_FILE_WRITE ? len
                 : op == AX_FILE_STAT                       ? sizeof(struct stat)
                                                            : 0;
  file_req_t *r;
  ax__msg_t *m;
  if ((rc = req_new(f->owner, f, op, tag, extra, &r, &m)) < 0)
    return rc;
  r->off = off;
  r->len = len;
  r->data_only = data_only;
  if (op == AX_FILE_WRITE)
    memcpy(r->buf, data, len);
  return req_submit(f->owner, r, m, false, id);
}

int ax_file_read(ax_file_t *file, uint64_t off, size_t len, uint64_t tag) {
  if (len == 0 || len > AX_FILE_IO_MAX)
    return -EINVAL;
  return file_req(file, AX_FILE_READ, off, len, NULL, false, tag, NULL);
}

int ax_file_write(ax_file_t *file, uint64_t off, const void *data, size_t len, uint64_t tag) {
  if (data == NULL || len == 0 || len > AX_FILE_IO_MAX)
    return -EINVAL;
  return file_req(file, AX_FILE_WRITE, off, len, data, false, tag, NULL);
}

/* The bytes iov holds, checked: at most AX_FILE_IO_MAX, at least 1. */
static int iov_total(const struct iovec *iov, int iovcnt, size_t *total) {
  if (iov == NULL || iovcnt < 1 || iovcnt > IOV_MAX)
    return -EINVAL;
  size_t t = 0;
  for (int i = 0; i < iovcnt; i++) {
    if (iov[i].iov_len > AX_FILE_IO_MAX - t || (iov[i].iov_len > 0 && iov[i].iov_base == NULL))
      return -EINVAL;
    t += iov[i].iov_len;
  }
  if (t == 0)
    return -EINVAL;
  *total = t;
  return 0;
}

static int writev_req(ax_file_t *f, uint64_t off, const struct iovec *iov, int iovcnt,
                      uint64_t tag, uint64_t *id) {
  size_t total;
  int rc = iov_total(iov, iovcnt, &total);
  if (rc < 0 || (rc = check_file(f)) < 0)
    return rc;
  if (off > (uint64_t)INT64_MAX - total)
    return -EINVAL; /* as in file_req */
  file_req_t *r;
  ax__msg_t *m;
  if ((rc = req_new(f->owner, f, AX_FILE_WRITE, tag, total, &r, &m)) < 0)
    return rc;
  r->off = off;
  r->len = total;
  size_t at = 0;
  for (int i = 0; i < iovcnt; i++) {
    if (iov[i].iov_len > 0)
      memcpy(r->buf + at, iov[i].iov_base, iov[i].iov_len);
    at += iov[i].iov_len;
  }
  return req_submit(f->owner, r, m, false, id);
}

int ax_file_writev(ax_file_t *file, uint64_t off, const struct iovec *iov, int iovcnt,
                   uint64_t tag) {
  return writev_req(file, off, iov, iovcnt, tag, NULL);
}

int ax_file_sync(ax_file_t *file, bool data_only, uint64_t tag) {
  return file_req(file, AX_FILE_SYNC, 0, 0, NULL, data_only, tag, NULL);
}

int ax_file_stat(ax_file_t *file, uint64_t tag) {
  return file_req(file, AX_FILE_STAT, 0, 0, NULL, false, tag, NULL);
}

const char *ax_file_backend(void) { return ax__uring_mode(); }

int ax_file_fd(const ax_file_t *file) {
  return file != NULL && file->magic == FILE_MAGIC && !file->closing ? file->fd : -1;
}

int ax_file_close(ax_file_t *file, uint64_t tag) {
  int rc = check_file(file);
  if (rc < 0)
    return rc;
  /* Made now, so that it cannot fail later; held while other requests
   * are pending, and queued by the last of them (req_delivered). */
  bool held = file->pending > 0;
  file_req_t *r;
  ax__msg_t *m;
  if ((rc = req_new(file->owner, file, AX_FILE_CLOSE, tag, 0, &r, &m)) < 0 ||
      (rc = req_submit(file->owner, r, m, held,
                       held && r->ring == NULL ? &file->close_id : NULL)) < 0)
    return rc; /* nothing changed: the caller may try again */
  file->closing = true;
  return 0;
}

int ax_file_open(ax_actor_t *self, const char *path, int flags, mode_t mode, uint64_t tag) {
  if (self == NULL || path == NULL || (flags & (O_NONBLOCK | O_PATH | O_DIRECT)) != 0)
    return -EINVAL;
  if (self->core != ax__tls_core)
    return -EPERM;
  file_list_t *l = list_of(self, true);
  ax_file_t *f = ax__calloc(1, sizeof *f);
  char *p = ax__malloc(strlen(path) + 1);
  file_req_t *r = NULL;
  ax__msg_t *m = NULL;
  int rc = l == NULL || f == NULL || p == NULL ? -ENOMEM
                                                : req_new(self, f, AX_FILE_OPEN, tag, 0, &r, &m);
  if (rc < 0) {
    free(f);
    free(p);
    return rc;
  }
  strcpy(p, path);
  r->path = p;
  r->flags = flags;
  r->mode = mode;
  r->done->file = NULL; /* set when the open succeeds */
  f->magic = FILE_MAGIC;
  f->fd = -1;
  f->owner = self;
  atomic_init(&f->refs, 1); /* the owner's */
  if ((rc = req_submit(self, r, m, false, NULL)) < 0) {
    free(f);
    return rc;
  }
  f->next = l->head; /* the owner's from now on: its death closes it */
  if (l->head != NULL)
    l->head->prev = f;
  l->head = f;
  return 0;
}

/* A path request: path (and path2) copied now. */
static int path_req(ax_actor_t *self, uint32_t op, const char *path, const char *path2,
                    mode_t mode, uint64_t tag, uint64_t *id) {
  if (self == NULL || path == NULL || (op == AX_FILE_RENAME && path2 == NULL))
    return -EINVAL;
  if (self->core != ax__tls_core)
    return -EPERM;
  file_req_t *r;
  ax__msg_t *m;
  int rc = req_new(self, NULL, op, tag, op == AX_FILE_STAT_PATH ? sizeof(struct stat) : 0, &r,
                   &m);
  if (rc < 0)
    return rc;
  r->mode = mode;
  r->path = ax__malloc(strlen(path) + 1);
  r->path2 = path2 != NULL ? ax__malloc(strlen(path2) + 1) : NULL;
  if (r->path == NULL || (path2 != NULL && r->path2 == NULL)) {
    ax__msg_free(m);
    req_free(r);
    return -ENOMEM;
  }
  strcpy(r->path, path);
  if (path2 != NULL)
    strcpy(r->path2, path2);
  return req_submit(self, r, m, false, id);
}

int ax_path_unlink(ax_actor_t *self, const char *path, uint64_t tag) {
  return path_req(self, AX_FILE_UNLINK, path, NULL, 0, tag, NULL);
}

int ax_path_rename(ax_actor_t *self, const char *from, const char *to, uint64_t tag) {
  return path_req(self, AX_FILE_RENAME, from, to, 0, tag, NULL);
}

int ax_path_mkdir(ax_actor_t *self, const char *path, mode_t mode, uint64_t tag) {
  return path_req(self, AX_FILE_MKDIR, path, NULL, mode, tag, NULL);
}

int ax_path_rmdir(ax_actor_t *self, const char *path, uint64_t tag) {
  return path_req(self, AX_FILE_RMDIR, path, NULL, 0, tag, NULL);
}

int ax_path_stat(ax_actor_t *self, const char *path, uint64_t tag) {
  return path_req(self, AX_FILE_STAT_PATH, path, NULL, 0, tag, NULL);
}

/* ------------------------------------------------------------------------ */
/* In a fiber                                                                */

static bool match_tag(const ax_msg_t *m, void *arg) {
  return m->type == AX_MSG_FILE && ((const ax_file_done_t *)m->data)->tag == *(uint64_t *)arg;
}

static bool match_id(const ax_msg_t *m, void *arg) {
  return m->type == AX_MSG_FILE && ((const ax_file_done_t *)m->data)->id == *(uint64_t *)arg;
}

int ax_file_await(ax_actor_t *self, uint64_t tag, int64_t deadline, const ax_file_done_t **done) {
  if (done == NULL)
    return -EINVAL;
  const ax_msg_t *m;
  int rc = ax_recv_match(self, match_tag, &tag, deadline, &m);
  if (rc == 0)
    *done = m->data;
  return rc;
}

/* Waits for the request id of the fiber that owns f. */
static int wait_id(ax_file_t *f, uint64_t id, const ax_file_done_t **done) {
  const ax_msg_t *m;
  int rc = ax_recv_match(f->owner, match_id, &id, AX_FOREVER, &m);
  if (rc == 0)
    *done = m->data;
  return rc;
}

/* The fiber that owns f is the caller: 0, else -EINVAL or -EPERM. */
static int fiber_file(const ax_file_t *f) {
  if (f == NULL || f->magic != FILE_MAGIC)
    return -EINVAL;
  return ax__fiber_running(f->owner) ? 0 : -EPERM;
}

ssize_t ax_file_preadv(ax_file_t *file, const struct iovec *iov, int iovcnt, uint64_t off) {
  size_t total;
  int rc = fiber_file(file);
  if (rc < 0 || (rc = iov_total(iov, iovcnt, &total)) < 0)
    return rc;
  uint64_t id;
  if ((rc = file_req(file, AX_FILE_READ, off, total, NULL, false, 0, &id)) < 0)
    return ax__fiber_refused(rc);
  const ax_file_done_t *d;
  if ((rc = wait_id(file, id, &d)) < 0)
    return rc; /* stopped: the read goes on into axon's buffer, then is dropped */
  if (d->result < 0)
    return (ssize_t)d->result;
  size_t at = 0;
  for (int i = 0; i < iovcnt && at < d->len; i++) {
    size_t n = iov[i].iov_len < d->len - at ? iov[i].iov_len : d->len - at;
    if (n > 0)
      memcpy(iov[i].iov_base, (const unsigned char *)d->data + at, n);
    at += n;
  }
  return (ssize_t)d->len;
}

ssize_t ax_file_pread(ax_file_t *file, void *buf, size_t len, uint64_t off) {
  struct iovec iov = {buf, len};
  return ax_file_preadv(file, &iov, 1, off);
}

ssize_t ax_file_pwritev(ax_file_t *file, const struct iovec *iov, int iovcnt, uint64_t off) {
  int rc = fiber_file(file);
  uint64_t id;
  if (rc < 0 || (rc = writev_req(file, off, iov, iovcnt, 0, &id)) < 0)
    return ax__fiber_refused(rc);
  const ax_file_done_t *d;
  if ((rc = wait_id(file, id, &d)) < 0)
    return rc;
  return (ssize_t)d->result;
}

ssize_t ax_file_pwrite(ax_file_t *file, const void *buf, size_t len, uint64_t off) {
  struct iovec iov = {(void *)buf, len};
  return ax_file_pwritev(file, &iov, 1, off);
}

/* ------------------------------------------------------------------------ */
/* The feature                                                               */

/* The owner died (after its work: every request is cancelled, and those
 * still running let go of their file when they end): its files close. */
static void files_on_death(ax_actor_t *a, int reason) {
  (void)reason;
  file_list_t *l = list_of(a, false);
  if (l == NULL)
    return;
  ring_orphan(l);
  while (l->head != NULL) {
    ax_file_t *f = l->head;
    list_unlink(f);
    /* Its waiting transfers went with the owner's work (disposed). */
    stream_unwatch(f);
    memset(f->dir, 0, sizeof f->dir);
    f->waiting = 0;
    if (f->close_req != NULL) { /* held behind requests that are gone now */
      file_req_t *c = f->close_req;
      f->close_req = NULL;
      ax__msg_free(c->msg);
      req_dispose(c);
    }
    f->closing = true;
    f->magic = 0; /* the handle is gone */
    /* Relaxed: a flag (stream_ready); the pool thread's reference keeps f. */
    atomic_store_explicit(&f->orphaned, true, memory_order_relaxed);
    file_unref(f);
  }
  free(l);
  a->ext->slot[AX__SLOT_FILES] = NULL;
}

static ax__feature_t files = {
    .name = "files",
    .order = AX__ORDER_FILES,
    .actor_death = files_on_death,
};

AX__FEATURE_INIT(files) { ax__feature_register(&files); }
