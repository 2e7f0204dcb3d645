/* file-tail: follows a growing file like `tail -F`, never blocking a core on the disk.  The
 * "tailer" actor watches PATH with ax_fs_watch; on each change it asks for the file's size
 * (ax_file_stat) and reads the new bytes at its offset (ax_file_read): requests that complete as
 * AX_MSG_FILE messages.  It keeps a partial last line until its '\n' comes and sends each line to
 * the "printer" actor on the other core, which numbers and prints it.  A file truncated, or moved
 * or deleted (once read to its end), is closed and PATH read afresh from its start once it
 * exists (a note on stderr says so).  It starts at the end of the file, or at its start with
 * --from-start, and exits 0 after COUNT lines, or on SIGINT or SIGTERM.
 * Run: build/examples/file-tail [--from-start] PATH [COUNT]
 *      (try: touch /tmp/log; build/examples/file-tail /tmp/log &  echo hi >>/tmp/log) */
#include <axon.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>

#define WATCHED (IN_MODIFY | IN_ATTRIB | IN_MOVE_SELF | IN_DELETE_SELF)
#define CHUNK ((uint64_t)64 << 10) /* the most one read asks for */
#define AT_END UINT64_MAX          /* the offset until the first stat: the end of the file */
enum { MSG_LINE = AX_MSG_USER, MSG_RETRY };

typedef struct tail {
  const char *path;
  ax_ref_t printer;
  ax_fswatch_t *watch;      /* NULL while none */
  ax_file_t *file;
  uint64_t off;             /* the next byte to read */
  bool busy, dirty, failed; /* a request is in flight; a change came meanwhile; main's status */
  bool gone, reopening;     /* PATH names another file now; opening it afresh (waiting for it) */
  size_t len;               /* bytes of the partial line in part (a longer one comes in pieces) */
  char part[4096];
} tail_t;

typedef struct printer { long count, lines; } printer_t;

static int check(int rc, const char *what) {
  return rc < 0 ? fprintf(stderr, "file-tail: %s: %s\n", what, ax_strerror(rc)), rc : rc;
}

/* The tailer's failures: reported, and the runtime stops.  Returns what its behaviour returns. */
static int fail(ax_actor_t *self, int rc, const char *what) {
  if (check(rc, what) >= 0)
    return 0;
  ((tail_t *)ax_state(self))->failed = true; /* for main */
  ax_rt_stop(ax_actor_rt(self));
  return AX_STOP;
}

/* Opens PATH (busy until its message, which brings the file: then the watch and a stat). */
static int open_path(ax_actor_t *self, tail_t *t) {
  return fail(self, ax_file_open(self, t->path, O_RDONLY, 0, 0), "ax_file_open");
}

static void start(ax_actor_t *self) { (void)open_path(self, ax_state(self)); }

/* A change was announced, or a read ended: asks for the size, one request at a time. */
static int pull(ax_actor_t *self, tail_t *t) {
  if ((t->dirty = t->busy))
    return 0;
  t->busy = true;
  return fail(self, ax_file_stat(t->file, 0), "ax_file_stat");
}

static int on_stat(ax_actor_t *self, tail_t *t, const struct stat *st) {
  uint64_t size = (uint64_t)st->st_size;
  if (t->off == AT_END)
    printf("following %s from byte %llu\n", t->path, (unsigned long long)(t->off = size));
  if (size > t->off) /* news */
    return fail(self, ax_file_read(t->file, t->off, size - t->off < CHUNK ? size - t->off : CHUNK,
                                   0), "ax_file_read");
  if (size == t->off && !t->gone && st->st_nlink > 0) { /* all read: wait for a change */
    t->busy = false;
    return t->dirty ? pull(self, t) : 0;
  }
  fprintf(stderr, "file-tail: %s: %s, reading it afresh from its start\n", t->path,
          size < t->off ? "truncated" : "moved or deleted");
  int rc = t->watch != NULL ? ax_fswatch_close(t->watch) : 0;
  t->watch = NULL, t->gone = false, t->reopening = true, t->off = t->len = 0;
  return fail(self, rc < 0 ? rc : ax_file_close(t->file, 0), "closing"); /* still busy */
}

static int tailer(ax_actor_t *self, const ax_msg_t *msg) {
  tail_t *t = ax_state(self);
  const ax_file_done_t *d = msg->data;
  if (msg->type == AX_MSG_FS_EVENT) {
    t->gone |= (((const ax_fs_event_t *)msg->data)->mask & (IN_MOVE_SELF | IN_DELETE_SELF)) != 0;
    return pull(self, t);
  }
  if (msg->type != AX_MSG_FILE) /* MSG_RETRY: look for PATH again */
    return msg->type == MSG_RETRY ? open_path(self, t) : 0;
  if (d->op == AX_FILE_OPEN && d->result == -ENOENT && t->reopening) /* not there yet */
    return fail(self, ax_after(self, 100000000, MSG_RETRY, NULL, 0, NULL), "ax_after");
  if (d->result < 0)
    return fail(self, (int)d->result, t->path);
  int rc = 0;
  switch (d->op) {
  case AX_FILE_OPEN: /* watched after the open and before the stat: no change is missed */
    if ((rc = ax_fs_watch(self, t->path, WATCHED, &t->watch)) < 0 && rc != -ENOENT)
      return fail(self, rc, "ax_fs_watch");
    t->file = d->file, t->busy = t->reopening = false, t->gone = rc < 0; /* gone already */
    return pull(self, t);
  case AX_FILE_STAT:
    return on_stat(self, t, d->data);
  case AX_FILE_READ: /* split into lines; the last one waits in part for its '\n' */
    for (size_t i = 0; i < d->len; i++) {
      char c = ((const char *)d->data)[i];
      bool cut = c == '\n' || t->len == sizeof t->part;
      if (cut && (rc = ax_send(t->printer, MSG_LINE, t->part, t->len)) < 0)
        return rc == -ESRCH ? AX_STOP : fail(self, rc, "ax_send"); /* -ESRCH: printer done */
      t->len = cut ? 0 : t->len;
      if (c != '\n')
        t->part[t->len++] = c;
    }
    t->off += d->len, t->busy = false;
    return pull(self, t);
  default: /* AX_FILE_CLOSE: the old file is closed */
    return open_path(self, t);
  }
}

static int printer(ax_actor_t *self, const ax_msg_t *msg) {
  printer_t *p = ax_state(self);
  if (msg->type == MSG_LINE)
    printf("%ld: %.*s\n", ++p->lines, (int)msg->size, msg->size ? (const char *)msg->data : "");
  if (p->lines == p->count) /* COUNT lines: done */
    ax_rt_stop(ax_actor_rt(self));
  return p->lines == p->count ? AX_STOP : 0;
}

int main(int argc, char **argv) {
  int a = argc > 1 && strcmp(argv[1], "--from-start") == 0 ? 2 : 1;
  tail_t t = {.path = argv[a], .off = a == 2 ? 0 : AT_END, .busy = true};
  char *end = NULL;
  printer_t p = {.count = argc - a == 2 ? strtol(argv[a + 1], &end, 10) : -1};
  if (argc - a < 1 || argc - a > 2 || (end != NULL && (*end != '\0' || p.count <= 0)))
    return fprintf(stderr, "usage: %s [--from-start] PATH [COUNT]\n", argv[0]), 2;
  setvbuf(stdout, NULL, _IOLBF, 0);
  ax_rt_t *rt;
  int status = 1;
  if (check(ax_rt_new(&(ax_rt_opts_t){.cores = 2}, &rt), "ax_rt_new") == 0) {
    if (check(ax_spawn(rt, printer, &p, NULL, &t.printer), "ax_spawn") == 0 &&
        check(ax_spawn(rt, tailer, &t, &(ax_spawn_opts_t){.init = start}, NULL), "ax_spawn") == 0 &&
        check(ax_rt_run(rt), "ax_rt_run") == 0) /* COUNT lines, a failure, or a signal */
      status = t.failed;
    status = check(ax_rt_free(rt), "ax_rt_free") < 0 ? 1 : status;
  }
  return status;
}
