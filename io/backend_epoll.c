/* The epoll backend: the default on Linux. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "io/internal.h"

/* What the loop watches on one fd number: by_fd[fd] is its watcher, whose
 * slot_ holds the generation of its registration.  epoll knows a
 * registration by its open file and fd number, and forgets it only once
 * the file's last descriptor is closed: a watcher whose fd was closed
 * while a dup of it lives on (a dup, a forked child) leaves a registration
 * that nothing can remove any more.  So an event names its fd and the
 * generation that registered it, and one that matches no live watcher is
 * dropped: it never reaches a stopped watcher (whose memory may be gone)
 * or a newer one on a reused fd number.  8 bytes per fd number and loop
 * (a core's loop covers every fd number up to the highest it watches). */
typedef struct epoll_data_ {
  int epfd;
  bool no_pwait2; /* the kernel lacks epoll_pwait2: use millisecond waits */
  bool ghost_told; /* the message about a registration left behind is out */
  uint32_t gen;   /* the last generation handed out */
  ax_io_t **by_fd;
  int nfd;
  struct epoll_event events[];
} epoll_state_t;

static int epoll_init(ax_loop_t *loop) {
  epoll_state_t *st = ax__malloc(sizeof *st + loop->max_events * sizeof st->events[0]);
  if (st == NULL)
    return -ENOMEM;
  st->epfd = epoll_create1(EPOLL_CLOEXEC);
  if (st->epfd < 0) {
    int rc = -errno;
    free(st);
    return rc;
  }
  st->no_pwait2 = false;
  st->ghost_told = false;
  st->gen = 0;
  st->by_fd = NULL;
  st->nfd = 0;
  loop->backend_data = st;
  return 0;
}

static void epoll_destroy(ax_loop_t *loop) {
  epoll_state_t *st = loop->backend_data;
  close(st->epfd);
  free(st->by_fd);
  free(st);
  loop->backend_data = NULL;
}

static uint64_t tag_of(int fd, uint32_t gen) {
  return (uint64_t)gen << 32 | (uint32_t)fd;
}

static int epoll_ctl_io(epoll_state_t *st, int op, const ax_io_t *io, unsigned events) {
  struct epoll_event ev = {.events = ax__to_epoll(events),
                           .data.u64 = tag_of(io->fd, (uint32_t)io->slot_)};
  if (epoll_ctl(st->epfd, op, io->fd, &ev) < 0)
    return -errno;
  return 0;
}

static int epoll_add(ax_loop_t *loop, ax_io_t *io, unsigned events) {
  epoll_state_t *st = loop->backend_data;
  if (io->fd < st->nfd && st->by_fd[io->fd] != NULL)
    return -EEXIST; /* also when that watcher's fd was closed and the number reused */
  if (io->fd >= st->nfd) {
    int n = st->nfd != 0 ? st->nfd : 64;
    while (n <= io->fd)
      n *= 2;
    ax_io_t **by_fd = ax__realloc(st->by_fd, (size_t)n * sizeof *by_fd);
    if (by_fd == NULL)
      return -ENOMEM;
    for (int i = st->nfd; i < n; i++)
      by_fd[i] = NULL;
    st->by_fd = by_fd;
    st->nfd = n;
  }
  io->slot_ = (int)++st->gen;
  int rc = epoll_ctl_io(st, EPOLL_CTL_ADD, io, events);
  if (rc == 0)
    st->by_fd[io->fd] = io;
  else
    io->slot_ = -1;
  return rc;
}

static int epoll_mod(ax_loop_t *loop, ax_io_t *io, unsigned events) {
  int rc = epoll_ctl_io(loop->backend_data, EPOLL_CTL_MOD, io, events);
  /* A watcher whose fd was closed and its number reused: the kernel's
   * registration went with the old file.  loop.h's -EBADF, not -ENOENT. */
  return rc == -ENOENT ? -EBADF : rc;
}

static void epoll_del(ax_loop_t *loop, ax_io_t *io) {
  epoll_state_t *st = loop->backend_data;
  /* EBADF/ENOENT: the fd was closed, and the kernel forgot it (or keeps
   * it for a dup, where the generation check in the wait drops it). */
  struct epoll_event unused = {0};
  (void)epoll_ctl(st->epfd, EPOLL_CTL_DEL, io->fd, &unused);
  st->by_fd[io->fd] = NULL;
  io->slot_ = -1;
}

/* An event of a registration that no watcher owns any more.  Said once per
 * loop on stderr: while the file stays open elsewhere, it comes back at
 * every wait (level-triggered), and the loop cannot remove it. */
static void ghost(epoll_state_t *st, int fd) {
  if (st->ghost_told)
    return;
  st->ghost_told = true;
  char line[200];
  int len = snprintf(line, sizeof line,
                     "axon: fd %d was closed while a loop watched it, and a copy of it (dup, "
                     "fork) keeps it open: epoll reports it until that copy is closed "
                     "(stop a watcher before closing its fd)\n",
                     fd);
  if (len > 0)
    (void)!write(STDERR_FILENO, line, (size_t)len < sizeof line ? (size_t)len : sizeof line - 1);
}

static int epoll_wait_events(ax_loop_t *loop, int64_t timeout_ns) {
  epoll_state_t *st = loop->backend_data;
  int n;
  if (!st->no_pwait2) {
    struct timespec ts, *tsp = NULL;
    if (timeout_ns != AX_FOREVER) {
      ts.tv_sec = (time_t)(timeout_ns / AX_NSEC_PER_SEC);
      ts.tv_nsec = (long)(timeout_ns % AX_NSEC_PER_SEC);
      tsp = &ts;
    }
    n = epoll_pwait2(st->epfd, st->events, (int)loop->max_events, tsp, NULL);
    if (n < 0 && errno == ENOSYS) {
      st->no_pwait2 = true;
      return epoll_wait_events(loop, timeout_ns);
    }
  } else {
    int ms = -1;
    if (timeout_ns != AX_FOREVER) {
      /* Round up so a timer is never woken for early, which would spin. */
      int64_t m = (timeout_ns + AX_NSEC_PER_MSEC - 1) / AX_NSEC_PER_MSEC;
      ms = m > INT32_MAX ? INT32_MAX : (int)m;
    }
    n = epoll_wait(st->epfd, st->events, (int)loop->max_events, ms);
  }
  if (n < 0)
    return errno == EINTR ? 0 : -errno;
  int got = 0;
  for (int i = 0; i < n; i++) {
    uint64_t tag = st->events[i].data.u64;
    int fd = (int)(uint32_t)tag;
    ax_io_t *io = fd < st->nfd ? st->by_fd[fd] : NULL;
    if (io == NULL || (uint32_t)io->slot_ != (uint32_t)(tag >> 32)) {
      ghost(st, fd);
      continue;
    }
    loop->ready[got].io = io;
    loop->ready[got].revents = ax__from_epoll(st->events[i].events);
    got++;
  }
  return got;
}

/* The epoll fd itself: readable while any watched fd has events. */
static int epoll_backend_fd(const ax_loop_t *loop) {
  const epoll_state_t *st = loop->backend_data;
  return st->epfd;
}

const ax__backend_t ax__backend_epoll = {
    .name = "epoll",
    .init = epoll_init,
    .destroy = epoll_destroy,
    .add = epoll_add,
    .mod = epoll_mod,
    .del = epoll_del,
    .wait = epoll_wait_events,
    .fd = epoll_backend_fd,
};
