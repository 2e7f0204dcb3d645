/* libFuzzer harness for hostile arguments to public calls: sends, spawns, stops, links, supervisors, names, groups, timers, loops. */
#include "fuzz_rt.h"
#include "runtime/ref.h"

/*
 * The input is a program: each byte an operation, its arguments from the
 * bytes after it (sizes, types, flags, NULLs and references, garbage ones
 * included).  Calls any thread may make run here; calls that take `self`
 * run in a batch on the driver actor's core (fuzz_rt.h).  Every result
 * must be 0 or more, or a negated errno; where the header names the error
 * for an argument, that error.  Crashes and sanitizer reports are found by
 * libFuzzer itself.  Actors, supervisors, names and timers an input made
 * are stopped, unregistered and cancelled before the next input.
 *
 * Buffers are always as long as the size passed with them, except for
 * sizes the header refuses (which must be refused before anything is read).
 */

#define MAX_OPS 64
#define VICTIMS (MAX_OPS * 16) /* every actor an input can spawn, to stop them all */

static ax_port_t *port; /* a port: a target that is no actor */
static ax_ref_t port_ref, dead_ref;
static ax_ref_t victims[VICTIMS], sups[VICTIMS];
static size_t nvictims, nsups;
static uint64_t timer_ids[MAX_OPS], monitor_ids[MAX_OPS];
static size_t ntimers, nmonitors;
static char names[MAX_OPS][AX_NAME_MAX + 8];
static size_t nnames;
static ax_child_spec_t specs[AX_SUP_CHILDREN_MAX + 1];
static unsigned char payload[4096];

/* An actor that does what the type of a message says: most go on, some
 * stop normally, some fail (which links and supervisors pass on). */
static int victim(ax_actor_t *self, const ax_msg_t *m) {
  (void)self;
  if (m->type == AX_MSG_SHUTDOWN)
    return AX_STOP;
  return m->type % 8 == 1 ? AX_STOP : m->type % 8 == 2 ? -EIO : 0;
}

static void keep(ax_ref_t *list, size_t *n, ax_ref_t ref) {
  if (*n < VICTIMS && ref != AX_REF_NONE)
    list[(*n)++] = ref;
}

/* A supervisor's child: by its argument, a victim watched by the
 * supervisor, a start that fails, or a victim that fails at once. */
static int child_start(ax_actor_t *sup, void *arg, ax_ref_t *ref) {
  uintptr_t kind = (uintptr_t)arg % 3;
  if (kind == 1)
    return -EIO;
  ax_spawn_opts_t o = {.monitor = sup};
  int rc = ax_spawn(ax_actor_rt(sup), victim, NULL, &o, ref);
  if (rc == 0 && kind == 2)
    CHECK(ax_stop(*ref, -EIO) == 0);
  return rc;
}

/* Whether two references name the same actor: the top bit only says its
 * mailbox is bounded (runtime/ref.h), so one with that bit flipped still
 * reaches it. */
static bool same_actor(ax_ref_t a, ax_ref_t b) {
  return ((a ^ b) & ~AX__REF_BOUNDED) == 0;
}

/* A reference: none, a live victim or supervisor, the port, a stopped
 * actor, a live one with a bit flipped, or 64 bits of garbage.  Never the
 * driver itself (stopping it would end the run). */
static ax_ref_t pick_ref(reader_t *r) {
  uint8_t how = rd8(r);
  ax_ref_t ref = AX_REF_NONE;
  switch (how % 8) {
  case 1: ref = nvictims > 0 ? victims[(how >> 3) % nvictims] : AX_REF_NONE; break;
  case 2: ref = nsups > 0 ? sups[(how >> 3) % nsups] : AX_REF_NONE; break;
  case 3: ref = port_ref; break;
  case 4: ref = dead_ref; break;
  case 5: ref = (nvictims > 0 ? victims[0] : fuzz_driver) ^ ((ax_ref_t)1 << (rd8(r) % 64)); break;
  case 6: ref = rd64(r); break;
  case 7: ref = ~(ax_ref_t)0; break;
  }
  return same_actor(ref, fuzz_driver) ? dead_ref : ref;
}

/* A payload size: honest (at most the buffer), or one the header refuses. */
static size_t pick_size(reader_t *r, bool *honest) {
  static const size_t refused[] = {AX_MSG_MAX + 1, SIZE_MAX, (size_t)UINT32_MAX + 1,
                                   SIZE_MAX / 2 + 1};
  uint8_t how = rd8(r);
  *honest = how < 0xf0;
  return *honest ? (size_t)(how << 4 | rd8(r) % 16) % (sizeof payload + 1)
                 : refused[how % 4];
}

static int64_t pick_ns(reader_t *r) {
  static const int64_t ns[] = {0, 1, 1000, -1, -2, INT64_MIN, INT64_MAX, 3600000000000};
  uint8_t how = rd8(r);
  return how < 0xf0 ? ns[how % 8] : (int64_t)rd64(r);
}

/* ------------------------------------------------------------------------ */
/* Calls from the driver's core (self).                                      */

static void self_calls(ax_actor_t *self, void *arg) {
  reader_t *r = arg;
  unsigned n = rd8(r) % 16;
  for (unsigned i = 0; i < n; i++) {
    uint8_t op = rd8(r);
    ax_actor_t *me = op & 0x80 ? NULL : self; /* NULL self: -EINVAL */
    uint64_t id = 0;
    bool honest;
    int rc = 0;
    switch (op % 12) {
    case 0: rc = ax_link(me, pick_ref(r)); break;
    case 1: rc = ax_unlink(me, pick_ref(r)); break;
    case 2:
      rc = ax_monitor(me, pick_ref(r), &id);
      if (rc == 0 && nmonitors < MAX_OPS)
        monitor_ids[nmonitors++] = id;
      break;
    case 3: rc = ax_demonitor(me, nmonitors > 0 && (op & 0x40) ? monitor_ids[0] : rd64(r)); break;
    case 4:
    case 5: {
      int64_t ns = pick_ns(r);
      uint32_t type = rd32(r);
      size_t size = pick_size(r, &honest);
      const void *data = rd8(r) & 1 ? payload : NULL;
      rc = op % 12 == 4 ? ax_after(me, ns, type, data, size, &id)
                        : ax_every(me, ns, type, data, size, &id);
      if (me != NULL && (type == 0 || size > 256 || (data == NULL && size > 0) || ns < 0 ||
                         (op % 12 == 5 && ns == 0)))
        CHECK(rc == -EINVAL);
      if (rc == 0 && ntimers < MAX_OPS)
        timer_ids[ntimers++] = id;
      break;
    }
    case 6: rc = ax_timer_cancel(me, ntimers > 0 && (op & 0x40) ? timer_ids[0] : rd64(r)); break;
    case 7: rc = ax_timer_rearm(me, ntimers > 0 && (op & 0x40) ? timer_ids[0] : rd64(r), pick_ns(r)); break;
    case 8: {
      ax_ref_t to = pick_ref(r);
      uint32_t type = rd32(r);
      size_t size = pick_size(r, &honest);
      rc = ax_request(me, to, type, size > 0 ? payload : NULL, size, rd8(r) & 1 ? &id : NULL);
      break;
    }
    case 9: {
      ax_msg_t req = {.type = rd32(r), .from = pick_ref(r), .req = rd64(r)};
      size_t size = pick_size(r, &honest);
      rc = ax_reply(me, rd8(r) & 1 ? &req : NULL, rd32(r), payload, size);
      break;
    }
    case 10: { /* a spawn monitored by or linked to self */
      ax_spawn_opts_t o = {.placement = (ax_placement_t)(int8_t)rd8(r), .core = rd8(r),
                           .near = pick_ref(r), .mailbox_max = rd8(r)};
      uint8_t with = rd8(r);
      o.monitor = with & 1 ? self : NULL;
      o.monitor_id = with & 2 ? &id : NULL;
      o.link = with & 4 ? self : NULL;
      ax_ref_t ref = AX_REF_NONE;
      rc = ax_spawn(fuzz_rt, victim, NULL, &o, &ref);
      if (rc == 0)
        keep(victims, &nvictims, ref);
      break;
    }
    case 11:
      CHECK(ax_mailbox_len(self) >= 0 && ax_core(self) == 0 && ax_actor_rt(self) == fuzz_rt);
      CHECK(ax_mailbox_len(NULL) == -EINVAL);
      rc = ax_trap_exits(me, true);
      break;
    }
    CHECK_RC(rc);
    if (me == NULL && op % 12 < 9) /* ax_reply alone takes a NULL self */
      CHECK(rc == -EINVAL);
  }
}

/* The driver's timers and monitors of this input, gone before the next. */
static void self_cleanup(ax_actor_t *self, void *arg) {
  (void)arg;
  for (size_t i = 0; i < ntimers; i++)
    CHECK_RC(ax_timer_cancel(self, timer_ids[i]));
  for (size_t i = 0; i < nmonitors; i++)
    CHECK_RC(ax_demonitor(self, monitor_ids[i]));
  for (size_t i = 0; i < nvictims; i++)
    CHECK_RC(ax_unlink(self, victims[i]));
  ntimers = nmonitors = 0;
}

/* ------------------------------------------------------------------------ */
/* Calls from any thread.                                                    */

static void sup_start(reader_t *r) {
  ax_sup_opts_t o = {.strategy = (ax_sup_strategy_t)(int8_t)rd8(r), .max_restarts = rd32(r),
                     .period_ns = pick_ns(r), .backoff_ns = pick_ns(r),
                     .backoff_max_ns = pick_ns(r), .children = specs};
  static const size_t counts[] = {0, AX_SUP_CHILDREN_MAX, AX_SUP_CHILDREN_MAX + 1, SIZE_MAX};
  uint8_t how = rd8(r);
  o.nchildren = how < 0xf0 ? how % 9 : counts[how % 4];
  /* The first specs from the input; the rest have no start (refused). */
  for (size_t i = 0; i < 8; i++) {
    uint8_t f = rd8(r);
    specs[i] = (ax_child_spec_t){.name = f & 1 ? "child" : NULL,
                                 .start = f & 2 ? child_start : NULL,
                                 .arg = (void *)(uintptr_t)(f >> 2),
                                 .restart = (ax_restart_t)(int8_t)rd8(r),
                                 .shutdown_ns = pick_ns(r)};
  }
  ax_spawn_opts_t so = {.placement = (ax_placement_t)(int8_t)rd8(r), .core = rd8(r)};
  uint8_t nulls = rd8(r);
  ax_ref_t ref = AX_REF_NONE;
  int rc = ax_sup_start(nulls & 1 ? NULL : fuzz_rt, nulls & 2 ? NULL : &o, nulls & 4 ? NULL : &so,
                        nulls & 8 ? NULL : &ref);
  CHECK_RC(rc);
  if ((nulls & 3) || o.nchildren == 0 || o.nchildren > AX_SUP_CHILDREN_MAX ||
      o.period_ns < 0 || o.backoff_ns < 0 || o.backoff_max_ns < 0)
    CHECK(rc == -EINVAL);
  if (rc == 0)
    keep(sups, &nsups, ref);
}

static void timer_cb(ax_timer_t *t) {
  if (*(uint8_t *)t->data & 1)
    CHECK(ax_timer_stop(t) == 0);
}

/* A loop of its own with timers: options, starts, runs and a close. */
static void loop_calls(reader_t *r) {
  ax_loop_opts_t o = {.backend = (ax_backend_t)(int8_t)rd8(r), .max_events = rd32(r) >> (rd8(r) % 32),
                      .flags = rd8(r) % 4};
  ax_loop_t *loop = NULL;
  int rc = ax_loop_new(rd8(r) & 1 ? NULL : &o, &loop);
  CHECK_RC(rc);
  if (rc < 0)
    return;
  ax_timer_t timers[4];
  uint8_t stop_self[4];
  for (int i = 0; i < 4; i++) {
    CHECK(ax_timer_init(loop, &timers[i], timer_cb) == 0);
    stop_self[i] = rd8(r);
    timers[i].data = &stop_self[i];
  }
  CHECK(ax_timer_init(NULL, &timers[0], timer_cb) == -EINVAL);
  CHECK(ax_timer_init(loop, &timers[0], NULL) == -EINVAL);
  unsigned n = rd8(r) % 16;
  for (unsigned i = 0; i < n; i++) {
    uint8_t op = rd8(r);
    ax_timer_t *t = &timers[op >> 6];
    int64_t a = pick_ns(r), b = pick_ns(r);
    switch (op % 6) {
    case 0: rc = ax_timer_start(t, a, b); break;
    case 1: rc = ax_timer_start_at(t, a, b); break;
    case 2: rc = ax_timer_restart(t, a, b); break;
    case 3: rc = ax_timer_stop(t); break;
    case 4: /* at most 100 us, never AX_FOREVER (a repeating timer never lets it end) */
    case 5: {
      int64_t ns = a == AX_FOREVER ? 0 : a > 0 ? a % 100000 : a;
      rc = op % 6 == 4 ? ax_loop_run(loop, ns) : ax_loop_run_once(loop, ns);
      if (ns < 0)
        CHECK(rc == -EINVAL);
      break;
    }
    }
    CHECK_RC(rc);
    if (op % 6 <= 2 && (a < 0 || b < 0))
      CHECK(rc == -EINVAL);
  }
  unsigned flags = rd8(r);
  rc = ax_loop_close(loop, flags);
  CHECK(rc == 0 || rc == -EBUSY || rc == -EINVAL);
  if (flags & ~(unsigned)AX_CLOSE_FORCE)
    CHECK(rc == -EINVAL);
  if (rc < 0)
    CHECK(ax_loop_close(loop, AX_CLOSE_FORCE) == 0);
}

static void rt_calls(reader_t *r) {
  ax_rt_opts_t o = {.cores = rd8(r) % 80, .batch = rd32(r) >> (rd8(r) % 32),
                    .spin_ns = pick_ns(r), .flags = rd8(r) | AX_RT_NO_SIGNALS,
                    .backend = (ax_backend_t)(int8_t)rd8(r),
                    .work_threads = rd32(r) >> (rd8(r) % 32), .work_queue = rd32(r) >> (rd8(r) % 32)};
  ax_rt_t *rt = NULL;
  int rc = ax_rt_new(&o, &rt);
  CHECK_RC(rc);
  if (o.cores > AX_MAX_CORES || o.batch > 65536 || o.work_threads > AX_WORK_THREADS_MAX ||
      o.work_queue > AX_WORK_QUEUE_MAX)
    CHECK(rc == -EINVAL);
  if (rc == 0)
    CHECK(ax_rt_free(rt) == 0); /* never started */
}

static void group_calls(reader_t *r) {
  ax_group_t *g = NULL;
  CHECK(ax_group_new(&g) == 0);
  unsigned n = rd8(r) % 8;
  for (unsigned i = 0; i < n; i++) {
    ax_ref_t ref = pick_ref(r);
    int rc = ax_group_join(g, ref);
    CHECK(rc == 0 || rc == -EINVAL || rc == -ESRCH || rc == -EEXIST || rc == -ENOMEM);
    if (ref == AX_REF_NONE)
      CHECK(rc == -EINVAL);
  }
  bool honest;
  size_t size = pick_size(r, &honest);
  CHECK_RC(ax_group_send(g, rd32(r), payload, size));
  ax_ref_t out[4];
  CHECK_RC(ax_group_members(g, out, rd8(r) % 5));
  CHECK(ax_group_members(g, NULL, 1) == -EINVAL);
  CHECK_RC(ax_group_leave(g, pick_ref(r)));
  ax_group_free(g);
}

static void one_op(reader_t *r) {
  uint8_t op = rd8(r);
  bool honest;
  int rc = 0;
  switch (op % 14) {
  case 0: {
    ax_ref_t to = pick_ref(r);
    uint32_t type = rd32(r);
    size_t size = pick_size(r, &honest);
    const void *data = rd8(r) & 1 ? payload : NULL;
    rc = ax_send(to, type, data, size);
    if (type == 0 || size > AX_MSG_MAX || (data == NULL && size > 0))
      CHECK(rc == -EINVAL);
    else
      CHECK(rc == 0 || rc == -ESRCH || rc == -ENOMEM || rc == -EAGAIN);
    break;
  }
  case 1: { /* an owned buffer: released on every path (ASan sees a leak or a double free) */
    ax_ref_t to = pick_ref(r);
    size_t size = rd8(r);
    void *buf = malloc(size + 1);
    CHECK(buf != NULL);
    memset(buf, 0x5a, size + 1);
    rc = ax_send_owned(to, rd32(r), buf, size, free);
    break;
  }
  case 2: {
    ax_spawn_opts_t o = {.placement = (ax_placement_t)(int8_t)rd8(r), .core = rd32(r) >> (rd8(r) % 32),
                         .near = pick_ref(r), .mailbox_max = rd32(r)};
    uint8_t nulls = rd8(r);
    ax_ref_t ref = AX_REF_NONE;
    rc = ax_spawn(nulls & 1 ? NULL : fuzz_rt, nulls & 2 ? NULL : victim, NULL,
                  nulls & 4 ? NULL : &o, nulls & 8 ? NULL : &ref);
    if (nulls & 3)
      CHECK(rc == -EINVAL);
    if (rc == 0)
      keep(victims, &nvictims, ref);
    break;
  }
  case 3: {
    ax_ref_t ref = pick_ref(r);
    int reason = (int8_t)rd8(r);
    rc = ax_stop(ref, reason);
    CHECK(rc == 0 || rc == -ESRCH || rc == -EINVAL);
    if (reason > 0)
      CHECK(rc == -EINVAL);
    break;
  }
  case 4: sup_start(r); break;
  case 5: rc = ax_sup_start_child(pick_ref(r), (void *)(uintptr_t)rd8(r)); break;
  case 6: rc = ax_sup_stop(pick_ref(r)); break;
  case 7:
  case 8:
  case 9: { /* names: NULL, empty, up to past AX_NAME_MAX, any bytes */
    char name[AX_NAME_MAX + 8];
    size_t len = rd8(r) % sizeof name;
    for (size_t i = 0; i < len; i++)
      name[i] = (char)rd8(r);
    name[len] = '\0';
    uint8_t nulls = rd8(r);
    ax_rt_t *rt = nulls & 1 ? NULL : fuzz_rt;
    const char *nm = nulls & 2 ? NULL : name;
    if (op % 14 == 7) {
      rc = ax_register(rt, nm, pick_ref(r));
      if (rc == 0 && nnames < MAX_OPS)
        memcpy(names[nnames++], name, sizeof name);
    } else if (op % 14 == 8) {
      rc = ax_unregister(rt, nm);
    } else {
      (void)ax_whereis(rt, nm);
    }
    if ((nulls & 3) && op % 14 != 9)
      CHECK(rc == -EINVAL);
    break;
  }
  case 10: {
    ax_ref_t ref = pick_ref(r);
    rc = ax_ref_core(ref);
    /* A core index as the reference spells it: for garbage, maybe no core
     * of any runtime (the header promises -EINVAL only for none or a port). */
    CHECK(rc == -EINVAL || (rc >= 0 && rc < (int)AX__REF_NO_CORE));
    if (ref == AX_REF_NONE || ref == port_ref)
      CHECK(rc == -EINVAL);
    ax_core_stats_t st;
    unsigned core = rd32(r);
    rc = ax_rt_stats(fuzz_rt, core, &st);
    CHECK(rc == (core < ax_rt_cores(fuzz_rt) ? 0 : -EINVAL));
    CHECK(ax_rt_stats(NULL, 0, &st) == -EINVAL && ax_rt_stats(fuzz_rt, 0, NULL) == -EINVAL);
    CHECK(ax_rt_stats_total(fuzz_rt, &st) == 0 && ax_rt_stats_total(NULL, &st) == -EINVAL);
    int err = (int)rd32(r);
    CHECK(ax_strerror(err) != NULL && ax_err_name(err) != NULL);
    rc = 0;
    break;
  }
  case 11: loop_calls(r); break;
  case 12: (rd8(r) & 1) ? rt_calls(r) : group_calls(r); break;
  case 13: fuzz_on_core(self_calls, r); break;
  }
  CHECK_RC(rc);
}

static void close_port(void) { CHECK(ax_port_close(port) == 0); }

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  fuzz_no_leak_check_per_input(argc, argv);
  fuzz_rt_start(2);
  CHECK(ax_port_new(fuzz_rt, &port) == 0);
  port_ref = ax_port_ref(port);
  atexit(close_port); /* before the runtime's end (atexit runs last first) */
  /* A reference to an actor that has stopped: sends to it fail once it
   * has. */
  CHECK(ax_spawn(fuzz_rt, victim, NULL, NULL, &dead_ref) == 0);
  CHECK(ax_stop(dead_ref, 0) == 0);
  while (ax_send(dead_ref, AX_MSG_USER, NULL, 0) == 0)
    ;
  for (size_t i = 0; i < sizeof payload; i++)
    payload[i] = (unsigned char)i;
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  reader_t r = {data, size};
  for (int i = 0; i < MAX_OPS && r.n > 0; i++)
    one_op(&r);

  /* Undo what this input made, so that inputs do not pile up. */
  fuzz_on_core(self_cleanup, NULL);
  for (size_t i = 0; i < nsups; i++)
    CHECK_RC(ax_sup_stop(sups[i]));
  for (size_t i = 0; i < nvictims; i++)
    CHECK_RC(ax_stop(victims[i], 0));
  for (size_t i = 0; i < nnames; i++)
    CHECK_RC(ax_unregister(fuzz_rt, names[i]));
  nsups = nvictims = nnames = 0;
  ax_msg_t m;
  while (ax_port_recv(port, 0, &m) == 0)
    ;
  return 0;
}
