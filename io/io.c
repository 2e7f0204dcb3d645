/* fd watchers: start, modify, stop, and the dispatch of one batch of events. */
#include <errno.h>

#include "io/internal.h"

#define AX__REQUEST_BITS (AX_READ | AX_WRITE | AX_PRI)

/* A valid request names at least one event and nothing unknown. */
static bool events_valid(unsigned events) {
  return (events & AX__REQUEST_BITS) != 0 &&
         (events & ~(AX__REQUEST_BITS | AX_EDGE | AX_ONESHOT)) == 0;
}

int ax_io_init(ax_loop_t *loop, ax_io_t *io, int fd, ax_io_cb cb) {
  if (loop == NULL || io == NULL || cb == NULL || fd < 0)
    return -EINVAL;
  /* io->data is the caller's and is left as it is. */
  io->loop = loop;
  io->fd = fd;
  io->events = 0;
  io->cb_ = cb;
  io->next_ = io->prev_ = NULL;
  io->flags_ = 0;
  io->slot_ = -1;
  return 0;
}

/* Registers io with the backend and marks it active.  Internal watchers
 * (the loop's wake and signal fds) are neither listed nor counted. */
int ax__io_start_internal(ax_io_t *io, unsigned events) {
  ax_loop_t *loop = io->loop;
  int rc = loop->backend->add(loop, io, events);
  if (rc < 0)
    return rc;
  io->events = events;
  io->flags_ |= AX__ACTIVE;
  if (!(io->flags_ & AX__INTERNAL)) {
    io->prev_ = NULL;
    io->next_ = loop->io_list;
    if (loop->io_list != NULL)
      loop->io_list->prev_ = io;
    loop->io_list = io;
    loop->nactive++;
  }
  return 0;
}

int ax_io_start(ax_io_t *io, unsigned events) {
  if (io == NULL || io->loop == NULL || !events_valid(events) || (io->flags_ & AX__ACTIVE))
    return -EINVAL;
  AX__ASSERT_LOOP_THREAD(io->loop);
  return ax__io_start_internal(io, events);
}

int ax_io_modify(ax_io_t *io, unsigned events) {
  if (io == NULL || io->loop == NULL || !events_valid(events) || !(io->flags_ & AX__ACTIVE))
    return -EINVAL;
  AX__ASSERT_LOOP_THREAD(io->loop);
  if (events == io->events && !(io->flags_ & AX__DISARMED))
    return 0;
  int rc = io->loop->backend->mod(io->loop, io, events);
  if (rc < 0)
    return rc;
  io->events = events;
  io->flags_ &= ~(unsigned)AX__DISARMED;
  /* An entry of this pass that the old registration reported is not
   * delivered: the new one reports what is ready now (epoll and io_uring
   * look at the fd when it is made, poll at every wait).  Delivered, it
   * would count as the new one-shot's firing, or repeat an event. */
  if (io->loop->dispatching)
    ax__io_forget(io->loop, io);
  return 0;
}

/* Drops io's entries from the rest of the batch being dispatched, so that
 * neither a stopped watcher nor a new one that reuses its memory or its fd
 * number is handed an event that belonged to the old registration. */
void ax__io_forget(ax_loop_t *loop, ax_io_t *io) {
  for (unsigned i = loop->ready_pos + 1; i < loop->nready; i++)
    if (loop->ready[i].io == io)
      loop->ready[i].io = NULL;
}

int ax_io_stop(ax_io_t *io) {
  if (io == NULL)
    return -EINVAL;
  if (!(io->flags_ & AX__ACTIVE))
    return 0;
  ax_loop_t *loop = io->loop;
  AX__ASSERT_LOOP_THREAD(loop);
  loop->backend->del(loop, io);
  if (loop->dispatching)
    ax__io_forget(loop, io);
  io->flags_ &= ~(unsigned)(AX__ACTIVE | AX__DISARMED);
  io->events = 0;
  if (!(io->flags_ & AX__INTERNAL)) {
    if (io->prev_ != NULL)
      io->prev_->next_ = io->next_;
    else
      loop->io_list = io->next_;
    if (io->next_ != NULL)
      io->next_->prev_ = io->prev_;
    io->next_ = io->prev_ = NULL;
    loop->nactive--;
  }
  return 0;
}

bool ax_io_active(const ax_io_t *io) { return io != NULL && (io->flags_ & AX__ACTIVE) != 0; }

/* Turns what the kernel reported into what the watcher is told:
 *  - an error reported together with priority data is a sysfs edge (GPIO
 *    "value" files report POLLERR|POLLPRI), so it becomes plain AX_PRI;
 *  - a hang-up or error also sets the requested read/write bits, so that a
 *    callback that only tests AX_READ still reads, sees EOF or the error,
 *    and does not spin on a level-triggered hang-up;
 *  - bits the watcher no longer asks for (ax_io_modify after the kernel
 *    reported them) are dropped. */
static unsigned fold_events(unsigned revents, unsigned events) {
  unsigned want = events & AX__REQUEST_BITS;
  if ((revents & AX_PRI) && (want & AX_PRI))
    revents &= ~(unsigned)AX_ERR;
  if (revents & (AX_HUP | AX_ERR))
    revents |= want & (AX_READ | AX_WRITE);
  return revents & (want | AX_HUP | AX_ERR);
}

void ax__io_dispatch(ax_loop_t *loop, unsigned n) {
  loop->nready = n;
  loop->dispatching = true;
  for (unsigned i = 0; i < n; i++) {
    loop->ready_pos = i;
    ax_io_t *io = loop->ready[i].io;
    if (io == NULL)
      continue; /* stopped by an earlier callback of this batch */
    if (io->events & AX_ONESHOT)
      io->flags_ |= AX__DISARMED; /* the backend disarmed it when it reported it */
    unsigned revents = fold_events(loop->ready[i].revents, io->events);
    if (revents != 0)
      io->cb_(io, revents);
  }
  loop->dispatching = false;
  loop->nready = 0;
  loop->ready_pos = 0;
}
