/* Check suite for sources whose fd the loop can no longer watch (epoll's max_user_watches reached): each ends with AX_MSG_CLOSED{-ENOSPC}, nothing spins or leaks. */
#include <netinet/in.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/socket.h>

#include "stream_test.h"

/* Lowering this knob makes every new epoll registration of this user fail
 * with ENOSPC, machine-wide: the test runs alone (RUN_SERIAL), keeps the
 * low value for a few milliseconds, and main() puts the old value back
 * whatever happened in the forked test. */
static const char knob[] = "/proc/sys/fs/epoll/max_user_watches";
static char saved[64];

static bool knob_write(const char *value) {
  FILE *f = fopen(knob, "w");
  if (f == NULL)
    return false;
  bool ok = fputs(value, f) >= 0;
  return fclose(f) == 0 && ok;
}

static bool knob_save(void) {
  FILE *f = fopen(knob, "r");
  if (f == NULL)
    return false;
  bool ok = fgets(saved, sizeof saved, f) != NULL;
  fclose(f);
  return ok && knob_write(saved); /* writable too */
}

enum {
  MSG_OPEN = AX_MSG_USER + 1, /* open the source under test */
  KIND_DGRAM = 1,
  KIND_STREAM,
  KIND_EFD,
};

typedef struct probe {
  int kind;
  int fd;                 /* KIND_STREAM: the actor's end */
  _Atomic int opened;     /* the source is open (1) or failed to open (-errno) */
  _Atomic int got;        /* its first message arrived and is being held */
  _Atomic int release;    /* the test lets the handler return */
  _Atomic int closed_err; /* AX_MSG_CLOSED's err, or 1 before it came */
  _Atomic int after;      /* messages after CLOSED (must stay 0) */
  int port;
  ax_efd_t *efd;
} probe_t;

static int probe_actor(ax_actor_t *self, const ax_msg_t *m) {
  probe_t *p = ax_state(self);
  if (m->type == MSG_OPEN) {
    int rc = 0;
    if (p->kind == KIND_DGRAM) {
      ax_dgram_opts_t o = {.window = 1};
      ax_dgram_t *d;
      rc = ax_udp_bind(self, "127.0.0.1:0", &o, &d);
      if (rc == 0)
        p->port = ax_dgram_port(d);
    } else if (p->kind == KIND_STREAM) {
      ax_stream_opts_t o = {.window = 1};
      ax_stream_t *s;
      rc = ax_pipe_open(self, p->fd, p->fd, &o, &s);
    } else {
      rc = ax_efd_open(self, &p->efd);
    }
    atomic_store(&p->opened, rc == 0 ? 1 : rc);
    return 0;
  }
  if (m->type == AX_MSG_CLOSED) {
    const ax_source_ev_t *ev = m->data; /* streams' ax_stream_ev_t starts the same */
    atomic_store(&p->closed_err, ev->err);
    return 0;
  }
  if (atomic_load(&p->closed_err) != 1) {
    atomic_fetch_add(&p->after, 1);
    return 0;
  }
  if (atomic_load(&p->got) == 0) {
    /* The window (1) is full while this runs: the fd is out of the loop.
     * Hold it until the test has made registrations fail. */
    atomic_store(&p->got, 1);
    while (atomic_load(&p->release) == 0)
      test_sleep_ms(1);
  }
  return 0;
}

/* Opens a source of `kind` with a window of 1, makes it deliver one
 * message and hold it (its fd leaves the loop), lowers the knob to 0, lets
 * the message go: taking the fd back into the loop fails, and the source
 * must end with CLOSED{-ENOSPC}. */
static void run_probe(int kind) {
  ax_rt_t *rt = test_rt_new(1, AX_RT_KEEP_ALIVE);
  test_rt_start(rt);
  probe_t p;
  memset(&p, 0, sizeof p);
  p.kind = kind;
  atomic_store(&p.closed_err, 1);
  int sv[2] = {-1, -1};
  if (kind == KIND_STREAM) {
    st_socketpair(sv);
    p.fd = sv[0];
  }
  ax_ref_t a = test_spawn(rt, probe_actor, &p, AX_PLACE_ANY, 0, NULL, NULL);
  test_send(a, MSG_OPEN, NULL, 0);
  TEST_WAIT_UNTIL(atomic_load(&p.opened) != 0, 10000);
  ck_assert_int_eq(atomic_load(&p.opened), 1);
  int cfd = -1;
  if (kind == KIND_DGRAM) {
    cfd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)p.port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq((int)sendto(cfd, "x", 1, 0, (struct sockaddr *)&sa, sizeof sa), 1);
  } else if (kind == KIND_STREAM) {
    st_write_all(sv[1], "x", 1);
  } else {
    ck_assert_int_eq(ax_efd_notify(p.efd, 1), 0);
  }
  TEST_WAIT_UNTIL(atomic_load(&p.got) == 1, 10000);
  ck_assert(knob_write("0\n"));
  atomic_store(&p.release, 1);
  int64_t end = ax_now() + 5 * AX_NSEC_PER_SEC;
  while (atomic_load(&p.closed_err) == 1 && ax_now() < end)
    test_sleep_ms(1);
  ck_assert(knob_write(saved));
  ck_assert_int_eq(atomic_load(&p.closed_err), -ENOSPC);
  /* More input: nothing more arrives, nothing spins. */
  if (kind == KIND_STREAM) /* EPIPE once the stream has been closed: fine */
    (void)send(sv[1], "y", 1, MSG_NOSIGNAL | MSG_DONTWAIT);
  struct timespec t0, t1;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t0);
  test_sleep_ms(200);
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t1);
  double cpu = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
  ck_assert_msg(cpu < 0.1, "%.3f s of CPU in 0.2 s after the end", cpu);
  ck_assert_int_eq(atomic_load(&p.after), 0);
  if (cfd >= 0)
    close(cfd);
  if (sv[1] >= 0)
    close(sv[1]);
  test_rt_stop_join_free(rt);
}

START_TEST(test_exhaustion_dgram) { run_probe(KIND_DGRAM); }
END_TEST

START_TEST(test_exhaustion_stream) { run_probe(KIND_STREAM); }
END_TEST

START_TEST(test_exhaustion_efd) { run_probe(KIND_EFD); }
END_TEST

static Suite *exhaustion_suite(void) {
  Suite *s = suite_create("exhaustion");
  TCase *tc = tcase_create("max_user_watches");
  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, test_exhaustion_dgram);
  tcase_add_test(tc, test_exhaustion_stream);
  tcase_add_test(tc, test_exhaustion_efd);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  const char *backend = getenv("AXON_BACKEND");
  if (backend != NULL && strcmp(backend, "epoll") != 0) {
    printf("SKIP: this suite exhausts epoll's registrations; the loop runs on %s\n", backend);
    return 77;
  }
  if (!knob_save()) {
    printf("SKIP: %s is not writable here\n", knob);
    return 77;
  }
  int rc = test_run_suite(exhaustion_suite());
  knob_write(saved); /* whatever a forked test left behind */
  return rc;
}
