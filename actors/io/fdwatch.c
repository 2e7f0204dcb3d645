/* Raw fd watches: one-shot AX_MSG_FD_READY messages for fds that someone else owns. */
#include <assert.h>
#include <errno.h>
#include <stddef.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <unistd.h>

#include "actors/io/src.h"
#include "axon/source.h"

#define AX__FD_EVENTS (AX_READ | AX_WRITE | AX_PRI)

/*
 * A watch is a source whose fd belongs to the caller (an external library,
 * a GPIO value file): axon never reads, writes or closes it.  It is
 * one-shot: the loop watcher is started with AX_ONESHOT, so the kernel
 * disarms it as it reports the fd, and at most one AX_MSG_FD_READY is ever
 * in flight; nothing more comes until ax_fdwatch_rearm.
 *
 * Re-arming a watch that fired is one epoll_ctl (ax_io_modify).  When that
 * fails because the fd number now names another file (the library closed
 * its socket and opened a new one under the same number: libmosquitto
 * reconnecting), or when the watch is re-armed while still armed (the
 * library's wishes changed; the fd may have been swapped meanwhile), the
 * fd is registered afresh instead (stop + start), so no stale registration
 * is left behind.
 *
 * Because a disarmed watch is not in the loop, the loop alone cannot say
 * that an fd is watched already; each core keeps a list of its watches
 * (its AX__CORE_SLOT_FDWATCH slot holds the head) so that a second watch of
 * the same fd on the same core
 * is -EEXIST whether or not the first is armed.  Watches start and end on
 * their owner's core only, so the list needs no lock.
 */
struct ax_fdwatch {
  ax__src_t src; /* first */
  int fd;
  unsigned events; /* the events armed now; 0 while disarmed */
  ax_io_t io;
  ax__core_t *core;                    /* whose list it is on */
  ax__link_t link;                      /* the core's list of watches */
  ax_timer_t retry;                     /* re-arms after an event found no memory */
};

/* How long a watch whose event found no memory for its message waits
 * before the fd is armed again (the event comes back then). */
#define NOMEM_RETRY_NS (10 * AX_NSEC_PER_MSEC)
_Static_assert(offsetof(struct ax_fdwatch, src) == 0, "a handle is its source (ax__src_close_handle)");

/* The head of core c's list of watches. */
static ax__link_t **watches(ax__core_t *c) { return (ax__link_t **)&c->slot[AX__CORE_SLOT_FDWATCH]; }

/* Adds w to its core's list unless the core watches its fd already. */
static bool list_add(ax_fdwatch_t *w) {
  for (ax__link_t *l = *watches(w->core); l != NULL; l = l->next)
    if (AX_CONTAINER_OF(l, ax_fdwatch_t, link)->fd == w->fd)
      return false;
  ax__list_push(watches(w->core), &w->link);
  return true;
}

static void list_remove(ax_fdwatch_t *w) {
  if (w->core != NULL) /* else never added */
    ax__list_remove(watches(w->core), &w->link);
}

/* The loop reported the fd and disarmed it (AX_ONESHOT): tell the owner.
 * A closed watch is never called (its watcher is stopped). */
static void retry_cb(ax_timer_t *t) {
  ax_fdwatch_t *w = AX_CONTAINER_OF(t, ax_fdwatch_t, retry);
  (void)ax_io_modify(&w->io, w->io.events); /* armed again: a level event comes back */
}

static void io_cb(ax_io_t *io, unsigned revents) {
  ax_fdwatch_t *w = io->data;
  ax__msg_t *m = ax__src_msg(&w->src, AX_MSG_FD_READY, sizeof(ax_fd_ready_t));
  if (m == NULL) {
    /* Out of memory: armed again a little later, not at once (the event
     * would come straight back, for as long as memory stays short). */
    (void)ax_timer_start(&w->retry, NOMEM_RETRY_NS, 0);
    return;
  }
  w->events = 0;
  ax_fd_ready_t *r = (ax_fd_ready_t *)(void *)m->payload;
  r->watch = w;
  r->fd = w->fd;
  r->revents = revents;
  ax__src_post(&w->src, m, 0);
}

static void op_close(ax__src_t *s) {
  ax_fdwatch_t *w = (ax_fdwatch_t *)s;
  ax_timer_stop(&w->retry);
  ax_io_stop(&w->io); /* the fd stays open: it is not axon's */
  w->events = 0;
  list_remove(w);
}

static void op_free(ax__src_t *s) { free(s); }

static const ax__src_ops_t fdwatch_ops = {
    .close = op_close,
    .free = op_free,
};

/* -EPERM for an fd that cannot be polled: a regular file or a directory
 * of a file system with no poll support (ext4, tmpfs, ...), which poll(2)
 * would report ready forever.  Regular files that do support polling stay
 * allowed: sysfs attributes (GPIO "value"), /proc/pressure triggers,
 * /proc/self/mounts.  epoll_ctl refuses exactly the others, so a throw-away
 * epoll instance asks the kernel; the poll backend needs the answer too.
 * Other fds: 0. */
static int pollable(int fd) {
  struct stat st;
  if (fstat(fd, &st) < 0)
    return -EINVAL;
  if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode))
    return 0;
  int ep = epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0)
    return -errno;
  struct epoll_event ev = {.events = EPOLLPRI};
  int rc = epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0 && errno == EPERM ? -EPERM : 0;
  close(ep);
  return rc;
}

/* Starts a watch of fd for events on the owner's core.  Owner's core only.
 * Returns 0 and stores the watch in *out, or -EINVAL (NULL self or out,
 * fd < 0 or not open, no events or unknown bits), -EPERM (an fd that
 * cannot be polled, such as a regular file on disk or a directory: always
 * ready, so refused on every backend; sysfs and /proc files that support
 * polling are fine),
 * -EEXIST (this core watches fd already: another watch, armed or not, or
 * another source), -ENOMEM. */
int ax_fd_watch(ax_actor_t *self, int fd, unsigned events, ax_fdwatch_t **out) {
  if (self == NULL || out == NULL || fd < 0 || (events & AX__FD_EVENTS) == 0 ||
      (events & ~(unsigned)AX__FD_EVENTS) != 0)
    return -EINVAL;
  AX__ASSERT_OWNER(self);
  if (fcntl(fd, F_GETFD) < 0)
    return -EINVAL; /* not an open fd */
  int rc = pollable(fd);
  if (rc < 0)
    return rc;
  ax_fdwatch_t *w = ax__src_new(sizeof *w, &fdwatch_ops, self, 0);
  if (w == NULL)
    return -ENOMEM;
  w->fd = fd;
  w->core = w->src.core;
  if (!list_add(w)) {
    w->core = NULL; /* not on the list: op_close must not unlink it */
    ax__src_close(&w->src);
    return -EEXIST;
  }
  ax_io_init(w->src.core->loop, &w->io, fd, io_cb);
  ax_timer_init(w->src.core->loop, &w->retry, retry_cb);
  w->io.data = w;
  rc = ax_io_start(&w->io, events | AX_ONESHOT);
  if (rc < 0) {
    ax__src_close(&w->src); /* unlinks it from the list and frees it */
    return rc;
  }
  w->events = events;
  ax__src_count(&w->src, true);
  *out = w;
  return 0;
}

/* Arms the watch again for events (AX_READ | AX_WRITE | AX_PRI), or
 * disarms it with 0.  A watch that fired is re-armed with one epoll_ctl; a
 * watch re-armed while still armed, or whose fd number the library closed
 * and reused, is registered afresh, so it follows the new file.  Owner's
 * core only.  Returns 0, or -EINVAL (NULL, unknown bits, a closed watch),
 * -EBADF (the fd is closed now; the watch stays disarmed), -EEXIST
 * (another source of this core took the fd meanwhile), -ENOMEM. */
int ax_fdwatch_rearm(ax_fdwatch_t *w, unsigned events) {
  if (w == NULL)
    return -EINVAL;
  AX__SRC_ASSERT(&w->src);
  if ((events & ~(unsigned)AX__FD_EVENTS) != 0 || w->src.closed)
    return -EINVAL;
  int rc = -ENOENT;
  if (events != 0 && w->events == 0 && ax_io_active(&w->io))
    rc = ax_io_modify(&w->io, events | AX_ONESHOT); /* fired: re-arm in place */
  if (rc < 0) { /* disarm, or register afresh */
    ax_io_stop(&w->io);
    w->events = 0;
    if (events == 0)
      return 0;
    rc = ax_io_start(&w->io, events | AX_ONESHOT);
    if (rc < 0)
      return rc;
  }
  w->events = events;
  return 0;
}

/* Ends the watch: the fd leaves the loop (it stays open), and no
 * AX_MSG_FD_READY of this watch is delivered after the call, not even one
 * already queued.  The handle is invalid afterwards.  Owner's core only.
 * Returns 0, or -EINVAL for NULL. */
int ax_fdwatch_close(ax_fdwatch_t *w) { return ax__src_close_handle((ax__src_t *)w); }
