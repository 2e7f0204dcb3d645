/* Serial ports and ttys as streams: open, exclusive use, line settings through termios2. */

/*
 * The line is configured with the kernel's struct termios2 (ioctl TCGETS2 /
 * TCSETS2), which carries the speed as a number and so takes any rate
 * (BOTHER), not only the Bxxx constants of <termios.h>.  <asm/termbits.h>
 * and glibc's <termios.h> define the same names differently and cannot both
 * be included: this file includes only the kernel's header, and every
 * termios flag below is the kernel's.
 */
#include <asm/termbits.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "actors/io/stream.h"

/* The Bxxx constant of each rate that has one; any other rate is set with
 * BOTHER and the number itself. */
static const struct {
  unsigned baud;
  tcflag_t code;
} std_rates[] = {
    {50, B50},           {75, B75},           {110, B110},         {134, B134},
    {150, B150},         {200, B200},         {300, B300},         {600, B600},
    {1200, B1200},       {1800, B1800},       {2400, B2400},       {4800, B4800},
    {9600, B9600},       {19200, B19200},     {38400, B38400},     {57600, B57600},
    {115200, B115200},   {230400, B230400},   {460800, B460800},   {500000, B500000},
    {576000, B576000},   {921600, B921600},   {1000000, B1000000}, {1152000, B1152000},
    {1500000, B1500000}, {2000000, B2000000}, {2500000, B2500000}, {3000000, B3000000},
    {3500000, B3500000}, {4000000, B4000000},
};

/* The default rate and line, as the header promises: 115200 8N1. */
#define SERIAL_DEFAULT_BAUD 115200u

/* How far the rate a driver reports back may be from the one asked for
 * before the setting counts as refused, in parts per thousand.  UART
 * drivers round to what their clock divider can make (a few per mille);
 * a receiver copes with a few percent. */
#define SERIAL_RATE_TOLERANCE_PERMILLE 30u

/* The line settings after defaults: every field valid. */
typedef struct line {
  unsigned baud;
  unsigned data_bits;
  ax_parity_t parity;
  unsigned stop_bits;
  ax_flow_t flow;
  bool cooked;
} line_t;

/* Checks opts' line fields and fills in the defaults.  Returns 0 or
 * -EINVAL. */
static int line_from_opts(const ax_serial_opts_t *opts, line_t *l) {
  static const ax_serial_opts_t defaults;
  if (opts == NULL)
    opts = &defaults;
  l->baud = opts->baud != 0 ? opts->baud : SERIAL_DEFAULT_BAUD;
  l->data_bits = opts->data_bits != 0 ? opts->data_bits : 8;
  l->parity = opts->parity;
  l->stop_bits = opts->stop_bits != 0 ? opts->stop_bits : 1;
  l->flow = opts->flow;
  l->cooked = opts->cooked;
  if (l->data_bits < 5 || l->data_bits > 8)
    return -EINVAL;
  if (l->stop_bits != 1 && l->stop_bits != 2)
    return -EINVAL;
  if ((unsigned)l->parity > AX_PARITY_EVEN || (unsigned)l->flow > AX_FLOW_XONXOFF)
    return -EINVAL;
  return 0;
}

static tcflag_t size_flag(unsigned data_bits) {
  switch (data_bits) {
  case 5:
    return CS5;
  case 6:
    return CS6;
  case 7:
    return CS7;
  default:
    return CS8;
  }
}

/* Sets the speed fields: the Bxxx code for a standard rate, else BOTHER
 * with the number.  CIBAUD is cleared, which tells the kernel that the
 * input speed is the output speed; c_ispeed says the same for drivers that
 * read it. */
static void set_speed(struct termios2 *t, unsigned baud) {
  tcflag_t code = BOTHER;
  for (size_t i = 0; i < sizeof std_rates / sizeof std_rates[0]; i++) {
    if (std_rates[i].baud == baud) {
      code = std_rates[i].code;
      break;
    }
  }
  t->c_cflag &= ~(tcflag_t)(CBAUD | CIBAUD);
  t->c_cflag |= code;
  t->c_ospeed = baud;
  t->c_ispeed = baud;
}

/* Applies line l to the settings in t (read from the device first, so that
 * fields this does not manage keep their values). */
static void apply_line(struct termios2 *t, const line_t *l) {
  set_speed(t, l->baud);

  t->c_cflag &= ~(tcflag_t)(CSIZE | PARENB | PARODD | CMSPAR | CSTOPB | CRTSCTS);
  t->c_cflag |= size_flag(l->data_bits) | CLOCAL | CREAD;
  if (l->parity != AX_PARITY_NONE)
    t->c_cflag |= PARENB | (l->parity == AX_PARITY_ODD ? PARODD : 0);
  if (l->stop_bits == 2)
    t->c_cflag |= CSTOPB;

  if (!l->cooked) {
    /* What cfmakeraw does: bytes pass untouched, no echo, no line editing,
     * no signal characters, no CR/NL translation, no output processing. */
    t->c_iflag &= ~(tcflag_t)(IGNBRK | BRKINT | PARMRK | ISTRIP | INLCR | IGNCR | ICRNL);
    t->c_oflag &= ~(tcflag_t)OPOST;
    t->c_lflag &= ~(tcflag_t)(ECHO | ECHONL | ICANON | ISIG | IEXTEN);
    t->c_cc[VMIN] = 1; /* reads are non-blocking anyway: this only matters to others */
    t->c_cc[VTIME] = 0;
  }
  /* With parity on, check it on input (a byte that fails reads as 0). */
  if (l->parity != AX_PARITY_NONE)
    t->c_iflag |= INPCK;
  else
    t->c_iflag &= ~(tcflag_t)INPCK;

  t->c_iflag &= ~(tcflag_t)(IXON | IXOFF | IXANY);
  if (l->flow == AX_FLOW_XONXOFF)
    t->c_iflag |= IXON | IXOFF;
  else if (l->flow == AX_FLOW_RTSCTS)
    t->c_cflag |= CRTSCTS;
}

/* True when the rate a driver reports is close enough to the one asked for.
 * A driver that reports no number (0) is taken at its word. */
static bool rate_close(unsigned want, unsigned got) {
  if (got == 0)
    return true;
  uint64_t diff = got > want ? got - want : want - got;
  return diff * 1000u <= (uint64_t)want * SERIAL_RATE_TOLERANCE_PERMILLE;
}

/* True when the device took the settings that matter for talking to the
 * other end: frame format, flow control and (roughly) the rate.  A driver
 * that cannot do something (5 data bits, an odd rate) may silently keep
 * its old value; TCSETS2 succeeds as long as anything changed.  A pty has
 * no wire: its driver pins the frame to 8 bits without parity whatever is
 * asked, so data bits and parity are not checked on one (is_pty). */
static bool line_took(const struct termios2 *got, const struct termios2 *want, unsigned baud,
                      bool pty) {
  tcflag_t cmask = CSTOPB | CRTSCTS;
  if (!pty)
    cmask |= CSIZE | PARENB | PARODD;
  const tcflag_t imask = IXON | IXOFF;
  return (got->c_cflag & cmask) == (want->c_cflag & cmask) &&
         (got->c_iflag & imask) == (want->c_iflag & imask) && rate_close(baud, got->c_ospeed);
}

/* True when fd is the slave side of a pseudo-terminal: Unix98 ptys
 * (/dev/pts/N, majors 136..143) or the legacy BSD ones (major 3). */
static bool is_pty(int fd) {
  struct stat st;
  if (fstat(fd, &st) < 0 || !S_ISCHR(st.st_mode))
    return false;
  unsigned maj = major(st.st_rdev);
  return (maj >= 136 && maj <= 143) || maj == 3;
}

static int get_termios2(int fd, struct termios2 *t) {
  memset(t, 0, sizeof *t);
  return ioctl(fd, TCGETS2, t) < 0 ? -errno : 0;
}

static int set_termios2(int fd, const struct termios2 *t) {
  int rc;
  do
    rc = ioctl(fd, TCSETS2, t);
  while (rc < 0 && errno == EINTR);
  return rc < 0 ? -errno : 0;
}

/* Configures the tty on fd as l says, and checks by reading the settings
 * back.  When the device refuses a setting, puts the old settings back and
 * returns -EINVAL; other errors are the ioctl's -errno. */
static int configure_fd(int fd, const line_t *l) {
  struct termios2 old, want, got;
  int rc = get_termios2(fd, &old);
  if (rc < 0)
    return rc;
  want = old;
  apply_line(&want, l);
  if ((rc = set_termios2(fd, &want)) < 0)
    return rc;
  if ((rc = get_termios2(fd, &got)) < 0)
    return rc;
  if (!line_took(&got, &want, l->baud, is_pty(fd))) {
    (void)set_termios2(fd, &old); /* best effort: the error below is what matters */
    return -EINVAL;
  }
  return 0;
}

/* Takes the port for this open file alone (exclusive) or alongside other
 * shared opens.  Exclusive: TIOCEXCL makes the kernel refuse further opens
 * with EBUSY, except to a process with CAP_SYS_ADMIN; an flock(LOCK_EX) on
 * top refuses a second exclusive or shared open of axon's with EBUSY even
 * then (root is common on small device boxes), and serial tools that lock
 * the same way (pyserial's exclusive mode, for one) respect it.  Shared: an
 * flock(LOCK_SH), so that an exclusive open elsewhere refuses this one and
 * the other way round.  Everything ends when the fd is closed; a refused
 * call leaves the port as it was. */
static int take_port(int fd, bool shared) {
  int rc;
  do
    rc = flock(fd, (shared ? LOCK_SH : LOCK_EX) | LOCK_NB);
  while (rc < 0 && errno == EINTR);
  if (rc < 0)
    return errno == EWOULDBLOCK ? -EBUSY : -errno;
  if (!shared && ioctl(fd, TIOCEXCL) < 0)
    return -errno; /* closing the fd drops the lock */
  return 0;
}

/* Opens path as a tty: non-blocking, not as the controlling terminal,
 * close-on-exec.  Returns the fd or -errno (-ENOTTY for a file that is not
 * a terminal). */
static int open_tty(const char *path) {
  int fd;
  do
    fd = open(path, O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
  while (fd < 0 && errno == EINTR);
  if (fd < 0)
    return -errno;
  if (!isatty(fd)) {
    close(fd);
    return -ENOTTY;
  }
  return fd;
}

/* ------------------------------------------------------------------------ */
/* The public calls.                                                         */

/* Opens a serial port as a stream owned by self (see include/axon/stream.h).
 * Every option is checked before anything is opened; then the order is
 * open, exclusive lock, line settings, stream.  On failure the fd is closed
 * (which drops the lock) and no message is ever sent.  The owner's core
 * only.  Returns 0, or -EINVAL (NULL argument, an option out of range, a
 * setting the device refused), -ENOTTY, -EBUSY, -ENOENT, -EACCES, -ENOMEM,
 * or another -errno from open/ioctl. */
int ax_serial_open(ax_actor_t *self, const char *path, const ax_serial_opts_t *opts,
                   ax_stream_t **out) {
  static const ax_serial_opts_t defaults;
  if (self == NULL || path == NULL || out == NULL)
    return -EINVAL;
  AX__ASSERT_OWNER(self);
  if (opts == NULL)
    opts = &defaults;
  line_t line;
  ax_stream_opts_t checked;
  if (line_from_opts(opts, &line) < 0 || ax__stream_opts(&opts->stream, &checked) < 0)
    return -EINVAL;
  if (path[0] == '\0')
    return -ENOENT;

  int fd = open_tty(path);
  if (fd < 0)
    return fd;
  int rc = take_port(fd, opts->shared);
  if (rc == 0)
    rc = configure_fd(fd, &line);
  if (rc == 0)
    rc = ax__stream_new(self, fd, fd, AX__STREAM_TTY, &opts->stream, out);
  if (rc < 0) {
    close(fd); /* ax__stream_new leaves the fd to us when it fails */
    return rc;
  }
  return 0;
}

/* Changes the line settings (rate, data bits, parity, stop bits, flow
 * control, raw or cooked) of a stream opened by ax_serial_open, or of any
 * tty stream; opts->stream and opts->shared are ignored (exclusivity is
 * decided at open).  Settings are checked before the device is touched, and
 * a setting the device refuses leaves the old ones in place.  The owner's
 * core only.  Returns 0, or -EINVAL (NULL argument, an option out of range,
 * a refused setting), -ENOTTY (not a tty stream), -EBADF (the stream has no
 * fd any more), or the ioctl's -errno. */
int ax_serial_configure(ax_stream_t *s, const ax_serial_opts_t *opts) {
  if (s == NULL || opts == NULL)
    return -EINVAL;
  line_t line;
  if (line_from_opts(opts, &line) < 0)
    return -EINVAL;
  if (ax__stream_kind(s) != AX__STREAM_TTY)
    return -ENOTTY;
  int fd = ax_stream_fd(s);
  if (fd < 0)
    return fd;
  return configure_fd(fd, &line);
}
