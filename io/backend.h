/* The interface every polling backend (epoll, poll, io_uring) implements for the loop. */
#ifndef AXON_IO_BACKEND_H
#define AXON_IO_BACKEND_H

#include <stdint.h>
#include <sys/epoll.h>

#include "axon/loop.h"

/* A backend is a table of eight entry points plus a name, in the spirit of a
 * tiny vtable.  Each keeps its state in loop->backend_data.  Event masks
 * passed to add/mod are axon bits (AX_READ | AX_WRITE | AX_PRI, maybe
 * AX_EDGE); wait reports axon bits (those plus AX_HUP, AX_ERR).
 *
 * All entry points run on the loop's thread. */
typedef struct ax__backend {
  const char *name;
  /* Creates the backend state.  Returns 0 or -errno. */
  int (*init)(ax_loop_t *loop);
  /* Frees the backend state; never fails. */
  void (*destroy)(ax_loop_t *loop);
  /* Starts polling io->fd for events.  Returns 0, -EEXIST (fd already
   * registered), or another -errno (the fd is then not registered). */
  int (*add)(ax_loop_t *loop, ax_io_t *io, unsigned events);
  /* Changes the events of a registered io.  Returns 0 or -errno. */
  int (*mod)(ax_loop_t *loop, ax_io_t *io, unsigned events);
  /* Stops polling io->fd.  Never fails: a closed fd is simply forgotten. */
  void (*del)(ax_loop_t *loop, ax_io_t *io);
  /* Waits at most timeout_ns (AX_FOREVER: no limit; 0: do not block) and
   * stores up to loop->max_events ready entries in loop->ready.  Returns
   * their number, 0 on timeout or interruption, or -errno. */
  int (*wait)(ax_loop_t *loop, int64_t timeout_ns);
  /* Optional (NULL: nothing to do): runs after the callbacks of a wait's
   * entries, for a backend that defers work to its next wait (io_uring arms
   * level-triggered polls again there) but must not when embedded. */
  void (*after)(ax_loop_t *loop);
  /* One fd that is readable whenever a wait would return events (for a
   * host's poll loop), or -ENOTSUP when the backend has none. */
  int (*fd)(const ax_loop_t *loop);
} ax__backend_t;

/* Axon's event bits as epoll's (AX_EDGE and AX_ONESHOT included), and
 * back.  The io_uring backend uses them too: a poll request's mask has
 * epoll's (and poll's) bit values. */
static inline uint32_t ax__to_epoll(unsigned events) {
  uint32_t e = 0;
  if (events & AX_READ)
    e |= EPOLLIN;
  if (events & AX_WRITE)
    e |= EPOLLOUT;
  if (events & AX_PRI)
    e |= EPOLLPRI;
  if (events & AX_EDGE)
    e |= EPOLLET;
  if (events & AX_ONESHOT)
    e |= EPOLLONESHOT; /* the kernel disarms it as it reports it */
  return e;
}

static inline unsigned ax__from_epoll(uint32_t e) {
  unsigned r = 0;
  if (e & EPOLLIN)
    r |= AX_READ;
  if (e & EPOLLOUT)
    r |= AX_WRITE;
  if (e & EPOLLPRI)
    r |= AX_PRI;
  if (e & (EPOLLHUP | EPOLLRDHUP))
    r |= AX_HUP;
  if (e & EPOLLERR)
    r |= AX_ERR;
  return r;
}

extern const ax__backend_t ax__backend_epoll;
extern const ax__backend_t ax__backend_poll;
extern const ax__backend_t ax__backend_uring; /* init fails without liburing */

#endif /* AXON_IO_BACKEND_H */
