/* Check suite for files and paths: requests as messages, errors as the kernel says them, close order, owners that stop, fibers, a full disk. */
#include <dirent.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/mount.h>

#include "axon_test.h"

enum { MSG_GO = AX_MSG_USER, MSG_DONE };

static char dir[64]; /* a fresh directory per test */

static void make_dir(void) {
  snprintf(dir, sizeof dir, "/tmp/axon-file-XXXXXX");
  ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void remove_dir(void) {
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  ck_assert_int_eq(system(cmd), 0);
}

static const char *in_dir(char *buf, size_t cap, const char *name) {
  snprintf(buf, cap, "%s/%s", dir, name);
  return buf;
}

/* Makes the file `name` in the directory holding "0123456789"; its path
 * in buf. */
static const char *make_digits(char *buf, size_t cap, const char *name) {
  in_dir(buf, cap, name);
  int fd = open(buf, O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, 0644);
  ck_assert_int_ge(fd, 0);
  ck_assert_int_eq(write(fd, "0123456789", 10), 10);
  close(fd);
  return buf;
}

/* Open descriptors of this process. */
static int open_fds(void) {
  DIR *d = opendir("/proc/self/fd");
  ck_assert_ptr_nonnull(d);
  int n = 0;
  for (struct dirent *e; (e = readdir(d)) != NULL;)
    n += e->d_name[0] != '.';
  closedir(d);
  return n - 1; /* the directory's own */
}

/* Runs body as a fiber on a 2-core runtime whose pool has `threads`
 * threads; the fiber returns 0 when every check passed.  Waits for its
 * DOWN through a port. */
typedef int (*body_fn)(ax_actor_t *self, void *arg);

static ax_rt_t *run_rt;

static void run_fiber(body_fn body, void *arg, unsigned threads) {
  ax_rt_opts_t o = {.cores = 2, .work_threads = threads,
                    .flags = AX_RT_KEEP_ALIVE | AX_RT_NO_SIGNALS};
  ck_assert_int_eq(ax_rt_new(&o, &run_rt), 0);
  ck_assert_int_eq(ax_rt_start(run_rt), 0);
  ax_port_t *port;
  ck_assert_int_eq(ax_port_new(run_rt, &port), 0);
  ax_ref_t f;
  ck_assert_int_eq(ax_spawn_fiber(run_rt, body, arg, NULL, &f), 0);
  /* A monitor from a port is not a thing: poll the fiber's liveness. */
  int64_t until = ax_now() + 30 * 1000000000LL;
  while (ax_send(f, MSG_GO, NULL, 0) == 0) {
    ck_assert_msg(ax_now() < until, "the fiber did not finish");
    test_sleep_ms(2);
  }
  ck_assert_int_eq(ax_port_close(port), 0);
  ax_rt_stop(run_rt);
  ck_assert_int_eq(ax_rt_join(run_rt), 0);
  ck_assert_int_eq(ax_rt_free(run_rt), 0);
}

/* run_fiber(body, NULL, threads) in a fresh directory, which it removes
 * after; no descriptor may be left open. */
static void run_fiber_in_dir(body_fn body, unsigned threads) {
  make_dir();
  int fds = open_fds();
  run_fiber(body, NULL, threads);
  ck_assert_int_eq(open_fds(), fds);
  remove_dir();
}

/* One request's message, awaited by tag; fails the test on a timeout. */
static const ax_file_done_t *await_tag(ax_actor_t *self, uint64_t tag) {
  const ax_file_done_t *d;
  int rc = ax_file_await(self, tag, ax_deadline(10 * 1000000000LL), &d);
  ck_assert_msg(rc == 0, "tag %llu: %s", (unsigned long long)tag, ax_strerror(rc));
  ck_assert_uint_eq(d->tag, tag);
  return d;
}

static ax_file_t *open_ok(ax_actor_t *self, const char *path, int flags) {
  ck_assert_int_eq(ax_file_open(self, path, flags, 0644, 1), 0);
  const ax_file_done_t *d = await_tag(self, 1);
  ck_assert_uint_eq(d->op, AX_FILE_OPEN);
  ck_assert_msg(d->result == 0, "open %s: %s", path, ax_strerror((int)d->result));
  ck_assert_ptr_nonnull(d->file);
  return d->file;
}

static void close_ok(ax_actor_t *self, ax_file_t *f) {
  ck_assert_int_eq(ax_file_close(f, 99), 0);
  const ax_file_done_t *d = await_tag(self, 99);
  ck_assert_uint_eq(d->op, AX_FILE_CLOSE);
  ck_assert_int_eq(d->result, 0);
}

/* ------------------------------------------------------------------------ */

static int body_roundtrip(ax_actor_t *self, void *arg) {
  (void)arg;
  char path[128];
  ax_file_t *f = open_ok(self, in_dir(path, sizeof path, "a"), O_RDWR | O_CREAT | O_TRUNC);
  ck_assert_int_ge(ax_file_fd(f), 0);
  ck_assert_int_eq(ax_file_write(f, 0, "hello, file", 11, 2), 0);
  const ax_file_done_t *d = await_tag(self, 2);
  ck_assert_uint_eq(d->op, AX_FILE_WRITE);
  ck_assert_int_eq(d->result, 11);
  ck_assert_ptr_eq(d->file, f);
  /* A read past the end gives what is there, then 0. */
  ck_assert_int_eq(ax_file_read(f, 7, 100, 3), 0);
  d = await_tag(self, 3);
  ck_assert_int_eq(d->result, 4);
  ck_assert_uint_eq(d->len, 4);
  ck_assert_int_eq(memcmp(d->data, "file", 4), 0);
  ck_assert_int_eq(ax_file_read(f, 11, 10, 4), 0);
  d = await_tag(self, 4);
  ck_assert_int_eq(d->result, 0);
  ck_assert_uint_eq(d->len, 0);
  /* Vectored write, stat, both syncs. */
  struct iovec iov[3] = {{"ab", 2}, {"", 0}, {"cde", 3}};
  ck_assert_int_eq(ax_file_writev(f, 11, iov, 3, 5), 0);
  ck_assert_int_eq(await_tag(self, 5)->result, 5);
  ck_assert_int_eq(ax_file_sync(f, false, 6), 0);
  ck_assert_int_eq(await_tag(self, 6)->result, 0);
  ck_assert_int_eq(ax_file_sync(f, true, 7), 0);
  ck_assert_int_eq(await_tag(self, 7)->result, 0);
  ck_assert_int_eq(ax_file_stat(f, 8), 0);
  d = await_tag(self, 8);
  ck_assert_int_eq(d->result, 0);
  ck_assert_uint_eq(d->len, sizeof(struct stat));
  ck_assert_int_eq(((const struct stat *)d->data)->st_size, 16);
  /* The fiber's blocking forms, with buffers on this stack. */
  char buf[32] = {0};
  ck_assert_int_eq(ax_file_pread(f, buf, sizeof buf, 0), 16);
  ck_assert_int_eq(memcmp(buf, "hello, fileabcde", 16), 0);
  ck_assert_int_eq(ax_file_pwrite(f, "XY", 2, 0), 2);
  char a[3], b[40];
  struct iovec riov[2] = {{a, sizeof a}, {b, sizeof b}};
  ck_assert_int_eq(ax_file_preadv(f, riov, 2, 0), 16);
  ck_assert_int_eq(memcmp(a, "XYl", 3), 0);
  ck_assert_int_eq(memcmp(b, "lo, fileabcde", 13), 0);
  struct iovec wiov[2] = {{"12", 2}, {"34", 2}};
  ck_assert_int_eq(ax_file_pwritev(f, wiov, 2, 16), 4);
  ck_assert_int_eq(ax_file_pread(f, buf, 4, 16), 4);
  ck_assert_int_eq(memcmp(buf, "1234", 4), 0);
  close_ok(self, f);
  return 0;
}

START_TEST(test_file_roundtrip) {
  run_fiber_in_dir(body_roundtrip, 0);
}
END_TEST

static int body_errors(ax_actor_t *self, void *arg) {
  (void)arg;
  char path[128];
  /* Missing, a directory for writing, a write to a read-only file. */
  ck_assert_int_eq(ax_file_open(self, in_dir(path, sizeof path, "none"), O_RDONLY, 0, 10), 0);
  const ax_file_done_t *d = await_tag(self, 10);
  ck_assert_int_eq(d->result, -ENOENT);
  ck_assert_ptr_null(d->file);
  ck_assert_int_eq(ax_file_open(self, dir, O_WRONLY, 0, 11), 0);
  d = await_tag(self, 11);
  ck_assert_int_eq(d->result, -EISDIR);
  ck_assert_ptr_null(d->file);
  ax_file_t *f = open_ok(self, in_dir(path, sizeof path, "ro"), O_RDONLY | O_CREAT);
  ck_assert_int_eq(ax_file_write(f, 0, "x", 1, 12), 0);
  ck_assert_int_eq(await_tag(self, 12)->result, -EBADF);
  ck_assert_int_eq(ax_file_pwrite(f, "x", 1, 0), -EBADF);
  /* Bad arguments fail at once. */
  ck_assert_int_eq(ax_file_open(NULL, path, O_RDONLY, 0, 0), -EINVAL);
  ck_assert_int_eq(ax_file_open(self, NULL, O_RDONLY, 0, 0), -EINVAL);
  ck_assert_int_eq(ax_file_open(self, path, O_RDONLY | O_NONBLOCK, 0, 0), -EINVAL);
  ck_assert_int_eq(ax_file_open(self, path, O_RDONLY | O_DIRECT, 0, 0), -EINVAL);
  /* Offsets past off_t: io_uring read UINT64_MAX (-1) as "the file's
   * position", and read and moved it. */
  char small[4];
  struct iovec one = {"x", 1};
  ck_assert_int_eq(ax_file_read(f, UINT64_MAX, 1, 0), -EINVAL);
  ck_assert_int_eq(ax_file_read(f, (uint64_t)INT64_MAX, 1, 0), -EINVAL);
  ck_assert_int_eq(ax_file_write(f, UINT64_MAX, "x", 1, 0), -EINVAL);
  ck_assert_int_eq(ax_file_writev(f, UINT64_MAX, &one, 1, 0), -EINVAL);
  ck_assert_int_eq(ax_file_pread(f, small, sizeof small, UINT64_MAX), -EINVAL);
  ck_assert_int_eq(ax_file_read(f, (uint64_t)INT64_MAX - 1, 1, 13), 0); /* the last one */
  ck_assert_int_eq(await_tag(self, 13)->result, 0);
  ck_assert_int_eq(ax_file_read(NULL, 0, 1, 0), -EINVAL);
  ck_assert_int_eq(ax_file_read(f, 0, 0, 0), -EINVAL);
  ck_assert_int_eq(ax_file_read(f, 0, AX_FILE_IO_MAX + 1, 0), -EINVAL);
  ck_assert_int_eq(ax_file_write(f, 0, NULL, 1, 0), -EINVAL);
  ck_assert_int_eq(ax_file_writev(f, 0, NULL, 1, 0), -EINVAL);
  struct iovec empty = {NULL, 0};
  ck_assert_int_eq(ax_file_writev(f, 0, &empty, 1, 0), -EINVAL);
  ck_assert_int_eq(ax_path_rename(self, path, NULL, 0), -EINVAL);
  ck_assert_int_eq(ax_file_await(self, 0, 0, NULL), -EINVAL);
  /* Nothing came for a tag never used. */
  ck_assert_int_eq(ax_file_await(self, 4242, 0, &d), -ETIMEDOUT);
  close_ok(self, f);
  return 0;
}

START_TEST(test_file_errors) {
  make_dir();
  run_fiber(body_errors, NULL, 0);
  remove_dir();
}
END_TEST

static int body_paths(ax_actor_t *self, void *arg) {
  (void)arg;
  char p1[128], p2[128], p3[128];
  in_dir(p1, sizeof p1, "sub");
  ck_assert_int_eq(ax_path_mkdir(self, p1, 0755, 1), 0);
  ck_assert_int_eq(await_tag(self, 1)->result, 0);
  ck_assert_int_eq(ax_path_mkdir(self, p1, 0755, 2), 0);
  ck_assert_int_eq(await_tag(self, 2)->result, -EEXIST);
  ax_file_t *f = open_ok(self, in_dir(p2, sizeof p2, "sub/x"), O_WRONLY | O_CREAT);
  close_ok(self, f);
  ck_assert_int_eq(ax_path_rmdir(self, p1, 3), 0);
  ck_assert_int_eq(await_tag(self, 3)->result, -ENOTEMPTY);
  ck_assert_int_eq(ax_path_rename(self, p2, in_dir(p3, sizeof p3, "y"), 4), 0);
  const ax_file_done_t *d = await_tag(self, 4);
  ck_assert_uint_eq(d->op, AX_FILE_RENAME);
  ck_assert_int_eq(d->result, 0);
  ck_assert_ptr_null(d->file);
  ck_assert_int_eq(ax_path_stat(self, p3, 5), 0);
  d = await_tag(self, 5);
  ck_assert_int_eq(d->result, 0);
  ck_assert(S_ISREG(((const struct stat *)d->data)->st_mode));
  ck_assert_int_eq(ax_path_stat(self, p2, 6), 0);
  ck_assert_int_eq(await_tag(self, 6)->result, -ENOENT);
  ck_assert_int_eq(ax_path_unlink(self, p3, 7), 0);
  ck_assert_int_eq(await_tag(self, 7)->result, 0);
  ck_assert_int_eq(ax_path_unlink(self, p3, 8), 0);
  ck_assert_int_eq(await_tag(self, 8)->result, -ENOENT);
  ck_assert_int_eq(ax_path_rmdir(self, p1, 9), 0);
  ck_assert_int_eq(await_tag(self, 9)->result, 0);
  return 0;
}

START_TEST(test_file_paths) {
  make_dir();
  run_fiber(body_paths, NULL, 0);
  remove_dir();
}
END_TEST

/* ------------------------------------------------------------------------ */
/* A close comes after every request made before it                         */

typedef struct order {
  ax_ref_t port;
  char path[128];
  ax_file_t *f;
  int reads, seen, closed_after;
} order_t;

static int order_actor(ax_actor_t *self, const ax_msg_t *msg) {
  order_t *s = ax_state(self);
  if (msg->type == MSG_GO)
    return ax_file_open(self, s->path, O_RDONLY, 0, 0) == 0 ? 0 : -EIO;
  if (msg->type != AX_MSG_FILE)
    return 0;
  const ax_file_done_t *d = msg->data;
  switch (d->op) {
  case AX_FILE_OPEN:
    ck_assert_int_eq(d->result, 0);
    s->f = d->file;
    for (int i = 0; i < s->reads; i++)
      ck_assert_int_eq(ax_file_read(s->f, (uint64_t)i, 1, (uint64_t)i + 1), 0);
    ck_assert_int_eq(ax_file_close(s->f, 1000), 0);
    ck_assert_int_eq(ax_file_read(s->f, 0, 1, 0), -EBADF); /* closing */
    ck_assert_int_eq(ax_file_close(s->f, 1001), -EBADF);
    ck_assert_int_eq(ax_file_fd(s->f), -1);
    return 0;
  case AX_FILE_READ:
    ck_assert_int_eq(d->result, 1);
    ck_assert_int_eq(((const char *)d->data)[0], 'a' + (int)(d->tag - 1) % 26);
    s->seen++;
    return 0;
  case AX_FILE_CLOSE:
    ck_assert_uint_eq(d->tag, 1000);
    ck_assert_int_eq(d->result, 0);
    s->closed_after = s->seen;
    ax_send(s->port, MSG_DONE, NULL, 0);
    return AX_STOP;
  }
  return 0;
}

START_TEST(test_file_close_last) {
  make_dir();
  order_t s = {.reads = 300};
  in_dir(s.path, sizeof s.path, "abc");
  FILE *fp = fopen(s.path, "w");
  for (int i = 0; i < s.reads; i++)
    fputc('a' + i % 26, fp);
  fclose(fp);
  int fds = open_fds();
  ax_rt_opts_t o = {.cores = 2, .work_threads = 4, .flags = AX_RT_KEEP_ALIVE | AX_RT_NO_SIGNALS};
  ax_rt_t *rt;
  ck_assert_int_eq(ax_rt_new(&o, &rt), 0);
  ck_assert_int_eq(ax_rt_start(rt), 0);
  ax_port_t *port;
  ck_assert_int_eq(ax_port_new(rt, &port), 0);
  s.port = ax_port_ref(port);
  ax_ref_t a;
  ck_assert_int_eq(ax_spawn(rt, order_actor, &s, NULL, &a), 0);
  ck_assert_int_eq(ax_send(a, MSG_GO, NULL, 0), 0);
  ax_msg_t m;
  ck_assert_int_eq(ax_port_recv(port, ax_deadline(20 * 1000000000LL), &m), 0);
  ck_assert_int_eq(s.closed_after, s.reads);
  ck_assert_int_eq(ax_port_close(port), 0);
  ax_rt_stop(rt);
  ck_assert_int_eq(ax_rt_join(rt), 0);
  ck_assert_int_eq(ax_rt_free(rt), 0);
  ck_assert_int_eq(open_fds(), fds);
  remove_dir();
}
END_TEST

/* ------------------------------------------------------------------------ */
/* An owner that stops with requests queued and running                      */

static atomic_int gate, gated;

static int64_t wait_gate(void *arg) {
  (void)arg;
  atomic_store(&gated, 1);
  while (!atomic_load(&gate))
    test_sleep_ms(1);
  return 0;
}

typedef struct dying {
  char path[128];
  int files;
} dying_t;

static int dying_actor(ax_actor_t *self, const ax_msg_t *msg) {
  dying_t *s = ax_state(self);
  if (msg->type == MSG_GO) {
    /* The pool's one thread is held: opens queue behind it. */
    ck_assert_int_eq(ax_work_submit(self, wait_gate, NULL, NULL, NULL), 0);
    return ax_file_open(self, s->path, O_RDWR | O_CREAT, 0644, 0) == 0 ? 0 : -EIO;
  }
  if (msg->type == AX_MSG_FILE) {
    const ax_file_done_t *d = msg->data;
    if (d->op == AX_FILE_OPEN) {
      ck_assert_int_eq(d->result, 0);
      for (int i = 0; i < 50; i++) /* queued, never delivered */
        ck_assert_int_eq(ax_file_write(d->file, (uint64_t)i, "z", 1, 0), 0);
      return AX_STOP;
    }
  }
  return 0;
}

START_TEST(test_file_owner_stops) {
  make_dir();
  dying_t s;
  in_dir(s.path, sizeof s.path, "d");
  int fds = open_fds();
  ax_rt_opts_t o = {.cores = 1, .work_threads = 1, .flags = AX_RT_KEEP_ALIVE | AX_RT_NO_SIGNALS};
  ax_rt_t *rt;
  ck_assert_int_eq(ax_rt_new(&o, &rt), 0);
  ck_assert_int_eq(ax_rt_start(rt), 0);
  atomic_store(&gate, 1); /* first: let the open through */
  ax_ref_t a;
  ck_assert_int_eq(ax_spawn(rt, dying_actor, &s, NULL, &a), 0);
  ck_assert_int_eq(ax_send(a, MSG_GO, NULL, 0), 0);
  for (int i = 0; i < 5000 && ax_send(a, MSG_DONE, NULL, 0) == 0; i++)
    test_sleep_ms(1);
  ck_assert_int_eq(ax_send(a, MSG_DONE, NULL, 0), -ESRCH);
  ax_rt_stop(rt);
  ck_assert_int_eq(ax_rt_join(rt), 0);
  ck_assert_int_eq(ax_rt_free(rt), 0);
  ck_assert_int_eq(open_fds(), fds); /* the file closed with its owner */
  remove_dir();
}
END_TEST

/* A fiber stopped in a read that has not completed: the call returns
 * -ECANCELED, its buffer untouched; the read's result is dropped.  On the
 * pool the read waits behind a held thread; on io_uring it reads an empty
 * FIFO, which the kernel keeps waiting until the test writes to it. */
static _Atomic(ax_file_t *) stuck_file;
static bool on_ring(void) { return strcmp(ax_file_backend(), "io_uring") == 0; }

static atomic_int stuck_fd; /* the stuck file's fd */

static int body_stopped(ax_actor_t *self, void *arg) {
  const char *path = arg;
  ax_file_t *f = open_ok(self, path, on_ring() ? O_RDWR : O_RDWR | O_CREAT);
  if (!on_ring()) {
    ck_assert_int_eq(ax_work_submit(self, wait_gate, NULL, NULL, NULL), 0);
    while (!atomic_load(&gated))
      ck_assert_int_eq(ax_sleep(self, 1000000), 0);
  }
  char buf[8] = "unread!";
  atomic_store(&stuck_fd, ax_file_fd(f));
  atomic_store(&stuck_file, f);
  ck_assert_int_eq(ax_file_pread(f, buf, sizeof buf, 0), -ECANCELED);
  ck_assert_int_eq(memcmp(buf, "unread!", 8), 0);
  return 0;
}

/* Runs body(path) as a fiber on a fresh one-core runtime with one pool
 * thread (*rt), and stops it once it is stuck in its request (it sets
 * stuck_file just before it waits, then 50 ms pass).  Returns the fiber. */
static ax_ref_t stop_when_stuck(ax_rt_t **rt, body_fn body, const char *path) {
  atomic_store(&stuck_file, NULL);
  ax_rt_opts_t o = {.cores = 1, .work_threads = 1, .flags = AX_RT_KEEP_ALIVE | AX_RT_NO_SIGNALS};
  ck_assert_int_eq(ax_rt_new(&o, rt), 0);
  ck_assert_int_eq(ax_rt_start(*rt), 0);
  ax_ref_t f;
  ck_assert_int_eq(ax_spawn_fiber(*rt, body, (void *)path, NULL, &f), 0);
  while (atomic_load(&stuck_file) == NULL)
    test_sleep_ms(1);
  test_sleep_ms(50); /* the request is waiting */
  ck_assert_int_eq(ax_stop(f, 0), 0);
  return f;
}

START_TEST(test_file_fiber_stopped) {
  make_dir();
  char path[128];
  in_dir(path, sizeof path, "s");
  if (on_ring())
    ck_assert_int_eq(mkfifo(path, 0600), 0);
  int fds = open_fds();
  atomic_store(&gate, 0);
  atomic_store(&gated, 0);
  ax_rt_t *rt;
  ax_ref_t f = stop_when_stuck(&rt, body_stopped, path);
  for (int i = 0; i < 5000 && ax_send(f, MSG_DONE, NULL, 0) == 0; i++)
    test_sleep_ms(1);
  ck_assert_int_eq(ax_send(f, MSG_DONE, NULL, 0), -ESRCH);
  if (on_ring()) {
    /* The orphaned read of the FIFO, which no writer will ever feed, is
     * cancelled at the owner's death: its file closes while the runtime
     * runs (and the stop below does not wait for it forever). */
    int sfd = atomic_load(&stuck_fd);
    ck_assert_int_ge(sfd, 0);
    for (int i = 0; i < 5000 && fcntl(sfd, F_GETFD) >= 0; i++)
      test_sleep_ms(1);
    ck_assert_msg(fcntl(sfd, F_GETFD) < 0, "the FIFO's fd %d is still open", sfd);
  }
  atomic_store(&gate, 1);
  ax_rt_stop(rt);
  ck_assert_int_eq(ax_rt_join(rt), 0);
  ck_assert_int_eq(ax_rt_free(rt), 0);
  ck_assert_int_eq(open_fds(), fds);
  remove_dir();
}
END_TEST

/* 64 fibers read a file in a loop and the runtime stops: each one's read
 * returns -ECANCELED, on the ring and on the pool alike.  On the pool, a
 * read asked for after the stop began was refused with the pool's
 * -ESHUTDOWN (a newcomer counted 170 of 640 over ten stops). */
static atomic_int stop_cancelled, stop_other, stop_reading;

static int body_read_loop(ax_actor_t *self, void *arg) {
  ax_file_t *f = open_ok(self, arg, O_RDONLY);
  atomic_fetch_add(&stop_reading, 1);
  char buf[512];
  for (;;) {
    ssize_t n = ax_file_pread(f, buf, sizeof buf, 0);
    if (n >= 0 || n == -EAGAIN)
      continue;
    atomic_fetch_add(n == -ECANCELED ? &stop_cancelled : &stop_other, 1);
    if (n != -ECANCELED)
      fprintf(stderr, "a fiber's read at the stop: %s\n", ax_strerror((int)n));
    return 0;
  }
}

START_TEST(test_file_fibers_stop_cancelled) {
  make_dir();
  char path[128];
  make_digits(path, sizeof path, "r");
  atomic_store(&stop_cancelled, 0);
  atomic_store(&stop_other, 0);
  enum { FIBERS = 64, ROUNDS = 5 };
  for (int round = 0; round < ROUNDS; round++) {
    atomic_store(&stop_reading, 0);
    ax_rt_t *rt = test_rt_new(0, AX_RT_KEEP_ALIVE);
    for (int i = 0; i < FIBERS; i++)
      ck_assert_int_eq(ax_spawn_fiber(rt, body_read_loop, path, NULL, NULL), 0);
    test_rt_start(rt);
    /* Every fiber reading (a sanitizer's start is slow), then the stop. */
    TEST_WAIT_UNTIL(atomic_load(&stop_reading) == FIBERS, 20000);
    test_sleep_ms(10);
    test_rt_stop_join_free(rt);
  }
  int other = atomic_load(&stop_other), cancelled = atomic_load(&stop_cancelled);
  ck_assert_int_eq(other, 0);
  ck_assert_int_eq(cancelled, FIBERS * ROUNDS);
  remove_dir();
}
END_TEST

/* A fiber stopped in a read of a FIFO that nobody writes: the read is
 * given up and the FIFO's fd closes while the runtime runs, on io_uring
 * (cancelled) and on the pool alike (its thread gave up within 100 ms; it
 * blocked in read() forever, and ax_rt_join with it). */
static int body_fifo_stuck(ax_actor_t *self, void *arg) {
  ax_file_t *f = open_ok(self, arg, O_RDWR); /* its own writer: the open does not wait */
  char buf[8];
  atomic_store(&stuck_fd, ax_file_fd(f));
  atomic_store(&stuck_file, f);
  ck_assert_int_eq(ax_file_pread(f, buf, sizeof buf, 0), -ECANCELED);
  return 0;
}

START_TEST(test_file_fifo_read_stopped) {
  make_dir();
  char path[128];
  in_dir(path, sizeof path, "idle");
  ck_assert_int_eq(mkfifo(path, 0600), 0);
  int fds = open_fds();
  ax_rt_t *rt;
  (void)stop_when_stuck(&rt, body_fifo_stuck, path);
  int sfd = atomic_load(&stuck_fd);
  ck_assert_int_ge(sfd, 0);
  for (int i = 0; i < 5000 && fcntl(sfd, F_GETFD) >= 0; i++)
    test_sleep_ms(1);
  ck_assert_msg(fcntl(sfd, F_GETFD) < 0, "the FIFO's fd %d is still open (%s)", sfd,
                ax_file_backend());
  ax_rt_stop(rt);
  ck_assert_int_eq(ax_rt_join(rt), 0);
  ck_assert_int_eq(ax_rt_free(rt), 0);
  ck_assert_int_eq(open_fds(), fds);
  remove_dir();
}
END_TEST

/* An actor asks for a close and stops before it completes: the close's
 * fd is closed once.  On io_uring the orphaned close's completion left the
 * fd in the file, and the last reference closed the number again (another
 * thread's file by then, maybe).  close() is interposed: a close of the
 * watched fd that is no longer open is counted. */
static atomic_int watched_fd = -1, double_closes;

/* Exported (the build hides symbols by default), so that it takes the
 * place of libc's for the library. */
static int (*real_close)(int);

/* Resolved before any thread runs (the cores close fds too). */
__attribute__((constructor)) static void find_close(void) {
  real_close = (int (*)(int))dlsym(RTLD_NEXT, "close");
}

__attribute__((visibility("default"))) int close(int fd) {
  if (fd >= 0 && fd == atomic_load(&watched_fd) && fcntl(fd, F_GETFD) < 0)
    atomic_fetch_add(&double_closes, 1);
  return real_close(fd);
}

static int close_then_stop(ax_actor_t *self, const ax_msg_t *m) {
  (void)self;
  if (m->type != AX_MSG_FILE)
    return 0;
  const ax_file_done_t *d = m->data;
  if (d->op != AX_FILE_OPEN || d->file == NULL)
    return -EIO;
  atomic_store(&watched_fd, ax_file_fd(d->file));
  return ax_file_close(d->file, 2) == 0 ? AX_STOP : -EIO; /* stops before the close's answer */
}

static void open_at_init(ax_actor_t *self) {
  char path[128];
  (void)ax_file_open(self, in_dir(path, sizeof path, "c"), O_RDWR | O_CREAT, 0644, 1);
}

START_TEST(test_file_close_then_stop) {
  make_dir();
  int fds = open_fds();
  atomic_store(&double_closes, 0);
  for (int round = 0; round < 20; round++) {
    atomic_store(&watched_fd, -1);
    ax_rt_opts_t o = {.cores = 1, .flags = AX_RT_NO_SIGNALS};
    ax_rt_t *rt;
    ck_assert_int_eq(ax_rt_new(&o, &rt), 0);
    ax_spawn_opts_t so = {.init = open_at_init};
    ck_assert_int_eq(ax_spawn(rt, close_then_stop, NULL, &so, NULL), 0);
    ck_assert_int_eq(ax_rt_run(rt), 0); /* ends with the actor */
    ck_assert_int_eq(ax_rt_free(rt), 0);
    ck_assert_int_ge(atomic_load(&watched_fd), 0);
  }
  atomic_store(&watched_fd, -1);
  ck_assert_msg(atomic_load(&double_closes) == 0, "%d fds closed twice (%s)",
                atomic_load(&double_closes), ax_file_backend());
  ck_assert_int_eq(open_fds(), fds);
  remove_dir();
}
END_TEST

/* A FIFO through the file calls: what was written is read back, with no
 * offset to honour, on the ring and on the pool alike (the pool's pread
 * said -ESPIPE). */
static int body_fifo(ax_actor_t *self, void *arg) {
  (void)arg;
  char path[128];
  in_dir(path, sizeof path, "fifo");
  ck_assert_int_eq(mkfifo(path, 0600), 0);
  ax_file_t *f = open_ok(self, path, O_RDWR); /* its own writer: the open does not wait */
  ck_assert_int_eq(ax_file_pwrite(f, "hello", 5, 0), 5);
  char buf[16];
  ck_assert_int_eq(ax_file_pread(f, buf, sizeof buf, 0), 5); /* what the FIFO held */
  ck_assert_int_eq(memcmp(buf, "hello", 5), 0);
  ck_assert_int_eq(ax_file_write(f, 7, "again", 5, 20), 0);
  ck_assert_int_eq(await_tag(self, 20)->result, 5);
  ck_assert_int_eq(ax_file_read(f, 7, 16, 21), 0);
  const ax_file_done_t *d = await_tag(self, 21);
  ck_assert_int_eq(d->result, 5);
  ck_assert_int_eq(memcmp(d->data, "again", 5), 0);
  close_ok(self, f);
  return 0;
}

START_TEST(test_file_fifo) {
  run_fiber_in_dir(body_fifo, 0);
}
END_TEST

/* Reads of FIFOs nobody writes yet, more of them than the pool has
 * threads: on the pool they wait for their fd on the owner's loop, not on
 * a pool thread, so a regular file's read and other work still run (a
 * newcomer's four such reads took the pool's four threads, and every
 * later request, name lookups included, waited for good).  A write to the
 * same FIFO while its read waits goes through (reads and writes wait
 * apart: a tty's output is not held behind its input), and then each read
 * gets what was written. */
static int64_t work_seven(void *arg) {
  (void)arg;
  return 7;
}

static int body_fifo_waits(ax_actor_t *self, void *arg) {
  (void)arg;
  enum { N = 4 };
  ax_file_t *f[N];
  for (int i = 0; i < N; i++) {
    char path[128], name[16];
    snprintf(name, sizeof name, "w%d", i);
    in_dir(path, sizeof path, name);
    ck_assert_int_eq(mkfifo(path, 0600), 0);
    f[i] = open_ok(self, path, O_RDWR);
    ck_assert_int_eq(ax_file_read(f[i], 0, 16, 100 + (uint64_t)i), 0);
  }
  char path[128];
  ax_file_t *plain = open_ok(self, make_digits(path, sizeof path, "plain"), O_RDONLY);
  ck_assert_int_eq(ax_file_read(plain, 0, 64, 50), 0);
  const ax_file_done_t *d;
  int rc = ax_file_await(self, 50, ax_deadline(3 * AX_NSEC_PER_SEC), &d);
  ck_assert_msg(rc == 0, "a file's read behind %d waiting FIFO reads (%s): %s", N,
                ax_file_backend(), ax_strerror(rc));
  ck_assert_int_eq(d->result, 10);
  ck_assert_int_eq(ax_work_call(self, work_seven, NULL), 7);
  for (int i = 0; i < N; i++) {
    char msg[8];
    snprintf(msg, sizeof msg, "fifo%d", i);
    ck_assert_int_eq(ax_file_pwrite(f[i], msg, 5, 0), 5);
  }
  for (int i = 0; i < N; i++) {
    d = await_tag(self, 100 + (uint64_t)i);
    char want[8];
    snprintf(want, sizeof want, "fifo%d", i);
    ck_assert_int_eq(d->result, 5);
    ck_assert_int_eq(memcmp(d->data, want, 5), 0);
  }
  for (int i = 0; i < N; i++)
    close_ok(self, f[i]);
  close_ok(self, plain);
  return 0;
}

START_TEST(test_file_fifo_reads_wait_on_loop) {
  run_fiber_in_dir(body_fifo_waits, 2);
}
END_TEST

/* Eight actors read one byte each from the same FIFO (each its own open),
 * and one byte comes.  On the pool, the readers woken for it each sent
 * their read to a pool thread, and those that found the FIFO emptied by
 * the first blocked in read(2) for good: their owners' stop could not end
 * them, nor could ax_rt_join (a newcomer: 3 runs of 6).  Their owners stop
 * here, and the runtime must stop and join. */
enum { RACE_READERS = 8, MSG_RACE_OPEN = AX_MSG_USER + 70 };
static char race_path[128];
static _Atomic int race_opened, race_got;

static int race_reader(ax_actor_t *self, const ax_msg_t *m) {
  if (m->type == MSG_RACE_OPEN)
    return ax_file_open(self, race_path, O_RDWR, 0, 1) == 0 ? 0 : -EIO;
  if (m->type != AX_MSG_FILE)
    return 0;
  const ax_file_done_t *d = m->data;
  if (d->op == AX_FILE_OPEN) {
    int rc = d->result == 0 ? ax_file_read(d->file, 0, 1, 2) : (int)d->result;
    atomic_fetch_add(&race_opened, 1);
    return rc == 0 ? 0 : -EIO;
  }
  if (d->op == AX_FILE_READ && d->result == 1)
    atomic_fetch_add(&race_got, 1);
  return 0;
}

START_TEST(test_file_fifo_readers_race) {
  make_dir();
  for (int round = 0; round < 3; round++) {
    char name[16];
    snprintf(name, sizeof name, "race%d", round);
    in_dir(race_path, sizeof race_path, name);
    ck_assert_int_eq(mkfifo(race_path, 0600), 0);
    int w = open(race_path, O_RDWR | O_CLOEXEC);
    ck_assert_int_ge(w, 0);
    atomic_store(&race_opened, 0);
    atomic_store(&race_got, 0);
    ax_rt_t *rt = test_rt_new(2, AX_RT_KEEP_ALIVE | AX_RT_NO_SIGNALS);
    test_rt_start(rt);
    ax_ref_t r[RACE_READERS];
    for (int i = 0; i < RACE_READERS; i++) {
      r[i] = test_spawn(rt, race_reader, NULL, AX_PLACE_CORE, (unsigned)i % 2, NULL, NULL);
      test_send(r[i], MSG_RACE_OPEN, NULL, 0);
    }
    TEST_WAIT_UNTIL(atomic_load(&race_opened) == RACE_READERS, 10000);
    test_sleep_ms(50); /* every read waits */
    ck_assert_int_eq(write(w, "x", 1), 1);
    TEST_WAIT_UNTIL(atomic_load(&race_got) == 1, 10000);
    test_sleep_ms(50); /* the losers have found the FIFO empty */
    for (int i = 0; i < RACE_READERS; i++)
      ck_assert_int_eq(ax_stop(r[i], 0), 0);
    test_rt_stop_join_free(rt); /* hung here: a pool thread blocked in read(2) */
    ck_assert_int_eq(atomic_load(&race_got), 1);
    close(w);
  }
  remove_dir();
}
END_TEST

/* A core whose actor waits for a FIFO's data serves an fd: it sleeps in
 * its poll, which the data ends at once, instead of spinning.  On the pool
 * the wait's watcher was not counted among the core's fds: the core spun
 * (its spin_ns here is 20 s) and looked at its loop only once per
 * millisecond, which capped such reads at one per millisecond while
 * messages kept the core awake (a reviewer: 930 reads/s against 4,700). */
enum { MSG_SLEEP_OPEN = AX_MSG_USER + 71, MSG_SLEEP_READ };
static char sleep_path[128];
static ax_file_t *sleep_file;
static _Atomic int sleep_opened, sleep_got;

static int sleep_reader(ax_actor_t *self, const ax_msg_t *m) {
  if (m->type == MSG_SLEEP_OPEN)
    return ax_file_open(self, sleep_path, O_RDWR, 0, 1) == 0 ? 0 : -EIO;
  if (m->type == MSG_SLEEP_READ)
    return ax_file_read(sleep_file, 0, 1, 2) == 0 ? 0 : -EIO;
  if (m->type != AX_MSG_FILE)
    return 0;
  const ax_file_done_t *d = m->data;
  if (d->op == AX_FILE_OPEN) {
    sleep_file = d->file;
    atomic_store(&sleep_opened, 1);
    return d->result == 0 ? 0 : -EIO;
  }
  if (d->op == AX_FILE_READ && d->result == 1 && memcmp(d->data, "y", 1) == 0)
    atomic_store(&sleep_got, 1);
  return 0;
}

START_TEST(test_file_fifo_wait_sleeps) {
  make_dir();
  in_dir(sleep_path, sizeof sleep_path, "sleeps");
  ck_assert_int_eq(mkfifo(sleep_path, 0600), 0);
  int w = open(sleep_path, O_RDWR | O_CLOEXEC);
  ck_assert_int_ge(w, 0);
  ax_rt_opts_t o = {.cores = 1, .flags = AX_RT_KEEP_ALIVE | AX_RT_NO_SIGNALS,
                    .spin_ns = 20 * AX_NSEC_PER_SEC};
  ax_rt_t *rt;
  ck_assert_int_eq(ax_rt_new(&o, &rt), 0);
  test_rt_start(rt);
  ax_ref_t r = test_spawn(rt, sleep_reader, NULL, AX_PLACE_CORE, 0, NULL, NULL);
  test_send(r, MSG_SLEEP_OPEN, NULL, 0);
  TEST_WAIT_UNTIL(atomic_load(&sleep_opened) == 1, 10000);
  /* The core spins now (it serves no fd, its spin_ns is long): once the
   * read waits, its next idle spell is a sleep. */
  ax_core_stats_t s0, s;
  ck_assert_int_eq(ax_rt_stats(rt, 0, &s0), 0);
  test_send(r, MSG_SLEEP_READ, NULL, 0);
  TEST_WAIT_UNTIL(ax_rt_stats(rt, 0, &s) == 0 && s.sleeps > s0.sleeps, 10000);
  ck_assert_int_eq(write(w, "y", 1), 1);
  TEST_WAIT_UNTIL(atomic_load(&sleep_got) == 1, 10000);
  ck_assert_int_eq(ax_stop(r, 0), 0);
  test_rt_stop_join_free(rt);
  close(w);
  remove_dir();
}
END_TEST

/* Requests beyond the runtime's work_queue are refused with -EAGAIN on
 * both backends (the ring took any number); those taken all complete. */
enum { BOUND_QUEUE = 8, BOUND_TRIES = 64 };

static int body_bound(ax_actor_t *self, void *arg) {
  (void)arg;
  char path[128];
  ax_file_t *f = open_ok(self, in_dir(path, sizeof path, "bound"), O_RDWR | O_CREAT);
  ck_assert_int_eq(ax_file_pwrite(f, "0123456789", 10, 0), 10);
  if (!on_ring()) { /* the pool's one thread waits, so its queue fills whatever the timing */
    ck_assert_int_eq(ax_work_submit(self, wait_gate, NULL, NULL, NULL), 0);
    while (!atomic_load(&gated))
      ck_assert_int_eq(ax_sleep(self, 1000000), 0);
  }
  int taken = 0, refused = 0;
  for (int i = 0; i < BOUND_TRIES; i++) { /* no wait between them: they pile up */
    int rc = ax_file_read(f, 0, 10, 100 + (uint64_t)taken);
    if (rc == -EAGAIN)
      refused++;
    else if (rc == 0)
      taken++;
    else
      ck_abort_msg("ax_file_read: %s", ax_strerror(rc));
  }
  /* The ring submits at the end of the turn: all of them are in flight. */
  ck_assert_int_eq(taken, BOUND_QUEUE);
  ck_assert_int_eq(taken + refused, BOUND_TRIES);
  atomic_store(&gate, 1);
  for (int i = 0; i < taken; i++) {
    const ax_file_done_t *d = await_tag(self, 100 + (uint64_t)i);
    ck_assert_int_eq(d->result, 10);
  }
  close_ok(self, f);
  return 0;
}

START_TEST(test_file_bound) {
  make_dir();
  atomic_store(&gate, 0);
  atomic_store(&gated, 0);
  ax_rt_opts_t o = {.cores = 1, .work_threads = 1, .work_queue = BOUND_QUEUE,
                    .flags = AX_RT_KEEP_ALIVE | AX_RT_NO_SIGNALS};
  ax_rt_t *rt;
  ck_assert_int_eq(ax_rt_new(&o, &rt), 0);
  ck_assert_int_eq(ax_rt_start(rt), 0);
  ax_ref_t f;
  ck_assert_int_eq(ax_spawn_fiber(rt, body_bound, NULL, NULL, &f), 0);
  int64_t until = ax_now() + 30 * 1000000000LL;
  while (ax_send(f, MSG_GO, NULL, 0) == 0) {
    ck_assert_msg(ax_now() < until, "the fiber did not finish");
    test_sleep_ms(2);
  }
  ax_rt_stop(rt);
  ck_assert_int_eq(ax_rt_join(rt), 0);
  ck_assert_int_eq(ax_rt_free(rt), 0);
  remove_dir();
}
END_TEST

/* Many files at once from several fibers: every byte where it belongs. */
static int body_many(ax_actor_t *self, void *arg) {
  int k = (int)(intptr_t)arg;
  for (int i = 0; i < 40; i++) {
    char path[128], name[32];
    snprintf(name, sizeof name, "m%d-%d", k, i);
    ax_file_t *f = open_ok(self, in_dir(path, sizeof path, name), O_RDWR | O_CREAT | O_TRUNC);
    char line[64];
    int n = snprintf(line, sizeof line, "fiber %d file %d\n", k, i);
    ck_assert_int_eq(ax_file_pwrite(f, line, (size_t)n, 0), n);
    char back[64];
    ck_assert_int_eq(ax_file_pread(f, back, sizeof back, 0), n);
    ck_assert_int_eq(memcmp(back, line, (size_t)n), 0);
    close_ok(self, f);
  }
  return 0;
}

static int body_many_parent(ax_actor_t *self, void *arg) {
  (void)arg;
  ax_ref_t kids[8];
  for (int k = 0; k < 8; k++) {
    ax_fiber_opts_t fo = {.monitor = self};
    ck_assert_int_eq(ax_spawn_fiber(ax_actor_rt(self), body_many, (void *)(intptr_t)k, &fo,
                                    &kids[k]),
                     0);
  }
  for (int k = 0; k < 8; k++) {
    const ax_msg_t *m;
    ck_assert_int_eq(ax_recv_type(self, AX_MSG_DOWN, ax_deadline(30 * 1000000000LL), &m), 0);
    ck_assert_int_eq(((const ax_down_t *)m->data)->reason, AX_REASON_NORMAL);
  }
  return 0;
}

START_TEST(test_file_many) {
  run_fiber_in_dir(body_many_parent, 4);
}
END_TEST

/* One request of a batch that the kernel refuses at submission (an open
 * of a path longer than PATH_MAX fails as the ring takes it): the
 * requests queued behind it in the same round are answered too.  The
 * ring's submit took a short count for the whole batch, and they waited
 * for some later request to be handed over with them. */
static int body_refused_entry(ax_actor_t *self, void *arg) {
  (void)arg;
  static char longp[PATH_MAX + 100];
  memset(longp, 'a', sizeof longp - 1);
  longp[0] = '/';
  char path[128], sub[128];
  ck_assert_int_eq(ax_file_open(self, longp, O_RDONLY, 0, 1), 0);
  ck_assert_int_eq(ax_file_open(self, in_dir(path, sizeof path, "b"), O_RDWR | O_CREAT, 0644, 2),
                   0);
  ck_assert_int_eq(ax_path_mkdir(self, in_dir(sub, sizeof sub, "sub"), 0755, 3), 0);
  ck_assert_int_eq(await_tag(self, 1)->result, -ENAMETOOLONG);
  const ax_file_done_t *d = await_tag(self, 2);
  ck_assert_int_eq(d->result, 0);
  ax_file_t *f = d->file;
  ck_assert_int_eq(await_tag(self, 3)->result, 0);
  close_ok(self, f);
  return 0;
}

START_TEST(test_file_refused_entry) {
  make_dir();
  run_fiber(body_refused_entry, NULL, 0);
  remove_dir();
}
END_TEST

/* A kernel that refuses every submission for a while (io_uring_submit
 * says -ENOMEM: interposed).  300 reads in one turn: the ones that found
 * no room in the ring's queue fail with -ENOMEM at once, the ones in the
 * queue go once the kernel takes them again; every read is answered, and
 * the core does not spin meanwhile.  It used to reap and submit in a
 * loop inside the read call until the kernel gave in.  With stop_after,
 * the owner stops right after issuing them: its requests become orphans
 * and are cancelled, which used to reap inside the walk of its requests
 * and read one that the reap had freed (AddressSanitizer). */
struct io_uring;
enum { REFUSED_READS = 300, REFUSED_LEN = 512 };
static int (*real_submit)(struct io_uring *);
static atomic_int submit_refuse, submits_refused;
static atomic_int rf_answered, rf_full, rf_refused;
static ax_file_t *rf_file, *rf_other;
static atomic_int rf_other_fd = -1, rf_other_closed = 1, rf_other_fd_open = 1;
static atomic_int rf_closes; /* closes answered (tags 3 and 4) */

__attribute__((constructor)) static void find_submit(void) {
  real_submit = (int (*)(struct io_uring *))dlsym(RTLD_NEXT, "io_uring_submit");
}

__attribute__((visibility("default"))) int io_uring_submit(struct io_uring *ring);
__attribute__((visibility("default"))) int io_uring_submit(struct io_uring *ring) {
  if (atomic_load(&submit_refuse)) {
    atomic_fetch_add(&submits_refused, 1);
    return -ENOMEM;
  }
  return real_submit(ring);
}

static int refused_reader(ax_actor_t *self, const ax_msg_t *m) {
  bool stop_after = ax_state(self) != NULL;
  if (m->type == MSG_GO) {
    char path[128];
    ck_assert_int_eq(ax_file_open(self, in_dir(path, sizeof path, "data"), O_RDONLY, 0, 1), 0);
    ck_assert_int_eq(ax_file_open(self, in_dir(path, sizeof path, "data"), O_RDONLY, 0, 2), 0);
    return 0;
  }
  if (m->type != AX_MSG_FILE)
    return 0;
  const ax_file_done_t *d = m->data;
  if (d->op == AX_FILE_OPEN) {
    ck_assert_int_eq(d->result, 0);
    if (d->tag == 1)
      rf_file = d->file;
    else
      rf_other = d->file;
    if (rf_file == NULL || rf_other == NULL)
      return 0;
    atomic_store(&submit_refuse, 1);
    for (int i = 0; i < REFUSED_READS; i++)
      ck_assert_int_eq(ax_file_read(rf_file, (uint64_t)i * REFUSED_LEN, REFUSED_LEN, 100 + i), 0);
    /* Behind the reads: waits for a queue entry, then the refusal. */
    atomic_store(&rf_other_fd, ax_file_fd(rf_other));
    ck_assert_int_eq(ax_file_close(rf_other, 3), 0);
    return stop_after ? AX_STOP : 0;
  }
  if (d->op == AX_FILE_CLOSE && d->tag == 3) { /* whatever the ring said, the fd is gone */
    atomic_store(&rf_other_closed, (int)d->result);
    atomic_store(&rf_other_fd_open, fcntl(atomic_load(&rf_other_fd), F_GETFD) >= 0);
    /* The two closes may be answered in either order: the second stops. */
    return atomic_fetch_add(&rf_closes, 1) == 1 ? AX_STOP : 0;
  }
  if (d->op == AX_FILE_READ) {
    if (d->result == REFUSED_LEN)
      atomic_fetch_add(&rf_full, 1);
    else if (d->result == -ENOMEM)
      atomic_fetch_add(&rf_refused, 1);
    else
      ck_abort_msg("read %llu: %lld", (unsigned long long)d->tag, (long long)d->result);
    if (atomic_fetch_add(&rf_answered, 1) + 1 == REFUSED_READS)
      ck_assert_int_eq(ax_file_close(rf_file, 4), 0);
    return 0;
  }
  if (d->op == AX_FILE_CLOSE && d->tag == 4)
    return atomic_fetch_add(&rf_closes, 1) == 1 ? AX_STOP : 0;
  return 0;
}

/* Keeps the core busy while the kernel refuses: a core that flushes
 * every round must still submit on the back-off's timer only. */
static atomic_int rf_pinging;
static int rf_pinger(ax_actor_t *self, const ax_msg_t *m) {
  (void)m;
  if (!atomic_load(&rf_pinging))
    return AX_STOP;
  return ax_send(ax_self(self), MSG_GO, NULL, 0) == 0 ? 0 : AX_STOP;
}

static void refused_run(bool stop_after) {
  make_dir();
  char path[128];
  int fd = open(in_dir(path, sizeof path, "data"), O_WRONLY | O_CREAT, 0644);
  ck_assert_int_ge(fd, 0);
  static char block[REFUSED_READS * REFUSED_LEN];
  memset(block, 'x', sizeof block);
  ck_assert_int_eq(write(fd, block, sizeof block), (ssize_t)sizeof block);
  close(fd);
  bool ring = strcmp(ax_file_backend(), "io_uring") == 0;
  ck_assert(!ring || real_submit != NULL);
  atomic_store(&submit_refuse, 0);
  atomic_store(&submits_refused, 0);
  atomic_store(&rf_answered, 0);
  atomic_store(&rf_full, 0);
  atomic_store(&rf_refused, 0);
  rf_file = rf_other = NULL;
  atomic_store(&rf_other_fd, -1);
  atomic_store(&rf_other_closed, 1);
  atomic_store(&rf_other_fd_open, 1);
  atomic_store(&rf_closes, 0);
  int fds = open_fds();
  ax_rt_opts_t o = {.cores = 1, .flags = AX_RT_NO_SIGNALS};
  ax_rt_t *rt;
  ck_assert_int_eq(ax_rt_new(&o, &rt), 0);
  ax_ref_t a;
  ck_assert_int_eq(ax_spawn(rt, refused_reader, stop_after ? (void *)1 : NULL, NULL, &a), 0);
  ck_assert_int_eq(ax_send(a, MSG_GO, NULL, 0), 0);
  ax_ref_t pinger;
  atomic_store(&rf_pinging, 1);
  ck_assert_int_eq(ax_spawn(rt, rf_pinger, NULL, NULL, &pinger), 0);
  ck_assert_int_eq(ax_send(pinger, MSG_GO, NULL, 0), 0);
  ck_assert_int_eq(ax_rt_start(rt), 0);
  if (ring) {
    TEST_WAIT_UNTIL(atomic_load(&submits_refused) >= 1, 10000);
    if (!stop_after)
      TEST_WAIT_UNTIL(atomic_load(&rf_refused) >= 1, 10000); /* at once, while refused */
    int before = atomic_load(&submits_refused);
    test_sleep_ms(50);
    /* Backs off from 1 ms on a timer: a handful in 50 ms, not one per
     * round of the busy core (thousands before). */
    int refused = atomic_load(&submits_refused) - before;
    ck_assert_msg(refused < 20, "%d submits refused in 50 ms", refused);
  }
  atomic_store(&rf_pinging, 0);
  atomic_store(&submit_refuse, 0);
  ck_assert_int_eq(ax_rt_join(rt), 0); /* the actor stops once all are answered */
  ck_assert_int_eq(ax_rt_free(rt), 0);
  if (!stop_after) {
    ck_assert_int_eq(atomic_load(&rf_answered), REFUSED_READS);
    ck_assert_int_eq(atomic_load(&rf_full) + atomic_load(&rf_refused), REFUSED_READS);
    if (!ring)
      ck_assert_int_eq(atomic_load(&rf_full), REFUSED_READS);
    /* The close that the ring refused closed its fd all the same. */
    int closed = atomic_load(&rf_other_closed), still_open = atomic_load(&rf_other_fd_open);
    ck_assert_msg(closed == 0, "the refused close said %s", ax_strerror(closed));
    ck_assert_msg(!still_open, "the refused close left its fd open");
  }
  ck_assert_int_eq(open_fds(), fds); /* nothing left open, orphans included */
  remove_dir();
}

START_TEST(test_file_submit_refused) { refused_run(false); }
END_TEST

START_TEST(test_file_submit_refused_orphans) { refused_run(true); }
END_TEST

/* ------------------------------------------------------------------------ */
/* A full disk: a 64 KiB tmpfs                                               */

static char small_fs[64];

static const char *tmpfs_missing(void) {
  snprintf(small_fs, sizeof small_fs, "/tmp/axon-tmpfs-XXXXXX");
  if (mkdtemp(small_fs) == NULL)
    return "mkdtemp failed";
  if (mount("axon-test", small_fs, "tmpfs", 0, "size=64k") != 0) {
    rmdir(small_fs);
    return "mounting a tmpfs (needs CAP_SYS_ADMIN)";
  }
  umount(small_fs);
  rmdir(small_fs);
  return NULL;
}

static int body_full(ax_actor_t *self, void *arg) {
  (void)arg;
  char path[128];
  snprintf(path, sizeof path, "%s/big", small_fs);
  ax_file_t *f = open_ok(self, path, O_WRONLY | O_CREAT);
  static char chunk[256 * 1024];
  memset(chunk, 'q', sizeof chunk);
  ck_assert_int_eq(ax_file_write(f, 0, chunk, sizeof chunk, 2), 0);
  const ax_file_done_t *d = await_tag(self, 2);
  /* Either a short count (what fitted) or -ENOSPC, as the kernel says. */
  ck_assert_msg(d->result == -ENOSPC || (d->result > 0 && d->result < (int64_t)sizeof chunk),
                "write to a full tmpfs: %lld", (long long)d->result);
  ck_assert_int_eq(ax_file_pwrite(f, chunk, sizeof chunk, 1 << 20), -ENOSPC);
  close_ok(self, f);
  return 0;
}

START_TEST(test_file_enospc) {
  snprintf(small_fs, sizeof small_fs, "/tmp/axon-tmpfs-XXXXXX");
  ck_assert_ptr_nonnull(mkdtemp(small_fs));
  ck_assert_int_eq(mount("axon-test", small_fs, "tmpfs", 0, "size=64k"), 0);
  run_fiber(body_full, NULL, 0);
  ck_assert_int_eq(umount(small_fs), 0);
  ck_assert_int_eq(rmdir(small_fs), 0);
}
END_TEST

int main(int argc, char **argv) {
  Suite *s = suite_create("file");
  TCase *tc = tcase_create("requests");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_file_roundtrip);
  tcase_add_test(tc, test_file_fifo);
  tcase_add_test(tc, test_file_fifo_reads_wait_on_loop);
  tcase_add_test(tc, test_file_fifo_readers_race);
  tcase_add_test(tc, test_file_fifo_wait_sleeps);
  tcase_add_test(tc, test_file_bound);
  tcase_add_test(tc, test_file_errors);
  tcase_add_test(tc, test_file_paths);
  tcase_add_test(tc, test_file_close_last);
  tcase_add_test(tc, test_file_owner_stops);
  tcase_add_test(tc, test_file_fiber_stopped);
  tcase_add_test(tc, test_file_fibers_stop_cancelled);
  tcase_add_test(tc, test_file_fifo_read_stopped);
  tcase_add_test(tc, test_file_close_then_stop);
  tcase_add_test(tc, test_file_many);
  tcase_add_test(tc, test_file_refused_entry);
  tcase_add_test(tc, test_file_submit_refused);
  tcase_add_test(tc, test_file_submit_refused_orphans);
  suite_add_tcase(s, tc);
  tc = tcase_create("enospc");
  tcase_set_tags(tc, "tmpfs");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_file_enospc);
  suite_add_tcase(s, tc);
  static const test_group_t groups[] = {{"tmpfs", tmpfs_missing}};
  return test_run_groups(s, argc, argv, groups, 1);
}
