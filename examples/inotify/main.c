/* inotify: file-system events as messages.  An actor watches a directory with ax_fs_watch and
 * prints each AX_MSG_FS_EVENT: its kind, the file name inline in the message, and moves paired
 * by their cookie.  A lost-events overflow (IN_Q_OVERFLOW) is reported, not hidden.
 * With no argument it makes a fresh directory under /tmp and drives a demo itself, one step per
 * event: create and write hello.txt, rename it to hello.md, make sub/, delete both; it stops
 * when the last deletion arrives and removes the directory.  With a directory argument it only
 * watches, until SIGINT/SIGTERM (the runtime's default stops it gracefully).
 * Run: build/examples/inotify [DIR]     (try: build/examples/inotify /tmp & touch /tmp/x) */
#include <axon.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#define WATCHED (IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_CLOSE_WRITE)

typedef struct watcher {
  char dir[256];
  bool demo;    /* we made dir and drive the steps */
  int events, status;
  uint32_t move_cookie;
  char move_from[256];
  ax_fswatch_t *watch;
} watcher_t;

static int check(int rc, const char *what) {
  return rc < 0 ? fprintf(stderr, "inotify: %s: %s\n", what, ax_strerror(rc)), rc : rc;
}

/* A file-system call of the demo: -errno on failure, reported. */
static int sys(int rc, const char *what) { return rc < 0 ? check(-errno, what) : 0; }

static int in_dir(watcher_t *w, const char *name, char *path, size_t cap) {
  return snprintf(path, cap, "%s/%s", w->dir, name) < (int)cap ? 0 : check(-ENAMETOOLONG, name);
}

static void kinds(uint32_t mask, char *out, size_t cap) {
  static const struct { uint32_t bit; const char *name; } k[] = {
      {IN_CREATE, "CREATE"},   {IN_DELETE, "DELETE"},         {IN_MOVED_FROM, "MOVED_FROM"},
      {IN_MOVED_TO, "MOVED_TO"}, {IN_CLOSE_WRITE, "CLOSE_WRITE"}, {IN_ISDIR, "ISDIR"},
      {IN_IGNORED, "IGNORED"}, {IN_Q_OVERFLOW, "Q_OVERFLOW"},
  };
  out[0] = '\0';
  for (size_t i = 0; i < sizeof k / sizeof k[0]; i++)
    if (mask & k[i].bit)
      snprintf(out + strlen(out), cap - strlen(out), "%s%s", out[0] ? "," : "", k[i].name);
}

/* The demo's next step, chosen by the event that just came. */
static int demo_step(watcher_t *w, const ax_fs_event_t *ev) {
  char a[300], b[300];
  if ((ev->mask & IN_CLOSE_WRITE) && strcmp(ev->name, "hello.txt") == 0) {
    if (in_dir(w, "hello.txt", a, sizeof a) < 0 || in_dir(w, "hello.md", b, sizeof b) < 0)
      return -1;
    return sys(rename(a, b), "rename");
  }
  if ((ev->mask & IN_MOVED_TO) && strcmp(ev->name, "hello.md") == 0)
    return in_dir(w, "sub", a, sizeof a) < 0 ? -1 : sys(mkdir(a, 0700), "mkdir");
  if ((ev->mask & IN_CREATE) && (ev->mask & IN_ISDIR)) {
    if (in_dir(w, "hello.md", a, sizeof a) < 0 || in_dir(w, "sub", b, sizeof b) < 0)
      return -1;
    return sys(unlink(a), "unlink") < 0 ? -1 : sys(rmdir(b), "rmdir");
  }
  if ((ev->mask & IN_DELETE) && (ev->mask & IN_ISDIR)) { /* the last step's event: done */
    printf("demo done: %d events\n", w->events);
    w->status = 0;
    return AX_STOP;
  }
  return 0;
}

static int on_message(ax_actor_t *self, const ax_msg_t *msg) {
  watcher_t *w = ax_state(self);
  if (msg->type != AX_MSG_FS_EVENT)
    return 0;
  const ax_fs_event_t *ev = msg->data;
  char k[96];
  kinds(ev->mask, k, sizeof k);
  w->events++;
  if (ev->mask & IN_Q_OVERFLOW)
    printf("overflow: the kernel's queue was full, events were lost\n");
  else if (ev->mask & IN_MOVED_FROM)
    printf("event: %s %s (cookie %u)\n", k, ev->name, ev->cookie);
  else
    printf("event: %s %s\n", k, ev->name);
  if (ev->mask & IN_MOVED_FROM) { /* remember it: its IN_MOVED_TO has the same cookie */
    w->move_cookie = ev->cookie;
    snprintf(w->move_from, sizeof w->move_from, "%s", ev->name);
  } else if ((ev->mask & IN_MOVED_TO) && ev->cookie == w->move_cookie && ev->cookie != 0) {
    printf("moved: %s -> %s\n", w->move_from, ev->name);
  }
  return w->demo ? demo_step(w, ev) : 0;
}

/* Init hook: watch, then (demo) make the first file; its events start the chain. */
static void start(ax_actor_t *self) {
  watcher_t *w = ax_state(self);
  char path[300];
  int rc = check(ax_fs_watch(self, w->dir, WATCHED, &w->watch), "ax_fs_watch");
  if (rc == 0)
    printf("watching %s\n", w->dir);
  if (rc == 0 && w->demo && (rc = in_dir(w, "hello.txt", path, sizeof path)) == 0) {
    int fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
    rc = sys(fd, "open");
    if (fd >= 0 && (rc = sys((int)write(fd, "hello\n", 6), "write")) == 0)
      rc = sys(close(fd), "close");
  }
  if (rc < 0) {
    w->status = 1;
    check(ax_stop(ax_self(self), rc), "ax_stop");
  }
}

int main(int argc, char **argv) {
  if (argc > 2)
    return fprintf(stderr, "usage: %s [DIR]\n", argv[0]), 2;
  watcher_t w = {.demo = argc == 1, .status = argc == 1 ? 1 : 0};
  if (w.demo) {
    snprintf(w.dir, sizeof w.dir, "/tmp/axon-inotify-XXXXXX");
    if (mkdtemp(w.dir) == NULL) {
      check(-errno, "mkdtemp");
      return 1;
    }
  } else if (snprintf(w.dir, sizeof w.dir, "%s", argv[1]) >= (int)sizeof w.dir) {
    return fprintf(stderr, "inotify: path too long\n"), 2;
  }
  setvbuf(stdout, NULL, _IOLBF, 0);
  ax_rt_opts_t rt_opts = {.cores = 1};
  ax_spawn_opts_t opts = {.init = start};
  ax_rt_t *rt;
  int status = 1;
  if (check(ax_rt_new(&rt_opts, &rt), "ax_rt_new") == 0) {
    if (check(ax_spawn(rt, on_message, &w, &opts, NULL), "ax_spawn") == 0 &&
        check(ax_rt_run(rt), "ax_rt_run") == 0) /* the watcher stopped, or a signal */
      status = w.status;
    if (check(ax_rt_free(rt), "ax_rt_free") < 0) /* the watch ended with its actor */
      status = 1;
  }
  if (w.demo && rmdir(w.dir) < 0) {
    check(-errno, "rmdir");
    status = 1;
  }
  return status;
}
