/* Event watchers: an eventfd whose count any thread or process can add to. */
#include <errno.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "io/internal.h"

/* Reads (and so resets) the eventfd's counter and reports it. */
static void event_io_cb(ax_io_t *io, unsigned revents) {
  (void)revents;
  ax_event_t *ev = AX_CONTAINER_OF(io, ax_event_t, io_);
  uint64_t count;
  if (read(io->fd, &count, sizeof count) == (ssize_t)sizeof count && count > 0)
    ev->cb_(ev, count);
}

int ax_event_init(ax_loop_t *loop, ax_event_t *ev, ax_event_cb cb) {
  if (loop == NULL || ev == NULL || cb == NULL)
    return -EINVAL;
  int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (fd < 0)
    return -errno;
  ev->loop = loop;
  ev->fd = fd;
  ev->cb_ = cb;
  ax_io_init(loop, &ev->io_, fd, event_io_cb);
  return 0;
}

int ax_event_start(ax_event_t *ev) {
  if (ev == NULL || ev->loop == NULL || ev->fd < 0)
    return -EINVAL;
  return ax_io_start(&ev->io_, AX_READ);
}

int ax_event_stop(ax_event_t *ev) {
  if (ev == NULL)
    return -EINVAL;
  return ax_io_stop(&ev->io_);
}

int ax_event_notify(ax_event_t *ev) {
  if (ev == NULL || ev->fd < 0)
    return -EINVAL;
  /* The eventfd's counter is the only shared state: the kernel adds to it
   * atomically and wakes the loop's poll, so no further ordering is needed.
   * Writes made before this call are visible to the callback because the
   * write/read pair through the kernel orders them. */
  uint64_t one = 1;
  if (write(ev->fd, &one, sizeof one) < 0)
    return -errno;
  return 0;
}

int ax_event_close(ax_event_t *ev) {
  if (ev == NULL)
    return -EINVAL;
  if (ev->fd < 0)
    return 0;
  ax_io_stop(&ev->io_);
  close(ev->fd);
  ev->fd = -1;
  ev->io_.fd = -1;
  return 0;
}

bool ax_event_active(const ax_event_t *ev) { return ev != NULL && ax_io_active(&ev->io_); }
