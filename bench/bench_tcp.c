/* bench_tcp: TCP echo across cores: ax_tcp_serve sessions (on epoll and on io_uring),
 * fibers, libuv, raw epoll and raw io_uring, a loop per core.
 *
 * Usage: bench_tcp [--quick] [-c LIST] [-m LIST] [-n CORES] [-T THREADS]
 *                  [-t SECONDS] [-r RUNS] [-i LIST] [--verify] [-v]
 *   -c LIST    connection counts, comma-separated (default 1,10,100,1000)
 *   -m LIST    message sizes in bytes (default 64,16384)
 *   -n CORES   server threads / cores (default: every CPU of the affinity mask)
 *   -T THREADS client threads (default: the CPUs the client runs on)
 *   -t SECONDS ping-pong time per run (default 2; decimals allowed)
 *   -r RUNS    runs per configuration; the median is reported (default 3)
 *   -i LIST    implementations among epoll,axon,fiber,libuv,uring,urecv
 *              (default: all built; uring and urecv only where the kernel
 *              allows io_uring; urecv only when built with liburing)
 *   --verify   compare every echoed byte (default: the length of every
 *              message and its first and last 8 bytes)
 *   -v         print every run, with the connections each server thread got
 *   --quick    -c 1,100,1000 -t 0.2 -r 1 --verify: the CTest smoke run
 *
 * Servers, each in its own forked process, each with one event loop per
 * core (thread i pinned to the i-th CPU of the server's CPUs):
 *   axon   ax_tcp_serve: one SO_REUSEPORT listener per core, one session
 *          actor per connection; the session echoes each AX_MSG_DATA with
 *          ax_stream_write and stops on AX_MSG_CLOSED (default options
 *          but AX_STREAM_NODELAY)
 *   fiber  the same server with fiber sessions (opts.fiber): each
 *          connection's fiber, on its core, loops ax_stream_read and
 *          ax_stream_write: straight-line code against the handler's
 *          (target: server CPU per round trip <= 1.10x axon's)
 *   uring  the axon server with every core's loop on the io_uring backend
 *          (AX_BACKEND_IO_URING: readiness through poll requests on a ring);
 *          cpu/axon compares it with the same server on epoll
 *   libuv  one uv_loop_t per thread, each with its own SO_REUSEPORT
 *          listener (uv_tcp_open); uv_read_start, uv_try_write, and
 *          uv_write for what the kernel did not take (reading paused)
 *   epoll  one thread per core with its own SO_REUSEPORT listener and a
 *          level-triggered epoll loop: read, write back, queue a short
 *          write's rest (bench_net.h's echo policy): the floor
 *   urecv  the io_uring analogue of that floor, completion-based: one
 *          thread per core with its own SO_REUSEPORT listener and ring;
 *          multishot accept, a multishot recv per connection into a
 *          provided buffer ring, each chunk echoed by a send request (one
 *          in flight per connection, the rest queued), its buffer handed
 *          back once sent.  cpu/epoll answers whether completions cost the
 *          server less per round trip than readiness
 *
 * Method, per implementation and run: the parent forks the server, which
 * reports its port through a pipe.  The client (the parent) opens C
 * connections from the main thread, splits them over its threads, and each
 * thread runs ping-pong over its own epoll: one M-byte message in flight per
 * connection, sent whole, echoed whole, checked, then the next.  One
 * untimed round trip per connection first (every connection accepted and
 * its session running); then the clock starts, the threads go for the
 * given time, finish the round trip in flight, and check that no stray
 * byte follows.  Server CPU is read from the server process's CPU clock
 * (clock_getcpuclockid: user + system of all its threads) at the start and
 * the end of that window.  SIGTERM then stops the server, which closes
 * everything and reports its byte and connection counts; they must match
 * the client's.
 *
 * Reported per configuration and implementation (medians of the runs,
 * implementations alternating): round trips per second, server CPU ns per
 * round trip and its spread, the server's and the client's CPU use in CPUs,
 * axon's CPU per round trip against raw epoll's (target <= 1.1) and
 * against libuv's, and its round trips per second against libuv's (target
 * > 1).
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdalign.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "axon/fiber.h"
#include "axon/runtime.h"
#include "axon/stream.h"
#include "bench_net.h"

#ifdef AXON_HAVE_LIBUV
#include <uv.h>
#endif
#ifdef AXON_HAVE_URING_BENCH
#include <liburing.h>
#include <sys/mman.h>
#endif

#define MAX_CONFIGS 16
#define MAX_RUNS 51
#define MAX_THREADS 64 /* server threads and client threads; AX_MAX_CORES too */
#define CPU_TARGET 1.10 /* axon's server CPU per round trip, against raw epoll's */

enum impl { IMPL_EPOLL, IMPL_AXON, IMPL_FIBER, IMPL_LIBUV, IMPL_URING, IMPL_URECV, IMPL_COUNT };
static const char *const impl_names[IMPL_COUNT] = {"epoll", "axon",  "fiber",
                                                   "libuv", "uring", "urecv"};

/* What a server reports through its pipe when it exits. */
typedef struct srv_report {
  bench_echo_stats_t total;
  uint32_t threads;
  uint64_t accepted[MAX_THREADS]; /* per thread / core */
} srv_report_t;

/* ------------------------------------------------------------------------ */
/* Server threads (raw epoll, raw io_uring and libuv)                        */

/* One server thread: its loop, listener and counters.  Each thread writes
 * only its own; the main thread reads them after pthread_join. */
typedef struct srv_thread {
  alignas(64) bench_echo_stats_t st;
  int cpu;
  int lfd;     /* this thread's SO_REUSEPORT listener */
  int stop_fd; /* shared eventfd, readable once SIGTERM arrived (epoll, urecv) */
  pthread_t tid;
  char *buf; /* BENCH_READ_BUF bytes */
#ifdef AXON_HAVE_LIBUV
  uv_loop_t loop;
  uv_tcp_t listener;
  uv_async_t stop;
#endif
} srv_thread_t;

static void pin_self(int cpu) {
  if (cpu < 0)
    return;
  cpu_set_t one;
  CPU_ZERO(&one);
  CPU_SET(cpu, &one);
  int err = pthread_setaffinity_np(pthread_self(), sizeof one, &one);
  if (err != 0)
    bench_die("server: pthread_setaffinity_np: %s", strerror(err));
}

/* --- raw epoll: bench_net.h's server, one per thread ------------------- */

static void *ep_thread_main(void *arg) {
  srv_thread_t *t = arg;
  pin_self(t->cpu);
  bench_epoll_serve(t->lfd, t->stop_fd, t->buf, &t->st);
  BENCH_SYS(close(t->lfd));
  return NULL;
}

/* --- libuv -------------------------------------------------------------- */

#ifdef AXON_HAVE_LIBUV
typedef struct uvs_conn {
  uv_tcp_t tcp;
  uv_write_t req;
  char *pend; /* BENCH_READ_BUF bytes, allocated the first time a write blocks */
} uvs_conn_t;

static srv_thread_t *uvs_thread(const void *handle) {
  return ((const uv_handle_t *)handle)->loop->data;
}

static void uvs_conn_closed(uv_handle_t *h) {
  uvs_conn_t *c = AX_CONTAINER_OF(h, uvs_conn_t, tcp);
  free(c->pend);
  free(c);
}

/* A connection ended before the stop: an error, counted. */
static void uvs_conn_fail(uvs_conn_t *c) {
  if (uv_is_closing((uv_handle_t *)&c->tcp))
    return;
  uvs_thread(&c->tcp)->st.closed++;
  uv_close((uv_handle_t *)&c->tcp, uvs_conn_closed);
}

static void uvs_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  (void)suggested;
  *buf = uv_buf_init(uvs_thread(h)->buf, BENCH_READ_BUF);
}

static void uvs_read_done(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void uvs_write_done(uv_write_t *req, int status) {
  uvs_conn_t *c = AX_CONTAINER_OF(req, uvs_conn_t, req);
  if (status == UV_ECANCELED) /* closed by the stop */
    return;
  if (status < 0) {
    uvs_conn_fail(c);
    return;
  }
  BENCH_UV(uv_read_start((uv_stream_t *)&c->tcp, uvs_alloc, uvs_read_done));
}

static void uvs_read_done(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  uvs_conn_t *c = AX_CONTAINER_OF(s, uvs_conn_t, tcp);
  srv_thread_t *t = uvs_thread(s);
  if (nread < 0) { /* UV_EOF or an error */
    uvs_conn_fail(c);
    return;
  }
  if (nread == 0)
    return;
  t->st.bytes_in += (uint64_t)nread;
  uv_buf_t out = uv_buf_init(buf->base, (unsigned)nread);
  int w = uv_try_write(s, &out, 1);
  if (w == UV_EAGAIN) {
    w = 0;
  } else if (w < 0) {
    uvs_conn_fail(c);
    return;
  }
  t->st.bytes_out += (uint64_t)w;
  if (w < nread) {
    /* Queue the rest and stop reading until it is written, as the others. */
    if (c->pend == NULL && (c->pend = malloc(BENCH_READ_BUF)) == NULL)
      bench_die("server: out of memory");
    size_t rest = (size_t)(nread - w);
    memcpy(c->pend, buf->base + w, rest);
    out = uv_buf_init(c->pend, (unsigned)rest);
    BENCH_UV(uv_read_stop(s));
    BENCH_UV(uv_write(&c->req, s, &out, 1, uvs_write_done));
    t->st.bytes_out += rest; /* uvs_write_done reports failure by closing */
  }
}

static void uvs_accept(uv_stream_t *server, int status) {
  BENCH_UV(status);
  srv_thread_t *t = uvs_thread(server);
  uvs_conn_t *c = calloc(1, sizeof *c);
  if (c == NULL)
    bench_die("server: out of memory");
  BENCH_UV(uv_tcp_init(server->loop, &c->tcp));
  BENCH_UV(uv_accept(server, (uv_stream_t *)&c->tcp));
  BENCH_UV(uv_tcp_nodelay(&c->tcp, 1));
  t->st.accepted++;
  BENCH_UV(uv_read_start((uv_stream_t *)&c->tcp, uvs_alloc, uvs_read_done));
}

static void uvs_close_any(uv_handle_t *h, void *arg) {
  srv_thread_t *t = arg;
  if (uv_is_closing(h))
    return;
  if (h->type == UV_TCP && h != (uv_handle_t *)&t->listener)
    uv_close(h, uvs_conn_closed);
  else
    uv_close(h, NULL);
}

static void uvs_stop(uv_async_t *a) {
  uv_walk(a->loop, uvs_close_any, a->loop->data); /* uv_run returns once all are closed */
}

/* Prepares thread t's loop from the main thread, before the thread starts
 * (pthread_create orders these writes before everything the thread does). */
static void uvs_prepare(srv_thread_t *t) {
  BENCH_UV(uv_loop_init(&t->loop));
  t->loop.data = t;
  BENCH_UV(uv_async_init(&t->loop, &t->stop, uvs_stop));
  BENCH_UV(uv_tcp_init(&t->loop, &t->listener));
  BENCH_UV(uv_tcp_open(&t->listener, t->lfd)); /* the listener's close closes lfd */
  BENCH_UV(uv_listen((uv_stream_t *)&t->listener, 1024, uvs_accept));
}

static void *uvs_thread_main(void *arg) {
  srv_thread_t *t = arg;
  pin_self(t->cpu);
  BENCH_UV(uv_run(&t->loop, UV_RUN_DEFAULT));
  BENCH_UV(uv_loop_close(&t->loop)); /* UV_EBUSY if a handle was left */
  return NULL;
}
#endif /* AXON_HAVE_LIBUV */

/* --- raw io_uring: completion-based receive (urecv) ---------------------- */

#ifdef AXON_HAVE_URING_BENCH
#define UR_ENTRIES 1024         /* SQ entries; the CQ gets twice as many */
#define UR_BUFS 1024            /* provided buffers per thread, a power of two */
#define UR_BUF_SIZE (16 * 1024) /* a 16 KiB message fits one buffer: one recv CQE */
#define UR_BUFS_BYTES ((size_t)UR_BUFS * UR_BUF_SIZE)
#define UR_BGID 0               /* the buffer group of each thread's ring */
#define UR_NONE 0xffffu         /* no buffer: the end of a connection's queue */

/* user_data: a connection's address with the operation in its two low
 * bits, or one of the two thread-wide requests (never a valid address). */
enum { UR_RECV = 0, UR_SEND = 1, UR_TAGS = 3 };
#define UR_ACCEPT ((uint64_t)2)
#define UR_STOP ((uint64_t)3)

/* A connection: what it received and has not yet sent back is a FIFO of
 * buffer ids (linked through ur_thread_t.next), sent one request at a time
 * so that bytes leave in the order they came. */
typedef struct ur_conn {
  int fd;
  bool recv_armed, sending, dead, starved;
  uint16_t head, tail; /* the queue (UR_NONE: empty) */
  uint32_t head_off;   /* bytes of the head buffer already sent */
  struct ur_conn *next, *prev, *next_starved;
} ur_conn_t;

typedef struct ur_thread {
  struct io_uring ring;
  struct io_uring_buf_ring *br; /* UR_BUFS entries, page-aligned (mmap) */
  char *bufs;                   /* UR_BUFS * UR_BUF_SIZE bytes */
  uint32_t len[UR_BUFS];        /* bytes received into each buffer */
  uint16_t next[UR_BUFS];       /* each buffer's successor in its connection's queue */
  unsigned held;                /* buffers the kernel filled and we have not given back */
  int lfd;
  ur_conn_t *conns, *starved; /* every connection; those whose recv ran out of buffers */
  bench_echo_stats_t *st;
} ur_thread_t;

/* A ring with the cheapest task-work mode the kernel accepts: with
 * DEFER_TASKRUN completions run only inside this thread's io_uring_enter
 * (no interrupting task work), which SINGLE_ISSUER allows; then fewer
 * flags.  Returns 0 or -errno. */
static int ur_ring_init(struct io_uring *ring) {
  static const unsigned tries[] = {
      IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_COOP_TASKRUN | IORING_SETUP_DEFER_TASKRUN,
      IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_COOP_TASKRUN, IORING_SETUP_COOP_TASKRUN, 0};
  int err = -EINVAL;
  for (size_t i = 0; i < sizeof tries / sizeof tries[0] && err == -EINVAL; i++) {
    struct io_uring_params p = {.flags = tries[i]};
    err = io_uring_queue_init_params(UR_ENTRIES, ring, &p);
  }
  return err;
}

/* The ring and its (still empty) provided-buffer ring.  Returns 0 or
 * -errno, having undone what it did. */
static int ur_setup(ur_thread_t *u) {
  int err = ur_ring_init(&u->ring);
  if (err < 0)
    return err;
  void *br = mmap(NULL, UR_BUFS * sizeof(struct io_uring_buf), PROT_READ | PROT_WRITE,
                  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  struct io_uring_buf_reg reg = {
      .ring_addr = (uintptr_t)br, .ring_entries = UR_BUFS, .bgid = UR_BGID};
  err = br == MAP_FAILED ? -errno : io_uring_register_buf_ring(&u->ring, &reg, 0);
  if (err < 0) {
    if (br != MAP_FAILED)
      munmap(br, UR_BUFS * sizeof(struct io_uring_buf));
    io_uring_queue_exit(&u->ring);
    return err;
  }
  u->br = br;
  io_uring_buf_ring_init(u->br);
  (void)io_uring_register_ring_fd(&u->ring); /* saves a file lookup per enter; optional */
  return 0;
}

/* Exiting the ring cancels its requests; the buffer ring goes after it. */
static void ur_teardown(ur_thread_t *u) {
  io_uring_queue_exit(&u->ring);
  BENCH_SYS(munmap(u->br, UR_BUFS * sizeof(struct io_uring_buf)));
}

/* Whether this kernel gives us what urecv needs: 0 or -errno. */
static int ur_probe(void) {
  ur_thread_t *u = calloc(1, sizeof *u);
  if (u == NULL)
    bench_die("out of memory");
  int err = ur_setup(u);
  if (err == 0)
    ur_teardown(u);
  free(u);
  return err;
}

static char *ur_buf(ur_thread_t *u, unsigned bid) {
  return u->bufs + (size_t)bid * UR_BUF_SIZE;
}

/* Hands buffer bid back to the kernel. */
static void ur_give_back(ur_thread_t *u, unsigned bid) {
  io_uring_buf_ring_add(u->br, ur_buf(u, bid), UR_BUF_SIZE, (unsigned short)bid,
                        io_uring_buf_ring_mask(UR_BUFS), 0);
  io_uring_buf_ring_advance(u->br, 1);
  u->held--;
}

static struct io_uring_sqe *ur_sqe(ur_thread_t *u) {
  struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);
  if (sqe == NULL) { /* the SQ is full: submit what is there and take a fresh one */
    int r = io_uring_submit(&u->ring);
    if (r < 0)
      bench_die("server: io_uring_submit: %s", strerror(-r));
    sqe = io_uring_get_sqe(&u->ring);
  }
  return sqe;
}

static void ur_arm_accept(ur_thread_t *u) {
  struct io_uring_sqe *sqe = ur_sqe(u);
  io_uring_prep_multishot_accept(sqe, u->lfd, NULL, NULL, SOCK_CLOEXEC);
  io_uring_sqe_set_data64(sqe, UR_ACCEPT);
}

/* One multishot recv: a CQE per chunk, each in a buffer the kernel picks
 * from the ring, until the kernel ends it (no IORING_CQE_F_MORE). */
static void ur_arm_recv(ur_thread_t *u, ur_conn_t *c) {
  struct io_uring_sqe *sqe = ur_sqe(u);
  io_uring_prep_recv_multishot(sqe, c->fd, NULL, 0, 0);
  sqe->flags |= IOSQE_BUFFER_SELECT;
  sqe->buf_group = UR_BGID;
  io_uring_sqe_set_data64(sqe, (uintptr_t)c | UR_RECV);
  c->recv_armed = true;
}

/* Sends the rest of the head buffer through the ring, which waits for
 * room in the socket itself. */
static void ur_send_head(ur_thread_t *u, ur_conn_t *c) {
  struct io_uring_sqe *sqe = ur_sqe(u);
  io_uring_prep_send(sqe, c->fd, ur_buf(u, c->head) + c->head_off,
                     u->len[c->head] - c->head_off, MSG_NOSIGNAL);
  io_uring_sqe_set_data64(sqe, (uintptr_t)c | UR_SEND);
  c->sending = true;
}

static void ur_push(ur_thread_t *u, ur_conn_t *c, unsigned bid, uint32_t len) {
  u->len[bid] = len;
  u->next[bid] = UR_NONE;
  if (c->tail == UR_NONE)
    c->head = (uint16_t)bid;
  else
    u->next[c->tail] = (uint16_t)bid;
  c->tail = (uint16_t)bid;
}

/* The head buffer is all sent: drop it from the queue, back to the kernel. */
static void ur_pop(ur_thread_t *u, ur_conn_t *c) {
  unsigned bid = c->head;
  c->head = u->next[bid];
  if (c->head == UR_NONE)
    c->tail = UR_NONE;
  c->head_off = 0;
  ur_give_back(u, bid);
}

/* Frees a dead connection once no request of its own is left. */
static void ur_maybe_free(ur_thread_t *u, ur_conn_t *c) {
  if (!c->dead || c->recv_armed || c->sending || c->starved)
    return;
  while (c->head != UR_NONE)
    ur_pop(u, c);
  if (c->prev != NULL)
    c->prev->next = c->next;
  else
    u->conns = c->next;
  if (c->next != NULL)
    c->next->prev = c->prev;
  BENCH_SYS(close(c->fd));
  free(c);
}

/* Ends a connection before the stop (an error or EOF, counted).  Its recv,
 * if still armed, ends on the shutdown. */
static void ur_kill(ur_thread_t *u, ur_conn_t *c) {
  c->dead = true;
  u->st->closed++;
  if (c->recv_armed)
    shutdown(c->fd, SHUT_RDWR);
  ur_maybe_free(u, c);
}

/* Echoes the queue's head, one send in flight at most.  Through the ring
 * rather than a direct send() first (then the ring for a short send's
 * rest): the request goes out in the io_uring_enter that also waits, one
 * syscall for the round trip instead of two, and the sends of a batch of
 * completions share it.  On a 2-CPU VM (kernel 6.18, -r 5 -t 1, two runs
 * of each, before the buffers were on huge pages) send() first cost
 * 1.17-1.78x raw epoll's server CPU per round trip at 1 connection, the
 * ring 0.97-1.06x; at 100 and 1000 connections the ring was as cheap or
 * cheaper too (e.g. 0.66-0.80x against 0.73-0.83x at 1000 x 64 B). */
static void ur_flush(ur_thread_t *u, ur_conn_t *c) {
  if (c->head != UR_NONE)
    ur_send_head(u, c);
}

static void ur_on_accept(ur_thread_t *u, const struct io_uring_cqe *cqe) {
  if (cqe->res >= 0) {
    ur_conn_t *c = calloc(1, sizeof *c);
    if (c == NULL)
      bench_die("server: out of memory");
    int one = 1;
    BENCH_SYS(setsockopt(cqe->res, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one));
    *c = (ur_conn_t){.fd = cqe->res, .head = UR_NONE, .tail = UR_NONE, .next = u->conns};
    if (u->conns != NULL)
      u->conns->prev = c;
    u->conns = c;
    u->st->accepted++;
    ur_arm_recv(u, c);
  } else if (cqe->res != -EINTR && cqe->res != -ECONNABORTED) {
    bench_die("server: io_uring accept: %s", strerror(-cqe->res));
  }
  if (!(cqe->flags & IORING_CQE_F_MORE))
    ur_arm_accept(u);
}

static void ur_on_recv(ur_thread_t *u, ur_conn_t *c, const struct io_uring_cqe *cqe) {
  if (cqe->flags & IORING_CQE_F_BUFFER) {
    unsigned bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
    u->held++;
    if (cqe->res <= 0) {
      ur_give_back(u, bid);
    } else {
      u->st->bytes_in += (uint64_t)cqe->res;
      ur_push(u, c, bid, (uint32_t)cqe->res);
      if (!c->sending && !c->dead)
        ur_flush(u, c);
    }
  }
  if (cqe->flags & IORING_CQE_F_MORE)
    return;
  c->recv_armed = false;
  if (c->dead) {
    ur_maybe_free(u, c);
  } else if (cqe->res > 0) {
    ur_arm_recv(u, c); /* the kernel ended it (fairness, a full CQ): re-arm */
  } else if (cqe->res == -ENOBUFS) {
    c->starved = true; /* re-armed once buffers come back: ur_rearm_starved */
    c->next_starved = u->starved;
    u->starved = c;
  } else {
    ur_kill(u, c); /* EOF or an error */
  }
}

static void ur_on_send(ur_thread_t *u, ur_conn_t *c, int res) {
  c->sending = false;
  if (res < 0 || c->dead) {
    if (!c->dead)
      ur_kill(u, c);
    ur_maybe_free(u, c);
    return;
  }
  u->st->bytes_out += (uint64_t)res;
  c->head_off += (uint32_t)res;
  if (c->head_off == u->len[c->head])
    ur_pop(u, c);
  ur_flush(u, c); /* a short send's rest, or what came in meanwhile */
}

/* Re-arms the recvs that found no buffer, once the kernel has some again
 * (buffers come back as their bytes are sent, so this cannot wait forever). */
static void ur_rearm_starved(ur_thread_t *u) {
  if (u->starved == NULL || u->held >= UR_BUFS)
    return;
  ur_conn_t *c = u->starved;
  u->starved = NULL;
  for (ur_conn_t *next; c != NULL; c = next) {
    next = c->next_starved;
    c->starved = false;
    if (c->dead)
      ur_maybe_free(u, c);
    else
      ur_arm_recv(u, c);
  }
}

/* Handles the completions there are; false once the stop came. */
static bool ur_reap(ur_thread_t *u) {
  bool running = true;
  unsigned head, seen = 0;
  struct io_uring_cqe *cqe;
  io_uring_for_each_cqe(&u->ring, head, cqe) {
    uint64_t ud = io_uring_cqe_get_data64(cqe);
    ur_conn_t *c = (ur_conn_t *)(uintptr_t)(ud & ~(uint64_t)UR_TAGS);
    if (ud == UR_STOP)
      running = false;
    else if (ud == UR_ACCEPT)
      ur_on_accept(u, cqe);
    else if ((ud & UR_TAGS) == UR_RECV)
      ur_on_recv(u, c, cqe);
    else
      ur_on_send(u, c, cqe->res);
    seen++;
  }
  io_uring_cq_advance(&u->ring, seen);
  return running;
}

/* Fills the buffer ring and arms the listener and the stop.  The kernel
 * takes buffers in ring order, so each chunk lands in the next of 1024
 * buffers, 16 MiB round: on 4 KiB pages nearly every recv and send missed
 * the TLB (1.25-1.5x epoll's CPU per round trip at 1 connection, 0.93-1.04x
 * with huge pages).  Where THP is off this is plain memory. */
static void ur_start(ur_thread_t *u, int stop_fd) {
  void *bufs = mmap(NULL, UR_BUFS_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                    -1, 0);
  if (bufs == MAP_FAILED)
    bench_die("server: out of memory");
  (void)madvise(bufs, UR_BUFS_BYTES, MADV_HUGEPAGE);
  u->bufs = bufs;
  for (unsigned bid = 0; bid < UR_BUFS; bid++)
    io_uring_buf_ring_add(u->br, ur_buf(u, bid), UR_BUF_SIZE, (unsigned short)bid,
                          io_uring_buf_ring_mask(UR_BUFS), (int)bid);
  io_uring_buf_ring_advance(u->br, UR_BUFS);
  ur_arm_accept(u);
  struct io_uring_sqe *sqe = ur_sqe(u);
  io_uring_prep_poll_add(sqe, stop_fd, POLLIN); /* not read: it stops every thread */
  io_uring_sqe_set_data64(sqe, UR_STOP);
}

/* The ring exits first (cancelling every request), then the sockets close. */
static void ur_finish(ur_thread_t *u) {
  ur_teardown(u);
  while (u->conns != NULL) {
    ur_conn_t *c = u->conns;
    u->conns = c->next;
    BENCH_SYS(close(c->fd));
    free(c);
  }
  BENCH_SYS(munmap(u->bufs, UR_BUFS_BYTES));
}

static void *ur_thread_main(void *arg) {
  srv_thread_t *t = arg;
  pin_self(t->cpu);
  ur_thread_t *u = calloc(1, sizeof *u);
  if (u == NULL)
    bench_die("server: out of memory");
  int err = ur_setup(u); /* here: the ring's single issuer is this thread */
  if (err < 0)
    bench_die("server: io_uring setup: %s", strerror(-err));
  u->lfd = t->lfd;
  u->st = &t->st;
  ur_start(u, t->stop_fd);
  bool running = true;
  while (running) {
    int r = io_uring_submit_and_wait(&u->ring, 1);
    if (r < 0 && r != -EINTR)
      bench_die("server: io_uring_submit_and_wait: %s", strerror(-r));
    running = ur_reap(u);
    ur_rearm_starved(u);
  }
  ur_finish(u);
  free(u);
  BENCH_SYS(close(t->lfd));
  return NULL;
}
#endif /* AXON_HAVE_URING_BENCH */

/* Adds one thread's (or core's) counts to the report. */
static void add_stats(srv_report_t *rep, int i, const bench_echo_stats_t *st) {
  rep->total.bytes_in += st->bytes_in;
  rep->total.bytes_out += st->bytes_out;
  rep->total.accepted += st->accepted;
  rep->total.closed += st->closed;
  rep->accepted[i] = st->accepted;
  rep->threads = (uint32_t)i + 1;
}

/* Runs the epoll, urecv or libuv server: one listener and thread per core, until
 * SIGTERM; then stops the threads and sums their counts into *rep. */
static void serve_threads(enum impl impl, int pipe_fd, const int *cpus, int n,
                          srv_report_t *rep) {
  sigset_t term;
  sigemptyset(&term);
  sigaddset(&term, SIGTERM);
  BENCH_SYS(sigprocmask(SIG_BLOCK, &term, NULL)); /* the threads inherit this */
  srv_thread_t *ts = aligned_alloc(64, sizeof *ts * (size_t)n);
  if (ts == NULL)
    bench_die("server: out of memory");
  memset(ts, 0, sizeof *ts * (size_t)n);
  int stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  BENCH_SYS(stop_fd);
  uint16_t port = 0;
  for (int i = 0; i < n; i++) {
    srv_thread_t *t = &ts[i];
    t->cpu = cpus[i];
    t->stop_fd = stop_fd;
    t->lfd = bench_listen(port, true, &port); /* the first picks the port, the others join */
    if ((t->buf = malloc(BENCH_READ_BUF)) == NULL)
      bench_die("server: out of memory");
#ifdef AXON_HAVE_LIBUV
    if (impl == IMPL_LIBUV)
      uvs_prepare(t);
#endif
  }
  void *(*main_fn)(void *) = ep_thread_main;
#ifdef AXON_HAVE_URING_BENCH
  if (impl == IMPL_URECV)
    main_fn = ur_thread_main;
#endif
#ifdef AXON_HAVE_LIBUV
  if (impl == IMPL_LIBUV)
    main_fn = uvs_thread_main;
#endif
  for (int i = 0; i < n; i++) {
    int err = pthread_create(&ts[i].tid, NULL, main_fn, &ts[i]);
    if (err != 0)
      bench_die("server: pthread_create: %s", strerror(err));
  }
  bench_write_all(pipe_fd, &port, sizeof port);

  int sig;
  do {
    errno = sigwait(&term, &sig);
  } while (errno == EINTR);
  if (errno != 0)
    bench_die("server: sigwait: %s", strerror(errno));
  if (impl != IMPL_LIBUV) {
    BENCH_SYS(eventfd_write(stop_fd, 1));
  } else {
#ifdef AXON_HAVE_LIBUV
    for (int i = 0; i < n; i++)
      BENCH_UV(uv_async_send(&ts[i].stop));
#endif
  }
  for (int i = 0; i < n; i++) {
    int err = pthread_join(ts[i].tid, NULL);
    if (err != 0)
      bench_die("server: pthread_join: %s", strerror(err));
    add_stats(rep, i, &ts[i].st);
    free(ts[i].buf);
  }
  BENCH_SYS(close(stop_fd));
  free(ts);
}

/* ------------------------------------------------------------------------ */
/* axon server: ax_tcp_serve                                                 */

/* Each core's counts, written only by the sessions on that core and read
 * after ax_rt_join (which orders the core threads' writes before it). */
typedef struct ax_core_count {
  alignas(64) bench_echo_stats_t st;
} ax_core_count_t;

static ax_core_count_t ax_counts[AX_MAX_CORES];

static int ax_session(ax_actor_t *self, const ax_msg_t *m) {
  bench_echo_stats_t *st = &ax_counts[ax_core(self)].st;
  switch (m->type) {
  case AX_MSG_GIVEN:
    st->accepted++;
    return 0;
  case AX_MSG_DATA: {
    const ax_data_t *d = m->data;
    st->bytes_in += d->len;
    if (ax_stream_write(d->stream, d->bytes, d->len) < 0) {
      st->closed++; /* the stream ended; -ENOBUFS cannot happen in ping-pong */
      return AX_STOP;
    }
    st->bytes_out += d->len;
    return 0;
  }
  case AX_MSG_CLOSED: /* before SIGTERM: the client never closes first */
    st->closed++;
    return AX_STOP;
  default:
    return 0;
  }
}

/* The fiber server: ax_tcp_serve's fiber sessions (opts.fiber), each of
 * which echoes with blocking-style calls. */
static int fiber_session(ax_actor_t *self, void *arg) {
  (void)arg;
  bench_echo_stats_t *st = &ax_counts[ax_core(self)].st;
  const ax_msg_t *m;
  if (ax_recv_type(self, AX_MSG_GIVEN, AX_FOREVER, &m) < 0)
    return 0;
  ax_stream_t *s = ((const ax_stream_ev_t *)m->data)->stream;
  st->accepted++;
  static _Thread_local unsigned char buf[65536];
  for (;;) {
    ssize_t n = ax_stream_read(s, buf, sizeof buf, AX_FOREVER);
    if (n == -ECANCELED)
      return 0; /* SIGTERM: the runtime stops */
    if (n <= 0 || ax_stream_write(s, buf, (size_t)n) < 0) {
      st->closed++; /* before SIGTERM: the client never closes first */
      return 0;
    }
    st->bytes_in += (uint64_t)n;
    st->bytes_out += (uint64_t)n;
  }
}

static void serve_axon(int pipe_fd, int n, bool fibers, ax_backend_t backend, srv_report_t *rep) {
  ax_rt_t *rt;
  /* Core i is pinned to the i-th CPU of the affinity mask, which
   * server_main narrowed to the server's CPUs.  SIGTERM stops it. */
  ax_rt_opts_t ro = {.cores = (unsigned)n, .flags = AX_RT_KEEP_ALIVE, .backend = backend};
  BENCH_AX(ax_rt_new(&ro, &rt));
  BENCH_AX(ax_rt_start(rt));
  ax_serve_opts_t so = {.stream = {.flags = AX_STREAM_NODELAY},
                       .fiber = fibers ? fiber_session : NULL};
  ax_server_t *srv;
  BENCH_AX(ax_tcp_serve(rt, "127.0.0.1:0", fibers ? NULL : ax_session, &so, &srv));
  int port = ax_server_port(srv);
  BENCH_AX(port);
  uint16_t p16 = (uint16_t)port;
  bench_write_all(pipe_fd, &p16, sizeof p16);
  BENCH_AX(ax_rt_join(rt));
  BENCH_AX(ax_server_close(srv));
  BENCH_AX(ax_rt_free(rt));
  for (int i = 0; i < n; i++)
    add_stats(rep, i, &ax_counts[i].st);
}

static pid_t client_pid; /* the parent, set before the first fork */

/* Runs in the forked child: narrow the CPUs, serve until SIGTERM, report,
 * exit. */
_Noreturn static void server_main(enum impl impl, int pipe_fd, const int *cpus, int n) {
  if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != client_pid)
    _exit(1); /* no server may outlive a client that died */
  cpu_set_t set;
  CPU_ZERO(&set);
  for (int i = 0; i < n; i++)
    CPU_SET(cpus[i], &set);
  BENCH_SYS(sched_setaffinity(0, sizeof set, &set));
  signal(SIGPIPE, SIG_IGN); /* a peer that vanishes is an error return, not a kill */
  srv_report_t rep = {0};
  if (impl == IMPL_AXON || impl == IMPL_FIBER || impl == IMPL_URING)
    serve_axon(pipe_fd, n, impl == IMPL_FIBER,
               impl == IMPL_URING ? AX_BACKEND_IO_URING : AX_BACKEND_EPOLL, &rep);
  else
    serve_threads(impl, pipe_fd, cpus, n, &rep);
  bench_write_all(pipe_fd, &rep, sizeof rep);
  _exit(0);
}

/* ------------------------------------------------------------------------ */
/* Client                                                                    */

typedef struct bench_opts {
  int srv_cpus[MAX_THREADS]; /* server thread i runs on srv_cpus[i] */
  int srv_threads;
  int cli_threads;
  double seconds;
  bool verify, verbose;
} bench_opts_t;

/* One client thread: a slice of the connections over its own epoll. */
typedef struct cli_thread {
  const bench_pp_t *pp;
  bench_pp_conn_t *cs;
  int n, epfd;
  pthread_barrier_t *ready; /* warm-up done / clock started: two waits */
  const int64_t *deadline;  /* written by the main thread between the two waits */
  uint64_t warm, round_trips;
  pthread_t tid;
} cli_thread_t;

static void barrier_wait(pthread_barrier_t *b) {
  int rc = pthread_barrier_wait(b);
  if (rc != 0 && rc != PTHREAD_BARRIER_SERIAL_THREAD)
    bench_die("pthread_barrier_wait: %s", strerror(rc));
}

static void *cli_main(void *arg) {
  cli_thread_t *t = arg;
  t->warm = bench_pp_run(t->pp, t->epfd, t->cs, t->n, 0); /* one untimed round trip each */
  barrier_wait(t->ready);
  barrier_wait(t->ready); /* the barrier orders the main thread's *deadline before this */
  t->round_trips = bench_pp_run(t->pp, t->epfd, t->cs, t->n, *t->deadline);
  bench_pp_check_quiet(t->pp, t->cs, t->n);
  return NULL;
}

typedef struct run_result {
  double rt_per_sec, srv_ns_per_rt, srv_cpus, cli_cpus;
} run_result_t;

static unsigned char *pattern; /* the largest message + BENCH_PATTERN_SHIFTS bytes */

/* One run: fork the server, drive it, stop it, measure it. */
static run_result_t run_once(enum impl impl, int conns, size_t msg, const bench_opts_t *o) {
  int pfd[2];
  BENCH_SYS(pipe2(pfd, O_CLOEXEC));
  fflush(stdout);
  fflush(stderr);
  pid_t pid = fork();
  BENCH_SYS(pid);
  if (pid == 0) {
    close(pfd[0]);
    server_main(impl, pfd[1], o->srv_cpus, o->srv_threads);
  }
  BENCH_SYS(close(pfd[1]));
  clockid_t srv_clock;
  int err = clock_getcpuclockid(pid, &srv_clock);
  if (err != 0)
    bench_die("clock_getcpuclockid: %s", strerror(err));
  uint16_t port;
  bench_read_exact(pfd[0], &port, sizeof port, "port");

  const bench_pp_t pp = {
      .pattern = pattern, .msg = msg, .verify = o->verify, .server = impl_names[impl]};
  int nthreads = o->cli_threads < conns ? o->cli_threads : conns;
  bench_pp_conn_t *cs = calloc((size_t)conns, sizeof *cs);
  unsigned char *rbufs = malloc((size_t)conns * msg);
  cli_thread_t *ts = calloc((size_t)nthreads, sizeof *ts);
  if (cs == NULL || rbufs == NULL || ts == NULL)
    bench_die("client: out of memory");
  pthread_barrier_t ready;
  int64_t deadline = 0;
  if ((err = pthread_barrier_init(&ready, NULL, (unsigned)nthreads + 1)) != 0)
    bench_die("pthread_barrier_init: %s", strerror(err));
  for (int k = 0, first = 0; k < nthreads; k++) {
    int end = (int)((int64_t)conns * (k + 1) / nthreads);
    cli_thread_t *t = &ts[k];
    *t = (cli_thread_t){.pp = &pp, .cs = cs + first, .n = end - first, .ready = &ready,
                        .deadline = &deadline};
    t->epfd = epoll_create1(EPOLL_CLOEXEC);
    BENCH_SYS(t->epfd);
    for (int i = first; i < end; i++)
      bench_pp_open(&cs[i], i, port, t->epfd, rbufs + (size_t)i * msg);
    first = end;
  }
  for (int k = 0; k < nthreads; k++)
    if ((err = pthread_create(&ts[k].tid, NULL, cli_main, &ts[k])) != 0)
      bench_die("client: pthread_create: %s", strerror(err));

  barrier_wait(&ready); /* every connection has made one round trip */
  int64_t t0 = bench_clock_ns(CLOCK_MONOTONIC);
  int64_t s0 = bench_clock_ns(srv_clock), c0 = bench_clock_ns(CLOCK_PROCESS_CPUTIME_ID);
  deadline = t0 + (int64_t)(o->seconds * 1e9);
  barrier_wait(&ready);
  uint64_t warm = 0, round_trips = 0;
  for (int k = 0; k < nthreads; k++) {
    if ((err = pthread_join(ts[k].tid, NULL)) != 0)
      bench_die("client: pthread_join: %s", strerror(err));
    warm += ts[k].warm;
    round_trips += ts[k].round_trips;
  }
  int64_t t1 = bench_clock_ns(CLOCK_MONOTONIC);
  int64_t s1 = bench_clock_ns(srv_clock), c1 = bench_clock_ns(CLOCK_PROCESS_CPUTIME_ID);

  BENCH_SYS(kill(pid, SIGTERM));
  int status;
  pid_t w;
  while ((w = waitpid(pid, &status, 0)) < 0 && errno == EINTR) {
  }
  BENCH_SYS(w);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    bench_die("%s server did not exit cleanly (status 0x%x)", impl_names[impl], status);
  srv_report_t rep;
  bench_read_exact(pfd[0], &rep, sizeof rep, "report");
  BENCH_SYS(close(pfd[0]));

  uint64_t bytes = (warm + round_trips) * msg;
  const bench_echo_stats_t *st = &rep.total;
  if (warm != (uint64_t)conns || st->accepted != (uint64_t)conns || st->closed != 0 ||
      st->bytes_in != bytes || st->bytes_out != bytes)
    bench_die("%s server: accepted %llu of %d, closed %llu early, echoed %llu/%llu of %llu bytes",
              impl_names[impl], (unsigned long long)st->accepted, conns,
              (unsigned long long)st->closed, (unsigned long long)st->bytes_in,
              (unsigned long long)st->bytes_out, (unsigned long long)bytes);
  if (round_trips == 0)
    bench_die("%s: no round trip completed", impl_names[impl]);

  for (int i = 0; i < conns; i++)
    BENCH_SYS(close(cs[i].fd));
  for (int k = 0; k < nthreads; k++)
    BENCH_SYS(close(ts[k].epfd));
  pthread_barrier_destroy(&ready);
  free(ts);
  free(rbufs);
  free(cs);

  double wall = (double)(t1 - t0);
  run_result_t r = {
      .rt_per_sec = (double)round_trips / (wall / 1e9),
      .srv_ns_per_rt = (double)(s1 - s0) / (double)round_trips,
      .srv_cpus = (double)(s1 - s0) / wall,
      .cli_cpus = (double)(c1 - c0) / wall,
  };
  if (o->verbose) {
    printf("  run: %-5s %11.0f rt/s %9.0f srv ns/rt  srv %.2f cli %.2f CPUs  connections/thread:",
           impl_names[impl], r.rt_per_sec, r.srv_ns_per_rt, r.srv_cpus, r.cli_cpus);
    for (uint32_t i = 0; i < rep.threads && i < MAX_THREADS; i++)
      printf(" %llu", (unsigned long long)rep.accepted[i]);
    printf("\n");
  }
  return r;
}

/* ------------------------------------------------------------------------ */
/* Driver                                                                    */

/* The median of each field over n runs; *spread = (max - min) / median of
 * the server CPU per round trip. */
static run_result_t median_of(const run_result_t *rs, int n, double *spread) {
  double v[4][MAX_RUNS];
  for (int i = 0; i < n; i++) {
    v[0][i] = rs[i].rt_per_sec;
    v[1][i] = rs[i].srv_ns_per_rt;
    v[2][i] = rs[i].srv_cpus;
    v[3][i] = rs[i].cli_cpus;
  }
  run_result_t m = {bench_median(v[0], n), bench_median(v[1], n), bench_median(v[2], n),
                    bench_median(v[3], n)};
  *spread = (v[1][n - 1] - v[1][0]) / m.srv_ns_per_rt * 100; /* v[1] is sorted now */
  return m;
}

static void usage(void) {
  fputs("usage: bench_tcp [--quick] [-c LIST] [-m LIST] [-n CORES] [-T THREADS] [-t SECONDS]\n"
        "                 [-r RUNS] [-i LIST] [--verify] [-v]\n",
        stderr);
  exit(2);
}

/* Server thread i runs on the i-th CPU of the affinity mask (round robin
 * past the last).  The client runs on the CPUs left over, or on all of them
 * when the server takes every one.  Returns the client's CPU count. */
static int place(bench_opts_t *o, int srv_threads, bool *shared) {
  cpu_set_t mask, cli;
  BENCH_SYS(sched_getaffinity(0, sizeof mask, &mask));
  int cpus[CPU_SETSIZE], ncpu = 0;
  for (int cpu = 0; cpu < CPU_SETSIZE; cpu++)
    if (CPU_ISSET(cpu, &mask))
      cpus[ncpu++] = cpu;
  if (srv_threads <= 0)
    srv_threads = ncpu < MAX_THREADS ? ncpu : MAX_THREADS;
  o->srv_threads = srv_threads;
  cli = mask;
  for (int i = 0; i < srv_threads; i++) {
    o->srv_cpus[i] = cpus[i % ncpu];
    CPU_CLR(o->srv_cpus[i], &cli);
  }
  *shared = CPU_COUNT(&cli) == 0;
  if (*shared)
    return ncpu;
  BENCH_SYS(sched_setaffinity(0, sizeof cli, &cli)); /* client threads inherit it */
  return CPU_COUNT(&cli);
}

/* Raises the soft fd limit to the hard one; returns the limit. */
static long raise_nofile(void) {
  struct rlimit rl;
  BENCH_SYS(getrlimit(RLIMIT_NOFILE, &rl));
  if (rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    BENCH_SYS(setrlimit(RLIMIT_NOFILE, &rl));
  }
  return rl.rlim_cur == RLIM_INFINITY ? 1L << 20 : (long)rl.rlim_cur;
}

int main(int argc, char **argv) {
  long conns[MAX_CONFIGS] = {1, 10, 100, 1000}, sizes[MAX_CONFIGS] = {64, 16384};
  int nconns = 4, nsizes = 2;
  long runs = 3, srv_threads = 0, cli_threads = 0;
  bool quick = false, conns_set = false, runs_set = false, secs_set = false;
  bench_opts_t o = {.seconds = 2};
  bool use[IMPL_COUNT] = {true, true, true, true, true, true};
#ifndef AXON_HAVE_LIBUV
  use[IMPL_LIBUV] = false;
#endif
#ifndef AXON_HAVE_URING_BENCH
  use[IMPL_URECV] = false;
#endif
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    bool has_val = i + 1 < argc;
    if (strcmp(a, "--quick") == 0) {
      quick = true;
    } else if (strcmp(a, "--verify") == 0) {
      o.verify = true;
    } else if (strcmp(a, "-v") == 0) {
      o.verbose = true;
    } else if (strcmp(a, "-c") == 0 && has_val) {
      nconns = bench_parse_list(argv[++i], conns, MAX_CONFIGS, "-c");
      conns_set = true;
    } else if (strcmp(a, "-m") == 0 && has_val) {
      nsizes = bench_parse_list(argv[++i], sizes, MAX_CONFIGS, "-m");
    } else if (strcmp(a, "-n") == 0 && has_val) {
      srv_threads = bench_parse_count(argv[++i], "-n");
    } else if (strcmp(a, "-T") == 0 && has_val) {
      cli_threads = bench_parse_count(argv[++i], "-T");
    } else if (strcmp(a, "-r") == 0 && has_val) {
      runs = bench_parse_count(argv[++i], "-r");
      runs_set = true;
    } else if (strcmp(a, "-t") == 0 && has_val) {
      char *end;
      o.seconds = strtod(argv[++i], &end);
      if (*end != '\0' || !(o.seconds > 0 && o.seconds < 3600))
        bench_die("-t: not a duration in seconds: '%s'", argv[i]);
      secs_set = true;
    } else if (strcmp(a, "-i") == 0 && has_val) {
      bench_parse_names(argv[++i], impl_names, use, IMPL_COUNT, "-i");
    } else {
      usage();
    }
  }
  if (quick) {
    if (!conns_set) {
      long q[] = {1, 100, 1000};
      memcpy(conns, q, sizeof q);
      nconns = 3;
    }
    if (!secs_set)
      o.seconds = 0.2;
    if (!runs_set)
      runs = 1;
    o.verify = true;
  }
  if (runs > MAX_RUNS)
    bench_die("-r: at most %d", MAX_RUNS);
  if (srv_threads > MAX_THREADS || cli_threads > MAX_THREADS)
    bench_die("-n, -T: at most %d", MAX_THREADS);
  long max_msg = 0;
  for (int i = 0; i < nsizes; i++)
    max_msg = sizes[i] > max_msg ? sizes[i] : max_msg;
  if (max_msg > 64L * 1024 * 1024)
    bench_die("-m: at most 64 MiB");
  pattern = bench_pattern_new((size_t)max_msg, 0x74637065);
  signal(SIGPIPE, SIG_IGN);
  client_pid = getpid();
  long nofile = raise_nofile();
  if (use[IMPL_URING]) { /* a refused io_uring would fall back to epoll: no row then */
    ax_loop_opts_t lo = {.backend = AX_BACKEND_IO_URING};
    ax_loop_t *loop;
    BENCH_AX(ax_loop_new(&lo, &loop));
    if (strcmp(ax_loop_backend(loop), "io_uring") != 0) {
      printf("io_uring backend unavailable here: no uring rows\n");
      use[IMPL_URING] = false;
    }
    BENCH_AX(ax_loop_close(loop, 0));
  }
#ifdef AXON_HAVE_URING_BENCH
  int ur_err;
  if (use[IMPL_URECV] && (ur_err = ur_probe()) < 0) {
    printf("io_uring with a provided buffer ring unavailable here (%s): no urecv rows\n",
           strerror(-ur_err));
    use[IMPL_URECV] = false;
  }
#endif
  bool shared;
  int cli_cpus = place(&o, (int)srv_threads, &shared);
  o.cli_threads = cli_threads > 0 ? (int)cli_threads : cli_cpus;

  printf("bench_tcp: %.2f s per run, median of %ld run%s%s, content check: %s\n", o.seconds, runs,
         runs == 1 ? "" : "s", quick ? " (--quick)" : "",
         o.verify ? "every byte" : "length + first/last 8 bytes");
  printf("server: %d thread%s/cores on CPUs", o.srv_threads, o.srv_threads == 1 ? "" : "s");
  for (int i = 0; i < o.srv_threads; i++)
    printf("%s%d", i == 0 ? " " : ",", o.srv_cpus[i]);
  printf("; client: %d thread%s, %s\n", o.cli_threads, o.cli_threads == 1 ? "" : "s",
         shared ? "sharing those CPUs (not pinned)" : "on the other CPUs");
  printf("axon %s", ax_version_string());
#ifdef AXON_HAVE_LIBUV
  printf(", libuv %s\n", uv_version_string());
#else
  printf("; libuv not found at build time: no libuv rows\n");
#endif
  printf("srv ns/rt = server CPU (user+sys of all its threads) per round trip; spread = its\n"
         "(max-min)/median over the runs; srv/cli CPUs = CPU time per wall time of the server\n"
         "and of the client; cpu/epoll, cpu/libuv = srv ns/rt ratios; rt/libuv = rt/s ratio\n\n");
  printf("%6s %7s  %-6s %10s %10s %7s %5s %5s %9s %9s %9s\n", "conns", "msg", "impl", "rt/s",
         "srv ns/rt", "spread", "srv", "cli", "cpu/epoll", "cpu/libuv", "rt/libuv");

  bool missed = false, checked = false;
  for (int ci = 0; ci < nconns; ci++) {
    if (conns[ci] + 64 > nofile) {
      printf("%6ld connections: skipped, RLIMIT_NOFILE is %ld (raise it with ulimit -n)\n",
             conns[ci], nofile);
      continue;
    }
    for (int si = 0; si < nsizes; si++) {
      run_result_t res[IMPL_COUNT][MAX_RUNS], med[IMPL_COUNT];
      double spread[IMPL_COUNT];
      for (long r = 0; r < runs; r++)
        for (int k = 0; k < IMPL_COUNT; k++)
          if (use[k])
            res[k][r] = run_once((enum impl)k, (int)conns[ci], (size_t)sizes[si], &o);
      for (int k = 0; k < IMPL_COUNT; k++)
        if (use[k])
          med[k] = median_of(res[k], (int)runs, &spread[k]);
      for (int k = 0; k < IMPL_COUNT; k++) {
        if (!use[k])
          continue;
        printf("%6ld %7ld  %-6s %10.0f %10.0f %6.1f%% %5.2f %5.2f", conns[ci], sizes[si],
               impl_names[k], med[k].rt_per_sec, med[k].srv_ns_per_rt, spread[k], med[k].srv_cpus,
               med[k].cli_cpus);
        bool epoll = use[IMPL_EPOLL] && k != IMPL_EPOLL, uv = use[IMPL_LIBUV] && k != IMPL_LIBUV;
        bench_print_ratio(med[k].srv_ns_per_rt, med[IMPL_EPOLL].srv_ns_per_rt, epoll, 9);
        bench_print_ratio(med[k].srv_ns_per_rt, med[IMPL_LIBUV].srv_ns_per_rt, uv, 9);
        bench_print_ratio(med[k].rt_per_sec, med[IMPL_LIBUV].rt_per_sec, uv, 9);
        if (k == IMPL_URING && use[IMPL_AXON])
          printf("  cpu/axon %.2f", med[k].srv_ns_per_rt / med[IMPL_AXON].srv_ns_per_rt);
        if (k == IMPL_FIBER && use[IMPL_AXON]) {
          double r = med[k].srv_ns_per_rt / med[IMPL_AXON].srv_ns_per_rt;
          bool ok = r <= CPU_TARGET;
          missed |= !ok;
          checked = true;
          printf("  cpu/axon %.2f target %s", r, ok ? "met" : "MISSED");
        }
        if (k == IMPL_AXON && (epoll || uv)) {
          checked = true;
          printf("  target");
          if (epoll) {
            bool ok = med[k].srv_ns_per_rt <= CPU_TARGET * med[IMPL_EPOLL].srv_ns_per_rt;
            missed |= !ok;
            printf(" cpu %s", ok ? "met" : "MISSED");
          }
          if (uv) {
            bool ok = med[k].rt_per_sec > med[IMPL_LIBUV].rt_per_sec;
            missed |= !ok;
            printf(" rt/s %s", ok ? "met" : "MISSED");
          }
        }
        printf("\n");
        fflush(stdout);
      }
    }
  }
  if (checked)
    printf("\naxon %s the targets (server CPU per round trip <= %.2fx raw epoll, fibers'\n"
           "<= that much of the handler's, more round trips/s than libuv) %s\n",
           missed ? "missed" : "met", CPU_TARGET, missed ? "somewhere above" : "everywhere above");
  free(pattern);
  return 0;
}
