/* eventfd sources: writes by any thread or process become AX_MSG_EVENT{count} for the owner. */
#include <assert.h>
#include <errno.h>
#include <stddef.h>
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
  int fd;        /* ev.fd, kept for ax_efd_fd and ax_efd_notify (any thread) */
  ax_event_t ev; /* the loop's eventfd watcher reads the counter */
  ax_timer_t retry; /* reads again after a count found no memory for its message */
};

/* How long an eventfd whose count found no memory for its message waits
 * before it reads again (the count waits in the fd). */
#define NOMEM_RETRY_NS (10 * AX_NSEC_PER_MSEC)
_Static_assert(offsetof(struct ax_efd, src) == 0, "a handle is its source (ax__src_close_handle)");

/* Watches the eventfd while its one message may be posted; a refusal of
 * the loop ends the source with AX_MSG_CLOSED{err}. */
static void efd_watch(ax_efd_t *e, bool on) {
  int rc = 0;
  if (on && !ax_event_active(&e->ev))
    rc = ax_event_start(&e->ev);
  else if (!on)
    (void)ax_event_stop(&e->ev);
  if (rc < 0)
    ax__src_end(&e->src, rc);
}

/* The loop read (and so reset) the counter: post it. */
static void event_cb(ax_event_t *ev, uint64_t count) {
  ax_efd_t *e = ev->data;
  if (!ax__src_may_post(&e->src)) {
    efd_watch(e, false);
    return;
  }
  ax_event_msg_t body = {.efd = e, .count = count};
  ax__msg_t *m =
      ax__msg_new(e->src.owner->ref, AX__SYS_IO, AX_MSG_EVENT, &body, sizeof body, AX_REF_NONE);
  if (m == NULL) {
    /* Out of memory: the count goes back into the fd, which is read again
     * a little later, not at once (it would be readable straight away, for
     * as long as memory stays short). */
    ssize_t w = write(e->fd, &count, sizeof count);
    (void)w; /* EAGAIN only if writers nearly filled the counter meanwhile */
    efd_watch(e, false);
    (void)ax_timer_start(&e->retry, NOMEM_RETRY_NS, 0);
    return;
  }
  ax__src_post(&e->src, m, AX__MSG_CREDIT);
  efd_watch(e, false); /* the window (one) is full until the owner handles it */
}

static void retry_cb(ax_timer_t *t) {
  ax_efd_t *e = AX_CONTAINER_OF(t, ax_efd_t, retry);
  if (ax__src_may_post(&e->src))
    efd_watch(e, true);
}

static void op_close(ax__src_t *s) {
  ax_efd_t *e = (ax_efd_t *)s;
  ax_timer_stop(&e->retry);
  ax_event_close(&e->ev);
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
 * -ENOMEM, or the loop's error. */
int ax_efd_open(ax_actor_t *self, ax_efd_t **out) {
  if (self == NULL || out == NULL)
    return -EINVAL;
  AX__ASSERT_OWNER(self);
  ax_efd_t *e = ax__src_new(sizeof *e, &efd_ops, self, 1);
  if (e == NULL)
    return -ENOMEM;
  ax_timer_init(e->src.core->loop, &e->retry, retry_cb);
  int rc = ax_event_init(e->src.core->loop, &e->ev, event_cb);
  if (rc == 0) {
    e->ev.data = e;
    e->fd = e->ev.fd;
    rc = ax_event_start(&e->ev); /* its error is this call's, not a message */
  } else {
    e->ev.fd = -1; /* nothing for op_close to close */
  }
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
int ax_efd_close(ax_efd_t *e) { return ax__src_close_handle((ax__src_t *)e); }
