/* Datagram sources: UDP (v4/v6) and unix datagram sockets, one AX_MSG_DATAGRAM per packet under a window. */
#include <assert.h>
#include <errno.h>
#include <stddef.h>
#include <time.h> /* before linux/errqueue.h, which uses struct timespec */
#include <linux/errqueue.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "actors/io/addr.h"
#include "actors/io/src.h"
#include "axon/source.h"

#define AX__DG_WINDOW 64u
#define AX__DG_BURST 32u
#define AX__DG_MAX_PACKET ((size_t)65536)
#define AX__DG_MAX_MAX ((size_t)16 << 20) /* the largest max_packet accepted */
/* Receive buffer budget: one recvmmsg call takes as many packets as fit in
 * it at max_packet each (at least one, at most burst). */
#define AX__DG_BUF ((size_t)64 * 1024)

/*
 * A datagram socket owned by an actor.  Each packet becomes one
 * AX_MSG_DATAGRAM holding an ax_datagram_t and, right after it in the same
 * message, the packet's bytes.  At most `window` of them are unhandled at
 * once: when the window is full the socket leaves the loop (packets wait
 * in the kernel's receive buffer, and past it the kernel drops them, as
 * UDP does), and the credit of a handled message brings it back.  Per
 * readiness event at most `burst` packets are read.
 *
 * Sends never queue: a full send buffer is -EAGAIN.  An error the kernel
 * reports on the socket (ICMP port unreachable on a connected socket) is
 * taken by the reader and kept in `err`, to be returned by the next send,
 * which is where the kernel itself would have reported it.
 */
struct ax_dgram {
  ax__src_t src; /* first */
  int fd;
  int family; /* AF_INET, AF_INET6 or AF_UNIX */
  int err;    /* a socket error for the next send, or 0 */
  ax_io_t io;
  unsigned ev; /* the events io requests now */
  ax_dgram_opts_t o;
  unsigned slots; /* packets per recvmmsg call */
  struct mmsghdr *mm;
  struct iovec *iov;
  struct sockaddr_storage *from;
  unsigned char *buf; /* slots * o.max_packet */
};
_Static_assert(offsetof(struct ax_dgram, src) == 0, "a handle is its source (ax__src_close_handle)");

/* The offset of the bytes in a message: the header, rounded up to 16. */
#define AX__DG_HEAD ((sizeof(ax_datagram_t) + 15) & ~(size_t)15)

/* Watches the socket while a packet may be posted (a refusal of the loop
 * ends the socket with AX_MSG_CLOSED{err}). */
static void update_interest(ax_dgram_t *d) {
  (void)ax__src_watch(&d->src, &d->io, &d->ev, ax__src_may_post(&d->src) ? AX_READ : 0);
}

/* Posts packet i of the last recvmmsg.  A packet that cannot get a message
 * (out of memory) is dropped, as the kernel would drop it. */
static void post_packet(ax_dgram_t *d, unsigned i) {
  size_t len = d->mm[i].msg_len;
  ax__msg_t *m = ax__src_msg(&d->src, AX_MSG_DATAGRAM, AX__DG_HEAD + len);
  if (m == NULL)
    return;
  ax_datagram_t *dg = (ax_datagram_t *)(void *)m->payload;
  memset(dg, 0, sizeof *dg);
  dg->dgram = d;
  socklen_t flen = d->mm[i].msg_hdr.msg_namelen;
  if (flen > sizeof dg->from)
    flen = sizeof dg->from;
  memcpy(&dg->from, &d->from[i], flen);
  dg->from_len = flen;
  dg->truncated = (d->mm[i].msg_hdr.msg_flags & MSG_TRUNC) != 0;
  dg->len = len;
  dg->bytes = m->payload + AX__DG_HEAD;
  memcpy(m->payload + AX__DG_HEAD, d->iov[i].iov_base, len);
  ax__src_post(&d->src, m, AX__MSG_CREDIT);
}

/* Reads while the kernel has packets, the burst lasts and credit remains. */
static void read_packets(ax_dgram_t *d) {
  unsigned budget = d->o.burst;
  while (budget > 0 && !d->src.closed && d->src.owner != NULL) {
    if (d->src.inflight >= d->src.window) /* window > 0 always here */
      break;
    unsigned credit = d->src.window - d->src.inflight;
    unsigned want = budget < credit ? budget : credit;
    if (want > d->slots)
      want = d->slots;
    for (unsigned i = 0; i < want; i++) {
      d->iov[i].iov_base = d->buf + (size_t)i * d->o.max_packet;
      d->iov[i].iov_len = d->o.max_packet;
      memset(&d->mm[i].msg_hdr, 0, sizeof d->mm[i].msg_hdr);
      d->mm[i].msg_hdr.msg_name = &d->from[i];
      d->mm[i].msg_hdr.msg_namelen = sizeof d->from[i];
      d->mm[i].msg_hdr.msg_iov = &d->iov[i];
      d->mm[i].msg_hdr.msg_iovlen = 1;
      d->mm[i].msg_len = 0;
    }
    int n = recvmmsg(d->fd, d->mm, want, MSG_DONTWAIT, NULL);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK)
        break;
      /* A pending socket error (ECONNREFUSED after an ICMP, ...): taken
       * off the socket here, handed to the next send. */
      d->err = -errno;
      budget--;
      continue;
    }
    for (int i = 0; i < n; i++)
      post_packet(d, (unsigned)i);
    budget -= (unsigned)n;
    if ((unsigned)n < want)
      break; /* drained; level-triggered, so more comes as an event */
  }
}

/* Empties the socket's error queue.  While it holds anything the socket
 * reports an error at every poll (level-triggered), and a read does not
 * take it: ICMP errors once IP_RECVERR or IPV6_RECVERR is set on the fd
 * (ax_dgram_fd), transmit timestamps.  The first ICMP or local error is
 * kept for the next send, as a pending socket error is.  At most 64 per
 * event: more come back with the next one. */
static void drain_errqueue(ax_dgram_t *d) {
  for (unsigned i = 0; i < 64; i++) {
    union {
      struct cmsghdr align;
      unsigned char buf[CMSG_SPACE(sizeof(struct sock_extended_err) +
                                   sizeof(struct sockaddr_in6)) * 2];
    } ctl;
    unsigned char byte;
    struct iovec iov = {&byte, 1};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf,
                        .msg_controllen = sizeof ctl.buf};
    if (recvmsg(d->fd, &mh, MSG_ERRQUEUE | MSG_DONTWAIT) < 0) {
      if (errno == EINTR)
        continue;
      return; /* EAGAIN: empty */
    }
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c != NULL; c = CMSG_NXTHDR(&mh, c)) {
      if (!((c->cmsg_level == SOL_IP && c->cmsg_type == IP_RECVERR) ||
            (c->cmsg_level == SOL_IPV6 && c->cmsg_type == IPV6_RECVERR)))
        continue;
      struct sock_extended_err ee;
      memcpy(&ee, CMSG_DATA(c), sizeof ee);
      if (d->err == 0 && ee.ee_errno != 0 &&
          (ee.ee_origin == SO_EE_ORIGIN_ICMP || ee.ee_origin == SO_EE_ORIGIN_ICMP6 ||
           ee.ee_origin == SO_EE_ORIGIN_LOCAL))
        d->err = -(int)ee.ee_errno;
    }
  }
}

static void io_cb(ax_io_t *io, unsigned revents) {
  ax_dgram_t *d = io->data;
  read_packets(d);
  if (revents & AX_ERR)
    drain_errqueue(d);
  update_interest(d);
}

static void op_close(ax__src_t *s) {
  ax_dgram_t *d = (ax_dgram_t *)s;
  ax_io_stop(&d->io);
  d->ev = 0;
  if (d->fd >= 0)
    close(d->fd);
  d->fd = -1;
}

static void op_free(ax__src_t *s) {
  ax_dgram_t *d = (ax_dgram_t *)s;
  free(d->buf);
  free(d);
}

/* The window had been full and a message was handled: read again. */
static void op_credit(ax__src_t *s) { update_interest((ax_dgram_t *)s); }

static const ax__src_ops_t dgram_ops = {
    .close = op_close,
    .free = op_free,
    .credit = op_credit,
};

/* ------------------------------------------------------------------------ */
/* Making sockets.                                                           */

static int parse_opts(const ax_dgram_opts_t *in, ax_dgram_opts_t *o) {
  *o = in != NULL ? *in : (ax_dgram_opts_t){0};
  if (o->max_packet > AX__DG_MAX_MAX || o->sndbuf < 0 || o->rcvbuf < 0 || o->window > 65536 ||
      o->burst > 4096)
    return -EINVAL;
  if (o->window == 0)
    o->window = AX__DG_WINDOW;
  if (o->burst == 0)
    o->burst = AX__DG_BURST;
  if (o->max_packet == 0)
    o->max_packet = AX__DG_MAX_PACKET;
  return 0;
}

/* Socket options from o; -errno on failure. */
static int apply_opts(int fd, const ax_dgram_opts_t *o) {
  int on = 1;
  if (o->broadcast && setsockopt(fd, SOL_SOCKET, SO_BROADCAST, &on, sizeof on) < 0)
    return -errno;
  if (o->sndbuf > 0 && setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &o->sndbuf, sizeof o->sndbuf) < 0)
    return -errno;
  if (o->rcvbuf > 0 && setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &o->rcvbuf, sizeof o->rcvbuf) < 0)
    return -errno;
  return 0;
}

/* Makes the source over a bound socket.  On failure the fd is closed. */
static int dgram_new(ax_actor_t *self, int fd, int family, const ax_dgram_opts_t *o,
                     ax_dgram_t **out) {
  ax_dgram_t *d = ax__src_new(sizeof *d, &dgram_ops, self, o->window);
  if (d == NULL) {
    close(fd);
    return -ENOMEM;
  }
  d->fd = fd;
  d->family = family;
  d->o = *o;
  size_t fit = AX__DG_BUF / o->max_packet;
  d->slots = fit < 1 ? 1 : fit > o->burst ? o->burst : (unsigned)fit;
  size_t each = sizeof(struct mmsghdr) + sizeof(struct iovec) + sizeof(struct sockaddr_storage);
  size_t area = ((size_t)d->slots * o->max_packet + 15) & ~(size_t)15;
  /* One block: the packet buffers, then the names, headers and iovecs. */
  d->buf = ax__malloc(area + d->slots * each);
  if (d->buf == NULL) {
    ax__src_close(&d->src); /* closes the fd */
    return -ENOMEM;
  }
  unsigned char *p = d->buf + area;
  d->from = (struct sockaddr_storage *)(void *)p;
  d->mm = (struct mmsghdr *)(void *)(p + d->slots * sizeof(struct sockaddr_storage));
  d->iov = (struct iovec *)(void *)(p + d->slots * (sizeof(struct sockaddr_storage) +
                                                    sizeof(struct mmsghdr)));
  ax_io_init(d->src.core->loop, &d->io, fd, io_cb);
  d->io.data = d;
  int rc = ax__io_want(&d->io, &d->ev, AX_READ); /* its error is this call's */
  if (rc < 0) {
    ax__src_close(&d->src); /* closes the fd */
    return rc;
  }
  ax__src_count(&d->src, true);
  *out = d;
  return 0;
}

/* Binds a UDP socket (see source.h) owned by self.  Owner's core; a host
 * name is resolved here, synchronously.  Returns 0 and stores the handle
 * in *out, or -EINVAL (NULL self, addr or out, bad syntax, bad options),
 * an AX_EAI_* code (resolution), -EADDRINUSE, -EACCES, -EMFILE, -ENOMEM. */
int ax_udp_bind(ax_actor_t *self, const char *addr, const ax_dgram_opts_t *opts,
                ax_dgram_t **out) {
  ax_dgram_opts_t o;
  if (self == NULL || addr == NULL || out == NULL || parse_opts(opts, &o) < 0)
    return -EINVAL;
  AX__ASSERT_OWNER(self);
  struct sockaddr_storage ss;
  socklen_t len;
  int rc = ax__addr_resolve_sync(addr, true, SOCK_DGRAM, &ss, &len);
  if (rc < 0)
    return rc;
  int fd = socket(ss.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -errno;
  if (ss.ss_family == AF_INET6) {
    int off = 0; /* dual stack: IPv4 peers arrive as ::ffff:a.b.c.d */
    (void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off);
  }
  rc = apply_opts(fd, &o);
  if (rc == 0 && bind(fd, (struct sockaddr *)&ss, len) < 0)
    rc = -errno;
  if (rc < 0) {
    close(fd);
    return rc;
  }
  return dgram_new(self, fd, ss.ss_family, &o, out);
}

/* Binds a unix datagram socket (see source.h) owned by self.  The file of
 * a path socket stays after close; remove it yourself (or use '@').
 * Owner's core.  Returns 0, or -EINVAL, -EADDRINUSE (the path exists),
 * -EACCES, -EMFILE, -ENOMEM. */
int ax_unix_dgram(ax_actor_t *self, const char *path, const ax_dgram_opts_t *opts,
                  ax_dgram_t **out) {
  ax_dgram_opts_t o;
  struct sockaddr_un sun;
  socklen_t len = sizeof(sa_family_t); /* autobind: the kernel picks an abstract name */
  memset(&sun, 0, sizeof sun);
  sun.sun_family = AF_UNIX;
  if (self == NULL || out == NULL || parse_opts(opts, &o) < 0 ||
      (path != NULL && ax__unix_addr(path, &sun, &len) < 0))
    return -EINVAL;
  AX__ASSERT_OWNER(self);
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -errno;
  int rc = apply_opts(fd, &o);
  if (rc == 0 && bind(fd, (struct sockaddr *)&sun, len) < 0)
    rc = -errno;
  if (rc < 0) {
    close(fd);
    return rc;
  }
  return dgram_new(self, fd, AF_UNIX, &o, out);
}

/* ------------------------------------------------------------------------ */
/* Sending.                                                                  */

/* An IPv4 address for an IPv6 socket becomes ::ffff:a.b.c.d, so that a
 * dual-stack socket (bound to ":port") reaches IPv4 peers. */
static void map_v4(const ax_dgram_t *d, const struct sockaddr **sa, socklen_t *len,
                   struct sockaddr_in6 *tmp) {
  if (d->family != AF_INET6 || *sa == NULL || (*sa)->sa_family != AF_INET ||
      *len < sizeof(struct sockaddr_in))
    return;
  const struct sockaddr_in *v4 = (const struct sockaddr_in *)(const void *)*sa;
  memset(tmp, 0, sizeof *tmp);
  tmp->sin6_family = AF_INET6;
  tmp->sin6_port = v4->sin_port;
  tmp->sin6_addr.s6_addr[10] = 0xff;
  tmp->sin6_addr.s6_addr[11] = 0xff;
  memcpy(&tmp->sin6_addr.s6_addr[12], &v4->sin_addr, 4);
  *sa = (const struct sockaddr *)tmp;
  *len = sizeof *tmp;
}

/* Sends one datagram to addr (NULL: the connected peer).  Never blocks,
 * never queues.  Owner's core.  Returns 0, or -EINVAL (NULL d, data NULL
 * with len > 0, addr_len without addr), -EAGAIN (the send buffer is
 * full), -EMSGSIZE, -ECONNREFUSED (reported for an earlier send to a
 * connected peer), -EDESTADDRREQ/-ENOTCONN (no address, not connected),
 * -EAFNOSUPPORT, ... */
int ax_dgram_send(ax_dgram_t *d, const struct sockaddr *addr, socklen_t addr_len,
                  const void *data, size_t len) {
  if (d == NULL)
    return -EINVAL;
  AX__SRC_ASSERT(&d->src);
  if (d->fd < 0 || (data == NULL && len > 0) || (addr == NULL && addr_len != 0))
    return -EINVAL;
  if (d->err != 0) {
    int err = d->err;
    d->err = 0;
    return err;
  }
  struct sockaddr_in6 tmp;
  map_v4(d, &addr, &addr_len, &tmp);
  ssize_t n;
  do
    n = sendto(d->fd, data, len, MSG_DONTWAIT | MSG_NOSIGNAL, addr, addr_len);
  while (n < 0 && errno == EINTR);
  if (n < 0)
    return errno == EWOULDBLOCK ? -EAGAIN : -errno;
  return 0;
}

/* Parses an address string for d: numeric host:port for UDP, a path (or
 * '@name') for unix sockets.  -EINVAL otherwise. */
static int parse_peer(const ax_dgram_t *d, const char *addr, struct sockaddr_storage *ss,
                      socklen_t *len) {
  if (addr == NULL)
    return -EINVAL;
  if (d->family == AF_UNIX)
    return ax__unix_addr(addr, (struct sockaddr_un *)(void *)ss, len) < 0 ? -EINVAL : 0;
  char host[AX__HOST_MAX];
  unsigned port;
  int rc = ax__addr_parse(addr, false, ss, len, host, &port);
  return rc == 0 ? 0 : -EINVAL; /* 1: a name, which would need resolving */
}

/* Sends one datagram to an address string (numeric for UDP).  Errors: as
 * ax_dgram_send, and -EINVAL for a string that does not parse. */
int ax_dgram_sendto(ax_dgram_t *d, const char *addr, const void *data, size_t len) {
  struct sockaddr_storage ss;
  socklen_t sl;
  if (d == NULL || parse_peer(d, addr, &ss, &sl) < 0)
    return -EINVAL;
  return ax_dgram_send(d, (const struct sockaddr *)&ss, sl, data, len);
}

/* Connects the socket to one peer: sends without an address go there and
 * only its packets arrive.  Owner's core.  Returns 0, or -EINVAL, or the
 * errno of connect(2) (-ECONNREFUSED for a unix path nobody bound, ...). */
int ax_dgram_connect(ax_dgram_t *d, const char *addr) {
  struct sockaddr_storage ss;
  socklen_t sl;
  if (d == NULL)
    return -EINVAL;
  AX__SRC_ASSERT(&d->src);
  if (d->fd < 0 || parse_peer(d, addr, &ss, &sl) < 0)
    return -EINVAL;
  const struct sockaddr *sa = (const struct sockaddr *)&ss;
  struct sockaddr_in6 tmp;
  map_v4(d, &sa, &sl, &tmp);
  if (connect(d->fd, sa, sl) < 0)
    return -errno;
  d->err = 0;
  return 0;
}

/* The bound UDP port, or -EINVAL (NULL, a unix socket).  Owner's core. */
int ax_dgram_port(const ax_dgram_t *d) {
  if (d == NULL)
    return -EINVAL;
  AX__SRC_ASSERT(&d->src);
  if (d->fd < 0 || d->family == AF_UNIX)
    return -EINVAL;
  return ax__sock_port(d->fd);
}

/* The socket, for setsockopt/getsockname (do not read from it or close
 * it).  -EINVAL for NULL. */
int ax_dgram_fd(const ax_dgram_t *d) {
  if (d == NULL)
    return -EINVAL;
  AX__SRC_ASSERT(&d->src);
  return d->fd;
}

/* Closes the socket: no AX_MSG_DATAGRAM of it is delivered after this
 * returns, not even one already queued.  Owner's core.  Returns 0, or
 * -EINVAL for NULL. */
int ax_dgram_close(ax_dgram_t *d) { return ax__src_close_handle((ax__src_t *)d); }
