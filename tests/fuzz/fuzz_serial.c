/* libFuzzer harness for serial options (actors/io/serial.c): ax_serial_open and ax_serial_configure on a pty. */
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include "actors/io/stream.h"
#include "fuzz_rt.h"

/*
 * The option checks are static in serial.c, so they are fuzzed through the
 * public calls, on the driver actor's core (fuzz_rt.h): ax_serial_open on
 * the slave of a pty made once in LLVMFuzzerInitialize (the master stays
 * open, so the slave never hangs up), on paths that cannot open as a tty,
 * and with NULLs; then ax_serial_configure with a second set of options on
 * the stream it opened, and on a pipe stream (not a tty).  Each result must
 * be the one the header documents for those options and that path: a pty
 * takes every valid setting (its driver pins only data bits and parity,
 * which serial.c does not check on a pty).
 */

static char pty_path[64];
static ax_stream_t *pipe_stream;

/* One set of options, every field from the input (most values out of
 * range; libFuzzer's comparison hooks find the valid ones). */
static void read_opts(reader_t *r, ax_serial_opts_t *o) {
  static const int64_t times[] = {0, AX_FOREVER, AX_LINGER_NONE, -3, 1000, INT64_MIN};
  memset(o, 0, sizeof *o);
  o->baud = rd32(r);
  o->data_bits = rd8(r);
  o->parity = (ax_parity_t)(int8_t)rd8(r); /* negative too */
  o->stop_bits = rd8(r);
  o->flow = (ax_flow_t)(int8_t)rd8(r);
  uint8_t flags = rd8(r);
  o->cooked = flags & 1;
  o->shared = flags & 2;
  o->stream.frame = (ax_frame_t)(rd8(r) % 4);
  o->stream.delim = (int16_t)(rd8(r) << 8 | rd8(r));
  o->stream.len_bytes = rd8(r) % 6;
  o->stream.max_frame = (size_t)rd32(r) << (rd8(r) % 16);
  o->stream.window = rd8(r);
  o->stream.flags = rd8(r);
  o->stream.linger = times[rd8(r) % 6];
  o->stream.connect_timeout = times[rd8(r) % 6];
  o->stream.sndbuf = (int8_t)rd8(r);
  o->stream.rcvbuf = (int8_t)rd8(r);
}

/* The line settings the header allows (0 is each field's default). */
static bool line_valid(const ax_serial_opts_t *o) {
  return (o->data_bits == 0 || (o->data_bits >= 5 && o->data_bits <= 8)) && o->stop_bits <= 2 &&
         (unsigned)o->parity <= AX_PARITY_EVEN && (unsigned)o->flow <= AX_FLOW_XONXOFF;
}

typedef struct job {
  int path;               /* 0, 1: the pty; 2: missing; 3: ""; 4: not a tty; 5: NULL */
  bool null_opts;
  bool configure;
  ax_serial_opts_t open, conf;
} job_t;

static void step(ax_actor_t *self, void *arg) {
  job_t *j = arg;
  static const char *const paths[] = {pty_path, pty_path, "/nonexistent/axon-fuzz", "",
                                      "/dev/null", NULL};
  const char *path = paths[j->path];
  const ax_serial_opts_t *opts = j->null_opts ? NULL : &j->open;
  ax_stream_opts_t checked;
  bool valid = opts == NULL || (line_valid(opts) && ax__stream_opts(&opts->stream, &checked) == 0);

  ax_stream_t *s = NULL;
  int rc = ax_serial_open(self, path, opts, &s);
  CHECK_RC(rc);
  if (path == NULL || !valid)
    CHECK_EQ(rc, -EINVAL);
  else if (j->path >= 2 && j->path <= 3)
    CHECK_EQ(rc, -ENOENT);
  else if (j->path == 4)
    CHECK_EQ(rc, -ENOTTY);
  else
    CHECK_EQ(rc, 0); /* a pty takes every valid setting */
  CHECK((rc == 0) == (s != NULL));

  /* Settings changed on the open stream, and on a stream that is no tty. */
  int want = line_valid(&j->conf) ? 0 : -EINVAL;
  if (s != NULL && j->configure)
    CHECK(ax_serial_configure(s, &j->conf) == want);
  CHECK(ax_serial_configure(pipe_stream, &j->conf) == (want == 0 ? -ENOTTY : -EINVAL));
  CHECK(ax_serial_configure(NULL, &j->conf) == -EINVAL);
  if (s != NULL) {
    CHECK(ax_serial_configure(s, NULL) == -EINVAL);
    CHECK(ax_stream_close(s) == 0);
  }
  CHECK(ax_serial_open(self, pty_path, opts, NULL) == -EINVAL);
  CHECK(ax_serial_open(NULL, pty_path, opts, &s) == -EINVAL);
}

/* On the driver's core: the pipe stream that ax_serial_configure refuses. */
static void open_pipe(ax_actor_t *self, void *arg) {
  (void)arg;
  int p[2];
  CHECK(pipe2(p, O_CLOEXEC) == 0);
  CHECK(ax_pipe_open(self, p[0], p[1], NULL, &pipe_stream) == 0);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  fuzz_no_leak_check_per_input(argc, argv);
  int master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
  CHECK(master >= 0 && grantpt(master) == 0 && unlockpt(master) == 0);
  CHECK(ptsname_r(master, pty_path, sizeof pty_path) == 0);
  fuzz_rt_start(1); /* master stays open until the process ends */
  fuzz_on_core(open_pipe, NULL);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  reader_t r = {data, size};
  job_t j;
  uint8_t how = rd8(&r);
  j.path = how % 6;
  j.null_opts = how & 0x40;
  j.configure = how & 0x80;
  read_opts(&r, &j.open);
  read_opts(&r, &j.conf);
  fuzz_on_core(step, &j);
  return 0;
}
