/* Broadcast to a process group against one ax_send per recipient: time per delivery and memory at the peak. */
/*
 * A broadcaster actor sends `rounds` messages of one size to N members
 * spread over the runtime's cores; each member counts what it got and
 * tells the main thread's port when it has them all.  Three ways:
 *
 *   loop    a loop of ax_send, one per member (what a program did before
 *           groups: a copy of the payload per recipient)
 *   group   ax_group_send (a copy each up to AX_GROUP_COPY_MAX bytes, one
 *           shared copy above)
 *   shared  ax_group_send_shared with a buffer the broadcaster made once
 *
 * Every way runs in a child process of its own, so that its peak resident
 * memory (getrusage's ru_maxrss, less the child's RSS before the run) is
 * its own.  The table gives nanoseconds per delivered message (the whole
 * run's wall time over N * rounds) and the peak growth, medians of -r
 * runs, and each way's ratio to the loop.  No figure is asserted; --quick
 * runs small sizes and checks that every member got every message.
 *
 *   bench_group [--quick] [-n members] [-k rounds] [-c cores] [-r runs]
 */
#include <stdatomic.h>
#include <sys/resource.h>

#include <axon.h>

#include "bench_util.h"

enum { MSG_GO = AX_MSG_USER, MSG_DATA, MSG_DONE };
enum { WAY_LOOP, WAY_GROUP, WAY_SHARED, WAYS };
static const char *const way_names[WAYS] = {"loop", "group", "shared"};

static struct {
  long members, rounds, runs;
  unsigned cores;
  bool quick;
} cfg = {10000, 20, 3, 2, false};

typedef struct bcast {
  int way;
  size_t size;
  long rounds;
  ax_group_t *group;
  ax_ref_t *members;
  long n;
} bcast_t;

static ax_ref_t done_port;

static int member(ax_actor_t *self, const ax_msg_t *m) {
  uintptr_t *got = ax_state(self);
  if (m->type != MSG_DATA)
    return 0;
  /* Read the payload's ends, as a real receiver would. */
  const uint8_t *p = m->data;
  if (p[0] != 0x42 || p[m->size - 1] != 0x42)
    bench_die("member: payload damaged");
  if (++*got == (uintptr_t)cfg.rounds)
    BENCH_AX(ax_send(done_port, MSG_DONE, NULL, 0));
  return 0;
}

static int broadcaster(ax_actor_t *self, const ax_msg_t *m) {
  bcast_t *b = ax_state(self);
  (void)m;
  uint8_t *payload = b->way == WAY_SHARED ? ax_shared_new(b->size) : malloc(b->size);
  if (payload == NULL)
    bench_die("out of memory");
  memset(payload, 0x42, b->size);
  for (long r = 0; r < b->rounds; r++) {
    switch (b->way) {
    case WAY_LOOP:
      for (long i = 0; i < b->n; i++)
        BENCH_AX(ax_send(b->members[i], MSG_DATA, payload, b->size));
      break;
    case WAY_GROUP:
      if (ax_group_send(b->group, MSG_DATA, payload, b->size) != b->n)
        bench_die("ax_group_send reached fewer members than it has");
      break;
    case WAY_SHARED:
      if (ax_group_send_shared(b->group, MSG_DATA, payload, b->size) != b->n)
        bench_die("ax_group_send_shared reached fewer members than it has");
      break;
    }
  }
  if (b->way == WAY_SHARED)
    ax_shared_unref(payload);
  else
    free(payload);
  return AX_STOP;
}

static long rss_kib(void) {
  FILE *f = fopen("/proc/self/statm", "r");
  long pages = 0, res = 0;
  if (f == NULL || fscanf(f, "%ld %ld", &pages, &res) != 2)
    bench_die("/proc/self/statm unreadable");
  fclose(f);
  return res * (sysconf(_SC_PAGESIZE) / 1024);
}

/* One run in this (child) process: writes ns per delivery and peak KiB. */
static void run_one(int way, size_t size, double out[2]) {
  ax_rt_t *rt;
  ax_rt_opts_t o = {.cores = cfg.cores, .flags = AX_RT_KEEP_ALIVE};
  BENCH_AX(ax_rt_new(&o, &rt));
  BENCH_AX(ax_rt_start(rt));
  ax_port_t *port;
  BENCH_AX(ax_port_new(rt, &port));
  done_port = ax_port_ref(port);
  bcast_t b = {.way = way, .size = size, .rounds = cfg.rounds, .n = cfg.members};
  b.members = calloc((size_t)b.n, sizeof *b.members);
  uintptr_t *counts = calloc((size_t)b.n, sizeof *counts);
  BENCH_AX(ax_group_new(&b.group));
  for (long i = 0; i < b.n; i++) {
    ax_spawn_opts_t so = {.placement = AX_PLACE_SPREAD};
    BENCH_AX(ax_spawn(rt, member, &counts[i], &so, &b.members[i]));
    BENCH_AX(ax_group_join(b.group, b.members[i]));
  }
  long before = rss_kib();
  int64_t t0 = bench_clock_ns(CLOCK_MONOTONIC);
  ax_ref_t caster;
  ax_spawn_opts_t so = {.placement = AX_PLACE_CORE, .core = 0};
  BENCH_AX(ax_spawn(rt, broadcaster, &b, &so, &caster));
  BENCH_AX(ax_send(caster, MSG_GO, NULL, 0));
  for (long i = 0; i < b.n; i++) {
    ax_msg_t msg;
    BENCH_AX(ax_port_recv(port, ax_now() + 60 * AX_NSEC_PER_SEC, &msg));
  }
  int64_t t1 = bench_clock_ns(CLOCK_MONOTONIC);
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  out[0] = (double)(t1 - t0) / ((double)b.n * (double)b.rounds);
  out[1] = (double)(ru.ru_maxrss - before);
  for (long i = 0; i < b.n; i++)
    if (counts[i] != (uintptr_t)cfg.rounds)
      bench_die("member %ld got %lu of %ld", i, (unsigned long)counts[i], cfg.rounds);
  ax_rt_stop(rt);
  BENCH_AX(ax_rt_join(rt));
  BENCH_AX(ax_port_close(port));
  BENCH_AX(ax_rt_free(rt));
  ax_group_free(b.group);
  free(b.members);
  free(counts);
}

/* Runs one way in a fresh child process, so ru_maxrss is that run's. */
static void run_child(int way, size_t size, double out[2]) {
  int fds[2];
  BENCH_SYS(pipe(fds));
  pid_t pid = fork();
  BENCH_SYS(pid);
  if (pid == 0) {
    close(fds[0]);
    double r[2];
    run_one(way, size, r);
    if (write(fds[1], r, sizeof r) != (ssize_t)sizeof r)
      _exit(1);
    _exit(0);
  }
  close(fds[1]);
  ssize_t n = read(fds[0], out, 2 * sizeof(double));
  close(fds[0]);
  int status;
  BENCH_SYS(waitpid(pid, &status, 0));
  if (n != (ssize_t)(2 * sizeof(double)) || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
    bench_die("the %s run for %zu bytes failed", way_names[way], size);
}

int main(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--quick") == 0) {
      cfg.quick = true;
      cfg.members = 500;
      cfg.rounds = 4;
      cfg.runs = 1;
    } else if (strcmp(argv[i], "-n") == 0 && i + 1 < argc) {
      cfg.members = bench_parse_count(argv[++i], "-n");
    } else if (strcmp(argv[i], "-k") == 0 && i + 1 < argc) {
      cfg.rounds = bench_parse_count(argv[++i], "-k");
    } else if (strcmp(argv[i], "-c") == 0 && i + 1 < argc) {
      cfg.cores = (unsigned)bench_parse_count(argv[++i], "-c");
    } else if (strcmp(argv[i], "-r") == 0 && i + 1 < argc) {
      cfg.runs = bench_parse_count(argv[++i], "-r");
    } else {
      fprintf(stderr, "usage: %s [--quick] [-n members] [-k rounds] [-c cores] [-r runs]\n",
              argv[0]);
      return 2;
    }
  }
  if (cfg.members < 1 || cfg.rounds < 1 || cfg.runs < 1 || cfg.runs > 15 || cfg.cores < 1)
    bench_die("-n, -k, -c must be at least 1 and -r between 1 and 15");
  static const size_t sizes[] = {64, 1024, 16384};
  printf("broadcast: %ld members on %u cores, %ld rounds each, median of %ld runs\n",
         cfg.members, cfg.cores, cfg.rounds, cfg.runs);
  printf("%-8s %-7s %12s %10s %14s %10s\n", "payload", "way", "ns/delivery", "vs loop",
         "peak RSS KiB", "vs loop");
  for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) {
    double med[WAYS][2];
    for (int w = 0; w < WAYS; w++) {
      double t[15], m[15];
      for (long r = 0; r < cfg.runs; r++) {
        double out[2];
        run_child(w, sizes[s], out);
        t[r] = out[0];
        m[r] = out[1];
      }
      med[w][0] = bench_median(t, (int)cfg.runs);
      med[w][1] = bench_median(m, (int)cfg.runs);
    }
    for (int w = 0; w < WAYS; w++) {
      printf("%-8zu %-7s %12.1f %10.2f %14.0f %10.2f\n", sizes[s], way_names[w], med[w][0],
             med[w][0] / med[WAY_LOOP][0], med[w][1],
             med[WAY_LOOP][1] > 0 ? med[w][1] / med[WAY_LOOP][1] : 0.0);
    }
  }
  if (cfg.quick)
    printf("quick: every member got every message, every way\n");
  return 0;
}
