/* Actors: spawn, send, stop, timers as messages, monitors, request/reply, names. */
#ifndef AXON_ACTOR_H
#define AXON_ACTOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "axon/common.h"
#include "axon/runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * An actor is a behaviour function, a state pointer and a mailbox, pinned to
 * the core it was spawned on.  The core calls the behaviour once per message,
 * never twice at the same time, so the state needs no locks.
 *
 * Threads.  Functions taking `ax_actor_t *self` may only be called from
 * inside that actor's behaviour or hooks (its core).  ax_spawn, ax_send,
 * ax_send_owned, ax_stop, ax_whereis, ax_register and ax_unregister may be
 * called from any thread, runtime or not.
 *
 * Ordering.  Messages from one sender to one receiver arrive in the order
 * they were sent.  A "sender" is an actor, or a thread that is not an actor.
 * Nothing is promised between different senders.
 */

typedef struct ax_actor ax_actor_t;

/* A reference to an actor or a port: 64 bits naming its runtime, core, slot
 * and generation.  A reference to a stopped actor stays invalid forever
 * (sends return -ESRCH) until its slot has been reused at least 2^22
 * times (4.2 million; 2^23 - 1 unless the core gave the slot's page back
 * meanwhile). */
typedef uint64_t ax_ref_t;
#define AX_REF_NONE ((ax_ref_t)0)

/* Message types below AX_MSG_USER belong to axon; every one of them is
 * numbered here, and the header of its feature says what its payload is. */
enum {
  AX_MSG_DOWN = 1,       /* a monitored actor stopped: data is ax_down_t */
  AX_MSG_WORK = 2,       /* blocking work finished: ax_work_done_t (work.h) */
  AX_MSG_FILE,           /* a file or path request completed: ax_file_done_t (file.h) */
  AX_MSG_LINK_DOWN,      /* a linked actor stopped (the receiver traps exits): ax_link_down_t */
  AX_MSG_SHUTDOWN,       /* please finish and stop: sent by supervisors (supervisor.h); no payload */
  /* streams and listeners (stream.h) */
  AX_MSG_ACCEPT = 16,    /* ax_accept_t */
  AX_MSG_CONNECTED,      /* ax_stream_ev_t */
  AX_MSG_DATA,           /* ax_data_t */
  AX_MSG_PASSIVE,        /* ax_stream_ev_t */
  AX_MSG_WRITABLE,       /* ax_stream_ev_t */
  AX_MSG_EOF,            /* ax_stream_ev_t */
  AX_MSG_FRAME_ERROR,    /* ax_stream_ev_t */
  AX_MSG_CLOSED,         /* ax_stream_ev_t; ax_source_ev_t for other sources */
  AX_MSG_GIVEN,          /* ax_stream_ev_t */
  AX_MSG_SERVER_CLOSED,  /* ax_server_closed_t */
  /* other sources (source.h) */
  AX_MSG_DATAGRAM = 32,  /* ax_datagram_t */
  AX_MSG_SIGNAL,         /* ax_signal_msg_t */
  AX_MSG_EVENT,          /* ax_event_msg_t (an eventfd's count) */
  AX_MSG_FS_EVENT,       /* ax_fs_event_t */
  AX_MSG_FD_READY,       /* ax_fd_ready_t */
  AX_MSG_EXIT,           /* a child process ended: ax_process_exit_t (process.h) */
  /* 240..242: supervisors' own (supervisor.c): an actor that is no
   * supervisor sees 242 if it is sent ax_sup_start_child (payload: the arg
   * pointer); ignore it */
  /* 250..255: fibers' own (fiber.c), never seen by a fiber's code */
  AX_MSG_USER = 256,     /* first type for applications */
};

/* A received message.  Everything it points to is valid until the behaviour
 * returns (for a port, until the next ax_port_recv).  A copied payload is
 * 16-byte aligned.  `from` is the sending actor; for a timer message it is
 * the actor itself, for AX_MSG_DOWN the actor that stopped. */
typedef struct ax_msg {
  uint32_t type;    /* AX_MSG_* or an application type >= AX_MSG_USER */
  uint32_t size;    /* payload bytes */
  const void *data; /* the payload (NULL when size is 0) */
  ax_ref_t from;    /* the sending actor, or AX_REF_NONE for other threads */
  uint64_t req;     /* request id (ax_request/ax_reply), 0 otherwise */
} ax_msg_t;

/* What a behaviour returns: 0 to go on, AX_STOP to stop normally, or a
 * negative errno-style code to stop with that code as the failure reason. */
#define AX_STOP 1

/* Stop reasons, as given to terminate hooks and in ax_down_t. */
enum {
  AX_REASON_NORMAL = 0,     /* the behaviour returned AX_STOP */
  AX_REASON_STOPPED = 1,    /* ax_stop() with reason 0 */
  AX_REASON_SHUTDOWN = 2,   /* the runtime stopped */
  /* a negative value: the behaviour's failure code, or ax_stop()'s reason;
   * -ESRCH in ax_down_t: the target did not exist when monitored */
};

/* AX_MSG_DOWN's payload. */
typedef struct ax_down {
  ax_ref_t ref;    /* the actor that stopped */
  uint64_t id;     /* the monitor id ax_monitor() returned */
  int reason;      /* AX_REASON_* or a negative code */
} ax_down_t;

/* AX_MSG_LINK_DOWN's payload (see ax_link). */
typedef struct ax_link_down {
  ax_ref_t ref; /* the linked actor that stopped */
  int reason;   /* its reason: AX_REASON_* or a negative code; -ESRCH: it did not exist */
} ax_link_down_t;

typedef int (*ax_behaviour_t)(ax_actor_t *self, const ax_msg_t *msg);
typedef void (*ax_init_t)(ax_actor_t *self);
typedef void (*ax_terminate_t)(ax_actor_t *self, int reason);

/* Where ax_spawn() puts the actor.  Once placed, an actor stays on its
 * core; a message between two actors of one core costs a few nanoseconds,
 * one between cores costs a trip of a cache line between CPUs (bench/). */
typedef enum ax_placement {
  /* The default.  From an actor (any code on a core's thread): its own
   * core, so that actors that talk to each other share one, unless that
   * core is overloaded: AX_PLACE_SPILL or more actors have waited to run
   * on it for the runtime's spill_ns (ax_rt_opts_t; 200 us by default,
   * counted from the first spawn that found the queue that long, as long
   * as it is that long at the end of every round), and another core has
   * fewer than half as many; then that one (the least loaded).  A run
   * queue that one turn has just made long is no load: an actor that
   * spawns its talkers and starts each one makes one (so a burst of
   * independent work spawned in one go stays too; spawn it with
   * AX_PLACE_SPREAD).  From a thread that is no core of the runtime: the
   * next core, round-robin. */
  AX_PLACE_ANY = 0,
  AX_PLACE_LOCAL,  /* the caller's core always (round-robin from other threads) */
  AX_PLACE_CORE,   /* the core given in ax_spawn_opts_t.core */
  AX_PLACE_NEAR,   /* the core of the actor ax_spawn_opts_t.near (alive or not) */
  AX_PLACE_SPREAD, /* the next core, round-robin, from anywhere: independent work */
} ax_placement_t;

/* AX_PLACE_ANY: the run-queue length from which a spawn goes elsewhere,
 * once the queue has been that long for the runtime's spill_ns, whose
 * default is AX_PLACE_SPILL_NS nanoseconds. */
#define AX_PLACE_SPILL 64
#define AX_PLACE_SPILL_NS (200 * 1000)

/* Spawn options; zero-initialise, NULL means all defaults. */
typedef struct ax_spawn_opts {
  ax_placement_t placement;
  unsigned core;            /* with AX_PLACE_CORE */
  ax_init_t init;           /* runs on the actor's core before any message */
  ax_terminate_t terminate; /* runs on the actor's core when it stops */
  /* The calling actor (self; NULL: none) monitors the new one from before
   * it can run, so that its AX_MSG_DOWN comes whatever happens, even a
   * death before ax_spawn returns (ax_spawn then ax_monitor would report
   * such a death as -ESRCH, without its reason).  The monitor's id is
   * stored in *monitor_id when that is not NULL. */
  ax_actor_t *monitor;
  uint64_t *monitor_id;
  ax_ref_t near; /* with AX_PLACE_NEAR: an actor of the same runtime */
  /* The calling actor (self; NULL: none) is linked to the new one from
   * before it can run (see ax_link), so that a failure of either, even
   * before ax_spawn returns, reaches the other.  Same rule as monitor: that
   * actor's own core. */
  ax_actor_t *link;
  /* A bound on the mailbox (0: none).  At most this many messages sent
   * with ax_send, ax_send_owned, ax_request or ax_reply wait for the actor
   * at once, counted from the send until the actor is done with them;
   * one more send fails with -EAGAIN (an owned buffer is released), and
   * the sender tries again later.  Messages of axon's own (timers, I/O,
   * DOWN, STOP, signals) are not counted: sources have windows of their own.
   * Sends to a bounded actor cost an atomic add and a look at the actor;
   * sends to every other actor cost nothing more. */
  uint32_t mailbox_max;
} ax_spawn_opts_t;

/* Creates an actor running `behaviour` with `state` (yours: axon never
 * frees it; free it in the terminate hook).  Stores its reference in *ref
 * when ref is not NULL.  Any thread, before or after ax_rt_start() (with
 * opts->monitor: that actor's own core).  Errors: -EINVAL (NULL rt or
 * behaviour, core out of range, unknown placement, a monitor of another
 * runtime, AX_PLACE_NEAR with a reference that names no core of rt),
 * -ENOMEM, -ESHUTDOWN (the runtime is stopping). */
AX_API int ax_spawn(ax_rt_t *rt, ax_behaviour_t behaviour, void *state,
                    const ax_spawn_opts_t *opts, ax_ref_t *ref);

/* Sends a message: the payload (size bytes at data) is copied, so the
 * caller may reuse its buffer at once.  From inside a behaviour the sender
 * is the running actor, otherwise AX_REF_NONE.  Any thread.  A send from
 * an actor never waits.  A thread that is no core (main, a library's
 * worker) sends at the pace of the receiving core: when the 256 messages
 * that thread may have on its way to that core are all still there, the
 * send waits (spinning, then sleeping) for the core to take them.  A
 * core that shows no progress for 200 us (or for 16 of its recent
 * messages' time when those are slow, 10 ms at most: a core busy in one
 * long turn, a runtime not started) lets 256 messages a wait through,
 * queued, from all such threads together; threads past the first 16
 * share the core's inbox, paced the same way (see docs/actors.md,
 * "Sending from any thread").
 * Errors: -EINVAL (type 0, size > AX_MSG_MAX, data NULL with size > 0),
 * -ESRCH (no such actor: it stopped, or ref is AX_REF_NONE or garbage; from
 * a thread that is no core, also once ax_rt_stop was called, except to a
 * port, which takes messages until it is closed: port.h), -EAGAIN (the
 * receiver is bounded, an actor's mailbox_max or a port's max, and that
 * many messages wait: nothing was sent, try again later), -ENOMEM. */
AX_API int ax_send(ax_ref_t to, uint32_t type, const void *data, size_t size);

/* The largest payload ax_send accepts (ax_send_owned takes up to
 * UINT32_MAX bytes: ax_msg_t.size is 32 bits). */
#define AX_MSG_MAX ((size_t)1 << 30)

/* Hands a heap buffer over without copying: the receiver sees buf as the
 * message's data, and release(buf) runs after its behaviour returns (on
 * the receiver's core) unless the behaviour took the buffer with
 * ax_msg_take().  If the message cannot be delivered, release(buf) runs
 * before ax_send_owned returns an error or when the message is dropped, so
 * the buffer never leaks.  release may be NULL (nothing to free).  Any
 * thread; one that is no core may wait as in ax_send.  Errors: as ax_send,
 * but the size limit is UINT32_MAX, not AX_MSG_MAX. */
AX_API int ax_send_owned(ax_ref_t to, uint32_t type, void *buf, size_t size,
                         void (*release)(void *buf));

/* Takes ownership of an ax_send_owned() buffer from inside the behaviour
 * handling msg: returns it, and axon will not release it.  Returns NULL for
 * a message whose payload was copied, and on a thread that is no actor (a
 * port's: ax_port_recv hands out a copy).  Receiving actor only. */
AX_API void *ax_msg_take(const ax_msg_t *msg);

/* Asks an actor to stop.  It stops before handling any further message;
 * messages still in its mailbox are dropped (dead letters), and so are
 * those the caller sent it before, still on their way from another core:
 * a monitor or link asked for before the stop is answered with the stop's
 * reason (unless more than 256 messages of the caller's core waited for
 * room on the way to the actor's core).  reason 0 means
 * AX_REASON_STOPPED; a negative reason is reported as a failure.  Returns
 * 0 also for an actor asked to stop already and not dead yet (the first
 * reason wins).  Any thread; one that is no core may wait as in ax_send.
 * Errors: -ESRCH (no such actor: it has died; whoever got its DOWN gets
 * -ESRCH), -EINVAL (reason > 0), -ENOMEM (no memory for the stop's
 * message: the actor runs on).  A stop asked for while the actor runs
 * wins over what its behaviour (or fiber) then returns. */
AX_API int ax_stop(ax_ref_t ref, int reason);

/* The first fields of every actor, read by the two inline accessors below
 * so that a behaviour gets its state without a call.  Private otherwise. */
struct ax__actor_head {
  void *state;
  ax_ref_t ref;
};

/* The running actor's state pointer (as given to ax_spawn).  self is the
 * pointer axon passed to the behaviour or hook, never NULL.  Inline (one
 * load); the actor's own core. */
static inline void *ax_state(const ax_actor_t *self) {
  return ((const struct ax__actor_head *)(const void *)self)->state;
}

/* The running actor's own reference.  self as for ax_state.  Inline; the
 * actor's own core. */
static inline ax_ref_t ax_self(const ax_actor_t *self) {
  return ((const struct ax__actor_head *)(const void *)self)->ref;
}

/* The running actor's core index and runtime. */
AX_API unsigned ax_core(const ax_actor_t *self);
AX_API ax_rt_t *ax_actor_rt(const ax_actor_t *self);

/* How many messages wait for self: those in its mailbox, and for a fiber
 * those it keeps aside while it waits for another.  Messages from other
 * cores or threads count once they reached self's core (a core takes them
 * in between turns).  With a bound (mailbox_max), what is counted against
 * it is sends not yet done with, so this may read lower.  Lets an actor
 * see a flood and shed load: nothing between actors pushes back unless a
 * mailbox is bounded.  Self's core only.  Errors: -EINVAL (NULL self). */
AX_API int64_t ax_mailbox_len(const ax_actor_t *self);

/* The core index of a reference (to spawn next to it, say), or -EINVAL for
 * AX_REF_NONE or a port.  Any thread. */
AX_API int ax_ref_core(ax_ref_t ref);

/* ------------------------------------------------------------------------ */
/* Timers as messages                                                        */

/* After ns nanoseconds, sends self a message of the given type with a copy
 * of the payload (at most 256 bytes), once.  Stores a timer id in *id when
 * id is not NULL.  Errors: -EINVAL (NULL self, ns < 0, type 0, size > 256,
 * data NULL with size > 0), -ENOMEM. */
AX_API int ax_after(ax_actor_t *self, int64_t ns, uint32_t type, const void *data, size_t size,
                    uint64_t *id);

/* Like ax_after, every period_ns (> 0) until cancelled or the actor stops.
 * A period that the actor has not handled yet is not queued twice: slow
 * handlers see fewer ticks, never a growing backlog. */
AX_API int ax_every(ax_actor_t *self, int64_t period_ns, uint32_t type, const void *data,
                    size_t size, uint64_t *id);

/* Cancels a timer of self.  After it returns 0, no message from that timer
 * is delivered, not even one already queued: a one-shot timer that has
 * fired but whose message self has not handled yet is cancelled too.
 * Errors: -EINVAL (NULL self), -ENOENT (no such timer: a one-shot timer
 * whose message self has already handled, a cancelled timer, or an unknown
 * id). */
AX_API int ax_timer_cancel(ax_actor_t *self, uint64_t id);

/* Starts a timer of self over, as if set now with ns and its own type and
 * payload, keeping its id: a one-shot timer fires ns from now, a periodic
 * one ticks every ns from now.  A message of it that is queued and not yet
 * handled is dropped, as by a cancel.  The idle timeout of a connection is
 * one ax_after, then a rearm per packet.  Errors: -EINVAL (NULL self,
 * ns < 0, ns 0 for a periodic timer), -ENOENT (as ax_timer_cancel: a
 * one-shot timer whose message was handled is gone; set a new one),
 * -ENOMEM (a fiber's one-shot timer that has fired but whose message the
 * fiber has not received yet needs a new record: without memory that
 * message stays, as if rearm had not been called). */
AX_API int ax_timer_rearm(ax_actor_t *self, uint64_t id, int64_t ns);

/* ------------------------------------------------------------------------ */
/* Monitors                                                                  */

/* Asks for an AX_MSG_DOWN message when `target` stops, for whatever
 * reason; if target does not exist, the DOWN message (reason -ESRCH) comes
 * at once.  Stores the monitor id in *id when id is not NULL.  A DOWN
 * message is delivered once per monitor.  The request travels to the
 * target's core as a message of self's: a target that stops before it
 * arrives (it stops itself, another thread stops it, or it was stopped
 * ahead of self's queued messages: see ax_stop) is reported with -ESRCH,
 * not its reason, as Erlang reports noproc.  A watcher that stops takes
 * its monitors with it (the targets forget it).  Errors: -EINVAL (NULL self,
 * target AX_REF_NONE, a port's reference: a port ends when its thread
 * closes it, which that thread knows, or an actor of another runtime),
 * -ENOMEM. */
AX_API int ax_monitor(ax_actor_t *self, ax_ref_t target, uint64_t *id);

/* Removes a monitor: no DOWN message for it is delivered after this
 * returns 0.  Errors: -EINVAL (NULL self), -ENOENT (no such monitor, or its
 * DOWN message was already delivered). */
AX_API int ax_demonitor(ax_actor_t *self, uint64_t id);

/* ------------------------------------------------------------------------ */
/* Links                                                                     */

/* Links self and other, both ways: when either stops with a failure (a
 * negative reason), the other stops too, with the same reason, unless it
 * traps exits (ax_trap_exits): then it gets AX_MSG_LINK_DOWN
 * {ref, reason} instead, and it gets one for a normal stop as well.  A
 * normal stop (AX_REASON_NORMAL, _STOPPED, _SHUTDOWN) of one side stops
 * nobody.  If other does not exist or has stopped, self gets that at once
 * as a failure with reason -ESRCH (or its reason), as if it had stopped
 * then: a caller that does not trap exits stops.  That includes a target
 * that stops, even normally, before the link request reaches it (the
 * same race as ax_monitor's): link before the target can end, or trap
 * exits.  Linking twice is one
 * link.  Erlang's link/1.  Self's core.  Errors: -EINVAL (NULL self, other
 * AX_REF_NONE, self, a port's reference or an actor of another runtime),
 * -ENOMEM. */
AX_API int ax_link(ax_actor_t *self, ax_ref_t other);

/* Removes the link between self and other: neither hears of the other's
 * end any more, even one already on its way.  Self's core.  Errors:
 * -EINVAL (NULL self), -ENOENT (not linked). */
AX_API int ax_unlink(ax_actor_t *self, ax_ref_t other);

/* Whether self traps exits (false when it was spawned): a trapping actor
 * receives AX_MSG_LINK_DOWN for each linked actor that stops, for any
 * reason, instead of stopping with it.  Supervisors trap exits.  Self's
 * core.  Errors: -EINVAL (NULL self), -ENOMEM. */
AX_API int ax_trap_exits(ax_actor_t *self, bool trap);

/* ------------------------------------------------------------------------ */
/* Request and reply                                                         */

/* Sends a request: like ax_send, and the message carries a fresh request id
 * (stored in *req when req is not NULL) that the receiver's ax_reply()
 * copies into the reply's ax_msg_t.req, so the caller can match them.
 * Errors: as ax_send, and -EINVAL for a NULL self. */
AX_API int ax_request(ax_actor_t *self, ax_ref_t to, uint32_t type, const void *data,
                      size_t size, uint64_t *req);

/* Replies to a request: sends to request->from a message whose req is
 * request->req (for the request of a fiber's ax_call, that id with a bit
 * of its own added, which marks the answer to a call).  From any actor (usually the one handling the request) or,
 * with self NULL, from any thread.  Errors: as ax_send; -EINVAL when request
 * is NULL or carries no request id. */
AX_API int ax_reply(ax_actor_t *self, const ax_msg_t *request, uint32_t type, const void *data,
                    size_t size);

/* ------------------------------------------------------------------------ */
/* Names                                                                     */

/* The longest name (without the terminating NUL). */
#define AX_NAME_MAX 63

/* Registers ref under name in rt's registry; the name is removed when the
 * actor stops.  Any thread.  Errors: -EINVAL (NULL rt or name, empty or
 * longer than AX_NAME_MAX, ref not an actor of rt), -EEXIST (the name is
 * taken), -ESRCH (ref is not alive), -ENOMEM. */
AX_API int ax_register(ax_rt_t *rt, const char *name, ax_ref_t ref);

/* Removes a name.  Any thread.  Errors: -EINVAL, -ENOENT (not registered). */
AX_API int ax_unregister(ax_rt_t *rt, const char *name);

/* The reference registered under name, or AX_REF_NONE.  Any thread. */
AX_API ax_ref_t ax_whereis(ax_rt_t *rt, const char *name);

#ifdef __cplusplus
}
#endif

#endif /* AXON_ACTOR_H */
