/* bench_file: reads from the page cache, axon on io_uring and on the work pool against libuv's uv_fs_read and fio.
 *
 * Usage: bench_file [--quick] [-v] [-r RUNS] [-q DEPTHS] [-w WORKLOADS] [-i IMPLS] [-d DIR]
 *                   [-s MIB] [-T MS] [-t THREADS] [-F FIO] [-B] [-P]
 *   -r RUNS       measurements per cell; the median is reported (default 5, 1 with --quick)
 *   -q DEPTHS     reads outstanding at once, comma-separated (default 1,8,32,64)
 *   -w WORKLOADS  among rand4k,seq1m (default both)
 *   -i IMPLS      among axon-uring,axon-pool,libuv,fio-uring,fio-psync (default all)
 *   -d DIR        where the file is made (default /tmp); it is removed at the end
 *   -s MIB        the file's size in MiB (default 256, 8 with --quick)
 *   -T MS         time measured per cell, after a warm-up of a fifth of it (default 150,
 *                 40 with --quick)
 *   -t THREADS    threads of axon's work pool and of libuv's (UV_THREADPOOL_SIZE, which
 *                 this program sets); default 4, both sides' default
 *   -F FIO        the fio to run (default: fio found in PATH; "none": no fio columns)
 *   -B            fio-uring submits and reaps DEPTH I/Os at a time
 *                 (iodepth_batch_submit, iodepth_batch_complete_max); by default
 *                 fio submits each I/O as it comes, one io_uring_enter each
 *   -P            the axon runtimes with AX_RT_NO_PIN (by default the core is pinned to
 *                 a CPU, and the pool threads it starts inherit that one CPU)
 *   -v            print every run's value, sorted, under its row
 *   --quick       a small file, short cells, one run, fio at depth 32 only: the
 *                 CTest smoke run
 *
 * Workloads (a file written with a known pattern, then read once whole so
 * that every page is in the page cache; mincore says how much is):
 *   rand4k  4 KiB reads at random 4 KiB-aligned offsets (a splitmix64 PRNG
 *           with a fixed seed per cell and run: axon and libuv read the same
 *           offsets); reported in thousands of reads per second;
 *   seq1m   1 MiB reads one after the other through the file, wrapping at
 *           its end; reported in MB/s (10^6 bytes per second).
 *
 * Columns, each keeping DEPTH reads outstanding (a completion issues the
 * next read until the cell's time is up):
 *   axon-uring  one handler actor on a 1-core runtime, ax_file_read ->
 *               AX_MSG_FILE, in this process (ax_file_backend() must say
 *               "io_uring", else the column is n/a);
 *   axon-pool   the same actor in a child process of this program started
 *               with AXON_FILES=pool (the backend is chosen once per
 *               process), so requests run on the work pool;
 *   libuv       uv_fs_read on libuv's thread pool from a loop on the main
 *               thread, the next read issued from the callback;
 *   fio-uring   fio, ioengine=io_uring, iodepth=DEPTH, one job;
 *   fio-psync   fio, ioengine=psync, iodepth=1, numjobs=DEPTH threads (on
 *               seq1m each job reads its own size/DEPTH part of the file,
 *               offset_increment, rather than all of them the same pages).
 * fio runs with invalidate=0 (it must not drop the file's pages),
 * readonly, time_based, ramp_time = the warm-up, runtime = the cell's time;
 * each depth is a stonewalled job of one fio run per workload and engine,
 * and its IOPS and bandwidth are read from --output-format=json.
 *
 * Ratios (> 1: axon faster): uring/libuv, uring/fio-uring, pool/libuv.
 * The issue's targets (at least 2x libuv's reads/s at depth 32 on rand4k;
 * at least 0.8x fio's io_uring figure) are printed met or MISSED under the
 * tables; a missed target does not change the exit status.
 *
 * Checks (this is a test too: the smoke run fails on any of them): every
 * read of axon and libuv must return exactly the length asked for (a
 * short read or an error exits with status 1); every read's first and
 * last 8 bytes, and the whole of the first 16 reads of each cell and of
 * every 1024th, are compared with the pattern at the offset asked for
 * (axon's offset comes back as the request's tag); axon's messages must
 * be reads of the file opened, its close must succeed, and the child's
 * backend must be "pool".  A watchdog (SIGALRM) names a phase that hangs.
 * The implementations alternate within each run (A B C, then C B A).
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#ifdef AXON_HAVE_LIBUV
#include <uv.h>
#endif

#include "axon/actor.h"
#include "axon/file.h"
#include "axon/port.h"
#include "axon/runtime.h"
#include "bench_util.h"

#define WATCHDOG_S 120      /* the longest one phase may take */
#define RESULT_WAIT_S 60    /* the longest wait for a cell's end on the port */
#define DEPTHS_MAX 16
#define DEPTH_MAX 1024
#define THREADS_MAX 128
#define VERIFY_FIRST 16     /* reads of each cell verified whole */
#define VERIFY_EVERY 1024   /* and every 1024th after them */
#define FIO_OUT_CAP (4u << 20)

enum { MSG_GO = AX_MSG_USER, MSG_DONE };
enum { TAG_OPEN = UINT64_MAX - 1, TAG_CLOSE = UINT64_MAX }; /* a read's tag is its offset */

/* ------------------------------------------------------------------------ */
/* The workloads, the file and its pattern                                   */

typedef struct workload {
  const char *name;
  const char *title;
  size_t len;  /* bytes per read */
  bool random; /* random aligned offsets, else one after the other */
} workload_t;

static const workload_t workloads[2] = {
    {"rand4k", "4 KiB random reads from the page cache", 4096, true},
    {"seq1m", "1 MiB sequential reads from the page cache", 1 << 20, false},
};

enum { IMPL_URING, IMPL_POOL, IMPL_UV, IMPL_FIO_URING, IMPL_FIO_PSYNC, NIMPL };
static const char *const impl_names[NIMPL] = {"axon-uring", "axon-pool", "libuv", "fio-uring",
                                              "fio-psync"};

/* The 8 bytes at file offset off (a multiple of 8). */
static inline uint64_t pattern(uint64_t off) {
  return ((off >> 3) + 1) * 0x9e3779b97f4a7c15u ^ 0x5a5a5a5a5a5a5a5au;
}

/* Compares len bytes read at off with the pattern: the first and last
 * word, or every word when full.  Returns the offset of the first wrong
 * word, or UINT64_MAX when they match. */
static uint64_t pattern_check(const unsigned char *data, uint64_t off, size_t len, bool full) {
  for (size_t i = 0; i + 8 <= len; i += 8) {
    if (!full && i != 0 && i != len - 8)
      i = len - 8;
    uint64_t w;
    memcpy(&w, data + i, sizeof w);
    if (w != pattern(off + i))
      return off + i;
  }
  return UINT64_MAX;
}

/* Writes the file at path with the pattern (size bytes, a multiple of
 * 1 MiB), then reads it once whole, checking every word. */
static void file_make(const char *path, uint64_t size) {
  size_t chunk = 1 << 20;
  unsigned char *buf = malloc(chunk);
  if (buf == NULL)
    bench_die("out of memory");
  int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0)
    bench_die("open(%s): %s", path, strerror(errno));
  for (uint64_t off = 0; off < size; off += chunk) {
    for (size_t i = 0; i < chunk; i += 8) {
      uint64_t w = pattern(off + i);
      memcpy(buf + i, &w, sizeof w);
    }
    ssize_t n = pwrite(fd, buf, chunk, (off_t)off);
    if (n != (ssize_t)chunk)
      bench_die("pwrite(%s) at %llu: %s", path, (unsigned long long)off,
                n < 0 ? strerror(errno) : "short");
  }
  for (uint64_t off = 0; off < size; off += chunk) {
    ssize_t n = pread(fd, buf, chunk, (off_t)off);
    if (n != (ssize_t)chunk)
      bench_die("pread(%s) at %llu: %s", path, (unsigned long long)off,
                n < 0 ? strerror(errno) : "short");
    uint64_t bad = pattern_check(buf, off, chunk, true);
    if (bad != UINT64_MAX)
      bench_die("%s: the pattern just written is wrong at %llu", path, (unsigned long long)bad);
  }
  BENCH_SYS(close(fd));
  free(buf);
}

/* The share of the file's pages in the page cache (mincore), in percent. */
static double file_cached(const char *path, uint64_t size) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return -1;
  void *p = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
  close(fd);
  if (p == MAP_FAILED)
    return -1;
  long pg = sysconf(_SC_PAGESIZE);
  size_t pages = (size + (uint64_t)pg - 1) / (uint64_t)pg, in = 0;
  unsigned char *vec = malloc(pages);
  if (vec != NULL && mincore(p, size, vec) == 0)
    for (size_t i = 0; i < pages; i++)
      in += vec[i] & 1;
  else
    in = SIZE_MAX;
  free(vec);
  munmap(p, size);
  return in == SIZE_MAX ? -1 : (double)in * 100 / (double)pages;
}

static char file_path[4096];

static void file_remove(void) {
  if (file_path[0] != '\0')
    (void)unlink(file_path);
}

/* ------------------------------------------------------------------------ */
/* One cell's reads and their checks (axon and libuv alike)                  */

/* What a cell is: the file, the workload, the depth, the times. */
typedef struct cell {
  const char *path;
  uint64_t size;
  const workload_t *wl;
  unsigned depth;
  int64_t warm_ns, run_ns;
  uint64_t seed;
} cell_t;

/* A reader keeping c->depth reads outstanding until its time is up. */
typedef struct drive {
  const char *what;
  cell_t c;
  bench_rng_t rng;
  uint64_t seq_next;            /* seq1m: the next offset */
  int64_t warm_end;             /* the warm-up ends at the first completion after it */
  int64_t t0, stop_at, t_last;  /* timing started; no read issued after; the last end */
  bool timing;
  unsigned outstanding;
  uint64_t issued, completed, timed, verified;
} drive_t;

static void drive_init(drive_t *d, const char *what, const cell_t *c) {
  memset(d, 0, sizeof *d);
  d->what = what;
  d->c = *c;
  d->rng.state = c->seed;
}

/* The offset of the next read, counted as issued. */
static uint64_t drive_next(drive_t *d) {
  const workload_t *wl = d->c.wl;
  uint64_t off;
  if (wl->random) {
    off = bench_rng_range(&d->rng, 0, d->c.size / wl->len - 1) * wl->len;
  } else {
    off = d->seq_next;
    d->seq_next = off + 2 * wl->len > d->c.size ? 0 : off + wl->len;
  }
  d->issued++;
  d->outstanding++;
  return off;
}

/* The reads start now. */
static void drive_start(drive_t *d, int64_t now) { d->warm_end = now + d->c.warm_ns; }

/* Checks the read of off that returned result with data (len bytes) at
 * time now, and counts it.  Returns true when another read is to be
 * issued in its place. */
static bool drive_complete(drive_t *d, uint64_t off, int64_t result, const void *data,
                           size_t len, int64_t now) {
  size_t want = d->c.wl->len;
  if (result < 0)
    bench_die("%s: the read of %zu bytes at %llu failed: %s", d->what, want,
              (unsigned long long)off, strerror((int)-result));
  if ((uint64_t)result != want || len != want)
    bench_die("%s: a short read: %lld bytes (%zu in the buffer) at %llu, %zu asked for",
              d->what, (long long)result, len, (unsigned long long)off, want);
  if (off % want != 0 || off + want > d->c.size)
    bench_die("%s: a read came back for offset %llu, never asked for", d->what,
              (unsigned long long)off);
  bool full = d->completed < VERIFY_FIRST || d->completed % VERIFY_EVERY == 0;
  uint64_t bad = pattern_check(data, off, len, full);
  if (bad != UINT64_MAX)
    bench_die("%s: the read at %llu brought wrong bytes at file offset %llu", d->what,
              (unsigned long long)off, (unsigned long long)bad);
  d->verified += full;
  d->outstanding--;
  d->completed++;
  if (!d->timing) {
    if (now >= d->warm_end) {
      d->timing = true;
      d->t0 = now;
      d->stop_at = now + d->c.run_ns;
    }
    return true;
  }
  d->timed++;
  d->t_last = now;
  return now < d->stop_at;
}

/* Reads per second over the timed part. */
static double drive_rate(const drive_t *d) {
  if (!d->timing || d->outstanding != 0 || d->timed == 0 || d->t_last <= d->t0)
    bench_die("%s: the cell did not end properly (%llu timed reads, %u outstanding)", d->what,
              (unsigned long long)d->timed, d->outstanding);
  return (double)d->timed * 1e9 / (double)(d->t_last - d->t0);
}

/* What a cell's measurement gives. */
typedef struct outcome {
  double rate;       /* reads per second */
  uint64_t reads;    /* completed, warm-up included */
  uint64_t verified; /* read whole and compared */
} outcome_t;

/* ------------------------------------------------------------------------ */
/* axon                                                                      */

static unsigned pool_threads = 4;
static unsigned rt_flags = AX_RT_NO_SIGNALS | AX_RT_KEEP_ALIVE;

typedef struct reader {
  drive_t d;
  ax_ref_t port;
  ax_file_t *file;
  bool closing;
} reader_t;

static void reader_issue(reader_t *r) {
  uint64_t off = drive_next(&r->d);
  int rc = ax_file_read(r->file, off, r->d.c.wl->len, off);
  if (rc < 0)
    bench_die("%s: ax_file_read at %llu: %s", r->d.what, (unsigned long long)off,
              ax_strerror(rc));
}

/* A handler actor: opens the file, keeps depth reads outstanding until
 * the time is up, closes it and says so on the port. */
static int reader(ax_actor_t *self, const ax_msg_t *m) {
  reader_t *r = ax_state(self);
  if (m->type == MSG_GO) {
    BENCH_AX(ax_file_open(self, r->d.c.path, O_RDONLY, 0, TAG_OPEN));
    return 0;
  }
  if (m->type != AX_MSG_FILE || m->size < sizeof(ax_file_done_t))
    bench_die("%s: the actor got type %u, %u bytes", r->d.what, m->type, m->size);
  const ax_file_done_t *fd = m->data;
  if (fd->tag == TAG_OPEN) {
    if (fd->op != AX_FILE_OPEN || fd->result < 0 || fd->file == NULL)
      bench_die("%s: the open failed: %s", r->d.what,
                fd->result < 0 ? ax_strerror((int)fd->result) : "no file");
    r->file = fd->file;
    drive_start(&r->d, ax_now());
    for (unsigned i = 0; i < r->d.c.depth; i++)
      reader_issue(r);
    return 0;
  }
  if (fd->tag == TAG_CLOSE) {
    if (fd->op != AX_FILE_CLOSE || fd->result != 0)
      bench_die("%s: the close failed: %s", r->d.what, ax_strerror((int)fd->result));
    BENCH_AX(ax_send(r->port, MSG_DONE, NULL, 0));
    return AX_STOP;
  }
  if (fd->op != AX_FILE_READ || fd->file != r->file || r->closing)
    bench_die("%s: an unexpected message: op %u, tag %llu", r->d.what, fd->op,
              (unsigned long long)fd->tag);
  if (drive_complete(&r->d, fd->tag, fd->result, fd->data, fd->len, ax_now())) {
    reader_issue(r);
  } else if (r->d.outstanding == 0) {
    r->closing = true;
    BENCH_AX(ax_file_close(r->file, TAG_CLOSE));
  }
  return 0;
}

/* One cell on a fresh one-core runtime. */
static outcome_t axon_measure(const char *what, const cell_t *c) {
  bench_watchdog_arm("%s (from ax_rt_new to ax_rt_free)", what);
  ax_rt_opts_t ro = {.cores = 1, .flags = rt_flags, .work_threads = pool_threads};
  ax_rt_t *rt;
  ax_port_t *port;
  BENCH_AX(ax_rt_new(&ro, &rt));
  BENCH_AX(ax_port_new(rt, &port));
  BENCH_AX(ax_rt_start(rt));
  reader_t r;
  memset(&r, 0, sizeof r);
  drive_init(&r.d, what, c);
  r.port = ax_port_ref(port);
  ax_ref_t ref;
  BENCH_AX(ax_spawn(rt, reader, &r, NULL, &ref));
  BENCH_AX(ax_send(ref, MSG_GO, NULL, 0));
  ax_msg_t m;
  int rc;
  int64_t deadline = ax_now() + c->warm_ns + c->run_ns + RESULT_WAIT_S * AX_NSEC_PER_SEC;
  do
    rc = ax_port_recv(port, deadline, &m);
  while (rc == -EINTR);
  if (rc < 0)
    bench_die("%s: no end: %s (%llu reads done, %u outstanding)", what, ax_strerror(rc),
              (unsigned long long)r.d.completed, r.d.outstanding);
  if (m.type != MSG_DONE)
    bench_die("%s: the port got type %u", what, m.type);
  ax_rt_stop(rt);
  BENCH_AX(ax_rt_join(rt));
  BENCH_AX(ax_port_close(port));
  BENCH_AX(ax_rt_free(rt));
  alarm(0);
  outcome_t o = {drive_rate(&r.d), r.d.completed, r.d.verified};
  return o;
}

/* ------------------------------------------------------------------------ */
/* libuv                                                                     */

#ifdef AXON_HAVE_LIBUV
typedef struct uv_slot {
  uv_fs_t req;
  uint64_t off;
  unsigned char *buf;
  struct uv_drive *u;
} uv_slot_t;

typedef struct uv_drive {
  drive_t d;
  uv_loop_t loop;
  uv_file fd;
  uv_slot_t *slots;
} uv_drive_t;

static void fs_read_done(uv_fs_t *req);

static void fs_issue(uv_drive_t *u, uv_slot_t *s) {
  s->off = drive_next(&u->d);
  uv_buf_t b = uv_buf_init((char *)s->buf, (unsigned)u->d.c.wl->len);
  BENCH_UV(uv_fs_read(&u->loop, &s->req, u->fd, &b, 1, (int64_t)s->off, fs_read_done));
}

static void fs_read_done(uv_fs_t *req) {
  uv_slot_t *s = AX_CONTAINER_OF(req, uv_slot_t, req);
  uv_drive_t *u = s->u;
  ssize_t res = req->result;
  uv_fs_req_cleanup(req);
  if (res < 0) /* libuv's errors are negative errno values on Unix */
    bench_die("%s: the read at %llu failed: %s", u->d.what, (unsigned long long)s->off,
              uv_strerror((int)res));
  if (drive_complete(&u->d, s->off, res, s->buf, (size_t)res,
                     bench_clock_ns(CLOCK_MONOTONIC)))
    fs_issue(u, s);
}

/* One cell on a fresh loop (the main thread's) and the process's pool. */
static outcome_t uv_measure(const char *what, const cell_t *c) {
  bench_watchdog_arm("%s", what);
  uv_drive_t u;
  memset(&u, 0, sizeof u);
  drive_init(&u.d, what, c);
  BENCH_UV(uv_loop_init(&u.loop));
  uv_fs_t open_req;
  int fd = uv_fs_open(NULL, &open_req, c->path, O_RDONLY | O_CLOEXEC, 0, NULL);
  uv_fs_req_cleanup(&open_req);
  BENCH_UV(fd);
  u.fd = fd;
  u.slots = calloc(c->depth, sizeof *u.slots);
  if (u.slots == NULL)
    bench_die("out of memory");
  for (unsigned i = 0; i < c->depth; i++) {
    u.slots[i].u = &u;
    u.slots[i].buf = malloc(c->wl->len);
    if (u.slots[i].buf == NULL)
      bench_die("out of memory");
  }
  drive_start(&u.d, bench_clock_ns(CLOCK_MONOTONIC));
  for (unsigned i = 0; i < c->depth; i++)
    fs_issue(&u, &u.slots[i]);
  (void)uv_run(&u.loop, UV_RUN_DEFAULT);
  BENCH_UV(uv_loop_close(&u.loop));
  BENCH_SYS(close(fd));
  for (unsigned i = 0; i < c->depth; i++)
    free(u.slots[i].buf);
  free(u.slots);
  alarm(0);
  outcome_t o = {drive_rate(&u.d), u.d.completed, u.d.verified};
  return o;
}
#define HAVE_UV 1
#else
static outcome_t uv_measure(const char *what, const cell_t *c) {
  (void)c;
  bench_die("%s: libuv not found at build time", what);
}
#define HAVE_UV 0
#endif

/* ------------------------------------------------------------------------ */
/* The pool side: this program again, with AXON_FILES=pool                   */

/* The child: --child-pool PATH SIZE WORKLOAD DEPTHS WARM_NS RUN_NS SEED THREADS FLAGS.
 * Prints one line per depth: "depth D rate R reads N verified V backend B". */
static int child_main(int argc, char **argv) {
  if (argc != 11)
    bench_die("--child-pool: %d arguments, 9 expected", argc - 2);
  cell_t c = {.path = argv[2]};
  c.size = strtoull(argv[3], NULL, 10);
  int wl = atoi(argv[4]);
  if (wl < 0 || wl > 1)
    bench_die("--child-pool: no workload %d", wl);
  c.wl = &workloads[wl];
  long depths[DEPTHS_MAX];
  int nd = bench_parse_list(argv[5], depths, DEPTHS_MAX, "--child-pool depths");
  c.warm_ns = strtoll(argv[6], NULL, 10);
  c.run_ns = strtoll(argv[7], NULL, 10);
  uint64_t seed = strtoull(argv[8], NULL, 10);
  pool_threads = (unsigned)bench_parse_count(argv[9], "--child-pool threads");
  rt_flags = (unsigned)strtoul(argv[10], NULL, 10);
  bench_watchdog_init(WATCHDOG_S);
  const char *backend = ax_file_backend();
  if (strcmp(backend, "pool") != 0)
    bench_die("--child-pool: the file backend is %s, pool expected", backend);
  for (int k = 0; k < nd; k++) {
    c.depth = (unsigned)depths[k];
    c.seed = seed + c.depth;
    char what[96];
    snprintf(what, sizeof what, "axon-pool %s, depth %u", c.wl->name, c.depth);
    outcome_t o = axon_measure(what, &c);
    printf("depth %u rate %.3f reads %llu verified %llu backend %s\n", c.depth, o.rate,
           (unsigned long long)o.reads, (unsigned long long)o.verified, backend);
  }
  return 0;
}

static char self_exe[4096];

/* Runs the pool side of one workload for every depth in a child;
 * out[k] gets depth k's outcome. */
static void pool_measure(const cell_t *c, int wl, const long *depths, int nd, outcome_t *out) {
  char size[32], wls[8], dl[256], warm[32], run[32], seed[32], thr[16], fl[16];
  snprintf(size, sizeof size, "%llu", (unsigned long long)c->size);
  snprintf(wls, sizeof wls, "%d", wl);
  size_t at = 0;
  dl[0] = '\0';
  for (int k = 0; k < nd && at < sizeof dl; k++)
    at += (size_t)snprintf(dl + at, sizeof dl - at, "%s%ld", k > 0 ? "," : "", depths[k]);
  snprintf(warm, sizeof warm, "%lld", (long long)c->warm_ns);
  snprintf(run, sizeof run, "%lld", (long long)c->run_ns);
  snprintf(seed, sizeof seed, "%llu", (unsigned long long)c->seed);
  snprintf(thr, sizeof thr, "%u", pool_threads);
  snprintf(fl, sizeof fl, "%u", rt_flags);
  char *argv[] = {self_exe, "--child-pool", (char *)c->path, size, wls, dl, warm, run,
                  seed, thr, fl, NULL};
  /* The environment less any AXON_FILES, plus AXON_FILES=pool. */
  size_t n = 0;
  while (environ[n] != NULL)
    n++;
  char **envp = calloc(n + 2, sizeof *envp);
  if (envp == NULL)
    bench_die("out of memory");
  size_t m = 0;
  for (size_t i = 0; i < n; i++)
    if (strncmp(environ[i], "AXON_FILES=", 11) != 0)
      envp[m++] = environ[i];
  envp[m++] = "AXON_FILES=pool";
  envp[m] = NULL;
  char buf[4096];
  bench_watchdog_arm("axon-pool %s (the child process)", workloads[wl].name);
  bench_run_capture(self_exe, argv, envp, buf, sizeof buf, "axon-pool");
  alarm(0);
  free(envp);
  const char *p = buf;
  for (int k = 0; k < nd; k++) {
    unsigned depth;
    double rate;
    unsigned long long reads, verified;
    char backend[16];
    int used = 0;
    if (sscanf(p, "depth %u rate %lf reads %llu verified %llu backend %15s\n%n", &depth, &rate,
               &reads, &verified, backend, &used) != 5 ||
        used == 0 || depth != (unsigned)depths[k] || strcmp(backend, "pool") != 0)
      bench_die("axon-pool: the child's line %d is not what was expected: '%.200s'", k, p);
    out[k] = (outcome_t){rate, reads, verified};
    p += used;
  }
}

/* ------------------------------------------------------------------------ */
/* fio                                                                       */

static const char *fio_path; /* NULL: no fio columns */
static char fio_why[160];    /* why not */
static char fio_version[64];
static bool fio_batch; /* -B: fio-uring submits and reaps DEPTH at a time */

/* Runs path with argv, its stdout into buf (at most cap - 1 bytes, NUL
 * terminated) and its stderr to /dev/null unless keep_err; returns its
 * exit status, or -1 when it did not exit normally or could not start. */
static int spawn_capture(const char *path, char *const argv[], char *buf, size_t cap,
                         bool keep_err) {
  int fds[2];
  BENCH_SYS(pipe2(fds, O_CLOEXEC));
  posix_spawn_file_actions_t fa;
  int rc = posix_spawn_file_actions_init(&fa);
  if (rc == 0)
    rc = posix_spawn_file_actions_adddup2(&fa, fds[1], STDOUT_FILENO);
  if (rc == 0 && !keep_err)
    rc = posix_spawn_file_actions_addopen(&fa, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
  if (rc != 0)
    bench_die("posix_spawn_file_actions: %s", strerror(rc));
  pid_t pid;
  fflush(stdout);
  rc = posix_spawn(&pid, path, &fa, NULL, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  BENCH_SYS(close(fds[1]));
  if (rc != 0) {
    BENCH_SYS(close(fds[0]));
    return -1;
  }
  size_t len = 0;
  for (;;) {
    ssize_t k = read(fds[0], buf + len, cap - 1 - len);
    if (k < 0 && errno == EINTR)
      continue;
    BENCH_SYS(k);
    len += (size_t)k;
    if (k == 0)
      break;
    if (len == cap - 1) { /* too much: drain the rest so the child can end */
      char sink[4096];
      while ((k = read(fds[0], sink, sizeof sink)) > 0 || (k < 0 && errno == EINTR)) {
      }
      break;
    }
  }
  buf[len] = '\0';
  BENCH_SYS(close(fds[0]));
  int status;
  while (waitpid(pid, &status, 0) < 0)
    if (errno != EINTR)
      bench_die("waitpid: %s", strerror(errno));
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* Finds fio: opt (-F), else "fio" in PATH. */
static void fio_find(const char *opt) {
  static char found[4096];
  if (opt != NULL && strcmp(opt, "none") == 0) {
    snprintf(fio_why, sizeof fio_why, "not run (-F none)");
    return;
  }
  if (opt != NULL) {
    if (access(opt, X_OK) != 0) {
      snprintf(fio_why, sizeof fio_why, "no fio at %.120s", opt);
      return;
    }
    snprintf(found, sizeof found, "%s", opt);
  } else {
    const char *path = getenv("PATH");
    char *copy = strdup(path != NULL ? path : "/usr/bin:/bin"), *save = NULL;
    if (copy == NULL)
      bench_die("out of memory");
    found[0] = '\0';
    for (char *dir = strtok_r(copy, ":", &save); dir != NULL; dir = strtok_r(NULL, ":", &save)) {
      snprintf(found, sizeof found, "%s/fio", dir);
      if (access(found, X_OK) == 0)
        break;
      found[0] = '\0';
    }
    free(copy);
    if (found[0] == '\0') {
      snprintf(fio_why, sizeof fio_why, "fio not found in PATH");
      return;
    }
  }
  fio_path = found;
  char *argv[] = {found, "--version", NULL};
  char buf[256];
  if (spawn_capture(found, argv, buf, sizeof buf, false) != 0) {
    snprintf(fio_why, sizeof fio_why, "%.120s --version failed", found);
    fio_path = NULL;
    return;
  }
  buf[strcspn(buf, "\n")] = '\0';
  snprintf(fio_version, sizeof fio_version, "%.60s", buf);
}

/* The number after "key" : at or after p, or -1. */
static double json_number(const char *p, const char *key) {
  char k[64];
  snprintf(k, sizeof k, "\"%s\"", key);
  const char *q = strstr(p, k);
  if (q == NULL || (q = strchr(q + strlen(k), ':')) == NULL)
    return -1;
  char *end;
  double v = strtod(q + 1, &end);
  return end == q + 1 ? -1 : v;
}

/* Runs fio once for one workload and engine (psync or io_uring), a
 * stonewalled job per depth; out[k] gets depth k's reads per second.
 * Returns false (with why) when fio failed. */
static bool fio_measure(const cell_t *c, bool uring, const long *depths, int nd, double *out,
                        char *why, size_t why_cap) {
  static char buf[FIO_OUT_CAP];
  char a_file[4200], a_size[48], a_bs[32], a_rt[48], a_ramp[48];
  char a_name[DEPTHS_MAX][32], a_depth[DEPTHS_MAX][32], a_jobs[DEPTHS_MAX][32];
  char a_slice[DEPTHS_MAX][48], a_inc[DEPTHS_MAX][48], a_bsub[DEPTHS_MAX][48],
      a_bcom[DEPTHS_MAX][48];
  const char *argv[32 + 8 * DEPTHS_MAX];
  int n = 0;
  snprintf(a_file, sizeof a_file, "--filename=%s", c->path);
  snprintf(a_size, sizeof a_size, "--size=%llu", (unsigned long long)c->size);
  snprintf(a_bs, sizeof a_bs, "--bs=%zu", c->wl->len);
  snprintf(a_rt, sizeof a_rt, "--runtime=%lldms", (long long)(c->run_ns / 1000000));
  snprintf(a_ramp, sizeof a_ramp, "--ramp_time=%lldms", (long long)(c->warm_ns / 1000000));
  argv[n++] = fio_path;
  argv[n++] = a_file;
  argv[n++] = a_size;
  argv[n++] = "--readonly";
  argv[n++] = "--invalidate=0";
  argv[n++] = c->wl->random ? "--rw=randread" : "--rw=read";
  argv[n++] = a_bs;
  argv[n++] = uring ? "--ioengine=io_uring" : "--ioengine=psync";
  argv[n++] = "--thread";
  argv[n++] = "--group_reporting";
  argv[n++] = "--time_based";
  argv[n++] = a_rt;
  argv[n++] = a_ramp;
  argv[n++] = "--norandommap";
  argv[n++] = "--output-format=json";
  for (int k = 0; k < nd; k++) {
    snprintf(a_name[k], sizeof a_name[k], "--name=d%ld", depths[k]);
    snprintf(a_depth[k], sizeof a_depth[k], "--iodepth=%ld", uring ? depths[k] : 1);
    snprintf(a_jobs[k], sizeof a_jobs[k], "--numjobs=%ld", uring ? 1 : depths[k]);
    argv[n++] = a_name[k];
    argv[n++] = a_depth[k];
    argv[n++] = a_jobs[k];
    argv[n++] = "--stonewall";
    if (!uring && !c->wl->random && depths[k] > 1) {
      /* psync, sequential: each job its own part of the file (all of them
       * reading from 0 in step would share one hot region of the cache). */
      uint64_t bs = c->wl->len, slice = c->size / (uint64_t)depths[k] / bs * bs;
      slice = slice < bs ? bs : slice;
      uint64_t inc = (c->size - slice) / (uint64_t)(depths[k] - 1) / 4096 * 4096;
      snprintf(a_slice[k], sizeof a_slice[k], "--size=%llu", (unsigned long long)slice);
      snprintf(a_inc[k], sizeof a_inc[k], "--offset_increment=%llu", (unsigned long long)inc);
      argv[n++] = a_slice[k];
      argv[n++] = a_inc[k];
    }
    if (uring && fio_batch) {
      snprintf(a_bsub[k], sizeof a_bsub[k], "--iodepth_batch_submit=%ld", depths[k]);
      snprintf(a_bcom[k], sizeof a_bcom[k], "--iodepth_batch_complete_max=%ld", depths[k]);
      argv[n++] = a_bsub[k];
      argv[n++] = a_bcom[k];
    }
  }
  argv[n] = NULL;
  bench_watchdog_arm("fio %s %s", uring ? "io_uring" : "psync", c->wl->name);
  int rc = spawn_capture(fio_path, (char *const *)argv, buf, sizeof buf, false);
  alarm(0);
  if (rc != 0) {
    snprintf(why, why_cap, "fio exited with status %d (ioengine=%s)", rc,
             uring ? "io_uring" : "psync");
    return false;
  }
  for (int k = 0; k < nd; k++) {
    char key[48];
    snprintf(key, sizeof key, "\"jobname\" : \"d%ld\"", depths[k]);
    const char *p = strstr(buf, key), *rd;
    double err = p != NULL ? json_number(p, "error") : -1;
    double iops = -1;
    if (p != NULL && (rd = strstr(p, "\"read\"")) != NULL)
      iops = json_number(rd, "iops");
    if (err != 0 || iops <= 0) {
      snprintf(why, why_cap, "fio's output has no read IOPS for depth %ld (ioengine=%s)",
               depths[k], uring ? "io_uring" : "psync");
      return false;
    }
    out[k] = iops;
  }
  return true;
}

/* ------------------------------------------------------------------------ */
/* The tables                                                                */

static bool verbose;

/* The value a rate is shown as: k reads/s, or MB/s. */
static double shown(const workload_t *wl, double rate) {
  return wl->random ? rate / 1000 : rate * (double)wl->len / 1e6;
}

static void usage(void) {
  fputs("usage: bench_file [--quick] [-v] [-r RUNS] [-q DEPTHS] [-w rand4k,seq1m] "
        "[-i axon-uring,axon-pool,libuv,fio-uring,fio-psync] [-d DIR] [-s MIB] [-T MS] "
        "[-t THREADS] [-F FIO|none] [-B] [-P]\n",
        stderr);
  exit(2);
}

/* The k-th implementation to run in run r: in order on even runs, reversed on odd ones. */
static int alt(long r, int count, int i) { return r % 2 == 0 ? i : count - 1 - i; }

static void print_ratio(double num, double den, bool have) {
  if (have && num > 0 && den > 0)
    printf(" %11.2f", num / den);
  else
    printf(" %11s", "n/a");
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "--child-pool") == 0)
    return child_main(argc, argv);
  bool quick = false, use[NIMPL] = {true, true, true, true, true}, use_wl[2] = {true, true};
  long runs = 0, size_mib = 0, ms = 0, depths[DEPTHS_MAX] = {1, 8, 32, 64};
  int nd = 4;
  const char *dir = "/tmp", *fio_opt = NULL;
  static const char *const wl_names[2] = {"rand4k", "seq1m"};
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--quick") == 0) {
      quick = true;
    } else if (strcmp(a, "-v") == 0) {
      verbose = true;
    } else if (strcmp(a, "-P") == 0) {
      rt_flags |= AX_RT_NO_PIN;
    } else if (strcmp(a, "-B") == 0) {
      fio_batch = true;
    } else if (i + 1 >= argc) {
      usage();
    } else if (strcmp(a, "-r") == 0) {
      runs = bench_parse_count(argv[++i], "-r");
    } else if (strcmp(a, "-q") == 0) {
      nd = bench_parse_list(argv[++i], depths, DEPTHS_MAX, "-q");
      for (int k = 0; k < nd; k++)
        if (depths[k] > DEPTH_MAX)
          bench_die("-q: at most %d outstanding", DEPTH_MAX);
    } else if (strcmp(a, "-w") == 0) {
      bench_parse_names(argv[++i], wl_names, use_wl, 2, "-w");
    } else if (strcmp(a, "-i") == 0) {
      bench_parse_names(argv[++i], impl_names, use, NIMPL, "-i");
    } else if (strcmp(a, "-d") == 0) {
      dir = argv[++i];
    } else if (strcmp(a, "-s") == 0) {
      size_mib = bench_parse_count(argv[++i], "-s");
    } else if (strcmp(a, "-T") == 0) {
      ms = bench_parse_count(argv[++i], "-T");
    } else if (strcmp(a, "-t") == 0) {
      long t = bench_parse_count(argv[++i], "-t");
      if (t > THREADS_MAX)
        bench_die("-t: at most %d", THREADS_MAX);
      pool_threads = (unsigned)t;
    } else if (strcmp(a, "-F") == 0) {
      fio_opt = argv[++i];
    } else {
      usage();
    }
  }
  if (runs == 0)
    runs = quick ? 1 : 5;
  if (runs > BENCH_MAX_RUNS)
    bench_die("-r: at most %d", BENCH_MAX_RUNS);
  if (size_mib == 0)
    size_mib = quick ? 8 : 256;
  if (ms == 0)
    ms = quick ? 40 : 150;
  if (ms < 10)
    bench_die("-T: at least 10 ms");
  uint64_t size = (uint64_t)size_mib << 20;
  int64_t run_ns = ms * 1000000LL, warm_ns = run_ns / 5;

  bench_watchdog_init(WATCHDOG_S);
  ssize_t sl = readlink("/proc/self/exe", self_exe, sizeof self_exe - 1);
  if (sl <= 0)
    bench_die("readlink(/proc/self/exe): %s", strerror(errno));
  self_exe[sl] = '\0';
  /* libuv reads it once, when its pool starts (the first request). */
  char env[16];
  snprintf(env, sizeof env, "%u", pool_threads);
  BENCH_SYS(setenv("UV_THREADPOOL_SIZE", env, 1));
  cpu_set_t cpus;
  BENCH_SYS(sched_getaffinity(0, sizeof cpus, &cpus));

  /* Why a column is empty, when it is. */
  const char *na[NIMPL] = {NULL};
  const char *backend = ax_file_backend();
  if (strcmp(backend, "io_uring") != 0)
    na[IMPL_URING] = "axon's file backend here is the pool, not io_uring";
  if (!HAVE_UV)
    na[IMPL_UV] = "libuv not found at build time";
  if (use[IMPL_FIO_URING] || use[IMPL_FIO_PSYNC])
    fio_find(fio_opt);
  else
    snprintf(fio_why, sizeof fio_why, "not asked for (-i)");
  if (fio_path == NULL)
    na[IMPL_FIO_URING] = na[IMPL_FIO_PSYNC] = fio_why;
  for (int k = 0; k < NIMPL; k++)
    if (!use[k] && na[k] == NULL)
      na[k] = "not asked for (-i)";

  snprintf(file_path, sizeof file_path, "%s/bench_file.%ld.dat", dir, (long)getpid());
  atexit(file_remove);
  bench_watchdog_arm("writing and reading %s", file_path);
  int64_t tw = bench_clock_ns(CLOCK_MONOTONIC);
  file_make(file_path, size);
  tw = bench_clock_ns(CLOCK_MONOTONIC) - tw;
  alarm(0);
  double cached = file_cached(file_path, size);

  printf("command:");
  for (int i = 0; i < argc; i++)
    printf(" %s", argv[i]);
  printf("\nbench_file: median of %ld run%s%s; %lld ms per cell after a %lld ms warm-up; axon "
         "%s (file backend in this process: %s); libuv %s; fio: %s\n",
         runs, runs == 1 ? "" : "s", quick ? " (--quick: small file, short cells)" : "",
         (long long)ms, (long long)(warm_ns / 1000000), ax_version_string(), backend,
#ifdef AXON_HAVE_LIBUV
         uv_version_string(),
#else
         "not found at build time",
#endif
         fio_path != NULL ? fio_version : fio_why);
  printf("file: %s, %llu MiB, written with a pattern and read once in %.2f s; in the page "
         "cache: %.1f%% (mincore)\n",
         file_path, (unsigned long long)size_mib, (double)tw / 1e9, cached);
  printf("axon: one handler actor on a 1-core runtime (%s), %u work-pool threads; axon-pool: "
         "the same in a child process with AXON_FILES=pool\n",
         (rt_flags & AX_RT_NO_PIN) != 0 ? "AX_RT_NO_PIN" : "core pinned to a CPU",
         pool_threads);
  printf("libuv: uv_fs_read on its thread pool (UV_THREADPOOL_SIZE=%u), a loop on the main "
         "thread\n",
         pool_threads);
  printf("fio: invalidate=0, time_based, ramp_time=%lldms, runtime=%lldms%s; fio-uring: "
         "ioengine=io_uring, iodepth=DEPTH, numjobs=1, %s; fio-psync: ioengine=psync, "
         "iodepth=1, numjobs=DEPTH (threads, group_reporting; seq1m: each job its own "
         "size/DEPTH part of the file, offset_increment)\n",
         (long long)(warm_ns / 1000000), (long long)ms,
         quick ? ", at depth 32 only (--quick)" : "",
         fio_batch ? "iodepth_batch_submit=iodepth_batch_complete_max=DEPTH (-B)"
                   : "fio's default batching (each I/O submitted as it comes)");
  FILE *lf = fopen("/proc/loadavg", "r");
  char load[64] = "unknown";
  if (lf != NULL) {
    if (fgets(load, sizeof load, lf) == NULL)
      snprintf(load, sizeof load, "unknown");
    load[strcspn(load, "\n")] = '\0';
    fclose(lf);
  }
  printf("%d CPUs in the affinity mask; load average at the start: %s\n", CPU_COUNT(&cpus),
         load);
  printf("ratios of the medians, > 1: axon faster\n");
  for (int k = 0; k < NIMPL; k++)
    if (na[k] != NULL)
      printf("%s: n/a (%s)\n", impl_names[k], na[k]);

  /* [workload][impl][depth] */
  static bench_series_t series[2][NIMPL][DEPTHS_MAX];
  uint64_t reads_checked = 0, reads_verified = 0;
  int order[NIMPL], norder = 0;
  for (int k = 0; k < NIMPL; k++)
    if (na[k] == NULL)
      order[norder++] = k;

  /* The depths fio runs (--quick: 32 alone, or the first given, since
   * each of fio's jobs costs about 0.35 s of its own start and stop);
   * fio_at[d]: depths[d]'s place among them, or -1. */
  long fio_depths[DEPTHS_MAX];
  int nfd = 0, fio_at[DEPTHS_MAX];
  for (int d = 0; d < nd; d++) {
    bool take = !quick || depths[d] == 32;
    fio_at[d] = take ? nfd : -1;
    if (take)
      fio_depths[nfd++] = depths[d];
  }
  if (nfd == 0) {
    fio_at[0] = 0;
    fio_depths[nfd++] = depths[0];
  }

  for (long r = 0; r < runs; r++) {
    for (int w = 0; w < 2; w++) {
      if (!use_wl[w])
        continue;
      cell_t c = {.path = file_path, .size = size, .wl = &workloads[w], .warm_ns = warm_ns,
                  .run_ns = run_ns, .seed = 0x6669 + (uint64_t)r * 1000 + (uint64_t)w * 100000};
      for (int i = 0; i < norder; i++) {
        int k = order[alt(r, norder, i)];
        if (k < 0)
          continue;
        double v[DEPTHS_MAX];
        outcome_t o[DEPTHS_MAX];
        if (k == IMPL_URING || k == IMPL_UV) {
          for (int d = 0; d < nd; d++) {
            c.depth = (unsigned)depths[d];
            cell_t cd = c;
            cd.seed = c.seed + c.depth;
            char what[96];
            snprintf(what, sizeof what, "%s %s, depth %u", impl_names[k], c.wl->name, c.depth);
            o[d] = k == IMPL_URING ? axon_measure(what, &cd) : uv_measure(what, &cd);
          }
        } else if (k == IMPL_POOL) {
          pool_measure(&c, w, depths, nd, o);
        } else {
          char why[160];
          if (!fio_measure(&c, k == IMPL_FIO_URING, fio_depths, nfd, v, why, sizeof why)) {
            /* fio works or not for the whole run: this engine's column goes */
            static char saved[2][160];
            snprintf(saved[k - IMPL_FIO_URING], sizeof saved[0], "%s", why);
            na[k] = saved[k - IMPL_FIO_URING];
            fprintf(stderr, "bench: %s: %s; its column is n/a\n", impl_names[k], why);
            for (int j = 0; j < norder; j++)
              if (order[j] == k)
                order[j] = -1;
            continue;
          }
          for (int d = 0; d < nd; d++)
            o[d] = (outcome_t){fio_at[d] >= 0 ? v[fio_at[d]] : -1, 0, 0};
        }
        for (int d = 0; d < nd; d++) {
          if (o[d].rate >= 0)
            bench_series_add(&series[w][k][d], o[d].rate);
          reads_checked += o[d].reads;
          reads_verified += o[d].verified;
        }
      }
      /* An engine that failed is dropped from the next runs' order. */
      int m = 0;
      for (int i = 0; i < norder; i++)
        if (order[i] >= 0)
          order[m++] = order[i];
      norder = m;
    }
  }

  /* The tables: medians, ratios, spreads; the targets under them. */
  double med[2][NIMPL][DEPTHS_MAX], spread_max[2][NIMPL];
  bool have[NIMPL];
  memset(med, 0, sizeof med);
  memset(spread_max, 0, sizeof spread_max);
  for (int k = 0; k < NIMPL; k++)
    have[k] = na[k] == NULL;
  for (int w = 0; w < 2; w++) {
    if (!use_wl[w])
      continue;
    const workload_t *wl = &workloads[w];
    printf("\n%s (%s), median of %ld\n", wl->title,
           wl->random ? "thousands of reads/s" : "MB/s", runs);
    printf("%5s", "depth");
    for (int k = 0; k < NIMPL; k++)
      printf(" %11s", impl_names[k]);
    printf(" %11s %11s %11s\n", "uring/libuv", "uring/fio-u", "pool/libuv");
    for (int d = 0; d < nd; d++) {
      printf("%5ld", depths[d]);
      for (int k = 0; k < NIMPL; k++) {
        bench_series_t *s = &series[w][k][d];
        if (!have[k] || s->n == 0) {
          printf(" %11s", "n/a");
          continue;
        }
        double mn = 1e300, mx = 0;
        for (int i = 0; i < s->n; i++) {
          mn = s->v[i] < mn ? s->v[i] : mn;
          mx = s->v[i] > mx ? s->v[i] : mx;
        }
        med[w][k][d] = bench_median(s->v, s->n);
        double sp = (mx - mn) / med[w][k][d] * 100;
        spread_max[w][k] = sp > spread_max[w][k] ? sp : spread_max[w][k];
        printf(" %11.1f", shown(wl, med[w][k][d]));
      }
      print_ratio(med[w][IMPL_URING][d], med[w][IMPL_UV][d], have[IMPL_URING] && have[IMPL_UV]);
      print_ratio(med[w][IMPL_URING][d], med[w][IMPL_FIO_URING][d],
                  have[IMPL_URING] && have[IMPL_FIO_URING]);
      print_ratio(med[w][IMPL_POOL][d], med[w][IMPL_UV][d], have[IMPL_POOL] && have[IMPL_UV]);
      printf("\n");
      if (verbose) {
        for (int k = 0; k < NIMPL; k++) {
          bench_series_t *s = &series[w][k][d];
          if (!have[k] || s->n == 0)
            continue;
          printf("      %-10s runs, sorted:", impl_names[k]);
          for (int i = 0; i < s->n; i++)
            printf(" %.1f", shown(wl, s->v[i]));
          printf("\n");
        }
      }
    }
    printf("largest spread (max-min)/median over the runs:");
    for (int k = 0; k < NIMPL; k++)
      if (have[k])
        printf(" %s %.0f%%", impl_names[k], spread_max[w][k]);
    printf("\n");
  }

  printf("\ntargets (issue 13), on the medians above:\n");
  int d32 = -1;
  for (int d = 0; d < nd; d++)
    if (depths[d] == 32)
      d32 = d;
  if (use_wl[0] && d32 >= 0 && have[IMPL_URING] && have[IMPL_UV] &&
      med[0][IMPL_UV][d32] > 0) {
    double q = med[0][IMPL_URING][d32] / med[0][IMPL_UV][d32];
    printf("  rand4k, depth 32: axon-uring / libuv = %.2f (target >= 2): %s\n", q,
           q >= 2 ? "met" : "MISSED");
  } else {
    printf("  rand4k, depth 32: axon-uring / libuv: n/a\n");
  }
  for (int w = 0; w < 2; w++) {
    if (!use_wl[w])
      continue;
    printf("  %s: axon-uring / fio-uring (target >= 0.8):", workloads[w].name);
    if (!have[IMPL_URING] || !have[IMPL_FIO_URING]) {
      printf(" n/a\n");
      continue;
    }
    for (int d = 0; d < nd; d++) {
      double q = med[w][IMPL_FIO_URING][d] > 0
                     ? med[w][IMPL_URING][d] / med[w][IMPL_FIO_URING][d] : -1;
      if (q < 0)
        printf(" depth %ld n/a", depths[d]);
      else
        printf(" depth %ld %.2f %s", depths[d], q, q >= 0.8 ? "met" : "MISSED");
      printf("%s", d + 1 < nd ? ";" : "\n");
    }
  }
  double cached_end = file_cached(file_path, size);
  printf("\nchecks: %llu axon and libuv reads, each of the length asked for, every one's first "
         "and last 8 bytes and %llu whole reads matching the pattern; the file %.1f%% in the "
         "page cache at the end\n",
         (unsigned long long)reads_checked, (unsigned long long)reads_verified, cached_end);
  return 0;
}
