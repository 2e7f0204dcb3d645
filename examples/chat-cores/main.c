/*
 * chat-cores: a line chat server on every core, with a process group.
 *
 * Each connection is a session actor on the core that accepted it, with a
 * state block of its own (session_size): the client's nickname.  Every
 * session joins one group, the room; a line a client types goes to the
 * whole room with one ax_group_send, and each session writes it to its
 * client.  A session that stops leaves the room by itself.  A client that
 * does not read is dropped once its stream's write queue is full, so it
 * cannot make the server's memory grow.  Ctrl-C stops the server.
 *
 *   build/examples/chat-cores 7000      # then, in two terminals: nc 127.0.0.1 7000
 *
 * Commands: "/nick NAME", "/who" (how many are in the room), "/quit".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <axon.h>

enum { MSG_SAY = AX_MSG_USER }; /* a line for the room: "nick: text\n" */

typedef struct session {
  ax_stream_t *stream;
  char nick[32];
} session_t;

static ax_group_t *room;

/* Writes to this session's client; a client that does not read gets
 * -ENOBUFS at the high watermark, and is dropped. */
static int say(session_t *s, const void *text, size_t len) {
  return ax_stream_write(s->stream, text, len) < 0 ? AX_STOP : 0;
}

static void session_init(ax_actor_t *self, void *shared) {
  (void)shared;
  session_t *s = ax_state(self);
  snprintf(s->nick, sizeof s->nick, "guest%u.%llu", ax_core(self),
           (unsigned long long)(ax_self(self) & 0xffff));
}

static int command(session_t *s, const char *line, size_t len) {
  char out[96];
  int n;
  if (len > 6 && memcmp(line, "/nick ", 6) == 0) {
    snprintf(s->nick, sizeof s->nick, "%.*s", (int)(len - 6), line + 6);
    n = snprintf(out, sizeof out, "you are %s\n", s->nick);
  } else if (len == 4 && memcmp(line, "/who", 4) == 0) {
    n = snprintf(out, sizeof out, "%d in the room\n", ax_group_members(room, NULL, 0));
  } else if (len == 5 && memcmp(line, "/quit", 5) == 0) {
    say(s, "bye\n", 4); /* if it cannot be queued, the client is gone anyway */
    ax_stream_close(s->stream); /* what is queued is still written */
    return AX_STOP;
  } else {
    n = snprintf(out, sizeof out, "commands: /nick NAME, /who, /quit\n");
  }
  return say(s, out, (size_t)n);
}

static int session(ax_actor_t *self, const ax_msg_t *m) {
  session_t *s = ax_state(self);
  switch (m->type) {
  case AX_MSG_GIVEN: { /* the first message: the connection is ours */
    s->stream = ((const ax_stream_ev_t *)m->data)->stream;
    int rc = ax_group_join(room, ax_self(self));
    return rc < 0 ? rc : say(s, "welcome; /nick NAME to be named\n", 32);
  }
  case AX_MSG_DATA: { /* one line from our client, without its '\n' */
    const ax_data_t *d = m->data;
    if (d->len > 0 && d->bytes[0] == '/')
      return command(s, (const char *)d->bytes, d->len);
    char line[600];
    int n = snprintf(line, sizeof line, "%s: %.*s\n", s->nick, (int)d->len, (const char *)d->bytes);
    if (ax_group_send(room, MSG_SAY, line, (size_t)n) < 0) /* everyone, us included */
      return say(s, "not sent: out of memory\n", 24);
    return 0;
  }
  case MSG_SAY: /* a line someone said in the room */
    return say(s, m->data, m->size);
  case AX_MSG_CLOSED: /* the client went away */
    return AX_STOP;
  default:
    return 0;
  }
}

int main(int argc, char **argv) {
  char *end = NULL;
  long port = argc == 2 ? strtol(argv[1], &end, 10) : -1;
  if (argc != 2 || *end != '\0' || port < 0 || port > 65535) {
    fprintf(stderr, "usage: %s PORT   (0: any free port)\n", argv[0]);
    return 2;
  }
  ax_rt_t *rt;
  int rc = ax_rt_new(NULL, &rt);
  if (rc == 0 && (rc = ax_group_new(&room)) < 0)
    ax_rt_free(rt);
  if (rc < 0) {
    fprintf(stderr, "chat-cores: %s\n", ax_strerror(rc));
    return 1;
  }
  char addr[32];
  snprintf(addr, sizeof addr, "127.0.0.1:%ld", port);
  ax_serve_opts_t opts = {
      .stream = {.frame = AX_FRAME_DELIM, .max_frame = 512, .high_water = 64 * 1024},
      .session_size = sizeof(session_t),
      .session_init = session_init,
  };
  ax_server_t *srv;
  rc = ax_tcp_serve(rt, addr, session, &opts, &srv);
  if (rc < 0) {
    fprintf(stderr, "chat-cores: serve %s: %s\n", addr, ax_strerror(rc));
    ax_rt_free(rt);
    ax_group_free(room);
    return 1;
  }
  printf("chat on 127.0.0.1:%d, %u cores\n", ax_server_port(srv), ax_rt_cores(rt));
  fflush(stdout);
  rc = ax_rt_run(rt); /* until SIGINT or SIGTERM */
  ax_server_close(srv);
  int frc = ax_rt_free(rt);
  ax_group_free(room); /* after the runtime: no session uses it any more */
  if (rc < 0 || frc < 0) {
    fprintf(stderr, "chat-cores: %s\n", ax_strerror(rc < 0 ? rc : frc));
    return 1;
  }
  printf("bye\n");
  return 0;
}
