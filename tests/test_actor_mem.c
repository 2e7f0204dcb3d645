/* Where actors and small messages take their memory: chunks per target core, the small classes. */
#include <stdatomic.h>
#include <stdint.h>

#include "axon_test.h"
#include "runtime/core.h" /* internal: sizeof(ax_actor_t); the test links the static library */

enum { MSG_WHERE = AX_MSG_USER, MEM_ACTORS = 64, MEM_WAVES = 40, MEM_WAVE = 1000 };

/* Each actor reports its own address (self) once. */
static uintptr_t where[MEM_ACTORS];
static _Atomic int reported;

static int where_behaviour(ax_actor_t *self, const ax_msg_t *msg) {
  if (msg->type == MSG_WHERE) {
    where[(uintptr_t)ax_state(self)] = (uintptr_t)self;
    atomic_fetch_add_explicit(&reported, 1, memory_order_release);
  }
  return 0;
}

/* main spawns actors for cores 0 and 1 in turn, the pattern in which
 * malloc put them side by side: no cache line holds parts of actors of
 * both cores, so that neither core's writes to its actors (mailbox, run
 * queue) move the other's line.  Actors of one core stay dense: 64 of them
 * span few lines more than their size. */
START_TEST(test_actor_mem_lines_per_core) {
  ax_rt_t *rt = test_rt_new(2, AX_RT_KEEP_ALIVE | AX_RT_NO_SIGNALS);
  atomic_store(&reported, 0);
  ax_ref_t refs[MEM_ACTORS];
  for (uintptr_t i = 0; i < MEM_ACTORS; i++)
    refs[i] = test_spawn(rt, where_behaviour, (void *)i, AX_PLACE_CORE, (unsigned)(i % 2), NULL,
                         NULL);
  test_rt_start(rt);
  for (unsigned i = 0; i < MEM_ACTORS; i++)
    test_send(refs[i], MSG_WHERE, NULL, 0);
  TEST_WAIT_UNTIL(atomic_load_explicit(&reported, memory_order_acquire) == MEM_ACTORS, 10000);
  const uintptr_t line = AX__CACHE_LINE, size = sizeof(ax_actor_t);
  for (unsigned i = 0; i < MEM_ACTORS; i++) {
    for (unsigned j = i + 1; j < MEM_ACTORS; j++) {
      if (i % 2 == j % 2)
        continue;
      uintptr_t a0 = where[i] / line, a1 = (where[i] + size - 1) / line;
      uintptr_t b0 = where[j] / line, b1 = (where[j] + size - 1) / line;
      ck_assert_msg(a1 < b0 || b1 < a0,
                    "actor %u (core %u) at %#lx and actor %u (core %u) at %#lx share a line", i,
                    i % 2, (unsigned long)where[i], j, j % 2, (unsigned long)where[j]);
    }
  }
  test_rt_stop_join_free(rt);
}
END_TEST

static _Atomic long ended;

static void count_end(ax_actor_t *self, int reason) {
  (void)self;
  (void)reason;
  atomic_fetch_add_explicit(&ended, 1, memory_order_relaxed);
}

/* Waves of actors spawned and stopped by main, over both cores, in counts
 * that leave chunks partly carved between waves: every actor's memory
 * goes back once all of its chunk's actors are gone (a chunk freed too
 * early is a use after free under ASan, one never freed a leak), and
 * the chunk being carved carries over to the next wave. */
START_TEST(test_actor_mem_waves) {
  ax_rt_t *rt = test_rt_new(2, AX_RT_KEEP_ALIVE | AX_RT_NO_SIGNALS);
  test_rt_start(rt);
  static ax_ref_t refs[MEM_WAVE];
  atomic_store(&ended, 0);
  long want = 0;
  for (int w = 0; w < MEM_WAVES; w++) {
    int n = MEM_WAVE - 7 * w; /* not a multiple of a chunk */
    for (int i = 0; i < n; i++)
      refs[i] = test_spawn(rt, test_idle_behaviour, NULL, AX_PLACE_ANY, 0, NULL, count_end);
    for (int i = 0; i < n; i++)
      ck_assert_int_eq(ax_stop(refs[i], 0), 0);
    want += n;
    TEST_WAIT_UNTIL(atomic_load_explicit(&ended, memory_order_relaxed) == want, 30000);
  }
  test_rt_stop_join_free(rt);
}
END_TEST

/* Every payload size around the small classes' edges (96 bytes for up to
 * 16, 128 for up to 48, a ring slot's 24 inline), sent in one turn so that
 * the messages sit side by side in the pools: same-core (the fast path)
 * and to another core (copied out of the ring there).  Each byte is
 * checked, so a message put in a class too small would show as its
 * neighbour's damage. */
enum { MSG_GO = AX_MSG_USER + 1, MSG_BYTES, SIZES_MAX = 64, SIZES_ROUNDS = 20 };
static _Atomic long sized_ok, sized_bad;

static unsigned char sized_byte(size_t n, size_t j) { return (unsigned char)(n * 31 + j * 7 + 1); }

static int sized_rx(ax_actor_t *self, const ax_msg_t *msg) {
  (void)self;
  const unsigned char *p = msg->data;
  bool ok = msg->type == MSG_BYTES && msg->size <= SIZES_MAX;
  for (size_t j = 0; ok && j < msg->size; j++)
    ok = p[j] == sized_byte(msg->size, j);
  atomic_fetch_add_explicit(ok ? &sized_ok : &sized_bad, 1, memory_order_relaxed);
  return 0;
}

static int sized_tx(ax_actor_t *self, const ax_msg_t *msg) {
  const ax_ref_t *to = ax_state(self);
  unsigned char buf[SIZES_MAX];
  if (msg->type != MSG_GO)
    return 0;
  for (int r = 0; r < SIZES_ROUNDS; r++)
    for (size_t n = 0; n <= SIZES_MAX; n++) {
      for (size_t j = 0; j < n; j++)
        buf[j] = sized_byte(n, j);
      for (int k = 0; k < 2; k++)
        if (ax_send(to[k], MSG_BYTES, buf, n) != 0) /* counted: none will arrive */
          atomic_fetch_add_explicit(&sized_bad, 1, memory_order_relaxed);
    }
  return 0;
}

START_TEST(test_actor_mem_classes) {
  ax_rt_t *rt = test_rt_new(2, AX_RT_KEEP_ALIVE | AX_RT_NO_SIGNALS);
  atomic_store(&sized_ok, 0);
  atomic_store(&sized_bad, 0);
  static ax_ref_t to[2];
  to[0] = test_spawn(rt, sized_rx, NULL, AX_PLACE_CORE, 0, NULL, NULL);
  to[1] = test_spawn(rt, sized_rx, NULL, AX_PLACE_CORE, 1, NULL, NULL);
  ax_ref_t tx = test_spawn(rt, sized_tx, to, AX_PLACE_CORE, 0, NULL, NULL);
  test_rt_start(rt);
  test_send(tx, MSG_GO, NULL, 0);
  long want = 2L * SIZES_ROUNDS * (SIZES_MAX + 1);
  TEST_WAIT_UNTIL(atomic_load(&sized_ok) + atomic_load(&sized_bad) == want, 30000);
  ck_assert_int_eq(atomic_load(&sized_bad), 0);
  test_rt_stop_join_free(rt);
}
END_TEST

/* main's own message pools (runtime/msg.c) hold at most 512 KiB in all, on
 * small pages, however many size classes a burst used: main queues 8,000
 * messages of 100 to 4,000 bytes (30 MiB) for an actor that holds its
 * core meanwhile.  The cap was per class, on huge pages past the first
 * segment, and such a burst left 4-6 MiB resident for good (a newcomer;
 * bench_memory row 3d). */
enum { MSG_HOLD_CORE = AX_MSG_USER + 20, MSG_BULK, HEAP_BURST = 8000 };
static atomic_bool hold_gate;
static _Atomic long bulk_got;

static int bulk_rx(ax_actor_t *self, const ax_msg_t *msg) {
  (void)self;
  if (msg->type == MSG_HOLD_CORE)
    while (!atomic_load(&hold_gate))
      test_sleep_ms(1);
  else if (msg->type == MSG_BULK)
    atomic_fetch_add(&bulk_got, 1);
  return 0;
}

START_TEST(test_actor_mem_thread_heap_cap) {
  ax_rt_t *rt = test_rt_new(1, AX_RT_KEEP_ALIVE | AX_RT_NO_SIGNALS);
  test_rt_start(rt);
  ax_ref_t rx = test_spawn(rt, bulk_rx, NULL, AX_PLACE_CORE, 0, NULL, NULL);
  test_send(rx, MSG_HOLD_CORE, NULL, 0);
  static unsigned char buf[4000];
  static const size_t sizes[] = {100, 400, 1000, 4000};
  /* The core holds still: main's sends go on through its gate (send.c). */
  for (int i = 0; i < HEAP_BURST; i++)
    ck_assert_int_eq(ax_send(rx, MSG_BULK, buf, sizes[i % 4]), 0);
  atomic_store(&hold_gate, true);
  TEST_WAIT_UNTIL(atomic_load(&bulk_got) == HEAP_BURST, 30000);
  ax__pool_t *pools = ax__thread_pools();
  ck_assert_ptr_nonnull(pools);
  const ax__heap_t *h = pools[0].heap;
  ck_assert_uint_gt(h->pages, 0);
  ck_assert_msg(h->pages * AX__PAGE_SIZE <= ((size_t)512 << 10),
                "main's message pools hold %zu KiB", h->pages * AX__PAGE_SIZE / 1024);
  for (const ax__seg_t *s = h->segs; s != NULL; s = s->next)
    ck_assert_msg(!s->huge, "a segment of main's heap is on a transparent huge page");
  test_rt_stop_join_free(rt);
}
END_TEST

int main(void) {
  Suite *suite = suite_create("actor_mem");
  TCase *tc = tcase_create("chunks");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_actor_mem_lines_per_core);
  tcase_add_test(tc, test_actor_mem_waves);
  suite_add_tcase(suite, tc);
  tc = tcase_create("classes");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_actor_mem_classes);
  tcase_add_test(tc, test_actor_mem_thread_heap_cap);
  suite_add_tcase(suite, tc);
  return test_run_suite(suite);
}
