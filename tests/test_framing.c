/* Check suite for stream framing: delimited lines (any delimiter, NUL too), over-long lines, length prefixes of 1, 2 and 4 bytes, and their errors. */
#include <netinet/in.h>

#include "stream_test.h"

enum { CORE_A = 1 };

static ax_stream_opts_t opts_zero(void) {
  ax_stream_opts_t o;
  memset(&o, 0, sizeof o);
  return o;
}

static void expect_frame(st_env_t *env, const char *s) {
  st_report_t *r = st_expect(env, AX_MSG_DATA);
  ck_assert_msg(r->len == strlen(s) && memcmp(r->bytes, s, r->len) == 0,
                "frame '%.*s' (%zu bytes), wanted '%s'", (int)(r->len > 80 ? 80 : r->len),
                (const char *)r->bytes, r->len, s);
}

/* Opens sv[0] in the actor with opts, returns the test's end. */
static int open_pair(st_env_t *env, ax_ref_t ar, int slot, const ax_stream_opts_t *o) {
  int sv[2];
  st_socketpair(sv);
  ck_assert_int_eq(st_pipe_open(env, ar, slot, sv[0], sv[0], o), 0);
  return sv[1];
}

START_TEST(test_framing_delim) {
  st_env_t env;
  st_env_init(&env);
  st_actor_t a;
  st_actor_init(&env, &a, 1);
  ax_ref_t ar = st_spawn(&env, &a, CORE_A);
  ax_stream_opts_t o = opts_zero();
  o.frame = AX_FRAME_DELIM; /* delim 0: '\n' */
  int fd = open_pair(&env, ar, 0, &o);
  st_write_all(fd, "one\ntwo\n\nthr", 12);
  expect_frame(&env, "one");
  expect_frame(&env, "two");
  expect_frame(&env, "");
  st_expect_none(&env, 50); /* "thr" waits for its delimiter */
  const char *rest = "ee\nfour\n";
  for (const char *p = rest; *p != '\0'; p++) {
    st_write_all(fd, p, 1); /* a byte at a time */
    test_sleep_ms(1);
  }
  expect_frame(&env, "three");
  expect_frame(&env, "four");
  close(fd);
  st_expect(&env, AX_MSG_CLOSED);

  /* Another delimiter; '\n' is an ordinary byte then. */
  o.delim = ';';
  fd = open_pair(&env, ar, 1, &o);
  st_write_all(fd, "a;b\nc;;", 7);
  expect_frame(&env, "a");
  expect_frame(&env, "b\nc");
  expect_frame(&env, "");
  close(fd);
  st_expect(&env, AX_MSG_CLOSED);
  st_env_done(&env);
}
END_TEST

/* A NUL delimiter (AX_DELIM_NUL: a zero delim means the default, '\n'),
 * on a stream and through a listener's options, which every accepted
 * stream takes again. */
START_TEST(test_framing_delim_nul) {
  st_env_t env;
  st_env_init(&env);
  st_actor_t a;
  st_actor_init(&env, &a, 1);
  ax_ref_t ar = st_spawn(&env, &a, CORE_A);
  ax_stream_opts_t o = opts_zero();
  o.frame = AX_FRAME_DELIM;
  o.delim = AX_DELIM_NUL;
  int fd = open_pair(&env, ar, 0, &o);
  static const char nul_lines[] = "one\0two\nstill two\0\0";
  st_write_all(fd, nul_lines, sizeof nul_lines - 1);
  expect_frame(&env, "one");
  expect_frame(&env, "two\nstill two");
  expect_frame(&env, "");
  close(fd);
  st_expect(&env, AX_MSG_CLOSED);
  /* Through a listener: every accepted stream takes its options. */
  st_cmd_t *c = st_cmd_new(0, NULL, 0);
  snprintf(c->addr, sizeof c->addr, "127.0.0.1:0");
  c->has_opts = 1;
  c->opts = o;
  int64_t port = 0;
  ck_assert_int_eq(st_call_cmd(&env, ar, CMD_TCP_LISTEN, c, &port), 0);
  free(c);
  int cfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ck_assert_int_eq(connect(cfd, (struct sockaddr *)&sa, sizeof sa), 0);
  static const char nul_lines2[] = "x\0y\ny\0";
  st_write_all(cfd, nul_lines2, sizeof nul_lines2 - 1);
  st_expect(&env, AX_MSG_ACCEPT);
  expect_frame(&env, "x");
  expect_frame(&env, "y\ny");
  close(cfd);
  st_expect(&env, AX_MSG_CLOSED);
  o.delim = AX_DELIM_NUL + 1; /* not a byte */
  int sv[2];
  st_socketpair(sv);
  ck_assert_int_eq(st_pipe_open(&env, ar, 1, sv[0], sv[0], &o), -EINVAL);
  close(sv[1]);
  st_env_done(&env);
}
END_TEST

START_TEST(test_framing_delim_overflow) {
  st_env_t env;
  st_env_init(&env);
  st_actor_t a;
  st_actor_init(&env, &a, 1);
  ax_ref_t ar = st_spawn(&env, &a, CORE_A);
  ax_stream_opts_t o = opts_zero();
  o.frame = AX_FRAME_DELIM;
  o.max_frame = 16;
  int fd = open_pair(&env, ar, 0, &o);
  char line[128];
  memset(line, 'x', 100);
  line[100] = '\n';
  st_write_all(fd, "short\n", 6);
  expect_frame(&env, "short");
  st_write_all(fd, line, 101);
  st_write_all(fd, "0123456789abcdef\nafter\n", 23); /* exactly max_frame is fine */
  st_report_t *r = st_expect(&env, AX_MSG_FRAME_ERROR);
  ck_assert_int_eq(r->err, -EMSGSIZE);
  ck_assert_uint_ge(r->count, 100);
  ck_assert_uint_le(r->count, 101);
  expect_frame(&env, "0123456789abcdef");
  expect_frame(&env, "after");

  /* An over-long frame spread over many reads: one error, then on. */
  static char big[4096];
  memset(big, 'y', sizeof big);
  for (int i = 0; i < 50; i++) {
    st_write_all(fd, big, sizeof big);
    if (i % 10 == 0)
      test_sleep_ms(2);
  }
  st_write_all(fd, "\nok\n", 4);
  r = st_expect(&env, AX_MSG_FRAME_ERROR);
  ck_assert_int_eq(r->err, -EMSGSIZE);
  ck_assert_uint_ge(r->count, 50 * sizeof big);
  ck_assert_uint_le(r->count, 50 * sizeof big + 1);
  expect_frame(&env, "ok");
  close(fd);
  st_expect(&env, AX_MSG_CLOSED);
  st_env_done(&env);
}
END_TEST

/* Appends a length-prefixed frame of n bytes (pattern from seed) to buf. */
static size_t put_frame(unsigned char *buf, unsigned lb, size_t n, uint64_t seed) {
  for (unsigned i = 0; i < lb; i++)
    buf[i] = (unsigned char)(n >> (8 * (lb - 1 - i)));
  st_fill_pattern(buf + lb, seed, n);
  return lb + n;
}

static void expect_pattern_frame(st_env_t *env, size_t n, uint64_t seed) {
  st_report_t *r = st_expect(env, AX_MSG_DATA);
  ck_assert_uint_eq(r->len, n);
  ck_assert_uint_eq(st_check_pattern(r->bytes, seed, n), 0);
}

START_TEST(test_framing_length) {
  st_env_t env;
  st_env_init(&env);
  st_actor_t a;
  st_actor_init(&env, &a, 1);
  ax_ref_t ar = st_spawn(&env, &a, CORE_A);
  static const size_t sizes1[] = {0, 1, 255, 17};
  static const size_t sizes2[] = {0, 300, 65535, 2};
  static const size_t sizes4[] = {0, 5, 70000, 65536};
  static unsigned char buf[1 << 18];
  for (unsigned lb = 0; lb <= 4; lb++) {
    if (lb == 3)
      continue;
    ax_stream_opts_t o = opts_zero();
    o.frame = AX_FRAME_LENGTH;
    o.len_bytes = lb; /* 0: the default, 4 */
    o.max_frame = 100000;
    const size_t *sizes = lb == 1 ? sizes1 : lb == 2 ? sizes2 : sizes4;
    unsigned eff = lb == 0 ? 4 : lb;
    int fd = open_pair(&env, ar, (int)lb, &o);
    size_t len = 0;
    for (int i = 0; i < 4; i++)
      len += put_frame(buf + len, eff, sizes[i], (uint64_t)i * 1000);
    if (lb == 1) {
      for (size_t k = 0; k < len; k++) /* one byte at a time */
        st_write_all(fd, buf + k, 1);
    } else {
      st_write_all(fd, buf, len);
    }
    for (int i = 0; i < 4; i++)
      expect_pattern_frame(&env, sizes[i], (uint64_t)i * 1000);
    close(fd);
    st_report_t *r = st_expect(&env, AX_MSG_CLOSED);
    ck_assert_int_eq(r->err, 0);
  }
  st_env_done(&env);
}
END_TEST

START_TEST(test_framing_length_errors) {
  st_env_t env;
  st_env_init(&env);
  st_actor_t a;
  st_actor_init(&env, &a, 1);
  ax_ref_t ar = st_spawn(&env, &a, CORE_A);
  unsigned char buf[256];
  /* Over max_frame: the stream ends with CLOSED{-EMSGSIZE} after the good
   * frames before it. */
  ax_stream_opts_t o = opts_zero();
  o.frame = AX_FRAME_LENGTH;
  o.len_bytes = 2;
  o.max_frame = 100;
  int fd = open_pair(&env, ar, 0, &o);
  size_t len = put_frame(buf, 2, 100, 0);
  len += put_frame(buf + len, 2, 101, 0);
  st_write_all(fd, buf, len);
  expect_pattern_frame(&env, 100, 0);
  st_report_t *r = st_expect(&env, AX_MSG_CLOSED);
  ck_assert_int_eq(r->err, -EMSGSIZE);
  st_expect_none(&env, 50);
  close(fd);

  /* A frame cut short by EOF is not an orderly end. */
  o.len_bytes = 4;
  fd = open_pair(&env, ar, 1, &o);
  len = put_frame(buf, 4, 3, 0);
  len += put_frame(buf + len, 4, 10, 0) - 5;
  st_write_all(fd, buf, len);
  expect_pattern_frame(&env, 3, 0);
  close(fd);
  r = st_expect(&env, AX_MSG_CLOSED);
  ck_assert_int_lt(r->err, 0);
  st_env_done(&env);
}
END_TEST

static Suite *framing_suite(void) {
  Suite *s = suite_create("framing");
  TCase *tc = tcase_create("framing");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_framing_delim);
  tcase_add_test(tc, test_framing_delim_nul);
  tcase_add_test(tc, test_framing_delim_overflow);
  tcase_add_test(tc, test_framing_length);
  tcase_add_test(tc, test_framing_length_errors);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return test_run_suite(framing_suite()); }
