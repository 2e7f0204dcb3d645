/* Check suite for file-system event sources: inotify (shared instances, moves, IN_IGNORED, overflow, window) and fanotify. */
#include <dirent.h>
#include <linux/capability.h>
#include <sys/fanotify.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/syscall.h>

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

START_TEST(test_fswatch_overflow_and_window) {
  sa_env_t env;
  sa_env_new(&env, 1, 0);
  sa_actor_t a, b, c; /* c lives as long as the runtime: its terminate hook writes it */
  ax_ref_t ra = sa_spawn(&env, &a, 1, 0);
  ax_ref_t rb = sa_spawn(&env, &b, 2, 0);
  char dir[64], name[32];
  temp_dir(dir, sizeof dir);

  /* Back-pressure: a slow owner, more events than its window; every one
   * arrives, in order. */
  int64_t slot;
  ck_assert_int_eq(sa_cmd(&env, ra, CMD_FS_WATCH, 0, 0, IN_CREATE, dir, &slot), 0);
  atomic_store(&a.slow_ms, 1);
  int n = 300;
  for (int i = 0; i < n; i++) {
    snprintf(name, sizeof name, "f%d", i);
    touch(dir, name);
  }
  for (int i = 0; i < n; i++) {
    snprintf(name, sizeof name, "f%d", i);
    expect_fs(&env, IN_CREATE, name);
  }
  ck_assert(sa_no_event(&env, 30));
  atomic_store(&a.slow_ms, 0);
  ax_core_stats_t st;
  ck_assert_int_eq(ax_rt_stats(env.rt, 0, &st), 0);
  ck_assert_uint_le(st.turn_max, 64); /* the window per watch */
  ck_assert_int_eq(sa_cmd(&env, ra, CMD_FS_UNWATCH, (int)slot, 0, 0, NULL, NULL), 0);

  /* Overflow: an instance made while max_queued_events is 8 keeps at most
   * 8 events; b holds the core so that nothing is read meanwhile. */
  const char *knob = "/proc/sys/fs/inotify/max_queued_events";
  long saved = read_sysctl(knob);
  if (saved <= 0 || !write_sysctl(knob, 8)) {
    fprintf(stderr, "test_fswatch_overflow: cannot lower %s, overflow part skipped\n", knob);
  } else {
    ax_ref_t rc = sa_spawn(&env, &c, 3, 0); /* a new actor: a new instance */
    int64_t cslot;
    int r = sa_cmd(&env, rc, CMD_FS_WATCH, 0, 0, IN_CREATE, dir, &cslot);
    ck_assert(write_sysctl(knob, saved));
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
    ck_assert_int_eq(atomic_load(&c.violations), 0);
  }
  ck_assert_int_eq(atomic_load(&a.violations) + atomic_load(&b.violations), 0);
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

/* Drops CAP_SYS_ADMIN from this thread's effective and permitted sets
 * (threads it creates afterwards inherit that). */
static bool drop_sys_admin(void) {
  struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
  struct __user_cap_data_struct data[2];
  if (syscall(SYS_capget, &hdr, data) != 0)
    return false;
  data[CAP_SYS_ADMIN / 32].effective &= ~(1u << (CAP_SYS_ADMIN % 32));
  data[CAP_SYS_ADMIN / 32].permitted &= ~(1u << (CAP_SYS_ADMIN % 32));
  return syscall(SYS_capset, &hdr, data) == 0;
}

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
  ck_assert(drop_sys_admin());
  sa_env_t env;
  sa_env_new(&env, 1, 0);
  sa_actor_t a;
  ax_ref_t ref = sa_spawn(&env, &a, 0, 0);
  ck_assert_int_eq(sa_cmd(&env, ref, CMD_FAN_WATCH, 0, 0, FAN_CLOSE_WRITE, "/tmp", NULL), -EPERM);
  sa_env_free(&env);
}
END_TEST

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
  if (rc == -EPERM) {
    fprintf(stderr, "test_fswatch_fanotify: no CAP_SYS_ADMIN, skipped\n");
    sa_env_free(&env);
    remove_tree(dir);
    return;
  }
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
  tcase_add_test(tc, test_fswatch_overflow_and_window);
  tcase_add_test(tc, test_fswatch_close);
  suite_add_tcase(s, tc);
  tc = tcase_create("fanotify");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_fswatch_fan_unprivileged);
  tcase_add_test(tc, test_fswatch_fanotify);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return test_run_suite(fswatch_suite()); }
