/* Check suite for raw fd watches and eventfd sources: one-shot, rearm, -EEXIST/-EPERM, counts, close. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/stat.h>

#include "source_test.h"

/* ------------------------------------------------------------------------ */
/* Helpers                                                                   */

/* A connected TCP pair on loopback: fds[0] the client, fds[1] the server. */
static void tcp_pair(int fds[2]) {
  int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ck_assert_int_ge(l, 0);
  struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  ck_assert_int_eq(bind(l, (struct sockaddr *)&sin, sizeof sin), 0);
  ck_assert_int_eq(listen(l, 1), 0);
  socklen_t len = sizeof sin;
  ck_assert_int_eq(getsockname(l, (struct sockaddr *)&sin, &len), 0);
  fds[0] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ck_assert_int_ge(fds[0], 0);
  ck_assert_int_eq(connect(fds[0], (struct sockaddr *)&sin, sizeof sin), 0);
  fds[1] = accept4(l, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
  ck_assert_int_ge(fds[1], 0);
  close(l);
}

static bool readable(int fd) {
  struct pollfd p = {.fd = fd, .events = POLLIN};
  return poll(&p, 1, 0) == 1;
}

/* ------------------------------------------------------------------------ */
/* Raw fd watches                                                            */

START_TEST(test_sources_fd_errors) {
  ck_assert_int_eq(ax_fd_watch(NULL, 0, AX_READ, NULL), -EINVAL);
  ck_assert_int_eq(ax_fdwatch_rearm(NULL, AX_READ), -EINVAL);
  ck_assert_int_eq(ax_fdwatch_close(NULL), -EINVAL);

  sa_env_t env;
  sa_env_new(&env, 1, 0);
  sa_actor_t a;
  ax_ref_t ref = sa_spawn(&env, &a, 0, 0);
  int fds[2];
  test_pipe(fds);
  ck_assert_int_eq(sa_cmd(&env, ref, CMD_FD_WATCH, 0, -1, AX_READ, NULL, NULL), -EINVAL);
  ck_assert_int_eq(sa_cmd(&env, ref, CMD_FD_WATCH, 0, fds[0], 0, NULL, NULL), -EINVAL);
  ck_assert_int_eq(sa_cmd(&env, ref, CMD_FD_WATCH, 0, fds[0], AX_READ | AX_EDGE, NULL, NULL),
                   -EINVAL);
  ck_assert_int_eq(sa_cmd(&env, ref, CMD_FD_WATCH, 0, fds[0], AX_HUP, NULL, NULL), -EINVAL);
  /* a closed fd number */
  int spare = dup(fds[0]);
  close(spare);
  ck_assert_int_eq(sa_cmd(&env, ref, CMD_FD_WATCH, 0, spare, AX_READ, NULL, NULL), -EINVAL);

  /* Regular files and directories are always ready: refused on every backend. */
  char dir[64];
  temp_dir(dir, sizeof dir);
  char path[128];
  snprintf(path, sizeof path, "%s/file", dir);
  int file = open(path, O_CREAT | O_RDWR | O_CLOEXEC, 0600);
  ck_assert_int_ge(file, 0);
  int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  ck_assert_int_ge(dfd, 0);
  ck_assert_int_eq(sa_cmd(&env, ref, CMD_FD_WATCH, 0, file, AX_READ, NULL, NULL), -EPERM);
  ck_assert_int_eq(sa_cmd(&env, ref, CMD_FD_WATCH, 0, dfd, AX_READ, NULL, NULL), -EPERM);
  ck_assert(test_fd_open(file) && test_fd_open(dfd));
  /* A regular file that supports polling (as sysfs GPIO "value" files
   * do) is accepted: /proc/self/mounts reports AX_PRI when the mount
   * table changes, and nothing before. */
  int mounts = open("/proc/self/mounts", O_RDONLY | O_CLOEXEC);
  ck_assert_int_ge(mounts, 0);
  int64_t mslot;
  ck_assert_int_eq(sa_cmd(&env, ref, CMD_FD_WATCH, 0, mounts, AX_PRI, NULL, &mslot), 0);
  ck_assert(sa_no_event(&env, 50));
  ck_assert_int_eq(sa_cmd(&env, ref, CMD_FD_UNWATCH, (int)mslot, 0, 0, NULL, NULL), 0);
  close(mounts);

  /* A good watch: rearm refuses unknown bits. */
  ck_assert_int_eq(sa_cmd(&env, ref, CMD_FD_WATCH, 0, fds[0], AX_READ, NULL, NULL), 0);
  ck_assert_int_eq(sa_cmd(&env, ref, CMD_FD_REARM, 0, 0, AX_READ | AX_HUP, NULL, NULL),
                   -EINVAL);
  ck_assert_int_eq(sa_cmd(&env, ref, CMD_FD_UNWATCH, 0, 0, 0, NULL, NULL), 0);
  ck_assert(sa_no_event(&env, 50));
  ck_assert_int_eq(atomic_load(&a.violations), 0);
  sa_env_free(&env);
  close(file);
  close(dfd);
  close(fds[0]);
  close(fds[1]);
  remove_tree(dir);
}
END_TEST

START_TEST(test_sources_fd_oneshot_rearm) {
  sa_env_t env;
  sa_env_new(&env, 2, 0);
  sa_actor_t a;
  ax_ref_t ref = sa_spawn(&env, &a, 7, 1);
  int fds[2];
  test_pipe(fds);
  int64_t slot = -1;
  ck_assert_int_eq(sa_cmd(&env, ref, CMD_FD_WATCH, 0, fds[0], AX_READ, NULL, &slot), 0);
  ck_assert(sa_no_event(&env, 50)); /* nothing to read yet */

  test_write_byte(fds[1]);
  const sa_event_t *ev = sa_event(&env, 5000);
  ck_assert_uint_eq(ev->type, AX_MSG_FD_READY);
  ck_assert_int_eq(ev->fd, fds[0]);
  ck_assert_int_eq(ev->slot, (int)slot);
  ck_assert_int_eq(ev->tag, 7);
  ck_assert_int_eq(ev->core, 1);
  ck_assert_uint_eq(ev->revents & AX_READ, AX_READ);
  /* One-shot: the byte is still there, yet nothing more comes. */
  ck_assert(sa_no_event(&env, 100));

  /* Rearming reports the level again; after a drain, rearming waits. */
  for (int round = 0; round < 3; round++) {
    ck_assert_int_eq(sa_cmd(&env, ref, CMD_FD_REARM, (int)slot, 0, AX_READ, NULL, NULL), 0);
    ev = sa_event(&env, 5000);
    ck_assert_uint_eq(ev->type, AX_MSG_FD_READY);
    ck_assert_uint_eq(ev->revents & AX_READ, AX_READ);
    ck_assert(sa_no_event(&env, 30));
  }
  ck_assert_uint_eq(test_drain(fds[0]), 1);
  ck_assert_int_eq(sa_cmd(&env, ref, CMD_FD_REARM, (int)slot, 0, AX_READ, NULL, NULL), 0);
  ck_assert(sa_no_event(&env, 100));
  test_write_byte(fds[1]);
  ev = sa_event(&env, 5000);
  ck_assert_uint_eq(ev->revents & AX_READ, AX_READ);
  ck_assert_uint_eq(test_drain(fds[0]), 1);

  /* Rearming twice (armed already) still gives one message per event;
   * 0 disarms. */
  ck_assert_int_eq(sa_cmd(&env, ref, CMD_FD_REARM, (int)slot, 0, AX_READ, NULL, NULL), 0);
  ck_assert_int_eq(sa_cmd(&env, ref, CMD_FD_REARM, (int)slot, 0, AX_READ, NULL, NULL), 0);
  test_write_byte(fds[1]);
  ev = sa_event(&env, 5000);
  ck_assert_uint_eq(ev->type, AX_MSG_FD_READY);
  ck_assert(sa_no_event(&env, 50));
  ck_assert_int_eq(sa_cmd(&env, ref, CMD_FD_REARM, (int)slot, 0, AX_READ, NULL, NULL), 0);
  ev = sa_event(&env, 5000);
  ck_assert_int_eq(sa_cmd(&env, ref, CMD_FD_REARM, (int)slot, 0, 0, NULL, NULL), 0);
  ck_assert(sa_no_event(&env, 100));

  ck_assert_int_eq(sa_cmd(&env, ref, CMD_FD_UNWATCH, (int)slot, 0, 0, NULL, NULL), 0);
  ck_assert(test_fd_open(fds[0])); /* never axon's to close */
  ck_assert_int_eq(atomic_load(&a.violations), 0);
  sa_env_free(&env);
  close(fds[0]);
  close(fds[1]);
}
END_TEST

START_TEST(test_sources_fd_eexist) {
  sa_env_t env;
  sa_env_new(&env, 2, 0);
  sa_actor_t a, b, c;
  ax_ref_t ra = sa_spawn(&env, &a, 1, 0);
  ax_ref_t rb = sa_spawn(&env, &b, 2, 0);
  ax_ref_t rc = sa_spawn(&env, &c, 3, 1);
  int fds[2];
  test_pipe(fds);
  int64_t slot;
  ck_assert_int_eq(sa_cmd(&env, ra, CMD_FD_WATCH, 0, fds[0], AX_READ, NULL, &slot), 0);
  /* The same fd on the same core: by the same actor or another one. */
  ck_assert_int_eq(sa_cmd(&env, ra, CMD_FD_WATCH, 0, fds[0], AX_WRITE, NULL, NULL), -EEXIST);
  ck_assert_int_eq(sa_cmd(&env, rb, CMD_FD_WATCH, 0, fds[0], AX_READ, NULL, NULL), -EEXIST);
  /* Disarmed, it is still watched. */
  ck_assert_int_eq(sa_cmd(&env, ra, CMD_FD_REARM, (int)slot, 0, 0, NULL, NULL), 0);
  ck_assert_int_eq(sa_cmd(&env, rb, CMD_FD_WATCH, 0, fds[0], AX_READ, NULL, NULL), -EEXIST);
  /* Another core has its own loop. */
  int64_t cslot;
  ck_assert_int_eq(sa_cmd(&env, rc, CMD_FD_WATCH, 0, fds[0], AX_READ, NULL, &cslot), 0);
  test_write_byte(fds[1]);
  const sa_event_t *ev = sa_event(&env, 5000);
  ck_assert_int_eq(ev->tag, 3);
  ck_assert(sa_no_event(&env, 50));
  /* Once unwatched, the fd can be watched again on that core. */
  ck_assert_int_eq(sa_cmd(&env, ra, CMD_FD_UNWATCH, (int)slot, 0, 0, NULL, NULL), 0);
  ck_assert_int_eq(sa_cmd(&env, rb, CMD_FD_WATCH, 0, fds[0], AX_READ, NULL, &slot), 0);
  ev = sa_event(&env, 5000);
  ck_assert_int_eq(ev->tag, 2);
  ck_assert_int_eq(sa_cmd(&env, rb, CMD_FD_UNWATCH, (int)slot, 0, 0, NULL, NULL), 0);
  ck_assert_int_eq(sa_cmd(&env, rc, CMD_FD_UNWATCH, (int)cslot, 0, 0, NULL, NULL), 0);
  ck_assert_int_eq(atomic_load(&a.violations) + atomic_load(&b.violations) +
                       atomic_load(&c.violations),
                   0);
  sa_env_free(&env);
  close(fds[0]);
  close(fds[1]);
}
END_TEST

START_TEST(test_sources_fd_write_pri_hup) {
  sa_env_t env;
  sa_env_new(&env, 1, 0);
  sa_actor_t a;
  ax_ref_t ref = sa_spawn(&env, &a, 0, 0);

  /* AX_WRITE: an empty socket buffer is writable at once. */
  int sp[2];
  ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sp), 0);
  int64_t slot;
  ck_assert_int_eq(sa_cmd(&env, ref, CMD_FD_WATCH, 0, sp[0], AX_WRITE, NULL, &slot), 0);
  const sa_event_t *ev = sa_event(&env, 5000);
  ck_assert_uint_eq(ev->revents, AX_WRITE);
  /* Read and write at once: both bits when both hold. */
  ck_assert_int_eq((int)write(sp[1], "y", 1), 1);
  TEST_WAIT_UNTIL(readable(sp[0]), 5000);
  ck_assert_int_eq(sa_cmd(&env, ref, CMD_FD_REARM, (int)slot, 0, AX_READ | AX_WRITE, NULL, NULL),
                   0);
  ev = sa_event(&env, 5000);
  ck_assert_uint_eq(ev->revents, AX_READ | AX_WRITE);
  ck_assert_int_eq(sa_cmd(&env, ref, CMD_FD_UNWATCH, (int)slot, 0, 0, NULL, NULL), 0);

  /* AX_PRI: TCP urgent data (what a GPIO value file's edge looks like). */
  int tp[2];
  tcp_pair(tp);
  ck_assert_int_eq(sa_cmd(&env, ref, CMD_FD_WATCH, 0, tp[1], AX_PRI, NULL, &slot), 0);
  ck_assert(sa_no_event(&env, 50));
  ck_assert_int_eq((int)send(tp[0], "!", 1, MSG_OOB), 1);
  ev = sa_event(&env, 5000);
  ck_assert_uint_eq(ev->revents & AX_PRI, AX_PRI);
  char oob;
  ck_assert_int_eq((int)recv(tp[1], &oob, 1, MSG_OOB), 1);
  ck_assert_int_eq(oob, '!');
  ck_assert_int_eq(sa_cmd(&env, ref, CMD_FD_UNWATCH, (int)slot, 0, 0, NULL, NULL), 0);

  /* AX_HUP: the writer of a pipe goes away. */
  int fds[2];
  test_pipe(fds);
  ck_assert_int_eq(sa_cmd(&env, ref, CMD_FD_WATCH, 0, fds[0], AX_READ, NULL, &slot), 0);
  close(fds[1]);
  ev = sa_event(&env, 5000);
  ck_assert_uint_eq(ev->revents & AX_HUP, AX_HUP);
  ck_assert(sa_no_event(&env, 50)); /* one-shot, even for a hang-up */
  ck_assert_int_eq(sa_cmd(&env, ref, CMD_FD_UNWATCH, (int)slot, 0, 0, NULL, NULL), 0);

  ck_assert_int_eq(atomic_load(&a.violations), 0);
  sa_env_free(&env);
  close(fds[0]);
  close(sp[0]);
  close(sp[1]);
  close(tp[0]);
  close(tp[1]);
}
END_TEST

START_TEST(test_sources_fd_close) {
  sa_env_t env;
  sa_env_new(&env, 1, 0);
  sa_actor_t a;
  ax_ref_t ref = sa_spawn(&env, &a, 0, 0);
  int fds[2];
  test_pipe(fds);

  /* An FD_READY already queued when the unwatch runs is never delivered.
   * While b holds the core, the byte arrives and the unwatch command is
   * queued; when b lets go, the core polls its loop (posting FD_READY
   * behind the command) before a runs. */
  sa_actor_t b;
  ax_ref_t rb = sa_spawn(&env, &b, 1, 0);
  for (int i = 0; i < 5; i++) {
    int64_t slot;
    ck_assert_int_eq(sa_cmd(&env, ref, CMD_FD_WATCH, 0, fds[0], AX_READ, NULL, &slot), 0);
    sa_hold(rb, &b);
    test_write_byte(fds[1]);
    sa_send(ref, CMD_FD_UNWATCH, (int)slot, 0, 0);
    sa_release(&env, &b, 2);
    ck_assert(sa_no_event(&env, 50));
    ck_assert(test_fd_open(fds[0]));
    ck_assert_uint_eq(test_drain(fds[0]), 1);
  }

  /* After an FD_READY (disarmed), the library closes the fd and a new
   * pipe reuses its number: rearm follows the new file. */
  int64_t slot;
  ck_assert_int_eq(sa_cmd(&env, ref, CMD_FD_WATCH, 0, fds[0], AX_READ, NULL, &slot), 0);
  test_write_byte(fds[1]);
  const sa_event_t *ev = sa_event(&env, 5000);
  ck_assert_uint_eq(ev->revents & AX_READ, AX_READ);
  int old = fds[0];
  close(fds[0]);
  close(fds[1]);
  test_pipe(fds);
  ck_assert_int_eq(fds[0], old);
  ck_assert_int_eq(sa_cmd(&env, ref, CMD_FD_REARM, (int)slot, 0, AX_READ, NULL, NULL), 0);
  ck_assert(sa_no_event(&env, 50));
  test_write_byte(fds[1]);
  ev = sa_event(&env, 5000);
  ck_assert_uint_eq(ev->revents & AX_READ, AX_READ);
  ck_assert_int_eq(sa_cmd(&env, ref, CMD_FD_UNWATCH, (int)slot, 0, 0, NULL, NULL), 0);
  ck_assert_uint_eq(test_drain(fds[0]), 1);

  /* The owner stops: its watch ends, the fd stays open and may be watched
   * again by another actor of the core. */
  ck_assert_int_eq(sa_cmd(&env, ref, CMD_FD_WATCH, 0, fds[0], AX_READ, NULL, NULL), 0);
  ck_assert_int_eq(sa_cmd(&env, ref, CMD_STOP, 0, 0, 0, NULL, NULL), 0);
  TEST_WAIT_UNTIL(atomic_load(&a.terminated) == 1, 5000);
  ck_assert(test_fd_open(fds[0]));
  sa_actor_t c;
  ax_ref_t rc = sa_spawn(&env, &c, 9, 0);
  ck_assert_int_eq(sa_cmd(&env, rc, CMD_FD_WATCH, 0, fds[0], AX_READ, NULL, &slot), 0);
  test_write_byte(fds[1]);
  ev = sa_event(&env, 5000);
  ck_assert_int_eq(ev->tag, 9);
  ck_assert_int_eq(atomic_load(&a.violations) + atomic_load(&b.violations) +
                       atomic_load(&c.violations),
                   0);
  sa_env_free(&env); /* the runtime's stop ends c's watch */
  ck_assert(test_fd_open(fds[0]));
  close(fds[0]);
  close(fds[1]);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* eventfd                                                                   */

typedef struct notifier {
  ax_efd_t *efd;
  int fd;
  int n;
  atomic_int failures;
} notifier_t;

/* Adds 1..n, alternately through ax_efd_notify and a plain write(2). */
static void *notify_thread(void *arg) {
  notifier_t *t = arg;
  for (int i = 1; i <= t->n; i++) {
    uint64_t v = (uint64_t)i;
    int rc;
    do {
      if (i % 2 == 0)
        rc = ax_efd_notify(t->efd, v);
      else
        rc = write(t->fd, &v, sizeof v) == (ssize_t)sizeof v ? 0 : -errno;
    } while (rc == -EAGAIN);
    if (rc != 0)
      atomic_fetch_add(&t->failures, 1);
  }
  return NULL;
}

START_TEST(test_sources_efd_counts) {
  ck_assert_int_eq(ax_efd_open(NULL, NULL), -EINVAL);
  ck_assert_int_eq(ax_efd_fd(NULL), -EINVAL);
  ck_assert_int_eq(ax_efd_notify(NULL, 1), -EINVAL);
  ck_assert_int_eq(ax_efd_close(NULL), -EINVAL);

  sa_env_t env;
  sa_env_new(&env, 2, 0);
  sa_actor_t a, b;
  ax_ref_t ref = sa_spawn(&env, &a, 0, 1);
  ax_ref_t rb = sa_spawn(&env, &b, 1, 1);
  int64_t slot, ptr;
  ck_assert_int_eq(sa_cmd(&env, ref, CMD_EFD_NEW, 0, 0, 0, NULL, &slot), 0);
  ck_assert_int_eq(sa_cmd(&env, ref, CMD_EFD_PTR, (int)slot, 0, 0, NULL, &ptr), 0);
  ax_efd_t *e = (ax_efd_t *)(uintptr_t)ptr;
  int fd = ax_efd_fd(e);
  ck_assert_int_ge(fd, 0);
  ck_assert(sa_no_event(&env, 50));

  /* From the owner, from this thread, and with a plain write(2). */
  ck_assert_int_eq(sa_cmd(&env, ref, CMD_EFD_NOTIFY, (int)slot, 0, 5, NULL, NULL), 0);
  const sa_event_t *ev = sa_event(&env, 5000);
  ck_assert_uint_eq(ev->type, AX_MSG_EVENT);
  ck_assert_int_eq(ev->slot, (int)slot);
  ck_assert_uint_eq(ev->count, 5);
  ck_assert_int_eq(ax_efd_notify(e, 3), 0);
  ev = sa_event(&env, 5000);
  ck_assert_uint_eq(ev->count, 3);
  uint64_t v = 11;
  ck_assert_int_eq((int)write(fd, &v, sizeof v), (int)sizeof v);
  ev = sa_event(&env, 5000);
  ck_assert_uint_eq(ev->count, 11);
  ck_assert_int_eq(ax_efd_notify(e, 0), -EINVAL);
  ck_assert_int_eq(ax_efd_notify(e, UINT64_MAX), -EINVAL);

  /* Notifications made while the core is busy add up into one message. */
  sa_hold(rb, &b);
  for (int i = 0; i < 10; i++)
    ck_assert_int_eq(ax_efd_notify(e, 2), 0);
  sa_release(&env, &b, 1);
  ev = sa_event(&env, 5000);
  ck_assert_uint_eq(ev->count, 20);
  ck_assert(sa_no_event(&env, 50));

  /* A full counter refuses more (-EAGAIN) and loses nothing. */
  sa_hold(rb, &b);
  ck_assert_int_eq(ax_efd_notify(e, UINT64_MAX - 1), 0);
  ck_assert_int_eq(ax_efd_notify(e, 1), -EAGAIN);
  sa_release(&env, &b, 1);
  ev = sa_event(&env, 5000);
  ck_assert(ev->count == UINT64_MAX - 1);

  /* Two threads against a slow owner: every unit arrives, none twice. */
  atomic_store(&a.slow_ms, 2);
  enum { THREADS = 2 };
  int n = (int)test_scaled(2000);
  notifier_t t[THREADS];
  pthread_t th[THREADS];
  for (int i = 0; i < THREADS; i++) {
    t[i] = (notifier_t){.efd = e, .fd = fd, .n = n};
    ck_assert_int_eq(pthread_create(&th[i], NULL, notify_thread, &t[i]), 0);
  }
  for (int i = 0; i < THREADS; i++) {
    ck_assert_int_eq(pthread_join(th[i], NULL), 0);
    ck_assert_int_eq(atomic_load(&t[i].failures), 0);
  }
  uint64_t want = (uint64_t)THREADS * (uint64_t)n * (uint64_t)(n + 1) / 2, got = 0;
  int messages = 0;
  while (got < want) {
    ev = sa_event(&env, 10000);
    ck_assert_uint_eq(ev->type, AX_MSG_EVENT);
    ck_assert_uint_gt(ev->count, 0);
    got += ev->count;
    messages++;
  }
  ck_assert(got == want);
  ck_assert_int_le(messages, THREADS * n);
  ck_assert(sa_no_event(&env, 50));
  atomic_store(&a.slow_ms, 0);

  ck_assert_int_eq(sa_cmd(&env, ref, CMD_EFD_CLOSE, (int)slot, 0, 0, NULL, NULL), 0);
  ck_assert_int_eq(atomic_load(&a.violations) + atomic_load(&b.violations), 0);
  sa_env_free(&env);
}
END_TEST

START_TEST(test_sources_efd_close) {
  sa_env_t env;
  sa_env_new(&env, 1, 0);
  sa_actor_t a, b;
  ax_ref_t ref = sa_spawn(&env, &a, 0, 0);
  ax_ref_t rb = sa_spawn(&env, &b, 1, 0);
  /* An EVENT queued when the close runs is dropped (see fd_close). */
  for (int i = 0; i < 5; i++) {
    int64_t slot, ptr;
    ck_assert_int_eq(sa_cmd(&env, ref, CMD_EFD_NEW, 0, 0, 0, NULL, &slot), 0);
    ck_assert_int_eq(sa_cmd(&env, ref, CMD_EFD_PTR, (int)slot, 0, 0, NULL, &ptr), 0);
    sa_hold(rb, &b);
    ck_assert_int_eq(ax_efd_notify((ax_efd_t *)(uintptr_t)ptr, 1), 0);
    sa_send(ref, CMD_EFD_CLOSE, (int)slot, 0, 0);
    sa_release(&env, &b, 2);
    ck_assert(sa_no_event(&env, 50));
  }
  /* The owner stops: its eventfd is closed with it. */
  int64_t slot, ptr;
  ck_assert_int_eq(sa_cmd(&env, ref, CMD_EFD_NEW, 0, 0, 0, NULL, &slot), 0);
  ck_assert_int_eq(sa_cmd(&env, ref, CMD_EFD_PTR, (int)slot, 0, 0, NULL, &ptr), 0);
  int fd = ax_efd_fd((ax_efd_t *)(uintptr_t)ptr);
  ck_assert(test_fd_open(fd));
  ck_assert_int_eq(sa_cmd(&env, ref, CMD_STOP, 0, 0, 0, NULL, NULL), 0);
  TEST_WAIT_UNTIL(atomic_load(&a.terminated) == 1, 5000);
  ck_assert_int_eq(sa_cmd(&env, rb, CMD_NOP, 0, 0, 0, NULL, NULL), 0);
  ck_assert(!test_fd_open(fd));
  ck_assert_int_eq(atomic_load(&a.violations) + atomic_load(&b.violations), 0);
  sa_env_free(&env);
}
END_TEST

/* ------------------------------------------------------------------------ */

static Suite *sources_suite(void) {
  Suite *s = suite_create("sources");
  TCase *tc = tcase_create("fd");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_sources_fd_errors);
  tcase_add_test(tc, test_sources_fd_oneshot_rearm);
  tcase_add_test(tc, test_sources_fd_eexist);
  tcase_add_test(tc, test_sources_fd_write_pri_hup);
  tcase_add_test(tc, test_sources_fd_close);
  suite_add_tcase(s, tc);

  tc = tcase_create("eventfd");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_sources_efd_counts);
  tcase_add_test(tc, test_sources_efd_close);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return test_run_suite(sources_suite()); }
