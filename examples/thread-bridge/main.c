/* thread-bridge: an ordinary thread and an actor exchange messages through a port.
 * A "GUI" thread (any thread outside the runtime: a GUI, a worker pool, a blocking library)
 * sends jobs to a calculator actor with ax_send; each job carries the reference of the thread's
 * port, and the actor replies to it.  The thread waits for results first with ax_port_recv and
 * a deadline, then in poll() on ax_port_fd.  main owns the one-core runtime (AX_RT_KEEP_ALIVE):
 * ax_rt_start, then ax_rt_stop, ax_rt_join, ax_rt_free once the thread is done.
 * Run: build/examples/thread-bridge [jobs]   (default 10; job n asks for n's Collatz steps) */
#define _POSIX_C_SOURCE 200809L
#include <axon.h>
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { MSG_JOB = AX_MSG_USER, MSG_RESULT };

typedef struct job {
  ax_ref_t reply_to; /* a thread is no actor: msg->from is AX_REF_NONE, so say where to reply */
  uint32_t n;
} job_t;

typedef struct result { uint32_t n, steps; } result_t;

typedef struct bridge {
  ax_rt_t *rt;
  ax_ref_t calculator;
  uint32_t jobs;
  int status; /* the GUI thread's outcome: 0 or the first error */
} bridge_t;

static int check(int rc, const char *what) {
  if (rc < 0)
    fprintf(stderr, "thread-bridge: %s: %s\n", what, ax_strerror(rc));
  return rc;
}

/* The calculator actor: counts the steps of n's Collatz sequence down to 1. */
static int calculate(ax_actor_t *self, const ax_msg_t *msg) {
  unsigned *done = ax_state(self);
  job_t job;
  if (msg->type != MSG_JOB || msg->size != sizeof job)
    return 0;
  memcpy(&job, msg->data, sizeof job);
  result_t r = {.n = job.n};
  for (uint64_t x = job.n; x > 1; r.steps++)
    x = x % 2 ? 3 * x + 1 : x / 2;
  (*done)++;
  return check(ax_send(job.reply_to, MSG_RESULT, &r, sizeof r), "ax_send(RESULT)");
}

static void calculator_stopped(ax_actor_t *self, int reason) {
  unsigned *done = ax_state(self);
  printf("calculator stopped (%s) after %u jobs\n",
         reason == AX_REASON_SHUTDOWN ? "shutdown" : ax_strerror(reason), *done);
}

static int send_job(const bridge_t *b, const ax_port_t *port, uint32_t n) {
  job_t job = {.reply_to = ax_port_ref(port), .n = n};
  return check(ax_send(b->calculator, MSG_JOB, &job, sizeof job), "ax_send(JOB)");
}

/* Takes one result; it must answer job n (one sender to one receiver: in order).  Returns 0,
 * -EAGAIN (deadline 0 and nothing queued: not an error), or another reported error. */
static int take(ax_port_t *port, uint32_t n, int64_t deadline) {
  ax_msg_t msg;
  result_t r;
  int rc = ax_port_recv(port, deadline, &msg);
  if (rc == -EAGAIN)
    return rc;
  if (rc < 0 || msg.type != MSG_RESULT || msg.size != sizeof r)
    return check(rc < 0 ? rc : -EPROTO, "ax_port_recv");
  memcpy(&r, msg.data, sizeof r); /* msg.data is valid until the next ax_port_recv */
  if (r.n != n)
    return check(-EPROTO, "result out of order");
  printf("collatz(%" PRIu32 ") = %" PRIu32 " steps\n", r.n, r.steps);
  return 0;
}

static void *gui_thread(void *arg) {
  bridge_t *b = arg;
  ax_port_t *port;
  ax_msg_t msg;
  unsigned wakeups = 0;
  uint32_t n = 1, half = b->jobs / 2;
  int rc = check(ax_port_new(b->rt, &port), "ax_port_new");
  if (rc < 0)
    return b->status = rc, NULL;
  /* 1. One job at a time, each result awaited for at most 5 s. */
  for (; rc >= 0 && n <= half; n++)
    if ((rc = send_job(b, port, n)) >= 0)
      rc = take(port, n, ax_now() + 5 * AX_NSEC_PER_SEC);
  /* 2. Event-loop style: drain until -EAGAIN, sleep in poll() until the fd is readable, repeat. */
  if (rc >= 0 && (rc = take(port, n, 0)) == -EAGAIN) /* phase 1 took everything */
    rc = 0;
  for (uint32_t i = n; rc >= 0 && i <= b->jobs; i++)
    rc = send_job(b, port, i);
  struct pollfd pfd = {.fd = ax_port_fd(port), .events = POLLIN};
  while (rc >= 0 && n <= b->jobs) {
    int ready = poll(&pfd, 1, 5000); /* your loop would watch its other fds here too */
    rc = ready > 0 ? 0 : check(ready == 0 ? -ETIMEDOUT : -errno, "poll");
    wakeups += ready > 0;
    while (rc >= 0 && n <= b->jobs && (rc = take(port, n, 0)) == 0)
      n++;
    if (rc == -EAGAIN)
      rc = 0;
  }
  if (rc >= 0 && b->jobs > half)
    printf("%" PRIu32 " results through poll() in %u wake-up(s)\n", b->jobs - half, wakeups);
  /* 3. Nothing more is coming: a deadline 20 ms ahead passes. */
  if (rc >= 0) {
    rc = ax_port_recv(port, ax_now() + 20 * AX_NSEC_PER_MSEC, &msg);
    printf("then: %s\n", ax_err_name(rc));
    rc = rc == -ETIMEDOUT ? 0 : check(rc < 0 ? rc : -EPROTO, "ax_port_recv");
  }
  int freed = check(ax_port_close(port), "ax_port_close"); /* before ax_rt_free */
  b->status = rc < 0 ? rc : freed;
  return NULL;
}

int main(int argc, char **argv) {
  long jobs = argc > 1 ? strtol(argv[1], NULL, 10) : 10;
  if (argc > 2 || jobs < 1 || jobs > 1000000)
    return fprintf(stderr, "usage: %s [jobs]   (default 10)\n", argv[0]), 2;
  /* One core is plenty; KEEP_ALIVE: the runtime runs until main stops it, actors or not. */
  ax_rt_opts_t opts = {.cores = 1, .flags = AX_RT_KEEP_ALIVE};
  ax_spawn_opts_t calc_opts = {.terminate = calculator_stopped};
  bridge_t b = {.jobs = (uint32_t)jobs};
  unsigned done = 0; /* the calculator's state */
  pthread_t gui;
  int rc, status = 1;
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (check(ax_rt_new(&opts, &b.rt), "ax_rt_new") < 0)
    return 1;
  if (check(ax_spawn(b.rt, calculate, &done, &calc_opts, &b.calculator), "ax_spawn") >= 0 &&
      check(ax_rt_start(b.rt), "ax_rt_start") >= 0) {
    /* Created after ax_rt_start, the thread inherits its mask: the runtime's signals blocked. */
    if ((rc = pthread_create(&gui, NULL, gui_thread, &b)) == 0)
      rc = pthread_join(gui, NULL);
    status = check(-rc, "pthread_create/join") < 0 || b.status < 0 ? 1 : 0;
    ax_rt_stop(b.rt); /* any thread may ask; the calculator stops with AX_REASON_SHUTDOWN */
    if (check(ax_rt_join(b.rt), "ax_rt_join") < 0)
      status = 1;
  }
  if (check(ax_rt_free(b.rt), "ax_rt_free") < 0)
    status = 1;
  return status;
}
