/* Check suite for ax_tcp_serve's life cycle: closing a server from an actor (no deadlock, AX_MSG_SERVER_CLOSED, the port free again) and from a thread. */
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/socket.h>

#include "axon_test.h"

enum { MSG_SERVE = AX_MSG_USER + 1 };

static int session(ax_actor_t *self, const ax_msg_t *m) {
  (void)self;
  if (m->type == AX_MSG_DATA) {
    const ax_data_t *d = m->data;
    return ax_stream_write(d->stream, d->bytes, d->len) == 0 ? 0 : AX_STOP;
  }
  return m->type == AX_MSG_CLOSED ? AX_STOP : 0;
}

typedef struct closer {
  _Atomic int port;
  _Atomic int close_rc;   /* ax_server_close's result, 1 before */
  _Atomic int closed;     /* AX_MSG_SERVER_CLOSED arrived */
  _Atomic int closed_ok;  /* ... naming the server that was closed */
  _Atomic int relisten;   /* ax_tcp_listen on the same port afterwards, 1 before */
  ax_server_t *srv;
} closer_t;

/* Serves, then closes the server from inside the actor: the call must
 * return at once (the acceptor of this very core runs only after it), and
 * AX_MSG_SERVER_CLOSED must follow once every listener is closed. */
static int closer_actor(ax_actor_t *self, const ax_msg_t *m) {
  closer_t *c = ax_state(self);
  if (m->type == MSG_SERVE) {
    if (ax_tcp_serve(ax_actor_rt(self), "127.0.0.1:0", session, NULL, &c->srv) != 0)
      return -EIO;
    atomic_store(&c->port, ax_server_port(c->srv));
    atomic_store(&c->close_rc, ax_server_close(c->srv));
    return 0;
  }
  if (m->type == AX_MSG_SERVER_CLOSED) {
    const ax_server_closed_t *ev = m->data;
    atomic_store(&c->closed_ok, ev->server == c->srv && m->size == sizeof *ev);
    char addr[32];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", atomic_load(&c->port));
    ax_listener_t *l;
    int rc = ax_tcp_listen(self, addr, 0, NULL, &l);
    if (rc == 0)
      ax_listener_close(l);
    atomic_store(&c->relisten, rc);
    atomic_fetch_add(&c->closed, 1);
    return 0;
  }
  return 0;
}

START_TEST(test_serve_close_from_actor) {
  ax_rt_t *rt = test_rt_new(2, AX_RT_KEEP_ALIVE);
  test_rt_start(rt);
  closer_t c;
  memset(&c, 0, sizeof c);
  atomic_store(&c.close_rc, 1);
  atomic_store(&c.relisten, 1);
  for (unsigned core = 0; core < 2; core++) { /* from either core */
    atomic_store(&c.closed, 0);
    ax_ref_t a = test_spawn(rt, closer_actor, &c, AX_PLACE_CORE, core, NULL, NULL);
    test_send(a, MSG_SERVE, NULL, 0);
    TEST_WAIT_UNTIL(atomic_load(&c.closed) == 1, 10000); /* hung here before */
    ck_assert_int_eq(atomic_load(&c.close_rc), 0);
    ck_assert_int_eq(atomic_load(&c.closed_ok), 1);
    ck_assert_int_eq(atomic_load(&c.relisten), 0); /* the port was free */
    test_sleep_ms(50);
    ck_assert_int_eq(atomic_load(&c.closed), 1); /* exactly once */
    ck_assert_int_eq(ax_stop(a, 0), 0);
  }
  test_rt_stop_join_free(rt);
}
END_TEST

/* From a thread that is not a core, the call waits: when it returns, the
 * port refuses connections. */
START_TEST(test_serve_close_from_thread) {
  ax_rt_t *rt = test_rt_new(2, AX_RT_KEEP_ALIVE);
  test_rt_start(rt);
  ax_server_t *srv;
  ck_assert_int_eq(ax_tcp_serve(rt, "127.0.0.1:0", session, NULL, &srv), 0);
  int port = ax_server_port(srv);
  ck_assert_int_eq(ax_server_close(srv), 0);
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), -1);
  ck_assert_int_eq(errno, ECONNREFUSED);
  close(fd);
  test_rt_stop_join_free(rt);
}
END_TEST

static Suite *serve_suite(void) {
  Suite *s = suite_create("serve");
  TCase *tc = tcase_create("close");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_serve_close_from_actor);
  tcase_add_test(tc, test_serve_close_from_thread);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return test_run_suite(serve_suite()); }
