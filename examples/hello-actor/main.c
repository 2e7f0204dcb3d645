/* hello-actor: the smallest actor program: one actor, one message, a clean end.
 * Shows: a runtime with default options (one pinned thread per CPU); ax_spawn of a behaviour
 * with its state and a terminate hook; ax_send from main, a thread that is not an actor (the
 * payload is copied); a behaviour that returns AX_STOP; ax_rt_run returning by itself once no
 * actor is left; the runtime's statistics; ax_rt_free.
 * Run: build/examples/hello-actor [greeting]   (the actor prints it, stops, and the program
 * exits 0 after printing how many messages were delivered). */
#include <axon.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

enum { MSG_GREETING = AX_MSG_USER }; /* application message types start at AX_MSG_USER */

typedef struct greeter {
  const char *name;
  unsigned greetings;
} greeter_t;

/* The behaviour: called once per message on the actor's core, never twice at a time. */
static int greet(ax_actor_t *self, const ax_msg_t *msg) {
  greeter_t *g = ax_state(self);
  if (msg->type != MSG_GREETING)
    return 0; /* not ours: ignore it and carry on */
  g->greetings++;
  printf("%s on core %u got: %.*s\n", g->name, ax_core(self), (int)msg->size,
         (const char *)msg->data); /* msg->data is valid until this function returns */
  return AX_STOP;                  /* one greeting is enough: stop normally */
}

/* The terminate hook runs on the actor's core when it stops, whatever the reason. */
static void farewell(ax_actor_t *self, int reason) {
  greeter_t *g = ax_state(self);
  printf("%s stopped: %s\n", g->name,
         reason == AX_REASON_NORMAL     ? "normal"
         : reason == AX_REASON_SHUTDOWN ? "runtime shutdown"
                                        : ax_strerror(reason));
}

/* Reports a failure (a negated errno value, as axon returns) and passes rc through. */
static int check(int rc, const char *what) {
  if (rc < 0)
    fprintf(stderr, "hello-actor: %s: %s\n", what, ax_strerror(rc));
  return rc;
}

int main(int argc, char **argv) {
  const char *text = argc > 1 ? argv[1] : "hello, actor";
  greeter_t g = {.name = "greeter"}; /* the actor's state: ours, and it outlives the runtime */
  ax_spawn_opts_t opts = {.terminate = farewell}; /* zero fields: defaults (any core) */
  ax_core_stats_t total;
  ax_ref_t greeter;
  ax_rt_t *rt;
  int status = 1;
  setvbuf(stdout, NULL, _IOLBF, 0); /* lines from the core threads come out in order */
  if (check(ax_rt_new(NULL, &rt), "ax_rt_new") < 0) /* NULL options: the defaults */
    return 1;
  /* Spawned before the threads start: the message waits in the mailbox until they do. */
  if (check(ax_spawn(rt, greet, &g, &opts, &greeter), "ax_spawn") >= 0 &&
      check(ax_send(greeter, MSG_GREETING, text, strlen(text)), "ax_send") >= 0 &&
      check(ax_rt_run(rt), "ax_rt_run") >= 0 && /* returns when no actor is left */
      check(ax_rt_stats_total(rt, &total), "ax_rt_stats_total") >= 0) {
    printf("%" PRIu64 " message(s) delivered, %" PRIu64 " dead letter(s), %u greeting(s)\n",
           total.delivered, total.dead_letters, g.greetings);
    status = g.greetings == 1 ? 0 : 1;
  }
  if (check(ax_rt_free(rt), "ax_rt_free") < 0)
    status = 1;
  return status;
}
