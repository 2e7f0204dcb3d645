/* The io_uring backend: readiness through poll requests on a ring, with epoll's semantics. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <stdatomic.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#include "io/internal.h"

#ifdef AX_HAVE_URING
#include <liburing.h>

/*
 * Every started watcher has a registration: a slot whose index and
 * generation name its poll requests (user_data = generation << 32 |
 * index), so that a completion of a request the loop no longer wants (the
 * watcher was stopped or changed meanwhile) is recognised and dropped even
 * once the slot serves another watcher.
 *
 * epoll's three modes, on poll requests:
 *  - level-triggered (the default): a one-shot poll, armed again at the
 *    start of the next wait after it fired (after the callback ran), so a
 *    descriptor that is still ready is reported again, as epoll does;
 *  - AX_EDGE: a multishot poll, which reports each wake-up of the file;
 *  - AX_ONESHOT: a one-shot poll, armed again only by ax_io_modify.
 * Changing a watcher's events removes its poll and arms a new one.
 *
 * Submissions (new polls, removals, polls armed again) queue on the ring
 * and go to the kernel with the next wait, in one io_uring_enter.
 *
 * Watchers that ask for AX_PRI live in a private epoll instead, whose fd the
 * ring polls: the kernel's wake-up for TCP urgent data names POLLIN but not
 * POLLPRI, so a poll request that waits for POLLPRI alone never completes,
 * while epoll (which asks the file again on every wake-up) sees it.  Sysfs
 * edges and PSI triggers go through the same epoll, which costs one more
 * system call per wake-up of those rare watchers and nothing for the others.
 *
 * Embedding (ax_loop_fd): the ring's own fd is readable while completions
 * wait.  Once it has been handed out, every poll request is submitted at
 * once, and those armed again after a dispatch are submitted right after
 * it, so that a host that polls the fd never waits for a request still in
 * the submission queue.
 */
#define RING_ENTRIES 256
#define REMOVAL UINT64_MAX /* user_data of removals (no slot has it): their completions say nothing */
#define PRI_TAG (UINT64_MAX - 1) /* the poll on the private epoll */
#define PRI_BATCH 64             /* epoll entries taken per wake-up of the private epoll */

typedef struct reg {
  ax_io_t *io;      /* NULL: free */
  uint32_t gen;
  unsigned events;  /* axon bits */
  bool armed;       /* a poll request is in the kernel */
  bool again;       /* a one-shot fired: arm it at the next wait */
  bool listed;      /* its number is in st->again (once at most) */
  bool in_ep;       /* registered in the private epoll (it asks for AX_PRI) */
  uint32_t batch;   /* the wait that last reported it (merges its completions) */
  unsigned pos;     /* its entry in that batch */
  int next_free;
} reg_t;

typedef struct uring_state {
  struct io_uring ring;
  reg_t *regs;
  int nregs, free_head;
  int *by_fd; /* slot of each fd, -1: none */
  int nfd;
  int *again; /* slots to arm again at the next wait */
  int nagain;
  uint32_t batch;
  ax_loop_t *loop;
  int pri_ep;        /* the private epoll for AX_PRI watchers, -1: none yet */
  bool pri_armed;    /* its poll request is in the kernel */
  bool pri_fired;    /* it completed: take its entries and arm it again */
  /* Set by ax_loop_fd (any thread that knows the loop is alive), read on
   * the loop's thread: relaxed, since the host orders its own hand-over of
   * the fd to its poll loop; a stale false only delays a submission to the
   * loop's next wait. */
  atomic_bool embedded;
} uring_state_t;

/* A poll request's mask: epoll's bits without its modes (a request is
 * one-shot or multishot by its own flag).  No POLLRDHUP: a peer's shutdown
 * reads as AX_READ, as with epoll (the kernel reports EPOLLRDHUP to a poll
 * request whether asked or not: take() drops it). */
static unsigned poll_mask(unsigned events) {
  return ax__to_epoll(events & (AX_READ | AX_WRITE | AX_PRI));
}

static inline uint64_t tag_of(const uring_state_t *st, int i) {
  return (uint64_t)st->regs[i].gen << 32 | (uint32_t)i;
}

/* A submission entry, the queue handed over first when it is full; NULL
 * when the kernel refuses the hand-over (-ENOMEM): the caller gives up
 * (a start or modify fails, a re-arm waits for the next wait). */
static struct io_uring_sqe *sqe_get(uring_state_t *st) {
  struct io_uring_sqe *sqe = io_uring_get_sqe(&st->ring);
  for (unsigned tries = 0; sqe == NULL && tries < 8; tries++) {
    int rc = io_uring_submit(&st->ring); /* full: hand the batch over */
    if (rc < 0 && rc != -EINTR && rc != -EAGAIN)
      break;
    sqe = io_uring_get_sqe(&st->ring);
  }
  return sqe;
}

/* True when a queued request must go to the kernel now rather than with
 * the next wait: the loop is embedded (see above), or it is not running, so
 * no wait may come before a host polls its fd. */
static bool submit_now(uring_state_t *st) {
  return atomic_load_explicit(&st->embedded, memory_order_relaxed) /* see uring_state_t */
         /* relaxed: the loop's own thread, which set it */
         || !atomic_load_explicit(&st->loop->running, memory_order_relaxed);
}

/* Asks for slot i's events.  Returns 0, or -ENOMEM when no entry can be
 * had (nothing changed). */
static int arm(uring_state_t *st, int i) {
  reg_t *r = &st->regs[i];
  struct io_uring_sqe *sqe = sqe_get(st);
  if (sqe == NULL)
    return -ENOMEM;
  io_uring_prep_poll_add(sqe, r->io->fd, poll_mask(r->events));
  if ((r->events & (AX_EDGE | AX_ONESHOT)) == AX_EDGE)
    sqe->len |= IORING_POLL_ADD_MULTI;
  io_uring_sqe_set_data64(sqe, tag_of(st, i));
  r->armed = true;
  r->again = false;
  if (submit_now(st))
    (void)io_uring_submit(&st->ring);
  return 0;
}

/* The one-shot poll on the private epoll, armed again after each wake-up
 * (an epoll fd stays readable while level-triggered entries are ready, so
 * this keeps their semantics). */
static void pri_arm(uring_state_t *st) {
  struct io_uring_sqe *sqe = sqe_get(st);
  if (sqe == NULL) { /* tried again at the next wait */
    st->pri_fired = true;
    return;
  }
  io_uring_prep_poll_add(sqe, st->pri_ep, POLLIN);
  io_uring_sqe_set_data64(sqe, PRI_TAG);
  st->pri_armed = true;
  st->pri_fired = false;
  if (submit_now(st))
    (void)io_uring_submit(&st->ring);
}

/* Moves slot i into the private epoll.  Returns 0 or -errno. */
static int pri_add(uring_state_t *st, int i) {
  reg_t *r = &st->regs[i];
  if (st->pri_ep < 0) {
    st->pri_ep = epoll_create1(EPOLL_CLOEXEC);
    if (st->pri_ep < 0)
      return -errno;
  }
  struct epoll_event ev = {.events = ax__to_epoll(r->events), .data.u64 = tag_of(st, i)};
  if (epoll_ctl(st->pri_ep, EPOLL_CTL_ADD, r->io->fd, &ev) < 0)
    return -errno;
  r->in_ep = true;
  if (!st->pri_armed && !st->pri_fired)
    pri_arm(st);
  return 0;
}

static void pri_del(uring_state_t *st, int i) {
  reg_t *r = &st->regs[i];
  if (r->in_ep)
    (void)epoll_ctl(st->pri_ep, EPOLL_CTL_DEL, r->io->fd, NULL); /* EBADF: closed, already gone */
  r->in_ep = false;
  r->gen++; /* entries already taken from the epoll are stale */
}

/* Asks the kernel to end the poll request tagged tag.  Without an entry
 * for it (the kernel refuses the queue) the request stays until its fd
 * fires or the ring goes: what it reports then is stale (the generation
 * moved) and dropped. */
static void remove_poll(uring_state_t *st, uint64_t tag) {
  struct io_uring_sqe *sqe = sqe_get(st);
  if (sqe == NULL)
    return;
  io_uring_prep_poll_remove(sqe, tag);
  io_uring_sqe_set_data64(sqe, REMOVAL);
}

static void disarm(uring_state_t *st, int i) {
  reg_t *r = &st->regs[i];
  if (r->armed)
    remove_poll(st, tag_of(st, i));
  r->armed = false;
  r->again = false;
  r->gen++; /* whatever the old request still reports is stale */
}

static int uring_init(ax_loop_t *loop) {
  uring_state_t *st = ax__calloc(1, sizeof *st);
  if (st == NULL)
    return -ENOMEM;
  int rc = io_uring_queue_init(RING_ENTRIES, &st->ring, 0);
  if (rc < 0) {
    free(st);
    return rc;
  }
  /* Multishot polls (5.13) and waits with a timeout argument (5.11): a
   * kernel that knows CQE skipping (5.17) has both. */
  if (!(st->ring.features & IORING_FEAT_CQE_SKIP)) {
    io_uring_queue_exit(&st->ring);
    free(st);
    return -ENOSYS;
  }
  st->free_head = -1;
  st->pri_ep = -1;
  st->loop = loop;
  loop->backend_data = st;
  return 0;
}

static void uring_destroy(ax_loop_t *loop) {
  uring_state_t *st = loop->backend_data;
  io_uring_queue_exit(&st->ring); /* cancels every poll */
  if (st->pri_ep >= 0)
    close(st->pri_ep);
  free(st->regs);
  free(st->by_fd);
  free(st->again);
  free(st);
  loop->backend_data = NULL;
}

/* A free slot (the arrays grown as needed), or -ENOMEM. */
static int slot_new(uring_state_t *st, int fd) {
  if (fd >= st->nfd) {
    int n = st->nfd != 0 ? st->nfd : 64;
    while (n <= fd)
      n *= 2;
    int *by_fd = ax__realloc(st->by_fd, (size_t)n * sizeof *by_fd);
    if (by_fd == NULL)
      return -ENOMEM;
    for (int i = st->nfd; i < n; i++)
      by_fd[i] = -1;
    st->by_fd = by_fd;
    st->nfd = n;
  }
  if (st->free_head < 0) {
    int n = st->nregs != 0 ? st->nregs * 2 : 64;
    reg_t *regs = ax__realloc(st->regs, (size_t)n * sizeof *regs);
    if (regs == NULL)
      return -ENOMEM;
    st->regs = regs;
    int *again = ax__realloc(st->again, (size_t)n * sizeof *again);
    if (again == NULL)
      return -ENOMEM;
    st->again = again;
    for (int i = n - 1; i >= st->nregs; i--) {
      memset(&regs[i], 0, sizeof regs[i]);
      regs[i].next_free = st->free_head;
      st->free_head = i;
    }
    st->nregs = n;
  }
  int i = st->free_head;
  st->free_head = st->regs[i].next_free;
  return i;
}

/* The files epoll accepts although they are regular: the kernel's own
 * (/proc/self/mounts, sysfs attributes such as a GPIO's value, cgroup
 * event files), whose poll says when they change. */
static bool pollable_file(int fd) {
  struct statfs fs;
  if (fstatfs(fd, &fs) < 0)
    return false;
  switch ((unsigned long)fs.f_type) {
  case 0x9fa0UL:     /* proc */
  case 0x62656572UL: /* sysfs */
  case 0x63677270UL: /* cgroup2 */
  case 0x27e0ebUL:   /* cgroup */
  case 0x64626720UL: /* debugfs */
  case 0x74726163UL: /* tracefs */
    return true;
  default:
    return false;
  }
}

/* Whether epoll takes fd: a device whose driver cannot poll (/dev/null)
 * is refused there, where io_uring's poll calls it always ready. */
static int device_pollable(int fd) {
  int ep = epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0)
    return -errno;
  struct epoll_event ev = {.events = EPOLLIN};
  int rc = epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
  close(ep);
  return rc;
}

static int uring_add(ax_loop_t *loop, ax_io_t *io, unsigned events) {
  uring_state_t *st = loop->backend_data;
  struct stat sb;
  if (fstat(io->fd, &sb) < 0)
    return -errno; /* -EBADF, as epoll says it */
  if ((S_ISREG(sb.st_mode) || S_ISDIR(sb.st_mode)) && !pollable_file(io->fd))
    return -EPERM; /* as epoll: a file is always ready, so it cannot be watched */
  if (S_ISCHR(sb.st_mode) || S_ISBLK(sb.st_mode)) {
    int rc = device_pollable(io->fd); /* ttys, serial ports: once per start */
    if (rc < 0)
      return rc; /* -EPERM, as epoll */
  }
  if (io->fd < st->nfd && st->by_fd[io->fd] >= 0)
    return -EEXIST;
  int i = slot_new(st, io->fd);
  if (i < 0)
    return i;
  reg_t *r = &st->regs[i];
  r->io = io;
  r->events = events;
  r->batch = 0;
  r->in_ep = false;
  r->armed = false; /* a reused slot's (listed stays: arm_again clears it) */
  r->again = false;
  int rc;
  if (events & AX_PRI) {
    rc = pri_add(st, i);
    if (rc < 0) {
      r->io = NULL;
      r->next_free = st->free_head;
      st->free_head = i;
      return rc;
    }
  } else if ((rc = arm(st, i)) < 0) {
    r->io = NULL;
    r->next_free = st->free_head;
    st->free_head = i;
    return rc;
  }
  st->by_fd[io->fd] = i;
  io->slot_ = i;
  return 0;
}

static int uring_mod(ax_loop_t *loop, ax_io_t *io, unsigned events) {
  uring_state_t *st = loop->backend_data;
  /* A closed fd: -EBADF now, as epoll_ctl says it, rather than from a poll
   * request that the kernel fails later. */
  if (fcntl(io->fd, F_GETFD) < 0)
    return -errno;
  int i = io->slot_;
  reg_t *r = &st->regs[i];
  if (r->in_ep && (events & AX_PRI)) {
    struct epoll_event ev = {.events = ax__to_epoll(events), .data.u64 = tag_of(st, i)};
    if (epoll_ctl(st->pri_ep, EPOLL_CTL_MOD, io->fd, &ev) < 0)
      return -errno;
    r->events = events;
    return 0;
  }
  /* The new registration first, under a new generation: when it cannot
   * be made, the old one is left as it was and still reports. */
  reg_t old = *r;
  uint64_t old_tag = tag_of(st, i);
  r->events = events;
  r->gen++;
  r->in_ep = false;
  r->armed = false; /* the old request's: an epoll registration has none */
  r->again = false; /* nor may a re-arm owed to the old one make a second request */
  int rc = events & AX_PRI ? pri_add(st, i) : arm(st, i);
  if (rc < 0) {
    *r = old;
    return rc;
  }
  /* Then the old one goes; what it still reports is stale. */
  if (old.in_ep)
    (void)epoll_ctl(st->pri_ep, EPOLL_CTL_DEL, io->fd, NULL);
  else if (old.armed)
    remove_poll(st, old_tag);
  return 0;
}

static void uring_del(ax_loop_t *loop, ax_io_t *io) {
  uring_state_t *st = loop->backend_data;
  int i = io->slot_;
  bool was_armed = st->regs[i].armed;
  if (st->regs[i].in_ep)
    pri_del(st, i);
  else
    disarm(st, i);
  /* A poll request holds its file: hand the removal over now, so that a
   * close right after this call closes the file (a tty opened exclusively
   * can be opened again, a peer sees the socket go), as with epoll. */
  if (was_armed)
    (void)io_uring_submit(&st->ring);
  reg_t *r = &st->regs[i];
  if (r->io->fd >= 0 && r->io->fd < st->nfd && st->by_fd[r->io->fd] == i)
    st->by_fd[r->io->fd] = -1;
  r->io = NULL;
  r->next_free = st->free_head;
  st->free_head = i;
  io->slot_ = -1;
}

/* Slot i's poll request, which has completed, is armed again at the next
 * wait (arm_again). */
static void arm_later(uring_state_t *st, int i) {
  reg_t *r = &st->regs[i];
  if (r->again)
    return;
  r->again = true;
  if (!r->listed) { /* an entry kept by arm_again may hold it still */
    r->listed = true;
    st->again[st->nagain++] = i;
  }
}

/* Moves slot i, whose poll request just reported EPOLLRDHUP and nothing
 * it waits for, into the private epoll.  The kernel adds EPOLLRDHUP to
 * every poll request, and a peer's shutdown(SHUT_WR) keeps it asserted:
 * a watcher waiting for AX_WRITE on a full buffer (or for nothing) saw its
 * request complete at once, again and again, the loop spinning at full
 * CPU (level-triggered), or lost its one-shot (a newcomer).  epoll reports
 * only what is asked.  `armed`: a multishot request still in the kernel,
 * removed here.  Without an epoll (no fd, no memory) the slot stays on the
 * ring, as before. */
static void rdhup_to_ep(uring_state_t *st, int i, bool armed) {
  reg_t *r = &st->regs[i];
  uint64_t old_tag = tag_of(st, i);
  r->gen++; /* what the old request still reports is stale */
  if (pri_add(st, i) < 0) {
    r->gen--;
    return;
  }
  r->again = false; /* epoll reports it now; arm_again drops it from its list */
  if (armed)
    remove_poll(st, old_tag);
  r->armed = false;
}

/* One completion: a ready entry for a live registration (merged with an
 * earlier one of the same batch), nothing for a stale one. */
static int take(ax_loop_t *loop, uring_state_t *st, const struct io_uring_cqe *cqe, int n) {
  uint64_t tag = io_uring_cqe_get_data64(cqe);
  if (tag == REMOVAL)
    return n;
  if (tag == PRI_TAG) {
    st->pri_armed = false;
    st->pri_fired = true;
    return n;
  }
  int i = (int)(uint32_t)tag;
  if (i >= st->nregs)
    return n;
  reg_t *r = &st->regs[i];
  if (r->io == NULL || r->gen != (uint32_t)(tag >> 32))
    return n; /* stopped or changed meanwhile */
  bool more = (cqe->flags & IORING_CQE_F_MORE) != 0;
  /* The poll failed.  -EBADF: the fd was closed under the watcher, which
   * is told so as an error, once (armed again, the poll would only fail
   * again at every wait).  Anything else (-ECANCELED: a removal, or the
   * kernel ended it; -EINVAL, seen on a pty being reconfigured): armed again
   * at the next wait. */
  bool failed = cqe->res == -EBADF;
  if (!more) {
    r->armed = false;
    /* Armed again next wait: a level-triggered watcher (still ready, it is
     * reported again), or a multishot poll the kernel ended.  A one-shot,
     * or a failed poll, waits for ax_io_modify. */
    if (!(r->events & AX_ONESHOT) && !failed)
      arm_later(st, i);
  }
  if (cqe->res < 0 && !failed)
    return n;
  /* Without EPOLLRDHUP, which the kernel adds to every poll request: a
   * half-closed peer is AX_READ, as on epoll and poll, not AX_HUP (which
   * loop.h keeps for both directions closed; a reviewer's server that
   * closed on AX_HUP dropped half-closed clients on io_uring only). */
  unsigned revents =
      failed ? AX_ERR : ax__from_epoll((uint32_t)cqe->res & ~(uint32_t)EPOLLRDHUP);
  if (revents == 0) { /* nothing the watcher asked for: no callback */
    if ((uint32_t)cqe->res & EPOLLRDHUP)
      rdhup_to_ep(st, i, more);
    if (!r->in_ep && !r->armed)
      arm_later(st, i); /* a one-shot too: it was not used up */
    return n;
  }
  if (r->batch == st->batch) {
    loop->ready[r->pos].revents |= revents;
    return n;
  }
  r->batch = st->batch;
  r->pos = (unsigned)n;
  loop->ready[n].io = r->io;
  loop->ready[n].revents = revents;
  return n + 1;
}

/* The private epoll's ready entries, after its poll completed: appended
 * to the batch (its fds have no poll requests, so nothing merges). */
static int pri_take(ax_loop_t *loop, uring_state_t *st, int n) {
  struct epoll_event evs[PRI_BATCH];
  int room = (int)loop->max_events - n;
  if (room > PRI_BATCH)
    room = PRI_BATCH;
  if (room <= 0)
    return n; /* armed again at the next wait, it completes at once */
  int got = epoll_wait(st->pri_ep, evs, room, 0);
  for (int k = 0; k < got; k++) {
    uint64_t tag = evs[k].data.u64;
    reg_t *r = &st->regs[(uint32_t)tag];
    if (r->io == NULL || r->gen != (uint32_t)(tag >> 32))
      continue;
    loop->ready[n].io = r->io;
    loop->ready[n].revents = ax__from_epoll(evs[k].events);
    n++;
  }
  return n;
}

/* What fired last time and is still wanted is armed again, after its
 * callback ran. */
static void arm_again(uring_state_t *st) {
  int left = 0; /* those the kernel had no room for: tried at the next wait */
  for (int k = 0; k < st->nagain; k++) {
    int i = st->again[k];
    reg_t *r = &st->regs[i];
    if (r->io != NULL && r->again && !r->armed && arm(st, i) < 0)
      st->again[left++] = i;
    else
      r->listed = false;
  }
  st->nagain = left;
  if (st->pri_fired)
    pri_arm(st);
}

static int uring_wait(ax_loop_t *loop, int64_t timeout_ns) {
  uring_state_t *st = loop->backend_data;
  arm_again(st);
  struct io_uring_cqe *cqe = NULL;
  int rc;
  if (timeout_ns == 0) {
    rc = io_uring_submit(&st->ring);
  } else if (timeout_ns == AX_FOREVER) {
    rc = io_uring_submit_and_wait(&st->ring, 1);
  } else {
    struct __kernel_timespec ts = {.tv_sec = timeout_ns / AX_NSEC_PER_SEC,
                                   .tv_nsec = timeout_ns % AX_NSEC_PER_SEC};
    rc = io_uring_submit_and_wait_timeout(&st->ring, &cqe, 1, &ts, NULL);
  }
  if (rc < 0 && rc != -ETIME && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY)
    return rc;
  if (++st->batch == 0)
    st->batch = 1; /* 0 means "never reported" */
  int n = 0;
  unsigned head, seen = 0;
  io_uring_for_each_cqe(&st->ring, head, cqe) {
    if ((unsigned)n == loop->max_events)
      break; /* the rest waits for the next wait */
    n = take(loop, st, cqe, n);
    seen++;
  }
  io_uring_cq_advance(&st->ring, seen);
  if (st->pri_fired)
    n = pri_take(loop, st, n);
  return n;
}

/* After a dispatch: an embedded loop's re-arms go to the kernel now, since
 * the host polls the ring's fd before it calls the loop again. */
static void uring_after(ax_loop_t *loop) {
  uring_state_t *st = loop->backend_data;
  if (atomic_load_explicit(&st->embedded, memory_order_relaxed) /* see uring_state_t */
      && (st->nagain != 0 || st->pri_fired))
    arm_again(st);
}

/* The ring's fd: readable while completions wait. */
static int uring_fd(const ax_loop_t *loop) {
  uring_state_t *st = loop->backend_data;
  atomic_store_explicit(&st->embedded, true, memory_order_relaxed); /* see uring_state_t */
  return st->ring.ring_fd;
}

const ax__backend_t ax__backend_uring = {
    .name = "io_uring",
    .init = uring_init,
    .destroy = uring_destroy,
    .add = uring_add,
    .mod = uring_mod,
    .del = uring_del,
    .wait = uring_wait,
    .after = uring_after,
    .fd = uring_fd,
};

#else /* built without liburing */

static int no_init(ax_loop_t *loop) {
  (void)loop;
  return -ENOSYS;
}

const ax__backend_t ax__backend_uring = {.name = "io_uring", .init = no_init};

#endif
