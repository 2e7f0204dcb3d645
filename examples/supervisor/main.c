/* supervisor: a supervision tree.  The top supervisor (one_for_one) runs a sensor that fails on
 * the 3rd tick of its timer and is restarted with fresh state, a logger fiber, and a nested
 * supervisor (rest_for_one) whose db fails once: cache, started after it, restarts with it.  Then
 * main stops the tree (ax_sup_stop): last started, first stopped.  Shows: child specs, start
 * functions, a count kept in the spec's arg while state is rebuilt, AX_MSG_SHUTDOWN, intensity,
 * back-off, a supervisor as a child.  docs/supervision.md.  Run: build/examples/supervisor */
#include <axon.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

enum { MSG_TICK = AX_MSG_USER, MSG_DONE };

typedef struct kid { /* a child spec's arg: it outlives the restarts, on purpose */
  const char *name;
  unsigned starts;    /* lives so far */
  unsigned fails, at; /* its first `fails` lives fail at tick `at` (100 ms each) */
} kid_t;

typedef struct worker { /* one life's state: built afresh by every start */
  kid_t *kid;
  unsigned life, ticks;
} worker_t;

static kid_t sensor_kid = {.name = "sensor", .fails = 3, .at = 3};
static kid_t db_kid = {.name = "db", .fails = 1, .at = 2}, cache_kid = {.name = "cache"};
static kid_t logger_kid = {.name = "logger"}, workers_kid = {.name = "workers"};
static ax_ref_t main_port, top; /* main's port, for the sensor to say it is over; the top */
static int top_reason = 1; /* the top supervisor's stop reason (1: not stopped) */

static int check(int rc, const char *what) {
  if (rc < 0)
    fprintf(stderr, "supervisor: %s: %s\n", what, ax_strerror(rc));
  return rc;
}

static const char *why(int reason) {
  return reason == AX_REASON_NORMAL ? "normal" : reason == AX_REASON_STOPPED ? "stopped"
         : reason == AX_REASON_INTENSITY ? "too many restarts" : ax_err_name(reason);
}

static unsigned started(kid_t *k, const char *more) { /* "start: db #1", "restart: db #2" */
  printf("%s: %s #%u%s\n", k->starts > 0 ? "restart" : "start", k->name, k->starts + 1, more);
  return ++k->starts;
}

static void worker_init(ax_actor_t *self) {
  int rc = check(ax_every(self, 100 * AX_NSEC_PER_MSEC, MSG_TICK, NULL, 0, NULL), "ax_every");
  if (rc < 0)
    (void)ax_stop(ax_self(self), rc); /* a hook cannot return a failure */
}

static int worker(ax_actor_t *self, const ax_msg_t *msg) {
  worker_t *w = ax_state(self);
  if (msg->type == AX_MSG_SHUTDOWN) /* from the supervisor: finish up and stop */
    return AX_STOP;
  if (msg->type != MSG_TICK || ++w->ticks != w->kid->at) /* a fresh state counts from 0 */
    return 0;
  if (w->life <= w->kid->fails) {
    printf("%s #%u: tick %u: failed\n", w->kid->name, w->life, w->ticks);
    return -EIO; /* a failure: the supervisor starts a new one */
  }
  if (w->kid != &sensor_kid)
    return 0;
  printf("sensor #%u: tick %u: read ok, telling main\n", w->life, w->ticks);
  return check(ax_send(main_port, MSG_DONE, NULL, 0), "ax_send(DONE)");
}

static void worker_stopped(ax_actor_t *self, int reason) {
  worker_t *w = ax_state(self);
  printf("stop: %s #%u: %s\n", w->kid->name, w->life, why(reason));
  free(w); /* the state ends with its life */
}

static int logger(ax_actor_t *self, void *arg) { /* a real one would write lines meanwhile */
  const ax_msg_t *msg;
  int rc = ax_recv_type(self, AX_MSG_SHUTDOWN, AX_FOREVER, &msg), life = ((worker_t *)arg)->life;
  printf("logger #%d: %s, flushing\n", life, rc == 0 ? "shutdown" : ax_err_name(rc));
  return rc; /* 0: a normal stop */
}

/* A start function runs in the supervisor: spawn the child, monitored by it from birth. */
static int start_worker(ax_actor_t *sup, void *arg, ax_ref_t *ref) {
  worker_t *w = calloc(1, sizeof *w);
  if (w == NULL)
    return -ENOMEM;
  *w = (worker_t){.kid = arg, .life = started(arg, arg == &logger_kid ? " (a fiber)" : "")};
  ax_spawn_opts_t o = {.monitor = sup, .init = worker_init, .terminate = worker_stopped};
  ax_fiber_opts_t fo = {.monitor = sup, .terminate = worker_stopped};
  int rc = arg == &logger_kid ? ax_spawn_fiber(ax_actor_rt(sup), logger, w, &fo, ref)
                              : ax_spawn(ax_actor_rt(sup), worker, w, &o, ref);
  if (rc < 0)
    free(w);
  return rc;
}

static void sup_stopped(ax_actor_t *self, int reason) { /* both supervisors' terminate hook */
  if (ax_self(self) == top)
    top_reason = reason; /* main reads it after ax_rt_join */
  printf("stop: %s: %s\n", ax_self(self) == top ? "top" : "workers #1", why(reason));
}

/* The nested supervisor: rest_for_one, OTP's intensity (1 restart in 5 s). */
static int start_workers(ax_actor_t *sup, void *arg, ax_ref_t *ref) {
  static const ax_child_spec_t specs[] = {
      {.name = "db", .start = start_worker, .arg = &db_kid},
      {.name = "cache", .start = start_worker, .arg = &cache_kid,
       .shutdown_ns = AX_SHUTDOWN_BRUTAL}, /* no AX_MSG_SHUTDOWN: ax_stop at once */
  };
  ax_sup_opts_t o = {.strategy = AX_REST_FOR_ONE, .children = specs, .nchildren = 2};
  ax_spawn_opts_t so = {.monitor = sup, .terminate = sup_stopped};
  started(arg, " (a supervisor, rest_for_one)");
  return ax_sup_start(ax_actor_rt(sup), &o, &so, ref);
}

int main(void) {
  static const ax_child_spec_t top_specs[] = { /* started in this order, stopped in reverse */
      {.name = "sensor", .start = start_worker, .arg = &sensor_kid},
      {.name = "logger", .start = start_worker, .arg = &logger_kid, .shutdown_ns = AX_NSEC_PER_SEC},
      {.name = "workers", .start = start_workers, .arg = &workers_kid,
       .shutdown_ns = AX_FOREVER}, /* a supervisor: the time its own children take */
  };
  /* At most 3 restarts in 5 s (one more stops the tree), each after a back-off from 50 ms. */
  ax_sup_opts_t top_opts = {.strategy = AX_ONE_FOR_ONE, .max_restarts = 3,
                            .period_ns = 5 * AX_NSEC_PER_SEC, .backoff_ns = 50 * AX_NSEC_PER_MSEC,
                            .children = top_specs, .nchildren = 3};
  ax_rt_t *rt;
  ax_port_t *port = NULL;
  ax_msg_t msg; /* the sensor's MSG_DONE */
  int rc, status = 1;
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (check(ax_rt_new(&(ax_rt_opts_t){.cores = 2}, &rt), "ax_rt_new") < 0)
    return 1;
  ax_spawn_opts_t top_spawn = {.terminate = sup_stopped};
  if (check(ax_port_new(rt, &port), "ax_port_new") >= 0 && (main_port = ax_port_ref(port)) &&
      check(ax_sup_start(rt, &top_opts, &top_spawn, &top), "ax_sup_start") >= 0 &&
      check(ax_rt_start(rt), "ax_rt_start") >= 0) {
    rc = check(ax_port_recv(port, ax_now() + 10 * AX_NSEC_PER_SEC, &msg), "ax_port_recv");
    printf("main: ax_sup_stop(top)\n");
    if (rc < 0 || check(ax_sup_stop(top), "ax_sup_stop") < 0)
      ax_rt_stop(rt); /* the tree is gone or broken: stop what is left */
    if (check(ax_rt_join(rt), "ax_rt_join") == 0 && /* when no actor is left: after the top */
        rc == 0 && top_reason == AX_REASON_NORMAL)
      status = 0;
  }
  status |= port != NULL && check(ax_port_close(port), "ax_port_close") < 0;
  status |= check(ax_rt_free(rt), "ax_rt_free") < 0;
  printf("bye: exit status %d\n", status);
  return status;
}
