/* mqtt: an external library driven by axon.  One actor runs a libmosquitto client with no thread
 * of libmosquitto's: ax_fd_watch watches its socket (one-shot AX_MSG_FD_READY, re-armed after
 * each), mosquitto_loop_read/_write run when it is ready, write interest follows want_write, and
 * a one-second ax_every runs mosquitto_loop_misc and reconnects (then watches the new socket).
 * The callbacks run inside those calls, so inside the behaviour: they use the actor's state.
 * It subscribes to TOPIC, publishes COUNT messages there (QoS 1), prints them as they come back,
 * then, given WAIT-TOPIC, waits for one message there.  Exit 0 once all came, 1 on error or 30 s.
 * Run: mosquitto -p 1883 &  build/examples/mqtt [HOST:PORT [TOPIC [COUNT [WAIT-TOPIC]]]]
 *      (default 127.0.0.1:1883 axon/example 10), then: mosquitto_pub -t WAIT-TOPIC -m hi */
#include <axon.h>
#include <errno.h>
#include <mosquitto.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { MSG_TICK = AX_MSG_USER }; /* every second: loop_misc, reconnect, time-out */

typedef struct client {
  struct mosquitto *mosq;
  char host[256], *topics[2]; /* topics[1]: WAIT-TOPIC or NULL */
  long port, count, received; /* received: distinct messages of ours */
  bool *seen;                  /* seen[i]: "message i of count" came back (QoS 1 may repeat it) */
  int connections, ticks, status, fd; /* fd: the socket that watch watches */
  bool done;           /* all came back: disconnecting, then stopping */
  ax_fdwatch_t *watch; /* NULL while no socket is watched */
} client_t;

static int check(int rc, const char *what) { /* axon's calls: -errno on failure */
  return rc < 0 ? fprintf(stderr, "mqtt: %s: %s\n", what, ax_strerror(rc)), rc : rc;
}

static int mq_check(int rc, const char *what) { /* libmosquitto's: a MOSQ_ERR_* code */
  const char *why = rc == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(rc);
  return rc != MOSQ_ERR_SUCCESS ? fprintf(stderr, "mqtt: %s: %s\n", what, why), rc : rc;
}

/* After every libmosquitto call: drop the watch if the socket was closed (or replaced), watch
 * a new socket, and re-arm (the watch is one-shot) with write interest if libmosquitto has
 * bytes queued -- right after a connect too, while the TCP handshake is pending. */
static int follow_socket(ax_actor_t *self, client_t *c) {
  int fd = mosquitto_socket(c->mosq), rc;
  unsigned events = AX_READ | (mosquitto_want_write(c->mosq) ? AX_WRITE : 0);
  if (c->watch != NULL && fd == c->fd)
    return check(ax_fdwatch_rearm(c->watch, events), "ax_fdwatch_rearm");
  if (c->watch != NULL && (rc = check(ax_fdwatch_close(c->watch), "ax_fdwatch_close")) < 0)
    return rc;
  c->watch = NULL, c->fd = fd;
  if (fd < 0) /* no socket: the next tick reconnects, or we are done */
    return c->done ? (c->status = 0, AX_STOP) : 0;
  return check(ax_fd_watch(self, fd, events, &c->watch), "ax_fd_watch");
}

/* libmosquitto's callbacks: called by the loop calls in behaviour(), so on the actor's core. */
static void on_connect(struct mosquitto *mosq, void *arg, int rc) {
  client_t *c = arg;
  if (rc != 0) /* refused: the socket is closed, the next tick tries again */
    return (void)fprintf(stderr, "mqtt: %s\n", mosquitto_connack_string(rc));
  printf("connected (connection #%d)\n", ++c->connections); /* clean session: subscribe again */
  mq_check(mosquitto_subscribe_multiple(mosq, NULL, c->topics[1] ? 2 : 1, c->topics, 1, 0, NULL),
           "subscribe");
}

static void on_subscribe(struct mosquitto *mosq, void *arg, int mid, int n, const int *qos) {
  client_t *c = arg;
  (void)mid, (void)n, (void)qos;
  printf("subscribed (connection #%d)\n", c->connections);
  for (long i = 1; c->connections == 1 && i <= c->count; i++) { /* queued: sent on AX_WRITE */
    char text[64];
    int len = snprintf(text, sizeof text, "message %ld of %ld", i, c->count);
    mq_check(mosquitto_publish(mosq, NULL, c->topics[0], len, text, 1, false), "publish");
  }
}

static void on_message(struct mosquitto *mosq, void *arg, const struct mosquitto_message *m) {
  client_t *c = arg;
  bool mine = strcmp(m->topic, c->topics[0]) == 0;
  printf("%s: %.*s\n", m->topic, m->payloadlen, (const char *)m->payload);
  char text[64];
  long i = 0, of = 0;
  int len = m->payloadlen < (int)sizeof text - 1 ? m->payloadlen : (int)sizeof text - 1;
  memcpy(text, m->payload, (size_t)len), text[len] = '\0';
  if (mine && (sscanf(text, "message %ld of %ld", &i, &of) != 2 || of != c->count || i < 1 ||
               i > c->count || c->seen[i - 1]))
    mine = false; /* not one of ours, or a repeat: a QoS 1 message whose PUBACK was lost */
  if (mine && (c->seen[i - 1] = true) && ++c->received == c->count)
    printf("all %ld messages came back%s%s\n", c->count,
           c->topics[1] ? "; waiting for one message on " : "", c->topics[1] ? c->topics[1] : "");
  if (!c->done && c->received >= c->count && (c->topics[1] == NULL || !mine)) {
    c->done = true; /* DISCONNECT is queued; writing it closes the socket */
    mq_check(mosquitto_disconnect(mosq), "disconnect");
  }
}

static int behaviour(ax_actor_t *self, const ax_msg_t *m) {
  client_t *c = ax_state(self);
  if (m->type == AX_MSG_FD_READY) {
    const ax_fd_ready_t *r = m->data;
    int rc = MOSQ_ERR_SUCCESS; /* a failing loop call has closed the socket */
    if (r->revents & (AX_READ | AX_HUP | AX_ERR))
      rc = mosquitto_loop_read(c->mosq, 1);
    if (rc == MOSQ_ERR_SUCCESS && (r->revents & AX_WRITE))
      rc = mosquitto_loop_write(c->mosq, 1);
    if (rc != MOSQ_ERR_SUCCESS && !c->done)
      mq_check(rc, "connection lost, reconnecting");
  } else if (m->type == MSG_TICK && ++c->ticks > 30) {
    fprintf(stderr, "mqtt: timed out with %ld of %ld messages back\n", c->received, c->count);
    return -ETIMEDOUT;
  } else if (m->type == MSG_TICK && mosquitto_socket(c->mosq) >= 0) {
    mq_check(mosquitto_loop_misc(c->mosq), "loop_misc");
  } else if (m->type == MSG_TICK && !c->done) { /* the connection was lost */
    if (mq_check(mosquitto_reconnect_async(c->mosq), "reconnect") != MOSQ_ERR_SUCCESS)
      return 0; /* the broker is not back yet: try again next second */
  }
  return follow_socket(self, c);
}

static void start(ax_actor_t *self) { /* init hook, on the actor's core */
  client_t *c = ax_state(self);
  int rc = -ECONNREFUSED; /* if connect_async fails (it resolves names blocking: use an IP) */
  if (mq_check(mosquitto_connect_async(c->mosq, c->host, (int)c->port, 60), "connect") == 0 &&
      (rc = check(ax_every(self, AX_NSEC_PER_SEC, MSG_TICK, NULL, 0, NULL), "ax_every")) >= 0)
    rc = follow_socket(self, c);
  if (rc < 0)
    check(ax_stop(ax_self(self), rc), "ax_stop");
}

int main(int argc, char **argv) {
  client_t c = {.host = "127.0.0.1", .port = 1883, .count = 10, .status = 1,
                .topics = {argc > 2 ? argv[2] : "axon/example", argc > 4 ? argv[4] : NULL}};
  int n1 = 0, n3 = 0;
  if (argc > 5 || !c.topics[0][0] ||
      (argc > 1 && (sscanf(argv[1], "%255[^:]:%ld%n", c.host, &c.port, &n1) != 2 || argv[1][n1])) ||
      (argc > 3 && (sscanf(argv[3], "%ld%n", &c.count, &n3) != 1 || argv[3][n3])) ||
      c.port < 1 || c.port > 65535 || c.count < 1 || c.count > 100000)
    return fprintf(stderr, "usage: %s [HOST:PORT [TOPIC [COUNT [WAIT-TOPIC]]]]\n", argv[0]), 2;
  if ((c.seen = calloc((size_t)c.count, sizeof *c.seen)) == NULL)
    return fprintf(stderr, "mqtt: out of memory\n"), 1;
  setvbuf(stdout, NULL, _IOLBF, 0);
  signal(SIGPIPE, SIG_IGN); /* libmosquitto write()s to its socket: a dead peer is EPIPE */
  mosquitto_lib_init();
  if ((c.mosq = mosquitto_new(NULL, true, &c)) == NULL)
    return fprintf(stderr, "mqtt: mosquitto_new: %s\n", strerror(errno)), 1;
  mosquitto_connect_callback_set(c.mosq, on_connect);
  mosquitto_subscribe_callback_set(c.mosq, on_subscribe);
  mosquitto_message_callback_set(c.mosq, on_message);
  ax_rt_t *rt;
  if (check(ax_rt_new(&(ax_rt_opts_t){.cores = 1}, &rt), "ax_rt_new") >= 0) {
    if (check(ax_spawn(rt, behaviour, &c, &(ax_spawn_opts_t){.init = start}, NULL),
              "ax_spawn") >= 0)
      check(ax_rt_run(rt), "ax_rt_run"); /* until the actor has stopped */
    if (check(ax_rt_free(rt), "ax_rt_free") < 0)
      c.status = 1;
  }
  mosquitto_destroy(c.mosq); /* closes the socket; its watch ended with the actor */
  mosquitto_lib_cleanup();
  free(c.seen);
  return c.status;
}
