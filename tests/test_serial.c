/* Check suite for serial ports: settings read back from ptys, exclusive open, lines, hang-up, socat. */
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>

#include "axon_test.h"

/*
 * Every test runs an actor that owns the serial streams and a port through
 * which it reports to the test thread: the result of each command it was
 * given (open, write, configure, close) and each stream message it
 * received.  The test thread plays the other end of the line on the pty's
 * master and reads the slave's settings back with its own fd.
 */

/* The kernel's struct termios2 (TCGETS2), declared here because
 * <asm/termbits.h> cannot be included next to <termios.h>.  Layout of
 * x86, arm and the other asm-generic architectures. */
struct test_termios2 {
  tcflag_t c_iflag, c_oflag, c_cflag, c_lflag;
  cc_t c_line;
  cc_t c_cc[19];
  speed_t c_ispeed, c_ospeed;
};
#define TEST_TCGETS2 _IOR('T', 0x2A, struct test_termios2)
#define TEST_TCSETS2 _IOW('T', 0x2B, struct test_termios2)
#define TEST_BOTHER 0010000u /* CBAUD code: the rate is in c_ospeed */

enum {
  CMD_OPEN = AX_MSG_USER, /* cmd_t: path, opts (or NULL with null_opts), slot */
  CMD_WRITE,              /* cmd_t: slot, bytes, len */
  CMD_WRITE_LINES,        /* cmd_t: slot, len = count of "line NNNNNN\n" */
  CMD_CONFIGURE,          /* cmd_t: slot, opts */
  CMD_CLOSE,              /* cmd_t: slot */
  CMD_MISUSE,             /* cmd_t: path; NULL arguments and a pipe stream */
  CMD_PING,               /* nothing: answered with REP_RESULT 0 */
  REP_RESULT,             /* rep_t.rc: the command's result */
  REP_DATA,               /* rep_t: slot, bytes, len */
  REP_FRAME_ERROR,        /* rep_t: slot, err, count */
  REP_CLOSED,             /* rep_t: slot, err */
  REP_OTHER,              /* rep_t.rc: an unexpected message type */
};

#define SLOTS 4

typedef struct cmd {
  int slot;
  bool null_opts;
  char path[128];
  ax_serial_opts_t opts;
  size_t len;
  char bytes[256];
} cmd_t;

typedef struct rep {
  int slot;
  int rc;
  int err;
  uint64_t count;
  size_t len;
  char bytes[512];
} rep_t;

typedef struct ser {
  ax_ref_t port;
  ax_stream_t *s[SLOTS];
} ser_t;

static int slot_of(const ser_t *st, const ax_stream_t *s) {
  for (int i = 0; i < SLOTS; i++)
    if (st->s[i] == s)
      return i;
  return -1;
}

/* The actor's answers to misuse: each call must return the code noted. */
static int misuse(ax_actor_t *self, const cmd_t *c) {
  ax_stream_t *s = NULL;
  ax_serial_opts_t o;
  memset(&o, 0, sizeof o);
  if (ax_serial_open(self, NULL, &o, &s) != -EINVAL || s != NULL)
    return -1;
  if (ax_serial_open(self, c->path, &o, NULL) != -EINVAL)
    return -2;
  if (ax_serial_configure(NULL, &o) != -EINVAL)
    return -3;
  /* A stream that is not a tty. */
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) < 0)
    return -4;
  if (ax_pipe_open(self, fds[0], fds[1], NULL, &s) != 0)
    return -5;
  int rc = ax_serial_configure(s, &o);
  int rc2 = ax_serial_configure(s, NULL);
  ax_stream_close(s);
  if (rc != -ENOTTY)
    return -6;
  if (rc2 != -EINVAL)
    return -7;
  return 0;
}

static int ser_behaviour(ax_actor_t *self, const ax_msg_t *m) {
  ser_t *st = ax_state(self);
  const cmd_t *c = m->size == sizeof(cmd_t) ? m->data : NULL;
  rep_t r;
  memset(&r, 0, sizeof r);
  uint32_t type = REP_RESULT;
  switch (m->type) {
  case CMD_OPEN: {
    ax_stream_t *s = NULL;
    r.rc = ax_serial_open(self, c->path, c->null_opts ? NULL : &c->opts, &s);
    if (r.rc == 0)
      st->s[c->slot] = s;
    break;
  }
  case CMD_WRITE:
    r.rc = ax_stream_write(st->s[c->slot], c->bytes, c->len);
    break;
  case CMD_WRITE_LINES:
    for (size_t i = 0; i < c->len && r.rc == 0; i++) {
      char line[32];
      int n = snprintf(line, sizeof line, "line %06zu\n", i);
      r.rc = ax_stream_write(st->s[c->slot], line, (size_t)n);
    }
    break;
  case CMD_CONFIGURE:
    r.rc = ax_serial_configure(st->s[c->slot], &c->opts);
    break;
  case CMD_CLOSE:
    r.rc = ax_stream_close(st->s[c->slot]);
    st->s[c->slot] = NULL;
    break;
  case CMD_MISUSE:
    r.rc = misuse(self, c);
    break;
  case CMD_PING:
    break;
  case AX_MSG_DATA: {
    const ax_data_t *d = m->data;
    type = REP_DATA;
    r.slot = slot_of(st, d->stream);
    r.len = d->len < sizeof r.bytes ? d->len : sizeof r.bytes;
    r.count = d->len;
    memcpy(r.bytes, d->bytes, r.len);
    break;
  }
  case AX_MSG_FRAME_ERROR:
  case AX_MSG_CLOSED: {
    const ax_stream_ev_t *ev = m->data;
    type = m->type == AX_MSG_CLOSED ? REP_CLOSED : REP_FRAME_ERROR;
    r.slot = slot_of(st, ev->stream);
    r.err = ev->err;
    r.count = ev->count;
    if (m->type == AX_MSG_CLOSED && r.slot >= 0)
      st->s[r.slot] = NULL; /* the handle dies when this returns */
    break;
  }
  default:
    type = REP_OTHER;
    r.rc = (int)m->type;
    break;
  }
  return ax_send(st->port, type, &r, sizeof r) == 0 ? 0 : -EIO;
}

/* ------------------------------------------------------------------------ */
/* The test thread's side.                                                   */

typedef struct fx {
  ax_rt_t *rt;
  ax_port_t *port;
  ax_ref_t actor;
  ser_t st;
} fx_t;

/* A runtime of `cores` cores with the serial actor on core `core`. */
static void fx_start(fx_t *f, unsigned cores, unsigned core) {
  memset(f, 0, sizeof *f);
  f->rt = test_rt_new(cores, AX_RT_KEEP_ALIVE | AX_RT_NO_SIGNALS);
  ck_assert_int_eq(ax_port_new(f->rt, &f->port), 0);
  f->st.port = ax_port_ref(f->port);
  f->actor = test_spawn(f->rt, ser_behaviour, &f->st, AX_PLACE_CORE, core, NULL, NULL);
  test_rt_start(f->rt);
}

static void fx_stop(fx_t *f) {
  ax_rt_stop(f->rt);
  ck_assert_int_eq(ax_rt_join(f->rt), 0);
  ck_assert_int_eq(ax_port_close(f->port), 0);
  ck_assert_int_eq(ax_rt_free(f->rt), 0);
}

/* The actor's next report, which must be of type `type`. */
static rep_t fx_recv(fx_t *f, uint32_t type) {
  ax_msg_t m;
  int rc = ax_port_recv(f->port, ax_now() + 10 * AX_NSEC_PER_SEC, &m);
  ck_assert_msg(rc == 0, "ax_port_recv: %s", ax_strerror(rc));
  ck_assert_uint_eq(m.size, sizeof(rep_t));
  rep_t r;
  memcpy(&r, m.data, sizeof r);
  ck_assert_msg(m.type == type, "expected report %u, got %u (rc %d err %d)", (unsigned)type,
                (unsigned)m.type, r.rc, r.err);
  return r;
}

/* Sends a command and returns its result. */
static int fx_cmd(fx_t *f, uint32_t type, const cmd_t *c) {
  test_send(f->actor, type, c, sizeof *c);
  return fx_recv(f, REP_RESULT).rc;
}

static int fx_open(fx_t *f, int slot, const char *path, const ax_serial_opts_t *opts) {
  cmd_t c;
  memset(&c, 0, sizeof c);
  c.slot = slot;
  snprintf(c.path, sizeof c.path, "%s", path);
  if (opts != NULL)
    c.opts = *opts;
  c.null_opts = opts == NULL;
  return fx_cmd(f, CMD_OPEN, &c);
}

static int fx_configure(fx_t *f, int slot, const ax_serial_opts_t *opts) {
  cmd_t c;
  memset(&c, 0, sizeof c);
  c.slot = slot;
  c.opts = *opts;
  return fx_cmd(f, CMD_CONFIGURE, &c);
}

static void fx_write(fx_t *f, int slot, const char *s) {
  cmd_t c;
  memset(&c, 0, sizeof c);
  c.slot = slot;
  c.len = strlen(s);
  memcpy(c.bytes, s, c.len);
  ck_assert_int_eq(fx_cmd(f, CMD_WRITE, &c), 0);
}

static void fx_close(fx_t *f, int slot) {
  cmd_t c;
  memset(&c, 0, sizeof c);
  c.slot = slot;
  ck_assert_int_eq(fx_cmd(f, CMD_CLOSE, &c), 0);
}

/* Expects one line on slot as the next report. */
static void fx_expect_line(fx_t *f, int slot, const char *line) {
  rep_t r = fx_recv(f, REP_DATA);
  ck_assert_int_eq(r.slot, slot);
  ck_assert_msg(r.count == strlen(line) && memcmp(r.bytes, line, r.len) == 0,
                "expected line '%s', got '%.*s'", line, (int)r.len, r.bytes);
}

/* Nothing more reaches the port: a ping is answered first. */
static void fx_expect_quiet(fx_t *f) {
  cmd_t c;
  memset(&c, 0, sizeof c);
  ck_assert_int_eq(fx_cmd(f, CMD_PING, &c), 0);
}

typedef struct pty {
  int master, slave;
  char name[64];
} pty_t;

static void pty_open(pty_t *p) {
  ck_assert_int_eq(openpty(&p->master, &p->slave, p->name, NULL, NULL), 0);
  ck_assert_int_eq(fcntl(p->master, F_SETFD, FD_CLOEXEC), 0);
  ck_assert_int_eq(fcntl(p->slave, F_SETFD, FD_CLOEXEC), 0);
}

static void pty_close(pty_t *p) {
  if (p->master >= 0)
    close(p->master);
  if (p->slave >= 0)
    close(p->slave);
  p->master = p->slave = -1;
}

static void read_t2(int fd, struct test_termios2 *t) {
  memset(t, 0, sizeof *t);
  ck_assert_int_eq(ioctl(fd, TEST_TCGETS2, t), 0);
}

static int excl_flag(int fd) {
  int on = -1;
  ck_assert_int_eq(ioctl(fd, TIOCGEXCL, &on), 0);
  return on;
}

/* Whether this kernel's pty driver pins the frame to 8 bits without parity
 * whatever is asked (Linux's does: a pty has no wire), found out on a
 * scratch pty.  ax_serial_open accepts any frame on a pty for that reason,
 * and the settings read back are the pinned ones. */
static bool pty_pins_frame(void) {
  pty_t p;
  pty_open(&p);
  struct test_termios2 t;
  read_t2(p.slave, &t);
  t.c_cflag = (t.c_cflag & ~(tcflag_t)CSIZE) | CS7 | PARENB;
  ck_assert_int_eq(ioctl(p.slave, TEST_TCSETS2, &t), 0);
  read_t2(p.slave, &t);
  pty_close(&p);
  if ((t.c_cflag & CSIZE) == CS7 && (t.c_cflag & PARENB))
    return false;
  ck_assert_uint_eq(t.c_cflag & (CSIZE | PARENB), CS8); /* one or the other, nothing else */
  return true;
}

/* Reads exactly strlen(want) bytes from fd (within 10 s) and compares. */
static void fd_expect(int fd, const char *want) {
  size_t n = strlen(want), got = 0;
  char buf[4096];
  ck_assert_uint_lt(n, sizeof buf);
  while (got < n) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    ck_assert_msg(poll(&p, 1, 10000) == 1, "nothing to read; had '%.*s'", (int)got, buf);
    ssize_t r = read(fd, buf + got, n - got);
    ck_assert_int_gt(r, 0);
    got += (size_t)r;
  }
  ck_assert_msg(memcmp(buf, want, n) == 0, "expected '%s', read '%.*s'", want, (int)n, buf);
}

/* Nothing arrives on fd within ms milliseconds. */
static void fd_expect_quiet(int fd, int ms) {
  struct pollfd p = {.fd = fd, .events = POLLIN};
  ck_assert_int_eq(poll(&p, 1, ms), 0);
}

static void fd_write(int fd, const char *s) {
  size_t n = strlen(s);
  ck_assert_int_eq((int)write(fd, s, n), (int)n);
}

/* Checks that t holds raw mode as cfmakeraw would set it. */
static void assert_raw(const struct test_termios2 *t) {
  ck_assert_uint_eq(t->c_lflag & (ICANON | ECHO | ECHONL | ISIG | IEXTEN), 0);
  ck_assert_uint_eq(t->c_oflag & OPOST, 0);
  ck_assert_uint_eq(t->c_iflag & (IGNBRK | BRKINT | PARMRK | ISTRIP | INLCR | IGNCR | ICRNL), 0);
  ck_assert_uint_eq(t->c_cc[VMIN], 1);
  ck_assert_uint_eq(t->c_cc[VTIME], 0);
}

/* Checks rate, frame format and flow control in t. */
static void assert_line(const struct test_termios2 *t, unsigned baud, tcflag_t code,
                        tcflag_t size, int parity, bool two_stop, int flow) {
  ck_assert_msg((t->c_cflag & CBAUD) == code, "CBAUD %o, expected %o",
                (unsigned)(t->c_cflag & CBAUD), (unsigned)code);
  ck_assert_uint_eq(t->c_ospeed, baud);
  ck_assert_uint_eq(t->c_ispeed, baud);
  ck_assert_uint_eq(t->c_cflag & CIBAUD, 0); /* input speed = output speed */
  bool pinned = pty_pins_frame();
  ck_assert_uint_eq(t->c_cflag & CSIZE, pinned ? (tcflag_t)CS8 : size);
  ck_assert_uint_eq(t->c_cflag & (CLOCAL | CREAD), CLOCAL | CREAD);
  ck_assert_uint_eq(t->c_cflag & CMSPAR, 0);
  /* INPCK (parity checked on input) and PARODD stay as set even where the
   * pty drops PARENB. */
  ck_assert_uint_eq(t->c_cflag & PARENB, parity == AX_PARITY_NONE || pinned ? 0 : PARENB);
  ck_assert_uint_eq(t->c_cflag & PARODD, parity == AX_PARITY_ODD ? PARODD : 0);
  ck_assert_uint_eq(t->c_iflag & INPCK, parity == AX_PARITY_NONE ? 0 : INPCK);
  ck_assert_uint_eq((t->c_cflag & CSTOPB) != 0, two_stop);
  ck_assert_uint_eq((t->c_cflag & CRTSCTS) != 0, flow == AX_FLOW_RTSCTS);
  ck_assert_uint_eq(t->c_iflag & (IXON | IXOFF | IXANY),
                    flow == AX_FLOW_XONXOFF ? (tcflag_t)(IXON | IXOFF) : 0);
}

/* ------------------------------------------------------------------------ */
/* Settings                                                                  */

START_TEST(test_serial_defaults) {
  pty_t p;
  pty_open(&p);
  fx_t f;
  fx_start(&f, 1, 0);
  ck_assert_int_eq(excl_flag(p.slave), 0);
  ck_assert_int_eq(fx_open(&f, 0, p.name, NULL), 0); /* NULL: 115200 8N1, raw, exclusive */
  struct test_termios2 t;
  read_t2(p.slave, &t);
  assert_line(&t, 115200, B115200, CS8, AX_PARITY_NONE, false, AX_FLOW_NONE);
  assert_raw(&t);
  ck_assert_int_eq(excl_flag(p.slave), 1);
  /* glibc's view agrees. */
  struct termios gt;
  ck_assert_int_eq(tcgetattr(p.slave, &gt), 0);
  ck_assert_uint_eq(cfgetospeed(&gt), B115200);
  ck_assert_uint_eq(cfgetispeed(&gt), B115200);
  /* Raw: no echo to the other end, no CR added to a NL written. */
  fd_write(p.master, "abc\r\n");
  char got[8];
  size_t len = 0;
  while (len < 5) { /* raw framing: whatever each read returned */
    rep_t r = fx_recv(&f, REP_DATA);
    ck_assert_uint_le(len + r.len, 5);
    memcpy(got + len, r.bytes, r.len);
    len += r.len;
  }
  ck_assert(memcmp(got, "abc\r\n", 5) == 0); /* CR not turned into NL */
  fd_expect_quiet(p.master, 100);
  fx_close(&f, 0);
  fx_stop(&f);
  pty_close(&p);
}
END_TEST

START_TEST(test_serial_line_settings) {
  static const struct {
    ax_serial_opts_t o;
    tcflag_t code, size;
  } cases[] = {
      {{.baud = 9600, .data_bits = 7, .parity = AX_PARITY_EVEN, .stop_bits = 2,
        .flow = AX_FLOW_RTSCTS}, B9600, CS7},
      {{.baud = 57600, .data_bits = 5, .parity = AX_PARITY_ODD, .stop_bits = 1,
        .flow = AX_FLOW_XONXOFF}, B57600, CS5},
      {{.baud = 250000, .data_bits = 6, .stop_bits = 2}, TEST_BOTHER, CS6},
      {{.baud = 31250, .data_bits = 8, .parity = AX_PARITY_EVEN}, TEST_BOTHER, CS8},
      {{.baud = 4000000}, B4000000, CS8},
      {{.baud = 50}, B50, CS8},
  };
  pty_t p;
  pty_open(&p);
  fx_t f;
  fx_start(&f, 2, 1);
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const ax_serial_opts_t *o = &cases[i].o;
    ck_assert_int_eq(fx_open(&f, 0, p.name, o), 0);
    struct test_termios2 t;
    read_t2(p.slave, &t);
    assert_line(&t, o->baud, cases[i].code, cases[i].size, (int)o->parity,
                o->stop_bits == 2, (int)o->flow);
    assert_raw(&t);
    fx_close(&f, 0);
    /* The exclusive flag belongs to the tty, and this test's own fd keeps
     * the tty open: clear it for the next open (root ignores it anyway). */
    ck_assert_int_eq(ioctl(p.slave, TIOCNXCL), 0);
  }

  /* ax_serial_configure changes an open stream's line, one case after the
   * other, and the stream stays usable. */
  ax_serial_opts_t so = {.stream = {.frame = AX_FRAME_DELIM}};
  ck_assert_int_eq(fx_open(&f, 0, p.name, &so), 0);
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const ax_serial_opts_t *o = &cases[i].o;
    ck_assert_int_eq(fx_configure(&f, 0, o), 0);
    struct test_termios2 t;
    read_t2(p.slave, &t);
    assert_line(&t, o->baud, cases[i].code, cases[i].size, (int)o->parity,
                o->stop_bits == 2, (int)o->flow);
  }
  fd_write(p.master, "still here\n");
  fx_expect_line(&f, 0, "still here");

  /* A bad setting is refused before the device is touched. */
  struct test_termios2 before, after;
  read_t2(p.slave, &before);
  ax_serial_opts_t bad = {.baud = 9600, .data_bits = 9};
  ck_assert_int_eq(fx_configure(&f, 0, &bad), -EINVAL);
  read_t2(p.slave, &after);
  ck_assert(memcmp(&before, &after, sizeof before) == 0);
  fx_close(&f, 0);
  fx_stop(&f);
  pty_close(&p);
}
END_TEST

START_TEST(test_serial_cooked) {
  pty_t p;
  pty_open(&p);
  struct test_termios2 before;
  read_t2(p.slave, &before);
  ck_assert_uint_ne(before.c_lflag & ICANON, 0); /* a fresh pty is cooked */
  fx_t f;
  fx_start(&f, 1, 0);
  ax_serial_opts_t o = {.baud = 19200, .cooked = true, .stream = {.frame = AX_FRAME_DELIM}};
  ck_assert_int_eq(fx_open(&f, 0, p.name, &o), 0);
  struct test_termios2 t;
  read_t2(p.slave, &t);
  assert_line(&t, 19200, B19200, CS8, AX_PARITY_NONE, false, AX_FLOW_NONE);
  /* The line discipline is left alone. */
  ck_assert_uint_eq(t.c_lflag, before.c_lflag);
  ck_assert_uint_eq(t.c_oflag, before.c_oflag);
  ck_assert_uint_eq(t.c_iflag & ICRNL, before.c_iflag & ICRNL);
  /* So the tty echoes (with NL turned into CR NL) and hands over whole lines. */
  fd_write(p.master, "hi\n");
  fd_expect(p.master, "hi\r\n");
  fx_expect_line(&f, 0, "hi");
  /* Switching to raw mode by reconfiguring. */
  o.cooked = false;
  ck_assert_int_eq(fx_configure(&f, 0, &o), 0);
  read_t2(p.slave, &t);
  assert_raw(&t);
  fd_write(p.master, "raw\n");
  fx_expect_line(&f, 0, "raw");
  fd_expect_quiet(p.master, 100);
  fx_close(&f, 0);
  fx_stop(&f);
  pty_close(&p);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Exclusive and shared opens                                                */

START_TEST(test_serial_exclusive) {
  pty_t p;
  pty_open(&p);
  fx_t f;
  fx_start(&f, 2, 1);
  ax_serial_opts_t shared = {.shared = true};
  ck_assert_int_eq(fx_open(&f, 0, p.name, NULL), 0);
  ck_assert_int_eq(excl_flag(p.slave), 1);
  ck_assert_int_eq(fx_open(&f, 1, p.name, NULL), -EBUSY);
  ck_assert_int_eq(fx_open(&f, 1, p.name, &shared), -EBUSY);
  /* Without CAP_SYS_ADMIN the kernel itself refuses other opens.  This
   * thread drops it, so that the check runs under root too (Check's fork
   * mode gives each test its own process). */
  ck_assert(test_drop_capability(CAP_SYS_ADMIN));
  errno = 0;
  ck_assert_int_eq(open(p.name, O_RDWR | O_NOCTTY | O_NONBLOCK), -1);
  ck_assert_int_eq(errno, EBUSY);
  fx_close(&f, 0);
  ck_assert_int_eq(ioctl(p.slave, TIOCNXCL), 0); /* see test_serial_line_settings */

  /* Shared opens coexist, and keep an exclusive open out. */
  ck_assert_int_eq(fx_open(&f, 0, p.name, &shared), 0);
  ck_assert_int_eq(fx_open(&f, 1, p.name, &shared), 0);
  ck_assert_int_eq(excl_flag(p.slave), 0);
  ck_assert_int_eq(fx_open(&f, 2, p.name, NULL), -EBUSY);
  ck_assert_int_eq(excl_flag(p.slave), 0); /* a refused open leaves nothing behind */
  fx_close(&f, 0);
  ck_assert_int_eq(fx_open(&f, 2, p.name, NULL), -EBUSY);
  fx_close(&f, 1);
  ck_assert_int_eq(fx_open(&f, 2, p.name, NULL), 0);
  ck_assert_int_eq(excl_flag(p.slave), 1);
  fx_close(&f, 2);
  fx_expect_quiet(&f); /* refused opens sent nothing */
  fx_stop(&f);
  pty_close(&p);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Lines both ways                                                           */

START_TEST(test_serial_lines) {
  pty_t p;
  pty_open(&p);
  fx_t f;
  fx_start(&f, 2, 1);
  ax_serial_opts_t o = {.stream = {.frame = AX_FRAME_DELIM}};
  ck_assert_int_eq(fx_open(&f, 0, p.name, &o), 0);

  fd_write(p.master, "one\ntwo\nthree\n");
  fx_expect_line(&f, 0, "one");
  fx_expect_line(&f, 0, "two");
  fx_expect_line(&f, 0, "three");
  fd_write(p.master, "split ");
  fd_expect_quiet(p.master, 20);
  fd_write(p.master, "line\n\n");
  fx_expect_line(&f, 0, "split line");
  fx_expect_line(&f, 0, "");

  fx_write(&f, 0, "hello\nworld\n");
  fd_expect(p.master, "hello\nworld\n"); /* raw: no CR added, nothing echoed */

  /* Many lines from the device: in order, none lost. */
  uint64_t n = test_scaled(3000);
  char line[32];
  for (uint64_t i = 0; i < n; i++) {
    int len = snprintf(line, sizeof line, "line %06llu\n", (unsigned long long)i);
    ck_assert_int_eq((int)write(p.master, line, (size_t)len), len);
  }
  for (uint64_t i = 0; i < n; i++) {
    snprintf(line, sizeof line, "line %06llu", (unsigned long long)i);
    fx_expect_line(&f, 0, line);
  }

  /* Many lines to the device, queued by the stream while the master does
   * not read yet. */
  cmd_t c;
  memset(&c, 0, sizeof c);
  c.len = (size_t)n;
  ck_assert_int_eq(fx_cmd(&f, CMD_WRITE_LINES, &c), 0);
  for (uint64_t i = 0; i < n; i++) {
    snprintf(line, sizeof line, "line %06llu\n", (unsigned long long)i);
    fd_expect(p.master, line);
  }
  fd_expect_quiet(p.master, 50);
  fx_close(&f, 0);
  fx_expect_quiet(&f);
  fx_stop(&f);
  pty_close(&p);
}
END_TEST

START_TEST(test_serial_line_too_long) {
  pty_t p;
  pty_open(&p);
  fx_t f;
  fx_start(&f, 1, 0);
  ax_serial_opts_t o = {.stream = {.frame = AX_FRAME_DELIM, .max_frame = 16}};
  ck_assert_int_eq(fx_open(&f, 0, p.name, &o), 0);
  fd_write(p.master, "0123456789abcdef\n"); /* exactly max_frame: fine */
  fx_expect_line(&f, 0, "0123456789abcdef");
  char big[64];
  memset(big, 'x', 40);
  big[40] = '\0';
  fd_write(p.master, big);
  fd_write(p.master, "\nok\n");
  rep_t r = fx_recv(&f, REP_FRAME_ERROR);
  ck_assert_int_eq(r.slot, 0);
  ck_assert_int_eq(r.err, -EMSGSIZE);
  ck_assert_uint_eq(r.count, 41); /* the line and its delimiter were dropped */
  fx_expect_line(&f, 0, "ok");
  /* A longer one than the read size of the framer's first look. */
  for (int i = 0; i < 100; i++)
    fd_write(p.master, "yyyyyyyyyy");
  fd_write(p.master, "\nafter\n");
  r = fx_recv(&f, REP_FRAME_ERROR);
  ck_assert_int_eq(r.err, -EMSGSIZE);
  ck_assert_uint_eq(r.count, 1001);
  fx_expect_line(&f, 0, "after");
  fx_close(&f, 0);
  fx_stop(&f);
  pty_close(&p);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Errors                                                                    */

START_TEST(test_serial_errors) {
  pty_t p;
  pty_open(&p);
  fx_t f;
  fx_start(&f, 1, 0);
  struct test_termios2 before, after;
  read_t2(p.slave, &before);
  static const ax_serial_opts_t bad[] = {
      {.data_bits = 4},
      {.data_bits = 9},
      {.stop_bits = 3},
      {.parity = (ax_parity_t)3},
      {.flow = (ax_flow_t)3},
      {.stream = {.frame = (ax_frame_t)7}},
      {.stream = {.frame = AX_FRAME_LENGTH, .len_bytes = 3}},
      {.stream = {.max_frame = ((size_t)16 << 20) + 1}},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    ck_assert_int_eq(fx_open(&f, 0, p.name, &bad[i]), -EINVAL);
    /* Checked before anything is opened: a missing file is still -EINVAL. */
    ck_assert_int_eq(fx_open(&f, 0, "/nonexistent/tty", &bad[i]), -EINVAL);
  }
  read_t2(p.slave, &after);
  ck_assert(memcmp(&before, &after, sizeof before) == 0);
  ck_assert_int_eq(excl_flag(p.slave), 0);

  ck_assert_int_eq(fx_open(&f, 0, "/dev/null", NULL), -ENOTTY);
  ck_assert_int_eq(fx_open(&f, 0, "/nonexistent/tty", NULL), -ENOENT);
  ck_assert_int_eq(fx_open(&f, 0, "", NULL), -ENOENT);
  ck_assert_int_eq(fx_open(&f, 0, "/", NULL), -EISDIR);
  /* A regular file is no terminal either. */
  char file[] = "/tmp/axon-serial-XXXXXX";
  int fd = mkstemp(file);
  ck_assert_int_ge(fd, 0);
  close(fd);
  ck_assert_int_eq(fx_open(&f, 0, file, NULL), -ENOTTY);
  unlink(file);

  cmd_t c;
  memset(&c, 0, sizeof c);
  snprintf(c.path, sizeof c.path, "%s", p.name);
  ck_assert_int_eq(fx_cmd(&f, CMD_MISUSE, &c), 0);
  ax_stream_t *s = NULL;
  ck_assert_int_eq(ax_serial_open(NULL, p.name, NULL, &s), -EINVAL);
  ck_assert_ptr_null(s);

  fx_expect_quiet(&f); /* failed opens never send anything */
  fx_stop(&f);
  pty_close(&p);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Hang-up                                                                   */

static double cpu_seconds(void) {
  struct rusage ru;
  ck_assert_int_eq(getrusage(RUSAGE_SELF, &ru), 0);
  return (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
         ((double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_usec) / 1e6;
}

START_TEST(test_serial_hangup) {
  pty_t p;
  pty_open(&p);
  fx_t f;
  fx_start(&f, 1, 0);
  ax_serial_opts_t o = {.stream = {.frame = AX_FRAME_DELIM}};
  ck_assert_int_eq(fx_open(&f, 0, p.name, &o), 0);
  fd_write(p.master, "last words\n");
  fx_expect_line(&f, 0, "last words");

  /* The other end goes away: the pty hangs up, as an unplugged USB adapter
   * does.  Exactly one CLOSED{-EIO}. */
  pty_close(&p);
  rep_t r = fx_recv(&f, REP_CLOSED);
  ck_assert_int_eq(r.slot, 0);
  ck_assert_int_eq(r.err, -EIO);

  /* And no busy loop on the dead fd: the core sleeps, nothing more comes. */
  test_sleep_ms(50);
  ax_core_stats_t s0, s1;
  ck_assert_int_eq(ax_rt_stats(f.rt, 0, &s0), 0);
  double cpu0 = cpu_seconds();
  ax_msg_t m;
  ck_assert_int_eq(ax_port_recv(f.port, ax_now() + 300 * AX_NSEC_PER_MSEC, &m), -ETIMEDOUT);
  ck_assert_int_eq(ax_rt_stats(f.rt, 0, &s1), 0);
  double cpu = cpu_seconds() - cpu0;
  ck_assert_msg(s1.sleeps - s0.sleeps < 20 && s1.polls - s0.polls < 20,
                "the core kept waking up: %llu sleeps, %llu polls in 300 ms",
                (unsigned long long)(s1.sleeps - s0.sleeps),
                (unsigned long long)(s1.polls - s0.polls));
  ck_assert_uint_eq(s1.delivered, s0.delivered);
  ck_assert_msg(cpu < 0.15, "%.3f s of CPU in 300 ms idle", cpu);
  fx_expect_quiet(&f);
  fx_stop(&f);
}
END_TEST

/* Hang-up while the owner is writing: the write reports -EIO or the
 * stream ends with CLOSED{-EIO}; either way exactly one CLOSED. */
START_TEST(test_serial_hangup_writing) {
  pty_t p;
  pty_open(&p);
  fx_t f;
  fx_start(&f, 1, 0);
  ck_assert_int_eq(fx_open(&f, 0, p.name, NULL), 0);
  cmd_t c;
  memset(&c, 0, sizeof c);
  c.len = 20000; /* more than the pty buffers: the rest is queued */
  ck_assert_int_eq(fx_cmd(&f, CMD_WRITE_LINES, &c), 0);
  pty_close(&p);
  rep_t r = fx_recv(&f, REP_CLOSED);
  ck_assert_int_eq(r.err, -EIO);
  fx_expect_quiet(&f);
  fx_stop(&f);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* socat virtual ports                                                       */

/* The "socat" group's test (test_group_t): NULL when socat is on PATH.
 * Never installs it: scripts/deps.sh does. */
static const char *socat_missing(void) {
  return test_on_path("socat") ? NULL : "socat is not on PATH (scripts/deps.sh installs it)";
}

/* Runs `stty -F path -a` and returns its output in buf. */
static void stty_read(const char *path, char *buf, size_t cap) {
  char cmd[256];
  snprintf(cmd, sizeof cmd, "stty -F %s -a 2>&1", path);
  FILE *pf = popen(cmd, "r");
  ck_assert_ptr_nonnull(pf);
  size_t n = fread(buf, 1, cap - 1, pf);
  buf[n] = '\0';
  ck_assert_int_eq(pclose(pf), 0);
}

/* True when word appears in s as a whole word (space or ';' around it). */
static bool has_word(const char *s, const char *word) {
  size_t n = strlen(word);
  for (const char *p = strstr(s, word); p != NULL; p = strstr(p + 1, word)) {
    bool start = p == s || p[-1] == ' ' || p[-1] == '\n' || p[-1] == ';';
    bool end = p[n] == '\0' || p[n] == ' ' || p[n] == '\n' || p[n] == ';';
    if (start && end)
      return true;
  }
  return false;
}

/* Group "socat": runs only where socat_missing() finds socat. */
START_TEST(test_serial_socat) {
  char dir[] = "/tmp/axon-socat-XXXXXX";
  ck_assert_ptr_nonnull(mkdtemp(dir));
  char x[96], y[96], ax[128], ay[128];
  snprintf(x, sizeof x, "%s/x", dir);
  snprintf(y, sizeof y, "%s/y", dir);
  snprintf(ax, sizeof ax, "pty,raw,echo=0,link=%s", x);
  snprintf(ay, sizeof ay, "pty,raw,echo=0,link=%s", y);
  pid_t pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive a failed test */
    int null = open("/dev/null", O_RDWR);
    dup2(null, 1);
    dup2(null, 2);
    execlp("socat", "socat", "-d", "-d", ax, ay, (char *)NULL);
    _exit(127);
  }
  struct stat st;
  for (int i = 0; i < 500 && (lstat(x, &st) != 0 || lstat(y, &st) != 0); i++)
    test_sleep_ms(10);
  ck_assert_msg(lstat(x, &st) == 0 && lstat(y, &st) == 0, "socat made no ports");

  fx_t f;
  fx_start(&f, 2, 1);
  /* shared: stty opens the port too, which TIOCEXCL refuses to non-root. */
  ax_serial_opts_t o = {.baud = 19200, .data_bits = 7, .parity = AX_PARITY_ODD,
                        .stop_bits = 2, .flow = AX_FLOW_XONXOFF, .shared = true,
                        .stream = {.frame = AX_FRAME_DELIM}};
  ck_assert_int_eq(fx_open(&f, 0, x, &o), 0);
  char out[4096];
  stty_read(x, out, sizeof out);
  ck_assert_msg(strstr(out, "speed 19200 baud") != NULL, "stty: %s", out);
  static const char *const words[] = {"parodd", "cstopb", "ixon",    "ixoff",
                                      "clocal", "cread",  "-icanon", "-echo",
                                      "-isig",  "-opost", "-icrnl",  "-crtscts"};
  for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
    ck_assert_msg(has_word(out, words[i]), "stty lacks '%s': %s", words[i], out);
  /* socat's ports are ptys: 7 data bits and parity only where the kernel
   * keeps them (see pty_pins_frame). */
  bool pinned = pty_pins_frame();
  ck_assert_msg(has_word(out, pinned ? "cs8" : "cs7"), "stty: %s", out);
  ck_assert_msg(has_word(out, pinned ? "-parenb" : "parenb"), "stty: %s", out);
  ck_assert_msg(strstr(out, "min = 1;") != NULL && strstr(out, "time = 0;") != NULL,
                "stty: %s", out);

  /* Data both ways through socat. */
  int yfd = open(y, O_RDWR | O_NOCTTY | O_CLOEXEC);
  ck_assert_int_ge(yfd, 0);
  fx_write(&f, 0, "to the far end\n");
  fd_expect(yfd, "to the far end\n");
  fd_write(yfd, "and back\nagain\n");
  fx_expect_line(&f, 0, "and back");
  fx_expect_line(&f, 0, "again");

  /* socat going away hangs the port up. */
  kill(pid, SIGTERM);
  int status;
  ck_assert_int_eq(waitpid(pid, &status, 0), pid);
  rep_t r = fx_recv(&f, REP_CLOSED);
  ck_assert_int_eq(r.err, -EIO);
  close(yfd);
  fx_expect_quiet(&f);
  fx_stop(&f);
  unlink(x);
  unlink(y);
  rmdir(dir);
}
END_TEST

static Suite *serial_suite(void) {
  Suite *s = suite_create("serial");
  TCase *tc = tcase_create("settings");
  tcase_add_test(tc, test_serial_defaults);
  tcase_add_test(tc, test_serial_line_settings);
  tcase_add_test(tc, test_serial_cooked);
  tcase_set_timeout(tc, 60);
  suite_add_tcase(s, tc);
  tc = tcase_create("exclusive");
  tcase_add_test(tc, test_serial_exclusive);
  tcase_set_timeout(tc, 60);
  suite_add_tcase(s, tc);
  tc = tcase_create("lines");
  tcase_add_test(tc, test_serial_lines);
  tcase_add_test(tc, test_serial_line_too_long);
  tcase_set_timeout(tc, 120);
  suite_add_tcase(s, tc);
  tc = tcase_create("errors");
  tcase_add_test(tc, test_serial_errors);
  tcase_set_timeout(tc, 60);
  suite_add_tcase(s, tc);
  tc = tcase_create("hangup");
  tcase_add_test(tc, test_serial_hangup);
  tcase_add_test(tc, test_serial_hangup_writing);
  tcase_set_timeout(tc, 60);
  suite_add_tcase(s, tc);
  tc = tcase_create("socat"); /* a CTest entry of its own: sources_serial_socat */
  tcase_set_tags(tc, "socat");
  tcase_add_test(tc, test_serial_socat);
  tcase_set_timeout(tc, 300);
  suite_add_tcase(s, tc);
  return s;
}

/* Without an argument: every TCase but the groups'; "socat": that group,
 * or SKIP (77) when socat is not on PATH (test_run_groups). */
int main(int argc, char **argv) {
  static const test_group_t groups[] = {{"socat", socat_missing}};
  return test_run_groups(serial_suite(), argc, argv, groups, sizeof groups / sizeof groups[0]);
}
