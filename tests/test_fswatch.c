/* Check suite for file-system event sources: inotify (shared instances, moves, IN_IGNORED, overflow, window) and fanotify. */
#include <dirent.h>
#include <fcntl.h>
#include <sys/fanotify.h>
#include <sys/inotify.h>
#include <sys/stat.h>

#include "source_test.h"

/* ------------------------------------------------------------------------ */
/* inotify and fanotify                                                      */

/* Waits for the next FS_EVENT and checks its mask bits and name. */
static const sa_event_t *expect_fs(sa_env_t *env, uint32_t mask, const char *name) {
  const sa_event_t *ev = sa_event(env, 10000);
  ck_assert_uint_eq(ev->type, AX_MSG_FS_EVENT);
  ck_assert_msg((ev->mask & mask) == mask, "mask 0x%x, expected 0x%x (name '%s')", ev->mask,
                mask, ev->name);
  ck_assert_str_eq(ev->name, name);
  return ev;
}

static void path_in(char *buf, size_t cap, const char *dir, const char *name) {
  snprintf(buf, cap, "%s/%s", dir, name);
}

START_TEST(test_fswatch_errors) {
  ck_assert_int_eq(ax_fs_watch(NULL, "/tmp", IN_CREATE, NULL), -EINVAL);
  ck_assert_int_eq(ax_fan_watch(NULL, "/tmp", FAN_CLOSE_WRITE, 0, NULL), -EINVAL);
  ck_assert_int_eq(ax_fswatch_close(NULL), -EINVAL);
  sa_env_t env;
  sa_env_new(&env, 1, 0);
  sa_actor_t a;
  ax_ref_t ref = sa_spawn(&env, &a, 0, 0);
  char dir[64], file[128];
  temp_dir(dir, sizeof dir);
  touch(dir, "f");
  path_in(file, sizeof file, dir, "f");
  ck_assert_int_eq(sa_cmd(&env, ref, CMD_FS_WATCH, 0, 0, 0, dir, NULL), -EINVAL);
  ck_assert_int_eq(sa_cmd(&env, ref, CMD_FS_WATCH, 0, 0, IN_ONLYDIR, dir, NULL), -EINVAL);
  ck_assert_int_eq(sa_cmd(&env, ref, CMD_FS_WATCH, 0, 0, IN_CREATE | IN_MASK_ADD, dir, NULL),
                   -EINVAL);
  ck_assert_int_eq(sa_cmd(&env, ref, CMD_FS_WATCH, 0, 0, IN_CREATE | 0x08000000u, dir, NULL),
                   -EINVAL);
  ck_assert_int_eq(sa_cmd(&env, ref, CMD_FS_WATCH, 0, 0, IN_CREATE, "/nonexistent/x", NULL),
                   -ENOENT);
  ck_assert_int_eq(sa_cmd(&env, ref, CMD_FS_WATCH, 0, 0, IN_CREATE | IN_ONLYDIR, file, NULL),
                   -ENOTDIR);
  ck_assert_int_eq(sa_cmd(&env, ref, CMD_FAN_WATCH, 0, 0, 0, dir, NULL), -EINVAL);
  ck_assert_int_eq(sa_cmd(&env, ref, CMD_FAN_WATCH, 0, FAN_MARK_REMOVE, FAN_CLOSE_WRITE, dir,
                          NULL),
                   -EINVAL);
  ck_assert_int_eq(sa_cmd(&env, ref, CMD_FAN_WATCH, 0, 0, FAN_OPEN_PERM, dir, NULL), -EINVAL);
  ck_assert(sa_no_event(&env, 30));
  ck_assert_int_eq(atomic_load(&a.violations), 0);
  sa_env_free(&env);
  remove_tree(dir);
}
END_TEST

START_TEST(test_fswatch_inotify) {
  sa_env_t env;
  sa_env_new(&env, 2, 0);
  sa_actor_t a;
  ax_ref_t ref = sa_spawn(&env, &a, 0, 1);
  char dir[64], p1[128], p2[128];
  temp_dir(dir, sizeof dir);
  int64_t slot;
  uint32_t mask = IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_CLOSE_WRITE;
  ck_assert_int_eq(sa_cmd(&env, ref, CMD_FS_WATCH, 0, 0, mask, dir, &slot), 0);

  touch(dir, "a");
  const sa_event_t *ev = expect_fs(&env, IN_CREATE, "a");
  ck_assert_int_eq(ev->slot, (int)slot);
  ck_assert_int_eq(ev->pid, 0);
  expect_fs(&env, IN_CLOSE_WRITE, "a");
  path_in(p1, sizeof p1, dir, "a");
  path_in(p2, sizeof p2, dir, "b");
  ck_assert_int_eq(rename(p1, p2), 0);
  ev = expect_fs(&env, IN_MOVED_FROM, "a");
  uint32_t cookie = ev->cookie;
  ck_assert_uint_ne(cookie, 0);
  ev = expect_fs(&env, IN_MOVED_TO, "b");
  ck_assert_uint_eq(ev->cookie, cookie);
  ck_assert_int_eq(unlink(p2), 0);
  expect_fs(&env, IN_DELETE, "b");
  path_in(p1, sizeof p1, dir, "sub");
  ck_assert_int_eq(mkdir(p1, 0700), 0);
  expect_fs(&env, IN_CREATE | IN_ISDIR, "sub");
  /* Events the watch did not ask for do not come. */
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  close(fd);
  ck_assert(sa_no_event(&env, 50));

  /* A watched file deleted: IN_DELETE_SELF, then IN_IGNORED (the kernel
   * dropped the watch); unwatching it afterwards is fine. */
  touch(dir, "self");
  path_in(p1, sizeof p1, dir, "self");
  int64_t fslot;
  ck_assert_int_eq(sa_cmd(&env, ref, CMD_FS_WATCH, 0, 0, IN_DELETE_SELF, p1, &fslot), 0);
  expect_fs(&env, IN_CREATE, "self");
  expect_fs(&env, IN_CLOSE_WRITE, "self");
  ck_assert_int_eq(unlink(p1), 0);
  bool self = false, ignored = false, deleted = false;
  for (int i = 0; i < 3; i++) {
    ev = sa_event(&env, 10000);
    ck_assert_uint_eq(ev->type, AX_MSG_FS_EVENT);
    if (ev->slot == (int)fslot) {
      if (ev->mask & IN_DELETE_SELF)
        self = true;
      if (ev->mask & IN_IGNORED) {
        ck_assert(self); /* in order */
        ignored = true;
      }
    } else {
      ck_assert_uint_eq(ev->mask & IN_DELETE, IN_DELETE);
      ck_assert_str_eq(ev->name, "self");
      deleted = true;
    }
  }
  ck_assert(self && ignored && deleted);
  ck_assert_int_eq(sa_cmd(&env, ref, CMD_FS_UNWATCH, (int)fslot, 0, 0, NULL, NULL), 0);
  ck_assert_int_eq(sa_cmd(&env, ref, CMD_FS_UNWATCH, (int)slot, 0, 0, NULL, NULL), 0);
  touch(dir, "after");
  ck_assert(sa_no_event(&env, 50));
  ck_assert_int_eq(atomic_load(&a.violations), 0);
  sa_env_free(&env);
  remove_tree(dir);
}
END_TEST

START_TEST(test_fswatch_shared) {
  sa_env_t env;
  sa_env_new(&env, 2, 0);
  sa_actor_t a, b;
  ax_ref_t ra = sa_spawn(&env, &a, 1, 0);
  ax_ref_t rb = sa_spawn(&env, &b, 2, 1);
  char d1[64], d2[64], p[128];
  temp_dir(d1, sizeof d1);
  temp_dir(d2, sizeof d2);
  /* a: two watches on d1 (one instance, one wd), one on d2; b: one on d1. */
  int64_t c1, x1, w2, bw;
  ck_assert_int_eq(sa_cmd(&env, ra, CMD_FS_WATCH, 0, 0, IN_CREATE, d1, &c1), 0);
  ck_assert_int_eq(sa_cmd(&env, ra, CMD_FS_WATCH, 0, 0, IN_DELETE, d1, &x1), 0);
  ck_assert_int_eq(sa_cmd(&env, ra, CMD_FS_WATCH, 0, 0, IN_CREATE, d2, &w2), 0);
  ck_assert_int_eq(sa_cmd(&env, rb, CMD_FS_WATCH, 0, 0, IN_CREATE | IN_DELETE, d1, &bw), 0);

  touch(d1, "one");
  bool a_seen = false, b_seen = false;
  for (int i = 0; i < 2; i++) {
    const sa_event_t *ev = expect_fs(&env, IN_CREATE, "one");
    ck_assert_uint_eq(ev->mask & IN_DELETE, 0);
    if (ev->tag == 1) {
      ck_assert_int_eq(ev->slot, (int)c1);
      a_seen = true;
    } else {
      ck_assert_int_eq(ev->slot, (int)bw);
      b_seen = true;
    }
  }
  ck_assert(a_seen && b_seen);
  touch(d2, "two");
  ck_assert_int_eq(expect_fs(&env, IN_CREATE, "two")->slot, (int)w2);
  ck_assert(sa_no_event(&env, 30));
  path_in(p, sizeof p, d1, "one");
  ck_assert_int_eq(unlink(p), 0);
  for (int i = 0; i < 2; i++) {
    const sa_event_t *ev = expect_fs(&env, IN_DELETE, "one");
    ck_assert_int_eq(ev->slot, ev->tag == 1 ? (int)x1 : (int)bw);
  }
  /* Dropping one of the two watches on d1 leaves the other working. */
  ck_assert_int_eq(sa_cmd(&env, ra, CMD_FS_UNWATCH, (int)c1, 0, 0, NULL, NULL), 0);
  touch(d1, "three");
  ck_assert_int_eq(expect_fs(&env, IN_CREATE, "three")->tag, 2);
  ck_assert(sa_no_event(&env, 30));
  path_in(p, sizeof p, d1, "three");
  ck_assert_int_eq(unlink(p), 0);
  for (int i = 0; i < 2; i++)
    expect_fs(&env, IN_DELETE, "three");
  ck_assert_int_eq(atomic_load(&a.violations) + atomic_load(&b.violations), 0);
  sa_env_free(&env); /* the owners' deaths end the rest */
  remove_tree(d1);
  remove_tree(d2);
}
END_TEST

/* Flags that change what the kernel does with a watch stay the watch's
 * own, though the watches of one actor on one inode share the kernel's
 * wd: IN_ONESHOT (it made the other watches one-shot too) and
 * IN_EXCL_UNLINK (the others lost the events of unlinked children). */
START_TEST(test_fswatch_flags_stay_own) {
  sa_env_t env;
  sa_env_new(&env, 1, 0);
  sa_actor_t a;
  ax_ref_t ra = sa_spawn(&env, &a, 1, 0);
  char d[64], p[128];
  temp_dir(d, sizeof d);
  for (int order = 0; order < 2; order++) { /* the one-shot watch second, then first */
    int64_t del, once;
    if (order == 0)
      ck_assert_int_eq(sa_cmd(&env, ra, CMD_FS_WATCH, 0, 0, IN_DELETE, d, &del), 0);
    ck_assert_int_eq(sa_cmd(&env, ra, CMD_FS_WATCH, 1, 0, IN_CREATE | IN_ONESHOT, d, &once), 0);
    if (order == 1)
      ck_assert_int_eq(sa_cmd(&env, ra, CMD_FS_WATCH, 0, 0, IN_DELETE, d, &del), 0);
    touch(d, "f1");
    ck_assert_int_eq(expect_fs(&env, IN_CREATE, "f1")->slot, (int)once);
    const sa_event_t *ev = expect_fs(&env, IN_IGNORED, "");
    ck_assert_int_eq(ev->slot, (int)once);
    for (int i = 1; i <= 3; i++) {
      char name[8];
      snprintf(name, sizeof name, "f%d", i);
      if (i > 1)
        touch(d, name); /* the one-shot watch is spent: no event */
      path_in(p, sizeof p, d, name);
      ck_assert_int_eq(unlink(p), 0);
      ev = expect_fs(&env, IN_DELETE, name);
      ck_assert_int_eq(ev->slot, (int)del);
    }
    ck_assert(sa_no_event(&env, 30));
    ck_assert_int_eq(sa_cmd(&env, ra, CMD_FS_UNWATCH, (int)once, 0, 0, NULL, NULL), 0);
    ck_assert_int_eq(sa_cmd(&env, ra, CMD_FS_UNWATCH, (int)del, 0, 0, NULL, NULL), 0);
  }
  /* IN_EXCL_UNLINK on one watch; the other still hears of a write to a
   * child unlinked while open. */
  int64_t excl, mod;
  ck_assert_int_eq(sa_cmd(&env, ra, CMD_FS_WATCH, 0, 0, IN_CREATE | IN_EXCL_UNLINK, d, &excl), 0);
  ck_assert_int_eq(sa_cmd(&env, ra, CMD_FS_WATCH, 1, 0, IN_MODIFY, d, &mod), 0);
  path_in(p, sizeof p, d, "open");
  int fd = open(p, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
  ck_assert_int_ge(fd, 0);
  ck_assert_int_eq(expect_fs(&env, IN_CREATE, "open")->slot, (int)excl);
  ck_assert_int_eq(unlink(p), 0);
  ck_assert_int_eq(write(fd, "x", 1), 1);
  ck_assert_int_eq(expect_fs(&env, IN_MODIFY, "open")->slot, (int)mod);
  ck_assert(sa_no_event(&env, 30));
  close(fd);
  ck_assert_int_eq(atomic_load(&a.violations), 0);
  sa_env_free(&env);
  remove_tree(d);
}
END_TEST

/* Writes v to a /proc/sys file; false if that is not possible. */
static bool write_sysctl(const char *path, long v) {
  FILE *f = fopen(path, "w");
  if (f == NULL)
    return false;
  bool ok = fprintf(f, "%ld\n", v) > 0;
  return fclose(f) == 0 && ok;
}

static long read_sysctl(const char *path) {
  FILE *f = fopen(path, "r");
  long v = -1;
  if (f != NULL) {
    if (fscanf(f, "%ld", &v) != 1)
      v = -1;
    fclose(f);
  }
  return v;
}

/* The window (64 unhandled AX_MSG_FS_EVENT per watch, docs/io/fs.md)
 * checked from inside its owner: more events than that are queued in the
 * kernel while the owner holds its core, then handled slowly; the owner
 * counts the events in flight at each one (test_inflight_t). */
enum { WIN_MARKER = AX_MSG_USER + 1, WIN_HOLD };

typedef struct win_owner {
  const char *dir; /* set before spawning: the directory to watch */
  atomic_int watching; /* 1 once watched, or a negative error */
  atomic_int hold;     /* WIN_HOLD spins while this is set (at most 10 s) */
  atomic_int held;     /* set while WIN_HOLD spins */
  atomic_int violations; /* an event out of order or unexpected, a failed send */
  /* copies of inflight, for the test thread */
  _Atomic uint64_t handled, markers, max_in_flight;
  /* owner core only */
  ax_fswatch_t *w;
  test_inflight_t inflight;
} win_owner_t;

static void win_watch(ax_actor_t *self) {
  win_owner_t *o = ax_state(self);
  int rc = ax_fs_watch(self, o->dir, IN_CREATE, &o->w);
  atomic_store(&o->watching, rc == 0 ? 1 : rc);
}

static int win_behaviour(ax_actor_t *self, const ax_msg_t *m) {
  win_owner_t *o = ax_state(self);
  switch (m->type) {
  case AX_MSG_FS_EVENT: {
    const ax_fs_event_t *f = m->data;
    char want[32];
    snprintf(want, sizeof want, "f%llu", (unsigned long long)o->inflight.handled);
    if (f->watch != o->w || !(f->mask & IN_CREATE) || f->name == NULL ||
        strcmp(f->name, want) != 0) /* each event once, in order */
      atomic_fetch_add(&o->violations, 1);
    if (test_inflight_seen(&o->inflight, self, WIN_MARKER) != 0)
      atomic_fetch_add(&o->violations, 1);
    test_spin_ms(1); /* a slow owner */
    atomic_store(&o->handled, o->inflight.handled);
    break;
  }
  case WIN_MARKER:
    test_inflight_marker(&o->inflight, m);
    atomic_store(&o->max_in_flight, o->inflight.max);
    atomic_store(&o->markers, o->inflight.markers);
    break;
  case WIN_HOLD: {
    int64_t end = ax_now() + 10 * AX_NSEC_PER_SEC;
    atomic_store(&o->held, 1);
    while (atomic_load(&o->hold) && ax_now() < end) {
    }
    atomic_store(&o->held, 0);
    break;
  }
  default:
    atomic_fetch_add(&o->violations, 1);
    break;
  }
  return 0;
}

START_TEST(test_fswatch_window) {
  ax_rt_t *rt = test_rt_new(1, AX_RT_KEEP_ALIVE);
  test_rt_start(rt);
  char dir[64], name[32];
  temp_dir(dir, sizeof dir);
  win_owner_t o;
  memset(&o, 0, sizeof o);
  o.dir = dir;
  atomic_store(&o.hold, 1);
  ax_spawn_opts_t so = {.placement = AX_PLACE_CORE, .core = 0, .init = win_watch};
  ax_ref_t ref = AX_REF_NONE;
  ck_assert_int_eq(ax_spawn(rt, win_behaviour, &o, &so, &ref), 0);
  TEST_WAIT_UNTIL(atomic_load(&o.watching) != 0, 10000);
  int rc = atomic_load(&o.watching);
  ck_assert_msg(rc == 1, "ax_fs_watch: %s", ax_strerror(rc));
  /* The owner holds its core: nothing is read until all n events wait in
   * the kernel, more than the window and than one read takes. */
  ck_assert_int_eq(ax_send(ref, WIN_HOLD, NULL, 0), 0);
  TEST_WAIT_UNTIL(atomic_load(&o.held) == 1, 10000);
  int n = 300;
  for (int i = 0; i < n; i++) {
    snprintf(name, sizeof name, "f%d", i);
    touch(dir, name);
  }
  atomic_store(&o.hold, 0);
  TEST_WAIT_UNTIL(atomic_load(&o.markers) == (uint64_t)n, 20000);
  test_sleep_ms(30); /* nothing more comes */
  ck_assert_uint_eq(atomic_load(&o.handled), (uint64_t)n);
  ck_assert_int_eq(atomic_load(&o.violations), 0);
  /* Never more than the window, and the window reached: the check was not
   * passed by too few events. */
  ck_assert_msg(atomic_load(&o.max_in_flight) == 64,
                "at most %llu events were in flight, expected the window of 64",
                (unsigned long long)atomic_load(&o.max_in_flight));
  test_rt_stop_join_free(rt); /* closes the watch with its owner */
  remove_tree(dir);
}
END_TEST

/* The knob of the "overflow" group. */
static const char *const queue_knob = "/proc/sys/fs/inotify/max_queued_events";

/* The "overflow" group's test (test_group_t): NULL when the knob can be
 * written here (root, and /proc/sys not read-only); writes back what it
 * holds, so nothing changes. */
static const char *overflow_missing(void) {
  long v = read_sysctl(queue_knob);
  if (v <= 0)
    return "cannot read /proc/sys/fs/inotify/max_queued_events";
  if (!write_sysctl(queue_knob, v))
    return "cannot write /proc/sys/fs/inotify/max_queued_events (needs root and a writable "
           "/proc/sys)";
  return NULL;
}

/* Group "overflow": an instance made while max_queued_events is 8 keeps at
 * most 8 events; b holds the core so that nothing is read meanwhile.  Runs
 * only where overflow_missing() finds the knob writable. */
START_TEST(test_fswatch_overflow) {
  sa_env_t env;
  sa_env_new(&env, 1, 0);
  sa_actor_t b, c; /* c lives as long as the runtime: its terminate hook writes it */
  ax_ref_t rb = sa_spawn(&env, &b, 2, 0);
  char dir[64], name[32];
  temp_dir(dir, sizeof dir);
  long saved = read_sysctl(queue_knob);
  ck_assert_int_gt(saved, 0);
  ck_assert(write_sysctl(queue_knob, 8));
  ax_ref_t rc = sa_spawn(&env, &c, 3, 0); /* a new actor: a new instance */
  int64_t cslot;
  int r = sa_cmd(&env, rc, CMD_FS_WATCH, 0, 0, IN_CREATE, dir, &cslot);
  ck_assert(write_sysctl(queue_knob, saved));
  ck_assert_int_eq(r, 0);
  sa_hold(rb, &b);
  for (int i = 0; i < 50; i++) {
    snprintf(name, sizeof name, "o%d", i);
    touch(dir, name);
  }
  sa_release(&env, &b, 1);
  int creates = 0;
  for (;;) {
    const sa_event_t *ev = sa_event(&env, 10000);
    ck_assert_uint_eq(ev->type, AX_MSG_FS_EVENT);
    ck_assert_int_eq(ev->tag, 3);
    if (ev->mask & IN_Q_OVERFLOW) {
      ck_assert_str_eq(ev->name, "");
      break;
    }
    snprintf(name, sizeof name, "o%d", creates++);
    ck_assert_str_eq(ev->name, name);
  }
  ck_assert_int_le(creates, 8);
  ck_assert(sa_no_event(&env, 30));
  /* Reading goes on after the overflow. */
  touch(dir, "later");
  expect_fs(&env, IN_CREATE, "later");
  ck_assert_int_eq(atomic_load(&b.violations) + atomic_load(&c.violations), 0);
  sa_env_free(&env);
  remove_tree(dir);
}
END_TEST

START_TEST(test_fswatch_close) {
  sa_env_t env;
  sa_env_new(&env, 1, 0);
  sa_actor_t a, b;
  ax_ref_t ra = sa_spawn(&env, &a, 1, 0);
  ax_ref_t rb = sa_spawn(&env, &b, 2, 0);
  char dir[64], name[32];
  temp_dir(dir, sizeof dir);
  /* An FS_EVENT queued when the unwatch runs is dropped (see test_sources.c, fd_close);
   * with a second watch of the same instance kept open, or not. */
  int64_t keep;
  ck_assert_int_eq(sa_cmd(&env, ra, CMD_FS_WATCH, 0, 0, IN_DELETE, dir, &keep), 0);
  for (int i = 0; i < 4; i++) {
    int64_t slot;
    ck_assert_int_eq(sa_cmd(&env, ra, CMD_FS_WATCH, 0, 0, IN_CREATE, dir, &slot), 0);
    if (i == 2) {
      ck_assert_int_eq(sa_cmd(&env, ra, CMD_FS_UNWATCH, (int)keep, 0, 0, NULL, NULL), 0);
      keep = -1;
    }
    sa_hold(rb, &b);
    snprintf(name, sizeof name, "c%d", i);
    touch(dir, name);
    sa_send(ra, CMD_FS_UNWATCH, (int)slot, 0, 0);
    sa_release(&env, &b, 2);
    ck_assert(sa_no_event(&env, 50));
  }
  /* The owner stops with a watch open: nothing more comes. */
  ck_assert_int_eq(sa_cmd(&env, ra, CMD_FS_WATCH, 0, 0, IN_CREATE, dir, NULL), 0);
  ck_assert_int_eq(sa_cmd(&env, ra, CMD_STOP, 0, 0, 0, NULL, NULL), 0);
  TEST_WAIT_UNTIL(atomic_load(&a.terminated) == 1, 5000);
  touch(dir, "z");
  ck_assert(sa_no_event(&env, 50));
  ck_assert_int_eq(atomic_load(&a.violations) + atomic_load(&b.violations), 0);
  sa_env_free(&env);
  remove_tree(dir);
}
END_TEST

/* The number of open fds of this process. */
static int count_fds(void) {
  DIR *d = opendir("/proc/self/fd");
  ck_assert_ptr_nonnull(d);
  int n = 0;
  while (readdir(d) != NULL)
    n++;
  closedir(d);
  return n;
}

START_TEST(test_fswatch_fan_unprivileged) {
  ck_assert(test_drop_capability(CAP_SYS_ADMIN));
  sa_env_t env;
  sa_env_new(&env, 1, 0);
  sa_actor_t a;
  ax_ref_t ref = sa_spawn(&env, &a, 0, 0);
  ck_assert_int_eq(sa_cmd(&env, ref, CMD_FAN_WATCH, 0, 0, FAN_CLOSE_WRITE, "/tmp", NULL), -EPERM);
  sa_env_free(&env);
}
END_TEST

/* The "fanotify" group's test (test_group_t): NULL when this process may
 * make a fanotify instance as ax_fan_watch does (CAP_SYS_ADMIN). */
static const char *fanotify_missing(void) {
  int fd = fanotify_init(FAN_CLASS_NOTIF | FAN_CLOEXEC | FAN_NONBLOCK,
                         O_RDONLY | O_LARGEFILE | O_CLOEXEC);
  if (fd >= 0) {
    close(fd);
    return NULL;
  }
  if (errno == EPERM)
    return "fanotify_init() refused: no CAP_SYS_ADMIN";
  return "fanotify_init() failed: no fanotify in this kernel?";
}

/* Group "fanotify": runs only where fanotify_missing() finds nothing
 * missing. */
START_TEST(test_fswatch_fanotify) {
  sa_env_t env;
  sa_env_new(&env, 2, 0);
  sa_actor_t a, b;
  ax_ref_t ref = sa_spawn(&env, &a, 0, 1);
  ax_ref_t rb = sa_spawn(&env, &b, 1, 1);
  char dir[64], file[128];
  temp_dir(dir, sizeof dir);
  int64_t slot;
  int rc = sa_cmd(&env, ref, CMD_FAN_WATCH, 0, 0, FAN_CLOSE_WRITE | FAN_EVENT_ON_CHILD, dir,
                  &slot);
  ck_assert_msg(rc == 0, "ax_fan_watch: %s", ax_strerror(rc));
  int fds_before = count_fds();
  for (int i = 0; i < 3; i++) {
    char name[16];
    snprintf(name, sizeof name, "w%d", i);
    touch(dir, name);
    path_in(file, sizeof file, dir, name);
    const sa_event_t *ev = expect_fs(&env, FAN_CLOSE_WRITE, file);
    ck_assert_int_eq(ev->slot, (int)slot);
    ck_assert_int_eq(ev->pid, (int32_t)getpid());
  }
  /* A file deleted before its core read the event: the path it had, not
   * the kernel's "<path> (deleted)". */
  sa_hold(ref, &a);
  touch(dir, "gone");
  path_in(file, sizeof file, dir, "gone");
  ck_assert_int_eq(unlink(file), 0);
  sa_release(&env, &a, 1);
  expect_fs(&env, FAN_CLOSE_WRITE, file);
  /* Each event's fd was closed: none leaked into this process. */
  ck_assert(sa_no_event(&env, 30));
  ck_assert_int_eq(count_fds(), fds_before);
  /* Close: an event queued when the unwatch runs is dropped. */
  sa_hold(rb, &b);
  touch(dir, "late");
  sa_send(ref, CMD_FS_UNWATCH, (int)slot, 0, 0);
  sa_release(&env, &b, 2);
  ck_assert(sa_no_event(&env, 50));
  ck_assert_int_eq(atomic_load(&a.violations) + atomic_load(&b.violations), 0);
  sa_env_free(&env);
  remove_tree(dir);
}
END_TEST

static Suite *fswatch_suite(void) {
  Suite *s = suite_create("fswatch");
  TCase *tc = tcase_create("inotify");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_fswatch_errors);
  tcase_add_test(tc, test_fswatch_inotify);
  tcase_add_test(tc, test_fswatch_shared);
  tcase_add_test(tc, test_fswatch_flags_stay_own);
  tcase_add_test(tc, test_fswatch_window);
  tcase_add_test(tc, test_fswatch_close);
  suite_add_tcase(s, tc);
  tc = tcase_create("unprivileged");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_fswatch_fan_unprivileged);
  suite_add_tcase(s, tc);
  tc = tcase_create("overflow"); /* a CTest entry of its own: sources_fswatch_overflow */
  tcase_set_tags(tc, "overflow");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_fswatch_overflow);
  suite_add_tcase(s, tc);
  tc = tcase_create("fanotify"); /* a CTest entry of its own: sources_fswatch_fanotify */
  tcase_set_tags(tc, "fanotify");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_fswatch_fanotify);
  suite_add_tcase(s, tc);
  return s;
}

/* Without an argument: every TCase but the groups'; "overflow" or
 * "fanotify": that group, or SKIP (77) when what it needs is missing
 * (test_run_groups). */
int main(int argc, char **argv) {
  static const test_group_t groups[] = {{"overflow", overflow_missing},
                                        {"fanotify", fanotify_missing}};
  return test_run_groups(fswatch_suite(), argc, argv, groups, sizeof groups / sizeof groups[0]);
}
