/* gpio: an edge on a GPIO line as a message.  The sysfs "value" file of a GPIO line whose
 * "edge" is set (echo both > /sys/class/gpio/gpioN/edge) signals each edge with POLLPRI.  An
 * actor watches it with ax_fd_watch(fd, AX_PRI): one AX_MSG_FD_READY per edge (the watch is
 * one-shot), then it re-reads the value (lseek to 0, read) and re-arms with ax_fdwatch_rearm.
 * Without a path there is no GPIO, so this SIMULATES one with something that really raises
 * AX_PRI: a loopback TCP pair on which a "button" actor sends one byte of urgent data
 * (send with MSG_OOB) per press, '1' and '0' in turn.  The watcher takes it with
 * recv(MSG_OOB) as the line's new value and acknowledges, and the button presses again 20 ms
 * later.  After EDGES edges (default 6) both stop.
 * Run: build/examples/gpio [EDGES | /sys/class/gpio/gpioN/value]   (a path: until Ctrl-C) */
#include <axon.h>
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

enum { MSG_PRESS = AX_MSG_USER, MSG_ACK };

typedef struct line {
  int fd;              /* the value file, or the simulation's receiving socket */
  bool simulated;
  int edges, want;     /* edges seen; how many to wait for (simulation) */
  ax_ref_t button;     /* simulation: whom to acknowledge */
  ax_fdwatch_t *watch;
} line_t;

typedef struct button { int fd, presses, want; } button_t;

static int check(int rc, const char *what) {
  return rc < 0 ? fprintf(stderr, "gpio: %s: %s\n", what, ax_strerror(rc)), rc : rc;
}

static int sys(long rc, const char *what) { return rc < 0 ? check(-errno, what) : (int)rc; }

/* Reads the line's value: the urgent byte (simulation) or the file's first byte. */
static int read_value(line_t *l, char *value) {
  if (l->simulated)
    return sys(recv(l->fd, value, 1, MSG_OOB), "recv(MSG_OOB)");
  if (sys(lseek(l->fd, 0, SEEK_SET), "lseek") < 0)
    return -1;
  return sys(read(l->fd, value, 1), "read");
}

static void watch_line(ax_actor_t *self) {
  line_t *l = ax_state(self);
  int rc = check(ax_fd_watch(self, l->fd, AX_PRI, &l->watch), "ax_fd_watch");
  if (rc == 0)
    printf("watching %s for AX_PRI\n", l->simulated ? "a simulated line (TCP urgent data)"
                                                    : "the value file");
  else
    check(ax_stop(ax_self(self), rc), "ax_stop");
}

static int on_line(ax_actor_t *self, const ax_msg_t *msg) {
  line_t *l = ax_state(self);
  if (msg->type != AX_MSG_FD_READY)
    return 0;
  const ax_fd_ready_t *r = msg->data;
  char value = '?';
  if (!(r->revents & AX_PRI) || read_value(l, &value) <= 0)
    return check(-EIO, "the line did not report an edge"); /* stops with the failure */
  printf("edge %d: value %c\n", ++l->edges, value);
  if (l->simulated && check(ax_send(l->button, MSG_ACK, NULL, 0), "ax_send") < 0)
    return -1;
  return l->simulated && l->edges == l->want ? AX_STOP /* the watch ends with its owner */
         : check(ax_fdwatch_rearm(l->watch, AX_PRI), "ax_fdwatch_rearm"); /* one-shot: arm again */
}

/* Whatever ends the watcher (done, or a failure) ends the program. */
static void end(ax_actor_t *self, int reason) {
  (void)reason;
  ax_rt_stop(ax_actor_rt(self));
}

/* The simulation's button: one urgent byte per press, the next one after an acknowledgement. */
static int on_button(ax_actor_t *self, const ax_msg_t *msg) {
  button_t *b = ax_state(self);
  if (msg->type == MSG_ACK)
    return b->presses == b->want ? AX_STOP
                                 : check(ax_after(self, 20 * AX_NSEC_PER_MSEC, MSG_PRESS, NULL,
                                                  0, NULL), "ax_after");
  if (msg->type != MSG_PRESS)
    return 0;
  char value = b->presses++ % 2 == 0 ? '1' : '0';
  return sys(send(b->fd, &value, 1, MSG_OOB), "send(MSG_OOB)") < 0 ? -1 : 0;
}

/* A connected loopback TCP pair: fds[0] sends, fds[1] (non-blocking) is watched. */
static int tcp_pair(int fds[2]) {
  struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof sin;
  int l = sys(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), "socket");
  fds[0] = fds[1] = -1;
  if (l >= 0 && sys(bind(l, (struct sockaddr *)&sin, len), "bind") == 0 &&
      sys(listen(l, 1), "listen") == 0 &&
      sys(getsockname(l, (struct sockaddr *)&sin, &len), "getsockname") == 0 &&
      (fds[0] = sys(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), "socket")) >= 0 &&
      sys(connect(fds[0], (struct sockaddr *)&sin, len), "connect") == 0)
    fds[1] = sys(accept4(l, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK), "accept4");
  if (l >= 0)
    close(l);
  return fds[1] >= 0 ? 0 : -1;
}

int main(int argc, char **argv) {
  const char *arg = argc > 1 ? argv[1] : "6";
  bool number = isdigit((unsigned char)arg[0]);
  int want = number ? atoi(arg) : 0, fds[2] = {-1, -1}, status = 1;
  if (argc > 2 || (number && (want < 1 || want > 1000)))
    return fprintf(stderr, "usage: %s [EDGES | /sys/class/gpio/gpioN/value]\n", argv[0]), 2;
  setvbuf(stdout, NULL, _IOLBF, 0);
  line_t l = {.fd = -1, .simulated = number, .want = want};
  button_t b = {.fd = -1, .want = want};
  if (number) {
    if (tcp_pair(fds) < 0)
      return 1;
    l.fd = fds[1];
    b.fd = fds[0];
  } else {
    char value;
    l.fd = sys(open(arg, O_RDONLY | O_NONBLOCK | O_CLOEXEC), arg);
    if (l.fd < 0 || read_value(&l, &value) < 0) /* reading clears the pending edge */
      return 1;
    printf("%s: value %c\n", arg, value);
  }
  ax_rt_opts_t rt_opts = {.cores = 1};
  ax_spawn_opts_t opts = {.init = watch_line, .terminate = end};
  ax_rt_t *rt;
  if (check(ax_rt_new(&rt_opts, &rt), "ax_rt_new") == 0) {
    if ((!number || check(ax_spawn(rt, on_button, &b, NULL, &l.button), "ax_spawn") == 0) &&
        check(ax_spawn(rt, on_line, &l, &opts, NULL), "ax_spawn") == 0 &&
        (!number || check(ax_send(l.button, MSG_PRESS, NULL, 0), "ax_send") == 0) &&
        check(ax_rt_run(rt), "ax_rt_run") == 0) /* until both stop, or SIGINT */
      status = !number || l.edges == want ? 0 : 1;
    if (check(ax_rt_free(rt), "ax_rt_free") < 0)
      status = 1;
  }
  if (number)
    printf("%d edges of %d seen\n", l.edges, want);
  close(l.fd); /* the watch never closes it: the fd is ours */
  if (number)
    close(b.fd);
  return status;
}
