/* Check suite of hostile peers against ax_tcp_serve on 127.0.0.1: 10,000 idle connections, slowloris, clients that never read, resets mid-write, half-open clients, accept under EMFILE. */
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include "stream_test.h"

/*
 * Every test serves lines with one session actor per connection
 * (hostile_session below) and attacks it with plain sockets from the test
 * thread or from a child process.  Each check is an exact count or a
 * bound that the documentation promises; none is a timing, except the
 * accept back-off's CPU bound, which only the plain build asserts.
 */

enum {
  MSG_CLOSE_NOW = AX_MSG_USER + 1, /* a session closes its stream and stops */
  BODY_MAX = 256 << 10,            /* the pattern bytes responses are cut from */
};

/* st_pattern(0 .. BODY_MAX-1), filled by main() before any test runs. */
static unsigned char body[BODY_MAX];

/* What the sessions of one server share: the test's settings and their
 * counters (written by the sessions on every core, read by the test). */
typedef struct srv {
  /* set before ax_tcp_serve */
  size_t response;     /* bytes answered to a "GET" line */
  size_t chunk;        /* the size of each write of a response (<= BODY_MAX) */
  size_t eof_body;     /* half-open: pattern bytes after the reply line */
  uint64_t fe_nl;      /* slowloris: FRAME_ERROR.count for a line ended by '\n' */
  uint64_t fe_eof;     /* slowloris: FRAME_ERROR.count for a line cut by EOF */
  /* counters */
  atomic_int given;    /* sessions that got their stream */
  atomic_int ended;    /* sessions whose terminate hook ran */
  atomic_int lines;    /* lines echoed */
  atomic_int gets;     /* responses started */
  atomic_int done;     /* responses written (queued) whole */
  atomic_int refused;  /* sessions that met -ENOBUFS at least once */
  atomic_size_t max_queued;      /* most bytes queued after an accepted write */
  atomic_size_t min_at_refusal;  /* fewest bytes queued when a write was refused */
  atomic_int write_errors;       /* writes that failed with something else */
  atomic_int last_write_error;
  atomic_int frame_errors;       /* FRAME_ERROR{-EMSGSIZE} with an expected count */
  atomic_int frame_nl, frame_eof; /* ... ended by '\n', cut by EOF */
  atomic_int frame_bad;          /* FRAME_ERROR with another err or count */
  atomic_llong frame_bad_count;
  atomic_int data_after_frame_error; /* DATA of a session that had a FRAME_ERROR */
  atomic_llong data_after_frame_error_len;
  atomic_int eofs;               /* AX_MSG_EOF with exactly one line before it */
  atomic_int eof_bad;            /* AX_MSG_EOF after no line or several */
  atomic_int closed_eof, closed_reset, closed_pipe, closed_other;
  atomic_int last_other_err;
} srv_t;

/* One session's block (ax_serve_opts_t.session_size). */
typedef struct sess {
  srv_t *srv;
  ax_stream_t *s;
  size_t left;        /* response bytes still to write */
  size_t off;         /* where the next one starts in body[] */
  bool refused;       /* met -ENOBUFS already */
  bool frame_error;
  int lines;
  char line[64];      /* the first line (half-open replies) */
} sess_t;

static void session_init(ax_actor_t *self, void *shared) {
  sess_t *ss = ax_state(self);
  ss->srv = shared;
}

static void session_end(ax_actor_t *self, int reason) {
  (void)reason;
  sess_t *ss = ax_state(self);
  atomic_fetch_add(&ss->srv->ended, 1);
}

static void store_max(atomic_size_t *a, size_t v) {
  size_t cur = atomic_load(a);
  while (v > cur && !atomic_compare_exchange_weak(a, &cur, v)) {
  }
}

static void store_min(atomic_size_t *a, size_t v) {
  size_t cur = atomic_load(a);
  while (v < cur && !atomic_compare_exchange_weak(a, &cur, v)) {
  }
}

static void write_failed(srv_t *sv, int rc) {
  atomic_fetch_add(&sv->write_errors, 1);
  atomic_store(&sv->last_write_error, rc);
}

/* Writes the rest of a response in chunk-sized pieces until it is all
 * queued or the queue refuses (-ENOBUFS: AX_MSG_WRITABLE resumes). */
static void pump(sess_t *ss) {
  srv_t *sv = ss->srv;
  while (ss->left > 0) {
    size_t n = ss->left < sv->chunk ? ss->left : sv->chunk;
    if (ss->off + n > BODY_MAX)
      ss->off = 0;
    int rc = ax_stream_write(ss->s, body + ss->off, n);
    if (rc == -ENOBUFS) {
      store_min(&sv->min_at_refusal, ax_stream_queued(ss->s));
      if (!ss->refused) {
        ss->refused = true;
        atomic_fetch_add(&sv->refused, 1);
      }
      return;
    }
    if (rc < 0) { /* the peer is gone: AX_MSG_CLOSED follows */
      if (rc != -ECONNRESET && rc != -EPIPE)
        write_failed(sv, rc);
      ss->left = 0;
      return;
    }
    store_max(&sv->max_queued, ax_stream_queued(ss->s));
    ss->left -= n;
    ss->off += n;
  }
  atomic_fetch_add(&sv->done, 1);
}

/* Echoes a line with its '\n' in one write. */
static void echo(sess_t *ss, const ax_data_t *d) {
  char buf[2048];
  int rc;
  if (d->len < sizeof buf) {
    memcpy(buf, d->bytes, d->len);
    buf[d->len] = '\n';
    rc = ax_stream_write(d->stream, buf, d->len + 1);
  } else {
    rc = ax_stream_write(d->stream, d->bytes, d->len);
    if (rc == 0)
      rc = ax_stream_write(d->stream, "\n", 1);
  }
  if (rc < 0)
    write_failed(ss->srv, rc);
  else
    atomic_fetch_add(&ss->srv->lines, 1);
}

/* Half-open: the peer has sent its line and shut its side; answer it, then
 * close (queued bytes are flushed while the stream lingers). */
static void answer_eof(sess_t *ss) {
  srv_t *sv = ss->srv;
  atomic_fetch_add(ss->lines == 1 ? &sv->eofs : &sv->eof_bad, 1);
  char head[128];
  int len = snprintf(head, sizeof head, "reply: %s\n", ss->line);
  int rc = ax_stream_write(ss->s, head, (size_t)len);
  for (size_t off = 0; rc == 0 && off < sv->eof_body; off += 64 << 10) {
    size_t n = sv->eof_body - off < (64 << 10) ? sv->eof_body - off : (64 << 10);
    rc = ax_stream_write(ss->s, body + off, n);
  }
  if (rc < 0)
    write_failed(sv, rc);
  ax_stream_close(ss->s);
  ss->s = NULL;
}

static void count_closed(srv_t *sv, int err) {
  if (err == 0)
    atomic_fetch_add(&sv->closed_eof, 1);
  else if (err == -ECONNRESET)
    atomic_fetch_add(&sv->closed_reset, 1);
  else if (err == -EPIPE)
    atomic_fetch_add(&sv->closed_pipe, 1);
  else {
    atomic_fetch_add(&sv->closed_other, 1);
    atomic_store(&sv->last_other_err, err);
  }
}

/* The session of every test: echoes lines, answers "GET" with
 * srv.response bytes, answers a half-open peer at its EOF, and closes a
 * peer whose line was too long (one message later, so that anything the
 * stream queued after the FRAME_ERROR is seen first). */
static int hostile_session(ax_actor_t *self, const ax_msg_t *m) {
  sess_t *ss = ax_state(self);
  srv_t *sv = ss->srv;
  switch (m->type) {
  case AX_MSG_GIVEN:
    ss->s = ((const ax_stream_ev_t *)m->data)->stream;
    atomic_fetch_add(&sv->given, 1);
    return 0;
  case AX_MSG_DATA: {
    const ax_data_t *d = m->data;
    if (ss->frame_error) {
      atomic_fetch_add(&sv->data_after_frame_error, 1);
      atomic_store(&sv->data_after_frame_error_len, (long long)d->len);
      return 0;
    }
    if (ss->lines++ == 0)
      snprintf(ss->line, sizeof ss->line, "%.*s", (int)(d->len < 63 ? d->len : 63),
               (const char *)d->bytes);
    if (d->len == 3 && memcmp(d->bytes, "GET", 3) == 0) {
      atomic_fetch_add(&sv->gets, 1);
      ss->left += sv->response;
      if (!ss->refused)
        pump(ss);
      return 0;
    }
    if (sv->eof_body == 0)
      echo(ss, d);
    return 0;
  }
  case AX_MSG_WRITABLE:
    pump(ss);
    return 0;
  case AX_MSG_FRAME_ERROR: {
    const ax_stream_ev_t *ev = m->data;
    if (ev->err == -EMSGSIZE && ev->count == sv->fe_nl) {
      atomic_fetch_add(&sv->frame_nl, 1);
      atomic_fetch_add(&sv->frame_errors, 1);
    } else if (ev->err == -EMSGSIZE && ev->count == sv->fe_eof) {
      atomic_fetch_add(&sv->frame_eof, 1);
      atomic_fetch_add(&sv->frame_errors, 1);
    } else {
      atomic_fetch_add(&sv->frame_bad, 1);
      atomic_store(&sv->frame_bad_count, (long long)ev->count);
    }
    if (!ss->frame_error && ax_send(ax_self(self), MSG_CLOSE_NOW, NULL, 0) != 0)
      return AX_STOP;
    ss->frame_error = true;
    return 0;
  }
  case MSG_CLOSE_NOW:
    return AX_STOP; /* its stream is closed as it stops */
  case AX_MSG_EOF:
    answer_eof(ss);
    return AX_STOP;
  case AX_MSG_CLOSED:
    count_closed(sv, ((const ax_stream_ev_t *)m->data)->err);
    return AX_STOP;
  default:
    return 0;
  }
}

static void srv_init(srv_t *sv) {
  memset(sv, 0, sizeof *sv);
  sv->chunk = 64 << 10;
  sv->fe_nl = sv->fe_eof = UINT64_MAX;
  atomic_store(&sv->min_at_refusal, SIZE_MAX);
}

static ax_serve_opts_t serve_opts(srv_t *sv) {
  ax_serve_opts_t o;
  memset(&o, 0, sizeof o);
  o.stream.frame = AX_FRAME_DELIM;
  o.state = sv;
  o.session_size = sizeof(sess_t);
  o.session_init = session_init;
  o.terminate = session_end;
  return o;
}

static ax_server_t *serve(ax_rt_t *rt, const ax_serve_opts_t *o) {
  ax_server_t *srv = NULL;
  int rc = ax_tcp_serve(rt, "127.0.0.1:0", hostile_session, o, &srv);
  ck_assert_msg(rc == 0, "ax_tcp_serve: %s", ax_strerror(rc));
  return srv;
}

static void server_done(ax_rt_t *rt, ax_server_t *srv) {
  ck_assert_int_eq(ax_server_close(srv), 0);
  test_rt_stop_join_free(rt);
}

/* ------------------------------------------------------------------------ */
/* Client side                                                               */

static struct sockaddr_in loopback(int port) {
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return sa;
}

/* A blocking client connected to port; rcvbuf > 0 sets SO_RCVBUF first. */
static int client(int port, int rcvbuf) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ck_assert_int_ge(fd, 0);
  if (rcvbuf > 0)
    ck_assert_int_eq(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf), 0);
  struct sockaddr_in sa = loopback(port);
  ck_assert_msg(connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0, "connect: %s",
                strerror(errno));
  return fd;
}

/* Reads exactly len bytes, each wait at most timeout_ms; returns how many
 * arrived (fewer at EOF, an error or a timeout). */
static size_t read_n(int fd, void *buf, size_t len, int timeout_ms) {
  size_t have = 0;
  while (have < len) {
    struct pollfd pfd = {fd, POLLIN, 0};
    if (poll(&pfd, 1, timeout_ms) != 1)
      break;
    ssize_t n = read(fd, (char *)buf + have, len - have);
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
      continue;
    if (n <= 0)
      break;
    have += (size_t)n;
  }
  return have;
}

/* One line out, its echo back, on a connected client. */
static void round_trip(int fd, const char *line) {
  size_t len = strlen(line);
  st_write_all(fd, line, len);
  char got[256];
  ck_assert_uint_lt(len, sizeof got);
  size_t n = read_n(fd, got, len, 10000);
  ck_assert_msg(n == len && memcmp(got, line, len) == 0,
                "the echo of %.*s: %zu of %zu bytes, %s", (int)len - 1, line, n, len,
                n == len ? "different" : "missing");
}

/* Resident memory of this process, in bytes (/proc/self/statm). */
static long rss_bytes(void) {
  FILE *f = fopen("/proc/self/statm", "r");
  ck_assert_ptr_nonnull(f);
  long size = 0, resident = 0;
  ck_assert_int_eq(fscanf(f, "%ld %ld", &size, &resident), 2);
  fclose(f);
  return resident * sysconf(_SC_PAGESIZE);
}

/* CPU seconds used by the whole process so far. */
static double cpu_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ------------------------------------------------------------------------ */
/* 10,000 concurrent connections                                             */

enum {
  C10K = 10000,
  C10K_SANITIZED = 2000,
  C10K_RESERVE = 300,  /* fds each process keeps for everything else */
  C10K_INFLIGHT = 256, /* connects and echoes outstanding at once (backlog) */
};

typedef struct c10k_result {
  int echoed;     /* connections that got their line back */
  int errors;     /* connects refused, resets, wrong echoes, timeouts */
  int first_err;  /* errno of the first error (ETIMEDOUT: no progress for 10 s) */
  int first_at;   /* the connection it happened on */
} c10k_result_t;

static void c10k_fail(c10k_result_t *r, int err, int at) {
  if (r->errors++ == 0) {
    r->first_err = err;
    r->first_at = at;
  }
}

/* The clients, in a child process (its own fd table: the server side and
 * the client side each need n fds, more than one RLIMIT_NOFILE may allow).
 * Reads the port from `from_parent`, opens n connections with
 * non-blocking connects on one epoll, C10K_INFLIGHT at a time, sends one
 * line on each and reads its echo, keeps them all open, reports a
 * c10k_result_t to `to_parent`, then waits for one byte (or EOF) and
 * closes them all.  Never returns. */
static void c10k_child(int n, int to_parent, int from_parent) {
  c10k_result_t r = {0, 0, 0, -1};
  int port = 0;
  if (read(from_parent, &port, sizeof port) != sizeof port)
    _exit(2);
  int *fds = malloc(sizeof(int) * (size_t)n);
  unsigned char *got = calloc((size_t)n, 1);
  int ep = epoll_create1(EPOLL_CLOEXEC);
  if (fds == NULL || got == NULL || ep < 0)
    _exit(3);
  struct sockaddr_in sa = loopback(port);
  int next = 0, inflight = 0, finished = 0;
  while (finished < n) {
    while (inflight < C10K_INFLIGHT && next < n) {
      int i = next++;
      fds[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      struct epoll_event ev = {.events = EPOLLOUT, .data.u32 = (uint32_t)i};
      if (fds[i] < 0 ||
          (connect(fds[i], (struct sockaddr *)&sa, sizeof sa) != 0 && errno != EINPROGRESS) ||
          epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &ev) != 0) {
        c10k_fail(&r, errno, i);
        got[i] = 0xfe; /* failed */
        finished++;
        continue;
      }
      inflight++;
    }
    struct epoll_event evs[256];
    int k = epoll_wait(ep, evs, 256, 10000);
    if (k < 0 && errno == EINTR)
      continue;
    if (k <= 0) { /* no progress for 10 s: count every outstanding one */
      for (int i = 0; i < next; i++)
        if (got[i] != 0xff && got[i] != 0xfe)
          c10k_fail(&r, ETIMEDOUT, i);
      break;
    }
    for (int e = 0; e < k; e++) {
      int i = (int)evs[e].data.u32;
      char want[32];
      int wlen = snprintf(want, sizeof want, "conn %05d\n", i);
      bool fail = (evs[e].events & (EPOLLERR | EPOLLHUP)) != 0;
      int err = ECONNRESET;
      if (!fail && (evs[e].events & EPOLLOUT)) { /* connected: send the line */
        int soerr = 0;
        socklen_t sl = sizeof soerr;
        getsockopt(fds[i], SOL_SOCKET, SO_ERROR, &soerr, &sl);
        if (soerr != 0 || send(fds[i], want, (size_t)wlen, MSG_NOSIGNAL) != wlen) {
          fail = true;
          err = soerr != 0 ? soerr : errno;
        } else {
          struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
          epoll_ctl(ep, EPOLL_CTL_MOD, fds[i], &ev);
        }
      } else if (!fail && (evs[e].events & EPOLLIN)) { /* the echo, maybe in parts */
        char buf[32];
        ssize_t rn = read(fds[i], buf, sizeof buf);
        if (rn < 0 && errno == EAGAIN)
          continue;
        if (rn <= 0 || got[i] + rn > wlen || memcmp(buf, want + got[i], (size_t)rn) != 0) {
          fail = true;
          err = rn < 0 ? errno : EPROTO;
        } else if ((got[i] += (unsigned char)rn) == wlen) {
          got[i] = 0xff; /* done: stays open, off the epoll */
          epoll_ctl(ep, EPOLL_CTL_DEL, fds[i], NULL);
          r.echoed++;
          inflight--;
          finished++;
        }
      }
      if (fail) {
        c10k_fail(&r, err, i);
        got[i] = 0xfe;
        epoll_ctl(ep, EPOLL_CTL_DEL, fds[i], NULL);
        inflight--;
        finished++;
      }
    }
  }
  if (write(to_parent, &r, sizeof r) != sizeof r)
    _exit(4);
  char go;
  (void)!read(from_parent, &go, 1); /* a byte, or EOF if the test died */
  for (int i = 0; i < next; i++)
    if (fds[i] >= 0)
      close(fds[i]);
  if (write(to_parent, "d", 1) != 1)
    _exit(5);
  _exit(0);
}

/* Raises RLIMIT_NOFILE's soft limit to the hard one and returns how many
 * connections fit: C10K (C10K_SANITIZED under sanitizers), or fewer when
 * the hard limit cannot hold that many plus C10K_RESERVE in each of the
 * two processes. */
static int c10k_count(void) {
  struct rlimit rl;
  ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
  rl.rlim_cur = rl.rlim_max;
  ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
  int n = TEST_SANITIZED ? C10K_SANITIZED : C10K;
  if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < (rlim_t)n + C10K_RESERVE) {
    n = (int)rl.rlim_max - C10K_RESERVE;
    printf("hostile c10k: the hard RLIMIT_NOFILE is %llu: %d connections only\n",
           (unsigned long long)rl.rlim_max, n);
  }
  ck_assert_int_ge(n, 100);
  return n;
}

/* 10,000 connections (2,000 under sanitizers; fewer where the hard
 * RLIMIT_NOFILE is lower, said on stdout), each echoed one line and then
 * kept open and idle: every one is accepted and echoed, the server's RSS
 * grows by at most 2 KiB per idle connection (plain build; the figure is
 * printed in every build), and once the clients close every session ends
 * with CLOSED{0}. */
START_TEST(test_hostile_c10k_idle_memory) {
  int n = c10k_count();
  int up[2], down[2];
  ck_assert_int_eq(pipe2(up, O_CLOEXEC), 0);
  ck_assert_int_eq(pipe2(down, O_CLOEXEC), 0);
  fflush(NULL);
  pid_t pid = fork(); /* before the runtime: the child is single-threaded */
  ck_assert_int_ge(pid, 0);
  if (pid == 0) {
    close(up[0]);
    close(down[1]);
    c10k_child(n, up[1], down[0]);
  }
  close(up[1]);
  close(down[0]);

  srv_t sv;
  srv_init(&sv);
  ax_rt_t *rt = test_rt_new(2, AX_RT_KEEP_ALIVE);
  test_rt_start(rt);
  ax_serve_opts_t o = serve_opts(&sv);
  ax_server_t *srv = serve(rt, &o);
  int port = ax_server_port(srv);
  test_sleep_ms(50);
  long rss0 = rss_bytes();
  ck_assert_int_eq((int)write(down[1], &port, sizeof port), (int)sizeof port);
  c10k_result_t r;
  ck_assert_int_eq((int)read(up[0], &r, sizeof r), (int)sizeof r);
  ck_assert_msg(r.errors == 0 && r.echoed == n,
                "%d connections: %d echoed, %d errors (the first: connection %d, %s)", n,
                r.echoed, r.errors, r.first_at, strerror(r.first_err));
  TEST_WAIT_UNTIL(atomic_load(&sv.lines) == n, 10000);
  ck_assert_int_eq(atomic_load(&sv.given), n);
  ck_assert_int_eq(atomic_load(&sv.ended), 0);
  test_sleep_ms(300); /* idle: the cores give their message pools back */
  long rss1 = rss_bytes();
  double each = (double)(rss1 - rss0) / n;
  printf("hostile c10k: %d idle connections: RSS %.1f MiB -> %.1f MiB, %.0f bytes each%s\n", n,
         rss0 / 1048576.0, rss1 / 1048576.0, each,
         TEST_SANITIZED ? " (sanitizer build: not bounded)" : "");
  fflush(stdout);

  ck_assert_int_eq((int)write(down[1], "c", 1), 1);
  char ack;
  ck_assert_int_eq((int)read(up[0], &ack, 1), 1);
  TEST_WAIT_UNTIL(atomic_load(&sv.ended) == n, 30000);
  ck_assert_int_eq(atomic_load(&sv.closed_eof), n); /* orderly closes: CLOSED{0} */
  ck_assert_int_eq(atomic_load(&sv.write_errors), 0);
  int status = 0;
  ck_assert_int_eq(waitpid(pid, &status, 0), pid);
  ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the client process: status %d",
                status);
  close(up[0]);
  close(down[1]);
  server_done(rt, srv);
  if (!TEST_SANITIZED)
    ck_assert_msg(each <= 2048, "%.0f bytes of RSS per idle connection (bound 2 KiB)", each);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Slowloris                                                                 */

enum {
  LORIS = 100,        /* attackers */
  LORIS_MAX = 1024,   /* the server's max_frame */
  LORIS_BYTES = 1100, /* what each attacker trickles, one byte a round */
};

/* 100 clients trickle a line one byte at a time, every 2 ms, past the
 * server's 1 KiB max_frame.  While they do, a polite client's echoes come
 * back (three round trips at different points of the attack), and no
 * attacker's session has ended or received anything.  Then every attacker
 * ends its line: with '\n' (cut_by_eof false) or by shutting its side
 * down.  Every session gets exactly one FRAME_ERROR{-EMSGSIZE} counting
 * every byte of the line, the documented report (at the delimiter, or at
 * end of file for the line EOF cut), and nothing else, and closes; each
 * attacker sees its connection end. */
static void slowloris(bool cut_by_eof) {
  srv_t sv;
  srv_init(&sv);
  sv.fe_nl = LORIS_BYTES + 1; /* the line and its '\n' */
  sv.fe_eof = LORIS_BYTES;
  ax_rt_t *rt = test_rt_new(2, AX_RT_KEEP_ALIVE);
  test_rt_start(rt);
  ax_serve_opts_t o = serve_opts(&sv);
  o.stream.max_frame = LORIS_MAX;
  ax_server_t *srv = serve(rt, &o);
  int port = ax_server_port(srv);
  int fds[LORIS];
  int one = 1;
  for (int i = 0; i < LORIS; i++) {
    fds[i] = client(port, 0);
    ck_assert_int_eq(setsockopt(fds[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one), 0);
  }
  int good = client(port, 0);
  TEST_WAIT_UNTIL(atomic_load(&sv.given) == LORIS + 1, 10000);
  int trips = 0;
  for (int b = 0; b < LORIS_BYTES; b++) {
    for (int i = 0; i < LORIS; i++)
      ck_assert_int_eq((int)send(fds[i], "x", 1, MSG_NOSIGNAL), 1);
    test_sleep_ms(2);
    if (b == 300 || b == 700 || b == LORIS_BYTES - 1) { /* before and past max_frame */
      char line[32];
      snprintf(line, sizeof line, "polite %d\n", b);
      round_trip(good, line);
      trips++;
      ck_assert_int_eq(atomic_load(&sv.ended), 0);
      ck_assert_int_eq(atomic_load(&sv.frame_errors) + atomic_load(&sv.frame_bad), 0);
    }
  }
  ck_assert_int_eq(trips, 3);
  /* The session counts a line after it queued the echo, which the client
   * may have read before that: wait for the count, then check it. */
  TEST_WAIT_UNTIL(atomic_load(&sv.lines) >= 3, 10000);
  ck_assert_int_eq(atomic_load(&sv.lines), 3); /* the polite ones only */
  for (int i = 0; i < LORIS; i++) {
    if (!cut_by_eof)
      ck_assert_int_eq((int)send(fds[i], "\n", 1, MSG_NOSIGNAL), 1);
    else
      ck_assert_int_eq(shutdown(fds[i], SHUT_WR), 0);
  }
  int ended = 0;
  for (int i = 0; i < LORIS; i++) {
    ended += st_wait_eof(fds[i], 10000) == 1;
    close(fds[i]);
  }
  TEST_WAIT_UNTIL(atomic_load(&sv.ended) == LORIS, 10000);
  /* Both reports at once.  What a line cut by end of file has shown: a
   * FRAME_ERROR counting only the bytes dropped up to the last overflow
   * of the framing buffer, then the rest of the line as a DATA of its own
   * (finish_eof in actors/io/stream.c). */
  ck_assert_msg(atomic_load(&sv.frame_bad) == 0 && atomic_load(&sv.data_after_frame_error) == 0,
                "over-long lines: %d FRAME_ERRORs counted %d bytes (the line and its '\\n'), "
                "%d counted %d (the line cut by EOF), %d counted something else (the last: "
                "%lld); %d sessions received DATA after their FRAME_ERROR (the last: %lld "
                "bytes): a tail of the over-long line delivered as a line",
                atomic_load(&sv.frame_nl), LORIS_BYTES + 1, atomic_load(&sv.frame_eof),
                LORIS_BYTES, atomic_load(&sv.frame_bad),
                (long long)atomic_load(&sv.frame_bad_count),
                atomic_load(&sv.data_after_frame_error),
                (long long)atomic_load(&sv.data_after_frame_error_len));
  ck_assert_int_eq(atomic_load(cut_by_eof ? &sv.frame_eof : &sv.frame_nl), LORIS);
  ck_assert_int_eq(atomic_load(&sv.frame_errors), LORIS);
  ck_assert_int_eq(ended, LORIS);
  ck_assert_int_eq(atomic_load(&sv.lines), 3);
  round_trip(good, "still here\n");
  close(good);
  TEST_WAIT_UNTIL(atomic_load(&sv.ended) == LORIS + 1, 10000);
  ck_assert_int_eq(atomic_load(&sv.write_errors), 0);
  server_done(rt, srv);
}

START_TEST(test_hostile_slowloris) { slowloris(false); }
END_TEST

/* The same attack, each line ended by the attacker's shutdown(SHUT_WR):
 * the documented FRAME_ERROR at end of file, counting the whole line. */
START_TEST(test_hostile_slowloris_cut_by_eof) { slowloris(true); }
END_TEST

/* ------------------------------------------------------------------------ */
/* Clients that never read                                                   */

enum {
  DEAF = 50,
  DEAF_HIGH_WATER = 256 << 10,
  DEAF_CHUNK = 16 << 10,
  DEAF_RESPONSE = 1 << 20,
};

/* 50 clients ask for 1 MiB each and never read.  Every session fills its
 * queue up to the high watermark and is refused (-ENOBUFS) there: no
 * accepted write leaves more than high_water + one write queued, and the
 * process grows by less than twice clients x (high_water + one write) plus
 * 16 MiB (plain build).  Then the clients go (with unread bytes: a reset)
 * and every session ends with CLOSED{-ECONNRESET or -EPIPE}. */
START_TEST(test_hostile_never_read) {
  srv_t sv;
  srv_init(&sv);
  sv.response = DEAF_RESPONSE;
  sv.chunk = DEAF_CHUNK;
  ax_rt_t *rt = test_rt_new(2, AX_RT_KEEP_ALIVE);
  test_rt_start(rt);
  ax_serve_opts_t o = serve_opts(&sv);
  o.stream.high_water = DEAF_HIGH_WATER;
  o.stream.sndbuf = 8192;
  ax_server_t *srv = serve(rt, &o);
  int port = ax_server_port(srv);
  /* One polite request first: the pools and scratch buffers of the cores
   * exist before the baseline. */
  int polite = client(port, 0);
  round_trip(polite, "warm\n");
  test_sleep_ms(100);
  long rss0 = rss_bytes();
  int fds[DEAF];
  for (int i = 0; i < DEAF; i++) {
    fds[i] = client(port, 4096);
    st_write_all(fds[i], "GET\n", 4);
  }
  TEST_WAIT_UNTIL(atomic_load(&sv.refused) == DEAF, 20000);
  long rss1 = rss_bytes();
  size_t maxq = atomic_load(&sv.max_queued);
  size_t minr = atomic_load(&sv.min_at_refusal);
  long bound = 2L * DEAF * (DEAF_HIGH_WATER + DEAF_CHUNK) + (16L << 20);
  printf("hostile never-read: %d clients: RSS grew %.1f MiB (bound %.1f MiB%s), most queued "
         "%zu bytes (high water %d)\n",
         DEAF, (rss1 - rss0) / 1048576.0, bound / 1048576.0,
         TEST_SANITIZED ? ", not checked under sanitizers" : "", maxq, DEAF_HIGH_WATER);
  fflush(stdout);
  ck_assert_int_eq(atomic_load(&sv.gets), DEAF);
  ck_assert_int_eq(atomic_load(&sv.done), 0);
  ck_assert_msg(maxq < DEAF_HIGH_WATER + DEAF_CHUNK, "%zu bytes queued (high water %d + %d)",
                maxq, DEAF_HIGH_WATER, DEAF_CHUNK);
  ck_assert_msg(minr >= DEAF_HIGH_WATER, "a write refused with only %zu bytes queued", minr);
  if (!TEST_SANITIZED)
    ck_assert_msg(rss1 - rss0 < bound, "RSS grew by %ld bytes (bound %ld)", rss1 - rss0, bound);
  ck_assert_int_eq(atomic_load(&sv.ended), 0);
  for (int i = 0; i < DEAF; i++)
    close(fds[i]);
  TEST_WAIT_UNTIL(atomic_load(&sv.ended) == DEAF, 20000);
  ck_assert_msg(atomic_load(&sv.closed_reset) + atomic_load(&sv.closed_pipe) == DEAF,
                "CLOSED: %d reset, %d pipe, %d eof, %d other (%s)",
                atomic_load(&sv.closed_reset), atomic_load(&sv.closed_pipe),
                atomic_load(&sv.closed_eof), atomic_load(&sv.closed_other),
                ax_strerror(atomic_load(&sv.last_other_err)));
  ck_assert_msg(atomic_load(&sv.write_errors) == 0, "write errors: %d (%s)",
                atomic_load(&sv.write_errors), ax_strerror(atomic_load(&sv.last_write_error)));
  round_trip(polite, "still here\n");
  close(polite);
  TEST_WAIT_UNTIL(atomic_load(&sv.ended) == DEAF + 1, 10000);
  server_done(rt, srv);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Resets in the middle of writes                                            */

enum { RESETS = 200, RESET_RESPONSE = 4 << 20 };

/* 200 clients ask for 4 MiB each, read a little of it (1 byte to 128 KiB)
 * and close with SO_LINGER {1, 0}, a reset, while their sessions are still
 * writing.  Every session ends, each with CLOSED{-ECONNRESET or -EPIPE},
 * no response completes, no write fails otherwise, and the server still
 * echoes afterwards. */
START_TEST(test_hostile_reset_mid_write) {
  srv_t sv;
  srv_init(&sv);
  sv.response = RESET_RESPONSE;
  sv.chunk = 64 << 10;
  ax_rt_t *rt = test_rt_new(2, AX_RT_KEEP_ALIVE);
  test_rt_start(rt);
  ax_serve_opts_t o = serve_opts(&sv);
  o.stream.high_water = 256 << 10;
  ax_server_t *srv = serve(rt, &o);
  int port = ax_server_port(srv);
  static int fds[RESETS];
  static const size_t reads[] = {1, 4 << 10, 32 << 10, 128 << 10};
  static unsigned char buf[128 << 10];
  struct linger lg = {1, 0};
  for (int i = 0; i < RESETS; i++) {
    fds[i] = client(port, 16384);
    ck_assert_int_eq(setsockopt(fds[i], SOL_SOCKET, SO_LINGER, &lg, sizeof lg), 0);
    st_write_all(fds[i], "GET\n", 4);
  }
  for (int i = 0; i < RESETS; i++) {
    size_t want = reads[i % 4];
    size_t got = read_n(fds[i], buf, want, 10000);
    ck_assert_msg(got == want, "client %d: %zu of the first %zu bytes", i, got, want);
    ck_assert_int_eq(st_check_pattern(buf, 0, got), 0);
    close(fds[i]); /* a reset: the response is still being written */
  }
  TEST_WAIT_UNTIL(atomic_load(&sv.ended) == RESETS, 20000);
  ck_assert_int_eq(atomic_load(&sv.given), RESETS);
  ck_assert_int_eq(atomic_load(&sv.gets), RESETS);
  ck_assert_int_eq(atomic_load(&sv.done), 0);
  ck_assert_msg(atomic_load(&sv.closed_reset) + atomic_load(&sv.closed_pipe) == RESETS,
                "CLOSED: %d reset, %d pipe, %d eof, %d other (%s)",
                atomic_load(&sv.closed_reset), atomic_load(&sv.closed_pipe),
                atomic_load(&sv.closed_eof), atomic_load(&sv.closed_other),
                ax_strerror(atomic_load(&sv.last_other_err)));
  ck_assert_msg(atomic_load(&sv.write_errors) == 0, "write errors: %d (%s)",
                atomic_load(&sv.write_errors), ax_strerror(atomic_load(&sv.last_write_error)));
  int polite = client(port, 0);
  round_trip(polite, "after the resets\n");
  close(polite);
  TEST_WAIT_UNTIL(atomic_load(&sv.ended) == RESETS + 1, 10000);
  server_done(rt, srv);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Half-open clients                                                         */

enum { HALF = 20, HALF_BODY = 192 << 10 };

/* 20 clients (AX_STREAM_HALF_OPEN on the server) send one line and
 * shutdown(SHUT_WR), then read.  Each session sees its line, then
 * AX_MSG_EOF; it writes the reply line and 192 KiB after it, then closes;
 * each client reads exactly those bytes and then end of file. */
START_TEST(test_hostile_half_open) {
  srv_t sv;
  srv_init(&sv);
  sv.eof_body = HALF_BODY;
  ax_rt_t *rt = test_rt_new(2, AX_RT_KEEP_ALIVE);
  test_rt_start(rt);
  ax_serve_opts_t o = serve_opts(&sv);
  o.stream.flags = AX_STREAM_HALF_OPEN;
  o.stream.linger = AX_FOREVER;
  ax_server_t *srv = serve(rt, &o);
  int port = ax_server_port(srv);
  int fds[HALF];
  for (int i = 0; i < HALF; i++) {
    fds[i] = client(port, 0);
    char line[32];
    int len = snprintf(line, sizeof line, "half %d\n", i);
    st_write_all(fds[i], line, (size_t)len);
    ck_assert_int_eq(shutdown(fds[i], SHUT_WR), 0);
  }
  static unsigned char got[HALF_BODY + 1];
  for (int i = 0; i < HALF; i++) {
    char want[64];
    int wlen = snprintf(want, sizeof want, "reply: half %d\n", i);
    char head[64];
    ck_assert_uint_eq(read_n(fds[i], head, (size_t)wlen, 10000), (size_t)wlen);
    ck_assert_msg(memcmp(head, want, (size_t)wlen) == 0, "client %d: the reply is %.*s", i,
                  wlen, head);
    size_t n = read_n(fds[i], got, sizeof got, 10000); /* one byte more: EOF must come */
    ck_assert_msg(n == HALF_BODY, "client %d: %zu of %d bytes after the reply line", i, n,
                  HALF_BODY);
    ck_assert_int_eq(st_check_pattern(got, 0, n), 0);
    ck_assert_int_eq((int)read(fds[i], got, 1), 0); /* end of file: the server closed */
    close(fds[i]);
  }
  TEST_WAIT_UNTIL(atomic_load(&sv.ended) == HALF, 10000);
  ck_assert_int_eq(atomic_load(&sv.eofs), HALF);
  ck_assert_int_eq(atomic_load(&sv.eof_bad), 0);
  ck_assert_msg(atomic_load(&sv.write_errors) == 0, "write errors: %d (%s)",
                atomic_load(&sv.write_errors), ax_strerror(atomic_load(&sv.last_write_error)));
  ck_assert_int_eq(atomic_load(&sv.closed_eof) + atomic_load(&sv.closed_reset) +
                       atomic_load(&sv.closed_pipe) + atomic_load(&sv.closed_other),
                   0); /* half-open: EOF, never CLOSED */
  server_done(rt, srv);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Accept under EMFILE                                                       */

enum { STARVED = 16 };

/* test_tcp_accept_emfile covers a listener of ax_tcp_listen; this covers
 * ax_tcp_serve's acceptors.  With every fd number taken (RLIMIT_NOFILE's
 * soft limit lowered to the highest open fd + 1), 16 clients connect and
 * send a line: no session starts, accept errors are counted, and the
 * process uses little CPU while the backlog waits (plain build: under
 * 400 ms of CPU in 500 ms).  Once the limit is back, every one of them is
 * accepted and echoed, and a new client too. */
START_TEST(test_hostile_accept_emfile) {
  srv_t sv;
  srv_init(&sv);
  ax_rt_t *rt = test_rt_new(2, AX_RT_KEEP_ALIVE);
  test_rt_start(rt);
  ax_serve_opts_t o = serve_opts(&sv);
  ax_server_t *srv = serve(rt, &o);
  int port = ax_server_port(srv);
  int fds[STARVED];
  for (int i = 0; i < STARVED; i++) {
    fds[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0); /* before the limit */
    ck_assert_int_ge(fds[i], 0);
  }
  /* Fill every hole below the highest fd, so that none is left. */
  int maxfd = 0, holes[1024], nholes = 0;
  for (int fd = 0; fd < 65536; fd++)
    if (fcntl(fd, F_GETFD) != -1)
      maxfd = fd;
  for (int fd = 0; fd < maxfd && nholes < 1024; fd++)
    if (fcntl(fd, F_GETFD) == -1) {
      holes[nholes] = open("/dev/null", O_RDONLY | O_CLOEXEC);
      ck_assert_int_eq(holes[nholes], fd);
      nholes++;
    }
  struct rlimit saved, low;
  ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &saved), 0);
  low = saved;
  low.rlim_cur = (rlim_t)maxfd + 1;
  ax_core_stats_t st0, st1;
  ck_assert_int_eq(ax_rt_stats_total(rt, &st0), 0);

  /* Starved: from here until the limit is back, nothing that needs a new
   * fd (Check's own reports included), only numbers kept for later. */
  int rc_low = setrlimit(RLIMIT_NOFILE, &low);
  int spare = open("/dev/null", O_RDONLY | O_CLOEXEC); /* must fail: EMFILE */
  int spare_errno = errno;
  struct sockaddr_in sa = loopback(port);
  int connected = 0, sent = 0;
  for (int i = 0; i < STARVED; i++) {
    connected += connect(fds[i], (struct sockaddr *)&sa, sizeof sa) == 0;
    sent += send(fds[i], "starved\n", 8, MSG_NOSIGNAL) == 8;
  }
  test_sleep_ms(100); /* the first accepts fail and back off */
  double cpu0 = cpu_seconds();
  int64_t t0 = ax_now();
  test_sleep_ms(500);
  double cpu = cpu_seconds() - cpu0;
  double wall = (double)(ax_now() - t0) / 1e9;
  int given_starved = atomic_load(&sv.given);
  ck_assert_int_eq(ax_rt_stats_total(rt, &st1), 0);
  int rc_back = setrlimit(RLIMIT_NOFILE, &saved);

  for (int i = 0; i < nholes; i++)
    close(holes[i]);
  if (spare >= 0)
    close(spare);
  ck_assert_int_eq(rc_low, 0);
  ck_assert_int_eq(rc_back, 0);
  ck_assert_msg(spare < 0 && spare_errno == EMFILE, "an fd was still free under the limit");
  ck_assert_int_eq(connected, STARVED); /* in the backlog, not accepted */
  ck_assert_int_eq(sent, STARVED);
  printf("hostile accept-emfile: %.3f s of CPU in %.3f s starved, accept_errors %llu -> %llu\n",
         cpu, wall, (unsigned long long)st0.accept_errors,
         (unsigned long long)st1.accept_errors);
  fflush(stdout);
  ck_assert_int_eq(given_starved, 0);
  ck_assert_msg(st1.accept_errors > st0.accept_errors, "no accept error counted");
  if (!TEST_SANITIZED)
    ck_assert_msg(cpu < 0.4, "%.3f s of CPU in %.3f s with accept failing: a busy loop?", cpu,
                  wall);

  /* Recovered: the backlog is accepted (the back-off is at most 1 s). */
  for (int i = 0; i < STARVED; i++) {
    char got[8];
    ck_assert_msg(read_n(fds[i], got, 8, 10000) == 8 && memcmp(got, "starved\n", 8) == 0,
                  "client %d was not served after the fds came back", i);
  }
  ck_assert_int_eq(atomic_load(&sv.given), STARVED);
  int late = client(port, 0);
  round_trip(late, "late\n");
  close(late);
  for (int i = 0; i < STARVED; i++)
    close(fds[i]);
  TEST_WAIT_UNTIL(atomic_load(&sv.ended) == STARVED + 1, 10000);
  ck_assert_int_eq(atomic_load(&sv.closed_eof), STARVED + 1);
  server_done(rt, srv);
}
END_TEST

static Suite *hostile_suite(void) {
  Suite *s = suite_create("hostile");
  TCase *tc = tcase_create("c10k");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_hostile_c10k_idle_memory);
  suite_add_tcase(s, tc);
  tc = tcase_create("slowloris");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_hostile_slowloris);
  tcase_add_test(tc, test_hostile_slowloris_cut_by_eof);
  suite_add_tcase(s, tc);
  tc = tcase_create("backpressure");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_hostile_never_read);
  tcase_add_test(tc, test_hostile_reset_mid_write);
  suite_add_tcase(s, tc);
  tc = tcase_create("half_open");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_hostile_half_open);
  suite_add_tcase(s, tc);
  tc = tcase_create("overload");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_hostile_accept_emfile);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  st_fill_pattern(body, 0, sizeof body);
  return test_run_suite(hostile_suite());
}
