/* eventfd sources: writes by any thread or process become AX_MSG_EVENT{count} for the owner. */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "actors/io/src.h"
#include "axon/source.h"

/*
 * An eventfd owned by an actor.  Its window is one message: once an
 * AX_MSG_EVENT is posted, the fd leaves the loop until the owner has
 * handled it (ops->credit), and whatever is written meanwhile adds up in
 * the kernel's counter and arrives as the next message's count.  So a
 * writer that is faster than the owner makes fewer, bigger counts instead
 * of a growing mailbox.
 *
 * Threads: the owner's core reads, watches and closes; any thread may
 * write to fd (ax_efd_notify), which is set before the handle is returned
 * and never changes while the source is open.
 */
struct ax_efd {
  ax__src_t src; /* first */
  int fd;
  ax_io_t io;
};

static void efd_watch(ax_efd_t *e, bool on) {
  if (on && !ax_io_active(&e->io))
    ax_io_start(&e->io, AX_READ); /* cannot fail: the fd was accepted at creation */
  else if (!on)
    ax_io_stop(&e->io);
}

static void io_cb(ax_io_t *io, unsigned revents) {
  (void)revents;
  ax_efd_t *e = io->data;
  if (e->src.closed || e->src.owner == NULL || !ax__src_has_credit(&e->src)) {
    efd_watch(e, false);
    return;
  }
  ax__msg_t *m = ax__src_msg(&e->src, AX_MSG_EVENT, sizeof(ax_event_msg_t));
  if (m == NULL)
    return; /* out of memory: the count stays in the fd, the event comes back */
  uint64_t count = 0;
  ssize_t n;
  do
    n = read(e->fd, &count, sizeof count);
  while (n < 0 && errno == EINTR);
  if (n != (ssize_t)sizeof count) { /* EAGAIN: another reader took it (not ours) */
    ax__msg_free(m);
    return;
  }
  ax_event_msg_t *ev = (ax_event_msg_t *)(void *)m->payload;
  ev->efd = e;
  ev->count = count;
  ax__src_post(&e->src, m, AX__MSG_CREDIT);
  efd_watch(e, false); /* the window (one) is full until the owner handles it */
}

static void op_close(ax__src_t *s) {
  ax_efd_t *e = (ax_efd_t *)s;
  ax_io_stop(&e->io);
  if (e->fd >= 0)
    close(e->fd);
}

static void op_free(ax__src_t *s) { free(s); }

/* The owner handled the message: read the counter again. */
static void op_credit(ax__src_t *s) { efd_watch((ax_efd_t *)s, true); }

static const ax__src_ops_t efd_ops = {
    .close = op_close,
    .free = op_free,
    .credit = op_credit,
};

/* Creates an eventfd (non-blocking, close-on-exec, counter 0) owned by
 * self and starts watching it.  Owner's core.  Returns 0 and stores the
 * handle in *out, or -EINVAL (NULL self or out), -EMFILE/-ENFILE (no fd),
 * -ENOMEM. */
int ax_efd_open(ax_actor_t *self, ax_efd_t **out) {
  if (self == NULL || out == NULL)
    return -EINVAL;
  AX__ASSERT_OWNER(self);
  ax_efd_t *e = ax__calloc(1, sizeof *e);
  if (e == NULL)
    return -ENOMEM;
  e->fd = -1;
  if (ax__src_init(&e->src, &efd_ops, self, 1) < 0) {
    free(e);
    return -ENOMEM;
  }
  e->fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (e->fd < 0) {
    int rc = -errno;
    ax__src_close(&e->src);
    return rc;
  }
  ax_io_init(e->src.core->loop, &e->io, e->fd, io_cb);
  e->io.data = e;
  int rc = ax_io_start(&e->io, AX_READ);
  if (rc < 0) {
    ax__src_close(&e->src);
    return rc;
  }
  ax__src_count(&e->src, true);
  *out = e;
  return 0;
}

/* The eventfd, for writers elsewhere (write 8-byte counts; never read or
 * close it).  Any thread while the source is open.  -EINVAL for NULL. */
int ax_efd_fd(const ax_efd_t *e) {
  if (e == NULL)
    return -EINVAL;
  AX__SRC_ASSERT_OPEN(&e->src);
  return e->fd;
}

/* Adds n to the counter with one write(2), waking the owner's core.  Any
 * thread, and async-signal-safe, while the source is open.  Returns 0, or
 * -EINVAL (NULL, n == 0 or n == UINT64_MAX, which eventfd refuses),
 * -EAGAIN (the counter would pass 2^64 - 2: the owner is not reading). */
int ax_efd_notify(ax_efd_t *e, uint64_t n) {
  if (e == NULL || n == 0 || n == UINT64_MAX)
    return -EINVAL;
  AX__SRC_ASSERT_OPEN(&e->src);
  ssize_t w;
  do
    w = write(e->fd, &n, sizeof n);
  while (w < 0 && errno == EINTR);
  return w == (ssize_t)sizeof n ? 0 : -errno;
}

/* Closes the eventfd: no AX_MSG_EVENT of it is delivered after this
 * returns, not even one already queued; writes still in flight are lost.
 * No other thread may notify it any more.  Owner's core.  Returns 0, or
 * -EINVAL for NULL. */
int ax_efd_close(ax_efd_t *e) {
  if (e == NULL)
    return -EINVAL;
  AX__SRC_ASSERT(&e->src);
  ax__src_close(&e->src);
  return 0;
}
