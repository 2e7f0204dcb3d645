/* The poll(2) backend: the portable fallback, level-triggered only. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <time.h>

#include "io/internal.h"

/*
 * State: parallel arrays of pollfds and their watchers, packed (a stopped
 * watcher's slot is filled with the last one, whose slot_ is updated).
 * The arrays grow by doubling, in ax_io_start() (as epoll's and
 * io_uring's fd tables grow for a new highest fd number), which then
 * fails with -ENOMEM rather than losing the watcher.
 */
typedef struct poll_state {
  struct pollfd *fds;
  ax_io_t **ios;
  unsigned n, cap;
  unsigned cursor; /* where the next scan for ready fds starts (fairness) */
} poll_state_t;

static short to_poll(unsigned events) {
  short e = 0;
  if (events & AX_READ)
    e |= POLLIN;
  if (events & AX_WRITE)
    e |= POLLOUT;
  if (events & AX_PRI)
    e |= POLLPRI;
  return e;
}

static unsigned from_poll(short e) {
  unsigned r = 0;
  if (e & POLLIN)
    r |= AX_READ;
  if (e & POLLOUT)
    r |= AX_WRITE;
  if (e & POLLPRI)
    r |= AX_PRI;
  if (e & POLLHUP)
    r |= AX_HUP;
  if (e & (POLLERR | POLLNVAL)) /* POLLNVAL: the fd was closed under us */
    r |= AX_ERR;
  return r;
}

static int poll_init(ax_loop_t *loop) {
  poll_state_t *st = ax__calloc(1, sizeof *st);
  if (st == NULL)
    return -ENOMEM;
  loop->backend_data = st;
  return 0;
}

static void poll_destroy(ax_loop_t *loop) {
  poll_state_t *st = loop->backend_data;
  free(st->fds);
  free(st->ios);
  free(st);
  loop->backend_data = NULL;
}

static int poll_add(ax_loop_t *loop, ax_io_t *io, unsigned events) {
  poll_state_t *st = loop->backend_data;
  /* poll() would report a closed fd as POLLNVAL on every pass; refuse it
   * now, as epoll_ctl does. */
  if (fcntl(io->fd, F_GETFD) < 0)
    return -errno;
  /* Same rule as epoll: one watcher per fd and loop.  A linear scan: this
   * backend is the fallback, not the fast path. */
  for (unsigned i = 0; i < st->n; i++)
    if (st->ios[i]->fd == io->fd) /* fds[i].fd is negative while disarmed */
      return -EEXIST;
  if (st->n == st->cap) {
    unsigned cap = st->cap != 0 ? st->cap * 2 : 16;
    struct pollfd *fds = ax__realloc(st->fds, cap * sizeof *fds);
    if (fds == NULL)
      return -ENOMEM;
    st->fds = fds;
    ax_io_t **ios = ax__realloc(st->ios, cap * sizeof *ios);
    if (ios == NULL)
      return -ENOMEM;
    st->ios = ios;
    st->cap = cap;
  }
  st->fds[st->n] = (struct pollfd){.fd = io->fd, .events = to_poll(events)};
  st->ios[st->n] = io;
  io->slot_ = (int)st->n++;
  return 0;
}

static int poll_mod(ax_loop_t *loop, ax_io_t *io, unsigned events) {
  poll_state_t *st = loop->backend_data;
  /* A closed fd: -EBADF, as epoll_ctl says it (poll() would report it as
   * POLLNVAL at every pass). */
  if (fcntl(io->fd, F_GETFD) < 0)
    return -errno;
  st->fds[io->slot_].fd = io->fd; /* armed again if AX_ONESHOT had fired */
  st->fds[io->slot_].events = to_poll(events);
  return 0;
}

static void poll_del(ax_loop_t *loop, ax_io_t *io) {
  poll_state_t *st = loop->backend_data;
  unsigned slot = (unsigned)io->slot_, last = --st->n;
  if (slot != last) {
    st->fds[slot] = st->fds[last];
    st->ios[slot] = st->ios[last];
    st->ios[slot]->slot_ = (int)slot;
  }
  io->slot_ = -1;
}

static int poll_wait(ax_loop_t *loop, int64_t timeout_ns) {
  poll_state_t *st = loop->backend_data;
  struct timespec ts, *tsp = NULL;
  if (timeout_ns != AX_FOREVER) {
    ts.tv_sec = (time_t)(timeout_ns / AX_NSEC_PER_SEC);
    ts.tv_nsec = (long)(timeout_ns % AX_NSEC_PER_SEC);
    tsp = &ts;
  }
  int n = ppoll(st->fds, st->n, tsp, NULL);
  if (n < 0)
    return errno == EINTR ? 0 : -errno;
  /* Collect at most max_events, starting where the last scan stopped so
   * that low slots cannot starve high ones when many fds are ready. */
  unsigned got = 0, total = st->n;
  unsigned start = st->cursor < total ? st->cursor : 0;
  for (unsigned k = 0; k < total && got < (unsigned)n && got < loop->max_events; k++) {
    unsigned i = (start + k) % total;
    if (st->fds[i].revents == 0)
      continue;
    loop->ready[got].io = st->ios[i];
    loop->ready[got].revents = from_poll(st->fds[i].revents);
    /* Disarmed (poll skips negative fds): a one-shot that fired, and an fd
     * closed under its watcher (POLLNVAL), told once rather than at every
     * pass, as the io_uring backend does; epoll forgets such an fd. */
    if ((st->ios[i]->events & AX_ONESHOT) || (st->fds[i].revents & POLLNVAL))
      st->fds[i].fd = -1 - st->fds[i].fd;
    got++;
    st->cursor = i + 1;
  }
  return (int)got;
}

/* poll keeps its fds in an array of its own: nothing a host could wait on. */
static int poll_backend_fd(const ax_loop_t *loop) {
  (void)loop;
  return -ENOTSUP;
}

const ax__backend_t ax__backend_poll = {
    .name = "poll",
    .init = poll_init,
    .destroy = poll_destroy,
    .add = poll_add,
    .mod = poll_mod,
    .del = poll_del,
    .wait = poll_wait,
    .fd = poll_backend_fd,
};
