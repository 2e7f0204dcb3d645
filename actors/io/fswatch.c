/* File-system event sources: inotify (one instance per owner actor) and fanotify (one group per watch). */
#include <assert.h>
#include <errno.h>
#include <stddef.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fanotify.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "actors/io/src.h"
#include "axon/source.h"

/* Unhandled AX_MSG_FS_EVENT per watch before reading pauses. */
#define AX__FS_WINDOW 64u
/* inotify bytes read per readiness event: room for at least one event
 * with the longest name. */
#define AX__IN_BUF (4096 + sizeof(struct inotify_event) + NAME_MAX + 1)
/* fanotify events read per readiness event. */
#define AX__FAN_BATCH 32u
/* Flag bits ax_fs_watch accepts besides the IN_* events. */
#define AX__IN_FLAGS (IN_ONLYDIR | IN_DONT_FOLLOW | IN_EXCL_UNLINK | IN_ONESHOT)
/* Delivered to every watch of a wd (or of the instance) whatever its mask. */
#define AX__IN_ALWAYS (IN_IGNORED | IN_Q_OVERFLOW | IN_UNMOUNT)

/*
 * inotify: an owner actor's watches share one inotify instance (the
 * kernel limits instances per user to 128 by default, watches to far
 * more), or two: those with IN_EXCL_UNLINK have one of their own.  The instance reads into its buffer and hands each event to the
 * watches it concerns: those of its wd whose mask has one of its bits, or
 * every watch of the wd for IN_IGNORED/IN_UNMOUNT, and every watch of the
 * instance for IN_Q_OVERFLOW.  Two watches of one actor on the same inode
 * share the kernel's wd (added with IN_MASK_ADD) and each sees only its
 * own bits.  The kernel keeps one set of flags per wd, so a flag that
 * changes what the kernel does with the wd would reach the other watches
 * of the inode: IN_ONESHOT is never passed on (a one-shot watch is ended
 * here, after the first event handed to it), and IN_EXCL_UNLINK watches
 * share the second instance, where every wd has that flag.  Each watch is a source with its own window; while one of the
 * watches an event is for has no credit, the instance stops reading and
 * keeps the rest of its buffer, so the kernel queue (max_queued_events)
 * takes the back-pressure and reports IN_Q_OVERFLOW when it overflows.
 *
 * fanotify: each watch is its own notification group (the kernel does not
 * say which mark an event matched).  The event's fd is turned into a path
 * through /proc/self/fd and closed at once.
 */
typedef struct ax__inotify ax__inotify_t;

enum { AX__FS_INOTIFY = 1, AX__FS_FANOTIFY };

struct ax_fswatch {
  ax__src_t src; /* first */
  int kind;
  uint32_t mask;   /* inotify: the events this watch asked for */
  int wd;          /* inotify: the kernel's watch, -1 once dropped (kernel, one-shot) */
  ax__inotify_t *in;
  ax__link_t ilink; /* the instance's list of watches */
  int fd;          /* fanotify: the group */
  ax_io_t io;      /* fanotify */
  unsigned ev;     /* fanotify: the events io requests now */
};
_Static_assert(offsetof(struct ax_fswatch, src) == 0, "a handle is its source (ax__src_close_handle)");

struct ax__inotify {
  int fd;
  bool excl;           /* its watches are IN_EXCL_UNLINK ones */
  ax_io_t io;
  ax__link_t *watches; /* its watches (ilink) */
  unsigned ev;     /* the events io requests now */
  size_t pos, len; /* events in buf not handed out yet */
  unsigned char buf[AX__IN_BUF] __attribute__((aligned(8)));
};

/* The instance's watches, in turn. */
#define EACH_WATCH(w, in)                                                                 \
  for (ax_fswatch_t *w = AX__LIST_ENTRY((in)->watches, ax_fswatch_t, ilink); w != NULL;  \
       w = AX__LIST_ENTRY(w->ilink.next, ax_fswatch_t, ilink))

/* The offset of the name in a message: the header, rounded up to 16. */
#define AX__FS_HEAD ((sizeof(ax_fs_event_t) + 15) & ~(size_t)15)

/* Posts one event to w with name copied inline.  Out of memory drops it. */
static void post_event(ax_fswatch_t *w, uint32_t mask, uint32_t cookie, int32_t pid,
                       const char *name, size_t nlen) {
  if (w->src.closed || w->src.owner == NULL)
    return;
  ax__msg_t *m = ax__src_msg(&w->src, AX_MSG_FS_EVENT, AX__FS_HEAD + nlen + 1);
  if (m == NULL)
    return;
  ax_fs_event_t *ev = (ax_fs_event_t *)(void *)m->payload;
  ev->watch = w;
  ev->mask = mask;
  ev->cookie = cookie;
  ev->pid = pid;
  char *dst = (char *)m->payload + AX__FS_HEAD;
  memcpy(dst, name, nlen);
  dst[nlen] = '\0';
  ev->name = dst;
  ax__src_post(&w->src, m, AX__MSG_CREDIT);
}

/* ------------------------------------------------------------------------ */
/* inotify                                                                   */

/* True when w is to receive an event with this wd and mask. */
static bool concerns(const ax_fswatch_t *w, int wd, uint32_t mask) {
  if (mask & IN_Q_OVERFLOW)
    return true;
  if (w->wd < 0 || w->wd != wd)
    return false;
  return (mask & AX__IN_ALWAYS) != 0 || (mask & w->mask & IN_ALL_EVENTS) != 0;
}

/* Reads the instance while on; a refusal of the loop ends every watch of
 * it with AX_MSG_CLOSED{err}. */
static void in_watch(ax__inotify_t *in, bool on) {
  int rc = ax__io_want(&in->io, &in->ev, on ? AX_READ : 0);
  if (rc < 0)
    EACH_WATCH(w, in)
      ax__src_end(&w->src, rc);
}

/* One-shot watch w had its event: it gets IN_IGNORED, as from the kernel,
 * and nothing more; the kernel's wd goes unless another watch shares it. */
static void oneshot_spent(ax__inotify_t *in, ax_fswatch_t *w) {
  int wd = w->wd;
  w->wd = -1;
  post_event(w, IN_IGNORED, 0, 0, "", 0);
  bool shared = false;
  EACH_WATCH(o, in)
    shared |= o->wd == wd;
  if (!shared)
    (void)inotify_rm_watch(in->fd, wd); /* its IN_IGNORED concerns nobody now */
}

/* Hands out buffered events while every watch they concern has credit.
 * Returns false when it stopped for lack of credit. */
static bool in_hand_out(ax__inotify_t *in) {
  while (in->pos < in->len) {
    const struct inotify_event *e = (const struct inotify_event *)(void *)(in->buf + in->pos);
    EACH_WATCH(w, in)
      if (concerns(w, e->wd, e->mask) && !ax__src_has_credit(&w->src))
        return false;
    const char *name = e->len > 0 ? e->name : "";
    size_t nlen = strnlen(name, e->len);
    EACH_WATCH(w, in) {
      if (!concerns(w, e->wd, e->mask))
        continue;
      uint32_t mask = e->mask & (w->mask | AX__IN_ALWAYS | IN_ISDIR);
      post_event(w, mask, e->cookie, 0, name, nlen);
      if ((w->mask & IN_ONESHOT) && (mask & IN_ALL_EVENTS) != 0)
        oneshot_spent(in, w);
    }
    if (e->mask & IN_IGNORED) /* the kernel dropped the wd (file gone, unmounted) */
      EACH_WATCH(w, in)
        if (w->wd == e->wd)
          w->wd = -1;
    in->pos += sizeof *e + e->len;
  }
  in->pos = in->len = 0;
  return true;
}

/* Delivers what the buffer holds, reads once more if it emptied, and
 * watches the fd only while reading can go on. */
static void in_pump(ax__inotify_t *in, bool read_now) {
  if (!in_hand_out(in)) {
    in_watch(in, false);
    return;
  }
  if (read_now) {
    ssize_t n;
    do
      n = read(in->fd, in->buf, sizeof in->buf);
    while (n < 0 && errno == EINTR);
    if (n > 0) {
      in->len = (size_t)n;
      if (!in_hand_out(in)) {
        in_watch(in, false);
        return;
      }
    }
  }
  in_watch(in, true);
}

static void in_io_cb(ax_io_t *io, unsigned revents) {
  (void)revents;
  in_pump(io->data, true);
}

static void in_destroy(ax__inotify_t *in) {
  in_watch(in, false);
  close(in->fd);
  free(in);
}

static void in_close(ax__src_t *s) {
  ax_fswatch_t *w = (ax_fswatch_t *)s;
  ax__inotify_t *in = w->in;
  if (in == NULL)
    return;
  ax__list_remove(&in->watches, &w->ilink);
  w->in = NULL;
  if (in->watches == NULL) {
    in_destroy(in);
    return;
  }
  bool shared = false;
  EACH_WATCH(o, in)
    shared |= w->wd >= 0 && o->wd == w->wd;
  if (w->wd >= 0 && !shared)
    (void)inotify_rm_watch(in->fd, w->wd); /* its IN_IGNORED concerns nobody now */
  if (in->ev == 0)
    in_pump(in, false); /* it may have been the watch that held reading up */
}

static void fs_free(ax__src_t *s) { free(s); }

static void in_credit(ax__src_t *s) {
  ax_fswatch_t *w = (ax_fswatch_t *)s;
  if (w->in != NULL && w->in->ev == 0)
    in_pump(w->in, false);
}

static const ax__src_ops_t inotify_ops = {
    .close = in_close,
    .free = fs_free,
    .credit = in_credit,
};

/* The inotify instance self's watches share (excl: its IN_EXCL_UNLINK
 * ones), or NULL. */
static ax__inotify_t *find_instance(ax_actor_t *self, bool excl) {
  for (ax__src_t *s = ax__src_first(self); s != NULL; s = ax__src_next(s))
    if (s->ops == &inotify_ops && ((ax_fswatch_t *)s)->in != NULL &&
        ((ax_fswatch_t *)s)->in->excl == excl)
      return ((ax_fswatch_t *)s)->in;
  return NULL;
}

static int in_new(ax__core_t *c, bool excl, ax__inotify_t **out) {
  ax__inotify_t *in = ax__calloc(1, sizeof *in);
  if (in == NULL)
    return -ENOMEM;
  in->excl = excl;
  in->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (in->fd < 0) {
    int rc = -errno;
    free(in);
    return rc;
  }
  ax_io_init(c->loop, &in->io, in->fd, in_io_cb);
  in->io.data = in;
  *out = in;
  return 0;
}

/* Watches path with inotify for self (see source.h).  Owner's core.
 * Returns 0 and stores the watch in *out, or -EINVAL (NULL, no IN_* event
 * in mask, unknown bits, IN_MASK_ADD or IN_MASK_CREATE), -ENOENT, -EACCES,
 * -ENOTDIR (IN_ONLYDIR), -ENOSPC (max_user_watches), -EMFILE (the first
 * watch of an actor needs an instance: max_user_instances), -ENOMEM. */
int ax_fs_watch(ax_actor_t *self, const char *path, uint32_t mask, ax_fswatch_t **out) {
  if (self == NULL || path == NULL || out == NULL || (mask & IN_ALL_EVENTS) == 0 ||
      (mask & ~(uint32_t)(IN_ALL_EVENTS | AX__IN_FLAGS)) != 0)
    return -EINVAL;
  AX__ASSERT_OWNER(self);
  ax_fswatch_t *w = ax__src_new(sizeof *w, &inotify_ops, self, AX__FS_WINDOW);
  if (w == NULL)
    return -ENOMEM;
  w->kind = AX__FS_INOTIFY;
  w->mask = mask;
  w->wd = -1;
  w->fd = -1;
  bool excl = (mask & IN_EXCL_UNLINK) != 0;
  ax__inotify_t *in = find_instance(self, excl);
  bool fresh = in == NULL;
  int rc = fresh ? in_new(w->src.core, excl, &in) : 0;
  if (rc == 0) {
    /* Never IN_ONESHOT: the kernel would end the other watches of the
     * inode with it (in_hand_out ends this one). */
    w->wd = inotify_add_watch(in->fd, path, (mask & ~(uint32_t)IN_ONESHOT) | IN_MASK_ADD);
    if (w->wd < 0)
      rc = -errno;
    else if (fresh) /* a refusal is this call's error, not a message */
      rc = ax__io_want(&in->io, &in->ev, AX_READ);
    if (rc < 0 && fresh)
      in_destroy(in);
  }
  if (rc < 0) {
    ax__src_close(&w->src);
    return rc;
  }
  w->in = in;
  ax__list_push(&in->watches, &w->ilink);
  ax__src_count(&w->src, true);
  *out = w;
  return 0;
}

/* ------------------------------------------------------------------------ */
/* fanotify                                                                  */

static void fan_watch(ax_fswatch_t *w, bool on) {
  (void)ax__src_watch(&w->src, &w->io, &w->ev, on ? AX_READ : 0);
}

static void fan_io_cb(ax_io_t *io, unsigned revents) {
  (void)revents;
  ax_fswatch_t *w = io->data;
  if (!ax__src_may_post(&w->src)) {
    fan_watch(w, false);
    return;
  }
  /* Without info records every event is one metadata struct, so reading
   * at most `credit` of them keeps the window. */
  unsigned want = w->src.window - w->src.inflight;
  if (want > AX__FAN_BATCH)
    want = AX__FAN_BATCH;
  struct fanotify_event_metadata md[AX__FAN_BATCH];
  ssize_t n;
  do
    n = read(w->fd, md, want * sizeof md[0]);
  while (n < 0 && errno == EINTR);
  if (n <= 0)
    return;
  const struct fanotify_event_metadata *e = md;
  size_t left = (size_t)n;
  for (; FAN_EVENT_OK(e, left); e = FAN_EVENT_NEXT(e, left)) {
    char path[PATH_MAX] = "";
    ssize_t plen = 0;
    if (e->vers != FANOTIFY_METADATA_VERSION) { /* a kernel newer than these headers */
      if (e->fd >= 0)
        close(e->fd);
      continue;
    }
    if (e->fd >= 0) {
      char link[64];
      snprintf(link, sizeof link, "/proc/self/fd/%d", e->fd);
      plen = readlink(link, path, sizeof path - 1);
      if (plen < 0)
        plen = 0;
      /* A file deleted since: the kernel's link reads "<path> (deleted)".
       * The path it had is what the actor needs (a file really named so
       * still has a link, and keeps its name). */
      static const char deleted[] = " (deleted)";
      size_t dl = sizeof deleted - 1;
      struct stat st;
      if ((size_t)plen > dl && memcmp(path + plen - (ssize_t)dl, deleted, dl) == 0 &&
          fstat(e->fd, &st) == 0 && st.st_nlink == 0)
        plen -= (ssize_t)dl;
      close(e->fd);
    }
    post_event(w, (uint32_t)e->mask, 0, e->pid, path, (size_t)plen);
  }
  if (!ax__src_has_credit(&w->src))
    fan_watch(w, false);
}

static void fan_close(ax__src_t *s) {
  ax_fswatch_t *w = (ax_fswatch_t *)s;
  ax_io_stop(&w->io);
  w->ev = 0;
  if (w->fd >= 0)
    close(w->fd);
  w->fd = -1;
}

static void fan_credit(ax__src_t *s) { fan_watch((ax_fswatch_t *)s, true); }

static const ax__src_ops_t fanotify_ops = {
    .close = fan_close,
    .free = fs_free,
    .credit = fan_credit,
};

/* Watches path with fanotify for self (see source.h): a notification
 * group of its own, marked with FAN_MARK_ADD | flags.  Owner's core.
 * Returns 0, or -EINVAL (NULL, mask 0, FAN_MARK_REMOVE/FLUSH in flags, a
 * permission event in mask), -EPERM (no CAP_SYS_ADMIN), -ENOENT, -EMFILE
 * (max_user_groups), -ENOMEM, or fanotify_mark's errno. */
int ax_fan_watch(ax_actor_t *self, const char *path, uint64_t mask, unsigned flags,
                 ax_fswatch_t **out) {
  if (self == NULL || path == NULL || out == NULL || mask == 0 ||
      (flags & (FAN_MARK_ADD | FAN_MARK_REMOVE | FAN_MARK_FLUSH)) != 0 ||
      (mask & (FAN_OPEN_PERM | FAN_ACCESS_PERM | FAN_OPEN_EXEC_PERM)) != 0)
    return -EINVAL;
  AX__ASSERT_OWNER(self);
  ax_fswatch_t *w = ax__src_new(sizeof *w, &fanotify_ops, self, AX__FS_WINDOW);
  if (w == NULL)
    return -ENOMEM;
  w->fd = -1;
  w->kind = AX__FS_FANOTIFY;
  w->wd = -1;
  int rc = 0;
  w->fd = fanotify_init(FAN_CLASS_NOTIF | FAN_CLOEXEC | FAN_NONBLOCK,
                        O_RDONLY | O_LARGEFILE | O_CLOEXEC);
  if (w->fd < 0)
    rc = -errno;
  else if (fanotify_mark(w->fd, FAN_MARK_ADD | flags, mask, AT_FDCWD, path) < 0)
    rc = -errno;
  if (rc == 0) {
    ax_io_init(w->src.core->loop, &w->io, w->fd, fan_io_cb);
    w->io.data = w;
    rc = ax__io_want(&w->io, &w->ev, AX_READ); /* its error is this call's */
  }
  if (rc < 0) {
    ax__src_close(&w->src);
    return rc;
  }
  ax__src_count(&w->src, true);
  *out = w;
  return 0;
}

/* Ends a watch of either kind: no AX_MSG_FS_EVENT of it is delivered after
 * this returns, not even one already queued.  Owner's core.  Returns 0,
 * or -EINVAL for NULL. */
int ax_fswatch_close(ax_fswatch_t *w) { return ax__src_close_handle((ax__src_t *)w); }
