/* The epoll backend: the default on Linux. */
#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "io/internal.h"

typedef struct epoll_data_ {
  int epfd;
  bool no_pwait2; /* the kernel lacks epoll_pwait2: use millisecond waits */
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
  loop->backend_data = st;
  return 0;
}

static void epoll_destroy(ax_loop_t *loop) {
  epoll_state_t *st = loop->backend_data;
  close(st->epfd);
  free(st);
  loop->backend_data = NULL;
}

static int epoll_ctl_io(ax_loop_t *loop, int op, ax_io_t *io, unsigned events) {
  epoll_state_t *st = loop->backend_data;
  struct epoll_event ev = {.events = ax__to_epoll(events), .data.ptr = io};
  if (epoll_ctl(st->epfd, op, io->fd, &ev) < 0)
    return -errno;
  return 0;
}

static int epoll_add(ax_loop_t *loop, ax_io_t *io, unsigned events) {
  return epoll_ctl_io(loop, EPOLL_CTL_ADD, io, events);
}

static int epoll_mod(ax_loop_t *loop, ax_io_t *io, unsigned events) {
  return epoll_ctl_io(loop, EPOLL_CTL_MOD, io, events);
}

static void epoll_del(ax_loop_t *loop, ax_io_t *io) {
  epoll_state_t *st = loop->backend_data;
  /* EBADF/ENOENT: the fd was closed and the kernel already forgot it. */
  struct epoll_event unused = {0};
  (void)epoll_ctl(st->epfd, EPOLL_CTL_DEL, io->fd, &unused);
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
  for (int i = 0; i < n; i++) {
    loop->ready[i].io = st->events[i].data.ptr;
    loop->ready[i].revents = ax__from_epoll(st->events[i].events);
  }
  return n;
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
