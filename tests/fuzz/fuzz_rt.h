/* The runtime the serial and API harnesses share: one started core, and a driver actor that runs a step there. */
#ifndef AXON_FUZZ_RT_H
#define AXON_FUZZ_RT_H

#include <errno.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "axon.h"

/*
 * Calls that take `self` may only run on that actor's core, so the harness
 * hands them to a driver actor: fuzz_on_core() stores the step, sends the
 * driver a message and waits on a semaphore until the step has run.  The
 * driver traps exits (a hostile ax_link must not stop it) and ignores every
 * other message (the fuzzer's sends, DOWN, LINK_DOWN, timers).  A step
 * runs only when the harness asked for one, however many step messages
 * the fuzzer sends.  One runtime for the whole run, made once in
 * LLVMFuzzerInitialize: no signals claimed (libFuzzer has its own), no
 * pinning, no spinning.
 */

#define CHECK(cond)                                                                                \
  do {                                                                                             \
    if (!(cond))                                                                                   \
      __builtin_trap();                                                                            \
  } while (0)

/* A result that must be want: on a mismatch, both are printed (with the
 * errno names) before the trap, so that a failure seen once under load
 * says what came back. */
#define CHECK_EQ(got, want)                                                                        \
  do {                                                                                             \
    long got_ = (long)(got), want_ = (long)(want);                                                 \
    if (got_ != want_) {                                                                           \
      fprintf(stderr, "%s:%d: %s = %ld (%s), want %ld (%s)\n", __FILE__, __LINE__, #got, got_,    \
              ax_err_name((int)got_), want_, ax_err_name((int)want_));                             \
      __builtin_trap();                                                                            \
    }                                                                                              \
  } while (0)

/* A result as the API promises them: >= 0, or a negated errno value. */
#define CHECK_RC(rc) CHECK((rc) > -4096)

/* Bytes from the front of the input; zeros once it is used up. */
typedef struct reader {
  const uint8_t *p;
  size_t n;
} reader_t;

static inline uint8_t rd8(reader_t *r) {
  if (r->n == 0)
    return 0;
  r->n--;
  return *r->p++;
}

static inline uint32_t rd32(reader_t *r) {
  uint32_t v = 0;
  for (int i = 0; i < 4; i++)
    v = v << 8 | rd8(r);
  return v;
}

static inline uint64_t rd64(reader_t *r) {
  uint64_t hi = rd32(r);
  return hi << 32 | rd32(r);
}

enum { FUZZ_MSG_STEP = AX_MSG_USER + 0x7f00 };

typedef void (*fuzz_step_t)(ax_actor_t *self, void *arg);

static ax_rt_t *fuzz_rt;
static ax_ref_t fuzz_driver;
static sem_t fuzz_done;
static atomic_bool fuzz_pending;
static fuzz_step_t fuzz_step;
static void *fuzz_arg;

static void fuzz_driver_init(ax_actor_t *self) { CHECK(ax_trap_exits(self, true) == 0); }

static int fuzz_driver_behaviour(ax_actor_t *self, const ax_msg_t *m) {
  if (m->type == FUZZ_MSG_STEP && atomic_exchange(&fuzz_pending, false)) {
    fuzz_step(self, fuzz_arg);
    sem_post(&fuzz_done);
  }
  return 0;
}

/* Runs step(self, arg) on the driver's core and waits for it; a driver
 * that does not answer within 5 s is a hang. */
static void fuzz_on_core(fuzz_step_t step, void *arg) {
  fuzz_step = step;
  fuzz_arg = arg;
  atomic_store(&fuzz_pending, true);
  CHECK(ax_send(fuzz_driver, FUZZ_MSG_STEP, NULL, 0) == 0);
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  ts.tv_sec += 5;
  int rc;
  while ((rc = sem_timedwait(&fuzz_done, &ts)) < 0 && errno == EINTR)
    ;
  if (rc < 0) {
    fprintf(stderr, "fuzz: the driver actor did not run its step within 5 s\n");
    __builtin_trap();
  }
}

/* At exit (libFuzzer's end of a run): the runtime stops and is freed, so
 * that LeakSanitizer's check at exit sees only real leaks. */
static void fuzz_rt_end(void) {
  ax_rt_stop(fuzz_rt);
  CHECK(ax_rt_join(fuzz_rt) == 0);
  CHECK(ax_rt_free(fuzz_rt) == 0);
}

/* LeakSanitizer after each input cannot tell a leak from an actor that is
 * still alive: the runtime keeps its actors in mmap'd tables, which it
 * does not scan.  So this adds -detect_leaks=0 to libFuzzer's flags
 * (LLVMFuzzerInitialize may edit them; they are parsed after it returns),
 * unless the command line chose; the check at exit still runs. */
static void fuzz_no_leak_check_per_input(int *argc, char ***argv) {
  static char *args[256];
  static char flag[] = "-detect_leaks=0";
  for (int i = 0; i < *argc; i++)
    if (strncmp((*argv)[i], "-detect_leaks=", 14) == 0)
      return;
  if (*argc + 2 > (int)(sizeof args / sizeof args[0]))
    return;
  memcpy(args, *argv, (size_t)*argc * sizeof *args);
  args[(*argc)++] = flag;
  args[*argc] = NULL;
  *argv = args;
}

/* Makes and starts the runtime with `cores` cores, spawns the driver, and
 * ends it all at exit. */
static void fuzz_rt_start(unsigned cores) {
  ax_rt_opts_t o = {.cores = cores,
                    .spin_ns = -1,
                    .flags = AX_RT_NO_PIN | AX_RT_NO_SIGNALS | AX_RT_KEEP_ALIVE};
  CHECK(sem_init(&fuzz_done, 0, 0) == 0);
  CHECK(ax_rt_new(&o, &fuzz_rt) == 0);
  CHECK(ax_rt_start(fuzz_rt) == 0);
  ax_spawn_opts_t so = {.placement = AX_PLACE_CORE, .core = 0, .init = fuzz_driver_init};
  CHECK(ax_spawn(fuzz_rt, fuzz_driver_behaviour, NULL, &so, &fuzz_driver) == 0);
  atexit(fuzz_rt_end);
}

#endif /* AXON_FUZZ_RT_H */
